//! The events feed and webhook subscriptions: events in order with working cursors, signed
//! deliveries to a real local receiver that checks the signature with its own HMAC, retries
//! with backoff on the test clock, disabling after repeated failure, refusals and isolation.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use chrono::Duration as Span;
use rosterd::clock::Clock as _;
use rosterd::config::WebhooksConfig;
use rosterd::webhooks::Deliverer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{Mail, OPERATOR, TestApp, assert_problem, spawn_app, spawn_with, wait_for};

/// What the receiver does with the next requests.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    Fail,
    Slow,
    Redirect,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    id: String,
    timestamp: i64,
    body: Value,
    /// The signature checked out with the subscription's secret.
    verified: bool,
    headers: HeaderMap,
    raw: Vec<u8>,
}

#[derive(Clone)]
struct Receiver {
    /// Modes for the next requests, in order; `Ok` when they run out.
    script: Arc<Mutex<Vec<Mode>>>,
    got: Arc<Mutex<Vec<Got>>>,
    secret: Arc<Mutex<String>>,
}

/// HMAC-SHA256 written out (RFC 2104), independent of the daemon's `hmac` crate.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let mut h = Sha256::new();
    h.update(&inner);
    h.update(msg);
    let ih = h.finalize();
    let mut h = Sha256::new();
    h.update(&outer);
    h.update(ih);
    h.finalize().to_vec()
}

