//! The Microsoft Graph connector against a local server speaking Graph's wire format: the
//! client-credentials token (`/.default` scope, secret in the form), `/users/delta` with
//! `@odata.nextLink` (`$skiptoken`) and `@odata.deltaLink` (`$deltatoken`), `@removed` entries,
//! a user repeated within one round, a 429 with `Retry-After`, an expired delta link (410 Gone),
//! and `accountEnabled` only when `$select`ed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sync::{spawn_with_sources, temp_dir};

const USERS: usize = 250;
const PAGE: usize = 100;

fn user(i: usize) -> Value {
    json!({
        "id": format!("00000000-0000-4000-8000-{i:012}"),
        "userPrincipalName": format!("user{i}@contoso.onmicrosoft.com"),
        // One user has no mailbox; one account is disabled.
        "mail": if i == 13 { Value::Null } else { json!(format!("user{i}@contoso.example")) },
        "givenName": format!("User{i}"),
        "surname": "Example",
        "accountEnabled": i != 20,
        "jobTitle": "Analyst",
    })
}

fn id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

#[derive(Default)]
struct Graph {
    base: String,
    tokens: usize,
    /// The directory now, by id.
    users: BTreeMap<String, Value>,
    /// Changes since the start, in order; a delta token is an index into this log.
    log: Vec<Value>,
    /// Delta tokens Graph no longer knows (answered with 410 Gone).
    expired: Vec<String>,
    /// The `$select` of the last initial round (delta tokens carry it on).
    select: String,
    /// Initial rounds started, delta links followed, 410s answered.
    full_reads: usize,
    delta_reads: usize,
    gone: usize,
    throttled: bool,
    /// Delta links issued (each link's token is new, as Graph's are).
    issued: usize,
    /// The members of group `staff-group`, by id.
    group: Vec<String>,
}

impl Graph {
    fn shape(&self, u: &Value) -> Value {
        // Properties come back only when selected (`accountEnabled` is not a default one).
        let mut out = serde_json::Map::new();
        for (k, v) in u.as_object().unwrap() {
            if k == "id" || k.starts_with('@') || self.select.split(',').any(|s| s == k) {
                out.insert(k.clone(), v.clone());
            }
        }
        Value::Object(out)
    }
}

