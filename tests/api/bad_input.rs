//! Bad input gets a clear 4xx problem body and changes nothing.

use serde_json::json;

use crate::helpers::*;

async fn raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    ct: &str,
    body: impl Into<reqwest::Body>,
) -> Res {
    let res = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Res {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or_default(),
        text,
    }
}

#[tokio::test]
async fn malformed_bodies_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let id = app.add("acme", &admin, &["ada@acme.example"]).await[0];
    let before = app.snapshot("acme").await;
    let post = reqwest::Method::POST;
    let members = "/api/v1/orgs/acme/members";

    let r = raw(
        &app,
        post.clone(),
        members,
        &admin,
        "application/json",
        "{\"members\": [",
    )
    .await;
    assert_problem(&r, 400);
    assert_eq!(r.body["code"], "malformed_json");

    let r = raw(&app, post.clone(), members, &admin, "text/plain", "{}").await;
    assert_problem(&r, 415);

    let r = app
        .post(
            members,
            &admin,
            json!({"members": [{"email": "x@acme.example", "colour": "red"}]}),
        )
        .await;
    assert_problem(&r, 422);
    assert!(
        r.body["detail"].as_str().unwrap().contains("colour"),
        "{}",
        r.text
    );

    let r = app
        .post(
            members,
            &admin,
            json!({"members": [{"email": "x@acme.example", "role": "god"}]}),
        )
        .await;
    assert_problem(&r, 422);
    assert!(
        r.body["detail"].as_str().unwrap().contains("role"),
        "{}",
        r.text
    );

    // One bad email among good ones: the whole request is refused, and the answer says which.
    let r = app
        .post(members, &admin, json!({"members": [{"email": "good@acme.example"}, {"email": "not-an-email"}, {"email": "a b@c.example"}]}))
        .await;
    assert_problem(&r, 422);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["members[1].email", "members[2].email"]);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not-an-email")
    );

    let r = app
        .post(
            members,
            &admin,
            json!({"members": [{"email": "d@acme.example"}, {"email": "D@acme.example"}]}),
        )
        .await;
    assert_problem(&r, 422);
    let r = app.post(members, &admin, json!({"members": []})).await;
    assert_problem(&r, 422);

    // Oversized body (the test server accepts 64 KiB).
    let big: Vec<_> = (0..3000)
        .map(|i| json!({"email": format!("someone-with-a-long-name-{i}@acme.example")}))
        .collect();
    let r = app.post(members, &admin, json!({"members": big})).await;
    assert_problem(&r, 413);

    let r = app
        .post(
            "/api/v1/orgs/acme/members/remove",
            &admin,
            json!({"member_ids": ["not-a-uuid"]}),
        )
        .await;
    assert_problem(&r, 422);
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{id}"),
            &admin,
            json!({"given_name": "x".repeat(300)}),
        )
        .await;
    assert_problem(&r, 422);
    let r = app
        .post("/api/v1/orgs/acme/ownership", &admin, json!({}))
        .await;
    assert_problem(&r, 422);

    assert_eq!(
        app.snapshot("acme").await,
        before,
        "a rejected request changed something"
    );
}

#[tokio::test]
async fn bad_query_parameters_and_paths_are_refused() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let cases = [
        ("/api/v1/orgs/acme/members?cursor=garbage", "cursor"),
        (
            "/api/v1/orgs/acme/members?cursor=eyJzIjoiYWRkZWQifQ",
            "cursor",
        ),
        (
            "/api/v1/orgs/acme/members?joined_from=yesterday",
            "joined_from",
        ),
        (
            "/api/v1/orgs/acme/members?joined_to=2026-02-30",
            "joined_to",
        ),
        (
            "/api/v1/orgs/acme/members?joined_from=2026-05-01&joined_to=2026-04-01",
            "joined_to",
        ),
        ("/api/v1/orgs/acme/members?limit=0", "limit"),
        ("/api/v1/orgs/acme/members?limit=100000", "limit"),
        ("/api/v1/orgs/acme/members?limit=-1", "limit"),
        ("/api/v1/orgs/acme/members?access=everyone", "access"),
        ("/api/v1/orgs/acme/members?sort=shoe_size", "sort"),
        ("/api/v1/orgs/acme/members?colour=red", "colour"),
        ("/api/v1/orgs/acme/audit?cursor=nope", "cursor"),
        ("/api/v1/orgs/acme/members/not-a-uuid", "UUID"),
    ];
    for (path, mentions) in cases {
        let r = app.get(path, &admin).await;
        assert_problem(&r, 400);
        assert!(r.text.contains(mentions), "{path}: {}", r.text);
    }
    let r = app.get("/api/v1/orgs/no-such-org/members", OPERATOR).await;
    assert_problem(&r, 404);
}

