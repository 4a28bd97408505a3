//! Owner rules: exactly one owner, never removed or demoted, ownership moves by transfer.

use serde_json::json;

use crate::helpers::*;

async fn owner_id(app: &TestApp, admin: &str) -> String {
    let r = app.get("/api/v1/orgs/acme/members?role=owner", admin).await;
    r.body["items"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_owner_cannot_be_removed_or_demoted() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let owner = owner_id(&app, &admin).await;
    let r = app
        .delete(&format!("/api/v1/orgs/acme/members/{owner}"), &admin)
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "owner_cannot_be_removed");
    let r = app
        .post(
            "/api/v1/orgs/acme/members/remove",
            &admin,
            json!({"member_ids": [owner]}),
        )
        .await;
    assert_eq!(
        r.body["results"][0]["outcome"], "skipped_owner",
        "{}",
        r.text
    );
    assert_eq!(r.body["removed"], 0);
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{owner}"),
            &admin,
            json!({"role": "member"}),
        )
        .await;
    assert_problem(&r, 409);
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{owner}"), &admin)
        .await;
    assert_eq!(r.body["role"], "owner");
    assert_eq!(r.body["access"], "invited");
}

#[tokio::test]
async fn ownership_moves_only_to_an_enrolled_admin() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let old_owner = owner_id(&app, &admin).await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [
                {"email": "boss@acme.example", "role": "admin"},
                {"email": "pleb@acme.example"}
            ]}),
        )
        .await;
    let boss = r.body["results"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pleb = r.body["results"][1]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Not yet enrolled.
    let r = app
        .post(
            "/api/v1/orgs/acme/ownership",
            &admin,
            json!({"member_id": boss}),
        )
        .await;
    assert_problem(&r, 409);
    app.accept("acme", "boss@acme.example", None).await;
    app.accept("acme", "pleb@acme.example", None).await;
    // Not an admin.
    let r = app
        .post(
            "/api/v1/orgs/acme/ownership",
            &admin,
            json!({"member_id": pleb}),
        )
        .await;
    assert_problem(&r, 409);
    let r = app
        .post(
            "/api/v1/orgs/acme/ownership",
            &admin,
            json!({"member_id": boss}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["owner"]["id"], boss.as_str());
    assert_eq!(r.body["previous_owner"]["id"], old_owner.as_str());
    assert_eq!(r.body["previous_owner"]["role"], "admin");
    assert_eq!(owner_id(&app, &admin).await, boss);
    let owners = app
        .get("/api/v1/orgs/acme/members?role=owner", &admin)
        .await;
    assert_eq!(owners.body["items"].as_array().unwrap().len(), 1);
    // The old owner can now be removed.
    let r = app
        .delete(&format!("/api/v1/orgs/acme/members/{old_owner}"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}
