//! Who may call what: missing and bad tokens, revoked tokens, token kinds, and the org boundary
//! checked endpoint by endpoint.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn missing_malformed_and_wrong_tokens_get_401() {
    let app = spawn_app().await;
    app.org_with_admin("acme").await;
    let r = app
        .call(Method::GET, "/api/v1/orgs/acme/members", None, None)
        .await;
    assert_problem(&r, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    for bad in [
        "nonsense",
        "rst_00000000000000000000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = app.get("/api/v1/orgs/acme/members", bad).await;
        assert_problem(&r, 401);
    }
    let r = app
        .client
        .get(app.url("/api/v1/orgs/acme/members"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_token_with_a_forged_secret_is_refused() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    // Same id, different secret.
    let forged = format!(
        "{}{}",
        &admin[..admin.len() - 3],
        if admin.ends_with("AAA") { "BBB" } else { "AAA" }
    );
    assert_eq!(
        app.get("/api/v1/orgs/acme/members", &admin).await.status,
        200
    );
    assert_problem(&app.get("/api/v1/orgs/acme/members", &forged).await, 401);
}

#[tokio::test]
async fn revoked_tokens_stop_working_and_scim_tokens_are_not_admin_tokens() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/tokens",
            OPERATOR,
            json!({"kind": "admin", "name": "temp"}),
        )
        .await;
    let temp = r.body["token"].as_str().unwrap().to_owned();
    let temp_id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/v1/orgs/acme/members", &temp).await.status,
        200
    );
    let r = app
        .delete(&format!("/api/v1/orgs/acme/tokens/{temp_id}"), &admin)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_problem(&app.get("/api/v1/orgs/acme/members", &temp).await, 401);
    // Listing tokens never shows secrets or hashes.
    let r = app.get("/api/v1/orgs/acme/tokens", &admin).await;
    assert!(!r.text.contains("secret"), "{}", r.text);
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| !t["revoked_at"].is_null())
    );

    let r = app
        .post(
            "/api/v1/orgs/acme/tokens",
            OPERATOR,
            json!({"kind": "scim"}),
        )
        .await;
    let scim = r.body["token"].as_str().unwrap().to_owned();
    assert_problem(&app.get("/api/v1/orgs/acme/members", &scim).await, 403);
}

