//! The HTTP server itself: the connection cap and slow clients, the header-read timeout,
//! shutdown with half-sent requests, problem bodies for requests hyper cannot parse, the public
//! URL, and which client address the failed-authentication limit counts.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Resolves once the server has closed the connection (end of stream or reset).
async fn closed(mut sock: TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Sends raw bytes on a new connection and reads the whole answer.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    let mut sock = TcpStream::connect(addr(app)).await.unwrap();
    sock.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn problem_of(answer: &str, status: u16) -> Value {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "{answer:.300}"
    );
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{head}"
    );
    let v: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(v["status"], status, "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    v
}

#[tokio::test]
async fn slow_clients_beyond_the_connection_cap_cannot_starve_health_checks() {
    let cap = 4;
    // A long header timeout: only the cap's eviction, not the timeout, may close the slow ones.
    let app = spawn_with(Mail::Log, |c| {
        c.server.max_connections = cap;
        c.server.header_read_timeout_secs = 600;
    })
    .await;
    // Twelve clients that start a request head and never finish it.
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let mut sock = TcpStream::connect(addr(&app)).await.unwrap();
        sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            .await
            .unwrap();
        slow.spawn(closed(sock));
    }
    // A health check still gets through...
    let r = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // ...because the server holds at most `cap` connections: the oldest slow ones were closed.
    let mut gone = 0;
    tokio::time::timeout(Duration::from_secs(30), async {
        while gone < 12 - cap {
            slow.join_next().await.expect("a slow client").unwrap();
            gone += 1;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {gone} slow connections were closed"));
    let r = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_client_dripping_its_headers_is_cut_off() {
    let app = spawn_with(Mail::Log, |c| c.server.header_read_timeout_secs = 1).await;
    let sock = TcpStream::connect(addr(&app)).await.unwrap();
    let (mut read, mut write) = sock.into_split();
    write.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    // One byte every 100 ms keeps any idle timeout from firing; only a deadline on the whole
    // head closes the connection.
    let drip = async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if write.write_all(b"a").await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let mut buf = [0u8; 256];
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::select! {
            r = read.read(&mut buf) => r,
            _ = drip => unreachable!(),
        }
    })
    .await
    .expect("the connection is closed long before 20 s");
    assert!(matches!(outcome, Ok(0) | Err(_)), "{outcome:?}");
}

#[tokio::test]
async fn shutdown_does_not_wait_for_half_sent_requests() {
    // Neither the grace period nor the header-read timeout may be what ends it.
    let mut app = spawn_with(Mail::Log, |c| {
        c.server.shutdown_grace_secs = 120;
        c.server.header_read_timeout_secs = 600;
    })
    .await;
    // A client that sent half a request head, and one idle after a request (kept alive).
    let mut half = TcpStream::connect(addr(&app)).await.unwrap();
    half.write_all(b"POST /api/v1/orgs HTTP/1.1\r\nHost: x\r\nContent-Le")
        .await
        .unwrap();
    // Connections are accepted in order: this answer means `half` was accepted too.
    let r = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    let server = app.stop();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops well within the grace period")
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), closed(half))
        .await
        .expect("the half-sent request's connection is closed");
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_problem_bodies() {
    let app = spawn_app().await;
    let long = "a".repeat(70_000);
    let answer = raw_exchange(
        &app,
        format!("GET /healthz?q={long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(problem_of(&answer, 414)["code"], "uri_too_long");

    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw_exchange(&app, many.as_bytes()).await;
    assert_eq!(problem_of(&answer, 431)["code"], "headers_too_large");

    let answer = raw_exchange(&app, b"NOT AN HTTP REQUEST\r\n\r\n").await;
    assert_eq!(problem_of(&answer, 400)["code"], "malformed_request");

    // The application's own 400s keep their detail.
    let admin = app.org_with_admin("acme").await;
    let r = app.get("/api/v1/orgs/acme/members?limit=0", &admin).await;
    assert_problem(&r, 400);
    assert!(r.text.contains("limit"), "{}", r.text);
}

#[tokio::test]
async fn scim_locations_and_invitation_links_use_the_bound_address_by_default() {
    let app = spawn_with(Mail::Log, |c| c.invitations.accept_url = None).await;
    let (admin, scim) = app.scim_org("acme").await;
    let r = app
        .scim(
            Method::POST,
            "/Users",
            &scim,
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@acme.example"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap();
    let want = format!("{}/scim/v2/Users/{id}", app.base);
    assert_eq!(r.headers["location"], want.as_str());
    assert_eq!(r.body["meta"]["location"], want.as_str());
    app.add("acme", &admin, &["bob@acme.example"]).await;
    let mail = app.outbox("acme").await;
    let bob = mail
        .iter()
        .find(|m| m.to_address == "bob@acme.example")
        .unwrap();
    assert!(
        bob.body.contains(&format!("{}/invite/", app.base)),
        "{}",
        bob.body
    );
}

#[tokio::test]
async fn a_configured_public_url_is_used_as_is() {
    let app = spawn_with(Mail::Log, |c| {
        c.server.public_url = "https://roster.example/base/".into()
    })
    .await;
    let (_, scim) = app.scim_org("acme").await;
    let r = app
        .scim(
            Method::POST,
            "/Users",
            &scim,
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@acme.example"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let location = r.headers["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://roster.example/base/scim/v2/Users/"),
        "{location}"
    );
}

async fn failures_until_limited(app: &TestApp, forwarded_for: &str) -> u16 {
    app.client
        .get(app.url("/api/v1/orgs"))
        .bearer_auth("wrong")
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    // Untrusted peer: the header is ignored; every failure counts against the peer.
    let app = spawn_with(Mail::Log, |c| c.server.auth_failures_per_minute = 2).await;
    assert_eq!(failures_until_limited(&app, "203.0.113.1").await, 401);
    assert_eq!(failures_until_limited(&app, "203.0.113.2").await, 401);
    assert_eq!(failures_until_limited(&app, "203.0.113.3").await, 429);

    // Trusted peer (the test client on loopback): the right-most untrusted address counts.
    let app = spawn_with(Mail::Log, |c| {
        c.server.auth_failures_per_minute = 2;
        c.server.trusted_proxies = vec![
            rosterd::config::TrustedProxy("127.0.0.0/8".parse().unwrap()),
            rosterd::config::TrustedProxy("10.0.0.7/32".parse().unwrap()),
        ];
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            failures_until_limited(&app, "198.51.100.9, 203.0.113.1, 10.0.0.7").await,
            401
        );
    }
    assert_eq!(
        failures_until_limited(&app, "203.0.113.1").await,
        429,
        "the same client through another chain"
    );
    // Another client behind the same proxy has its own budget (a spoofed left part is ignored).
    assert_eq!(
        failures_until_limited(&app, "203.0.113.1, 203.0.113.2").await,
        401
    );
    // A hop written with its port is the same client.
    assert_eq!(
        failures_until_limited(&app, "203.0.113.1:4711, 10.0.0.7").await,
        429
    );
}
