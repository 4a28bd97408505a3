//! `spawn_app()`: the application on port 0 with a fresh database, a manual clock and typed
//! request helpers.

use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeZone;
use reqwest::{Method, StatusCode};
use rosterd::clock::ManualClock;
use rosterd::config::{Config, MailSink, SmtpConfig, SmtpTls};
use rosterd::mail::delivery::Delivery;
use rosterd::store::outbox::OutboxRow;
use rosterd::store::{self, Store};
use rosterd::web::AppState;
use rosterd::{App, AppOptions};
use serde_json::{Value, json};
use uuid::Uuid;

pub const OPERATOR: &str = "operator-test-token-0123456789";

pub enum Mail {
    Log,
    /// `.eml` files in a folder of the test's own (`TestApp::mail_dir`): what `spawn_app` uses,
    /// so a test reads an invitation the way the invitee would.
    Files,
    Smtp(u16),
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub store: Store,
    pub state: AppState,
    pub delivery: Delivery,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Where a `Mail::Files` app delivers its emails.
    pub mail_dir: Option<PathBuf>,
    /// `metrics.listen`'s bound address, when set.
    pub metrics_addr: Option<std::net::SocketAddr>,
    cleanup: Cleanup,
}

pub enum Cleanup {
    Dir(PathBuf),
    Postgres { admin_url: String, db: String },
}

/// Removes a test database when dropped.
pub struct DbGuard(pub Cleanup);

impl Drop for DbGuard {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

fn drop_database(cleanup: &Cleanup) {
    match cleanup {
        Cleanup::Dir(dir) => {
            let _ = std::fs::remove_dir_all(dir);
        }
        Cleanup::Postgres { admin_url, db } => {
            let (admin_url, db) = (admin_url.clone(), db.clone());
            // A runtime of its own: Drop may run while the test's runtime is shutting down.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
                    }
                });
            })
            .join();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        drop_database(&self.cleanup);
        if let Some(dir) = &self.mail_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn start_time() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

