//! Invite links with an unlock code: made by an admin (URL and code shown once), accepted by the
//! invitee with the code and their email, refused when wrong, expired, revoked, used or
//! locked, and invisible to other orgs.

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Mail, OPERATOR, Res, TestApp, assert_problem, spawn_app, spawn_with};

async fn accept(app: &TestApp, url: &str, code: &str, email: &str) -> Res {
    let token = url.rsplit('/').next().unwrap();
    app.call(
        Method::POST,
        "/api/v1/invite-links/accept",
        None,
        Some(json!({"token": token, "code": code, "email": email})),
    )
    .await
}

async fn make(app: &TestApp, org: &str, token: &str, body: Value) -> Value {
    let r = app
        .post(&format!("/api/v1/orgs/{org}/invite-links"), token, body)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn links(app: &TestApp, org: &str, token: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/api/v1/orgs/{org}/invite-links"), token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_link_and_its_code_make_one_enrolled_member() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let g = app
        .post(
            "/api/v1/orgs/acme/groups",
            &admin,
            json!({"name": "Volunteers"}),
        )
        .await;
    assert_eq!(g.status, 201);
    let outbox = app.outbox("acme").await.len();

    let link = make(
        &app,
        "acme",
        &admin,
        json!({"description": "Spring volunteers", "role": "admin", "groups": ["volunteers"], "code": "open sesame"}),
    )
    .await;
    let url = link["url"].as_str().unwrap();
    assert!(url.contains("/invite-links/"), "{link}");
    assert_eq!(link["code"], "open sesame");
    assert_eq!(link["status"], "pending");
    assert_eq!(link["groups"], json!(["Volunteers"]));
    assert_eq!(app.outbox("acme").await.len(), outbox, "no email is sent");

    // Listed as pending; neither the URL's token nor the code is ever shown again.
    let listed = links(&app, "acme", &admin).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "pending");
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains("sesame") && !text.contains(url.rsplit('/').next().unwrap()));

    // A wrong code is refused and counted; nothing else changes.
    let before = app.snapshot("acme").await;
    let r = accept(&app, url, "open sesamo", "vol@acme.example").await;
    assert_problem(&r, 403);
    assert_eq!(r.body["code"], "wrong_code");
    assert!(
        r.body["detail"].as_str().unwrap().contains("9 more"),
        "{}",
        r.text
    );
    assert_eq!(app.snapshot("acme").await, before);
    assert_eq!(links(&app, "acme", &admin).await[0]["wrong_codes"], 1);

    // The right code, typed in another case with spaces, and an email: enrolled, in the group.
    let r = accept(&app, url, "  OPEN SESAME ", "Vol@Acme.example").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["access"], "enrolled");
    assert_eq!(r.body["role"], "admin");
    assert_eq!(app.group_members("acme", "Volunteers").await.len(), 1);
    let listed = links(&app, "acme", &admin).await;
    assert_eq!(listed[0]["status"], "accepted");
    assert_eq!(listed[0]["member_id"], r.body["id"]);

    // Single use.
    let r = accept(&app, url, "open sesame", "second@acme.example").await;
    assert_problem(&r, 410);
    assert!(r.text.contains("already been used"), "{}", r.text);
}

#[tokio::test]
async fn a_link_for_an_address_takes_only_that_address_and_generates_its_code() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let link = make(
        &app,
        "acme",
        &admin,
        json!({"description": "For Ann", "email": "ann@acme.example"}),
    )
    .await;
    let code = link["code"].as_str().unwrap();
    assert_eq!(code.len(), 10, "{link}");
    assert!(
        code.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    );
    let url = link["url"].as_str().unwrap();
    let r = accept(&app, url, code, "bob@acme.example").await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "email", "{}", r.text);
    let r = accept(&app, url, code, "ann@acme.example").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["role"], "member");

    // A link holder cannot take over someone else's record: not the pending owner's, not an
    // invited admin's, not a past member's. Only a link made for that address reaches it.
    app.add("acme", &admin, &["cid@acme.example"]).await;
    let before = app.snapshot("acme").await;
    for email in ["owner@acme.example", "cid@acme.example", "ann@acme.example"] {
        let link = make(&app, "acme", &admin, json!({"description": "anyone"})).await;
        let r = accept(
            &app,
            link["url"].as_str().unwrap(),
            link["code"].as_str().unwrap(),
            email,
        )
        .await;
        assert_problem(&r, 409);
        assert!(
            ["address_has_membership", "already_member"]
                .contains(&r.body["code"].as_str().unwrap()),
            "{email}: {}",
            r.text
        );
    }
    assert_eq!(
        app.snapshot("acme").await.split('|').next(),
        before.split('|').next()
    );
    let link = make(
        &app,
        "acme",
        &admin,
        json!({"description": "Cid", "email": "cid@acme.example", "role": "admin"}),
    )
    .await;
    let r = accept(
        &app,
        link["url"].as_str().unwrap(),
        link["code"].as_str().unwrap(),
        "CID@acme.example",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["access"], "enrolled");
    assert_eq!(r.body["role"], "admin");
    let counts = app.get("/api/v1/orgs/acme/members/counts", &admin).await;
    assert_eq!(
        counts.body["invited"], 1,
        "only the owner is still invited: {}",
        counts.text
    );
    assert_eq!(counts.body["enrolled"], 2, "{}", counts.text);

    // In a managed org, whoever the integration removed does not come back through a link.
    let gone = app.add("acme", &admin, &["gone@acme.example"]).await[0].to_string();
    let r = app
        .post(
            "/api/v1/orgs/acme/members/remove",
            &admin,
            json!({"member_ids": [gone]}),
        )
        .await;
    assert_eq!(r.body["removed"], 1, "{}", r.text);
    let link = make(
        &app,
        "acme",
        &admin,
        json!({"description": "Gone", "email": "gone@acme.example"}),
    )
    .await;
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": "Okta"}))
        .await;
    assert_eq!(r.status, 200);
    let r = accept(
        &app,
        link["url"].as_str().unwrap(),
        link["code"].as_str().unwrap(),
        "gone@acme.example",
    )
    .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "integration_managed", "{}", r.text);
}

