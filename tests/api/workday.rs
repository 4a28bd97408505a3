//! The Workday connector against a local server speaking Workday's wire format: the OAuth2
//! refresh-token grant, the REST `workers` collection (limit ≤ 100, offset,
//! `total`, absent keys for empty fields, a 429 with `Retry-After`), and a RaaS report.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::sync::{spawn_with_sources, temp_dir};

const WORKERS: usize = 230;

fn worker(i: usize) -> Value {
    let mut w = json!({"id": format!("{i:032x}"), "descriptor": format!("Worker {i}"),
        "href": format!("https://wd.example/ccx/api/v1/acme/workers/{i:032x}"),
        "businessTitle": "Analyst", "isManager": false,
        "primarySupervisoryOrganization": {"id": "b5ad", "descriptor": "Finance", "href": "x"}});
    // Empty fields are omitted: every 50th worker has no work email.
    if !i.is_multiple_of(50) {
        w["primaryWorkEmail"] = json!(format!("w{i}@wd.example"));
    }
    w
}

#[derive(Default)]
struct State {
    tokens: usize,
    refresh: String,
    throttled: bool,
    /// Lifetime of new access tokens, in seconds (0: an hour).
    expires_in: u64,
    /// Workers terminated: the REST list no longer holds them.
    terminated: Vec<usize>,
    /// From this offset on, pages come back empty while `total` still counts everyone (a
    /// tenant that cuts a read short).
    empty_from: Option<usize>,
}

