//! Invitations with groups and limits, resending to everyone invited with a cool-down, and
//! groups kept by the org's admins (issue: members, ways in).

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{OPERATOR, TestApp, assert_problem, spawn_app};

async fn create_group(app: &TestApp, org: &str, token: &str, name: &str) -> String {
    let r = app
        .post(
            &format!("/api/v1/orgs/{org}/groups"),
            token,
            json!({"name": name}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["name"], name);
    r.body["id"].as_str().unwrap().to_owned()
}

fn errors_at(r: &crate::helpers::Res) -> Vec<String> {
    r.body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_invitation_names_groups_the_person_joins_on_acceptance() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    create_group(&app, "acme", &admin, "Cohort A").await;
    create_group(&app, "acme", &admin, "Mentors").await;

    // An unknown group refuses the whole request, naming where; nothing changes.
    let before = app.snapshot("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [
                {"email": "ok@acme.example", "groups": ["Mentors"]},
                {"email": "x@acme.example", "groups": ["cohort a", "Nope"]}
            ]}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(errors_at(&r), ["members[1].groups[1]"], "{}", r.text);
    assert!(r.text.contains("no group `Nope`"), "{}", r.text);
    assert_eq!(
        app.snapshot("acme").await,
        before,
        "a refused request changes nothing"
    );

    // Names match ignoring case; the answer shows the groups by their own names.
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "x@acme.example", "groups": ["cohort a", "MENTORS"]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["results"][0]["groups"],
        json!(["Cohort A", "Mentors"])
    );
    // Not a member of either group until they accept.
    assert!(app.group_members("acme", "Cohort A").await.is_empty());

    let a = app.accept("acme", "x@acme.example", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        app.group_members("acme", "Cohort A").await,
        ["x@acme.example"]
    );
    assert_eq!(
        app.group_members("acme", "Mentors").await,
        ["x@acme.example"]
    );
    // Each join is audited as the invitee's doing.
    let audit = app.get("/api/v1/orgs/acme/audit?limit=100", &admin).await;
    let joins: Vec<&Value> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "group.members_changed")
        .collect();
    assert_eq!(joins.len(), 2, "{}", audit.text);
    assert!(
        joins.iter().all(|e| e["actor"]["kind"] == "invitee"),
        "{}",
        audit.text
    );
}

#[tokio::test]
async fn a_removed_invitee_never_joins_and_a_deleted_group_is_forgotten() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let g = create_group(&app, "acme", &admin, "Cohort A").await;
    create_group(&app, "acme", &admin, "Cohort B").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [
                {"email": "a@acme.example", "groups": ["Cohort A", "Cohort B"]},
                {"email": "b@acme.example", "groups": ["Cohort B"]}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.body["results"][1]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // b is removed, then re-added without groups: the old invitation's groups are gone.
    let r = app
        .post(
            "/api/v1/orgs/acme/members/remove",
            &admin,
            json!({"member_ids": [b]}),
        )
        .await;
    assert_eq!(r.body["removed"], 1, "{}", r.text);
    app.add("acme", &admin, &["b@acme.example"]).await;
    // Cohort A is deleted while a's invitation names it.
    let r = app
        .delete(&format!("/api/v1/orgs/acme/groups/{g}"), &admin)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    assert_eq!(app.accept("acme", "a@acme.example", None).await.status, 200);
    assert_eq!(app.accept("acme", "b@acme.example", None).await.status, 200);
    assert_eq!(
        app.group_members("acme", "Cohort B").await,
        ["a@acme.example"]
    );
}

#[tokio::test]
async fn an_org_can_require_every_invitation_to_name_a_group() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    create_group(&app, "acme", &admin, "Staff").await;
    let r = app
        .patch(
            "/api/v1/orgs/acme",
            &admin,
            json!({"invite_requires_group": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["invite_requires_group"], true);

    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "a@acme.example"}]}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(errors_at(&r), ["members[0].groups"], "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "a@acme.example", "groups": ["Staff"]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["results"][0]["outcome"], "invited");
}

