//! Points: the pool, members' balances, movements (atomic, never below zero, idempotent by
//! key), the ledger, the member views and the dashboard.

use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use rosterd::config::OrgSeed;

use crate::helpers::*;
use crate::sync::{csv_source, parse_sources, roster_csv, temp_dir};

fn mv(kind: &str, member: Option<Uuid>, amount: Value, key: &str) -> Value {
    let mut b = json!({"kind": kind, "amount": amount, "reason": "thanks", "idempotency_key": key});
    if let Some(m) = member {
        b["member_id"] = json!(m);
    }
    b
}

async fn post_move(app: &TestApp, slug: &str, token: &str, body: Value) -> Res {
    app.post(&format!("/api/v1/orgs/{slug}/points/moves"), token, body)
        .await
}

async fn totals(app: &TestApp, slug: &str, token: &str) -> (i64, i64) {
    let r = app.get(&format!("/api/v1/orgs/{slug}/points"), token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    (
        r.body["pool"].as_i64().unwrap(),
        r.body["distributed"].as_i64().unwrap(),
    )
}

async fn ledger_ids(app: &TestApp, path: &str, token: &str) -> Vec<String> {
    let r = app.get(path, token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn points_of(app: &TestApp, slug: &str, token: &str, id: Uuid) -> i64 {
    let r = app
        .get(&format!("/api/v1/orgs/{slug}/members/{id}"), token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["points"].as_i64().unwrap()
}

#[tokio::test]
async fn points_move_between_pool_and_members_with_ledger_and_audit() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add("acme", &admin, &["ada@acme.example", "bob@acme.example"])
        .await;
    let (ada, bob) = (ids[0], ids[1]);
    assert_eq!(totals(&app, "acme", &admin).await, (0, 0));

    let r = post_move(&app, "acme", &admin, mv("pool_add", None, json!(100), "k1")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["pool_after"], 100);
    assert_eq!(r.body["actor"]["kind"], "admin_token");
    let r = post_move(&app, "acme", &admin, mv("give", Some(ada), json!(30), "k2")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (
            r.body["pool_after"].as_i64(),
            r.body["balance_after"].as_i64()
        ),
        (Some(70), Some(30))
    );
    let r = post_move(
        &app,
        "acme",
        OPERATOR,
        mv("give", Some(bob), json!(5), "k3"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = post_move(&app, "acme", &admin, mv("take", Some(ada), json!(10), "k4")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (
            r.body["pool_after"].as_i64(),
            r.body["balance_after"].as_i64()
        ),
        (Some(75), Some(20))
    );

    assert_eq!(totals(&app, "acme", &admin).await, (75, 25));
    assert_eq!(points_of(&app, "acme", &admin, ada).await, 20);
    assert_eq!(points_of(&app, "acme", &admin, bob).await, 5);

    // The ledger, newest first; by member; paged without overlap.
    let r = app.get("/api/v1/orgs/acme/points/ledger", &admin).await;
    let kinds: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["take", "give", "give", "pool_add"]);
    assert_eq!(r.body["items"][0]["reason"], "thanks");
    assert_eq!(r.body["items"][0]["idempotency_key"], "k4");
    assert_eq!(r.body["items"][1]["actor"]["kind"], "operator");
    let all = ledger_ids(&app, "/api/v1/orgs/acme/points/ledger", &admin).await;
    let adas = ledger_ids(
        &app,
        &format!("/api/v1/orgs/acme/points/ledger?member_id={ada}"),
        &admin,
    )
    .await;
    assert_eq!(adas, [all[0].clone(), all[2].clone()]);
    let mut seen = Vec::new();
    let mut path = "/api/v1/orgs/acme/points/ledger?limit=3".to_owned();
    loop {
        let r = app.get(&path, &admin).await;
        seen.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/orgs/acme/points/ledger?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, all);

    // Each movement is audited with what it did.
    let r = app.get("/api/v1/orgs/acme/audit?limit=4", &admin).await;
    let actions: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "points.take",
            "points.give",
            "points.give",
            "points.pool_add"
        ]
    );
    assert_eq!(r.body["items"][0]["subject"]["id"], ada.to_string());
    assert_eq!(r.body["items"][0]["after"]["amount"], 10);

    // The list sorts by points (keyset pages), the export carries them.
    let mut order = Vec::new();
    let mut path = "/api/v1/orgs/acme/members?sort=points&order=desc&limit=1".to_owned();
    loop {
        let r = app.get(&path, &admin).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for m in r.body["items"].as_array().unwrap() {
            order.push((
                m["member_email"].as_str().unwrap().to_owned(),
                m["points"].as_i64().unwrap(),
            ));
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => {
                path =
                    format!("/api/v1/orgs/acme/members?sort=points&order=desc&limit=1&cursor={c}")
            }
            None => break,
        }
    }
    assert_eq!(
        order,
        [
            ("ada@acme.example".to_owned(), 20),
            ("bob@acme.example".to_owned(), 5),
            ("owner@acme.example".to_owned(), 0)
        ]
    );
    let r = app
        .get("/api/v1/orgs/acme/members?sort=name&limit=1", &admin)
        .await;
    let c = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/members?sort=points&limit=1&cursor={c}"),
            &admin,
        )
        .await;
    assert_problem(&r, 400);
    let csv = app
        .get("/api/v1/orgs/acme/members/export.csv", &admin)
        .await;
    assert!(
        csv.text.lines().next().unwrap().contains(",Points,"),
        "{}",
        csv.text
    );
    assert!(
        csv.text
            .lines()
            .any(|l| l.starts_with("ada@acme.example,ada@acme.example,") && l.ends_with(",20,,0,")),
        "{}",
        csv.text
    );
}

#[tokio::test]
async fn refused_movements_change_nothing() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    let ada = app.add("acme", &admin, &["ada@acme.example"]).await[0];
    let stranger = app.add("other", &other, &["eve@other.example"]).await[0];
    let r = post_move(
        &app,
        "acme",
        &admin,
        mv("pool_add", None, json!(50), "seed"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = post_move(
        &app,
        "acme",
        &admin,
        mv("give", Some(ada), json!(20), "seed2"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let audit_before = app.get("/api/v1/orgs/acme/audit", &admin).await.text;
    let ledger_before = app
        .get("/api/v1/orgs/acme/points/ledger", &admin)
        .await
        .text;

    // Below zero: the pool, then the member.
    let r = post_move(&app, "acme", &admin, mv("give", Some(ada), json!(31), "a")).await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "insufficient_points", "{}", r.text);
    assert!(
        r.body["detail"].as_str().unwrap().contains("30"),
        "{}",
        r.text
    );
    let r = post_move(&app, "acme", &admin, mv("take", Some(ada), json!(21), "b")).await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "insufficient_points", "{}", r.text);

    // Bad amounts and shapes: each named.
    for (amount, field) in [
        (json!(0), "amount"),
        (json!(-5), "amount"),
        (json!(1_000_000_000_000_001_i64), "amount"),
    ] {
        let r = post_move(&app, "acme", &admin, mv("pool_add", None, amount, "c")).await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.text);
    }
    for amount in [json!(1.5), json!("10"), json!(null), json!(1e300)] {
        let r = post_move(&app, "acme", &admin, mv("pool_add", None, amount, "c")).await;
        assert!(r.status == 400 || r.status == 422, "{}", r.text);
        assert_problem(&r, r.status.as_u16());
        assert!(r.text.contains("amount"), "{}", r.text);
    }
    let r = post_move(&app, "acme", &admin, mv("give", None, json!(1), "d")).await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "member_id", "{}", r.text);
    let r = post_move(
        &app,
        "acme",
        &admin,
        mv("pool_add", Some(ada), json!(1), "d"),
    )
    .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "member_id", "{}", r.text);
    let mut no_reason = mv("pool_add", None, json!(1), "d");
    no_reason["reason"] = json!("  ");
    let r = post_move(&app, "acme", &admin, no_reason).await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "reason", "{}", r.text);
    let r = post_move(&app, "acme", &admin, mv("pool_add", None, json!(1), "")).await;
    assert_problem(&r, 422);
    assert_eq!(
        r.body["errors"][0]["field"], "idempotency_key",
        "{}",
        r.text
    );
    let mut extra = mv("pool_add", None, json!(1), "e");
    extra["currency"] = json!("EUR");
    let r = post_move(&app, "acme", &admin, extra).await;
    assert!(r.status == 400 || r.status == 422, "{}", r.text);
    assert!(r.text.contains("currency"), "{}", r.text);
    let r = post_move(&app, "acme", &admin, mv("steal", None, json!(1), "f")).await;
    assert!(r.status == 400 || r.status == 422, "{}", r.text);
    assert!(r.text.contains("kind"), "{}", r.text);

    // Unknown members, and members of another org, are not found.
    for id in [Uuid::new_v4(), stranger] {
        let r = post_move(&app, "acme", &admin, mv("give", Some(id), json!(1), "g")).await;
        assert_problem(&r, 404);
        let r = app
            .get(
                &format!("/api/v1/orgs/acme/points/ledger?member_id={id}"),
                &admin,
            )
            .await;
        assert_problem(&r, 404);
    }
    let r = app
        .get("/api/v1/orgs/acme/points/ledger?cursor=nope", &admin)
        .await;
    assert_problem(&r, 400);

    assert_eq!(totals(&app, "acme", &admin).await, (30, 20));
    assert_eq!(points_of(&app, "acme", &admin, ada).await, 20);
    assert_eq!(
        app.get("/api/v1/orgs/acme/audit", &admin).await.text,
        audit_before
    );
    assert_eq!(
        app.get("/api/v1/orgs/acme/points/ledger", &admin)
            .await
            .text,
        ledger_before
    );
    // A refused key was not used up.
    let r = post_move(&app, "acme", &admin, mv("give", Some(ada), json!(30), "a")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(totals(&app, "acme", &admin).await, (0, 50));
}

