//! Cancelled invitations and disabled members: states of their own, with their own list views
//! and counts, reversible where the issue says so, refused where they do not apply, and locked
//! in managed orgs like removal.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{OPERATOR, Res, TestApp, assert_problem, spawn_app};

async fn change(app: &TestApp, token: &str, what: &str, ids: &[&str]) -> Res {
    app.post(
        &format!("/api/v1/orgs/acme/members/{what}"),
        token,
        json!({"member_ids": ids}),
    )
    .await
}

fn outcomes(r: &Res) -> Vec<String> {
    r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["outcome"].as_str().unwrap().to_owned())
        .collect()
}

async fn emails_in_view(app: &TestApp, token: &str, view: &str) -> Vec<String> {
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/members?access={view}&sort=email"),
            token,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_cancelled_invitation_is_kept_apart_dies_at_once_and_can_be_made_again() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add("acme", &admin, &["a@acme.example", "b@acme.example"])
        .await;
    let (a, b) = (ids[0].to_string(), ids[1].to_string());
    let token = app.invitation_token("acme", "a@acme.example").await;
    app.accept("acme", "b@acme.example", None).await;

    let r = change(&app, &admin, "cancel-invitations", &[&a, &b]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(outcomes(&r), ["cancelled", "skipped_state"]);
    assert!(
        r.body["results"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("enrolled"),
        "{}",
        r.text
    );
    let m = app
        .get(&format!("/api/v1/orgs/acme/members/{a}"), &admin)
        .await;
    assert_eq!(m.body["access"], "cancelled");
    assert_eq!(m.body["activity"]["kind"], "cancelled");
    assert!(m.body["cancelled_at"].is_string(), "{}", m.text);

    // The emailed link dies at once; nothing queued for them goes out.
    let r = app
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_problem(&r, 410);
    assert!(r.text.contains("cancelled"), "{}", r.text);
    let queued: Vec<_> = app
        .outbox("acme")
        .await
        .into_iter()
        .filter(|o| o.to_address == "a@acme.example" && o.sent_at.is_none())
        .collect();
    assert!(
        queued.iter().all(|o| o.cancelled_at.is_some()),
        "{queued:?}"
    );

    // Its own view and count; not among everyone with access; not removable, not resent.
    assert_eq!(
        emails_in_view(&app, &admin, "cancelled").await,
        ["a@acme.example"]
    );
    assert!(
        !emails_in_view(&app, &admin, "all")
            .await
            .contains(&"a@acme.example".to_owned())
    );
    let counts = app.get("/api/v1/orgs/acme/members/counts", &admin).await;
    assert_eq!(counts.body["cancelled"], 1, "{}", counts.text);
    assert_eq!(counts.body["removed"], 0);
    let r = change(&app, &admin, "remove", &[&a]).await;
    assert_eq!(outcomes(&r), ["skipped_cancelled"]);
    app.clock.advance(chrono::Duration::hours(1));
    let r = change(&app, &admin, "resend-invites", &[&a]).await;
    assert_eq!(outcomes(&r), ["skipped_cancelled"]);

    // Inviting the person again is a new invitation that works.
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "a@acme.example"}]}),
        )
        .await;
    assert_eq!(r.body["results"][0]["outcome"], "reinvited", "{}", r.text);
    assert_eq!(r.body["results"][0]["access"], "invited");
    let r = app.accept("acme", "a@acme.example", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["access"], "enrolled");

    // The audit log says who cancelled.
    let audit = app.get("/api/v1/orgs/acme/audit?limit=100", &admin).await;
    assert!(
        audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "member.invitation_cancelled"),
        "{}",
        audit.text
    );
}

#[tokio::test]
async fn a_disabled_member_loses_access_until_enabled() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add("acme", &admin, &["a@acme.example", "b@acme.example"])
        .await;
    let (a, b) = (ids[0].to_string(), ids[1].to_string());
    app.accept("acme", "a@acme.example", None).await;
    let owner = app
        .get("/api/v1/orgs/acme/members?role=owner", &admin)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = change(&app, &admin, "disable", &[&a, &b, &owner]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(outcomes(&r), ["disabled", "skipped_state", "skipped_state"]);
    assert_eq!(
        emails_in_view(&app, &admin, "disabled").await,
        ["a@acme.example"]
    );
    let counts = app.get("/api/v1/orgs/acme/members/counts", &admin).await;
    assert_eq!(counts.body["disabled"], 1, "{}", counts.text);
    assert_eq!(counts.body["enrolled"], 0);

    app.clock.advance(chrono::Duration::hours(1));
    let r = change(&app, &admin, "resend-invites", &[&a]).await;
    assert_eq!(outcomes(&r), ["skipped_disabled"]);
    let r = change(&app, &admin, "enable", &[&a, &b]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(outcomes(&r), ["enabled", "skipped_state"]);
    let m = app
        .get(&format!("/api/v1/orgs/acme/members/{a}"), &admin)
        .await;
    assert_eq!(m.body["access"], "enrolled");
    assert!(m.body.get("disabled_at").is_none(), "{}", m.text);

    // A disabled member can still be removed.
    change(&app, &admin, "disable", &[&a]).await;
    let r = change(&app, &admin, "remove", &[&a]).await;
    assert_eq!(outcomes(&r), ["removed"]);

    // A member still disabled when a SCIM client arrives is shown inactive there.
    let c = app.add("acme", &admin, &["c@acme.example"]).await[0].to_string();
    app.accept("acme", "c@acme.example", None).await;
    change(&app, &admin, "disable", &[&c]).await;
    let t = app
        .post(
            "/api/v1/orgs/acme/tokens",
            OPERATOR,
            json!({"kind": "scim", "name": "Okta"}),
        )
        .await;
    let scim = t.body["token"].as_str().unwrap();
    let u: Value = app
        .client
        .get(app.url(&format!("/scim/v2/Users/{c}")))
        .bearer_auth(scim)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(u["active"], false, "{u}");
}

#[tokio::test]
async fn cancelling_and_disabling_are_locked_in_a_managed_org_and_bad_requests_change_nothing() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app.add("acme", &admin, &["a@acme.example"]).await;
    let a = ids[0].to_string();
    let before = app.snapshot("acme").await;
    for body in [
        json!({"member_ids": []}),
        json!({"member_ids": ["x"]}),
        json!({}),
    ] {
        for what in ["cancel-invitations", "disable", "enable"] {
            let r = app
                .post(
                    &format!("/api/v1/orgs/acme/members/{what}"),
                    &admin,
                    body.clone(),
                )
                .await;
            assert!(r.status.is_client_error(), "{what} {body}: {}", r.text);
        }
    }
    assert_eq!(
        app.snapshot("acme").await,
        before,
        "refused requests change nothing"
    );
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": "Okta"}))
        .await;
    assert_eq!(r.status, 200);
    let before_lock = app.snapshot("acme").await;
    for what in ["cancel-invitations", "disable", "enable"] {
        let r = change(&app, &admin, what, &[&a]).await;
        assert_problem(&r, 409);
        assert_eq!(r.body["code"], "integration_managed", "{}", r.text);
    }
    assert_eq!(app.snapshot("acme").await, before_lock);
    // Another org's admin cannot reach these members.
    let other = app.org_with_admin("other").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members/cancel-invitations",
            &other,
            json!({"member_ids": [a]}),
        )
        .await;
    assert_problem(&r, 404);
}