#[tokio::test]
async fn one_request_invites_at_most_the_orgs_limit() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let org = app.get("/api/v1/orgs/acme", &admin).await;
    assert_eq!(org.body["invite_limit"], 10, "{}", org.text);
    assert_eq!(org.body["import_invite_limit"], 500);
    assert_eq!(org.body["resend_cooldown_secs"], 600);

    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"email": format!("p{i}@acme.example")}))
        .collect();
    let before = app.snapshot("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": eleven}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["code"], "limit_exceeded", "{}", r.text);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("at most 10") && detail.contains("invite_limit") && detail.contains("11"),
        "{detail}"
    );
    assert_eq!(app.snapshot("acme").await, before);

    // The limits are the operator's to set, within bounds.
    let r = app
        .patch("/api/v1/orgs/acme", &admin, json!({"invite_limit": 50}))
        .await;
    assert_problem(&r, 403);
    for bad in [json!(0), json!(1001), json!(-3)] {
        let r = app
            .patch("/api/v1/orgs/acme", OPERATOR, json!({"invite_limit": bad}))
            .await;
        assert_problem(&r, 422);
        assert_eq!(errors_at(&r), ["invite_limit"], "{}", r.text);
    }
    let r = app
        .patch(
            "/api/v1/orgs/acme",
            OPERATOR,
            json!({"invite_limit": 11, "resend_cooldown_secs": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": eleven}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 11);
}

#[tokio::test]
async fn an_import_invites_at_most_the_orgs_import_limit() {
    let app = spawn_app().await;
    app.org_with_admin("acme").await;
    let r = app
        .patch(
            "/api/v1/orgs/acme",
            OPERATOR,
            json!({"import_invite_limit": 2}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = app.snapshot("acme").await;
    let upload = |csv: &'static str| {
        app.client
            .post(app.url("/api/v1/orgs/acme/imports?filename=people.csv"))
            .bearer_auth(OPERATOR)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
    };
    let r = upload("email\r\na@acme.example\r\nb@acme.example\r\nc@acme.example\r\n")
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "limit_exceeded", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("import_invite_limit"),
        "{body}"
    );
    assert_eq!(app.snapshot("acme").await, before, "no job, no member");
    let jobs = app.get("/api/v1/orgs/acme/imports", OPERATOR).await;
    assert_eq!(jobs.body["items"], json!([]), "{}", jobs.text);

    let r = upload("email\r\na@acme.example\r\nb@acme.example\r\n")
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn resend_to_everyone_invited_respects_the_cool_down() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add(
            "acme",
            &admin,
            &["a@acme.example", "b@acme.example", "c@acme.example"],
        )
        .await;
    app.accept("acme", "c@acme.example", None).await;
    let mailed = app.outbox("acme").await.len();

    // Just invited: nobody is mailed again within ten minutes.
    let r = app
        .post(
            "/api/v1/orgs/acme/members/resend-invites",
            &admin,
            json!({"all_invited": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The owner accepted nothing either: the owner is invited too.
    let invited = r.body["skipped"].as_u64().unwrap();
    assert_eq!(r.body["sent"], 0, "{}", r.text);
    assert_eq!(
        r.body["skipped_by_reason"],
        json!({"skipped_cooldown": invited}),
        "{}",
        r.text
    );
    assert!(r.body.get("results").is_none(), "{}", r.text);
    assert_eq!(app.outbox("acme").await.len(), mailed);

    // One by one, the reason says how long ago and how long the org waits.
    let r = app
        .post(
            "/api/v1/orgs/acme/members/resend-invites",
            &admin,
            json!({"member_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(
        r.body["results"][0]["outcome"], "skipped_cooldown",
        "{}",
        r.text
    );
    assert!(
        r.body["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("600 s"),
        "{}",
        r.text
    );

    app.clock.advance(Duration::minutes(11));
    let r = app
        .post(
            "/api/v1/orgs/acme/members/resend-invites",
            &admin,
            json!({"all_invited": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["sent"].as_u64().unwrap(), invited, "{}", r.text);
    assert_eq!(r.body["skipped"], 0);
    assert_eq!(
        app.outbox("acme").await.len(),
        mailed + invited as usize,
        "one email per invited member, none to the enrolled"
    );
    // And at once again: the cool-down holds.
    let r = app
        .post(
            "/api/v1/orgs/acme/members/resend-invites",
            &admin,
            json!({"all_invited": true}),
        )
        .await;
    assert_eq!(r.body["sent"], 0, "{}", r.text);

    // Either a list or everyone, not both, not neither.
    for body in [
        json!({}),
        json!({"all_invited": true, "member_ids": [ids[0]]}),
    ] {
        let r = app
            .post("/api/v1/orgs/acme/members/resend-invites", &admin, body)
            .await;
        assert_problem(&r, 400);
    }
}

#[tokio::test]
async fn admins_keep_their_own_groups() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    let ids = app
        .add("acme", &admin, &["a@acme.example", "b@acme.example"])
        .await;
    let g = create_group(&app, "acme", &admin, "Tutors").await;

    let r = app
        .post(
            "/api/v1/orgs/acme/groups",
            &admin,
            json!({"name": "tutors"}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "group_exists");
    let r = app
        .post("/api/v1/orgs/acme/groups", &admin, json!({"name": "  "}))
        .await;
    assert_problem(&r, 422);

    let missing = uuid::Uuid::now_v7();
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/groups/{g}/members"),
            &admin,
            json!({"member_ids": [ids[0], ids[1], ids[0], missing]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let outcomes: Vec<&str> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["added", "added", "skipped_already", "skipped_not_found"]
    );
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/groups/{g}"),
            &admin,
            json!({"name": "Senior tutors"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.group_members("acme", "Senior tutors").await,
        ["a@acme.example", "b@acme.example"]
    );
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/groups/{g}/members/remove"),
            &admin,
            json!({"member_ids": [ids[1]]}),
        )
        .await;
    assert_eq!(r.body["changed"], 1, "{}", r.text);
    assert_eq!(
        app.group_members("acme", "Senior tutors").await,
        ["a@acme.example"]
    );

    // Another org's admin sees no such group, whatever the method.
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/v1/orgs/other/groups/{g}"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/orgs/other/groups/{g}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/other/groups/{g}/members"),
            Some(json!({"member_ids": [ids[0]]})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/orgs/acme/groups/{g}"),
            Some(json!({"name": "x"})),
        ),
    ] {
        let r = app.call(method, &path, Some(&other), body).await;
        assert_problem(&r, 404);
    }
    let r = app
        .delete(&format!("/api/v1/orgs/acme/groups/{g}"), &admin)
        .await;
    assert_eq!(r.status, 204);
    let list = app.get("/api/v1/orgs/acme/groups", &admin).await;
    assert_eq!(list.body["items"], json!([]), "{}", list.text);
}

#[tokio::test]
async fn a_scim_clients_group_is_its_own() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app.add("acme", &admin, &["a@acme.example"]).await;
    let t = app
        .post(
            "/api/v1/orgs/acme/tokens",
            OPERATOR,
            json!({"kind": "scim", "name": "Okta"}),
        )
        .await;
    let scim = t.body["token"].as_str().unwrap().to_owned();
    let r = app
        .client
        .post(app.url("/scim/v2/Groups"))
        .bearer_auth(&scim)
        .header("content-type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let g: Value = r.json().await.unwrap();
    let g = g["id"].as_str().unwrap();

    let before = app.snapshot("acme").await;
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/v1/orgs/acme/groups/{g}"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/orgs/acme/groups/{g}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/acme/groups/{g}/members"),
            Some(json!({"member_ids": [ids[0]]})),
        ),
    ] {
        let r = app.call(method, &path, Some(&admin), body).await;
        assert_problem(&r, 409);
        assert_eq!(r.body["code"], "group_kept", "{}", r.text);
        assert!(r.text.contains("SCIM client"), "{}", r.text);
    }
    // Nor may an invitation put someone into it.
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "n@acme.example", "groups": ["Engineering"]}]}),
        )
        .await;
    assert_problem(&r, 422);
    assert!(r.text.contains("kept by the SCIM client"), "{}", r.text);
    assert_eq!(app.snapshot("acme").await, before);
    let list = app.get("/api/v1/orgs/acme/groups", &admin).await;
    assert_eq!(list.body["items"][0]["kept_by"], "scim", "{}", list.text);
}
