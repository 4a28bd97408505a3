//! The HTTP JSON connector against a local server speaking each pagination style (offset/limit,
//! page number, cursor, next URL, `Link` header) with its credentials, and the Moodle preset
//! (web service token in the query, errors as a 200 body).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rosterd::config::OrgSeed;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sync::{parse_sources, temp_dir};

const PEOPLE: usize = 250;

fn user(i: usize) -> Value {
    json!({"id": i, "email": format!("u{i}@json.example"), "firstname": "F", "lastname": format!("L{i}"),
           "suspended": i == 7})
}

fn slice(from: usize, n: usize) -> Vec<Value> {
    (from..(from + n).min(PEOPLE)).map(user).collect()
}

type Q = Query<std::collections::HashMap<String, String>>;

fn num(q: &Q, k: &str, d: usize) -> usize {
    q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d)
}

async fn fake_lms(hits: Arc<AtomicUsize>) -> (String, Arc<AtomicUsize>) {
    use axum::routing::{get, post};
    let h = hits.clone();
    // OAuth2: tokens `tok-1`, `tok-2`, …; the current one is revoked after two pages, so a run
    // must get a fresh token mid-way.
    let issued = Arc::new(AtomicUsize::new(0));
    let uses = Arc::new(AtomicUsize::new(0));
    let (i1, i2, u2) = (issued.clone(), issued.clone(), uses.clone());
    let router = axum::Router::new()
        .route(
            "/oauth/token",
            post(move |headers: HeaderMap, body: String| {
                let i1 = i1.clone();
                async move {
                    // client_id "rosterd", secret "oauth-secret", sent as HTTP basic.
                    let basic = headers.get("authorization").and_then(|v| v.to_str().ok());
                    if basic != Some("Basic cm9zdGVyZDpvYXV0aC1zZWNyZXQ=")
                        || !body.contains("grant_type=client_credentials")
                        || !body.contains("scope=roster.read")
                    {
                        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"})))
                            .into_response();
                    }
                    let n = i1.fetch_add(1, Ordering::SeqCst) + 1;
                    axum::Json(json!({"access_token": format!("tok-{n}"), "token_type": "bearer", "expires_in": 3600}))
                        .into_response()
                }
            }),
        )
        .route(
            "/oauth/users",
            get(move |headers: HeaderMap, q: Q| {
                let (i2, u2) = (i2.clone(), u2.clone());
                async move {
                    let current = format!("Bearer tok-{}", i2.load(Ordering::SeqCst));
                    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
                    if given != Some(current.as_str()) || u2.fetch_add(1, Ordering::SeqCst) == 2 {
                        u2.store(0, Ordering::SeqCst);
                        return (StatusCode::UNAUTHORIZED, "token expired").into_response();
                    }
                    axum::Json(json!({"users": slice(num(&q, "offset", 0), num(&q, "limit", 10))}))
                        .into_response()
                }
            }),
        )
        .route(
            "/offset",
            get(move |headers: HeaderMap, q: Q| {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some("Bearer bearer-secret")
                    {
                        return (StatusCode::UNAUTHORIZED, "no").into_response();
                    }
                    axum::Json(slice(num(&q, "offset", 0), num(&q, "limit", 10))).into_response()
                }
            }),
        )
        .route(
            "/page",
            get(|headers: HeaderMap, q: Q| async move {
                // Basic u:p
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    != Some("Basic dTpw")
                {
                    return (StatusCode::UNAUTHORIZED, "no").into_response();
                }
                let (page, size) = (num(&q, "page", 1), num(&q, "per_page", 10));
                axum::Json(json!({"data": {"users": slice((page - 1) * size, size)}}))
                    .into_response()
            }),
        )
        .route(
            "/cursor",
            get(|headers: HeaderMap, q: Q| async move {
                if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("key-secret") {
                    return (StatusCode::FORBIDDEN, "no").into_response();
                }
                let from = num(&q, "after", 0);
                let next = (from + 100 < PEOPLE).then(|| (from + 100).to_string());
                axum::Json(json!({"items": slice(from, 100), "meta": {"next": next}}))
                    .into_response()
            }),
        )
        .route(
            "/next",
            get(|q: Q| async move {
                let from = num(&q, "from", 0);
                let next = (from + 100 < PEOPLE).then(|| format!("/next?from={}", from + 100));
                axum::Json(json!({"results": slice(from, 100), "next": next}))
            }),
        )
        .route(
            "/link",
            get(|q: Q| async move {
                let from = num(&q, "from", 0);
                let mut res: Response = axum::Json(slice(from, 100)).into_response();
                if from + 100 < PEOPLE {
                    let link = format!(
                        "</link?from=0>; rel=\"first\", </link?from={}>; rel=\"next\"",
                        from + 100
                    );
                    res.headers_mut().insert("link", link.parse().unwrap());
                }
                res
            }),
        )
        .route(
            "/moodle/webservice/rest/server.php",
            get(|q: Q| async move {
                if q.get("wsfunction").map(String::as_str) != Some("core_user_get_users")
                    || q.get("moodlewsrestformat").map(String::as_str) != Some("json")
                {
                    return axum::Json(json!({"exception": "invalid_parameter_exception",
                        "errorcode": "invalidparameter", "message": "Invalid parameter value detected"}));
                }
                if q.get("wstoken").map(String::as_str) != Some("moodle-token") {
                    return axum::Json(json!({"exception": "moodle_exception",
                        "errorcode": "invalidtoken", "message": "Invalid token - token not found"}));
                }
                axum::Json(json!({"users": slice(0, PEOPLE), "warnings": []}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), issued)
}

const MAPPING: &str = r#"
[sources.mapping]
external_id = "id"
member_email = "email"
given_name = "firstname"
family_name = "lastname"
active = { field = "suspended", map = { "true" = "false", "false" = "true" } }
"#;

async fn count(app: &TestApp, org: &str) -> (u64, u64) {
    let r = app
        .get(&format!("/api/v1/orgs/{org}/members/counts"), OPERATOR)
        .await;
    let get = |k: &str| r.body[k].as_u64().unwrap_or(0);
    (get("invited") + get("enrolled"), get("removed"))
}

#[tokio::test]
async fn every_pagination_style_reads_the_whole_roster_with_its_credentials() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (base, issued) = fake_lms(hits.clone()).await;
    let dir = temp_dir();
    let secret = |name: &str, value: &str| {
        let p = dir.join(name);
        std::fs::write(&p, format!("{value}\n")).unwrap();
        format!("file:{}", p.display())
    };
    let sources = [
        (
            "offset",
            format!(
                "url = \"{base}/offset\"\nauth = {{ type = \"bearer\", token = \"{}\" }}\npagination = {{ style = \"offset\", limit = 100 }}",
                secret("bearer", "bearer-secret")
            ),
        ),
        (
            "page",
            format!(
                "url = \"{base}/page\"\nrecords_path = \"data.users\"\nauth = {{ type = \"basic\", username = \"u\", password = \"{}\" }}\npagination = {{ style = \"page\", size = 100 }}",
                secret("basic", "p")
            ),
        ),
        (
            "cursor",
            format!(
                "url = \"{base}/cursor\"\nrecords_path = \"items\"\nauth = {{ type = \"header\", name = \"X-Api-Key\", value = \"{}\" }}\npagination = {{ style = \"cursor\", cursor_param = \"after\", cursor_path = \"meta.next\" }}",
                secret("key", "key-secret")
            ),
        ),
        (
            "next",
            format!(
                "url = \"{base}/next\"\nrecords_path = \"results\"\npagination = {{ style = \"next_url\", next_path = \"next\" }}"
            ),
        ),
        (
            "link",
            format!("url = \"{base}/link\"\npagination = {{ style = \"link_header\" }}"),
        ),
        (
            "moodle",
            format!(
                "preset = \"moodle\"\nbase_url = \"{base}/moodle\"\nauth = {{ type = \"query\", name = \"wstoken\", value = \"{}\" }}",
                secret("moodle", "moodle-token")
            ),
        ),
        (
            "oauth",
            format!(
                "url = \"{base}/oauth/users\"\nrecords_path = \"users\"\nauth = {{ type = \"oauth2_client_credentials\", token_url = \"{base}/oauth/token\", client_id = \"rosterd\", client_secret = \"{}\", scopes = [\"roster.read\"] }}\npagination = {{ style = \"offset\", limit = 50 }}",
                secret("oauth", "oauth-secret")
            ),
        ),
        (
            "moodle-bad",
            format!(
                "preset = \"moodle\"\nbase_url = \"{base}/moodle\"\nauth = {{ type = \"query\", name = \"wstoken\", value = \"{}\" }}",
                secret("moodle-bad", "wrong")
            ),
        ),
    ];
    let mut text = String::new();
    for (name, settings) in &sources {
        text.push_str(&format!(
            "[[sources]]\nname = \"{name}\"\norg = \"{name}\"\nkind = \"http_json\"\nauthoritative = true\nmax_removals = \"100%\"\n{settings}\n{MAPPING}\n"
        ));
    }
    let parsed = parse_sources(&text);
    let orgs: Vec<OrgSeed> = sources
        .iter()
        .map(|(n, _)| OrgSeed {
            slug: (*n).into(),
            name: (*n).into(),
            owner_email: None,
        })
        .collect();
    let app = spawn_with(Mail::Log, move |c| {
        c.orgs = orgs;
        c.sources = parsed;
        c.sync.retry_base_ms = 10;
    })
    .await;
    for (name, _) in &sources[..7] {
        let r = app
            .post(
                &format!("/api/v1/orgs/{name}/sources/{name}/runs"),
                OPERATOR,
                json!({}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/orgs/{name}/runs/{id}");
        wait_for(30, "the run", || async {
            app.get(&path, OPERATOR).await.body["status"] != "running"
        })
        .await;
        let run = app.get(&path, OPERATOR).await.body;
        assert_eq!(run["status"], "succeeded", "{name}: {run}");
        assert_eq!(run["counts"]["fetched"], PEOPLE, "{name}: {run}");
        // Everyone but the suspended user 7.
        assert_eq!(run["counts"]["created"], PEOPLE - 1, "{name}: {run}");
        assert_eq!(count(&app, name).await, ((PEOPLE - 1) as u64, 0), "{name}");
    }
    // Moodle answers a bad token with an exception object in a 200: the run fails, nothing
    // changes, and the message says why.
    let r = app
        .post(
            "/api/v1/orgs/moodle-bad/sources/moodle-bad/runs",
            OPERATOR,
            json!({}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/orgs/moodle-bad/runs/{id}");
    wait_for(30, "the run", || async {
        app.get(&path, OPERATOR).await.body["status"] != "running"
    })
    .await;
    let run = app.get(&path, OPERATOR).await.body;
    assert_eq!(run["status"], "failed", "{run}");
    let msg = run["message"].as_str().unwrap();
    assert!(msg.contains("Invalid token"), "{msg}");
    assert!(!msg.contains("wrong"), "the token is never shown: {msg}");
    assert_eq!(count(&app, "moodle-bad").await, (0, 0));
    assert!(hits.load(Ordering::SeqCst) >= 3, "the offset source paged");
    assert!(
        issued.load(Ordering::SeqCst) >= 2,
        "the OAuth2 token was renewed mid-run after a 401"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs the binary's `sync` against the fake LMS at `trace` log level and returns its exit code
/// and everything it printed.
async fn sync_with_logs(base: &str, settings: &str, retries: usize) -> (i32, String) {
    let source = format!(
        "[[sources]]\nname = \"lms\"\norg = \"logs\"\nkind = \"http_json\"\n{settings}\n{MAPPING}\n"
    )
    .replace("{base}", base);
    cli_sync_at_trace(&source, "lms", retries).await
}

/// Runs `rosterd sync NAME` for `source` (a `[[sources]]` table of org `logs`) at `trace` log
/// level, on a fresh database, and returns the exit code and everything the binary printed.
pub async fn cli_sync_at_trace(source: &str, name: &str, retries: usize) -> (i32, String) {
    let (url, cleanup) = fresh_database().await;
    let _db = DbGuard(cleanup);
    let dir = temp_dir();
    let config = dir.join("rosterd.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{url}\"\n[mail]\nsink = \"log\"\n[sync]\nfetch_retries = {retries}\nretry_base_ms = 10\nrequest_timeout_secs = 1\n\
             [[orgs]]\nslug = \"logs\"\nname = \"Logs\"\n{source}\n",
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rosterd"))
        .arg("--config")
        .arg(&config)
        .args(["sync", name])
        .env("RUST_LOG", "trace")
        .env_remove("ROSTERD_DATABASE_URL")
        .env_remove("ROSTERD_CONFIG")
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn secrets_never_reach_the_logs_and_a_hung_server_times_out() {
    let (base, _) = fake_lms(Arc::new(AtomicUsize::new(0))).await;
    let dir = temp_dir();
    let token = dir.join("token");
    std::fs::write(&token, "moodle-token\n").unwrap();
    let settings = format!(
        "preset = \"moodle\"\nbase_url = \"{{base}}/moodle\"\nauth = {{ type = \"query\", name = \"wstoken\", value = \"file:{}\" }}",
        token.display()
    );
    let (code, logs) = sync_with_logs(&base, &settings, 0).await;
    assert_eq!(code, 0, "{logs}");
    assert!(logs.contains("created 249"), "{logs}");
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "logs at trace level: {logs}"
    );
    assert!(
        !logs.contains("moodle-token"),
        "the token leaked into the logs"
    );

    // A server that accepts the connection and never answers: the request times out (1 s), the
    // run fails and says so.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = hung.accept().await {
            held.push(sock);
        }
    });
    let started = std::time::Instant::now();
    let (code, logs) =
        sync_with_logs(&format!("http://{hung_addr}"), "url = \"{base}/users\"", 0).await;
    assert_eq!(code, 1, "{logs}");
    assert!(logs.contains("timed out"), "{logs}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(dir);
}

/// A source's `max_requests_per_second` spaces its requests out: the fake server notes when each
/// page request arrives, and no two arrive closer than the limit allows (a lower bound, which a
/// slow machine only widens).
#[tokio::test]
async fn a_source_never_asks_faster_than_its_rate_limit() {
    use std::sync::Mutex;
    use std::time::Instant;
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let a = arrivals.clone();
    let router = axum::Router::new().route(
        "/paced",
        axum::routing::get(move |q: Q| {
            let a = a.clone();
            async move {
                a.lock().unwrap().push(Instant::now());
                axum::Json(json!({"data": {"users": slice((num(&q, "page", 1) - 1) * 100, 100)}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let text = format!(
        "[[sources]]\nname = \"paced\"\norg = \"paced\"\nkind = \"http_json\"\nurl = \"{base}/paced\"\n\
         records_path = \"data.users\"\npagination = {{ style = \"page\", size = 100 }}\n\
         max_requests_per_second = 4\n{MAPPING}\n"
    );
    let parsed = parse_sources(&text);
    let app = spawn_with(Mail::Log, move |c| {
        c.orgs = vec![OrgSeed {
            slug: "paced".into(),
            name: "Paced".into(),
            owner_email: None,
        }];
        c.sources = parsed;
    })
    .await;
    let r = app
        .post("/api/v1/orgs/paced/sources/paced/runs", OPERATOR, json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let path = format!("/api/v1/orgs/paced/runs/{}", r.body["id"].as_str().unwrap());
    wait_for(30, "the run", || async {
        app.get(&path, OPERATOR).await.body["status"] != "running"
    })
    .await;
    let run = app.get(&path, OPERATOR).await.body;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["fetched"], PEOPLE, "{run}");
    let times = arrivals.lock().unwrap().clone();
    // 250 people in pages of 100: two full pages and a short third.
    assert_eq!(times.len(), 3);
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        // 4 per second: sent 250 ms apart. Arrivals may come closer by how late the earlier
        // request arrived (a loaded machine); without the limit they are a few ms apart.
        assert!(
            gap >= std::time::Duration::from_millis(150),
            "requests {gap:?} apart"
        );
    }
}

/// What a server that must never be reached saw: every request, with its credentials.
#[derive(Default)]
struct Elsewhere {
    requests: std::sync::Mutex<Vec<String>>,
}

/// A server on another origin (another port) that notes every request it gets.
async fn elsewhere() -> (String, Arc<Elsewhere>) {
    let seen = Arc::new(Elsewhere::default());
    let s = seen.clone();
    let router = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
            let s = s.clone();
            async move {
                s.requests
                    .lock()
                    .unwrap()
                    .push(format!("{uri} {headers:?} {body}"));
                axum::Json(json!({"access_token": "stolen", "token_type": "bearer",
                    "expires_in": 3600, "results": [], "next": null}))
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, seen)
}

/// Credentials stay with the configured origin: a next page or `Link` on another origin is not
/// followed, a redirect to another origin is not followed, and a token request follows no
/// redirect at all (not even within its origin); each fails the run and the other side never
/// hears from rosterd.
#[tokio::test]
async fn credentials_never_follow_links_or_redirects_to_another_origin() {
    use axum::routing::{get, post};
    let (away, seen) = elsewhere().await;
    let token_hits = Arc::new(AtomicUsize::new(0));
    let t = token_hits.clone();
    let (a1, a2, a3, a4) = (away.clone(), away.clone(), away.clone(), away.clone());
    let router = axum::Router::new()
        .route(
            "/next",
            get(move || {
                let away = a1.clone();
                async move {
                    axum::Json(
                        json!({"results": slice(0, 100), "next": format!("{away}/next?from=100")}),
                    )
                }
            }),
        )
        .route(
            "/link",
            get(move || {
                let away = a2.clone();
                async move {
                    let mut res: Response = axum::Json(slice(0, 100)).into_response();
                    let link = format!("<{away}/link?from=100>; rel=\"next\"");
                    res.headers_mut().insert("link", link.parse().unwrap());
                    res
                }
            }),
        )
        .route(
            "/moved",
            get(move || {
                let away = a3.clone();
                async move { axum::response::Redirect::temporary(&format!("{away}/users")) }
            }),
        )
        .route(
            "/token-away",
            post(move || {
                let away = a4.clone();
                async move { axum::response::Redirect::permanent(&format!("{away}/token")) }
            }),
        )
        .route(
            "/token-here",
            post(|| async { axum::response::Redirect::temporary("/token") }),
        )
        .route(
            "/token",
            post(move || {
                let t = t.clone();
                async move {
                    t.fetch_add(1, Ordering::SeqCst);
                    axum::Json(
                        json!({"access_token": "tok", "token_type": "bearer", "expires_in": 3600}),
                    )
                }
            }),
        )
        .route("/users", get(|| async { axum::Json(slice(0, 10)) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let dir = temp_dir();
    let secret = |name: &str, value: &str| {
        let p = dir.join(name);
        std::fs::write(&p, format!("{value}\n")).unwrap();
        format!("file:{}", p.display())
    };
    let oauth = |path: &str| {
        format!(
            "url = \"{base}/users\"\nauth = {{ type = \"oauth2_client_credentials\", token_url = \"{base}{path}\", client_id = \"rosterd\", client_secret = \"{}\" }}",
            secret(&path[1..], "oauth-secret")
        )
    };
    let sources = [
        (
            "next",
            format!(
                "url = \"{base}/next\"\nrecords_path = \"results\"\npagination = {{ style = \"next_url\" }}\nauth = {{ type = \"bearer\", token = \"{}\" }}",
                secret("bearer", "bearer-secret")
            ),
            "the next page is on another origin",
        ),
        (
            "link",
            format!(
                "url = \"{base}/link\"\npagination = {{ style = \"link_header\" }}\nauth = {{ type = \"query\", name = \"key\", value = \"{}\" }}",
                secret("key", "query-secret")
            ),
            "the next page is on another origin",
        ),
        (
            "moved",
            format!(
                "url = \"{base}/moved\"\nauth = {{ type = \"query\", name = \"key\", value = \"{}\" }}",
                secret("key2", "query-secret")
            ),
            "redirected to another origin",
        ),
        ("token-away", oauth("/token-away"), "never follow redirects"),
        ("token-here", oauth("/token-here"), "never follow redirects"),
    ];
    let mut text = String::new();
    for (name, settings, _) in &sources {
        text.push_str(&format!(
            "[[sources]]\nname = \"{name}\"\norg = \"{name}\"\nkind = \"http_json\"\nauthoritative = true\nmax_removals = \"100%\"\n{settings}\n{MAPPING}\n"
        ));
    }
    let orgs: Vec<&str> = sources.iter().map(|(n, _, _)| *n).collect();
    let app = crate::sync::spawn_with_sources(&orgs, &text).await;
    for (name, _, why) in &sources {
        let before = app.snapshot(name).await;
        let r = app.run_source(name, name).await;
        assert_eq!(r["status"], "failed", "{name}: {r}");
        let msg = r["message"].as_str().unwrap();
        assert!(msg.contains(why), "{name}: {msg}");
        assert!(!msg.contains("secret"), "{name}: {msg}");
        assert_eq!(app.snapshot(name).await, before, "{name}: nothing changed");
    }
    assert_eq!(
        *seen.requests.lock().unwrap(),
        Vec::<String>::new(),
        "the other origin never heard from rosterd"
    );
    assert_eq!(
        token_hits.load(Ordering::SeqCst),
        0,
        "a token request's redirect is not followed even within its origin"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A body stream of `chunk` repeated `n` times (`None`: forever), the first `lead` before.
fn stream_of(lead: &'static str, chunk: &str, n: Option<usize>) -> axum::body::Body {
    let chunk = bytes::Bytes::from(chunk.to_owned());
    let head = futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(lead.as_bytes()))
    });
    let body = futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
    match n {
        Some(n) => axum::body::Body::from_stream(futures_util::StreamExt::chain(
            head,
            futures_util::StreamExt::take(body, n),
        )),
        None => axum::body::Body::from_stream(futures_util::StreamExt::chain(head, body)),
    }
}

/// Sends `text` a byte at a time, 20 ms apart, and then keeps sending spaces the same way;
/// `closed` is set once the client has gone (the stream is dropped).
pub fn drip(text: &'static str, closed: Arc<std::sync::atomic::AtomicBool>) -> axum::body::Body {
    struct Gone(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Gone {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let state = (Gone(closed), text.as_bytes().iter().copied(), 0u64);
    axum::body::Body::from_stream(futures_util::stream::unfold(
        state,
        |(gone, mut bytes, n)| async move {
            // The pace of a slow server, not a wait for anything.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let b = bytes.next().unwrap_or(b' ');
            Some((
                Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(&[b])),
                (gone, bytes, n + 1),
            ))
        },
    ))
}

/// Every read is capped: a page, an error body and a token answer larger than their limits
/// fail the run with a message naming the limit (without reading on), and a server that keeps
/// dripping bytes is cut off by the run's fetch time limit, its connection closed.
#[tokio::test]
async fn oversized_answers_and_a_dripping_server_fail_the_run_naming_the_limit() {
    use axum::routing::{get, post};
    let dripping_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dc = dripping_closed.clone();
    let router = axum::Router::new()
        // An endless JSON array, with no Content-Length.
        .route(
            "/endless",
            get(|| async {
                stream_of(
                    "[",
                    &"{\"id\": 1, \"email\": \"a@json.example\"},".repeat(32),
                    None,
                )
            }),
        )
        // A page announced by its Content-Length as over the limit.
        .route(
            "/large",
            get(|| async { axum::Json((0..5000).map(user).collect::<Vec<_>>()) }),
        )
        .route(
            "/error",
            get(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    stream_of("bad request: ", &"x".repeat(256), None),
                )
            }),
        )
        .route(
            "/token",
            post(|| async { stream_of("{\"access_token\": \"", &"x".repeat(256), None) }),
        )
        .route("/users", get(|| async { axum::Json(slice(0, 10)) }))
        .route(
            "/drip",
            get(move || {
                let dc = dc.clone();
                async move { drip("[", dc) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let sources = [
        (
            "endless",
            format!("url = \"{base}/endless\""),
            "larger than sync.max_response_bytes (65536 bytes)",
        ),
        (
            "large",
            format!("url = \"{base}/large\""),
            "larger than sync.max_response_bytes (65536 bytes)",
        ),
        (
            "error",
            format!("url = \"{base}/error\""),
            "HTTP 400 Bad Request: bad request: xxx",
        ),
        (
            "token",
            format!(
                "url = \"{base}/users\"\nauth = {{ type = \"oauth2_client_credentials\", token_url = \"{base}/token\", client_id = \"c\", client_secret = \"env:PATH\" }}"
            ),
            "the token response: the response is larger than sync.max_response_bytes (65536 bytes)",
        ),
        (
            "drip",
            format!("url = \"{base}/drip\""),
            "the read took longer than sync.max_fetch_secs (1 s)",
        ),
    ];
    // The sizes with the default fetch time limit (a loaded machine may be slow); the drip with
    // a limit of one second.
    let app_for = |sources: &[(&str, String, &str)], max_fetch_secs: u64| {
        let mut text = String::new();
        for (name, settings, _) in sources {
            text.push_str(&format!(
                "[[sources]]\nname = \"{name}\"\norg = \"{name}\"\nkind = \"http_json\"\n{settings}\n{MAPPING}\n"
            ));
        }
        let parsed = parse_sources(&text);
        let orgs: Vec<OrgSeed> = sources
            .iter()
            .map(|(n, _, _)| OrgSeed {
                slug: (*n).into(),
                name: (*n).into(),
                owner_email: None,
            })
            .collect();
        spawn_with(Mail::Log, move |c| {
            c.orgs = orgs;
            c.sources = parsed;
            c.sync.retry_base_ms = 10;
            c.sync.fetch_retries = 0;
            c.sync.max_response_bytes = 64 * 1024;
            c.sync.max_fetch_secs = max_fetch_secs;
        })
    };
    let (sizes, drip) = sources.split_at(4);
    let app = app_for(sizes, 3600).await;
    let dripping = app_for(drip, 1).await;
    for (name, _, why) in &sources {
        let app = if *name == "drip" { &dripping } else { &app };
        let r = app.run_source(name, name).await;
        assert_eq!(r["status"], "failed", "{name}: {r}");
        let msg = r["message"].as_str().unwrap();
        assert!(msg.contains(why), "{name}: {why:?} not in {msg:?}");
        assert_eq!(count(app, name).await, (0, 0), "{name}");
    }
    let error = app.run_source("error", "error").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("the body passed 8192 bytes; the rest was not read"),
        "{error}"
    );
    // The dripping download was dropped, not left running behind the failed run.
    wait_for(10, "the dripping connection to close", || async {
        dripping_closed.load(Ordering::SeqCst)
    })
    .await;
}

/// The shipped example `config/lms-http-json.example.toml`, each source pointed at `base` with
/// its secrets in files under `dir` (everything else as shipped), and no schedule.
fn lms_example(base: &str, dir: &std::path::Path) -> rosterd::config::Config {
    use rosterd_connectors::SourceKind;
    use rosterd_connectors::http_json::Auth;
    use rosterd_connectors::secret::SecretRef;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join("lms-http-json.example.toml");
    let mut config = rosterd::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    for s in &mut config.sources {
        s.schedule = None;
        let SourceKind::HttpJson(c) = &mut s.kind else {
            panic!("{}: an http_json source", s.name);
        };
        let file = dir.join(&s.name);
        std::fs::write(&file, format!("{}-token\n", s.name)).unwrap();
        let secret = SecretRef::File(file.display().to_string());
        match &mut c.auth {
            Some(Auth::Query { value, .. }) => *value = secret,
            Some(Auth::Bearer { token }) => *token = secret,
            other => panic!("{}: an auth the test knows, not {other:?}", s.name),
        }
        if c.base_url.is_some() {
            c.base_url = Some(format!("{base}/{}", s.name));
        }
        if let Some(url) = &c.url {
            let path = url::Url::parse(url).unwrap().path().to_owned();
            c.url = Some(format!("{base}/{}{path}", s.name));
        }
    }
    config
}

/// A user as a stock Moodle site's `core_user_get_users` returns it: `username` is a login
/// name, not an email; `suspended` and `confirmed` are booleans.
fn moodle_user(i: usize) -> Value {
    json!({"id": i + 2, "username": format!("user{i}"), "firstname": format!("First{i}"),
        "lastname": format!("Last{i}"), "fullname": format!("First{i} Last{i}"),
        "email": format!("user{i}@lms.example"), "department": "", "firstaccess": 0,
        "lastaccess": 0, "auth": "manual", "suspended": i == 3, "confirmed": true, "lang": "en",
        "theme": "", "timezone": "99", "mailformat": 1, "description": "", "descriptionformat": 1,
        "profileimageurlsmall": "https://lms.example/theme/image.php/boost/core/1/u/f2",
        "profileimageurl": "https://lms.example/theme/image.php/boost/core/1/u/f1"})
}

/// A learner as the example's generic LMS (`academy`) returns it.
fn learner(i: usize) -> Value {
    json!({"learner": {"id": format!("L{i}"), "email": format!("l{i}@academy.example"),
        "first_name": "L", "last_name": format!("{i}")},
        "status": if i == 5 { "archived" } else { "active" }, "is_instructor": i == 0})
}

/// Every source of the shipped LMS example reads a server answering as the real system does
/// (a stock Moodle site; the example's generic LMS) and creates everyone active, without a row
/// error: the example works as shipped.
#[tokio::test]
async fn the_shipped_lms_example_reads_a_stock_site() {
    use axum::routing::get;
    let router = axum::Router::new()
        .route(
            "/moodle/webservice/rest/server.php",
            get(|q: Q| async move {
                let ok = q.get("wstoken").map(String::as_str) == Some("moodle-token")
                    && q.get("wsfunction").map(String::as_str) == Some("core_user_get_users")
                    && q.get("moodlewsrestformat").map(String::as_str) == Some("json")
                    && q.get("criteria[0][key]").map(String::as_str) == Some("email")
                    && q.get("criteria[0][value]").map(String::as_str) == Some("%");
                if !ok {
                    return axum::Json(json!({"exception": "moodle_exception",
                        "errorcode": "invalidtoken", "message": "Invalid token - token not found"}));
                }
                axum::Json(json!({"users": (0..40).map(moodle_user).collect::<Vec<_>>(), "warnings": []}))
            }),
        )
        .route(
            "/academy/api/v2/learners",
            get(|headers: HeaderMap, q: Q| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    != Some("Bearer academy-token")
                    || q.get("status").map(String::as_str) != Some("all")
                {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "unauthorized"})))
                        .into_response();
                }
                let from = num(&q, "after", 0);
                let next = (from + 10 < 25).then(|| (from + 10).to_string());
                let data: Vec<Value> = (from..(from + 10).min(25)).map(learner).collect();
                axum::Json(json!({"data": data, "meta": {"next_cursor": next}})).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let dir = temp_dir();
    let example = lms_example(&base, &dir);
    let names: Vec<(String, String)> = example
        .sources
        .iter()
        .map(|s| (s.org.clone(), s.name.clone()))
        .collect();
    assert_eq!(names.len(), 2, "the example's sources");
    let app = spawn_with(Mail::Log, move |c| {
        c.orgs = example.orgs;
        c.sources = example.sources;
    })
    .await;
    // Moodle: 40 users, one suspended; the academy: 25 learners, one archived.
    for ((org, name), active) in names.iter().zip([39, 24]) {
        let r = app.run_source(org, name).await;
        assert_eq!(r["status"], "succeeded", "{name}: {r}");
        assert_eq!(r["counts"]["errors"], 0, "{name}: {r}");
        assert_eq!(r["counts"]["created"], active, "{name}: {r}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