/// A fresh database URL for one test, and how to clean it up.
pub async fn fresh_database() -> (String, Cleanup) {
    match std::env::var("ROSTERD_TEST_POSTGRES_URL") {
        Ok(admin_url) if !admin_url.is_empty() => fresh_postgres(admin_url).await,
        _ => {
            let dir =
                std::env::temp_dir().join(format!("rosterd-test-{}", Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            (
                format!("sqlite://{}/rosterd.db", dir.display()),
                Cleanup::Dir(dir),
            )
        }
    }
}

/// A fresh PostgreSQL database (for what only PostgreSQL does: several replicas on one
/// database), on `ROSTERD_TEST_POSTGRES_URL` or the local server `scripts/test` provides.
pub async fn fresh_postgres_database() -> (String, Cleanup) {
    let admin_url = std::env::var("ROSTERD_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    fresh_postgres(admin_url).await
}

async fn fresh_postgres(admin_url: String) -> (String, Cleanup) {
    {
        {
            use sqlx::Connection;
            let db = format!("rosterd_test_{}", Uuid::new_v4().simple());
            let mut c = sqlx::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| {
                    panic!("ROSTERD_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
                });
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
                .execute(&mut c)
                .await
                .expect("create test database");
            let base = admin_url.split('?').next().unwrap_or(&admin_url);
            let prefix = &base[..base.rfind('/').expect("postgres URL has a database path")];
            (
                format!("{prefix}/{db}"),
                Cleanup::Postgres { admin_url, db },
            )
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Mail::Files, |_| {}).await
}

pub async fn spawn_with(mail: Mail, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let (url, cleanup) = fresh_database().await;
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.max_body_bytes = 64 * 1024;
    config.database.url = url;
    config.database.max_connections = 4;
    config.mail.poll_interval_ms = 50;
    config.invitations.poll_interval_ms = 50;
    config.jobs.poll_interval_ms = 50;
    // Tests sharing a loaded machine add hundreds of members in one request: a slow answer is
    // not what they test (the layer's own timeout has its default elsewhere).
    config.server.request_timeout_secs = 300;
    config.invitations.accept_url = Some("https://learn.example/invite/".into());
    let mut mail_dir = None;
    match mail {
        Mail::Log => config.mail.sink = MailSink::Log,
        Mail::Files => {
            let dir =
                std::env::temp_dir().join(format!("rosterd-mail-{}", Uuid::new_v4().simple()));
            config.mail.sink = MailSink::File;
            config.mail.dir = dir.clone();
            mail_dir = Some(dir);
        }
        Mail::Smtp(port) => {
            config.mail.sink = MailSink::Smtp;
            config.mail.smtp = Some(SmtpConfig {
                host: "127.0.0.1".into(),
                port,
                tls: SmtpTls::None,
                username: None,
                password: None,
                timeout_secs: 5,
                ca_file: None,
            });
        }
    }
    tweak(&mut config);
    let clock = ManualClock::new(start_time());
    let app = App::build(
        config,
        AppOptions {
            clock: Some(std::sync::Arc::new(clock.clone())),
            operator_token: Some(OPERATOR.to_owned().into()),
        },
    )
    .await
    .expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let metrics_addr = app.metrics_addr();
    let state = app.state().clone();
    let delivery = app.delivery().clone();
    let store = state.roster.store.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: reqwest::Client::new(),
        clock,
        store,
        state,
        delivery,
        shutdown: Some(tx),
        server: Some(server),
        mail_dir,
        metrics_addr,
        cleanup,
    }
}

/// A response: status, headers and the body as JSON (or `Value::Null`).
pub struct Res {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    /// Asks the app to shut down (as SIGTERM would) and returns the server task.
    pub fn stop(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().expect("server running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Res {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Res {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Res {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Res {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Creates an org (as operator) and an admin token for it.
    pub async fn org_with_admin(&self, slug: &str) -> String {
        let r = self
            .post("/api/v1/orgs", OPERATOR, json!({"slug": slug, "name": format!("Org {slug}"), "owner_email": format!("owner@{slug}.example")}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let r = self
            .post(
                &format!("/api/v1/orgs/{slug}/tokens"),
                OPERATOR,
                json!({"kind": "admin", "name": "test"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Adds members by email; returns their ids in order.
    /// The operator lets one request of this org invite `n` addresses (default 10).
    pub async fn allow_invites(&self, slug: &str, n: usize) {
        let r = self
            .patch(
                &format!("/api/v1/orgs/{slug}"),
                OPERATOR,
                json!({"invite_limit": n}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }

    /// Adds people in one request; the operator first raises the org's `invite_limit` (default
    /// 10) when the list is longer.
    pub async fn add(&self, slug: &str, token: &str, emails: &[&str]) -> Vec<Uuid> {
        if emails.len() > 10 {
            self.allow_invites(slug, emails.len()).await;
        }
        let members: Vec<Value> = emails.iter().map(|e| json!({"email": e})).collect();
        let r = self
            .post(
                &format!("/api/v1/orgs/{slug}/members"),
                token,
                json!({"members": members}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["member_id"].as_str().unwrap().parse().unwrap())
            .collect()
    }

    pub async fn org_id(&self, slug: &str) -> Uuid {
        let mut tx = self.store.read().await.unwrap();
        let org = store::orgs::by_slug(&mut tx, slug).await.unwrap().unwrap();
        tx.rollback().await.unwrap();
        org.id
    }

    /// Every outbox row of an org, newest first.
    pub async fn outbox(&self, slug: &str) -> Vec<OutboxRow> {
        let id = self.org_id(slug).await;
        let mut tx = self.store.read().await.unwrap();
        let rows = store::outbox::for_org(&mut tx, id, 10_000).await.unwrap();
        tx.rollback().await.unwrap();
        rows
    }

    /// The text of the newest email to `email` as the invitee reads it (the delivered `.eml`
    /// file, its body decoded), once the delivery worker has sent it.
    pub async fn delivered_email(&self, slug: &str, email: &str) -> String {
        let dir = self
            .mail_dir
            .clone()
            .expect("the app delivers to files (spawn_app or Mail::Files)");
        let key = std::sync::Mutex::new(String::new());
        wait_for(
            10,
            &format!("the email to {email} to be delivered"),
            || async {
                let rows = self.outbox(slug).await;
                let row = rows
                    .iter()
                    .find(|r| r.to_address.eq_ignore_ascii_case(email))
                    .unwrap_or_else(|| panic!("no email to {email}"));
                assert!(
                    row.cancelled_at.is_none(),
                    "the email to {email} was cancelled: {row:?}"
                );
                *key.lock().unwrap() = row.idempotency_key.clone();
                row.sent_at.is_some()
            },
        )
        .await;
        let key = key.into_inner().unwrap();
        let raw = std::fs::read_to_string(dir.join(format!("{key}.eml"))).expect("the .eml file");
        decode_email(&raw)
    }

    /// The invitation token in the newest email sent to `email`, read from the delivered email.
    pub async fn invitation_token(&self, slug: &str, email: &str) -> String {
        let text = self.delivered_email(slug, email).await;
        token_in(&text)
    }

    pub async fn accept(&self, slug: &str, email: &str, login: Option<&str>) -> Res {
        let token = self.invitation_token(slug, email).await;
        let mut body = json!({"token": token});
        if let Some(l) = login {
            body["login_email"] = json!(l);
        }
        self.call(Method::POST, "/api/v1/invitations/accept", None, Some(body))
            .await
    }

    /// Starts a run of `source` of `org` over the API, waits for it to end, and returns it.
    pub async fn run_source(&self, org: &str, source: &str) -> Value {
        let r = self
            .post(
                &format!("/api/v1/orgs/{org}/sources/{source}/runs"),
                OPERATOR,
                serde_json::json!({}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        let path = format!("/api/v1/orgs/{org}/runs/{}", r.body["id"].as_str().unwrap());
        wait_for(60, "the run", || async {
            self.get(&path, OPERATOR).await.body["status"] != "running"
        })
        .await;
        self.get(&path, OPERATOR).await.body
    }

    /// The display names (or emails) of a group's members, sorted; empty if there is no group.
    pub async fn group_members(&self, slug: &str, name: &str) -> Vec<String> {
        let org_id = self.org_id(slug).await;
        let mut tx = self.store.read().await.unwrap();
        let Some(g) = store::groups::by_name(&mut tx, org_id, name).await.unwrap() else {
            return Vec::new();
        };
        let mut names: Vec<String> = store::groups::members_of(&mut tx, g.id)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        tx.rollback().await.unwrap();
        names.sort();
        names
    }

    /// Every member row of an org (a snapshot to compare before/after a rejected request).
    pub async fn snapshot(&self, slug: &str) -> String {
        let id = self.org_id(slug).await;
        let mut tx = self.store.read().await.unwrap();
        let rows = store::members::export_batch(&mut tx, id, None, 100_000)
            .await
            .unwrap();
        let audit = store::audit::page(&mut tx, id, None, 100_000)
            .await
            .unwrap();
        let outbox = store::outbox::for_org(&mut tx, id, 100_000).await.unwrap();
        tx.rollback().await.unwrap();
        format!("{rows:?}|{}|{}", audit.len(), outbox.len())
    }
}

/// Waits until `check` holds, polling; panics after `secs` seconds.
pub async fn wait_for<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks a response is a problem body with the given status.
pub fn assert_problem(r: &Res, status: u16) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    let ct = r
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "{}", r.text);
    assert_eq!(r.body["status"], status, "{}", r.text);
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        r.text
    );
    assert!(r.body["type"].as_str().is_some(), "{}", r.text);
}

/// The invitation token of the accept link (`https://learn.example/invite/<token>`) in an
/// email's text.
pub fn token_in(text: &str) -> String {
    let start = text.find("/invite/").expect("accept link in the email") + "/invite/".len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(!token.is_empty(), "no token after the link in {text}");
    token
}

/// The headers of a single-part email and its body decoded from its transfer encoding (7bit,
/// quoted-printable or base64), as a mail client shows it.
pub fn decode_email(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw
        .split_once("\n\n")
        .expect("headers, a blank line, the body");
    let encoding = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-transfer-encoding")
                .then(|| v.trim().to_ascii_lowercase())
        })
        .unwrap_or_default();
    let body = match encoding.as_str() {
        "base64" => {
            use base64::Engine;
            let compact: String = body.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("base64 body");
            String::from_utf8(bytes).expect("utf-8 body")
        }
        "quoted-printable" => {
            let joined = body.replace("=\n", "");
            let mut bytes = Vec::new();
            let b = joined.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'=' && i + 2 < b.len() {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
                    bytes.push(u8::from_str_radix(hex, 16).expect("=XX escape"));
                    i += 3;
                } else {
                    bytes.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(bytes).expect("utf-8 body")
        }
        _ => body.to_owned(),
    };
    format!("{head}\n\n{body}")
}