async fn fake_workday(state: Arc<Mutex<State>>) -> String {
    use axum::routing::{get, post};
    state.lock().unwrap().refresh = "refresh-1".into();
    let (s1, s2) = (state.clone(), state.clone());
    let router = axum::Router::new()
        .route(
            "/ccx/oauth2/{tenant}/token",
            post(move |Path(tenant): Path<String>, headers: HeaderMap, body: String| {
                let s = s1.clone();
                async move {
                    let mut st = s.lock().unwrap();
                    // client "rosterd-client" / "client-secret" as HTTP basic.
                    let basic = headers.get("authorization").and_then(|v| v.to_str().ok());
                    if tenant != "acme" || basic != Some("Basic cm9zdGVyZC1jbGllbnQ6Y2xpZW50LXNlY3JldA==") {
                        return (StatusCode::UNAUTHORIZED, "<html>Unauthorized</html>").into_response();
                    }
                    let wanted = format!("refresh_token={}", st.refresh);
                    if !body.contains("grant_type=refresh_token") || !body.contains(&wanted) {
                        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"})))
                            .into_response();
                    }
                    st.tokens += 1;
                    // The tenant rotates refresh tokens: the one just used is no longer valid.
                    st.refresh = format!("refresh-{}", st.tokens + 1);
                    let expires_in = if st.expires_in == 0 { 3600 } else { st.expires_in };
                    axum::Json(json!({"access_token": format!("wd-{}", st.tokens),
                        "token_type": "Bearer", "expires_in": expires_in, "refresh_token": st.refresh}))
                    .into_response()
                }
            }),
        )
        .route(
            "/ccx/api/v1/{tenant}/workers",
            get(move |headers: HeaderMap, Query(q): Query<std::collections::HashMap<String, String>>| {
                let s = s2.clone();
                async move {
                    let mut st = s.lock().unwrap();
                    let want = format!("Bearer wd-{}", st.tokens);
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
                        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid token"})))
                            .into_response();
                    }
                    let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(20);
                    let offset: usize = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
                    if limit > 100 {
                        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "limit must be at most 100",
                            "errors": [{"error": "too large", "field": "limit", "location": "query"}]})))
                        .into_response();
                    }
                    if offset == 100 && !st.throttled {
                        st.throttled = true;
                        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response();
                    }
                    let listed: Vec<usize> = (0..WORKERS).filter(|i| !st.terminated.contains(i)).collect();
                    let mut data: Vec<Value> = listed.iter().skip(offset).take(limit).map(|i| worker(*i)).collect();
                    if st.empty_from.is_some_and(|from| offset >= from) {
                        data.clear();
                    }
                    axum::Json(json!({"total": listed.len(), "data": data})).into_response()
                }
            }),
        )
        .route(
            "/ccx/service/customreport2/{tenant}/{owner}/{report}",
            get(|Path((tenant, owner, report)): Path<(String, String, String)>, headers: HeaderMap,
                 Query(q): Query<std::collections::HashMap<String, String>>| async move {
                // isu@acme : isu-password
                let basic = headers.get("authorization").and_then(|v| v.to_str().ok());
                if (tenant.as_str(), owner.as_str(), report.as_str()) != ("acme", "ISU_Owner", "Active_and_Terminated")
                    || basic != Some("Basic aXN1OmlzdS1wYXNzd29yZA==")
                    || q.get("format").map(String::as_str) != Some("json")
                    || q.get("Company!WID").map(String::as_str) != Some("c0ffee")
                {
                    return (StatusCode::UNAUTHORIZED, "no").into_response();
                }
                axum::Json(json!({"Report_Entry": [
                    {"Employee_ID": "21001", "Legal_Name_First_Name": "Logan", "Legal_Name_Last_Name": "McNeil",
                     "Email_Primary_Work": "lmcneil@acme.example", "Active_Status": "1", "Termination_Date": ""},
                    {"Employee_ID": "21044", "Legal_Name_First_Name": "Ben", "Legal_Name_Last_Name": "Ito",
                     "Email_Primary_Work": "bito@acme.example", "Active_Status": "0", "Termination_Date": "2026-10-31",
                     "Supervisory_Organizations": [{"Descriptor": "Finance"}, {"Descriptor": "Audit"}]},
                    {"Employee_ID": "21050", "Legal_Name_First_Name": "Ana", "Legal_Name_Last_Name": "Ruiz",
                     "Email_Primary_Work": "aruiz@acme.example", "Active_Status": "1"}
                ]}))
                .into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr.to_string()
}

#[tokio::test]
async fn workday_workers_and_a_raas_report_sync_with_their_credentials() {
    let state = Arc::new(Mutex::new(State::default()));
    let host = fake_workday(state.clone()).await;
    let dir = temp_dir();
    let secret = |name: &str, value: &str| {
        let p = dir.join(name);
        std::fs::write(&p, value).unwrap();
        format!("file:{}", p.display())
    };
    let text = format!(
        r#"
[[sources]]
name = "wd-workers"
org = "wd"
kind = "workday"
host = "{host}"
tenant = "acme"
insecure_http = true
auth = {{ type = "oauth2_refresh_token", client_id = "rosterd-client", client_secret = "{cs}", refresh_token = "{rt}" }}
authoritative = true
max_removals = "100%"
[sources.mapping]
external_id = "id"
member_email = "primaryWorkEmail"
display_name = "descriptor"

[[sources]]
name = "wd-report"
org = "wdr"
kind = "workday"
mode = "raas"
host = "{host}"
tenant = "acme"
insecure_http = true
report_owner = "ISU_Owner"
report_name = "Active_and_Terminated"
prompts = {{ "Company!WID" = "c0ffee" }}
auth = {{ type = "basic", username = "isu", password = "{pw}" }}
authoritative = true
max_removals = "100%"
[sources.mapping]
external_id = "Employee_ID"
member_email = "Email_Primary_Work"
given_name = "Legal_Name_First_Name"
family_name = "Legal_Name_Last_Name"
active = {{ field = "Active_Status", map = {{ "1" = "true", "0" = "false" }} }}

[[sources]]
name = "wd-report-dates"
org = "wdd"
kind = "workday"
mode = "raas"
host = "{host}"
tenant = "acme"
insecure_http = true
report_owner = "ISU_Owner"
report_name = "Active_and_Terminated"
prompts = {{ "Company!WID" = "c0ffee" }}
auth = {{ type = "basic", username = "isu", password = "{pw}" }}
authoritative = true
[sources.mapping]
external_id = "Employee_ID"
member_email = "Email_Primary_Work"
# Any termination date means inactive; none (empty or absent) means active.
active = {{ field = "Termination_Date", map = {{ "*" = "false" }}, default = "true" }}
"#,
        cs = secret("cs", "client-secret"),
        rt = secret("rt", "refresh-1"),
        pw = secret("pw", "isu-password"),
    );
    let app = spawn_with_sources(&["wd", "wdr", "wdd"], &text).await;

    // REST workers: 3 pages of at most 100 (one throttled with Retry-After), `total` ends it;
    // the 5 workers without a work email are row errors, everyone else is created.
    let r = app.run_source("wd", "wd-workers").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["fetched"], WORKERS, "{r}");
    assert_eq!(r["counts"]["created"], WORKERS - 5, "{r}");
    assert_eq!(r["counts"]["errors"], 5, "{r}");
    {
        let st = state.lock().unwrap();
        assert_eq!(st.tokens, 1, "one token for the run");
        assert!(st.throttled);
    }
    // The tenant rotated the refresh token; the new one was stored in the `file:` secret, so
    // the next run exchanges it (the old one would be refused) and reads the same roster.
    let rt = dir.join("rt");
    assert_eq!(std::fs::read_to_string(&rt).unwrap().trim(), "refresh-2");
    let r = app.run_source("wd", "wd-workers").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["created"], 0, "{r}");
    assert_eq!(state.lock().unwrap().tokens, 2);
    assert_eq!(std::fs::read_to_string(&rt).unwrap().trim(), "refresh-3");
    // A short-lived token (20 s) is renewed once a quarter of its life is left, not before
    // every page as when any token with under 30 s to go was renewed: one token (and one
    // rotation of the refresh token) serves all three pages of this sub-second run. The rule's
    // edges are unit-tested (`renewal_is_due_at_a_quarter_of_the_lifetime`). And a terminated
    // worker, gone from the list, is removed.
    {
        let mut st = state.lock().unwrap();
        st.expires_in = 20;
        st.terminated.push(1);
    }
    let r = app.run_source("wd", "wd-workers").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["removed"], 1, "{r}");
    assert_eq!(r["counts"]["fetched"], WORKERS - 1, "{r}");
    assert_eq!(
        state.lock().unwrap().tokens,
        3,
        "one token for the run's three pages"
    );
    assert_eq!(std::fs::read_to_string(&rt).unwrap().trim(), "refresh-4");
    state.lock().unwrap().expires_in = 0;
    // A refresh token the tenant no longer knows fails the run with Workday's error, and no
    // token appears in the message.
    state.lock().unwrap().refresh = "revoked".into();
    let r = app.run_source("wd", "wd-workers").await;
    assert_eq!(r["status"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(msg.contains("invalid_grant"), "{msg}");
    assert!(!msg.contains("refresh-4"), "no token in messages: {msg}");

    // RaaS: explicit status; the terminated worker is not created.
    let r = app.run_source("wdr", "wd-report").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["fetched"], 3, "{r}");
    assert_eq!(r["counts"]["created"], 2, "{r}");
    // The same report by termination date: a date means inactive.
    let r = app.run_source("wdd", "wd-report-dates").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["created"], 2, "{r}");
    assert_eq!(r["counts"]["errors"], 0, "{r}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A tenant that states a `total` and then answers an empty page before reaching it (seen:
/// `total: 18410`, then nothing at offset 18403) has not given the whole list: the run fails and
/// nobody is removed, where taking the empty page as the end would remove everyone unread.
#[tokio::test]
async fn a_read_that_ends_before_the_stated_total_fails_and_removes_nobody() {
    let state = Arc::new(Mutex::new(State::default()));
    let host = fake_workday(state.clone()).await;
    state.lock().unwrap().throttled = true; // no 429 here
    let dir = temp_dir();
    let secret = |name: &str, value: &str| {
        let p = dir.join(name);
        std::fs::write(&p, value).unwrap();
        format!("file:{}", p.display())
    };
    let text = format!(
        r#"
[[sources]]
name = "wd-workers"
org = "wd"
kind = "workday"
host = "{host}"
tenant = "acme"
insecure_http = true
auth = {{ type = "oauth2_refresh_token", client_id = "rosterd-client", client_secret = "{cs}", refresh_token = "{rt}" }}
authoritative = true
max_removals = "100%"
[sources.mapping]
external_id = "id"
member_email = "primaryWorkEmail"
display_name = "descriptor"
"#,
        cs = secret("cs", "client-secret"),
        rt = secret("rt", "refresh-1"),
    );
    let app = spawn_with_sources(&["wd"], &text).await;
    let r = app.run_source("wd", "wd-workers").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["created"], WORKERS - 5, "{r}");
    let before = app.snapshot("wd").await;

    // Offsets 0 and 100 answer; offset 200 is empty while `total` still says 230.
    state.lock().unwrap().empty_from = Some(200);
    let r = app.run_source("wd", "wd-workers").await;
    assert_eq!(r["status"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("said there are 230 records but gave 200"),
        "{msg}"
    );
    assert_eq!(r["counts"]["removed"], 0, "{r}");
    assert_eq!(app.snapshot("wd").await, before, "nothing changed");

    // The tenant answers in full again: the next run reads everyone and removes nobody.
    state.lock().unwrap().empty_from = None;
    let r = app.run_source("wd", "wd-workers").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["removed"], 0, "{r}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The shipped example `config/workday.example.toml` against the fake tenant: its mappings read
/// what Workday sends. Only what must point at the fake changes: the host (plain http to this
/// machine), the API client's id, the secrets (files), and the report's owner, name and prompt.
#[tokio::test]
async fn the_shipped_workday_example_reads_the_tenant() {
    use rosterd_connectors::SourceKind;
    use rosterd_connectors::secret::SecretRef;
    use rosterd_connectors::workday::{Mode, WorkdayAuth};
    let state = Arc::new(Mutex::new(State::default()));
    let host = fake_workday(state.clone()).await;
    let dir = temp_dir();
    let secret = |name: &str, value: &str| {
        let p = dir.join(name);
        std::fs::write(&p, value).unwrap();
        SecretRef::File(p.display().to_string())
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join("workday.example.toml");
    let mut example = rosterd::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    for s in &mut example.sources {
        s.schedule = None;
        let SourceKind::Workday(c) = &mut s.kind else {
            panic!("{}: a workday source", s.name);
        };
        c.host = host.clone();
        c.insecure_http = true;
        match &mut c.auth {
            WorkdayAuth::Oauth2RefreshToken {
                client_id,
                client_secret,
                refresh_token,
                ..
            } => {
                *client_id = "rosterd-client".into();
                *client_secret = secret("cs", "client-secret");
                *refresh_token = secret("rt", "refresh-1");
            }
            WorkdayAuth::Basic { username, password } => {
                *username = "isu".into();
                *password = secret("pw", "isu-password");
            }
        }
        if c.mode == Mode::Raas {
            c.report_owner = Some("ISU_Owner".into());
            c.report_name = Some("Active_and_Terminated".into());
            c.prompts = [("Company!WID".to_owned(), "c0ffee".to_owned())].into();
        }
    }
    let sources: Vec<(String, String)> = example
        .sources
        .iter()
        .map(|s| (s.org.clone(), s.name.clone()))
        .collect();
    let app = crate::helpers::spawn_with(crate::helpers::Mail::Log, move |c| {
        c.orgs = example.orgs;
        c.sources = example.sources;
        c.sync.retry_base_ms = 10;
    })
    .await;
    let [(org, workers), (report_org, report)] = &sources[..] else {
        panic!("the example's two sources: {sources:?}");
    };
    let r = app.run_source(org, workers).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["fetched"], WORKERS, "{r}");
    // Workday omits an empty field: the 5 workers without a work email are row errors.
    assert_eq!(r["counts"]["created"], WORKERS - 5, "{r}");
    assert_eq!(r["counts"]["errors"], 5, "{r}");
    // Both sources feed one org (the report has the lower priority number): the report's two
    // active workers are new people there, the terminated one is not created.
    let r = app.run_source(report_org, report).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["fetched"], 3, "{r}");
    assert_eq!(r["counts"]["errors"], 0, "{r}");
    assert_eq!(r["counts"]["created"], 2, "{r}");
    let _ = std::fs::remove_dir_all(dir);
}