async fn fake_graph(state: Arc<Mutex<Graph>>) -> String {
    use axum::routing::{get, post};
    let (s1, s2, s3) = (state.clone(), state.clone(), state.clone());
    let router = axum::Router::new()
        .route(
            "/{tenant}/oauth2/v2.0/token",
            post(move |Path(tenant): Path<String>, body: String| {
                let s = s1.clone();
                async move {
                    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect();
                    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
                    if tenant != "contoso.onmicrosoft.com" || get("grant_type") != "client_credentials" {
                        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "unsupported_grant_type"})))
                            .into_response();
                    }
                    if !get("scope").ends_with("/.default") {
                        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_scope",
                            "error_description": "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                            "error_codes": [1002012]}))).into_response();
                    }
                    if get("client_id") != "app-id" || get("client_secret") != "graph-secret" {
                        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client",
                            "error_description": "AADSTS7000215: Invalid client secret provided.",
                            "error_codes": [7000215]}))).into_response();
                    }
                    let mut st = s.lock().unwrap();
                    st.tokens += 1;
                    axum::Json(json!({"token_type": "Bearer", "expires_in": 3599,
                        "ext_expires_in": 3599, "access_token": format!("graph-{}", st.tokens)}))
                    .into_response()
                }
            }),
        )
        .route(
            "/v1.0/users/delta",
            get(move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| {
                let s = s2.clone();
                async move {
                    let mut st = s.lock().unwrap();
                    let want = format!("Bearer graph-{}", st.tokens);
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
                        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"code": "InvalidAuthenticationToken",
                            "message": "Access token is empty."}}))).into_response();
                    }
                    let base = st.base.clone();
                    if let Some(token) = q.get("$deltatoken") {
                        if st.expired.contains(token) {
                            st.gone += 1;
                            return (StatusCode::GONE, [("location", format!("{base}/v1.0/users/delta"))],
                                axum::Json(json!({"error": {"code": "syncStateNotFound",
                                "message": "The delta token has expired."}}))).into_response();
                        }
                        // Changes after the token's place in the log, two per page.
                        st.delta_reads += 1;
                        let from: usize = token.split_once('.').unwrap().0.parse().unwrap();
                        return changes_page(&mut st, from, from, &base);
                    }
                    if let Some(skip) = q.get("$skiptoken") {
                        if let Some(rest) = skip.strip_prefix("chg-") {
                            let (from, at) = rest.split_once('-').unwrap();
                            return changes_page(&mut st, from.parse().unwrap(), at.parse().unwrap(), &base);
                        }
                        let offset: usize = skip.parse().unwrap();
                        // The second page is throttled once.
                        if offset == PAGE && !st.throttled {
                            st.throttled = true;
                            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")],
                                axum::Json(json!({"error": {"code": "TooManyRequests",
                                "message": "Too many requests."}}))).into_response();
                        }
                        return full_page(&mut st, offset, &base);
                    }
                    if q.contains_key("$top") {
                        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"code": "BadRequest",
                            "message": "$top is not supported with delta queries"}}))).into_response();
                    }
                    st.select = q.get("$select").cloned().unwrap_or_default();
                    st.full_reads += 1;
                    full_page(&mut st, 0, &base)
                }
            }),
        )
        .route(
            "/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user",
            get(move |Path(group): Path<String>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>| {
                let s = s3.clone();
                async move {
                    let st = s.lock().unwrap();
                    let want = format!("Bearer graph-{}", st.tokens);
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
                        return (StatusCode::UNAUTHORIZED, "no").into_response();
                    }
                    if group != "staff-group" {
                        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"code": "Request_ResourceNotFound",
                            "message": format!("Resource '{group}' does not exist.")}}))).into_response();
                    }
                    let top: usize = q.get("$top").and_then(|v| v.parse().ok()).unwrap_or(100);
                    if top > 999 {
                        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"code": "Request_UnsupportedQuery",
                            "message": "Invalid page size specified"}}))).into_response();
                    }
                    // Pages of 60 whatever `$top` asks, as Graph may do.
                    let skip: usize = q.get("$skiptoken").and_then(|v| v.parse().ok()).unwrap_or(0);
                    let select = q.get("$select").cloned().unwrap_or_default();
                    let shaped = Graph { select, ..Default::default() };
                    let value: Vec<Value> = st.group.iter().skip(skip).take(60)
                        .filter_map(|id| st.users.get(id)).map(|u| shaped.shape(u)).collect();
                    let mut page = json!({"value": value});
                    if skip + 60 < st.group.len() {
                        // List next links repeat the query (`$select`, `$top`).
                        page["@odata.nextLink"] = json!(format!(
                            "{}/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user?$select={}&$top={top}&$skiptoken={}",
                            st.base, shaped.select, skip + 60));
                    }
                    axum::Json(page).into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    state.lock().unwrap().base = format!("http://{addr}");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// A new delta link: the place in the change log, and a generation.
fn delta_link(st: &mut Graph, base: &str) -> Value {
    st.issued += 1;
    json!(format!(
        "{base}/v1.0/users/delta?$deltatoken={}.{}",
        st.log.len(),
        st.issued
    ))
}

fn full_page(st: &mut Graph, offset: usize, base: &str) -> axum::response::Response {
    let users: Vec<Value> = st
        .users
        .values()
        .skip(offset)
        .take(PAGE)
        .map(|u| st.shape(u))
        .collect();
    let mut page =
        json!({"@odata.context": format!("{base}/v1.0/$metadata#users"), "value": users});
    if offset + PAGE < st.users.len() {
        page["@odata.nextLink"] = json!(format!(
            "{base}/v1.0/users/delta?$skiptoken={}",
            offset + PAGE
        ));
    } else {
        page["@odata.deltaLink"] = delta_link(st, base);
    }
    axum::Json(page).into_response()
}

fn changes_page(st: &mut Graph, from: usize, at: usize, base: &str) -> axum::response::Response {
    let value: Vec<Value> = st
        .log
        .iter()
        .skip(at)
        .take(2)
        .map(|u| st.shape(u))
        .collect();
    let mut page = json!({"value": value});
    if at + 2 < st.log.len() {
        page["@odata.nextLink"] = json!(format!(
            "{base}/v1.0/users/delta?$skiptoken=chg-{from}-{}",
            at + 2
        ));
    } else {
        page["@odata.deltaLink"] = delta_link(st, base);
    }
    axum::Json(page).into_response()
}

/// A member by email, in any state.
async fn member(app: &TestApp, email: &str) -> Option<Value> {
    for view in ["all", "removed"] {
        let r = app
            .get(
                &format!("/api/v1/orgs/entra/members?access={view}&q={email}"),
                OPERATOR,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        if let Some(m) = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["member_email"] == email)
        {
            return Some(m.clone());
        }
    }
    None
}

fn counts(r: &Value) -> [i64; 5] {
    ["fetched", "created", "updated", "removed", "errors"].map(|k| r["counts"][k].as_i64().unwrap())
}

