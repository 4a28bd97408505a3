//! Member list and export benchmark (not a test: run it, read the numbers, record them in
//! BENCHMARKS.md).
//!
//!     cargo bench --bench members                       # SQLite, and PostgreSQL if reachable
//!     ROSTERD_BENCH_MEMBERS=100000 cargo bench --bench members
//!
//! Seeds an org with N members (default 100 000; 70% enrolled, 25% invited, 5% removed),
//! boots the real application on a loopback port, and times HTTP requests: first pages of the
//! list with filters, searches, pages deep into the list by cursor, and the full CSV export.
//! Peak memory of each export is read from the kernel (VmHWM after resetting it), once with a
//! tenth of the roster and once with all of it, to show it stays flat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rosterd::clock::ManualClock;
use rosterd::config::{Config, MailSink};
use rosterd::domain::{Access, Member, Role};
use rosterd::store::{self, Store};
use rosterd::{App, AppOptions};
use uuid::Uuid;

const OPERATOR: &str = "bench-operator-token";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

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

async fn seed(store: &Store, org_id: Uuid, n: usize, offset: usize) {
    let base = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let given = [
        "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim",
    ];
    let family = [
        "Lovelace",
        "Hopper",
        "Turing",
        "Dijkstra",
        "Liskov",
        "Knuth",
        "Allen",
        "Thompson",
        "Perlman",
        "Berners-Lee",
    ];
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
            given_name: Some(given[i % 10].to_owned()),
            family_name: Some(format!("{}{}", family[(i / 10) % 10], i)),
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
            reminders_sent: 2,
            enrolled_at: (access != Access::Invited).then_some(added + chrono::Duration::days(1)),
            last_active_at: (access == Access::Enrolled)
                .then_some(added + chrono::Duration::days(3)),
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
            contact_email: None,
        };
        store::members::insert(&mut tx, &mut m).await.unwrap();
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
    token: String,
}

impl Bench {
    async fn get(&self, path: &str) -> (Duration, serde_json::Value) {
        let t = Instant::now();
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let v: serde_json::Value = r.json().await.unwrap();
        (t.elapsed(), v)
    }

