//! Prometheus metrics at `/metrics`: who may read them (the metrics token or the operator token
//! on the main listener, anyone on `metrics.listen`, nobody when neither is configured), and
//! that requests, SCIM operations by client, sync runs, emails and the database's figures show
//! up under their documented names after the things they count happened.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;
use crate::sync::{Person, csv_source, parse_sources, roster_csv, temp_dir};

/// The value of the sample whose name and labels are exactly `series` (labels in the
/// exporter's order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

async fn scrape(app: &TestApp, token: Option<&str>) -> (u16, String) {
    let mut req = app.client.get(app.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn metrics_count_what_happened_and_only_the_token_reads_them() {
    const PEOPLE: [Person; 2] = [
        ("1", true, "A", "A", "a@metrics.example", false),
        ("2", true, "B", "B", "b@metrics.example", false),
    ];
    let dir = temp_dir();
    let file = dir.join("roster.csv");
    std::fs::write(&file, roster_csv(&PEOPLE)).unwrap();
    let sources = parse_sources(&csv_source(
        "people",
        "acme",
        &format!("path = \"{}\"", file.display()),
        "",
    ));
    let token_file = dir.join("metrics-token");
    std::fs::write(&token_file, "scrape-me-0123456789\n").unwrap();
    let app = spawn_with(Mail::Files, |c| {
        c.orgs = vec![rosterd::config::OrgSeed {
            slug: "acme".into(),
            name: "Acme".into(),
            owner_email: Some("owner@acme.example".into()),
        }];
        c.sources = sources;
        c.metrics.token = Some(
            rosterd::secret::SecretRef::parse(&format!("file:{}", token_file.display()))
                .expect("a secret reference"),
        );
    })
    .await;

    // Without the token, or with a wrong one: refused, and nothing about the metrics leaks.
    let (status, text) = scrape(&app, None).await;
    assert_eq!(status, 401, "{text}");
    assert!(!text.contains("rosterd_"), "{text}");
    assert_eq!(scrape(&app, Some("wrong")).await.0, 401);

    // Things to count: an admin list, a SCIM client's create (and a refused one), a sync run,
    // a delivered invitation email.
    let r = app
        .post(
            "/api/v1/orgs/acme/tokens",
            OPERATOR,
            json!({"kind": "scim", "name": "Okta"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let scim = r.body["token"].as_str().unwrap().to_owned();
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "s@metrics.example"});
    let r = app
        .scim(Method::POST, "/Users", &scim, Some(user.clone()))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.scim(Method::POST, "/Users", &scim, Some(user)).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(
        app.get("/api/v1/orgs/acme/members", OPERATOR).await.status,
        200
    );
    let run = app.run_source("acme", "people").await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let token = "scrape-me-0123456789";
    wait_for(30, "the run and the emails to be counted", || async {
        let text = scrape(&app, Some(token)).await.1;
        sample(
            &text,
            r#"rosterd_sync_runs_total{source="people",status="succeeded"}"#,
        ) == Some(1.0)
            && sample(&text, "rosterd_mail_sent_total").is_some_and(|n| n >= 1.0)
    })
    .await;
    let (status, text) = scrape(&app, Some(token)).await;
    assert_eq!(status, 200);
    let has = |series: &str| sample(&text, series);
    assert_eq!(
        has(
            r#"rosterd_http_requests_total{route="/api/v1/orgs/{org}/members",method="GET",status="200"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        has(r#"rosterd_http_request_duration_seconds_count{route="/api/v1/orgs/{org}/members",method="GET"}"#)
            .is_some(),
        "{text}"
    );
    assert_eq!(
        has(
            r#"rosterd_scim_operations_total{client="Okta",operation="create_user",result="success"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        has(
            r#"rosterd_scim_operations_total{client="Okta",operation="create_user",result="client_error"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        has(r#"rosterd_sync_rows_total{source="people",outcome="created"}"#),
        Some(2.0),
        "{text}"
    );
    assert!(
        has(r#"rosterd_sync_run_duration_seconds_count{source="people"}"#) == Some(1.0),
        "{text}"
    );
    assert_eq!(has(r#"rosterd_sync_runs_held{source="people"}"#), Some(0.0));
    assert_eq!(has("rosterd_sync_sources_failing"), Some(0.0));
    assert!(has("rosterd_outbox_backlog").is_some(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("rosterd_db_pool_connections{pool=")),
        "{text}"
    );
    // The documented kinds of the series.
    assert!(
        text.contains("# TYPE rosterd_http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE rosterd_outbox_backlog gauge"),
        "{text}"
    );
    // Raw paths never become labels: no member id or slug in a route.
    assert!(!text.contains("route=\"/api/v1/orgs/acme"), "{text}");

    // The operator token reads them too.
    assert_eq!(scrape(&app, Some(OPERATOR)).await.0, 200);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_metrics_listener_serves_without_a_token_and_nothing_configured_serves_nothing() {
    let app = spawn_with(Mail::Log, |c| {
        c.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let addr = app.metrics_addr.expect("the metrics listener is bound");
    let res = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("rosterd_db_pool_connections")
    );
    // That listener serves nothing else.
    let res = reqwest::get(format!("http://{addr}/api/v1/orgs"))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Without a token configured, the main listener does not serve them at all, even to the
    // operator.
    let (status, _) = scrape(&app, Some(OPERATOR)).await;
    assert_eq!(status, 404);
}
