//! The member list filtered by an org-defined attribute (`attr.NAME=VALUE`) at 100 000 members
//! (not a test: run it, read the numbers, record them in BENCHMARKS.md).
//!
//!     cargo bench --bench attributes                    # SQLite, and PostgreSQL if reachable
//!     ROSTERD_BENCH_MEMBERS=100000 ROSTERD_BENCH_BACKENDS=sqlite cargo bench --bench attributes
//!
//! Seeds an org with N members (95% current, 5% removed), each holding three attribute
//! values: `MemberID` (string, unique), `IsAuthRep` (boolean, true for 2%) and `Tier` (choice,
//! `Gold` for 50%). Boots the real application on a loopback port and times first pages of the
//! list filtered by a rare value, a common one, both, and the rare one sorted by name.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rosterd::clock::ManualClock;
use rosterd::config::{Config, MailSink};
use rosterd::domain::attribute::AttrKind;
use rosterd::domain::{Access, Member, Role};
use rosterd::roster::Actor;
use rosterd::roster::attributes::NewAttribute;
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

fn member(org_id: Uuid, i: usize) -> Member {
    let base = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let added = base + chrono::Duration::minutes(i as i64 * 7);
    let access = if i % 20 == 7 {
        Access::Removed
    } else {
        Access::Enrolled
    };
    Member {
        id: Uuid::now_v7(),
        org_id,
        given_name: Some(["Ada", "Grace", "Alan", "Edsger", "Barbara"][i % 5].to_owned()),
        family_name: Some(format!("Family{i}")),
        display_name: None,
        member_email: format!("person{i}@example.com"),
        login_email: None,
        role: Role::Member,
        access,
        added_at: added,
        invited_at: Some(added),
        invite_count: 1,
        reminders_sent: 0,
        enrolled_at: Some(added + chrono::Duration::days(1)),
        last_active_at: None,
        removed_at: (access == Access::Removed).then_some(added + chrono::Duration::days(30)),
        activity_at: added,
        ever_enrolled: true,
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
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (Duration, serde_json::Value) {
    let t = Instant::now();
    let r = client.get(url).bearer_auth(OPERATOR).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    let v: serde_json::Value = r.json().await.unwrap();
    (t.elapsed(), v)
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
    let roster = app.state().roster.clone();
    let org = roster
        .create_org(&Actor::Cli, "bench", "Bench", None)
        .await
        .unwrap();
    let mut defs = Vec::new();
    for (name, kind, unique, options) in [
        ("MemberID", AttrKind::String, true, vec![]),
        ("IsAuthRep", AttrKind::Boolean, false, vec![]),
        (
            "Tier",
            AttrKind::Choice,
            false,
            vec!["Gold".to_owned(), "Silver".to_owned()],
        ),
    ] {
        let d = roster
            .create_attribute(
                org.id,
                &Actor::Cli,
                NewAttribute {
                    name: name.to_owned(),
                    kind,
                    options,
                    required: false,
                    unique,
                    description: None,
                },
            )
            .await
            .unwrap();
        defs.push(d);
    }
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let t = Instant::now();
    let mut tx = store.write().await.unwrap();
    for i in 0..n {
        let mut m = member(org.id, i);
        store::members::insert(&mut tx, &mut m).await.unwrap();
        let values = [
            format!("M-{i:06}"),
            (i % 50 == 3).to_string(),
            if i % 2 == 0 { "Gold" } else { "Silver" }.to_owned(),
        ];
        for (d, v) in defs.iter().zip(values) {
            store::attributes::set_value(&mut tx, org.id, d.id, m.id, &v, d.unique)
                .await
                .unwrap();
        }
        if (i + 1) % 5000 == 0 {
            tx.commit().await.unwrap();
            tx = store.write().await.unwrap();
        }
    }
    tx.commit().await.unwrap();
    println!(
        "seeded {n} members with 3 attribute values each in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    match &store {
        Store::Sqlite { .. } => store.optimize().await.unwrap(),
        Store::Postgres(pool) => {
            sqlx::query("ANALYZE").execute(pool).await.unwrap();
        }
    }

    let client = reqwest::Client::new();
    let m = format!("{base}/api/v1/orgs/bench/members");
    println!("\n| scenario | request | matches | p50 | p99 |\n| --- | --- | --- | --- | --- |");
    for (name, query, runs) in [
        ("unfiltered (reference)", "limit=50", 200),
        ("rare value, ~2%", "limit=50&attr.IsAuthRep=true", 200),
        ("common value, ~50%", "limit=50&attr.Tier=Gold", 200),
        ("both", "limit=50&attr.Tier=Silver&attr.IsAuthRep=true", 200),
        (
            "rare value, by name",
            "limit=50&attr.IsAuthRep=true&sort=name",
            200,
        ),
        ("one unique value", "limit=50&attr.MemberID=M-077777", 200),
        ("no match", "limit=50&attr.MemberID=nobody", 200),
    ] {
        let url = format!("{m}?{query}");
        let mut times = Vec::with_capacity(runs);
        let mut count = 0;
        for _ in 0..runs {
            let (d, v) = get(&client, &url).await;
            count = v["items"].as_array().map_or(0, Vec::len);
            times.push(d);
        }
        times.sort();
        println!(
            "| {name} | `?{query}` | {count} on the page | {} | {} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }
    // Paging through every rare match by cursor.
    let mut times = Vec::new();
    let mut cursor: Option<String> = None;
    let mut rows = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("{m}?limit=50&attr.IsAuthRep=true&cursor={c}"),
            None => format!("{m}?limit=50&attr.IsAuthRep=true"),
        };
        let (d, v) = get(&client, &url).await;
        times.push(d);
        rows += v["items"].as_array().unwrap().len();
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    times.sort();
    println!(
        "| every rare-value page by cursor ({} pages, {rows} rows) | `?limit=50&attr.IsAuthRep=true&cursor=…` | | {} | {} |",
        times.len(),
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