    async fn scenario(&self, name: &str, path: &str, runs: usize) {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            times.push(self.get(path).await.0);
        }
        times.sort();
        println!(
            "| {name} | `{path}` | {} | {} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }

    async fn export(&self, label: &str) {
        reset_peak();
        let before = kib("VmRSS:");
        let t = Instant::now();
        let mut res = self
            .client
            .get(format!(
                "{}/api/v1/orgs/bench/members/export.csv",
                self.base
            ))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap();
        let (mut bytes, mut lines) = (0usize, 0usize);
        while let Some(chunk) = res.chunk().await.unwrap() {
            bytes += chunk.len();
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        let took = t.elapsed();
        let peak = kib("VmHWM:");
        println!(
            "| export {label} | {} rows, {:.1} MB | {} | peak RSS {:.1} MB (+{:.1} MB over the {:.1} MB before) |",
            lines - 1,
            bytes as f64 / 1e6,
            ms(took),
            peak as f64 / 1024.0,
            peak.saturating_sub(before) as f64 / 1024.0,
            before as f64 / 1024.0
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
    let base = format!("http://{}", app.local_addr());
    let app_roster = app.state().roster.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let bench = Bench {
        client: reqwest::Client::new(),
        base,
        token: OPERATOR.to_owned(),
    };

    let tenth = n / 10;
    let t = Instant::now();
    seed(&store, org.id, tenth, 0).await;
    println!(
        "seeded {tenth} members in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    println!("\n| scenario | rows | time | memory |\n| --- | --- | --- | --- |");
    bench.export(&format!("({tenth} members)")).await;
    let t = Instant::now();
    seed(&store, org.id, n - tenth, tenth).await;
    println!(
        "\nseeded {} more members in {:.1} s",
        n - tenth,
        t.elapsed().as_secs_f64()
    );
    // Planner statistics as a running daemon has them (SQLite: `PRAGMA optimize` at start and
    // every six hours; PostgreSQL: autovacuum's analyze, which a bulk load triggers shortly).
    match &store {
        Store::Sqlite { .. } => store.optimize().await.unwrap(),
        Store::Postgres(pool) => {
            sqlx::query("ANALYZE").execute(pool).await.unwrap();
        }
    }
    println!("\n| scenario | rows | time | memory |\n| --- | --- | --- | --- |");
    bench.export(&format!("({n} members)")).await;

    println!("\n| scenario | request | p50 | p99 |\n| --- | --- | --- | --- |");
    let m = "/api/v1/orgs/bench/members";
    bench
        .scenario("first page, default view", &format!("{m}?limit=50"), 200)
        .await;
    bench
        .scenario(
            "first page, enrolled, by name",
            &format!("{m}?limit=50&access=enrolled&sort=name"),
            200,
        )
        .await;
    bench
        .scenario(
            "first page, invited admins",
            &format!("{m}?limit=50&access=invited&role=admin"),
            200,
        )
        .await;
    bench
        .scenario(
            "joined-date range",
            &format!("{m}?limit=50&joined_from=2024-06-01&joined_to=2024-06-30"),
            200,
        )
        .await;
    bench
        .scenario(
            "search, common (\"hopper\")",
            &format!("{m}?limit=50&q=hopper"),
            200,
        )
        .await;
    bench
        .scenario(
            "search, one person (\"person77777@\")",
            &format!("{m}?limit=50&q=person77777%40"),
            100,
        )
        .await;
    bench
        .scenario("search, no match", &format!("{m}?limit=50&q=zzzzzz"), 100)
        .await;
    bench.scenario("counts", &format!("{m}/counts"), 100).await;

    // Page deep: follow the cursor through the whole default view, timing every page.
    let mut times = Vec::new();
    let mut cursor: Option<String> = None;
    let mut rows = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("{m}?limit=50&cursor={c}"),
            None => format!("{m}?limit=50"),
        };
        let (d, v) = bench.get(&path).await;
        times.push(d);
        rows += v["items"].as_array().unwrap().len();
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let last = *times.last().unwrap();
    times.sort();
    println!(
        "| every page by cursor ({} pages, {rows} rows) | `{m}?limit=50&cursor=…` | {} | {} (last page {}) |",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(last)
    );
    // SCIM on the same 100k members.
    let scim = app_roster
        .create_token(
            &rosterd::roster::Actor::Cli,
            org.id,
            rosterd::roster::TokenKind::Scim,
            Some("bench"),
        )
        .await
        .unwrap()
        .token;
    let scim_bench = Bench {
        client: bench.client.clone(),
        base: bench.base.clone(),
        token: scim,
    };
    println!("\n| SCIM scenario | request | p50 | p99 |\n| --- | --- | --- | --- |");
    scim_bench
        .scenario(
            "userName eq (point lookup)",
            "/scim/v2/Users?filter=userName%20eq%20%22person77777@example.com%22",
            200,
        )
        .await;
    scim_bench
        .scenario(
            "externalId eq (none set)",
            "/scim/v2/Users?filter=externalId%20eq%20%22x%22",
            100,
        )
        .await;
    scim_bench
        .scenario(
            "first page of 100",
            "/scim/v2/Users?startIndex=1&count=100",
            50,
        )
        .await;
    scim_bench
        .scenario(
            "page at startIndex 90001",
            "/scim/v2/Users?startIndex=90001&count=100",
            20,
        )
        .await;
    // A group holding every member, then single-member changes through PATCH.
    let group_id = {
        let mut tx = store.write().await.unwrap();
        let now = Utc::now();
        let g = rosterd::store::groups::Group {
            id: Uuid::now_v7(),
            org_id: org.id,
            name: "everyone".into(),
            external_id: None,
            scim_data: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        rosterd::store::groups::insert(&mut tx, &g).await.unwrap();
        let mut after = None;
        loop {
            let batch = rosterd::store::members::export_batch(&mut tx, org.id, after, 5000)
                .await
                .unwrap();
            for m in &batch {
                rosterd::store::groups::add_member(&mut tx, g.id, m.id, now)
                    .await
                    .unwrap();
            }
            match batch.last() {
                Some(m) if batch.len() == 5000 => after = Some((m.added_at, m.id)),
                _ => break,
            }
        }
        tx.commit().await.unwrap();
        g.id
    };
    let newcomer = app_roster
        .add_members(
            org.id,
            &rosterd::roster::Actor::Cli,
            vec![rosterd::roster::NewMember {
                email: "newcomer@example.com".into(),
                ..Default::default()
            }],
        )
        .await
        .unwrap()[0]
        .member_id;
    let mut times = Vec::new();
    for i in 0..100 {
        let op = if i % 2 == 0 { "add" } else { "remove" };
        let body = if op == "add" {
            serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": newcomer}]}]})
        } else {
            serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "remove", "path": format!("members[value eq \"{newcomer}\"]")}]})
        };
        let t = Instant::now();
        let r = scim_bench
            .client
            .patch(format!("{}/scim/v2/Groups/{group_id}", scim_bench.base))
            .bearer_auth(&scim_bench.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "| PATCH add/remove one member of a {}-member group | `PATCH /scim/v2/Groups/{{id}}` | {} | {} |",
        n,
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
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
        // ROSTERD_BENCH_BACKENDS=sqlite or =postgres runs only that one.
        let only = std::env::var("ROSTERD_BENCH_BACKENDS").unwrap_or_default();
        if only.is_empty() || only == "sqlite" {
            let dir =
                std::env::temp_dir().join(format!("rosterd-bench-{}", Uuid::new_v4().simple()));
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
