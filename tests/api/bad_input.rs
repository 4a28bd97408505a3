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

/// Generated bodies, query strings, path segments and uploads thrown at the admin API: whatever
/// comes in, the answer is never a 5xx, and every refusal is a problem body.
#[tokio::test]
async fn generated_admin_requests_never_get_a_server_error() {
    use proptest::prelude::*;
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    use reqwest::Method;

    // The accept endpoint counts unknown links as failed authentication: no 429s here.
    let app = spawn_with(Mail::Files, |c| {
        c.server.auth_failures_per_minute = 1_000_000
    })
    .await;
    let admin = app.org_with_admin("acme").await;
    let id = app.add("acme", &admin, &["ada@acme.example"]).await[0];
    let mut runner = TestRunner::deterministic();
    let bodies = admin_json_strategy();
    let text = "\\PC{1,24}";
    let query = prop::collection::vec(
        (
            prop_oneof![
                Just("access"),
                Just("role"),
                Just("sort"),
                Just("order"),
                Just("limit"),
                Just("cursor"),
                Just("q"),
                Just("email"),
                Just("joined_from"),
                Just("joined_to"),
                Just("after"),
                Just("source"),
                Just("status"),
                Just("x"),
            ],
            prop_oneof![
                text.prop_map(|s: String| s),
                any::<i64>().prop_map(|n| n.to_string()),
                Just("2026-13-45".to_owned()),
                Just("name".to_owned()),
            ],
        ),
        0..4,
    );
    let upload = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (
            prop::collection::vec(
                prop_oneof![
                    Just("email"),
                    Just("first_name"),
                    Just("role"),
                    Just("active"),
                    Just("login_email"),
                    Just("shoe"),
                ],
                0..4
            ),
            prop::collection::vec(prop::collection::vec("[\\PC\",\\r\\n]{0,12}", 0..5), 0..6),
        )
            .prop_map(|(header, rows)| {
                let mut s = header.join(",");
                for r in rows {
                    s.push_str("\r\n");
                    s.push_str(&r.join(","));
                }
                s.into_bytes()
            }),
        Just(b"PK\x03\x04\x14\x00\x00\x00\x08\x00not a zip".to_vec()),
    ];
    let members = "/api/v1/orgs/acme/members";
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..200 {
        let body = bodies.new_tree(&mut runner).unwrap().current();
        let pairs = query.new_tree(&mut runner).unwrap().current();
        let segment = text.new_tree(&mut runner).unwrap().current();
        let mut url = url::Url::parse(&app.url("/")).unwrap();
        let (method, token, send_body): (Method, Option<&str>, bool) = match i % 14 {
            0 => {
                url.set_path("/api/v1/orgs");
                (Method::POST, Some(OPERATOR), true)
            }
            1 => {
                url.set_path("/api/v1/orgs/acme");
                (Method::PATCH, Some(&admin), true)
            }
            2 => {
                url.set_path(members);
                (Method::POST, Some(&admin), true)
            }
            3 => {
                url.set_path(&format!("{members}/remove"));
                (Method::POST, Some(&admin), true)
            }
            4 => {
                url.set_path(&format!("{members}/resend-invites"));
                (Method::POST, Some(&admin), true)
            }
            5 => {
                url.set_path(&format!("{members}/{id}"));
                (Method::PATCH, Some(&admin), true)
            }
            6 => {
                url.set_path("/api/v1/orgs/acme/ownership");
                (Method::POST, Some(&admin), true)
            }
            7 => {
                url.set_path("/api/v1/orgs/acme/tokens");
                (Method::POST, Some(OPERATOR), true)
            }
            8 => {
                url.set_path("/api/v1/invitations/accept");
                (Method::POST, None, true)
            }
            9 => {
                url.set_path(members);
                (Method::GET, Some(&admin), false)
            }
            10 => {
                url.path_segments_mut()
                    .unwrap()
                    .clear()
                    .extend(["api", "v1", "orgs", "acme", "members", &segment]);
                let m = if i % 28 == 10 {
                    Method::GET
                } else {
                    Method::PATCH
                };
                (m, Some(&admin), true)
            }
            11 => {
                url.set_path("/api/v1/orgs/acme/audit");
                (Method::GET, Some(&admin), false)
            }
            12 => {
                url.set_path("/api/v1/orgs/acme/runs");
                (Method::GET, Some(OPERATOR), false)
            }
            _ => {
                url.set_path("/api/v1/orgs/acme/imports");
                (Method::POST, Some(&admin), false)
            }
        };
        if !send_body && method == Method::GET {
            url.query_pairs_mut()
                .extend_pairs(pairs.iter().map(|(k, v)| (*k, v)));
        }
        let mut req = app.client.request(method.clone(), url.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let shown = if method == Method::POST && !send_body {
            let bytes = upload.new_tree(&mut runner).unwrap().current();
            let shown = String::from_utf8_lossy(&bytes).into_owned();
            req = req.header("content-type", "text/csv").body(bytes);
            shown
        } else if send_body {
            req = req.json(&body);
            body.to_string()
        } else {
            String::new()
        };
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let r = Res {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or_default(),
            text,
        };
        assert!(
            r.status.as_u16() < 500,
            "{method} {url} with {shown}: {}",
            r.text
        );
        if r.status.as_u16() >= 400 {
            assert_problem(&r, r.status.as_u16());
            refused += 1;
        } else {
            accepted += 1;
        }
    }
    // The generator reaches both sides: requests that pass validation and ones that do not.
    assert!(
        accepted >= 10 && refused >= 10,
        "{accepted} accepted, {refused} refused"
    );
}

fn admin_json_strategy() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::Value;
    let key = prop_oneof![
        Just("members"),
        Just("email"),
        Just("role"),
        Just("given_name"),
        Just("family_name"),
        Just("display_name"),
        Just("member_ids"),
        Just("member_id"),
        Just("slug"),
        Just("name"),
        Just("owner_email"),
        Just("managed_by"),
        Just("kind"),
        Just("token"),
        Just("login_email"),
        Just("x"),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        "\\PC{0,16}".prop_map(Value::String),
        Just(json!("a@b.co")),
        Just(json!("admin")),
        Just(json!("owner")),
        Just(json!("0190a0a0-0000-7000-8000-000000000000")),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}
