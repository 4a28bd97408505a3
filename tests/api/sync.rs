//! The sync engine over HTTP: CSV sources (file and URL), idempotence, held runs and approval,
//! failed fetches, several sources on one org, the owner, the integration lock, import jobs,
//! the scheduler, and the org boundary.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rosterd::config::{OrgSeed, SourceConfig};
use serde_json::{Value, json};

use crate::helpers::*;

/// A person in a roster CSV: id, active, first name, last name, email, admin.
pub type Person<'a> = (&'a str, bool, &'a str, &'a str, &'a str, bool);

pub fn roster_csv(people: &[Person]) -> String {
    let mut s = String::from("ID,IsActive,FirstName,LastName,MemberID,IsAuthRep\r\n");
    for (id, active, first, last, email, admin) in people {
        let b = |v: bool| if v { "True" } else { "False" };
        s.push_str(&format!(
            "{id},{},{first},{last},{email},{}\r\n",
            b(*active),
            b(*admin)
        ));
    }
    s
}

pub const MAPPING: &str = r#"
external_id = "ID"
member_email = { field = "MemberID", transforms = ["trim", "lowercase"] }
given_name = "FirstName"
family_name = "LastName"
active = { field = "IsActive", map = { "True" = "true", "False" = "false" } }
role = { field = "IsAuthRep", map = { "True" = "admin", "False" = "member" } }
"#;

/// One `[[sources]]` entry (kind csv) in TOML.
pub fn csv_source(name: &str, org: &str, location: &str, extra: &str) -> String {
    format!(
        "[[sources]]\nname = \"{name}\"\norg = \"{org}\"\nkind = \"csv\"\n{location}\n{extra}\n[sources.mapping]\n{MAPPING}\n"
    )
}

pub fn parse_sources(text: &str) -> Vec<SourceConfig> {
    #[derive(serde::Deserialize)]
    struct W {
        sources: Vec<SourceConfig>,
    }
    toml::from_str::<W>(text)
        .unwrap_or_else(|e| panic!("{e}"))
        .sources
}

pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("rosterd-sync-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The application with these orgs (each with an owner) and `[[sources]]` (TOML), and connector
/// retries fast enough for tests.
pub async fn spawn_with_sources(orgs: &[&str], sources: &str) -> TestApp {
    let sources = parse_sources(sources);
    let orgs: Vec<OrgSeed> = orgs
        .iter()
        .map(|s| OrgSeed {
            slug: (*s).into(),
            name: format!("Org {s}"),
            owner_email: Some(format!("owner@{s}.example")),
        })
        .collect();
    spawn_with(Mail::Log, move |c| {
        c.orgs = orgs;
        c.sources = sources;
        c.sync.retry_base_ms = 10;
        c.sync.fetch_retries = 2;
    })
    .await
}

async fn wait_run(app: &TestApp, org: &str, id: &str) -> Value {
    let path = format!("/api/v1/orgs/{org}/runs/{id}");
    wait_for(30, "the run to finish", || {
        let p = path.clone();
        async move { app.get(&p, OPERATOR).await.body["status"] != "running" }
    })
    .await;
    app.get(&path, OPERATOR).await.body
}

fn counts(run: &Value) -> [i64; 6] {
    let c = &run["counts"];
    [
        "fetched",
        "created",
        "updated",
        "removed",
        "reactivated",
        "unchanged",
    ]
    .map(|k| c[k].as_i64().unwrap())
}

/// Members of an org as (email, access, given name, role), sorted by email.
async fn members(app: &TestApp, org: &str) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for view in ["all", "removed"] {
        let r = app
            .get(
                &format!("/api/v1/orgs/{org}/members?access={view}&limit=200"),
                OPERATOR,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for m in r.body["items"].as_array().unwrap() {
            out.push((
                m["member_email"].as_str().unwrap().to_owned(),
                m["access"].as_str().unwrap().to_owned(),
                m["given_name"].as_str().unwrap_or("").to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out.sort();
    out
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn a_csv_roster_syncs_and_the_same_snapshot_twice_changes_nothing() {
    let dir = temp_dir();
    let file = dir.join("roster.csv");
    let people = [
        ("1", true, "Ada", "Lovelace", "ada@acme.example", true),
        ("2", true, "Grace", "Hopper", "grace@acme.example", false),
        ("3", true, "Alan", "Turing", "alan@acme.example", false),
        (
            "4",
            false,
            "Charles",
            "Babbage",
            "charles@acme.example",
            false,
        ),
    ];
    write(&file, &roster_csv(&people));
    let src = csv_source(
        "hr",
        "acme",
        &format!("path = {:?}", file.display().to_string()),
        "authoritative = true\nmax_removals = 5",
    );
    let app = spawn_with_sources(&["acme"], &src).await;
    let run = app.run_source("acme", "hr").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(counts(&run), [4, 3, 0, 0, 0, 1], "{run}");
    let m = members(&app, "acme").await;
    assert_eq!(m.len(), 4, "{m:?}");
    assert!(m.contains(&(
        "ada@acme.example".into(),
        "invited".into(),
        "Ada".into(),
        "admin".into()
    )));
    assert!(!m.iter().any(|x| x.0 == "charles@acme.example"));
    // Each new member got an invitation, like a manual add.
    let invites = app.outbox("acme").await;
    assert_eq!(invites.len(), 4, "the owner and three synced members");

    // The same snapshot again: nothing changes, not even the audit log or the outbox.
    let before = app.snapshot("acme").await;
    let run = app.run_source("acme", "hr").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(counts(&run), [4, 0, 0, 0, 0, 4], "{run}");
    assert_eq!(app.snapshot("acme").await, before);

    // A rename, a deactivation and a newcomer: exactly those changes.
    let people = [
        (
            "1",
            true,
            "Augusta Ada",
            "Lovelace",
            "ada@acme.example",
            true,
        ),
        ("2", true, "Grace", "Hopper", "grace@acme.example", false),
        ("3", false, "Alan", "Turing", "alan@acme.example", false),
        (
            "4",
            false,
            "Charles",
            "Babbage",
            "charles@acme.example",
            false,
        ),
        (
            "5",
            true,
            "Edsger",
            "Dijkstra",
            "edsger@acme.example",
            false,
        ),
    ];
    write(&file, &roster_csv(&people));
    let run = app.run_source("acme", "hr").await;
    assert_eq!(counts(&run), [5, 1, 1, 1, 0, 2], "{run}");
    let m = members(&app, "acme").await;
    assert!(m.contains(&(
        "alan@acme.example".into(),
        "removed".into(),
        "Alan".into(),
        "member".into()
    )));
    assert!(
        m.iter()
            .any(|x| x.0 == "ada@acme.example" && x.2 == "Augusta Ada")
    );
    // The update carried the changed field only.
    let plan = app
        .get(
            &format!(
                "/api/v1/orgs/acme/runs/{}/plan",
                run["id"].as_str().unwrap()
            ),
            OPERATOR,
        )
        .await;
    let update = plan.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["action"] == "update")
        .cloned()
        .unwrap();
    assert_eq!(
        update["changes"],
        json!([{"field": "given_name", "from": "Ada", "to": "Augusta Ada"}])
    );

    // Back in the roster: reactivated through the state machine (re-invited, never enrolled).
    let people = [
        (
            "1",
            true,
            "Augusta Ada",
            "Lovelace",
            "ada@acme.example",
            true,
        ),
        ("2", true, "Grace", "Hopper", "grace@acme.example", false),
        ("3", true, "Alan", "Turing", "alan@acme.example", false),
        (
            "5",
            true,
            "Edsger",
            "Dijkstra",
            "edsger@acme.example",
            false,
        ),
    ];
    write(&file, &roster_csv(&people));
    let run = app.run_source("acme", "hr").await;
    assert_eq!(counts(&run), [4, 0, 0, 0, 1, 3], "{run}");
    let m = members(&app, "acme").await;
    assert!(
        m.iter()
            .any(|x| x.0 == "alan@acme.example" && x.1 == "invited")
    );
    let invites = app.outbox("acme").await;
    assert_eq!(invites.len(), 6, "Edsger's invitation and Alan's new one");

    // Rows the mapping cannot read (IsActive "Maybe", an email that is not one) are error rows
    // that protect their own person only: Edsger, gone from the roster, is still removed.
    let text = roster_csv(&people)
        .replace("3,True,Alan", "3,Maybe,Alan")
        .replace("grace@acme.example", "not-an-email");
    write(
        &file,
        &text.replace("5,True,Edsger,Dijkstra,edsger@acme.example,False\r\n", ""),
    );
    let run = app.run_source("acme", "hr").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["removed"], 1, "{run}");
    assert_eq!(run["counts"]["errors"], 2, "{run}");
    assert_eq!(run["warnings"], json!([]), "{run}");
    let m = members(&app, "acme").await;
    let access = |email: &str| {
        m.iter()
            .find(|x| x.0 == email)
            .map(|x| x.1.clone())
            .unwrap_or_default()
    };
    assert_eq!(access("edsger@acme.example"), "removed", "{m:?}");
    assert_eq!(access("alan@acme.example"), "invited", "{m:?}");
    assert_ne!(access("grace@acme.example"), "removed", "{m:?}");
    let errors = app
        .get(
            &format!(
                "/api/v1/orgs/acme/runs/{}/errors.csv",
                run["id"].as_str().unwrap()
            ),
            OPERATOR,
        )
        .await;
    assert!(
        errors.text.contains("4,3,IsActive,Maybe,"),
        "{}",
        errors.text
    );
    assert!(
        errors.text.contains("3,2,MemberID,not-an-email,"),
        "{}",
        errors.text
    );
    write(&file, &roster_csv(&people));
    let run = app.run_source("acme", "hr").await;
    assert_eq!(run["counts"]["reactivated"], 1, "Edsger is back: {run}");

    // A row whose id cannot be read could be anyone: nobody is removed for being absent.
    let text = roster_csv(&people).replace("3,True,Alan", ",True,Alan");
    write(
        &file,
        &text.replace("5,True,Edsger,Dijkstra,edsger@acme.example,False\r\n", ""),
    );
    let run = app.run_source("acme", "hr").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["removed"], 0, "{run}");
    assert_eq!(run["counts"]["errors"], 1, "{run}");
    assert!(
        run["warnings"][0]
            .as_str()
            .unwrap()
            .contains("nobody is removed"),
        "{run}"
    );
    write(&file, &roster_csv(&people));
    app.run_source("acme", "hr").await;

    // Run history and the source's status.
    let runs = app.get("/api/v1/orgs/acme/runs", OPERATOR).await;
    assert_eq!(runs.body["items"].as_array().unwrap().len(), 8);
    let s = app.get("/api/v1/orgs/acme/sources/hr", OPERATOR).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.body["last_run"]["status"], "succeeded");
    assert_eq!(s.body["manages_org"], true);
    assert_eq!(s.body["failing"], false);
    assert_eq!(
        s.body["next_run_at"],
        Value::Null,
        "no schedule: on demand only"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn removals_over_the_limit_are_held_until_approved_or_superseded() {
    let dir = temp_dir();
    let file = dir.join("roster.csv");
    let all = [
        ("1", true, "A", "A", "a@held.example", false),
        ("2", true, "B", "B", "b@held.example", false),
        ("3", true, "C", "C", "c@held.example", false),
        ("4", true, "D", "D", "d@held.example", false),
    ];
    write(&file, &roster_csv(&all));
    let src = csv_source(
        "hr",
        "held",
        &format!("path = {:?}", file.display().to_string()),
        "authoritative = true\nmax_removals = 1",
    );
    let app = spawn_with_sources(&["held"], &src).await;
    assert_eq!(app.run_source("held", "hr").await["status"], "succeeded");

    write(&file, &roster_csv(&all[..1]));
    let before = app.snapshot("held").await;
    let run = app.run_source("held", "hr").await;
    assert_eq!(run["status"], "held", "{run}");
    assert_eq!(run["planned"]["remove"], 3, "{run}");
    assert!(
        run["message"].as_str().unwrap().contains("max_removals"),
        "{run}"
    );
    assert_eq!(
        app.snapshot("held").await,
        before,
        "a held run applies nothing"
    );
    let id = run["id"].as_str().unwrap().to_owned();
    let plan = app
        .get(&format!("/api/v1/orgs/held/runs/{id}/plan"), OPERATOR)
        .await;
    let removes: Vec<&str> = plan.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "remove")
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    assert_eq!(removes.len(), 3, "{}", plan.text);

    // Approval applies the stored plan.
    let r = app
        .post(
            &format!("/api/v1/orgs/held/runs/{id}/approve"),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let done = wait_run(&app, "held", &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["counts"]["removed"], 3);
    assert_eq!(done["approved_by"], "operator token");
    let m = members(&app, "held").await;
    assert_eq!(m.iter().filter(|x| x.1 == "removed").count(), 3, "{m:?}");
    // Approving twice is refused.
    let r = app
        .post(
            &format!("/api/v1/orgs/held/runs/{id}/approve"),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_problem(&r, 409);

    // A held run is superseded by the next run.
    write(&file, &roster_csv(&all));
    assert_eq!(
        app.run_source("held", "hr").await["counts"]["reactivated"],
        3
    );
    write(&file, &roster_csv(&all[..1]));
    let held = app.run_source("held", "hr").await;
    assert_eq!(held["status"], "held");
    write(&file, &roster_csv(&all));
    let next = app.run_source("held", "hr").await;
    assert_eq!(next["status"], "succeeded");
    let held_id = held["id"].as_str().unwrap();
    let old = app
        .get(&format!("/api/v1/orgs/held/runs/{held_id}"), OPERATOR)
        .await;
    assert_eq!(old.body["status"], "superseded", "{}", old.text);
    let r = app
        .post(
            &format!("/api/v1/orgs/held/runs/{held_id}/approve"),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_problem(&r, 409);

    // Details of old runs go after keep_run_details_days; held plans and the run rows stay.
    let approved = app
        .get(&format!("/api/v1/orgs/held/runs/{id}/plan"), OPERATOR)
        .await;
    assert!(!approved.body["items"].as_array().unwrap().is_empty());
    app.clock.advance(chrono::Duration::days(31));
    assert!(app.state.sync.prune().await.unwrap() > 0);
    let pruned = app
        .get(&format!("/api/v1/orgs/held/runs/{id}/plan"), OPERATOR)
        .await;
    assert_eq!(pruned.body["items"], json!([]), "{}", pruned.text);
    let run_row = app
        .get(&format!("/api/v1/orgs/held/runs/{id}"), OPERATOR)
        .await;
    assert_eq!(run_row.body["counts"]["removed"], 3);

    // An empty snapshot from a source that had members is always held, whatever the limit.
    write(&file, &roster_csv(&[]));
    let run = app.run_source("held", "hr").await;
    assert_eq!(run["status"], "held", "{run}");
    assert!(
        run["message"].as_str().unwrap().contains("returned nobody"),
        "{run}"
    );
    assert_eq!(
        members(&app, "held")
            .await
            .iter()
            .filter(|x| x.1 == "removed")
            .count(),
        0
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A fake roster server: `/roster.csv` answers according to `mode` (0: the body, 1: 503 with
/// Retry-After then the body, 2: half the body then a broken connection, 3: the body once the
/// test opens the `gate`, so a run stays in progress as long as the test needs).
struct FakeRoster {
    base: String,
    mode: Arc<AtomicUsize>,
    body: Arc<std::sync::Mutex<String>>,
    hits: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
}

async fn fake_roster() -> FakeRoster {
    use axum::body::Body;
    use axum::response::IntoResponse;
    let mode = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(std::sync::Mutex::new(String::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (m, b, h) = (mode.clone(), body.clone(), hits.clone());
    let g = gate.clone();
    let router = axum::Router::new().route(
        "/roster.csv",
        axum::routing::get(move || {
            let (m, b, h, g) = (m.clone(), b.clone(), h.clone(), g.clone());
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                let text = b.lock().unwrap().clone();
                match m.load(Ordering::SeqCst) {
                    1 if n.is_multiple_of(2) => (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "1")],
                        "busy",
                    )
                        .into_response(),
                    3 => {
                        let _ = g.acquire().await;
                        text.into_response()
                    }
                    2 => {
                        let half = text.as_bytes()[..text.len() / 2].to_vec();
                        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                            vec![Ok(half), Err(std::io::Error::other("connection reset"))];
                        Body::from_stream(futures_util::stream::iter(chunks)).into_response()
                    }
                    _ => text.into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    FakeRoster {
        base: format!("http://{addr}"),
        mode,
        body,
        gate,
        hits,
    }
}

#[tokio::test]
async fn a_fetch_that_fails_halfway_changes_nothing_and_flags_the_source() {
    let fake = fake_roster().await;
    let people = [
        ("1", true, "A", "A", "a@url.example", false),
        ("2", true, "B", "B", "b@url.example", false),
        ("3", true, "C", "C", "c@url.example", false),
    ];
    *fake.body.lock().unwrap() = roster_csv(&people);
    let src = csv_source(
        "remote",
        "url",
        &format!("url = \"{}/roster.csv\"", fake.base),
        "authoritative = true\nmax_removals = 10",
    );
    let app = spawn_with_sources(&["url"], &src).await;
    // 503 with Retry-After first: the request is retried and the run succeeds.
    fake.mode.store(1, Ordering::SeqCst);
    let run = app.run_source("url", "remote").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["created"], 3);
    assert!(fake.hits.load(Ordering::SeqCst) >= 2);

    // The roster now drops two people and adds one, but the body breaks off halfway.
    let big: Vec<(String, String)> = (10..400)
        .map(|i| (i.to_string(), format!("p{i}@url.example")))
        .collect();
    let mut next: Vec<Person> = vec![people[0]];
    next.extend(
        big.iter()
            .map(|(id, e)| (id.as_str(), true, "P", "Q", e.as_str(), false)),
    );
    *fake.body.lock().unwrap() = roster_csv(&next);
    fake.mode.store(2, Ordering::SeqCst);
    let before = app.snapshot("url").await;
    let run = app.run_source("url", "remote").await;
    assert_eq!(run["status"], "failed", "{run}");
    let message = run["message"].as_str().unwrap();
    assert!(
        message.contains("/roster.csv"),
        "the failure names the source: {message}"
    );
    assert_eq!(
        app.snapshot("url").await,
        before,
        "a failed fetch changes nothing"
    );
    let s = app.get("/api/v1/orgs/url/sources/remote", OPERATOR).await;
    assert_eq!(s.body["failing"], true, "{}", s.text);
    assert_eq!(s.body["consecutive_failures"], 1);
    assert!(s.body["last_error"].as_str().is_some());
    assert!(s.body["retry_after"].as_str().is_some());

    // The source recovers: the next run applies the whole snapshot and clears the flag.
    fake.mode.store(0, Ordering::SeqCst);
    let run = app.run_source("url", "remote").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["created"], 390, "{run}");
    assert_eq!(run["counts"]["removed"], 2, "{run}");
    let s = app.get("/api/v1/orgs/url/sources/remote", OPERATOR).await;
    assert_eq!(s.body["failing"], false, "{}", s.text);
    assert_eq!(s.body["last_error"], Value::Null);
}

#[tokio::test]
async fn several_sources_share_an_org_by_priority_and_removal_needs_every_claim_gone() {
    let dir = temp_dir();
    let (hr, lms) = (dir.join("hr.csv"), dir.join("lms.csv"));
    write(
        &hr,
        &roster_csv(&[
            ("h1", true, "Ada", "L", "ada@multi.example", false),
            ("h2", true, "Bob", "B", "bob@multi.example", false),
        ]),
    );
    write(
        &lms,
        &roster_csv(&[
            ("l1", true, "Ada-from-LMS", "L", "ADA@multi.example", false),
            ("l2", true, "Cy", "C", "cy@multi.example", false),
        ]),
    );
    let sources = format!(
        "{}{}",
        csv_source(
            "hr",
            "multi",
            &format!("path = {:?}", hr.display().to_string()),
            "authoritative = true\npriority = 10\nmax_removals = 5",
        ),
        csv_source(
            "lms",
            "multi",
            &format!("path = {:?}", lms.display().to_string()),
            "authoritative = true\npriority = 20\nmax_removals = 5",
        )
    );
    let app = spawn_with_sources(&["multi"], &sources).await;
    assert_eq!(app.run_source("multi", "hr").await["counts"]["created"], 2);
    let run = app.run_source("multi", "lms").await;
    assert_eq!(
        run["counts"]["created"], 1,
        "Ada is matched by email: {run}"
    );
    assert_eq!(
        run["counts"]["updated"], 0,
        "hr outranks lms for Ada's name: {run}"
    );
    let m = members(&app, "multi").await;
    assert!(
        m.iter().any(|x| x.0 == "ada@multi.example" && x.2 == "Ada"),
        "{m:?}"
    );
    // The lock names the source of highest priority.
    let org = app.get("/api/v1/orgs/multi/sources", OPERATOR).await;
    let managing: Vec<&str> = org.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["manages_org"] == true)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(managing, ["hr"]);

    // Ada leaves hr: lms still claims her, so she stays (with a warning).
    write(
        &hr,
        &roster_csv(&[("h2", true, "Bob", "B", "bob@multi.example", false)]),
    );
    let run = app.run_source("multi", "hr").await;
    assert_eq!(run["counts"]["removed"], 0, "{run}");
    assert!(
        run["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("ada@multi.example")),
        "{run}"
    );
    // Now lms's attributes apply (nothing outranks it for Ada any more).
    let run = app.run_source("multi", "lms").await;
    assert_eq!(run["counts"]["updated"], 1, "{run}");
    // Ada leaves lms too: now she is removed.
    write(
        &lms,
        &roster_csv(&[("l2", true, "Cy", "C", "cy@multi.example", false)]),
    );
    let run = app.run_source("multi", "lms").await;
    assert_eq!(run["counts"]["removed"], 1, "{run}");
    let m = members(&app, "multi").await;
    assert!(
        m.iter()
            .any(|x| x.0 == "ada@multi.example" && x.1 == "removed"),
        "{m:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_owner_is_never_removed_and_manual_removal_is_locked_by_the_source() {
    let dir = temp_dir();
    let file = dir.join("roster.csv");
    write(
        &file,
        &roster_csv(&[
            ("o", true, "Olive", "Owner", "owner@locked.example", true),
            ("m", true, "Max", "M", "max@locked.example", false),
        ]),
    );
    let src = csv_source(
        "roster",
        "locked",
        &format!("path = {:?}", file.display().to_string()),
        "authoritative = true\nmax_removals = 5",
    );
    let app = spawn_with_sources(&["locked"], &src).await;
    let run = app.run_source("locked", "roster").await;
    assert_eq!(
        run["counts"]["created"], 1,
        "the owner is adopted by email: {run}"
    );
    write(
        &file,
        &roster_csv(&[
            ("o", false, "Olive", "Owner", "owner@locked.example", true),
            ("m", true, "Max", "M", "max@locked.example", false),
        ]),
    );
    let run = app.run_source("locked", "roster").await;
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["counts"]["removed"], 0, "{run}");
    assert!(
        run["warnings"][0].as_str().unwrap().contains("owner"),
        "{run}"
    );
    let m = members(&app, "locked").await;
    assert!(
        m.iter()
            .any(|x| x.0 == "owner@locked.example" && x.1 == "invited" && x.3 == "owner")
    );

    // Manual removal is refused, naming the source.
    let list = app.get("/api/v1/orgs/locked/members?q=max", OPERATOR).await;
    let id = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .delete(&format!("/api/v1/orgs/locked/members/{id}"), OPERATOR)
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["integration"], "source `roster`", "{}", r.text);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("remove the person in source `roster`")
    );
    // So is a removal by import; the job applies nothing.
    let before = app.snapshot("locked").await;
    let r = upload(
        &app,
        "locked",
        b"email,active\r\nmax@locked.example,false\r\n".to_vec(),
    )
    .await;
    assert_eq!(r["status"], "invalid", "{r}");
    assert!(
        r["error_rows"][0]["message"]
            .as_str()
            .unwrap()
            .contains("source `roster`"),
        "{r}"
    );
    assert_eq!(app.snapshot("locked").await, before);
    let _ = std::fs::remove_dir_all(dir);
}

async fn upload(app: &TestApp, org: &str, body: Vec<u8>) -> Value {
    let r = app
        .client
        .post(app.url(&format!("/api/v1/orgs/{org}/imports?filename=people.csv")))
        .bearer_auth(OPERATOR)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn import_jobs_validate_every_row_preview_and_apply_only_on_confirmation() {
    let app = spawn_with_sources(&["imp"], "sources = []").await;
    // The template.
    let t = app
        .get("/api/v1/orgs/imp/imports/template.csv", OPERATOR)
        .await;
    assert_eq!(t.status, 200);
    assert!(
        t.text.starts_with("email,first_name,last_name"),
        "{}",
        t.text
    );

    // Any bad row: the job is invalid, applies nothing, and offers an error report.
    let before = app.snapshot("imp").await;
    let bad = "email,first_name,role\r\nann@imp.example,Ann,member\r\nnot-an-email,Bo,member\r\ncid@imp.example,Cid,boss\r\n";
    let job = upload(&app, "imp", bad.as_bytes().to_vec()).await;
    assert_eq!(job["status"], "invalid", "{job}");
    assert_eq!(job["counts"]["errors"], 2);
    let id = job["id"].as_str().unwrap();
    let csv = app
        .get(
            &format!("/api/v1/orgs/imp/imports/{id}/errors.csv"),
            OPERATOR,
        )
        .await;
    assert_eq!(csv.status, 200);
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines[0], "line,external_id,field,value,message");
    assert!(
        lines[1].starts_with("3,not-an-email,email,not-an-email,"),
        "{}",
        csv.text
    );
    // The row's id (here its email) is named when it could be read.
    assert!(
        lines[2].starts_with("4,cid@imp.example,role,boss,"),
        "{}",
        csv.text
    );
    let r = app
        .post(
            &format!("/api/v1/orgs/imp/imports/{id}/confirm"),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(app.snapshot("imp").await, before);

    // A clean job (in a .zip) is a preview: who will be invited and updated; nothing yet.
    let mut zipped = std::io::Cursor::new(Vec::new());
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(&mut zipped);
        z.start_file("people.csv", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"\xef\xbb\xbfemail,first_name,last_name,role\r\nann@imp.example,Ann,A,admin\r\nowner@imp.example,Olive,O,\r\n\"bo@imp.example\",\"Bo, Jr.\",B,member\r\n")
            .unwrap();
        z.finish().unwrap();
    }
    let job = upload(&app, "imp", zipped.into_inner()).await;
    assert_eq!(job["status"], "preview", "{job}");
    assert_eq!(job["planned"]["create"], 2, "{job}");
    assert_eq!(job["planned"]["update"], 1, "the owner's names: {job}");
    assert_eq!(
        app.snapshot("imp").await,
        before,
        "a preview changes nothing"
    );
    let id = job["id"].as_str().unwrap().to_owned();
    let plan = app
        .get(&format!("/api/v1/orgs/imp/imports/{id}/plan"), OPERATOR)
        .await;
    let actions: Vec<(&str, &str)> = plan.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["action"].as_str().unwrap(), i["email"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("create", "ann@imp.example"),
            ("link", "owner@imp.example"),
            ("update", "owner@imp.example"),
            ("create", "bo@imp.example")
        ]
    );
    let r = app
        .post(
            &format!("/api/v1/orgs/imp/imports/{id}/confirm"),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let done = wait_import(&app, "imp", &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let m = members(&app, "imp").await;
    assert!(m.contains(&(
        "ann@imp.example".into(),
        "invited".into(),
        "Ann".into(),
        "admin".into()
    )));
    assert!(
        m.iter()
            .any(|x| x.0 == "bo@imp.example" && x.2 == "Bo, Jr.")
    );
    assert!(
        m.iter()
            .any(|x| x.0 == "owner@imp.example" && x.2 == "Olive" && x.3 == "owner")
    );
    assert_eq!(
        app.outbox("imp").await.len(),
        3,
        "two invitations and the owner's"
    );

    // A later import removes someone an earlier import added (active = false).
    let job = upload(
        &app,
        "imp",
        b"email,active\r\nbo@imp.example,false\r\n".to_vec(),
    )
    .await;
    assert_eq!(job["planned"]["remove"], 1, "{job}");
    let id3 = job["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/orgs/imp/imports/{id3}/confirm"),
        OPERATOR,
        json!({}),
    )
    .await;
    assert_eq!(wait_import(&app, "imp", &id3).await["counts"]["removed"], 1);
    assert!(
        members(&app, "imp")
            .await
            .iter()
            .any(|x| x.0 == "bo@imp.example" && x.1 == "removed")
    );

    // A preview can be cancelled; then it cannot be confirmed.
    let job = upload(&app, "imp", b"email\r\nzed@imp.example\r\n".to_vec()).await;
    let id2 = job["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/orgs/imp/imports/{id2}/cancel"),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_eq!(r.body["status"], "cancelled", "{}", r.text);
    let r = app
        .post(
            &format!("/api/v1/orgs/imp/imports/{id2}/confirm"),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_problem(&r, 409);
    // The job list, newest first, with statuses.
    let list = app.get("/api/v1/orgs/imp/imports", OPERATOR).await;
    let statuses: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["cancelled", "succeeded", "succeeded", "invalid"]);
    // Bad uploads get a clear error and create no job.
    let r = app
        .client
        .post(app.url("/api/v1/orgs/imp/imports"))
        .bearer_auth(OPERATOR)
        .body("name,first_name\r\nx,y\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("email"), "{body}");
    let r = app
        .client
        .post(app.url("/api/v1/orgs/imp/imports"))
        .bearer_auth(OPERATOR)
        .body(b"PK\x03\x04not really a zip".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let list = app.get("/api/v1/orgs/imp/imports", OPERATOR).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 4);
}

async fn wait_import(app: &TestApp, org: &str, id: &str) -> Value {
    let path = format!("/api/v1/orgs/{org}/imports/{id}");
    wait_for(30, "the import to finish", || {
        let p = path.clone();
        async move { app.get(&p, OPERATOR).await.body["status"] != "running" }
    })
    .await;
    app.get(&path, OPERATOR).await.body
}

#[tokio::test]
async fn one_orgs_admin_never_sees_another_orgs_sources_runs_or_imports() {
    let dir = temp_dir();
    let file = dir.join("roster.csv");
    write(
        &file,
        &roster_csv(&[("1", true, "A", "A", "a@bb.example", false)]),
    );
    let src = csv_source(
        "b-roster",
        "bb",
        &format!("path = {:?}", file.display().to_string()),
        "",
    );
    let app = spawn_with_sources(&["aa", "bb"], &src).await;
    let run = app.run_source("bb", "b-roster").await;
    let run_id = run["id"].as_str().unwrap().to_owned();
    let job = upload(&app, "bb", b"email\r\nx@bb.example\r\n".to_vec()).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/orgs/aa/tokens",
            OPERATOR,
            json!({"kind": "admin", "name": "a"}),
        )
        .await;
    let a = r.body["token"].as_str().unwrap().to_owned();
    for path in [
        "/api/v1/orgs/bb/sources".to_owned(),
        "/api/v1/orgs/bb/sources/b-roster".to_owned(),
        format!("/api/v1/orgs/bb/runs/{run_id}"),
        "/api/v1/orgs/aa/sources/b-roster".to_owned(),
        format!("/api/v1/orgs/aa/runs/{run_id}"),
        format!("/api/v1/orgs/aa/runs/{run_id}/plan"),
        format!("/api/v1/orgs/aa/runs/{run_id}/errors.csv"),
        format!("/api/v1/orgs/aa/imports/{job_id}"),
        format!("/api/v1/orgs/aa/imports/{job_id}/errors.csv"),
    ] {
        let r = app.get(&path, &a).await;
        assert_problem(&r, 404);
    }
    for path in [
        "/api/v1/orgs/aa/sources/b-roster/runs".to_owned(),
        format!("/api/v1/orgs/aa/runs/{run_id}/approve"),
        format!("/api/v1/orgs/aa/imports/{job_id}/confirm"),
        format!("/api/v1/orgs/aa/imports/{job_id}/cancel"),
        "/api/v1/orgs/bb/sources/b-roster/runs".to_owned(),
    ] {
        let r = app.post(&path, &a, json!({})).await;
        assert_problem(&r, 404);
    }
    let r = app.get("/api/v1/orgs/aa/runs", &a).await;
    assert_eq!(r.body["items"], json!([]));
    let r = app.get("/api/v1/orgs/aa/imports", &a).await;
    assert_eq!(r.body["items"], json!([]));
    let job = app
        .get(&format!("/api/v1/orgs/bb/imports/{job_id}"), OPERATOR)
        .await;
    assert_eq!(job.body["status"], "preview", "untouched by org aa's admin");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_scheduler_runs_each_tick_once_and_a_busy_source_refuses_run_now() {
    let dir = temp_dir();
    let file = dir.join("roster.csv");
    write(
        &file,
        &roster_csv(&[("1", true, "A", "A", "a@tick.example", false)]),
    );
    let src = csv_source(
        "ticker",
        "tick",
        &format!("path = {:?}", file.display().to_string()),
        "schedule = \"*/10 * * * * *\"",
    );
    let app = spawn_with_sources(&["tick"], &src).await;
    let s = app.get("/api/v1/orgs/tick/sources/ticker", OPERATOR).await;
    assert_eq!(s.body["next_run_at"], "2026-03-02T09:00:10Z", "{}", s.text);
    app.clock.advance(chrono::Duration::seconds(10));
    let runs = || async {
        app.get("/api/v1/orgs/tick/runs", OPERATOR).await.body["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    wait_for(10, "the first scheduled run", || async {
        runs()
            .await
            .first()
            .is_some_and(|r| r["status"] == "succeeded")
    })
    .await;
    let first = runs().await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["trigger"], "schedule");
    assert_eq!(first[0]["scheduled_for"], "2026-03-02T09:00:10Z");
    app.clock.advance(chrono::Duration::seconds(10));
    wait_for(10, "the second scheduled run", || async {
        runs().await.len() == 2 && runs().await[0]["status"] == "succeeded"
    })
    .await;
    assert_eq!(runs().await[0]["scheduled_for"], "2026-03-02T09:00:20Z");
    assert_eq!(runs().await[0]["counts"]["unchanged"], 1);
    // Unknown sources are 404s; bad query parameters 400s.
    let r = app
        .post("/api/v1/orgs/tick/sources/nope/runs", OPERATOR, json!({}))
        .await;
    assert_problem(&r, 404);
    let r = app.get("/api/v1/orgs/tick/runs?limit=0", OPERATOR).await;
    assert_problem(&r, 400);
    let r = app.get("/api/v1/orgs/tick/runs?cursor=zzz", OPERATOR).await;
    assert_problem(&r, 400);
    let r = app.get("/api/v1/orgs/tick/runs/not-a-uuid", OPERATOR).await;
    assert_problem(&r, 404);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn one_run_of_a_source_at_a_time_and_a_failing_source_backs_off() {
    let fake = fake_roster().await;
    *fake.body.lock().unwrap() = roster_csv(&[("1", true, "A", "A", "a@slow.example", false)]);
    let dir = temp_dir();
    let sources = format!(
        "{}{}",
        csv_source(
            "slow",
            "slow",
            &format!("url = \"{}/roster.csv\"", fake.base),
            "schedule = \"0 * * * *\"",
        ),
        csv_source(
            "missing",
            "slow",
            &format!("path = {:?}", dir.join("nope.csv").display().to_string()),
            "schedule = \"0 * * * *\"",
        )
    );
    let app = spawn_with_sources(&["slow"], &sources).await;
    // While a run is in progress, run now is refused and the status says it is running.
    fake.mode.store(3, Ordering::SeqCst);
    let r = app
        .post("/api/v1/orgs/slow/sources/slow/runs", OPERATOR, json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let again = app
        .post("/api/v1/orgs/slow/sources/slow/runs", OPERATOR, json!({}))
        .await;
    assert_problem(&again, 409);
    assert_eq!(again.body["code"], "run_in_progress", "{}", again.text);
    let s = app.get("/api/v1/orgs/slow/sources/slow", OPERATOR).await;
    assert_eq!(s.body["running"], true, "{}", s.text);
    fake.gate.add_permits(1);
    assert_eq!(wait_run(&app, "slow", &id).await["status"], "succeeded");
    let s = app.get("/api/v1/orgs/slow/sources/slow", OPERATOR).await;
    assert_eq!(s.body["running"], false, "the lease is released at once");

    // A source that keeps failing is flagged and backed off: 60 s, then 120 s (+ jitter), and
    // its next scheduled run is the first tick after that.
    let now = rosterd::clock::Clock::now(&app.clock);
    for (failures, base) in [(1, 60), (2, 120)] {
        let run = app.run_source("slow", "missing").await;
        assert_eq!(run["status"], "failed", "{run}");
        assert!(
            run["message"].as_str().unwrap().contains("nope.csv"),
            "{run}"
        );
        let s = app.get("/api/v1/orgs/slow/sources/missing", OPERATOR).await;
        assert_eq!(s.body["failing"], true);
        assert_eq!(s.body["consecutive_failures"], failures);
        let retry: chrono::DateTime<chrono::Utc> =
            s.body["retry_after"].as_str().unwrap().parse().unwrap();
        let wait = (retry - now).num_seconds();
        assert!((base..=base + base / 4).contains(&wait), "{wait}");
        let next: chrono::DateTime<chrono::Utc> =
            s.body["next_run_at"].as_str().unwrap().parse().unwrap();
        assert!(next >= retry, "{next} {retry}");
    }
    // Fixed: the next run succeeds and clears the flag.
    std::fs::write(dir.join("nope.csv"), roster_csv(&[])).unwrap();
    let run = app.run_source("slow", "missing").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let s = app.get("/api/v1/orgs/slow/sources/missing", OPERATOR).await;
    assert_eq!(s.body["failing"], false);
    assert_eq!(s.body["consecutive_failures"], 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_shipped_demo_source_syncs_its_roster() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rosterd.toml"),
    )
    .unwrap();
    let shipped = rosterd::config::Config::parse(&text, "config/rosterd.toml").unwrap();
    let (orgs, sources) = (shipped.orgs.clone(), shipped.sources.clone());
    assert_eq!(
        sources[0].schedule.as_deref(),
        Some("*/30 * * * * *"),
        "within a minute"
    );
    let app = spawn_with(Mail::Log, move |c| {
        c.orgs = orgs;
        c.sources = sources;
    })
    .await;
    let run = app.run_source("demo", "demo-roster").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(counts(&run), [8, 7, 0, 0, 0, 1], "{run}");
    let m = members(&app, "demo").await;
    assert!(
        m.iter()
            .any(|x| x.0 == "ada.lovelace@demo.example" && x.3 == "admin")
    );
}

/// A CSV roster's department column keeps rosterd groups: the source's `groups` maps its values
/// (ignoring case) to group names, and the groups follow the roster from run to run.
#[tokio::test]
async fn a_roster_column_keeps_the_groups_it_names() {
    let dir = temp_dir();
    let file = dir.join("staff.csv");
    let roster = |rows: &[(&str, &str, &str)]| {
        let mut s = String::from("ID,Email,Department\r\n");
        for (id, email, dept) in rows {
            s.push_str(&format!("{id},{email},\"{dept}\"\r\n"));
        }
        s
    };
    write(
        &file,
        &roster(&[
            ("1", "a@dept.example", "Finance"),
            ("2", "b@dept.example", "Finance;Audit"),
            ("3", "c@dept.example", "Sales"),
        ]),
    );
    let src = format!(
        "[[sources]]\nname = \"dept\"\norg = \"dept\"\nkind = \"csv\"\npath = {:?}\n\
         groups = {{ \"finance\" = \"Finance team\", \"Audit\" = \"Auditors\" }}\n\
         authoritative = true\nmax_removals = \"100%\"\n[sources.mapping]\nexternal_id = \"ID\"\n\
         member_email = \"Email\"\ngroups = \"Department\"\n",
        file.display().to_string()
    );
    let app = spawn_with_sources(&["dept"], &src).await;
    let r = app.run_source("dept", "dept").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(
        app.group_members("dept", "Finance team").await,
        ["a@dept.example", "b@dept.example"]
    );
    assert_eq!(
        app.group_members("dept", "Auditors").await,
        ["b@dept.example"]
    );
    assert!(
        app.group_members("dept", "Sales").await.is_empty(),
        "unmapped values make no group"
    );

    // b leaves Finance; c and four newcomers join it.
    write(
        &file,
        &roster(&[
            ("1", "a@dept.example", "Finance"),
            ("2", "b@dept.example", "Audit"),
            ("3", "c@dept.example", "Sales,Finance"),
            ("4", "d@dept.example", "finance"),
            ("5", "e@dept.example", "Finance"),
            ("6", "f@dept.example", "Finance"),
            ("7", "g@dept.example", "Finance"),
        ]),
    );
    let r = app.run_source("dept", "dept").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    let finance_emails = [
        "a@dept.example",
        "c@dept.example",
        "d@dept.example",
        "e@dept.example",
        "f@dept.example",
        "g@dept.example",
    ];
    assert_eq!(
        app.group_members("dept", "Finance team").await,
        finance_emails
    );
    assert_eq!(
        app.group_members("dept", "Auditors").await,
        ["b@dept.example"]
    );

    // Admins see the groups, who keeps them, and their members, page by page.
    let dept_admin = app
        .post(
            "/api/v1/orgs/dept/tokens",
            OPERATOR,
            json!({"kind": "admin", "name": "dept"}),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.get("/api/v1/orgs/dept/groups", &dept_admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut groups: Vec<(String, String, i64)> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_owned(),
                g["kept_by"].as_str().unwrap().to_owned(),
                g["members"].as_i64().unwrap(),
            )
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ("Auditors".into(), "source:dept".into(), 1),
            ("Finance team".into(), "source:dept".into(), 6)
        ]
    );
    let finance = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "Finance team")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let members_path = format!("/api/v1/orgs/dept/groups/{finance}/members");
    // Pages of two, each continuing after the last: every member once, in id order.
    let (mut seen, mut after) = (Vec::new(), None::<String>);
    for pages in 1.. {
        assert!(pages <= 4, "paging never ended");
        let q = match &after {
            None => "?limit=2".to_owned(),
            Some(a) => format!("?limit=2&after={a}"),
        };
        let r = app.get(&format!("{members_path}{q}"), &dept_admin).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for m in r.body["items"].as_array().unwrap() {
            seen.push((
                m["id"].as_str().unwrap().to_owned(),
                m["member_email"].as_str().unwrap().to_owned(),
            ));
        }
        match r.body["next_after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    let ids: Vec<&String> = seen.iter().map(|(id, _)| id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ascending, no repeats: {ids:?}"
    );
    let mut emails: Vec<&str> = seen.iter().map(|(_, e)| e.as_str()).collect();
    emails.sort();
    assert_eq!(emails, finance_emails);
    // The source keeps it: admins may not change it, nor take its name, nor invite into it.
    let r = app
        .patch(
            &members_path.replace("/members", ""),
            &dept_admin,
            json!({"name": "Money"}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["code"], "group_kept", "{}", r.text);
    assert!(r.text.contains("source `dept`"), "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/dept/groups",
            &dept_admin,
            json!({"name": "AUDITORS"}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/dept/members",
            &dept_admin,
            json!({"members": [{"email": "new@dept.example", "groups": ["Finance team"]}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("kept by source `dept`"), "{}", r.text);
    // A group a SCIM client keeps is shown as such.
    let scim = app
        .post(
            "/api/v1/orgs/dept/tokens",
            OPERATOR,
            json!({"kind": "scim", "name": "Okta"}),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .scim(
            reqwest::Method::POST,
            "/Groups",
            &scim,
            Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Platform"}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.get("/api/v1/orgs/dept/groups", &dept_admin).await;
    let platform = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "Platform")
        .unwrap()
        .clone();
    assert_eq!(platform["kept_by"], "scim", "{platform}");
    assert_eq!(platform["members"], 0, "{platform}");
    // Bad input is a 400 or 404 naming what; another org's admin cannot see these groups.
    let r = app
        .get(&format!("{members_path}?limit=0"), &dept_admin)
        .await;
    assert_problem(&r, 400);
    let r = app
        .get(&format!("{members_path}?after=nope"), &dept_admin)
        .await;
    assert_problem(&r, 400);
    let r = app
        .get("/api/v1/orgs/dept/groups/not-a-uuid/members", &dept_admin)
        .await;
    assert_problem(&r, 404);
    let other = app.org_with_admin("elsewhere").await;
    assert_problem(&app.get("/api/v1/orgs/dept/groups", &other).await, 404);
    let r = app
        .get(
            &format!("/api/v1/orgs/elsewhere/groups/{finance}/members"),
            &other,
        )
        .await;
    assert_problem(&r, 404);
    let r = app.get("/api/v1/orgs/elsewhere/groups", &other).await;
    assert_eq!(r.body["items"], json!([]), "{}", r.text);
    let _ = std::fs::remove_dir_all(dir);
}