#[tokio::test]
async fn expired_revoked_and_locked_links_are_gone() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .patch("/api/v1/orgs/acme", &admin, json!({"invite_link_days": 3}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let expiring = make(
        &app,
        "acme",
        &admin,
        json!({"description": "a", "code": "123456"}),
    )
    .await;
    let revoked = make(
        &app,
        "acme",
        &admin,
        json!({"description": "b", "code": "123456"}),
    )
    .await;
    let locked = make(
        &app,
        "acme",
        &admin,
        json!({"description": "c", "code": "123456"}),
    )
    .await;

    let id = revoked["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/invite-links/{id}/revoke"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "revoked");
    let r = accept(
        &app,
        revoked["url"].as_str().unwrap(),
        "123456",
        "b@acme.example",
    )
    .await;
    assert_problem(&r, 410);
    assert!(r.text.contains("revoked"), "{}", r.text);

    for i in 0..10 {
        let r = accept(
            &app,
            locked["url"].as_str().unwrap(),
            "654321",
            "c@acme.example",
        )
        .await;
        assert_problem(&r, if i < 10 { 403 } else { 410 });
    }
    let r = accept(
        &app,
        locked["url"].as_str().unwrap(),
        "123456",
        "c@acme.example",
    )
    .await;
    assert_problem(&r, 410);
    assert!(r.text.contains("too many wrong codes"), "{}", r.text);

    app.clock.advance(Duration::days(3));
    let r = accept(
        &app,
        expiring["url"].as_str().unwrap(),
        "123456",
        "a@acme.example",
    )
    .await;
    assert_problem(&r, 410);
    assert!(r.text.contains("expired"), "{}", r.text);
    let statuses: Vec<String> = links(&app, "acme", &admin)
        .await
        .iter()
        .map(|l| l["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["locked", "revoked", "expired"]);
    let counts = app.get("/api/v1/orgs/acme/members/counts", &admin).await;
    assert_eq!(counts.body["enrolled"], 0, "{}", counts.text);

    // Bad settings and bad links are refused with the field named.
    let r = app
        .patch("/api/v1/orgs/acme", &admin, json!({"invite_link_days": 0}))
        .await;
    assert_problem(&r, 422);
    let r = app
        .post(
            "/api/v1/orgs/acme/invite-links",
            &admin,
            json!({"description": "", "code": "12", "role": "owner", "groups": ["nope"]}),
        )
        .await;
    assert_problem(&r, 422);
    let mut fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["code", "description", "groups[0]", "role"],
        "{}",
        r.text
    );
}

#[tokio::test]
async fn links_belong_to_their_org_and_guessing_is_limited() {
    let app = spawn_with(Mail::Log, |c| c.server.auth_failures_per_minute = 3).await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    let link = make(
        &app,
        "acme",
        &admin,
        json!({"description": "x", "code": "123456"}),
    )
    .await;
    let id = link["id"].as_str().unwrap();
    assert_eq!(links(&app, "other", &other).await, Vec::<Value>::new());
    let r = app
        .post(
            &format!("/api/v1/orgs/other/invite-links/{id}/revoke"),
            &other,
            json!({}),
        )
        .await;
    assert_problem(&r, 404);
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/invite-links/{id}/revoke"),
            &other,
            json!({}),
        )
        .await;
    assert_problem(&r, 404);
    assert_eq!(links(&app, "acme", &admin).await[0]["status"], "pending");

    // Unknown tokens are not found; past the client's budget, every guess answers 429.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = accept(&app, "/invite-links/nope", "123456", "g@acme.example").await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(&statuses[..3], [404, 404, 404], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // Over budget, even the right token and code are refused, and the link stays unused.
    let r = accept(
        &app,
        link["url"].as_str().unwrap(),
        "123456",
        "g@acme.example",
    )
    .await;
    assert_problem(&r, 429);
    assert_eq!(links(&app, "acme", &admin).await[0]["status"], "pending");
}
