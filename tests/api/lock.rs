//! The integration lock: an integration-managed org refuses manual removal with a 409 naming the
//! integration; resend and viewing stay allowed.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn manual_removal_is_refused_in_managed_orgs() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add("acme", &admin, &["ada@acme.example", "bo@acme.example"])
        .await;
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": "Okta"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["managed_by"], "Okta");
    let before = app.snapshot("acme").await;

    let r = app
        .delete(&format!("/api/v1/orgs/acme/members/{}", ids[0]), &admin)
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "integration_managed");
    assert_eq!(r.body["integration"], "Okta");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("Okta") && detail.contains("remove the person in Okta"),
        "{detail}"
    );
    let r = app
        .post(
            "/api/v1/orgs/acme/members/remove",
            &admin,
            json!({"member_ids": ids}),
        )
        .await;
    assert_problem(&r, 409);
    // The operator is bound by the lock too: removal belongs in the integration.
    let r = app
        .delete(&format!("/api/v1/orgs/acme/members/{}", ids[0]), OPERATOR)
        .await;
    assert_problem(&r, 409);
    assert_eq!(app.snapshot("acme").await, before, "nothing changed");

    // Viewing and resending (after the cool-down) still work.
    app.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(
        app.get("/api/v1/orgs/acme/members", &admin).await.status,
        200
    );
    let r = app
        .post(
            "/api/v1/orgs/acme/members/resend-invites",
            &admin,
            json!({"member_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(r.body["sent"], 1, "{}", r.text);

    // Clearing the flag lifts the lock.
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": null}))
        .await;
    assert!(r.body["managed_by"].is_null());
    let r = app
        .delete(&format!("/api/v1/orgs/acme/members/{}", ids[0]), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}