#[tokio::test]
async fn graph_reads_everyone_then_only_changes_and_heals_with_full_reads() {
    let state = Arc::new(Mutex::new(Graph::default()));
    {
        let mut st = state.lock().unwrap();
        st.users = (1..=USERS).map(|i| (id(i), user(i))).collect();
        st.group = (101..=250).map(id).collect();
    }
    let base = fake_graph(state.clone()).await;
    let dir = temp_dir();
    let secret = |name: &str, value: &str| {
        let p = dir.join(name);
        std::fs::write(&p, value).unwrap();
        format!("file:{}", p.display())
    };
    let text = format!(
        r#"
[[sources]]
name = "entra"
org = "entra"
kind = "graph"
tenant = "contoso.onmicrosoft.com"
client_id = "app-id"
client_secret = "{good}"
graph_url = "{base}"
login_url = "{base}"
groups = {{ "staff-group" = "Staff" }}
authoritative = true
max_removals = "100%"
[sources.mapping]
external_id = "id"
member_email = "mail"
login_email = "userPrincipalName"
given_name = "givenName"
family_name = "surname"
active = "accountEnabled"

[[sources]]
name = "entra-strict"
org = "strict"
kind = "graph"
tenant = "contoso.onmicrosoft.com"
client_id = "app-id"
client_secret = "{good}"
graph_url = "{base}"
login_url = "{base}"
authoritative = true
max_removals = 0
[sources.mapping]
external_id = "id"
member_email = "mail"
active = "accountEnabled"

[[sources]]
name = "entra-group"
org = "grp"
kind = "graph"
tenant = "contoso.onmicrosoft.com"
client_id = "app-id"
client_secret = "{good}"
graph_url = "{base}"
login_url = "{base}"
group_id = "staff-group"
authoritative = true
max_removals = "100%"
[sources.mapping]
external_id = "id"
member_email = "mail"
active = "accountEnabled"

[[sources]]
name = "entra-bad-secret"
org = "other"
kind = "graph"
tenant = "contoso.onmicrosoft.com"
client_id = "app-id"
client_secret = "{bad}"
graph_url = "{base}"
login_url = "{base}"
[sources.mapping]
external_id = "id"
member_email = "mail"
"#,
        good = secret("good", "graph-secret"),
        bad = secret("bad", "not-the-secret"),
    );
    let app = spawn_with_sources(&["entra", "other", "strict", "grp"], &text).await;

    // 1. The first run reads everyone through the delta query: three pages (one throttled
    // once), `accountEnabled` selected; the user without mail is a row error, the disabled
    // one is not created.
    let r = app.run_source("entra", "entra").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["coverage"], "full", "{r}");
    assert_eq!(counts(&r), [USERS as i64, 248, 0, 0, 1], "{r}");
    {
        let st = state.lock().unwrap();
        assert!(st.throttled, "the 429 was answered and retried");
        assert_eq!(st.full_reads, 1);
        for f in [
            "id",
            "mail",
            "userPrincipalName",
            "givenName",
            "surname",
            "accountEnabled",
        ] {
            assert!(
                st.select.split(',').any(|s| s == f),
                "$select={}",
                st.select
            );
        }
    }
    assert!(
        member(&app, "user20@contoso.example").await.is_none(),
        "disabled: not created"
    );
    // The mapped group's members, read alongside.
    assert_eq!(app.group_members("entra", "Staff").await.len(), 150);

    // 2. Changes: a user disabled, one deleted, one renamed (accountEnabled not in the change),
    // one new, and one changed twice within the round.
    {
        let mut st = state.lock().unwrap();
        let changes = vec![
            json!({"id": id(5), "accountEnabled": false}),
            json!({"id": id(6), "@removed": {"reason": "deleted"}}),
            json!({"id": id(7), "givenName": "Seven"}),
            json!({"id": id(8), "surname": "First"}),
            user(251),
            json!({"id": id(8), "surname": "Second"}),
        ];
        st.users.remove(&id(6));
        st.users.insert(id(251), user(251));
        for c in &changes {
            if let Some(u) = st.users.get_mut(c["id"].as_str().unwrap()) {
                for (k, v) in c.as_object().unwrap() {
                    u[k] = v.clone();
                }
            }
        }
        st.log.extend(changes);
    }
    let r = app.run_source("entra", "entra").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["coverage"], "changes", "{r}");
    // Five users changed (the repeated one merged): 1 created, 2 updated, 2 removed.
    assert_eq!(counts(&r), [5, 1, 2, 2, 0], "{r}");
    {
        let st = state.lock().unwrap();
        assert_eq!(
            (st.full_reads, st.delta_reads),
            (1, 1),
            "the stored delta link was followed"
        );
    }
    assert_eq!(
        member(&app, "user5@contoso.example").await.unwrap()["access"],
        "removed"
    );
    assert_eq!(
        member(&app, "user6@contoso.example").await.unwrap()["access"],
        "removed"
    );
    let seven = member(&app, "user7@contoso.example").await.unwrap();
    assert_eq!(seven["given_name"], "Seven");
    assert_ne!(
        seven["access"], "removed",
        "a change without accountEnabled keeps access"
    );
    assert_eq!(
        member(&app, "user8@contoso.example").await.unwrap()["family_name"],
        "Second"
    );
    assert!(member(&app, "user251@contoso.example").await.is_some());

    // 3. Changes that say nothing of access, and someone left the group: group members are read
    // on every run, delta or not.
    // Two changes that do not mention accountEnabled: a removed member stays removed, and the
    // disabled user (never created) is not created.
    {
        let mut st = state.lock().unwrap();
        st.group.retain(|m| m != &id(102));
        st.log.push(json!({"id": id(5), "givenName": "Five"}));
        st.log.push(json!({"id": id(20), "surname": "Renamed"}));
    }
    let r = app.run_source("entra", "entra").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["coverage"], "changes", "{r}");
    assert_eq!(counts(&r), [2, 0, 0, 0, 0], "{r}");
    assert_eq!(
        member(&app, "user5@contoso.example").await.unwrap()["access"],
        "removed"
    );
    assert!(member(&app, "user20@contoso.example").await.is_none());
    let staff = app.group_members("entra", "Staff").await;
    assert_eq!(staff.len(), 149);
    assert!(!staff.iter().any(|m| m == "User102 Example"), "{staff:?}");
    assert!(staff.iter().any(|m| m == "User103 Example"), "{staff:?}");

    // 4. Someone vanishes without a change (drift), and Graph forgets the delta link: the run
    // falls back to a full read, which removes the person.
    {
        let mut st = state.lock().unwrap();
        st.users.remove(&id(9));
        let token = format!("{}.{}", st.log.len(), st.issued);
        st.expired.push(token);
    }
    let r = app.run_source("entra", "entra").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["coverage"], "full", "{r}");
    assert_eq!(state.lock().unwrap().gone, 1);
    assert_eq!(r["counts"]["removed"], 1, "{r}");
    assert_eq!(
        member(&app, "user9@contoso.example").await.unwrap()["access"],
        "removed"
    );

    // 5. Within a day runs read changes (here none: an empty delta read is not "the source
    // returned nobody", so it is not held); after `full_sync_every_hours` (24) a full read
    // comes round by itself and heals drift again.
    state.lock().unwrap().users.remove(&id(10));
    let r = app.run_source("entra", "entra").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["coverage"], "changes", "{r}");
    assert_eq!(counts(&r), [0, 0, 0, 0, 0], "{r}");
    app.clock.advance(chrono::Duration::hours(25));
    let r = app.run_source("entra", "entra").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["coverage"], "full", "{r}");
    assert_eq!(r["counts"]["removed"], 1, "{r}");
    assert_eq!(state.lock().unwrap().full_reads, 3);

    // 6. A wrong client secret fails the run with the identity platform's error, and the
    // secret appears nowhere.
    let r = app.run_source("other", "entra-bad-secret").await;
    assert_eq!(r["status"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(msg.contains("invalid_client"), "{msg}");
    assert!(
        !msg.contains("not-the-secret") && !msg.contains("graph-secret"),
        "{msg}"
    );

    // 7. A held delta run does not move the source on: the next run reads the same changes
    // again (and is held again); once approved and applied, the source reads from there.
    let r = app.run_source("strict", "entra-strict").await;
    assert_eq!(
        (r["status"].as_str(), r["coverage"].as_str()),
        (Some("succeeded"), Some("full")),
        "{r}"
    );
    {
        let mut st = state.lock().unwrap();
        let change = json!({"id": id(30), "accountEnabled": false});
        st.log.push(change);
    }
    let mut held = Vec::new();
    for _ in 0..2 {
        let r = app.run_source("strict", "entra-strict").await;
        assert_eq!(r["status"], "held", "{r}");
        assert_eq!(r["coverage"], "changes", "{r}");
        assert_eq!(
            (
                r["counts"]["fetched"].as_i64(),
                r["planned"]["remove"].as_i64()
            ),
            (Some(1), Some(1)),
            "{r}"
        );
        held.push(r["id"].as_str().unwrap().to_owned());
    }
    let r = app
        .post(
            &format!("/api/v1/orgs/strict/runs/{}/approve", held[1]),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let path = format!("/api/v1/orgs/strict/runs/{}", held[1]);
    wait_for(30, "the approved run", || async {
        app.get(&path, OPERATOR).await.body["status"] == "succeeded"
    })
    .await;
    let r = app.run_source("strict", "entra-strict").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(
        (r["coverage"].as_str(), r["counts"]["fetched"].as_i64()),
        (Some("changes"), Some(0)),
        "{r}"
    );

    // 8. A group's transitive members, read in full each run (three pages by next link):
    // someone who leaves the group is removed.
    let r = app.run_source("grp", "entra-group").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["coverage"], "full", "{r}");
    assert_eq!(counts(&r), [149, 149, 0, 0, 0], "{r}");
    state.lock().unwrap().group.retain(|m| m != &id(101));
    let r = app.run_source("grp", "entra-group").await;
    assert_eq!(
        (r["coverage"].as_str(), counts(&r)),
        (Some("full"), [148, 0, 0, 1, 0]),
        "{r}"
    );

    // The CLI at trace level: neither the client secret nor an access token appears.
    let source = format!(
        "[[sources]]\nname = \"trace\"\norg = \"logs\"\nkind = \"graph\"\n\
         tenant = \"contoso.onmicrosoft.com\"\nclient_id = \"app-id\"\nclient_secret = \"{}\"\n\
         graph_url = \"{base}\"\nlogin_url = \"{base}\"\n[sources.mapping]\nexternal_id = \"id\"\n\
         member_email = \"mail\"\nactive = \"accountEnabled\"\n",
        secret("good2", "graph-secret")
    );
    let (code, logs) = crate::http_json::cli_sync_at_trace(&source, "trace", 0).await;
    assert_eq!(code, 0, "{logs}");
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "{logs}");
    assert!(!logs.contains("graph-secret"), "the client secret leaked");
    assert!(!logs.contains("Bearer graph-"), "an access token leaked");
    let _ = std::fs::remove_dir_all(dir);
}

