//! Ways out: removal with an alternative contact email (API and CLI), and its refusals.

use serde_json::json;

use crate::cli::Cli;
use crate::helpers::*;

#[tokio::test]
async fn removal_records_a_contact_email_that_past_members_show() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add("acme", &admin, &["ada@acme.example", "bo@acme.example"])
        .await;

    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{}/remove", ids[0]),
            &admin,
            json!({"contact_email": " ada@home.example "}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["access"], "removed");
    assert_eq!(r.body["contact_email"], "ada@home.example");

    // The list of past members shows it; the one read of the member too.
    let r = app
        .get("/api/v1/orgs/acme/members?access=removed", &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(items[0]["contact_email"], "ada@home.example");
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{}", ids[0]), &admin)
        .await;
    assert_eq!(r.body["contact_email"], "ada@home.example", "{}", r.text);

    // The removal is audited with the address it recorded.
    let r = app.get("/api/v1/orgs/acme/audit", &admin).await;
    let entry = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "member.removed")
        .unwrap_or_else(|| panic!("no removal entry: {}", r.text))
        .clone();
    assert_eq!(entry["after"]["contact_email"], "ada@home.example");

    // Without a body field, removal records none (and the DELETE form still works).
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{}/remove", ids[1]),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("contact_email").is_none(), "{}", r.text);

    // Re-added, a person is no longer a past member: the address is not shown.
    app.add("acme", &admin, &["ada@acme.example"]).await;
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{}", ids[0]), &admin)
        .await;
    assert_eq!(r.body["access"], "invited", "{}", r.text);
    assert!(r.body.get("contact_email").is_none(), "{}", r.text);
}

#[tokio::test]
async fn removal_with_a_contact_email_refuses_bad_input_owners_other_orgs_and_the_lock() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    let ids = app.add("acme", &admin, &["ada@acme.example"]).await;
    let path = format!("/api/v1/orgs/acme/members/{}/remove", ids[0]);
    let before = app.snapshot("acme").await;

    let r = app
        .post(&path, &admin, json!({"contact_email": "not an email"}))
        .await;
    assert_problem(&r, 422);
    assert!(r.text.contains("contact_email"), "{}", r.text);
    let r = app
        .post(&path, &admin, json!({"contact": "ada@home.example"}))
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    assert!(r.text.contains("contact"), "{}", r.text);
    // Another org's admin sees no such org.
    let r = app
        .post(&path, &other, json!({"contact_email": "ada@home.example"}))
        .await;
    assert_problem(&r, 404);
    // A member id of another org is not found.
    let r = app
        .post(
            &format!("/api/v1/orgs/other/members/{}/remove", ids[0]),
            &other,
            json!({"contact_email": "ada@home.example"}),
        )
        .await;
    assert_problem(&r, 404);
    // The owner is never removed.
    let owner = app
        .get("/api/v1/orgs/acme/members?role=owner", &admin)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{owner}/remove"),
            &admin,
            json!({"contact_email": "boss@home.example"}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "owner_cannot_be_removed");
    // An integration-managed org refuses it, naming the integration.
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": "Okta"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let locked = app.snapshot("acme").await;
    let r = app
        .post(&path, &admin, json!({"contact_email": "ada@home.example"}))
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["integration"], "Okta");
    assert_eq!(app.snapshot("acme").await, locked, "nothing changed");
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": null}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The refusals before the lock changed no member either (the org's audit gained only the
    // two `managed_by` changes).
    let members_of = |s: &str| s.split('|').next().unwrap().to_owned();
    assert_eq!(
        members_of(&app.snapshot("acme").await),
        members_of(&before),
        "nothing changed"
    );
}

