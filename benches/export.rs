//! Export with every column at 100 000 members (not a test: run it, read the numbers, record
//! them in BENCHMARKS.md).
//!
//!     cargo bench --bench export                        # SQLite, and PostgreSQL if reachable
//!     ROSTERD_BENCH_MEMBERS=100000 ROSTERD_BENCH_BACKENDS=sqlite cargo bench --bench export
//!
//! Seeds an org with N members, each with two phone numbers and in two of twenty groups, with
//! points, a fee and payments totals; boots the real application on loopback and times, end to
//! end over HTTP, the streamed export with every column group as CSV and as .zip (with a tenth
//! of the roster first, then all of it, to show memory stays flat) and the same export as a
//! job (queued, run by the job worker into database chunks, then downloaded). Memory is the
//! kernel's peak RSS of the whole process (VmHWM, reset before each measurement).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rosterd::clock::ManualClock;
use rosterd::config::{Config, MailSink};
use rosterd::domain::{Access, Member, Phone, Role};
use rosterd::store::groups::Group;
use rosterd::store::{self, Store};
use rosterd::{App, AppOptions};
use uuid::Uuid;

const OPERATOR: &str = "bench-operator-token";
const EVERY: &str = "basics,emails,phones,groups,balances,payments";

fn kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn reset_peak() {
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn seed(store: &Store, org_id: Uuid, groups: &[Uuid], n: usize, offset: usize) {
    let base = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut tx = store.write().await.unwrap();
    for i in offset..offset + n {
        let added = base + chrono::Duration::minutes(i as i64 * 7);
        let access = match i % 20 {
            0 => Access::Removed,
            1..=5 => Access::Invited,
            _ => Access::Enrolled,
        };
        let mut m = Member {
            id: Uuid::now_v7(),
            org_id,
            given_name: Some(format!("Given{}", i % 97)),
            family_name: Some(format!("Family{i}")),
            display_name: None,
            member_email: format!("person{i}@example.com"),
            login_email: (i % 9 == 0).then(|| format!("p{i}@sso.example.com")),
            role: if i % 50 == 0 {
                Role::Admin
            } else {
                Role::Member
            },
            access,
            added_at: added,
            invited_at: Some(added),
            invite_count: 1,
            reminders_sent: 0,
            enrolled_at: (access != Access::Invited).then_some(added + chrono::Duration::days(1)),
            last_active_at: None,
            removed_at: (access == Access::Removed).then_some(added + chrono::Duration::days(30)),
            activity_at: added,
            ever_enrolled: access != Access::Invited,
            updated_at: added,
            user_name: format!("person{i}@example.com"),
            external_id: None,
            scim_data: None,
            version: 1,
            scim_deleted: false,
            cancelled_at: None,
            disabled_at: None,
            points: 0,
            monthly_fee: None,
            currency: None,
            total_paid: 0,
            contact_email: (access == Access::Removed).then(|| format!("home{i}@example.org")),
        };
        store::members::insert(&mut tx, &mut m).await.unwrap();
        let phones = [
            Phone {
                kind: Some("work".into()),
                value: format!("+1 555 {:07}", i),
                display: None,
                primary: true,
                primary_stated: true,
            },
            Phone {
                kind: Some("mobile".into()),
                value: format!("+44 7700 {:06}", i % 1_000_000),
                display: None,
                primary: false,
                primary_stated: false,
            },
        ];
        store::phones::replace(&mut tx, org_id, m.id, &phones)
            .await
            .unwrap();
        for g in [groups[i % groups.len()], groups[(i / 7) % groups.len()]] {
            store::groups::add_member(&mut tx, g, m.id, added)
                .await
                .unwrap();
        }
        if (i + 1) % 5000 == 0 {
            tx.commit().await.unwrap();
            tx = store.write().await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

struct Bench {
    client: reqwest::Client,
    base: String,
}

impl Bench {
    /// Downloads `path`, counting bytes; answers (bytes, time, peak RSS KiB, RSS before KiB).
    async fn download(&self, path: &str) -> (usize, Duration) {
        let t = Instant::now();
        let mut res = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        let mut bytes = 0usize;
        while let Some(chunk) = res.chunk().await.unwrap() {
            bytes += chunk.len();
        }
        (bytes, t.elapsed())
    }

    async fn streamed(&self, label: &str, format: &str) {
        reset_peak();
        let before = kib("VmRSS:");
        let (bytes, took) = self
            .download(&format!(
                "/api/v1/orgs/bench/members/export?columns={EVERY}&format={format}"
            ))
            .await;
        let peak = kib("VmHWM:");
        println!(
            "| {label}, streamed {format} | {:.1} MB | {} ms | {:.1} MB (+{:.1} MB) |",
            bytes as f64 / 1e6,
            took.as_millis(),
            peak as f64 / 1024.0,
            peak.saturating_sub(before) as f64 / 1024.0,
        );
    }

    async fn job(&self, label: &str, format: &str) {
        reset_peak();
        let before = kib("VmRSS:");
        let t = Instant::now();
        let r: serde_json::Value = self
            .client
            .post(format!("{}/api/v1/orgs/bench/exports", self.base))
            .bearer_auth(OPERATOR)
            .json(&serde_json::json!({"columns": EVERY, "format": format}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["id"].as_str().unwrap().to_owned();
        loop {
            let j: serde_json::Value = self
                .client
                .get(format!("{}/api/v1/orgs/bench/jobs/{id}", self.base))
                .bearer_auth(OPERATOR)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match j["status"].as_str() {
                Some("succeeded") => break,
                Some("failed") => panic!("export job failed: {j}"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let produced = t.elapsed();
        let (bytes, took) = self
            .download(&format!("/api/v1/orgs/bench/exports/{id}/download"))
            .await;
        let peak = kib("VmHWM:");
        println!(
            "| {label}, job {format} | {:.1} MB | {} ms to produce + {} ms to download | {:.1} MB (+{:.1} MB) |",
            bytes as f64 / 1e6,
            produced.as_millis(),
            took.as_millis(),
            peak as f64 / 1024.0,
            peak.saturating_sub(before) as f64 / 1024.0,
        );
    }
}

async fn run(label: &str, url: String, n: usize) {
    println!("\n### {label}, {n} members\n");
    let store = Store::connect(&url, 8).await.unwrap();
    store.migrate().await.unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.database.url = url.clone();
    config.mail.sink = MailSink::Log;
    config.jobs.poll_interval_ms = 20;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let app = App::build_with_store(
        config,
        store.clone(),
        AppOptions {
            clock: Some(Arc::new(clock)),
            operator_token: Some(OPERATOR.to_owned().into()),
        },
    )
    .await
    .unwrap();
    let org = app
        .state()
        .roster
        .create_org(&rosterd::roster::Actor::Cli, "bench", "Bench", None)
        .await
        .unwrap();
    let mut groups = Vec::new();
    let mut tx = store.write().await.unwrap();
    let now = Utc::now();
    for g in 0..20 {
        let group = Group {
            id: Uuid::now_v7(),
            org_id: org.id,
            name: format!("Team {g:02}"),
            external_id: None,
            scim_data: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        store::groups::insert(&mut tx, &group).await.unwrap();
        groups.push(group.id);
    }
    tx.commit().await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let bench = Bench {
        client: reqwest::Client::new(),
        base,
    };

    println!(
        "| export (every column) | size | time | peak RSS (+ during) |\n| --- | --- | --- | --- |"
    );
    let tenth = n / 10;
    seed(&store, org.id, &groups, tenth, 0).await;
    bench.streamed(&format!("{tenth} members"), "csv").await;
    seed(&store, org.id, &groups, n - tenth, tenth).await;
    match &store {
        Store::Sqlite { .. } => store.optimize().await.unwrap(),
        Store::Postgres(pool) => {
            sqlx::query("ANALYZE").execute(pool).await.unwrap();
        }
    }
    bench.streamed(&format!("{n} members"), "csv").await;
    bench.streamed(&format!("{n} members"), "zip").await;
    bench.job(&format!("{n} members"), "csv").await;
    bench.job(&format!("{n} members"), "zip").await;
    let _ = stop.send(());
    let _ = server.await;
}

fn main() {
    let n: usize = std::env::var("ROSTERD_BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let only = std::env::var("ROSTERD_BENCH_BACKENDS").unwrap_or_default();
        if only.is_empty() || only == "sqlite" {
            let dir = std::env::temp_dir()
                .join(format!("rosterd-bench-export-{}", Uuid::new_v4().simple()));
            run("SQLite", format!("sqlite://{}/bench.db", dir.display()), n).await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        if only == "sqlite" {
            return;
        }
        let admin = std::env::var("ROSTERD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        use sqlx::Connection;
        match sqlx::PgConnection::connect(&admin).await {
            Ok(mut c) => {
                let db = format!("rosterd_bench_{}", Uuid::new_v4().simple());
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                    .execute(&mut c)
                    .await
                    .unwrap();
                let prefix = &admin[..admin.rfind('/').unwrap()];
                run("PostgreSQL", format!("{prefix}/{db}"), n).await;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE {db} WITH (FORCE)"
                )))
                .execute(&mut c)
                .await
                .unwrap();
            }
            Err(e) => println!("\nPostgreSQL not reachable at {admin} ({e}); skipped"),
        }
    });
}