#[tokio::test]
async fn bad_org_creation_is_refused() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"slug": "Bad Slug", "name": "x"}), "slug"),
        (json!({"slug": "ok", "name": "  "}), "name"),
        (
            json!({"slug": "ok", "name": "x", "owner_email": "nope"}),
            "owner_email",
        ),
    ] {
        let r = app.post("/api/v1/orgs", OPERATOR, body).await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field);
    }
    app.org_with_admin("dup").await;
    let r = app
        .post(
            "/api/v1/orgs",
            OPERATOR,
            json!({"slug": "dup", "name": "again"}),
        )
        .await;
    assert_problem(&r, 409);
    let r = app.get("/api/v1/orgs", OPERATOR).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn control_characters_and_absurd_dates_are_refused_not_stored() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let before = app.snapshot("acme").await;
    for path in [
        "/api/v1/orgs/acme/members?q=%00",
        "/api/v1/orgs/acme/members?email=a%00b",
        "/api/v1/orgs/acme/members?joined_from=-200000-01-01",
        "/api/v1/orgs/acme/members?joined_to=%2B275760-09-13T00:00:00Z",
    ] {
        assert_problem(&app.get(path, &admin).await, 400);
    }
    let r = app.get("/api/v1/orgs/%00/members", OPERATOR).await;
    assert_problem(&r, 400);
    assert_eq!(r.body["errors"][0]["field"], "org", "{}", r.text);
    // Cursors crafted with a NUL text key or a time outside years 1..9999.
    use base64::Engine;
    let enc = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let nul = enc(json!({"s": "name", "d": false, "k": "a\u{0}b", "i": uuid::Uuid::nil()}));
    let far = enc(
        json!({"s": "added", "d": true, "k": "-200000-01-01T00:00:00Z", "i": uuid::Uuid::nil()}),
    );
    assert_problem(
        &app.get(
            &format!("/api/v1/orgs/acme/members?sort=name&cursor={nul}"),
            &admin,
        )
        .await,
        400,
    );
    assert_problem(
        &app.get(&format!("/api/v1/orgs/acme/members?cursor={far}"), &admin)
            .await,
        400,
    );
    for (method, path, body) in [
        (
            reqwest::Method::PATCH,
            "/api/v1/orgs/acme",
            json!({"name": "a\u{0}b"}),
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/orgs/acme",
            json!({"managed_by": "Okta\u{0}"}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/orgs/acme/tokens",
            json!({"kind": "admin", "name": "x\u{0}"}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/orgs/acme/members",
            json!({"members": [{"email": "a@acme.example", "given_name": "A\u{0}"}]}),
        ),
    ] {
        let token = if path == "/api/v1/orgs/acme" {
            OPERATOR
        } else {
            admin.as_str()
        };
        assert_problem(&app.call(method, path, Some(token), Some(body)).await, 422);
    }
    assert_problem(
        &app.post(
            "/api/v1/orgs",
            OPERATOR,
            json!({"slug": "x", "name": "\u{0}"}),
        )
        .await,
        422,
    );
    assert_eq!(app.snapshot("acme").await, before);
}

#[tokio::test]
async fn repeated_failed_authentication_is_rate_limited() {
    let app = spawn_with(Mail::Log, |c| c.server.auth_failures_per_minute = 3).await;
    let admin = app.org_with_admin("acme").await;
    for _ in 0..3 {
        assert_problem(&app.get("/api/v1/orgs/acme/members", "wrong").await, 401);
    }
    let r = app.get("/api/v1/orgs/acme/members", "wrong").await;
    assert_problem(&r, 429);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Guessing invitation links counts too.
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/invitations/accept",
            None,
            Some(json!({"token": "guess"})),
        )
        .await;
    assert_problem(&r, 429);
    // A valid token is never limited.
    assert_eq!(
        app.get("/api/v1/orgs/acme/members", &admin).await.status,
        200
    );
}