/// The Standard Webhooks check, as a receiver would write it.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(key) = secret.strip_prefix("whsec_") else {
        return false;
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    let mut signed = format!("{}.{}.", h("webhook-id"), h("webhook-timestamp")).into_bytes();
    signed.extend_from_slice(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &signed));
    h("webhook-signature")
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mode = {
        let mut s = r.script.lock().unwrap();
        if s.is_empty() { Mode::Ok } else { s.remove(0) }
    };
    let secret = r.secret.lock().unwrap().clone();
    let got = Got {
        id: headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        timestamp: headers
            .get("webhook-timestamp")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        verified: verify(&secret, &headers, &body),
        headers: headers.clone(),
        raw: body.to_vec(),
    };
    r.got.lock().unwrap().push(got);
    match mode {
        Mode::Ok => StatusCode::NO_CONTENT.into_response(),
        Mode::Fail => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "receiver broke on purpose",
        )
            .into_response(),
        // Never answers: the sender's timeout must end the attempt (the server drops this
        // future when the sender closes the connection).
        Mode::Slow => std::future::pending().await,
        Mode::Redirect => {
            (StatusCode::TEMPORARY_REDIRECT, [("location", "/elsewhere")]).into_response()
        }
    }
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver {
            script: Arc::default(),
            got: Arc::default(),
            secret: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .route("/elsewhere", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn script(&self, modes: &[Mode]) {
        *self.script.lock().unwrap() = modes.to_vec();
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// An app whose webhook worker does not run: the test drives passes itself, on the test clock.
async fn app_with(settings: impl FnOnce(&mut WebhooksConfig)) -> (TestApp, Deliverer) {
    let mut hooks = WebhooksConfig {
        deliver: false,
        timeout_ms: 500,
        ..WebhooksConfig::default()
    };
    settings(&mut hooks);
    let app = spawn_with(Mail::Log, {
        let hooks = hooks.clone();
        move |c| c.webhooks = hooks
    })
    .await;
    let mut worker_settings = hooks;
    worker_settings.deliver = true;
    let deliverer = Deliverer::new(app.state.roster.clone(), worker_settings).unwrap();
    (app, deliverer)
}

async fn create_hook(app: &TestApp, slug: &str, token: &str, url: &str, types: Value) -> Value {
    let r = app
        .post(
            &format!("/api/v1/orgs/{slug}/webhooks"),
            token,
            json!({"url": url, "event_types": types}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn feed(app: &TestApp, slug: &str, token: &str, query: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/orgs/{slug}/events{query}"), token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn types(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn log(app: &TestApp, slug: &str, token: &str, hook: &str) -> Value {
    let r = app
        .get(
            &format!("/api/v1/orgs/{slug}/webhooks/{hook}/deliveries"),
            token,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

#[tokio::test]
async fn the_feed_lists_member_changes_in_order_with_working_cursors() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    let start = feed(&app, "acme", &token, "").await;
    let cursor0 = start["next"].as_str().unwrap().to_owned();

    let ids = app
        .add("acme", &token, &["ann@acme.example", "bob@acme.example"])
        .await;
    assert_eq!(
        app.accept("acme", "ann@acme.example", None).await.status,
        200
    );
    let r = app
        .post(
            "/api/v1/orgs/acme/members/disable",
            &token,
            json!({"member_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/acme/members/enable",
            &token,
            json!({"member_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{}", ids[0]),
            &token,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .delete(&format!("/api/v1/orgs/acme/members/{}", ids[1]), &token)
        .await;
    assert!(r.status.is_success(), "{}", r.text);

    // Page by two, keeping only the cursor.
    let mut seen = Vec::new();
    let mut cursor = cursor0.clone();
    loop {
        let page = feed(&app, "acme", &token, &format!("?after={cursor}&limit=2")).await;
        let items = page["items"].as_array().unwrap().clone();
        assert!(items.len() <= 2);
        let next = page["next"].as_str().unwrap().to_owned();
        if items.is_empty() {
            assert_eq!(next, cursor, "an empty page keeps the cursor");
            break;
        }
        assert_eq!(items.last().unwrap()["cursor"].as_str().unwrap(), next);
        seen.extend(items);
        cursor = next;
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "member.invited",
            "member.invited",
            "member.enrolled",
            "member.disabled",
            "member.enabled",
            "member.role_changed",
            "member.removed",
        ]
    );
    let seqs: Vec<i64> = seen
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let ids_seen: std::collections::HashSet<&str> =
        seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids_seen.len(), seen.len(), "no event repeats");
    assert_eq!(
        seen[0]["data"]["member"]["member_email"],
        "ann@acme.example"
    );
    assert_eq!(seen[2]["data"]["previous"]["access"], "invited");
    assert_eq!(seen[2]["data"]["actor"]["kind"], "invitee");
    assert_eq!(seen[3]["data"]["actor"]["kind"], "admin_token");
    assert_eq!(seen[5]["data"]["member"]["role"], "admin");
    assert_eq!(seen[5]["data"]["previous"]["role"], "member");
    assert_eq!(seen[6]["data"]["member"]["id"], ids[1].to_string());
    assert!(seen[0]["data"]["member"].get("scim_data").is_none());

    // A new event comes after the kept cursor, once.
    app.add("acme", &token, &["cy@acme.example"]).await;
    let page = feed(&app, "acme", &token, &format!("?after={cursor}")).await;
    assert_eq!(types(&page), ["member.invited"]);
    let again = feed(
        &app,
        "acme",
        &token,
        &format!("?after={}", page["next"].as_str().unwrap()),
    )
    .await;
    assert!(again["items"].as_array().unwrap().is_empty());

    // The whole feed from the start says the same; other orgs see none of it.
    let all = feed(&app, "acme", &token, "?limit=500").await;
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        9,
        "the owner's invitation first"
    );
    assert_eq!(all["items"][0]["data"]["member"]["role"], "owner");
    let theirs = feed(&app, "other", &other, "").await;
    assert_eq!(
        types(&theirs),
        ["member.invited"],
        "only their own owner: {theirs}"
    );
    assert_eq!(
        theirs["items"][0]["data"]["member"]["member_email"],
        "owner@other.example"
    );
    let r = app.get("/api/v1/orgs/acme/events", &other).await;
    assert_problem(&r, 404);
    for q in [
        "?after=abc",
        "?after=-1",
        "?limit=0",
        "?limit=501",
        "?before=1",
    ] {
        let r = app
            .get(&format!("/api/v1/orgs/acme/events{q}"), &token)
            .await;
        assert_problem(&r, 400);
    }
    // Ownership moves: two role changes.
    let r = app
        .post(
            "/api/v1/orgs/acme/ownership",
            OPERATOR,
            json!({"member_id": ids[0]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let page = feed(
        &app,
        "acme",
        &token,
        &format!("?after={}", all["next"].as_str().unwrap()),
    )
    .await;
    assert_eq!(types(&page), ["member.role_changed", "member.role_changed"]);
    assert_eq!(page["items"][0]["data"]["member"]["role"], "owner");
    assert_eq!(page["items"][1]["data"]["member"]["role"], "admin");
}

#[tokio::test]
async fn deliveries_arrive_signed_and_are_logged() {
    let (app, worker) = app_with(|_| {}).await;
    let token = app.org_with_admin("acme").await;
    let (rx, url) = Receiver::start().await;
    let hook = create_hook(&app, "acme", &token, &url, json!(["member.*"])).await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let key = base64::engine::general_purpose::STANDARD
        .decode(&secret["whsec_".len()..])
        .unwrap();
    assert!(key.len() >= 24);
    *rx.secret.lock().unwrap() = secret.clone();
    let id = hook["id"].as_str().unwrap().to_owned();
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["event_types"], json!(["member.*"]));

    // The secret is never shown again.
    let one = app
        .get(&format!("/api/v1/orgs/acme/webhooks/{id}"), &token)
        .await;
    assert_eq!(one.status, 200);
    assert!(!one.text.contains(&secret) && one.body.get("secret").is_none());
    let list = app.get("/api/v1/orgs/acme/webhooks", &token).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(!list.text.contains(&secret));
    let audit = app.get("/api/v1/orgs/acme/audit", &token).await;
    assert!(
        !audit.text.contains(&secret[6..]),
        "the secret is not audited"
    );
    assert!(audit.text.contains("webhook.created"));

    app.add("acme", &token, &["ann@acme.example", "bob@acme.example"])
        .await;
    assert_eq!(worker.run_once().await.unwrap(), 2);
    let got = rx.got();
    assert_eq!(got.len(), 2);
    let events = feed(&app, "acme", &token, "").await;
    for g in &got {
        let e = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == g.id.as_str())
            .unwrap_or_else(|| panic!("{g:?} is in the feed"));
        assert!(g.verified, "the signature checks out: {g:?}");
        assert_eq!(g.id, e["id"].as_str().unwrap());
        assert_eq!(g.body, *e, "the body is the feed's event");
        assert_eq!(g.timestamp, app.clock.now().timestamp());
    }
    assert_eq!(got[0].body["type"], "member.invited");
    // Nothing is due any more: each event went once.
    assert_eq!(worker.run_once().await.unwrap(), 0);

    let l = log(&app, "acme", &token, &id).await;
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(l["pending"], 0);
    for a in items {
        assert_eq!(a["succeeded"], true);
        assert_eq!(a["status_code"], 204);
        assert_eq!(a["attempt"], 1);
        assert!(a["duration_ms"].as_i64().unwrap() >= 0);
        assert!(a["retry_at"].is_null());
        assert_eq!(a["event_type"], "member.invited");
    }

    // Types not subscribed to are not sent; a PATCH changes the types.
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/webhooks/{id}"),
            &token,
            json!({"event_types": ["member.removed"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.add("acme", &token, &["cy@acme.example"]).await;
    assert_eq!(worker.run_once().await.unwrap(), 0);
    let cy = app.add("acme", &token, &["dee@acme.example"]).await;
    let r = app
        .delete(&format!("/api/v1/orgs/acme/members/{}", cy[0]), &token)
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let last = rx.got().pop().unwrap();
    assert!(last.verified);
    assert_eq!(last.body["type"], "member.removed");

    // Finished deliveries leave the log after keep_log_days; the events stay.
    assert_eq!(worker.prune().await.unwrap(), 0);
    app.clock.advance(Span::days(31));
    assert_eq!(worker.prune().await.unwrap(), 3);
    let l = log(&app, "acme", &token, &id).await;
    assert!(l["items"].as_array().unwrap().is_empty(), "{l}");
    assert!(
        !feed(&app, "acme", &token, "").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Deleted: its log goes with it.
    let r = app
        .delete(&format!("/api/v1/orgs/acme/webhooks/{id}"), &token)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/webhooks/{id}/deliveries"),
            &token,
        )
        .await;
    assert_problem(&r, 404);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_backoff_until_it_accepts() {
    let (app, worker) = app_with(|w| {
        w.retry_base_secs = 30;
        w.max_attempts = 5;
    })
    .await;
    let token = app.org_with_admin("acme").await;
    let (rx, url) = Receiver::start().await;
    let hook = create_hook(&app, "acme", &token, &url, json!(["*"])).await;
    *rx.secret.lock().unwrap() = hook["secret"].as_str().unwrap().to_owned();
    let id = hook["id"].as_str().unwrap();
    rx.script(&[Mode::Fail, Mode::Fail]);
    app.add("acme", &token, &["ann@acme.example"]).await;

    assert_eq!(worker.run_once().await.unwrap(), 1);
    let l = log(&app, "acme", &token, id).await;
    let first = l["items"][0].clone();
    assert_eq!(first["succeeded"], false);
    assert_eq!(first["status_code"], 500);
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("broke on purpose"),
        "{first}"
    );
    assert_eq!(l["pending"], 1);
    let gap = |a: &Value| {
        let at: chrono::DateTime<chrono::Utc> = a["at"].as_str().unwrap().parse().unwrap();
        let retry: chrono::DateTime<chrono::Utc> = a["retry_at"].as_str().unwrap().parse().unwrap();
        (retry - at).num_milliseconds()
    };
    let g1 = gap(&first);
    assert!(
        (30_000..=37_500).contains(&g1),
        "first retry after 30 s + jitter: {g1}"
    );

    // Not before it is due.
    assert_eq!(worker.run_once().await.unwrap(), 0);
    app.clock.advance(Span::seconds(29));
    assert_eq!(worker.run_once().await.unwrap(), 0);
    app.clock.advance(Span::milliseconds(8_600));
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let l = log(&app, "acme", &token, id).await;
    let second = l["items"][0].clone();
    assert_eq!(second["attempt"], 2);
    assert_eq!(second["succeeded"], false);
    let g2 = gap(&second);
    assert!((60_000..=75_000).contains(&g2), "then 60 s + jitter: {g2}");

    app.clock.advance(Span::milliseconds(g2 + 1));
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let l = log(&app, "acme", &token, id).await;
    assert_eq!(l["items"][0]["attempt"], 3);
    assert_eq!(l["items"][0]["succeeded"], true);
    assert_eq!(l["pending"], 0);
    let got = rx.got();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|g| g.verified && g.id == got[0].id),
        "same message id each time"
    );
    // A success resets the run of failures.
    let h = app
        .get(&format!("/api/v1/orgs/acme/webhooks/{id}"), &token)
        .await;
    assert_eq!(h.body["consecutive_failures"], 0);
    assert_eq!(h.body["enabled"], true);
}

#[tokio::test]
async fn slow_and_redirecting_receivers_fail_and_a_delivery_is_given_up() {
    let (app, worker) = app_with(|w| {
        w.timeout_ms = 300;
        w.max_attempts = 2;
        w.retry_base_secs = 10;
    })
    .await;
    let token = app.org_with_admin("acme").await;
    let (rx, url) = Receiver::start().await;
    let hook = create_hook(&app, "acme", &token, &url, json!(["member.invited"])).await;
    let id = hook["id"].as_str().unwrap();
    rx.script(&[Mode::Slow, Mode::Redirect]);
    app.add("acme", &token, &["ann@acme.example"]).await;

    assert_eq!(worker.run_once().await.unwrap(), 1);
    let l = log(&app, "acme", &token, id).await;
    let a = &l["items"][0];
    assert_eq!(a["succeeded"], false);
    assert!(a["status_code"].is_null());
    assert!(a["error"].as_str().unwrap().contains("300 ms"), "{a}");

    app.clock.advance(Span::seconds(13));
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let l = log(&app, "acme", &token, id).await;
    let a = &l["items"][0];
    assert_eq!(a["status_code"], 307);
    assert!(a["error"].as_str().unwrap().contains("not followed"), "{a}");
    assert!(a["retry_at"].is_null(), "given up after max_attempts");
    assert_eq!(l["pending"], 0);
    // The redirect target never saw a request.
    assert_eq!(rx.got().len(), 2);
    app.clock.advance(Span::days(1));
    assert_eq!(worker.run_once().await.unwrap(), 0);
}

#[tokio::test]
async fn repeated_failure_disables_the_subscription_until_enabled_again() {
    let (app, worker) = app_with(|w| {
        w.disable_after_failures = 3;
        w.max_attempts = 10;
        w.retry_base_secs = 1;
        w.max_retry_secs = 1;
    })
    .await;
    let token = app.org_with_admin("acme").await;
    let (rx, url) = Receiver::start().await;
    let hook = create_hook(&app, "acme", &token, &url, json!(["*"])).await;
    let id = hook["id"].as_str().unwrap();
    rx.script(&[Mode::Fail; 4]);
    app.add("acme", &token, &["ann@acme.example", "bob@acme.example"])
        .await;

    // Two deliveries fail, then both fail again: the third in a row disables it.
    assert_eq!(worker.run_once().await.unwrap(), 2);
    app.clock.advance(Span::seconds(2));
    assert_eq!(worker.run_once().await.unwrap(), 2);
    let h = app
        .get(&format!("/api/v1/orgs/acme/webhooks/{id}"), &token)
        .await;
    assert_eq!(h.body["enabled"], false, "{}", h.text);
    assert!(h.body["consecutive_failures"].as_i64().unwrap() >= 3);
    assert!(
        h.body["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("in a row"),
        "{}",
        h.text
    );
    let audit = app.get("/api/v1/orgs/acme/audit", &token).await;
    let disabled = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "webhook.disabled")
        .unwrap_or_else(|| panic!("{}", audit.text));
    assert_eq!(disabled["actor"]["kind"], "system");

    // Disabled: nothing is sent, and new events queue nothing for it.
    let tried = rx.got().len();
    app.clock.advance(Span::seconds(10));
    assert_eq!(worker.run_once().await.unwrap(), 0);
    app.add("acme", &token, &["cy@acme.example"]).await;
    assert_eq!(worker.run_once().await.unwrap(), 0);
    assert_eq!(rx.got().len(), tried);

    // Enabled again: the run of failures starts over and the waiting deliveries go out.
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/webhooks/{id}"),
            &token,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["consecutive_failures"], 0);
    assert!(r.body["disabled_reason"].is_null());
    let pending = log(&app, "acme", &token, id).await["pending"]
        .as_i64()
        .unwrap();
    assert!(pending >= 1);
    assert_eq!(worker.run_once().await.unwrap() as i64, pending);
    assert_eq!(log(&app, "acme", &token, id).await["pending"], 0);
}

#[tokio::test]
async fn bad_subscriptions_and_other_orgs_hooks_are_refused() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    let (_rx, url) = Receiver::start().await;
    let path = "/api/v1/orgs/acme/webhooks";
    for (body, field) in [
        (json!({"url": "not a url", "event_types": ["*"]}), "url"),
        (
            json!({"url": "http://hooks.example.com/x", "event_types": ["*"]}),
            "url",
        ),
        (
            json!({"url": "ftp://127.0.0.1/x", "event_types": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://u:p@hooks.example.com/x", "event_types": ["*"]}),
            "url",
        ),
        (json!({"url": "", "event_types": ["*"]}), "url"),
        (
            json!({"url": url, "event_types": ["member.exploded"]}),
            "event_types[0]",
        ),
        (
            json!({"url": url, "event_types": ["run.held", "mem*"]}),
            "event_types[1]",
        ),
        (json!({"url": url, "event_types": []}), "event_types"),
    ] {
        let r = app.post(path, &token, body.clone()).await;
        assert_problem(&r, 422);
        assert!(
            r.body["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["field"] == field)),
            "{body}: {}",
            r.text
        );
    }
    for body in [
        json!({"url": url, "event_types": ["*"], "secret": "mine"}),
        json!({"url": url}),
        json!({"url": url, "event_types": "*"}),
    ] {
        let r = app.post(path, &token, body).await;
        assert_problem(&r, 422);
    }
    assert!(
        app.get(path, &token).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // http:// to loopback and https:// anywhere are fine.
    let hook = create_hook(&app, "acme", &token, &url, json!(["*"])).await;
    create_hook(
        &app,
        "acme",
        &token,
        "https://hooks.example.com/x",
        json!(["run.*", "source.failing"]),
    )
    .await;
    let id = hook["id"].as_str().unwrap();

    // Another org's admin: 404 for everything, and nothing changes.
    let one = format!("/api/v1/orgs/acme/webhooks/{id}");
    assert_problem(&app.get(&one, &other).await, 404);
    assert_problem(
        &app.patch(&one, &other, json!({"enabled": false})).await,
        404,
    );
    assert_problem(&app.delete(&one, &other).await, 404);
    assert_problem(&app.get(&format!("{one}/deliveries"), &other).await, 404);
    assert_problem(&app.get(path, &other).await, 404);
    assert_problem(
        &app.post(path, &other, json!({"url": url, "event_types": ["*"]}))
            .await,
        404,
    );
    // Its own org's path with this id: not found either.
    let theirs = format!("/api/v1/orgs/other/webhooks/{id}");
    assert_problem(&app.get(&theirs, &other).await, 404);
    assert_problem(
        &app.patch(&theirs, &other, json!({"enabled": false})).await,
        404,
    );
    assert_problem(&app.delete(&theirs, &other).await, 404);
    assert_problem(
        &app.get("/api/v1/orgs/acme/webhooks/nope", &token).await,
        404,
    );
    assert_eq!(app.get(&one, &token).await.body["enabled"], true);

    // Bad changes change nothing.
    let r = app
        .patch(&one, &token, json!({"url": "http://evil.example/x"}))
        .await;
    assert_problem(&r, 422);
    let r = app
        .patch(&one, &token, json!({"event_types": ["nope"]}))
        .await;
    assert_problem(&r, 422);
    let r = app.patch(&one, &token, json!({"enabled": "yes"})).await;
    assert_problem(&r, 422);
    let r = app.get(&format!("{one}/deliveries?cursor=x"), &token).await;
    assert_problem(&r, 400);
    let now = app.get(&one, &token).await.body;
    assert_eq!(now["url"], url);
    assert_eq!(now["event_types"], json!(["*"]));

    // The operator manages any org's hooks.
    let r = app
        .patch(
            &one,
            OPERATOR,
            json!({"enabled": false, "description": "paused"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["description"], "paused");
}

#[tokio::test]
async fn a_failing_source_gives_run_and_source_events() {
    let dir = crate::sync::temp_dir();
    let file = dir.join("roster.csv");
    let sources = crate::sync::csv_source(
        "hr",
        "acme",
        &format!("path = {:?}", file.display().to_string()),
        "",
    );
    let app = crate::sync::spawn_with_sources(&["acme"], &sources).await;
    let start = feed(&app, "acme", OPERATOR, "").await;
    assert_eq!(types(&start), ["member.invited"], "the owner");
    let run = app.run_source("acme", "hr").await;
    assert_eq!(run["status"], "failed", "{run}");
    let page = feed(
        &app,
        "acme",
        OPERATOR,
        &format!("?after={}", start["next"].as_str().unwrap()),
    )
    .await;
    assert_eq!(types(&page), ["run.failed", "source.failing"]);
    let failed = &page["items"][0]["data"];
    assert_eq!(failed["run"]["id"], run["id"]);
    assert_eq!(failed["run"]["source"], "hr");
    assert_eq!(page["items"][1]["data"]["source"]["name"], "hr");
    assert_eq!(
        page["items"][1]["data"]["source"]["consecutive_failures"],
        1
    );

    // Fixed: the run succeeds and the source has recovered.
    std::fs::write(
        &file,
        "ID,MemberID,FirstName,LastName,IsActive,IsAuthRep\n1,ann@acme.example,Ann,A,True,False\n",
    )
    .unwrap();
    app.clock.advance(Span::hours(2));
    let run = app.run_source("acme", "hr").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let page = feed(
        &app,
        "acme",
        OPERATOR,
        &format!("?after={}", page["next"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        types(&page),
        ["member.invited", "run.succeeded", "source.recovered"],
        "{page}"
    );
    assert_eq!(page["items"][1]["data"]["run"]["created"], 1);
}

#[tokio::test]
async fn erasure_reaches_the_events() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    let ids = app.add("acme", &token, &["zed.private@acme.example"]).await;
    let before = feed(&app, "acme", &token, "").await;
    assert!(before.to_string().contains("zed.private@acme.example"));
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{}/erase", ids[0]),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = feed(&app, "acme", &token, "").await;
    assert!(!after.to_string().contains("zed.private"), "{after}");
    assert_eq!(types(&after)[0], "member.invited");
    assert_eq!(*types(&after).last().unwrap(), "member.erased");
}

#[tokio::test]
async fn the_daemons_own_worker_delivers() {
    let app = spawn_with(Mail::Log, |c| {
        c.webhooks.poll_interval_ms = 50;
        c.webhooks.timeout_ms = 2000;
    })
    .await;
    let token = app.org_with_admin("acme").await;
    let (rx, url) = Receiver::start().await;
    let hook = create_hook(&app, "acme", &token, &url, json!(["member.invited"])).await;
    *rx.secret.lock().unwrap() = hook["secret"].as_str().unwrap().to_owned();
    app.add("acme", &token, &["ann@acme.example"]).await;
    wait_for(30, "the delivery", || async { !rx.got().is_empty() }).await;
    let got = rx.got();
    assert!(got[0].verified, "{:?}", got[0]);
    assert_eq!(
        got[0].body["data"]["member"]["member_email"],
        "ann@acme.example"
    );
    let id = hook["id"].as_str().unwrap();
    wait_for(30, "the attempt in the log", || async {
        log(&app, "acme", &token, id).await["items"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
    assert_eq!(rx.got().len(), 1);
}

#[tokio::test]
async fn two_workers_deliver_each_event_once() {
    let (app, first) = app_with(|_| {}).await;
    let second = Deliverer::new(
        app.state.roster.clone(),
        WebhooksConfig {
            timeout_ms: 500,
            ..WebhooksConfig::default()
        },
    )
    .unwrap();
    let token = app.org_with_admin("acme").await;
    let (rx, url) = Receiver::start().await;
    let hook = create_hook(&app, "acme", &token, &url, json!(["*"])).await;
    *rx.secret.lock().unwrap() = hook["secret"].as_str().unwrap().to_owned();
    let emails: Vec<String> = (0..40).map(|i| format!("p{i}@acme.example")).collect();
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    app.add("acme", &token, &emails).await;

    let (a, b) = tokio::join!(first.run_once(), second.run_once());
    assert_eq!(a.unwrap() + b.unwrap(), 40);
    let got = rx.got();
    let ids: std::collections::HashSet<&str> = got.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(got.len(), 40, "each event sent once");
    assert_eq!(ids.len(), 40);
    assert!(got.iter().all(|g| g.verified));
    let l = log(&app, "acme", &token, hook["id"].as_str().unwrap()).await;
    assert_eq!(l["pending"], 0);
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one_for_a_day() {
    let (app, worker) = app_with(|_| {}).await;
    let token = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    let (rx, url) = Receiver::start().await;
    let hook = create_hook(&app, "acme", &token, &url, json!(["member.invited"])).await;
    let id = hook["id"].as_str().unwrap();
    let old = hook["secret"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/orgs/acme/webhooks/{id}/rotate-secret");
    assert_problem(&app.post(&path, &other, json!({})).await, 404);
    let r = app.post(&path, &token, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let new = r.body["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(
        app.get(&format!("/api/v1/orgs/acme/webhooks/{id}"), &token)
            .await
            .body
            .get("secret")
            .is_none()
    );
    let audit = app.get("/api/v1/orgs/acme/audit", &token).await;
    assert!(audit.text.contains("webhook.secret_rotated"));
    assert!(!audit.text.contains(&new[6..]) && !audit.text.contains(&old[6..]));

    app.add("acme", &token, &["ann@acme.example"]).await;
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let g = rx.got().pop().unwrap();
    assert!(verify(&new, &g.headers, &g.raw), "the new secret signs");
    assert!(
        verify(&old, &g.headers, &g.raw),
        "the old one still does, for a day"
    );

    app.clock.advance(Span::hours(25));
    app.add("acme", &token, &["bob@acme.example"]).await;
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let g = rx.got().pop().unwrap();
    assert!(verify(&new, &g.headers, &g.raw));
    assert!(!verify(&old, &g.headers, &g.raw), "then only the new one");
    assert!(!verify(
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &g.headers,
        &g.raw
    ));
}
