//! Phone numbers (admin API and SCIM `phoneNumbers`), entitlements on groups, and a member's
//! full detail: status trail, claims, answers, ledger, audit — and that another org sees none
//! of it.

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn put_phones(
    app: &TestApp,
    org: &str,
    token: &str,
    id: impl std::fmt::Display,
    phones: Value,
) -> Res {
    app.call(
        Method::PUT,
        &format!("/api/v1/orgs/{org}/members/{id}/phones"),
        Some(token),
        Some(json!({ "phones": phones })),
    )
    .await
}

async fn detail(app: &TestApp, org: &str, token: &str, id: impl std::fmt::Display) -> Value {
    let r = app
        .get(&format!("/api/v1/orgs/{org}/members/{id}"), token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// The events of a member's status trail, in order.
fn events(d: &Value) -> Vec<String> {
    d["status_trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["event"].as_str().unwrap().to_owned())
        .collect()
}

async fn member_actions(
    app: &TestApp,
    org: &str,
    token: &str,
    id: impl std::fmt::Display,
) -> Vec<String> {
    let r = app
        .get(
            &format!("/api/v1/orgs/{org}/audit?member={id}&limit=200"),
            token,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn create_group(app: &TestApp, org: &str, token: &str, name: &str) -> String {
    let r = app
        .post(
            &format!("/api/v1/orgs/{org}/groups"),
            token,
            json!({ "name": name }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn phones_are_set_on_add_and_by_put_and_every_bad_list_is_refused_whole() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "ada@acme.example", "phones": [
                {"type": "Work", "value": " +1 (555) 010-0199 ext. 12 ", "primary": true},
                {"type": "mobile", "value": "020 7946 0018"}
            ]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["results"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = detail(&app, "acme", &admin, &id).await;
    assert_eq!(
        d["phones"],
        json!([
            {"type": "work", "value": "+1 (555) 010-0199 ext. 12", "primary": true},
            {"type": "mobile", "value": "020 7946 0018", "primary": false}
        ])
    );
    // Everything the member view had is still there.
    assert_eq!(d["member_email"], "ada@acme.example");
    assert_eq!(d["access"], "invited");
    assert_eq!(d["invite_count"], 1);

    let r = put_phones(
        &app,
        "acme",
        &admin,
        &id,
        json!([{"type": "Front desk", "value": "tel:+44-20-7946-0018;ext=5", "primary": true}]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{id}/phones"), &admin)
        .await;
    assert_eq!(
        r.body["phones"],
        json!([{"type": "Front desk", "value": "tel:+44-20-7946-0018;ext=5", "primary": true}])
    );
    assert!(
        member_actions(&app, "acme", &admin, &id)
            .await
            .contains(&"member.phones_set".to_owned())
    );

    // Every refusal names the field and changes nothing.
    let before = app.snapshot("acme").await;
    for (phones, field) in [
        (json!([{"value": "call me"}]), "phones[0].value"),
        (
            json!([{"value": "+1 555 0100", "type": "<b>"}]),
            "phones[0].type",
        ),
        (
            json!([{"value": "+1 555 0100", "primary": true}, {"value": "+1 555 0101", "primary": true}]),
            "phones[1].primary",
        ),
        (
            json!([{"value": "+1 555 0100"}, {"value": "+15550100"}]),
            "phones[1].value",
        ),
        (json!([{"value": "12"}]), "phones[0].value"),
        (json!([{"value": "+1 555 0100 x"}]), "phones[0].value"),
        (
            json!(
                (0..51)
                    .map(|i| json!({"value": format!("+1 555 {i:04}")}))
                    .collect::<Vec<_>>()
            ),
            "phones",
        ),
    ] {
        let r = put_phones(&app, "acme", &admin, &id, phones).await;
        assert_problem(&r, 422);
        assert!(r.text.contains(field), "{field}: {}", r.text);
    }
    let r = put_phones(
        &app,
        "acme",
        &admin,
        &id,
        json!([{"number": "+1 555 0100"}]),
    )
    .await;
    assert_problem(&r, 422);
    assert_eq!(
        r.body["errors"][0]["field"], "phones[0].number",
        "{}",
        r.text
    );
    assert!(r.text.contains("number"), "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "bo@acme.example", "phones": [{"value": "+1 555 0100"}, {"value": "nope"}]}]}),
        )
        .await;
    assert_problem(&r, 422);
    assert!(r.text.contains("members[0].phones[1].value"), "{}", r.text);
    assert_problem(
        &put_phones(&app, "acme", &admin, Uuid::now_v7(), json!([])).await,
        404,
    );
    assert_eq!(app.snapshot("acme").await, before, "nothing changed");

    // An empty list clears them.
    let r = put_phones(&app, "acme", &admin, &id, json!([])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(detail(&app, "acme", &admin, &id).await["phones"], json!([]));

    // Erasure wipes them: from the table and from the audit entries that held them.
    let r = put_phones(&app, "acme", &admin, &id, json!([{"value": "+1 555 0177"}])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{id}/erase"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(detail(&app, "acme", &admin, &id).await["phones"], json!([]));
    for number in ["555 0177", "7946 0018", "010-0199"] {
        assert_eq!(
            crate::erase::occurrences(&app, number).await,
            Vec::<String>::new(),
            "{number}"
        );
    }
}

#[tokio::test]
async fn scim_phone_numbers_are_kept_in_the_members_phones() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/tokens",
            OPERATOR,
            json!({"kind": "scim", "name": "Okta"}),
        )
        .await;
    let scim = r.body["token"].as_str().unwrap().to_owned();
    let r = app
        .scim(
            Method::POST,
            "/Users",
            &scim,
            Some(json!({
                "schemas": [USER],
                "userName": "ada@acme.example",
                "emails": [{"value": "ada@acme.example", "primary": true}],
                "phoneNumbers": [{"value": "+1 555 0100", "type": "work", "primary": true}]
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.body["phoneNumbers"],
        json!([{"value": "+1 555 0100", "type": "work", "primary": true}])
    );
    let d = detail(&app, "acme", &admin, &id).await;
    assert_eq!(
        d["phones"],
        json!([{"type": "work", "value": "+1 555 0100", "primary": true}])
    );

    // PATCH through a value filter (Entra ID) changes the stored number; `add` on a type the
    // user lacks adds one.
    let path = format!("/Users/{id}");
    let r = app
        .scim(Method::PATCH, &path, &scim, Some(json!({"schemas": [PATCH], "Operations": [
            {"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 555 0199"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+44 20 7946 0018"}
        ]})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let want = json!([
        {"type": "work", "value": "+1 555 0199", "primary": true},
        {"type": "mobile", "value": "+44 20 7946 0018", "primary": false}
    ]);
    assert_eq!(detail(&app, "acme", &admin, &id).await["phones"], want);
    let r = app.scim(Method::GET, &path, &scim, None).await;
    assert_eq!(
        r.body["phoneNumbers"],
        json!([
            {"type": "work", "value": "+1 555 0199", "primary": true},
            {"type": "mobile", "value": "+44 20 7946 0018"}
        ])
    );
    // Filters on phone numbers look in the table (not in the stored document).
    let q = url::form_urlencoded::byte_serialize(br#"phoneNumbers.value co "0199""#)
        .collect::<String>();
    let r = app
        .scim(Method::GET, &format!("/Users?filter={q}"), &scim, None)
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);

    // An admin's change shows over SCIM, with a new version.
    let version = r.body["Resources"][0]["meta"]["version"].clone();
    let r = put_phones(
        &app,
        "acme",
        &admin,
        &id,
        json!([{"type": "home", "value": "+1 555 0111"}]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.scim(Method::GET, &path, &scim, None).await;
    assert_eq!(
        r.body["phoneNumbers"],
        json!([{"type": "home", "value": "+1 555 0111"}])
    );
    assert_ne!(r.body["meta"]["version"], version);

    // PUT replaces them; a bad number is refused and changes nothing.
    let mut doc = r.body.clone();
    doc["phoneNumbers"] = json!([{"value": "+1 555 0122", "type": "pager"}]);
    let r = app.scim(Method::PUT, &path, &scim, Some(doc.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        detail(&app, "acme", &admin, &id).await["phones"],
        json!([{"type": "pager", "value": "+1 555 0122", "primary": false}])
    );
    let before = app.snapshot("acme").await;
    doc["phoneNumbers"] = json!([{"value": "call me maybe"}]);
    let r = app.scim(Method::PUT, &path, &scim, Some(doc)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["scimType"], "invalidValue");
    assert!(r.text.contains("phoneNumbers[0].value"), "{}", r.text);
    assert_eq!(app.snapshot("acme").await, before);

    // Who set them is audited.
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/audit?member={id}&limit=200"),
            &admin,
        )
        .await;
    let by_scim = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "member.phones_set" && e["actor"]["kind"] == "scim_client")
        .count();
    assert!(by_scim >= 2, "{}", r.text);
}

#[tokio::test]
async fn entitlements_belong_to_groups_and_members_have_them_through_their_groups() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app.add("acme", &admin, &["ada@acme.example"]).await;
    let safety = create_group(&app, "acme", &admin, "Safety").await;
    let base = format!("/api/v1/orgs/acme/groups/{safety}/entitlements");

    let r = app
        .post(
            &base,
            &admin,
            json!({"name": "First aid", "external_ref": "LMS-42"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let first_aid = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["external_ref"], "LMS-42");
    let r = app
        .post(&base, &admin, json!({"name": "Fire warden"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Refusals: a name the group has (any case), no name, an unknown field, a missing group or
    // entitlement. None changes anything.
    let before = app.snapshot("acme").await;
    let r = app.post(&base, &admin, json!({"name": "FIRST AID"})).await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "entitlement_exists");
    assert_problem(&app.post(&base, &admin, json!({"name": "  "})).await, 422);
    assert_problem(
        &app.post(&base, &admin, json!({"name": "x\u{1}"})).await,
        422,
    );
    let r = app
        .post(&base, &admin, json!({"name": "A", "kind": "course"}))
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "kind", "{}", r.text);
    let missing = format!("/api/v1/orgs/acme/groups/{}/entitlements", Uuid::now_v7());
    assert_problem(&app.post(&missing, &admin, json!({"name": "A"})).await, 404);
    assert_problem(&app.get(&missing, &admin).await, 404);
    assert_problem(
        &app.delete(&format!("{base}/{}", Uuid::now_v7()), &admin)
            .await,
        404,
    );
    assert_eq!(app.snapshot("acme").await, before);

    let r = app.get(&base, &admin).await;
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Fire warden", "First aid"]);

    // A member in the group has them.
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/groups/{safety}/members"),
            &admin,
            json!({"member_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = detail(&app, "acme", &admin, ids[0]).await;
    assert_eq!(d["groups"][0]["name"], "Safety");
    assert_eq!(d["groups"][0]["entitlements"].as_array().unwrap().len(), 2);
    assert_eq!(
        d["entitlements"],
        json!([
            {"id": d["entitlements"][0]["id"], "name": "Fire warden", "external_ref": null, "group_id": safety, "group": "Safety"},
            {"id": first_aid, "name": "First aid", "external_ref": "LMS-42", "group_id": safety, "group": "Safety"}
        ])
    );

    // Removed: gone from the group and from the member.
    let r = app.delete(&format!("{base}/{first_aid}"), &admin).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_problem(
        &app.delete(&format!("{base}/{first_aid}"), &admin).await,
        404,
    );
    let d = detail(&app, "acme", &admin, ids[0]).await;
    assert_eq!(d["entitlements"].as_array().unwrap().len(), 1);

    // A group a SCIM client keeps takes entitlements; its membership stays the client's.
    let r = app
        .post(
            "/api/v1/orgs/acme/tokens",
            OPERATOR,
            json!({"kind": "scim", "name": "Okta"}),
        )
        .await;
    let scim = r.body["token"].as_str().unwrap().to_owned();
    let r = app
        .scim(Method::POST, "/Groups", &scim, Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Pilots"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let pilots = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/groups/{pilots}/entitlements"),
            &admin,
            json!({"name": "Type rating"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/groups/{pilots}/members"),
            &admin,
            json!({"member_ids": [ids[0]]}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "group_kept");

    // Deleting a group takes its entitlements with it.
    let r = app
        .delete(&format!("/api/v1/orgs/acme/groups/{safety}"), &admin)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let d = detail(&app, "acme", &admin, ids[0]).await;
    assert_eq!(d["groups"], json!([]));
    assert_eq!(d["entitlements"], json!([]));

    // Audited on the group.
    let r = app.get("/api/v1/orgs/acme/audit?limit=200", &admin).await;
    let actions: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "group.entitlement_added")
            .count(),
        3
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "group.entitlement_removed")
            .count(),
        1
    );
}

#[tokio::test]
async fn the_status_trail_shows_each_step_in_order_with_who_did_it() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let id = app.add("acme", &admin, &["ada@acme.example"]).await[0];
    // A week on, the automatic reminder.
    app.clock.advance(Duration::days(7));
    // The reminder worker may queue it first; either way it is queued once.
    app.state.roster.send_due_reminders().await.unwrap();
    wait_for(10, "the reminder", || async {
        app.outbox("acme")
            .await
            .iter()
            .any(|r| r.to_address == "ada@acme.example" && r.kind == "reminder")
    })
    .await;
    // An admin sends it again.
    app.clock.advance(Duration::hours(1));
    let r = app
        .post(
            "/api/v1/orgs/acme/members/resend-invites",
            &admin,
            json!({"member_ids": [id]}),
        )
        .await;
    assert_eq!(r.body["sent"], 1, "{}", r.text);
    app.clock.advance(Duration::hours(1));
    let r = app.accept("acme", "ada@acme.example", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for step in ["disable", "enable"] {
        app.clock.advance(Duration::hours(1));
        let r = app
            .post(
                &format!("/api/v1/orgs/acme/members/{step}"),
                &admin,
                json!({"member_ids": [id]}),
            )
            .await;
        assert_eq!(r.body["changed"], 1, "{}", r.text);
    }
    // Noise that is no step: activity, a name change.
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{id}/activity"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{id}"),
            &admin,
            json!({"given_name": "Ada"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let d = detail(&app, "acme", &admin, id).await;
    assert_eq!(
        events(&d),
        [
            "invited",
            "reminder_sent",
            "invitation_resent",
            "enrolled",
            "disabled",
            "enabled"
        ]
    );
    assert_eq!(d["status_trail_complete"], true);
    let trail = d["status_trail"].as_array().unwrap();
    let by: Vec<&str> = trail
        .iter()
        .map(|s| s["by"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        by,
        [
            "admin_token",
            "system",
            "admin_token",
            "invitee",
            "admin_token",
            "admin_token"
        ]
    );
    assert_eq!(trail[0]["by"]["label"], "admin token test");
    let access: Vec<&str> = trail
        .iter()
        .map(|s| s["access"].as_str().unwrap())
        .collect();
    assert_eq!(
        access,
        [
            "invited", "invited", "invited", "enrolled", "disabled", "enrolled"
        ]
    );
    let times: Vec<&str> = trail.iter().map(|s| s["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
    let reminded = chrono::DateTime::parse_from_rfc3339(trail[1]["at"].as_str().unwrap()).unwrap();
    assert_eq!(reminded, start_time() + Duration::days(7));

    // Removed, and added again: the trail goes on.
    let r = app
        .delete(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.add("acme", &admin, &["ada@acme.example"]).await;
    let d = detail(&app, "acme", &admin, id).await;
    assert_eq!(&events(&d)[6..], ["removed", "reenrolled"]);

    // The recent audit entries: newest first, bounded, with the way to read on.
    let recent = d["recent_audit"]["items"].as_array().unwrap();
    assert_eq!(recent[0]["action"], "member.readded");
    assert!(recent.iter().any(|e| e["action"] == "member.active"));
    assert!(recent.iter().all(|e| e["subject"]["id"] == id.to_string()));
    assert!(d["recent_audit"]["next_cursor"].is_null(), "all shown");
}

#[tokio::test]
async fn recent_audit_pages_on_through_the_audit_list() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let id = app.add("acme", &admin, &["ada@acme.example"]).await[0];
    app.accept("acme", "ada@acme.example", None).await;
    for _ in 0..25 {
        app.clock.advance(Duration::minutes(1));
        let r = app
            .post(
                &format!("/api/v1/orgs/acme/members/{id}/activity"),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let d = detail(&app, "acme", &admin, id).await;
    let items = d["recent_audit"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 20);
    let cursor = d["recent_audit"]["next_cursor"].as_str().unwrap();
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/audit?member={id}&cursor={cursor}"),
            &admin,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rest: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // 27 entries in all: added, enrolled and 25 activities.
    assert_eq!(rest.len(), 7, "{rest:?}");
    assert_eq!(rest[5..], ["member.enrolled", "member.added"]);
    assert_problem(
        &app.get("/api/v1/orgs/acme/audit?member=nope", &admin).await,
        400,
    );
    // The trail is untouched by activity.
    assert_eq!(events(&d), ["invited", "enrolled"]);
}

#[tokio::test]
async fn claims_name_the_sources_and_scim_clients_that_hold_a_member() {
    use crate::sync::{csv_source, spawn_with_sources, temp_dir};
    let dir = temp_dir();
    let file = dir.join("hr.csv");
    std::fs::write(
        &file,
        "ID,MemberID,FirstName,LastName,IsActive,IsAuthRep\r\n7,ada@acme.example,Ada,L,True,False\r\n",
    )
    .unwrap();
    let src = csv_source(
        "hr",
        "acme",
        &format!("path = {:?}", file.display().to_string()),
        "",
    );
    let app = spawn_with_sources(&["acme"], &src).await;
    let run = app.run_source("acme", "hr").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let r = app
        .get("/api/v1/orgs/acme/members?email=ada@acme.example", OPERATOR)
        .await;
    let id = r.body["items"][0]["id"].as_str().unwrap().to_owned();

    let d = detail(&app, "acme", OPERATOR, &id).await;
    assert_eq!(d["claims"]["sources"][0]["source"], "hr");
    assert_eq!(d["claims"]["sources"][0]["external_id"], "7");
    assert_eq!(d["claims"]["sources"][0]["claiming"], true);
    assert!(d["claims"]["scim"].is_null());
    assert_eq!(d["status_trail"][0]["by"]["kind"], "sync");
    assert_eq!(d["status_trail"][0]["by"]["label"], "sync of hr");

    // A SCIM client takes the same person over (by email): it claims them too.
    let r = app
        .post(
            "/api/v1/orgs/acme/tokens",
            OPERATOR,
            json!({"kind": "scim", "name": "Okta"}),
        )
        .await;
    let scim = r.body["token"].as_str().unwrap().to_owned();
    let r = app
        .scim(
            Method::POST,
            "/Users",
            &scim,
            Some(json!({
                "schemas": [USER], "userName": "ada@acme.example", "externalId": "okta-1",
                "emails": [{"value": "ada@acme.example", "primary": true}]
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["id"], id.as_str());
    let d = detail(&app, "acme", OPERATOR, &id).await;
    let scim_claim = &d["claims"]["scim"];
    assert_eq!(scim_claim["external_id"], "okta-1");
    assert_eq!(scim_claim["clients"][0]["label"], "SCIM client Okta");
    assert_eq!(
        d["claims"]["sources"].as_array().unwrap().len(),
        1,
        "the SCIM link is under scim"
    );

    // Deleted over SCIM: the client no longer holds the member.
    let r = app
        .scim(Method::DELETE, &format!("/Users/{id}"), &scim, None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(detail(&app, "acme", OPERATOR, &id).await["claims"]["scim"].is_null());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn answers_points_and_payments_are_in_the_detail() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .call(
            Method::PUT,
            "/api/v1/orgs/acme/join",
            Some(&admin),
            Some(json!({"enabled": true, "slug": "acme-club", "allowed_domains": ["acme.example"],
                "questions": [{"id": "why", "label": "Why?", "kind": "short_text", "required": true}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .call(
            Method::POST,
            "/api/v1/join/acme-club",
            None,
            Some(json!({"email": "ada@acme.example", "answers": {"why": "To help"}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let text = app.delivered_email("acme", "ada@acme.example").await;
    let start = text.find("/join/verify/").unwrap() + "/join/verify/".len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let r = app
        .call(
            Method::POST,
            "/api/v1/join/verify",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(r.body["status"], "joined", "{}", r.text);
    let r = app
        .get("/api/v1/orgs/acme/members?email=ada@acme.example", &admin)
        .await;
    let id = r.body["items"][0]["id"].as_str().unwrap().to_owned();

    for (path, body) in [
        (
            "/api/v1/orgs/acme/points/moves",
            json!({"kind": "pool_add", "amount": 100, "reason": "budget", "idempotency_key": "k1"}),
        ),
        (
            "/api/v1/orgs/acme/points/moves",
            json!({"kind": "give", "member_id": id, "amount": 30, "reason": "welcome", "idempotency_key": "k2"}),
        ),
    ] {
        let r = app.post(path, &admin, body).await;
        assert!(r.status.is_success(), "{}", r.text);
    }
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/orgs/acme/members/{id}/fee"),
            Some(&admin),
            Some(json!({"monthly_fee": 2500, "currency": "EUR"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let paid_on = start_time().date_naive().to_string();
    for amount in [2500, 1000] {
        let r = app
            .post(
                &format!("/api/v1/orgs/acme/members/{id}/payments"),
                &admin,
                json!({"amount": amount, "currency": "EUR", "paid_on": paid_on, "note": "March"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }

    let d = detail(&app, "acme", &admin, &id).await;
    assert_eq!(events(&d), ["joined"]);
    assert_eq!(d["status_trail"][0]["by"]["kind"], "applicant");
    assert_eq!(d["applications"][0]["answers"], json!({"why": "To help"}));
    assert_eq!(d["applications"][0]["status"], "joined");
    let l = &d["ledger"];
    assert_eq!(
        (
            l["points"].clone(),
            l["monthly_fee"].clone(),
            l["currency"].clone(),
            l["total_paid"].clone()
        ),
        (json!(30), json!(2500), json!("EUR"), json!(3500))
    );
    let amounts: Vec<i64> = l["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [1000, 2500], "newest first");
    assert!(l["payments_next_cursor"].is_null());
    // The same figures as the member view's.
    assert_eq!(d["points"], 30);
    assert_eq!(d["total_paid"], 3500);
}

#[tokio::test]
async fn another_org_sees_no_detail_phones_or_entitlements() {
    let app = spawn_app().await;
    let a = app.org_with_admin("acme").await;
    let b = app.org_with_admin("bolt").await;
    let id = app.add("acme", &a, &["ada@acme.example"]).await[0];
    let r = put_phones(&app, "acme", &a, id, json!([{"value": "+1 555 0100"}])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let group = create_group(&app, "acme", &a, "Safety").await;
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/groups/{group}/entitlements"),
            &a,
            json!({"name": "First aid"}),
        )
        .await;
    let eid = r.body["id"].as_str().unwrap().to_owned();
    let before = app.snapshot("acme").await;

    // Org B's admin: acme is "not found", and acme's ids are not found under bolt.
    for org in ["acme", "bolt"] {
        assert_problem(
            &app.get(&format!("/api/v1/orgs/{org}/members/{id}"), &b)
                .await,
            404,
        );
        assert_problem(
            &app.get(&format!("/api/v1/orgs/{org}/members/{id}/phones"), &b)
                .await,
            404,
        );
        assert_problem(&put_phones(&app, org, &b, id, json!([])).await, 404);
        let ents = format!("/api/v1/orgs/{org}/groups/{group}/entitlements");
        assert_problem(&app.get(&ents, &b).await, 404);
        assert_problem(&app.post(&ents, &b, json!({"name": "Mine"})).await, 404);
        assert_problem(&app.delete(&format!("{ents}/{eid}"), &b).await, 404);
    }
    let r = app
        .get(&format!("/api/v1/orgs/bolt/audit?member={id}"), &b)
        .await;
    assert_eq!(r.body["items"], json!([]), "{}", r.text);
    assert_eq!(app.snapshot("acme").await, before, "nothing changed");
    let d = detail(&app, "acme", &a, id).await;
    assert_eq!(d["phones"][0]["value"], "+1 555 0100");
}

#[tokio::test]
async fn the_cli_shows_a_member_and_keeps_phones_and_entitlements() {
    let cli = crate::cli::Cli::new().await;
    let (code, _, err) = cli
        .run(&[
            "org",
            "create",
            "acme",
            "--name",
            "Acme",
            "--owner-email",
            "boss@acme.example",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli.run(&["members", "--org", "acme", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let owner: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let owner = owner["id"].as_str().unwrap().to_owned();

    let (code, out, err) = cli
        .run(&[
            "members",
            "phones",
            "acme",
            &owner,
            "--phone",
            "work=+1 555 0100",
            "--phone",
            "+44 20 7946 0018",
            "--primary",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "work\t+1 555 0100\tprimary\n-\t+44 20 7946 0018\n");
    let (code, _, err) = cli
        .run(&[
            "members",
            "phones",
            "acme",
            &owner,
            "--phone",
            "work=call me",
        ])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("phones[0].value"), "{err}");

    let store = rosterd::store::Store::connect(&cli.url, 2).await.unwrap();
    let roster = rosterd::roster::Roster::new(
        store,
        std::sync::Arc::new(rosterd::clock::SystemClock),
        rosterd::roster::InviteSettings::from_config(&rosterd::config::Config::default()),
    );
    let org = roster.org_by_slug("acme").await.unwrap().unwrap();
    let g = roster
        .create_group(org.id, &rosterd::roster::Actor::Cli, "Safety")
        .await
        .unwrap();
    roster
        .change_group_members(
            org.id,
            &rosterd::roster::Actor::Cli,
            g.id,
            &[owner.parse().unwrap()],
            true,
        )
        .await
        .unwrap();
    roster.store.close().await;

    let (code, out, err) = cli
        .run(&[
            "entitlements",
            "add",
            "acme",
            "Safety",
            "First aid",
            "--external-ref",
            "LMS-42",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let e: Value = serde_json::from_str(&out).unwrap();
    let (code, _, err) = cli
        .run(&["entitlements", "add", "acme", "Safety", "first aid"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("already has"), "{err}");
    let (code, out, _) = cli.run(&["entitlements", "list", "acme", "Safety"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!("{}\tFirst aid\tLMS-42\n", e["id"].as_str().unwrap())
    );

    let (code, out, err) = cli.run(&["members", "show", "acme", &owner]).await;
    assert_eq!(code, 0, "{err}");
    for part in [
        "boss@acme.example",
        "role     owner",
        "Phones\n  work     +1 555 0100 (primary)\n  -        +44 20 7946 0018\n",
        "Safety\n    - First aid [LMS-42]",
        "Status trail\n",
        "Points and money\n  points      0",
        "member.phones_set",
    ] {
        assert!(out.contains(part), "{part:?} in:\n{out}");
    }
    let (code, out, _) = cli
        .run(&["members", "show", "acme", &owner, "--json"])
        .await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["entitlements"][0]["name"], "First aid");

    let (code, _, _) = cli
        .run(&[
            "entitlements",
            "remove",
            "acme",
            "Safety",
            e["id"].as_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0);
    let (_, out, _) = cli.run(&["entitlements", "list", "acme", "Safety"]).await;
    assert_eq!(out, "");
    let (code, _, err) = cli
        .run(&["members", "show", "acme", &Uuid::now_v7().to_string()])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
}