/// The shipped example `config/graph.example.toml` against the fake Graph: its mappings read
/// what Graph sends. Only what must point at the fake changes: the Graph and login URLs (plain
/// http to this machine), the app's id and secret, and the group ids (the fake knows one).
#[tokio::test]
async fn the_shipped_graph_example_reads_the_directory() {
    use rosterd_connectors::SourceKind;
    use rosterd_connectors::secret::SecretRef;
    let state = Arc::new(Mutex::new(Graph::default()));
    {
        let mut st = state.lock().unwrap();
        st.users = (1..=USERS).map(|i| (id(i), user(i))).collect();
        st.group = (101..=250).map(id).collect();
    }
    let base = fake_graph(state.clone()).await;
    let dir = temp_dir();
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, "graph-secret").unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join("graph.example.toml");
    let mut example = rosterd::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    for s in &mut example.sources {
        s.schedule = None;
        let SourceKind::Graph(c) = &mut s.kind else {
            panic!("{}: a graph source", s.name);
        };
        c.graph_url = base.clone();
        c.login_url = base.clone();
        c.client_id = "app-id".into();
        c.client_secret = SecretRef::File(secret_file.display().to_string());
        c.groups = std::mem::take(&mut c.groups)
            .into_values()
            .map(|name| ("staff-group".to_owned(), name))
            .collect();
        if c.group_id.is_some() {
            c.group_id = Some("staff-group".into());
        }
    }
    let sources: Vec<(String, String)> = example
        .sources
        .iter()
        .map(|s| (s.org.clone(), s.name.clone()))
        .collect();
    let app = spawn_with(Mail::Log, move |c| {
        c.orgs = example.orgs;
        c.sources = example.sources;
        c.sync.retry_base_ms = 10;
    })
    .await;
    let [(org, everyone), (group_org, group)] = &sources[..] else {
        panic!("the example's two sources: {sources:?}");
    };
    // Everyone, by delta query: the user without mail is a row error, the disabled one is not
    // created; the mapped group is kept.
    let r = app.run_source(org, everyone).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(counts(&r), [USERS as i64, 248, 0, 0, 1], "{r}");
    assert_eq!(app.group_members(org, "Course staff").await.len(), 150);
    // One group's members, read in full into the same org: they are all there already.
    let r = app.run_source(group_org, group).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["fetched"], 150, "{r}");
    assert_eq!(r["counts"]["errors"], 0, "{r}");
    assert_eq!(r["counts"]["created"], 0, "{r}");
    let _ = std::fs::remove_dir_all(dir);
}
