//! Accepting an invitation (no bearer token: the link's token is the credential): the
//! failed-authentication budget is checked before the token, and a wrong token is answered
//! without the writer.

use std::time::Duration;

use reqwest::Method;
use rosterd::store;
use serde_json::json;

use crate::helpers::*;

async fn accept_with(app: &TestApp, token: &str) -> Res {
    app.call(
        Method::POST,
        "/api/v1/invitations/accept",
        None,
        Some(json!({"token": token})),
    )
    .await
}

#[tokio::test]
async fn over_budget_even_the_right_invitation_token_is_refused() {
    let app = spawn_with(Mail::Files, |c| c.server.auth_failures_per_minute = 2).await;
    let admin = app.org_with_admin("acme").await;
    app.add("acme", &admin, &["ada@acme.example"]).await;
    let token = app.invitation_token("acme", "ada@acme.example").await;
    for _ in 0..2 {
        assert_problem(&accept_with(&app, "guess-0123456789").await, 404);
    }
    assert_problem(&accept_with(&app, "guess-0123456789").await, 429);
    let before = app.snapshot("acme").await;
    // The right token now, from the same address: refused, and nothing changes.
    let r = accept_with(&app, &token).await;
    assert_problem(&r, 429);
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
    assert_eq!(app.snapshot("acme").await, before);
    let members = app
        .get("/api/v1/orgs/acme/members?access=invited", &admin)
        .await;
    assert!(r.text.contains("too many"), "{}", r.text);
    assert!(
        members.text.contains("ada@acme.example"),
        "still invited: {}",
        members.text
    );
}

#[tokio::test]
async fn a_wrong_invitation_token_never_waits_for_the_writer() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    app.add("acme", &admin, &["ada@acme.example"]).await;
    let org_id = app.org_id("acme").await;
    // Hold the writer (SQLite has one writer connection) and the org's row lock (PostgreSQL),
    // as a long write would.
    let mut held = app.store.write().await.unwrap();
    store::orgs::lock(&mut held, org_id).await.unwrap();
    // Guesses are answered while the write is held (the writer would keep them for 30 s).
    for _ in 0..3 {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            accept_with(&app, "guess-0123456789"),
        )
        .await
        .expect("a wrong token is answered without waiting for the writer");
        assert_problem(&r, 404);
    }
    held.rollback().await.unwrap();
    // And the right token still works once the writer is free.
    let r = app.accept("acme", "ada@acme.example", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
