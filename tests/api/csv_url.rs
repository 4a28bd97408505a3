//! The CSV source over HTTP against a local server: conditional requests (an unchanged roster
//! costs a `304`, which never removes anyone), and the limits on a record's length and on a
//! run's fetch time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use rosterd::config::OrgSeed;

use crate::helpers::*;
use crate::sync::{Person, csv_source, parse_sources, roster_csv};

/// The served roster, its validators, and the validators each request carried.
#[derive(Default)]
struct Served {
    body: String,
    etag: String,
    last_modified: String,
    /// (If-None-Match, If-Modified-Since) of each request, in order.
    asked: Vec<(Option<String>, Option<String>)>,
    downloads: usize,
}

async fn serve(served: Arc<Mutex<Served>>) -> String {
    let router = axum::Router::new().route(
        "/roster.csv",
        axum::routing::get(move |headers: HeaderMap| {
            let served = served.clone();
            async move {
                let mut s = served.lock().unwrap();
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let (inm, ims) = (header("if-none-match"), header("if-modified-since"));
                s.asked.push((inm.clone(), ims));
                if inm.as_deref() == Some(s.etag.as_str()) {
                    return (StatusCode::NOT_MODIFIED, [("etag", s.etag.clone())]).into_response();
                }
                s.downloads += 1;
                (
                    [
                        ("etag", s.etag.clone()),
                        ("last-modified", s.last_modified.clone()),
                    ],
                    s.body.clone(),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

const PEOPLE: [Person; 3] = [
    ("1", true, "A", "A", "a@etag.example", false),
    ("2", true, "B", "B", "b@etag.example", false),
    ("3", true, "C", "C", "c@etag.example", false),
];

/// The second run sends the first download's validators and gets a 304: the run succeeds as
/// "unchanged", reads nobody and removes nobody, though the source is authoritative and may
/// remove everyone. A changed file is downloaded again and applied; then it is the one whose
/// validators are sent.
#[tokio::test]
async fn an_unchanged_roster_costs_a_304_and_removes_nobody() {
    let served = Arc::new(Mutex::new(Served {
        body: roster_csv(&PEOPLE),
        etag: "\"v1\"".into(),
        last_modified: "Mon, 30 Nov 2026 08:00:00 GMT".into(),
        ..Served::default()
    }));
    let base = serve(served.clone()).await;
    let src = csv_source(
        "remote",
        "etag",
        &format!("url = \"{base}/roster.csv\""),
        "authoritative = true\nmax_removals = \"100%\"",
    );
    let app = crate::sync::spawn_with_sources(&["etag"], &src).await;
    let r = app.run_source("etag", "remote").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["created"], 3, "{r}");
    let before = app.snapshot("etag").await;

    let r = app.run_source("etag", "remote").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["fetched"], 0, "{r}");
    assert_eq!(r["counts"]["removed"], 0, "{r}");
    assert!(
        r["warnings"]
            .to_string()
            .contains("unchanged since the last applied run"),
        "{r}"
    );
    assert_eq!(app.snapshot("etag").await, before, "nothing changed");
    {
        let s = served.lock().unwrap();
        assert_eq!(s.asked[0], (None, None), "the first run asks for the file");
        assert_eq!(
            s.asked[1],
            (
                Some("\"v1\"".into()),
                Some("Mon, 30 Nov 2026 08:00:00 GMT".into())
            ),
            "the second sends the validators"
        );
        assert_eq!(s.downloads, 1);
    }

    // The file changes: the validators no longer match, it is downloaded and applied.
    {
        let mut s = served.lock().unwrap();
        s.body = roster_csv(&PEOPLE[..2]);
        s.etag = "\"v2\"".into();
        s.last_modified = "Mon, 30 Nov 2026 09:00:00 GMT".into();
    }
    let r = app.run_source("etag", "remote").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["fetched"], 2, "{r}");
    assert_eq!(r["counts"]["removed"], 1, "{r}");
    let r = app.run_source("etag", "remote").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["fetched"], 0, "{r}");
    let s = served.lock().unwrap();
    assert_eq!(s.asked[2].0.as_deref(), Some("\"v1\""));
    assert_eq!(
        s.asked[3].0.as_deref(),
        Some("\"v2\""),
        "the new validators"
    );
    assert_eq!(s.downloads, 2);
}

/// A record longer than `sync.max_record_bytes` fails the run (the reader stops instead of
/// growing the record), and a roster that drips in slower than `sync.max_fetch_secs` allows is
/// cut off, its download stopped; a download larger than `sync.max_response_bytes` fails.
#[tokio::test]
async fn an_over_long_record_and_a_dripping_download_fail_the_run() {
    let dripping_closed = Arc::new(AtomicBool::new(false));
    let dc = dripping_closed.clone();
    let long = format!(
        "{}1,True,A,{},a@long.example,False\n",
        roster_csv(&PEOPLE[..1]),
        "x".repeat(100_000)
    );
    let router = axum::Router::new()
        .route(
            "/long.csv",
            axum::routing::get(move || {
                let long = long.clone();
                async move { long }
            }),
        )
        .route(
            "/big.csv",
            axum::routing::get(|| async {
                let mut body = roster_csv(&PEOPLE);
                for i in 0..20_000 {
                    body.push_str(&format!("{i},True,A,B,p{i}@big.example,False\n"));
                }
                body
            }),
        )
        .route(
            "/drip.csv",
            axum::routing::get(move || {
                let dc = dc.clone();
                async move {
                    crate::http_json::drip(
                        "ID,IsActive,FirstName,LastName,MemberID,IsAuthRep\n1,True,A,",
                        dc,
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    // The long record with the default fetch time limit (a loaded machine may be slow); the
    // drip with a limit of one second.
    let app_for = |name: &'static str, max_fetch_secs: u64, max_response_bytes: u64| {
        let parsed = parse_sources(&csv_source(
            name,
            name,
            &format!("url = \"{base}/{name}.csv\""),
            "",
        ));
        spawn_with(Mail::Log, move |c| {
            c.orgs = vec![OrgSeed {
                slug: name.into(),
                name: name.into(),
                owner_email: None,
            }];
            c.sources = parsed;
            c.sync.fetch_retries = 0;
            c.sync.max_record_bytes = 16 * 1024;
            c.sync.max_fetch_secs = max_fetch_secs;
            c.sync.max_response_bytes = max_response_bytes;
        })
    };
    let app = app_for("long", 3600, 64 << 20).await;
    let r = app.run_source("long", "long").await;
    assert_eq!(r["status"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("a record longer than sync.max_record_bytes (16384 bytes)"),
        "{msg}"
    );
    // A download larger than sync.max_response_bytes in all (each record short) fails too.
    let app = app_for("big", 3600, 100_000).await;
    let r = app.run_source("big", "big").await;
    assert_eq!(r["status"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("larger than sync.max_response_bytes (100000 bytes)"),
        "{msg}"
    );
    assert_eq!(r["counts"]["created"], 0, "{r}");
    let app = app_for("drip", 1, 64 << 20).await;
    let r = app.run_source("drip", "drip").await;
    assert_eq!(r["status"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("the read took longer than sync.max_fetch_secs (1 s)"),
        "{msg}"
    );
    wait_for(10, "the dripping download to stop", || async {
        dripping_closed.load(Ordering::SeqCst)
    })
    .await;
}
