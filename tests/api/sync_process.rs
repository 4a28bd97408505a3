//! The sync engine as processes: the CLI (`sync`, `runs`, `approve`, `import`), a daemon killed
//! with SIGKILL in the middle of applying a plan (and restarted at once), two daemons sharing one
//! database, and how the binary writes: a closed stdout pipe, plain logs on a pipe, the public
//! URL.

use std::path::PathBuf;
use std::process::Stdio;

use rosterd::domain::Access;
use rosterd::store::sync::RunQuery;
use rosterd::store::{self, Store};
use tokio::process::{Child, Command};

use crate::helpers::*;
use crate::sync::{MAPPING, Person, roster_csv, temp_dir};

const BIN: &str = env!("CARGO_BIN_EXE_rosterd");

struct Setup {
    url: String,
    dir: PathBuf,
    config: PathBuf,
    _db: DbGuard,
}

impl Setup {
    /// A config with org `proc` and one CSV source `roster` reading `roster.csv` in a temp dir.
    async fn new(source_extra: &str, sync_extra: &str) -> Setup {
        Self::on(fresh_database().await, source_extra, sync_extra)
    }

    fn on((url, cleanup): (String, Cleanup), source_extra: &str, sync_extra: &str) -> Setup {
        let dir = temp_dir();
        let config = dir.join("rosterd.toml");
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = \"{url}\"\n[mail]\nsink = \"file\"\ndir = {:?}\n\
                 [sync]\n{lease}{sync_extra}\n\
                 [[orgs]]\nslug = \"proc\"\nname = \"Proc\"\nowner_email = \"owner@proc.example\"\n\
                 [[sources]]\nname = \"roster\"\norg = \"proc\"\nkind = \"csv\"\npath = {:?}\n\
                 authoritative = true\n{source_extra}\n[sources.mapping]\n{MAPPING}\n",
                dir.join("mail").display().to_string(),
                dir.join("roster.csv").display().to_string(),
                lease = if sync_extra.contains("lease_secs") {
                    ""
                } else {
                    "lease_secs = 2\n"
                },
            ),
        )
        .unwrap();
        Setup {
            url,
            dir,
            config,
            _db: DbGuard(cleanup),
        }
    }

    fn write_roster(&self, people: &[Person]) {
        std::fs::write(self.dir.join("roster.csv"), roster_csv(people)).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("ROSTERD_DATABASE_URL")
            .env_remove("ROSTERD_CONFIG")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().await.unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn store(&self) -> Store {
        Store::connect(&self.url, 2).await.unwrap()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn people(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{i}"), format!("person{i}@proc.example")))
        .collect()
}

fn as_roster(p: &[(String, String)]) -> Vec<Person<'_>> {
    p.iter()
        .map(|(id, e)| (id.as_str(), true, "P", "Q", e.as_str(), false))
        .collect()
}

async fn runs(store: &Store) -> Vec<rosterd::store::sync::RunRow> {
    let mut tx = store.read().await.unwrap();
    let r = store::sync::runs(
        &mut tx,
        &RunQuery {
            limit: 1000,
            ..RunQuery::default()
        },
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    r
}

#[tokio::test]
async fn the_cli_syncs_with_a_dry_run_lists_runs_approves_and_imports() {
    let s = Setup::new("max_removals = 1", "").await;
    s.write_roster(&[
        ("1", true, "Ada", "L", "ada@proc.example", true),
        ("2", true, "Bob", "B", "bob@proc.example", false),
        ("3", true, "Cy", "C", "cy@proc.example", false),
    ]);
    let (code, out, err) = s.run(&["sync", "roster", "--dry-run"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("nothing is changed"), "{out}");
    assert!(
        out.contains("create      ada@proc.example (id 1), role admin"),
        "{out}"
    );
    assert!(out.contains("3 to create"), "{out}");
    let (_, members, _) = s.run(&["members", "--org", "proc"]).await;
    assert_eq!(
        members.lines().count(),
        2,
        "a dry run changes nothing: {members}"
    );

    let (code, out, err) = s.run(&["sync", "roster"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("succeeded"), "{out}");
    assert!(out.contains("created 3"), "{out}");
    let (_, members, _) = s.run(&["members", "--org", "proc"]).await;
    assert_eq!(members.lines().count(), 5, "{members}");

    // Two removals with max_removals = 1: held; `approve` applies it.
    s.write_roster(&[("1", true, "Ada", "L", "ada@proc.example", true)]);
    let (code, out, err) = s.run(&["sync", "roster", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let run: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(run["status"], "held", "{out}");
    let id = run["id"].as_str().unwrap();
    let (code, out, _) = s.run(&["runs", "--source", "roster"]).await;
    assert_eq!(code, 0);
    assert!(out.lines().nth(1).unwrap().contains("held"), "{out}");
    let (code, out, err) = s.run(&["approve", id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed 2"), "{out}");
    let (code, _, err) = s.run(&["approve", id]).await;
    assert_eq!(code, 1);
    assert!(err.contains("only a held run"), "{err}");
    let (code, _, err) = s.run(&["sync", "nope"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no source named `nope`"), "{err}");

    // Import: the org is managed by the source, so a removal by import is refused.
    let file = s.dir.join("import.csv");
    std::fs::write(&file, "email,active\nada@proc.example,false\n").unwrap();
    let (code, out, err) = s
        .run(&["import", "--org", "proc", file.to_str().unwrap()])
        .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("source `roster`"), "{out}");
    assert!(err.contains("nothing was imported"), "{err}");
    std::fs::write(&file, "email,first_name\nnew@proc.example,New\n").unwrap();
    let (code, out, err) = s
        .run(&[
            "import",
            "--org",
            "proc",
            file.to_str().unwrap(),
            "--dry-run",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 to create"), "{out}");
    let (code, out, err) = s
        .run(&["import", "--org", "proc", file.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created 1"), "{out}");
    let (_, members, _) = s
        .run(&["members", "--org", "proc", "--search", "new@"])
        .await;
    assert!(members.contains("new@proc.example"), "{members}");
}

/// Members, links and invitations of org `proc`: a member is whole when it has its link (if a
/// source made it) and its invitation email.
async fn consistency(store: &Store) -> (usize, usize, usize) {
    let mut tx = store.read().await.unwrap();
    let org = store::orgs::by_slug(&mut tx, "proc")
        .await
        .unwrap()
        .unwrap();
    let current = store::sync::current(&mut tx, org.id, "roster", &[])
        .await
        .unwrap();
    let outbox = store::outbox::for_org(&mut tx, org.id, 1_000_000)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let synced = current
        .iter()
        .filter(|c| c.role != rosterd::domain::Role::Owner);
    let linked = synced.clone().filter(|c| c.link.is_some()).count();
    assert!(current.iter().all(|c| c.access != Access::Removed));
    (synced.count(), linked, outbox.len())
}

/// Starts `rosterd serve` on a random port; returns the child and its base URL.
async fn daemon(s: &Setup) -> (Child, String) {
    daemon_with(s, &[]).await
}

/// Like [`daemon`], with more arguments for `serve`.
async fn daemon_with(s: &Setup, extra: &[&str]) -> (Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = s
        .command(&args)
        .env("ROSTERD_TEST_OPERATOR", OPERATOR)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap_or_default();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    // Keep reading stdout so the daemon never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

async fn run_now(base: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/orgs/proc/sources/roster/runs"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_daemon_killed_while_applying_leaves_whole_members_and_the_next_run_converges() {
    let s = Setup::new(
        "max_removals = \"100%\"",
        "apply_batch = 5\n[auth]\noperator_token = \"env:ROSTERD_TEST_OPERATOR\"",
    )
    .await;
    let everyone = people(1500);
    s.write_roster(&as_roster(&everyone));
    let (mut child, base) = daemon(&s).await;
    let store = s.store().await;
    let first = run_now(&base).await;
    // Wait until the apply is well under way, then SIGKILL the daemon.
    wait_for(60, "the apply to start", || async {
        runs(&store).await.first().is_some_and(|r| r.created >= 100)
    })
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let killed = runs(&store).await.remove(0);
    assert_eq!(killed.id.to_string(), first);
    assert_eq!(killed.status, "running", "killed mid-run");
    assert!(killed.created < 1500, "{killed:?}");
    let (members, linked, emails) = consistency(&store).await;
    assert!((100..1500).contains(&members), "{members}");
    assert_eq!(linked, members, "every member applied is linked");
    assert_eq!(
        emails,
        members + 1,
        "every member applied has its invitation (+ the owner's)"
    );

    // Restart: once the dead process's lease expires the run is marked interrupted; the next
    // run creates exactly the rest.
    let (mut child, base) = daemon(&s).await;
    wait_for(30, "the killed run to be marked interrupted", || async {
        runs(&store).await[0].status == "interrupted"
    })
    .await;
    let second = run_now(&base).await;
    wait_for(60, "the second run", || async {
        runs(&store).await[0].status != "running"
    })
    .await;
    let all = runs(&store).await;
    assert_eq!(all[0].id.to_string(), second);
    assert_eq!(all[0].status, "succeeded", "{:?}", all[0]);
    assert_eq!(all[0].created as usize, 1500 - members);
    let (members, linked, emails) = consistency(&store).await;
    assert_eq!((members, linked, emails), (1500, 1500, 1501));
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    // And once more: nothing left to do.
    let (code, out, _) = s.run(&["sync", "roster"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("created 0  updated 0  removed 0  reactivated 0  unchanged 1500"),
        "{out}"
    );
    store.close().await;
}

/// Scheduled fire times of the runs, oldest first; panics on a tick that ran twice.
fn ticks(runs: &[rosterd::store::sync::RunRow]) -> Vec<chrono::DateTime<chrono::Utc>> {
    let mut t: Vec<_> = runs.iter().filter_map(|r| r.fire_time).collect();
    t.sort();
    let n = t.len();
    t.dedup();
    assert_eq!(t.len(), n, "a tick ran twice");
    t
}

#[tokio::test]
async fn two_daemons_run_each_tick_once_and_one_carries_on_when_the_other_dies() {
    // Replicas share a PostgreSQL database (SQLite is the single-process embedded default).
    let s = Setup::on(
        fresh_postgres_database().await,
        "schedule = \"*/2 * * * * *\"\nmax_removals = 5",
        "",
    );
    s.write_roster(&[("1", true, "Ada", "L", "ada@proc.example", false)]);
    // Create the schema and the org once, before two processes start at the same moment.
    let (code, _, err) = s.run(&["sync", "roster", "--dry-run"]).await;
    assert_eq!(code, 0, "{err}");
    let store = s.store().await;
    let (mut a, a_base) = daemon(&s).await;
    let (mut b, b_base) = daemon(&s).await;
    for base in [&a_base, &b_base] {
        let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert_eq!(r.status(), 200, "replica at {base} is up");
    }
    // Both replicas take ticks (each tick goes to whichever inserts its run first).
    let replicas = || async {
        let mut by: Vec<String> = runs(&store)
            .await
            .into_iter()
            .filter(|r| r.status == "succeeded")
            .map(|r| r.created_by)
            .collect();
        by.sort();
        by.dedup();
        by
    };
    wait_for(90, "runs by both replicas", || async {
        replicas().await.len() == 2
    })
    .await;
    let before = runs(&store).await;
    let t = ticks(&before);
    // Runs sit on the schedule's ticks: every gap is a whole number of periods (a loaded
    // machine may skip a tick while a run lasts; none runs twice, checked by `ticks`).
    for w in t.windows(2) {
        let gap = (w[1] - w[0]).num_milliseconds();
        assert!(gap >= 2000 && gap % 2000 == 0, "{t:?}");
    }

    // Kill one replica hard; the other keeps running the ticks (taking over an expired lease).
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let killed_at = chrono::Utc::now();
    wait_for(30, "three more runs after the kill", || async {
        runs(&store)
            .await
            .iter()
            .filter(|r| r.status == "succeeded" && r.started_at > killed_at)
            .count()
            >= 3
    })
    .await;
    let after = runs(&store).await;
    let t = ticks(&after);
    let late: Vec<_> = after
        .iter()
        .filter(|r| r.started_at > killed_at && r.status == "succeeded")
        .map(|r| r.created_by.clone())
        .collect();
    let survivor = late[0].clone();
    assert!(
        late.iter().all(|c| c == &survivor),
        "only the survivor runs: {late:?}"
    );
    assert!(t.len() >= before.len() + 3);
    // A run the killed replica held is marked interrupted by the survivor once its lease expired.
    wait_for(30, "the killed replica's runs to end", || async {
        runs(&store)
            .await
            .iter()
            .all(|r| r.created_by == survivor || r.status != "running")
    })
    .await;

    // Stop the survivor as an operator would (SIGTERM): it finishes the run it is in. Then every
    // run has ended: succeeded, or interrupted only where the killed replica held it.
    let pid = b.id().expect("the survivor is running").to_string();
    let term = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(term.success());
    let exit = tokio::time::timeout(std::time::Duration::from_secs(60), b.wait())
        .await
        .expect("the survivor stops after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let end = runs(&store).await;
    assert!(end.iter().any(|r| r.created_by != survivor));
    for r in &end {
        match r.status.as_str() {
            "succeeded" => {}
            "interrupted" => assert_ne!(r.created_by, survivor, "{r:?}"),
            _ => panic!("a run did not end: {r:?}"),
        }
    }
    store.close().await;
}

#[tokio::test]
async fn a_daemon_restarted_after_sigkill_takes_over_its_own_dead_lease_at_once() {
    // A lease far longer than the test: waiting for it to expire would time out.
    let s = Setup::new(
        "max_removals = \"100%\"",
        "lease_secs = 3600\napply_batch = 5\n[auth]\noperator_token = \"env:ROSTERD_TEST_OPERATOR\"",
    )
    .await;
    s.write_roster(&as_roster(&people(1500)));
    let (mut child, base) = daemon(&s).await;
    let store = s.store().await;
    let first = run_now(&base).await;
    wait_for(60, "the apply to start", || async {
        runs(&store).await.first().is_some_and(|r| r.created >= 50)
    })
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert_eq!(runs(&store).await[0].status, "running", "killed mid-run");

    // The restarted daemon (same host, the old process gone) frees the lease as it starts:
    // the killed run is interrupted and a new run is accepted, not refused with 409.
    let (mut child, base) = daemon(&s).await;
    let killed = runs(&store).await.remove(0);
    assert_eq!(killed.id.to_string(), first);
    assert_eq!(killed.status, "interrupted", "{killed:?}");
    let second = run_now(&base).await;
    wait_for(60, "the second run", || async {
        runs(&store).await[0].status != "running"
    })
    .await;
    let all = runs(&store).await;
    assert_eq!(all[0].id.to_string(), second);
    assert_eq!(all[0].status, "succeeded", "{:?}", all[0]);
    let (members, _, _) = consistency(&store).await;
    assert_eq!(members, 1500);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn a_live_daemons_lease_is_not_taken_by_a_cli_run_on_the_same_host() {
    let s = Setup::new(
        "max_removals = \"100%\"",
        "lease_secs = 3600\napply_batch = 5\n[auth]\noperator_token = \"env:ROSTERD_TEST_OPERATOR\"",
    )
    .await;
    s.write_roster(&as_roster(&people(10_000)));
    let (mut child, base) = daemon(&s).await;
    let store = s.store().await;
    run_now(&base).await;
    wait_for(60, "the apply to start", || async {
        runs(&store).await.first().is_some_and(|r| r.created >= 10)
    })
    .await;
    // The daemon still runs: its lease stands.
    let (code, _, err) = s.run(&["sync", "roster"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("roster"), "{err}");
    assert_eq!(runs(&store).await.last().unwrap().status, "running");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn commands_end_quietly_when_stdout_is_closed_early() {
    let s = Setup::new("", "").await;
    s.write_roster(&as_roster(&people(3000)));
    for args in [
        &["sync", "roster", "--dry-run"][..],
        &["sync", "roster", "--dry-run", "--json"][..],
        &["sync", "roster", "--dump"][..],
    ] {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = s
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -1`: read one line, then close the pipe.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).await.unwrap();
        assert!(!line.is_empty());
        drop(out);
        let done = child.wait_with_output().await.unwrap();
        let err = String::from_utf8_lossy(&done.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(done.status.code(), Some(0), "{args:?}: {err}");
    }
}

/// Reads the daemon's stderr until a line contains `want` (or panics after 30 s); returns what
/// was read.
async fn stderr_until(child: &mut Child, want: &str) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut err = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !String::from_utf8_lossy(&seen).contains(want) {
            let n = err.read(&mut buf).await.unwrap();
            assert!(n > 0, "stderr closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {want:?} in {}", String::from_utf8_lossy(&seen)));
    seen
}

#[tokio::test]
async fn logs_on_a_pipe_are_plain_and_a_public_url_for_another_port_is_warned_about() {
    // The config still names the old default port; the daemon listens elsewhere.
    let s = Setup::new("", "[server]\npublic_url = \"http://127.0.0.1:1\"").await;
    let mut child = s
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = stderr_until(&mut child, "listening").await;
    let text = String::from_utf8_lossy(&err);
    assert!(!err.contains(&0x1b), "ANSI escapes in piped logs: {text:?}");
    assert!(text.contains("public_url names another address"), "{text}");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn public_url_on_the_command_line_sets_scim_locations_and_invitation_links() {
    let s = Setup::new("", "").await;
    let (mut child, base) =
        daemon_with(&s, &["--public-url", "https://people.example/roster"]).await;
    // Starting created org `proc` and invited its owner.
    let (code, token, err) = s
        .run(&["token", "create", "--org", "proc", "--kind", "scim"])
        .await;
    assert_eq!(code, 0, "{err}");
    let r = reqwest::Client::new()
        .get(format!("{base}/scim/v2/Users"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: serde_json::Value = r.json().await.unwrap();
    let location = list["Resources"][0]["meta"]["location"]
        .as_str()
        .unwrap_or_default();
    assert!(
        location.starts_with("https://people.example/roster/scim/v2/Users/"),
        "{list}"
    );
    let mail = s.dir.join("mail");
    let mut body = String::new();
    wait_for(30, "the owner's invitation email", || {
        let found = std::fs::read_dir(&mail)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .and_then(|e| std::fs::read_to_string(e.path()).ok());
        if let Some(b) = found {
            body = b;
        }
        let done = !body.is_empty();
        async move { done }
    })
    .await;
    // Quoted-printable may wrap long lines.
    let flat = body.replace("=\r\n", "").replace("=\n", "");
    assert!(
        flat.contains("https://people.example/roster/invite/"),
        "{flat}"
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