#[tokio::test]
async fn only_the_operator_creates_orgs_and_sets_the_integration_flag() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs",
            &admin,
            json!({"slug": "other", "name": "Other"}),
        )
        .await;
    assert_problem(&r, 403);
    let r = app
        .patch("/api/v1/orgs/acme", &admin, json!({"managed_by": "Okta"}))
        .await;
    assert_problem(&r, 403);
    // An admin may rename their own org.
    let r = app
        .patch("/api/v1/orgs/acme", &admin, json!({"name": "Acme Inc"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "Acme Inc");
    // Admins see only their org in the list; the operator sees all.
    app.org_with_admin("beta").await;
    let r = app.get("/api/v1/orgs", &admin).await;
    let slugs: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme"]);
    let r = app.get("/api/v1/orgs", OPERATOR).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
}

/// A token of org A can neither read nor change anything of org B, on every endpoint, whether
/// it names B's slug or B's member ids under A's own path.
#[tokio::test]
async fn org_boundary_holds_on_every_endpoint() {
    let app = spawn_app().await;
    let a = app.org_with_admin("org-a").await;
    let b = app.org_with_admin("org-b").await;
    let b_ids = app.add("org-b", &b, &["x@b.example", "y@b.example"]).await;
    let b_member = b_ids[0];
    let b_token_id = {
        let r = app.get("/api/v1/orgs/org-b/tokens", &b).await;
        r.body["items"][0]["id"].as_str().unwrap().to_owned()
    };
    let before = app.snapshot("org-b").await;

    let ids = json!({"member_ids": [b_member]});
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/v1/orgs/org-b".into(), None),
        (
            Method::PATCH,
            "/api/v1/orgs/org-b".into(),
            Some(json!({"name": "pwned"})),
        ),
        (Method::GET, "/api/v1/orgs/org-b/members".into(), None),
        (
            Method::POST,
            "/api/v1/orgs/org-b/members".into(),
            Some(json!({"members": [{"email": "evil@a.example"}]})),
        ),
        (
            Method::GET,
            "/api/v1/orgs/org-b/members/counts".into(),
            None,
        ),
        (
            Method::GET,
            "/api/v1/orgs/org-b/members/export.csv".into(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/orgs/org-b/members/resend-invites".into(),
            Some(ids.clone()),
        ),
        (
            Method::POST,
            "/api/v1/orgs/org-b/members/remove".into(),
            Some(ids.clone()),
        ),
        (
            Method::GET,
            format!("/api/v1/orgs/org-b/members/{b_member}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/orgs/org-b/members/{b_member}"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/orgs/org-b/members/{b_member}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/org-b/members/{b_member}/activity"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/orgs/org-b/ownership".into(),
            Some(json!({"member_id": b_member})),
        ),
        (Method::GET, "/api/v1/orgs/org-b/audit".into(), None),
        (Method::GET, "/api/v1/orgs/org-b/tokens".into(), None),
        (
            Method::POST,
            "/api/v1/orgs/org-b/tokens".into(),
            Some(json!({"kind": "admin"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/orgs/org-b/tokens/{b_token_id}"),
            None,
        ),
    ];
    for (method, path, body) in &cases {
        let r = app.call(method.clone(), path, Some(&a), body.clone()).await;
        assert_problem(&r, 404);
        assert!(
            !r.text.contains("x@b.example"),
            "{method} {path} leaked data: {}",
            r.text
        );
    }
    // B's member ids under A's own path are not found either.
    let a_cases: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::GET,
            format!("/api/v1/orgs/org-a/members/{b_member}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/orgs/org-a/members/{b_member}"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/orgs/org-a/members/{b_member}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/org-a/members/{b_member}/activity"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/orgs/org-a/ownership".into(),
            Some(json!({"member_id": b_member})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/orgs/org-a/tokens/{b_token_id}"),
            None,
        ),
    ];
    for (method, path, body) in &a_cases {
        let r = app.call(method.clone(), path, Some(&a), body.clone()).await;
        assert_problem(&r, 404);
    }
    // Bulk endpoints under A's path report B's ids as not found and change nothing.
    let r = app
        .post("/api/v1/orgs/org-a/members/resend-invites", &a, ids.clone())
        .await;
    assert_eq!(
        r.body["results"][0]["outcome"], "skipped_not_found",
        "{}",
        r.text
    );
    let r = app
        .post("/api/v1/orgs/org-a/members/remove", &a, ids.clone())
        .await;
    assert_eq!(
        r.body["results"][0]["outcome"], "skipped_not_found",
        "{}",
        r.text
    );
    // A's export and list hold nothing of B.
    let r = app.get("/api/v1/orgs/org-a/members/export.csv", &a).await;
    assert!(!r.text.contains("b.example"), "{}", r.text);
    let r = app.get("/api/v1/orgs/org-a/audit", &a).await;
    assert!(!r.text.contains("b.example"), "{}", r.text);

    assert_eq!(app.snapshot("org-b").await, before, "org B changed");
    // And B's token still works on B.
    assert_eq!(app.get("/api/v1/orgs/org-b/members", &b).await.status, 200);
}

#[tokio::test]
async fn only_the_operator_mints_scim_tokens() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/tokens",
            &admin,
            json!({"kind": "scim", "name": "Okta"}),
        )
        .await;
    assert_problem(&r, 403);
    assert!(r.text.contains("operator"), "{}", r.text);
    // Nothing was minted, and the org is not SCIM-managed.
    let tokens = app.get("/api/v1/orgs/acme/tokens", &admin).await;
    assert!(
        tokens.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["kind"] != "scim"),
        "{}",
        tokens.text
    );
    let org = app.get("/api/v1/orgs/acme", &admin).await;
    assert!(org.body["managed_by"].is_null(), "{}", org.text);
    // Admin tokens may still mint admin tokens; the operator mints SCIM tokens.
    let r = app
        .post("/api/v1/orgs/acme/tokens", &admin, json!({"kind": "admin"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/acme/tokens",
            OPERATOR,
            json!({"kind": "scim"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}