#[tokio::test]
async fn an_idempotency_key_replays_the_same_movement_and_refuses_another() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    let ada = app.add("acme", &admin, &["ada@acme.example"]).await[0];
    let r = post_move(
        &app,
        "acme",
        &admin,
        mv("pool_add", None, json!(40), "pool-1"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let first = post_move(
        &app,
        "acme",
        &admin,
        mv("give", Some(ada), json!(15), "give-1"),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert!(first.headers.get("idempotent-replayed").is_none());

    let again = post_move(
        &app,
        "acme",
        &admin,
        mv("give", Some(ada), json!(15), "give-1"),
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.body, first.body, "the same answer");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(totals(&app, "acme", &admin).await, (25, 15), "moved once");

    for body in [
        mv("give", Some(ada), json!(16), "give-1"),
        mv("take", Some(ada), json!(15), "give-1"),
        mv("pool_add", None, json!(15), "give-1"),
        {
            let mut b = mv("give", Some(ada), json!(15), "give-1");
            b["reason"] = json!("other reason");
            b
        },
    ] {
        let r = post_move(&app, "acme", &admin, body).await;
        assert_problem(&r, 409);
        assert_eq!(r.body["code"], "idempotency_key_reused", "{}", r.text);
    }
    assert_eq!(totals(&app, "acme", &admin).await, (25, 15));
    assert_eq!(
        ledger_ids(&app, "/api/v1/orgs/acme/points/ledger", &admin)
            .await
            .len(),
        2
    );

    // Keys are per org.
    let r = post_move(
        &app,
        "other",
        &other,
        mv("pool_add", None, json!(7), "give-1"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(totals(&app, "other", &other).await, (7, 0));
}

#[tokio::test]
async fn concurrent_movements_never_overdraw() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add("acme", &admin, &["ada@acme.example", "bob@acme.example"])
        .await;
    let r = post_move(
        &app,
        "acme",
        &admin,
        mv("pool_add", None, json!(100), "seed"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // 20 gives of 10 from a pool of 100, all at once: exactly 10 go through.
    let calls = (0..20).map(|i| {
        let body = mv("give", Some(ids[i % 2]), json!(10), &format!("g{i}"));
        let admin = admin.clone();
        let app = &app;
        async move { post_move(app, "acme", &admin, body).await }
    });
    let results = join_all(calls).await;
    let ok = results.iter().filter(|r| r.status == 201).count();
    for r in results.iter().filter(|r| r.status != 201) {
        assert_problem(r, 409);
        assert_eq!(r.body["code"], "insufficient_points", "{}", r.text);
    }
    assert_eq!(ok, 10);
    assert_eq!(totals(&app, "acme", &admin).await, (0, 100));
    let a = points_of(&app, "acme", &admin, ids[0]).await;
    let b = points_of(&app, "acme", &admin, ids[1]).await;
    assert_eq!(a + b, 100);
    let ledger = ledger_ids(&app, "/api/v1/orgs/acme/points/ledger?limit=200", &admin).await;
    assert_eq!(ledger.len(), 11);
}

#[tokio::test]
async fn another_orgs_points_and_dashboard_are_not_found() {
    let app = spawn_app().await;
    let a = app.org_with_admin("org-a").await;
    let b = app.org_with_admin("org-b").await;
    let r = post_move(&app, "org-a", &a, mv("pool_add", None, json!(9), "k")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    for path in [
        "/api/v1/orgs/org-a/points",
        "/api/v1/orgs/org-a/points/ledger",
        "/api/v1/orgs/org-a/dashboard",
    ] {
        assert_problem(&app.get(path, &b).await, 404);
        assert_problem(&app.get(path, "not-a-token").await, 401);
    }
    let r = post_move(&app, "org-a", &b, mv("pool_add", None, json!(9), "k2")).await;
    assert_problem(&r, 404);
    assert_eq!(totals(&app, "org-a", &a).await, (9, 0));
    assert_eq!(totals(&app, "org-b", &b).await, (0, 0));
    assert!(
        ledger_ids(&app, "/api/v1/orgs/org-b/points/ledger", &b)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn the_dashboard_counts_members_points_held_runs_and_failing_sources() {
    let dir = temp_dir();
    let file = dir.join("roster.csv");
    let gone = dir.join("gone.csv");
    let all = [
        ("1", true, "A", "A", "a@dash.example", false),
        ("2", true, "B", "B", "b@dash.example", false),
        ("3", true, "C", "C", "c@dash.example", false),
    ];
    std::fs::write(&file, roster_csv(&all)).unwrap();
    std::fs::write(&gone, roster_csv(&all[..1])).unwrap();
    let sources = parse_sources(&format!(
        "{}{}",
        csv_source(
            "hr",
            "dash",
            &format!("path = {:?}", file.display().to_string()),
            "authoritative = true\nmax_removals = 1",
        ),
        csv_source(
            "old",
            "dash",
            &format!("path = {:?}", gone.display().to_string()),
            "",
        )
    ));
    let app = spawn_with(Mail::Files, move |c| {
        c.orgs = ["dash", "calm"]
            .iter()
            .map(|s| OrgSeed {
                slug: (*s).into(),
                name: format!("Org {s}"),
                owner_email: Some(format!("owner@{s}.example")),
            })
            .collect();
        c.sources = sources;
        c.sync.retry_base_ms = 10;
        c.sync.fetch_retries = 0;
    })
    .await;
    let empty = app.get("/api/v1/orgs/dash/dashboard", OPERATOR).await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.body["held_runs"], 0);
    assert_eq!(empty.body["failing_sources"], 0);

    // A held run and a failing source in `dash`.
    assert_eq!(app.run_source("dash", "hr").await["status"], "succeeded");
    std::fs::write(&file, roster_csv(&all[..0])).unwrap();
    assert_eq!(app.run_source("dash", "hr").await["status"], "held");
    std::fs::remove_file(&gone).unwrap();
    assert_eq!(app.run_source("dash", "old").await["status"], "failed");

    // Members in every state in `calm`: invited, enrolled, removed, cancelled, disabled.
    let r = app
        .post(
            "/api/v1/orgs/calm/tokens",
            OPERATOR,
            json!({"kind": "admin", "name": "t"}),
        )
        .await;
    let admin = r.body["token"].as_str().unwrap().to_owned();
    let ids = app
        .add(
            "calm",
            &admin,
            &[
                "inv@calm.example",
                "enr@calm.example",
                "can@calm.example",
                "dis@calm.example",
                "rem@calm.example",
            ],
        )
        .await;
    for email in ["enr@calm.example", "dis@calm.example", "rem@calm.example"] {
        let r = app.accept("calm", email, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    for (what, id) in [
        ("cancel-invitations", ids[2]),
        ("disable", ids[3]),
        ("remove", ids[4]),
    ] {
        let r = app
            .post(
                &format!("/api/v1/orgs/calm/members/{what}"),
                &admin,
                json!({"member_ids": [id]}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = post_move(&app, "calm", &admin, mv("pool_add", None, json!(12), "p")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = post_move(
        &app,
        "calm",
        &admin,
        mv("give", Some(ids[1]), json!(5), "q"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let counts = app
        .get("/api/v1/orgs/calm/members/counts", &admin)
        .await
        .body;
    let d = app.get("/api/v1/orgs/calm/dashboard", &admin).await;
    assert_eq!(d.status, 200, "{}", d.text);
    for state in ["invited", "enrolled", "removed", "cancelled", "disabled"] {
        assert_eq!(
            d.body["members"][state], counts[state],
            "{state}: {}",
            d.text
        );
    }
    // The owner is one more invited member.
    assert_eq!(
        d.body["members"],
        json!({"invited": 2, "enrolled": 1, "removed": 1, "cancelled": 1, "disabled": 1}),
        "{}",
        d.text
    );
    assert_eq!(d.body["points"], json!({"pool": 7, "distributed": 5}));
    assert_eq!(d.body["held_runs"], 0, "{}", d.text);
    assert_eq!(d.body["failing_sources"], 0, "{}", d.text);

    let d = app.get("/api/v1/orgs/dash/dashboard", OPERATOR).await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body["held_runs"], 1, "{}", d.text);
    assert_eq!(d.body["failing_sources"], 1, "{}", d.text);
    assert_eq!(d.body["failing_source_names"], json!(["old"]));
    assert_eq!(d.body["points"], json!({"pool": 0, "distributed": 0}));
    assert_eq!(
        d.body["members"]["removed"], 0,
        "the held removals are not applied"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn fees_and_payments_in_minor_units_with_totals_sorted_and_exported() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    let ids = app
        .add("acme", &admin, &["ada@acme.example", "bob@acme.example"])
        .await;
    let (ada, bob) = (ids[0], ids[1]);
    let stranger = app.add("other", &other, &["eve@other.example"]).await[0];
    let fee = |id: Uuid| format!("/api/v1/orgs/acme/members/{id}/fee");
    let pay = |id: Uuid| format!("/api/v1/orgs/acme/members/{id}/payments");
    let put = |path: String, body: Value| {
        let admin = admin.clone();
        let app = &app;
        async move {
            app.call(reqwest::Method::PUT, &path, Some(&admin), Some(body))
                .await
        }
    };

    let r = put(fee(ada), json!({"monthly_fee": 2500, "currency": "EUR"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["monthly_fee"], 2500);
    assert_eq!(r.body["currency"], "EUR");
    assert_eq!(r.body["total_paid"], 0);
    for (amount, on, note) in [
        (2500, "2026-01-05", Some("January")),
        (1250, "2026-02-05", None),
    ] {
        let mut body = json!({"amount": amount, "currency": "EUR", "paid_on": on});
        if let Some(n) = note {
            body["note"] = json!(n);
        }
        let r = app.post(&pay(ada), &admin, body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["amount"], amount);
        assert_eq!(r.body["paid_on"], on);
    }
    let r = app
        .post(
            &pay(bob),
            &admin,
            json!({"amount": 100, "currency": "USD", "paid_on": "2026-03-01"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let d = app
        .get(&format!("/api/v1/orgs/acme/members/{ada}"), &admin)
        .await;
    assert_eq!(
        (
            &d.body["monthly_fee"],
            &d.body["currency"],
            &d.body["total_paid"]
        ),
        (&json!(2500), &json!("EUR"), &json!(3750)),
        "{}",
        d.text
    );
    let list = app.get(&pay(ada), &admin).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let amounts: Vec<i64> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [1250, 2500], "newest first");
    assert_eq!(list.body["items"][1]["note"], "January");
    let page = app.get(&format!("{}?limit=1", pay(ada)), &admin).await;
    let c = page.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!("{}?limit=1&cursor={c}", pay(ada)), &admin)
        .await;
    assert_eq!(rest.body["items"][0]["amount"], 2500);
    assert!(rest.body["next_cursor"].is_null());

    // Audited.
    let r = app.get("/api/v1/orgs/acme/audit?limit=4", &admin).await;
    let actions: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "payment.recorded",
            "payment.recorded",
            "payment.recorded",
            "member.fee_set"
        ]
    );
    assert_eq!(r.body["items"][3]["after"]["monthly_fee"], 2500);

    // Sorted by total paid; exported with fee, total and currency.
    let r = app
        .get(
            "/api/v1/orgs/acme/members?sort=total_paid&order=desc",
            &admin,
        )
        .await;
    let emails: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_email"].as_str().unwrap())
        .collect();
    assert_eq!(emails[..2], ["ada@acme.example", "bob@acme.example"]);
    let csv = app
        .get("/api/v1/orgs/acme/members/export.csv", &admin)
        .await;
    assert!(
        csv.text
            .lines()
            .any(|l| l.starts_with("ada@acme.example,") && l.ends_with(",0,2500,3750,EUR")),
        "{}",
        csv.text
    );

    // Refusals change nothing.
    let audit_before = app.get("/api/v1/orgs/acme/audit", &admin).await.text;
    for (body, field) in [
        (
            json!({"amount": 0, "currency": "EUR", "paid_on": "2026-01-01"}),
            "amount",
        ),
        (
            json!({"amount": -1, "currency": "EUR", "paid_on": "2026-01-01"}),
            "amount",
        ),
        (
            json!({"amount": 1, "currency": "eur", "paid_on": "2026-01-01"}),
            "currency",
        ),
        (
            json!({"amount": 1, "currency": "EURO", "paid_on": "2026-01-01"}),
            "currency",
        ),
        (
            json!({"amount": 1, "currency": "XYZ", "paid_on": "2026-01-01"}),
            "currency",
        ),
        (
            json!({"amount": 1, "currency": "EUR", "paid_on": "2026-13-01"}),
            "paid_on",
        ),
        (
            json!({"amount": 1, "currency": "EUR", "paid_on": "2999-01-01"}),
            "paid_on",
        ),
        (
            json!({"amount": 1, "currency": "EUR", "paid_on": "2026-01-01", "note": "a\u{1}b"}),
            "note",
        ),
    ] {
        let r = app.post(&pay(ada), &admin, body).await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.text);
    }
    for amount in [json!(12.5), json!("12")] {
        let r = app
            .post(
                &pay(ada),
                &admin,
                json!({"amount": amount, "currency": "EUR", "paid_on": "2026-01-01"}),
            )
            .await;
        assert!(r.status == 400 || r.status == 422, "{}", r.text);
        assert!(r.text.contains("amount"), "{}", r.text);
    }
    let r = app
        .post(
            &pay(ada),
            &admin,
            json!({"amount": 1, "currency": "USD", "paid_on": "2026-01-01"}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "currency_mismatch", "{}", r.text);
    let r = put(fee(ada), json!({"monthly_fee": 100, "currency": "GBP"})).await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "currency_mismatch", "{}", r.text);
    for (body, field) in [
        (json!({"monthly_fee": -1, "currency": "EUR"}), "monthly_fee"),
        (json!({"monthly_fee": 5}), "currency"),
    ] {
        let r = put(fee(ada), body).await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.text);
    }
    for id in [Uuid::new_v4(), stranger] {
        let r = app
            .post(
                &pay(id),
                &admin,
                json!({"amount": 1, "currency": "EUR", "paid_on": "2026-01-01"}),
            )
            .await;
        assert_problem(&r, 404);
        assert_problem(&app.get(&pay(id), &admin).await, 404);
        assert_problem(
            &put(fee(id), json!({"monthly_fee": 1, "currency": "EUR"})).await,
            404,
        );
    }
    assert_eq!(
        app.get("/api/v1/orgs/acme/audit", &admin).await.text,
        audit_before
    );
    let d = app
        .get(&format!("/api/v1/orgs/acme/members/{ada}"), &admin)
        .await;
    assert_eq!(d.body["total_paid"], 3750);
    assert_eq!(d.body["monthly_fee"], 2500);

    // A PUT without a fee clears it; the currency stays with the payments.
    let r = put(fee(ada), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["monthly_fee"].is_null(), "{}", r.text);
    assert_eq!(r.body["currency"], "EUR");
    assert_eq!(r.body["total_paid"], 3750);
}

#[tokio::test]
async fn the_cli_shows_moves_points_and_records_payments() {
    let cli = crate::cli::Cli::new().await;
    let (code, _, err) = cli.run(&["migrate"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli
        .run(&[
            "org",
            "create",
            "acme",
            "--name",
            "Acme",
            "--owner-email",
            "boss@acme.example",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli.run(&["members", "--org", "acme", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let owner: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let owner = owner["id"].as_str().unwrap().to_owned();
    assert_eq!(owner.len(), 36, "{out}");

    let pool_add = [
        "points",
        "move",
        "--org",
        "acme",
        "--kind",
        "pool_add",
        "--amount",
        "9",
        "--reason",
        "start",
        "--idempotency-key",
        "k1",
    ];
    let (code, first, err) = cli.run(&pool_add).await;
    assert_eq!(code, 0, "{err}");
    let (code, again, err) = cli.run(&pool_add).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(first, again, "a replay prints the same entry");
    let (code, out, err) = cli
        .run(&[
            "points",
            "move",
            "--org",
            "acme",
            "--kind",
            "give",
            "--member",
            &owner,
            "--amount",
            "4",
            "--reason",
            "help",
            "--idempotency-key",
            "k2",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let row: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["balance_after"], 4);
    assert_eq!(row["actor_kind"], "cli");

    // Refusals: below zero, a replayed key with other values, a bad kind.
    for (args, says) in [
        (
            vec![
                "--kind",
                "take",
                "--member",
                owner.as_str(),
                "--amount",
                "5",
                "--reason",
                "x",
                "--idempotency-key",
                "k3",
            ],
            "fewer than",
        ),
        (
            vec![
                "--kind",
                "pool_add",
                "--amount",
                "10",
                "--reason",
                "start",
                "--idempotency-key",
                "k1",
            ],
            "already used",
        ),
        (
            vec![
                "--kind",
                "steal",
                "--amount",
                "1",
                "--reason",
                "x",
                "--idempotency-key",
                "k4",
            ],
            "expected pool_add",
        ),
    ] {
        let mut full = vec!["points", "move", "--org", "acme"];
        full.extend(args);
        let (code, _, err) = cli.run(&full).await;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(says), "{err}");
    }
    let (code, out, err) = cli.run(&["points", "show", "--org", "acme"]).await;
    assert_eq!(code, 0, "{err}");
    let totals: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(totals, json!({"pool": 5, "distributed": 4}));

    let (code, out, err) = cli
        .run(&[
            "pay",
            "--org",
            "acme",
            "--member",
            &owner,
            "--amount",
            "1999",
            "--currency",
            "EUR",
            "--paid-on",
            "2026-01-31",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"amount\":1999"), "{out}");
    let (code, _, err) = cli
        .run(&[
            "pay",
            "--org",
            "acme",
            "--member",
            &owner,
            "--amount",
            "0",
            "--currency",
            "EUR",
            "--paid-on",
            "2026-01-31",
        ])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("amount"), "{err}");
    let (code, out, err) = cli.run(&["members", "--org", "acme", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let m: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        (&m["points"], &m["total_paid"], &m["currency"]),
        (&json!(4), &json!(1999), &json!("EUR"))
    );
}

#[tokio::test]
async fn a_balance_never_passes_the_points_limit() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let id = app.add("acme", &admin, &["a@acme.example"]).await[0];
    let max = json!(1_000_000_000_000_000i64);
    for round in 0..2 {
        let r = post_move(
            &app,
            "acme",
            &admin,
            mv("pool_add", None, max.clone(), &format!("p{round}")),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let r = post_move(
            &app,
            "acme",
            &admin,
            mv("give", Some(id), max.clone(), &format!("g{round}")),
        )
        .await;
        if round == 0 {
            assert_eq!(r.status, 201, "{}", r.text);
        } else {
            // A second full gift would double the member past the limit: refused, nothing moves.
            assert_problem(&r, 409);
            assert_eq!(r.body["code"], "points_limit", "{}", r.text);
        }
    }
    let (pool, distributed) = totals(&app, "acme", &admin).await;
    assert_eq!(
        (pool, distributed),
        (1_000_000_000_000_000, 1_000_000_000_000_000)
    );
}
