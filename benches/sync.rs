//! Reconcile benchmark: a CSV roster source synced through the real engine (fetch, plan, check,
//! apply in batched transactions, record), per backend.
//!
//!     cargo bench --bench sync                       # 100k on SQLite and PostgreSQL, 1M on SQLite
//!     ROSTERD_BENCH_BACKENDS=sqlite cargo bench --bench sync
//!     ROSTERD_BENCH_SYNC_BIG=0 cargo bench --bench sync   # skip the 1M scenario
//!
//! Scenarios: a snapshot of N records into an empty org (N creates, each with its invitation
//! and audit entry), the same snapshot again (no changes), and — in a process of its own, so its
//! peak memory is its own — 1M records into an empty org and again. Peak memory is the kernel's
//! VmHWM of the benchmark process (reset before each run).

use std::time::Instant;

use rosterd::clock::SystemClock;
use rosterd::config::{Config, OrgSeed, SourceConfig};
use rosterd::roster::{InviteSettings, Roster};
use rosterd::store::Store;
use rosterd::sync::{Engine, Trigger};
use uuid::Uuid;

fn kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn write_roster(path: &std::path::Path, n: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "ID,IsActive,FirstName,LastName,MemberID,IsAuthRep").unwrap();
    let given = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald"];
    let family = [
        "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth",
    ];
    for i in 0..n {
        writeln!(
            f,
            "E{i:07},True,{},{},person{i}@bench.example,{}",
            given[i % 6],
            family[(i / 6) % 6],
            if i % 50 == 0 { "True" } else { "False" }
        )
        .unwrap();
    }
    f.flush().unwrap();
}

fn source(path: &std::path::Path) -> SourceConfig {
    #[derive(serde::Deserialize)]
    struct W {
        sources: Vec<SourceConfig>,
    }
    let text = format!(
        r#"[[sources]]
name = "bench"
org = "bench"
kind = "csv"
path = {:?}
authoritative = true
[sources.mapping]
external_id = "ID"
member_email = "MemberID"
given_name = "FirstName"
family_name = "LastName"
active = {{ field = "IsActive", map = {{ "True" = "true", "False" = "false" }} }}
role = {{ field = "IsAuthRep", map = {{ "True" = "admin", "False" = "member" }} }}
"#,
        path.display().to_string()
    );
    toml::from_str::<W>(&text).unwrap().sources.remove(0)
}

/// Syncs an N-record roster into a fresh org twice and prints a table row per run.
async fn scenario(label: &str, url: &str, n: usize, dir: &std::path::Path) {
    let file = dir.join(format!("roster-{n}.csv"));
    write_roster(&file, n);
    let mut config = Config::default();
    config.database.url = url.to_owned();
    config.orgs = vec![OrgSeed {
        slug: "bench".into(),
        name: "Bench".into(),
        owner_email: None,
    }];
    config.sources = vec![source(&file)];
    let store = Store::connect(url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let roster = Roster::new(
        store.clone(),
        std::sync::Arc::new(SystemClock),
        InviteSettings::from_config(&config),
    );
    roster.ensure_orgs(&config.orgs).await.unwrap();
    let engine = Engine::new(&config, roster).unwrap();
    engine.prepare().await.unwrap();
    for what in ["into an empty org", "same snapshot again"] {
        reset_peak();
        let before = kib("VmRSS:");
        let t = Instant::now();
        let run = engine
            .run("bench", Trigger::Cli, "benchmark", None)
            .await
            .unwrap();
        let took = t.elapsed();
        let peak = kib("VmHWM:");
        assert_eq!(run.status, "succeeded", "{run:?}");
        println!(
            "| {label} | {n} records, {what} | {:.2} s | {:.0} records/s | created {} unchanged {} | peak RSS {:.0} MB (+{:.0} MB) |",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            run.created,
            run.unchanged,
            peak as f64 / 1024.0,
            (peak.saturating_sub(before)) as f64 / 1024.0,
        );
        store.optimize().await.unwrap();
    }
    store.close().await;
}

async fn with_backend(label: &str, n: usize) {
    if label == "SQLite" {
        let dir = std::env::temp_dir().join(format!("rosterd-bench-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        scenario(
            label,
            &format!("sqlite://{}/bench.db", dir.display()),
            n,
            &dir,
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let admin = std::env::var("ROSTERD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    use sqlx::Connection;
    let Ok(mut c) = sqlx::PgConnection::connect(&admin).await else {
        println!("PostgreSQL not reachable at {admin}; skipped");
        return;
    };
    let db = format!("rosterd_bench_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut c)
        .await
        .unwrap();
    let prefix = &admin[..admin.rfind('/').unwrap()];
    let dir = std::env::temp_dir().join(format!("rosterd-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    scenario(label, &format!("{prefix}/{db}"), n, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {db} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await
    .unwrap();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // A child process runs one scenario alone (its peak memory is its own).
    if let Ok(spec) = std::env::var("ROSTERD_BENCH_SYNC_CHILD") {
        let (label, n) = spec.split_once(':').unwrap();
        rt.block_on(with_backend(label, n.parse().unwrap()));
        return;
    }
    let only = std::env::var("ROSTERD_BENCH_BACKENDS").unwrap_or_default();
    let big = std::env::var("ROSTERD_BENCH_SYNC_BIG").map_or(true, |v| v != "0");
    let mut plan = Vec::new();
    for label in ["SQLite", "PostgreSQL"] {
        if only.is_empty() || only.eq_ignore_ascii_case(label) {
            plan.push(format!("{label}:100000"));
        }
    }
    if big && (only.is_empty() || only.eq_ignore_ascii_case("sqlite")) {
        plan.push("SQLite:1000000".to_owned());
    }
    println!("| backend | scenario | time | rate | result | memory |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let exe = std::env::current_exe().unwrap();
    for spec in plan {
        let status = std::process::Command::new(&exe)
            .env("ROSTERD_BENCH_SYNC_CHILD", &spec)
            .env("RUST_LOG", "error")
            .status()
            .unwrap();
        assert!(status.success(), "{spec}");
    }
}