#[tokio::test]
async fn the_cli_removes_a_member_recording_a_contact_email() {
    let cli = Cli::new().await;
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
    let store = rosterd::store::Store::connect(&cli.url, 2).await.unwrap();
    let roster = rosterd::roster::Roster::new(
        store,
        std::sync::Arc::new(rosterd::clock::SystemClock),
        rosterd::roster::InviteSettings::from_config(&rosterd::config::Config::default()),
    );
    let org = roster.org_by_slug("acme").await.unwrap().unwrap();
    let added = roster
        .add_members(
            org.id,
            &rosterd::roster::Actor::Cli,
            vec![rosterd::roster::NewMember {
                email: "ada@acme.example".into(),
                role: None,
                given_name: None,
                family_name: None,
                display_name: None,
                groups: vec![],
                phones: vec![],
                attributes: Default::default(),
            }],
        )
        .await
        .unwrap();
    let id = added[0].member_id.to_string();
    roster.store.close().await;
    let (code, out, err) = cli.run(&["members", "--org", "acme", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let owner = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["role"] == "owner")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (code, _, err) = cli
        .run(&["remove", "--org", "acme", &id, "--contact-email", "nope"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("contact_email"), "{err}");
    let (code, _, err) = cli.run(&["remove", "--org", "acme", &owner]).await;
    assert_eq!(code, 1);
    assert!(err.contains("owner"), "{err}");

    let (code, out, err) = cli
        .run(&[
            "remove",
            "--org",
            "acme",
            &id,
            "--contact-email",
            "ada@home.example",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["access"], "removed");
    assert_eq!(v["contact_email"], "ada@home.example");
    let (code, out, _) = cli
        .run(&["members", "--org", "acme", "--access", "removed", "--json"])
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("ada@home.example"), "{out}");
}

/// How many stored values, in any column of any table, contain `needle` (case-insensitive):
/// the store read straight, on either backend.
pub async fn occurrences(app: &TestApp, needle: &str) -> Vec<String> {
    let pattern = format!("%{}%", needle.to_lowercase());
    let mut tx = app.store.read().await.unwrap();
    let mut found = Vec::new();
    match &mut tx {
        rosterd::store::Tx::Sqlite(c) => {
            let columns: Vec<(String, String)> = sqlx::query_as(
                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND m.name NOT LIKE 'members_search%'
                   AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
            )
            .fetch_all(&mut **c)
            .await
            .unwrap();
            for (t, col) in columns {
                let sql = format!(
                    "SELECT COUNT(*) FROM \"{t}\" WHERE LOWER(CAST(\"{col}\" AS TEXT)) LIKE $1"
                );
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(&pattern)
                    .fetch_one(&mut **c)
                    .await
                    .unwrap();
                if n > 0 {
                    found.push(format!("{t}.{col}"));
                }
            }
            // The trigram index mirrors `search_key` through triggers.
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM members_search WHERE search_key LIKE $1")
                    .bind(&pattern)
                    .fetch_one(&mut **c)
                    .await
                    .unwrap();
            if n > 0 {
                found.push("members_search".into());
            }
        }
        rosterd::store::Tx::Postgres(c) => {
            let columns: Vec<(String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'",
            )
            .fetch_all(&mut **c)
            .await
            .unwrap();
            for (t, col) in columns {
                let sql = format!(
                    "SELECT COUNT(*) FROM \"{t}\" WHERE LOWER(CAST(\"{col}\" AS TEXT)) LIKE $1"
                );
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(&pattern)
                    .fetch_one(&mut **c)
                    .await
                    .unwrap();
                if n > 0 {
                    found.push(format!("{t}.{col}"));
                }
            }
        }
    }
    tx.rollback().await.unwrap();
    found
}

#[tokio::test]
async fn erasure_replaces_a_members_data_everywhere_and_keeps_the_history() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [
                {"email": "ada.lovelace@acme.example", "given_name": "Augusta", "family_name": "Byronsdottir"},
                {"email": "bo@acme.example"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ada: uuid::Uuid = r.body["results"][0]["member_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let r = app
        .accept(
            "acme",
            "ada.lovelace@acme.example",
            Some("ada@home-login.example"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{ada}"),
            &admin,
            json!({"given_name": "Ada"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post("/api/v1/orgs/acme/groups", &admin, json!({"name": "staff"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let group = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/groups/{group}/members"),
            &admin,
            json!({"member_ids": [ada]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // An import job that names her (its plan and its error rows keep her values).
    for csv in [
        "email,first_name,last_name,role\r\nada.lovelace@acme.example,Ada,Byronsdottir,admin\r\n",
        "email,first_name,last_name,role\r\nada.lovelace@acme.example,Ada,Byronsdottir,boss\r\n",
    ] {
        let r = app
            .client
            .post(app.url("/api/v1/orgs/acme/imports?filename=people.csv"))
            .bearer_auth(OPERATOR)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{ada}/remove"),
            &admin,
            json!({"contact_email": "augusta@elsewhere.example"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let values = [
        "ada.lovelace@acme.example",
        "ada@home-login.example",
        "augusta@elsewhere.example",
        "Augusta",
        "Byronsdottir",
    ];
    // Before: her values sit in every place erasure must reach.
    let at = occurrences(&app, "ada.lovelace@acme.example").await;
    for table in [
        "members.",
        "outbox.",
        "audit_log.",
        "sync_plan_items.",
        "sync_run_errors.",
    ] {
        assert!(
            at.iter().any(|t| t.starts_with(table)),
            "her email was stored in {table} before erasure: {at:?}"
        );
    }
    for v in &values[1..] {
        let at = occurrences(&app, v).await;
        assert!(
            at.iter().any(|t| t.starts_with("members."))
                && at.iter().any(|t| t.starts_with("audit_log.")),
            "{v} was stored before erasure: {at:?}"
        );
    }
    let audit_rows = app.get("/api/v1/orgs/acme/audit?limit=200", &admin).await;
    let audit_count = audit_rows.body["items"].as_array().unwrap().len();

    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{ada}/erase"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["access"], "removed");
    let placeholder = format!("erased-{}@invalid", ada.simple());
    assert_eq!(r.body["member_email"], placeholder);
    assert!(r.body["given_name"].is_null(), "{}", r.text);

    for v in values {
        let at = occurrences(&app, v).await;
        assert!(at.is_empty(), "{v} still stored in {at:?}");
    }
    // The other member is untouched; the history stays, one entry more (the erasure).
    assert!(!occurrences(&app, "bo@acme.example").await.is_empty());
    let after = app.get("/api/v1/orgs/acme/audit?limit=200", &admin).await;
    let items = after.body["items"].as_array().unwrap();
    assert_eq!(items.len(), audit_count + 1, "{}", after.text);
    assert_eq!(items[0]["action"], "member.erased");
    assert!(
        items
            .iter()
            .any(|e| e["action"] == "member.removed" && e["subject"]["id"] == ada.to_string()),
        "{}",
        after.text
    );
    // The id still resolves, as a removed tombstone; the group membership history stays.
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{ada}"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], placeholder);
    // She can be added again as a new person.
    let again = app
        .add("acme", &admin, &["ada.lovelace@acme.example"])
        .await;
    assert_ne!(again[0], ada);
}

#[tokio::test]
async fn erasure_is_refused_for_the_owner_other_orgs_unknown_ids_and_the_lock() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    let ids = app.add("acme", &admin, &["ada@acme.example"]).await;
    let path = format!("/api/v1/orgs/acme/members/{}/erase", ids[0]);
    let before = app.snapshot("acme").await;

    assert_problem(&app.post(&path, &other, json!({})).await, 404);
    let r = app
        .post(
            &format!("/api/v1/orgs/other/members/{}/erase", ids[0]),
            &other,
            json!({}),
        )
        .await;
    assert_problem(&r, 404);
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{}/erase", uuid::Uuid::nil()),
            &admin,
            json!({}),
        )
        .await;
    assert_problem(&r, 404);
    let owner = app
        .get("/api/v1/orgs/acme/members?role=owner", &admin)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{owner}/erase"),
            &admin,
            json!({}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "owner_cannot_be_erased");
    assert_eq!(app.snapshot("acme").await, before, "nothing changed");

    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": "Okta"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let locked = app.snapshot("acme").await;
    let r = app.post(&path, &admin, json!({})).await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "integration_managed");
    assert_eq!(r.body["integration"], "Okta");
    assert_eq!(app.snapshot("acme").await, locked, "nothing changed");
}

#[tokio::test]
async fn erasure_is_refused_while_a_source_claims_the_member() {
    use crate::sync::{csv_source, spawn_with_sources, temp_dir};
    let dir = temp_dir();
    let file = dir.join("hr.csv");
    std::fs::write(
        &file,
        "ID,MemberID,FirstName,LastName,IsActive,IsAuthRep\r\n7,ada@acme.example,Ada,L,True,False\r\n",
    )
    .unwrap();
    // Not authoritative: the org is not locked, but the source claims whom it brought.
    let src = csv_source(
        "hr",
        "acme",
        &format!("path = {:?}", file.display().to_string()),
        "",
    );
    let app = spawn_with_sources(&["acme"], &src).await;
    let run = app.run_source("acme", "hr").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let r = app
        .get("/api/v1/orgs/acme/members?email=ada@acme.example", OPERATOR)
        .await;
    let id = r.body["items"][0]["id"].as_str().unwrap().to_owned();
    let before = app.snapshot("acme").await;
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{id}/erase"),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "claimed_by_integration");
    assert!(r.text.contains("source `hr`"), "{}", r.text);
    assert_eq!(app.snapshot("acme").await, before, "nothing changed");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_cli_erases_a_member() {
    let cli = Cli::new().await;
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
    let store = rosterd::store::Store::connect(&cli.url, 2).await.unwrap();
    let roster = rosterd::roster::Roster::new(
        store,
        std::sync::Arc::new(rosterd::clock::SystemClock),
        rosterd::roster::InviteSettings::from_config(&rosterd::config::Config::default()),
    );
    let org = roster.org_by_slug("acme").await.unwrap().unwrap();
    let added = roster
        .add_members(
            org.id,
            &rosterd::roster::Actor::Cli,
            vec![rosterd::roster::NewMember {
                email: "ada@acme.example".into(),
                role: None,
                given_name: Some("Augusta".into()),
                family_name: None,
                display_name: None,
                groups: vec![],
                phones: vec![],
                attributes: Default::default(),
            }],
        )
        .await
        .unwrap();
    let id = added[0].member_id.to_string();
    roster.store.close().await;

    let (code, _, err) = cli
        .run(&["erase", "--org", "acme", &uuid::Uuid::nil().to_string()])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
    let (code, out, err) = cli.run(&["erase", "--org", "acme", &id]).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["access"], "removed");
    assert!(v["member_email"].as_str().unwrap().ends_with("@invalid"));
    let (code, out, _) = cli
        .run(&["members", "--org", "acme", "--access", "removed", "--json"])
        .await;
    assert_eq!(code, 0);
    assert!(
        !out.contains("ada@acme.example") && !out.contains("Augusta"),
        "{out}"
    );
}

#[tokio::test]
async fn erasure_reaches_join_requests_and_invite_links_naming_the_address() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/orgs/acme/join",
            Some(&admin),
            Some(
                json!({"enabled": true, "slug": "acme-join", "allowed_domains": [],
                        "allowed_emails": [], "require_approval": false, "questions": []}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/join/acme-join",
            None,
            Some(
                json!({"email": "Zed.Quist@acme.example", "given_name": "Zedekiah",
                        "family_name": "Quist", "answers": {}}),
            ),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/acme/invite-links",
            &admin,
            json!({"description": "link", "email": "zed.quist@acme.example"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = app.add("acme", &admin, &["zed.quist@acme.example"]).await[0];
    assert!(
        !occurrences(&app, "zed.quist@acme.example").await.is_empty(),
        "the address is stored before"
    );
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{id}/erase"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        occurrences(&app, "zed.quist@acme.example").await,
        Vec::<String>::new()
    );
}
