//! Ways out: SCIM `active: false` as the org says (remove or disable), background jobs,
//! dropping all member data of an org, and export options (columns, .zip, export jobs).

use std::io::Read;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::Cli;
use crate::erase::occurrences;
use crate::helpers::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> Res {
    app.call(Method::PUT, path, Some(token), Some(body)).await
}

fn user(name: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": name,
        "name": {"givenName": "Given", "familyName": "Family"},
        "emails": [{"value": name, "type": "work", "primary": true}],
        "active": true
    })
}

fn active(v: bool) -> Value {
    json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": v}]})
}

async fn access(app: &TestApp, admin: &str, id: &str) -> String {
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{id}"), admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["access"].as_str().unwrap().to_owned()
}

async fn actions(app: &TestApp, token: &str) -> Vec<String> {
    let r = app.get("/api/v1/orgs/acme/audit?limit=200", token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn scim_active_false_removes_by_default_and_disables_when_the_org_says_so() {
    let app = spawn_app().await;
    let (admin, scim) = app.scim_org("acme").await;
    let r = app.get("/api/v1/orgs/acme", &admin).await;
    assert_eq!(r.body["scim_deactivate"], "remove");

    // Default: removal.
    let r = app
        .scim(Method::POST, "/Users", &scim, Some(user("rm@acme.example")))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let rm = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .scim(
            Method::PATCH,
            &format!("/Users/{rm}"),
            &scim,
            Some(active(false)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(access(&app, &admin, &rm).await, "removed");

    // A bad value is refused, naming the field, and changes nothing.
    let r = app
        .patch(
            "/api/v1/orgs/acme",
            &admin,
            json!({"scim_deactivate": "delete"}),
        )
        .await;
    assert_problem(&r, 422);
    assert!(r.text.contains("scim_deactivate"), "{}", r.text);
    let r = app
        .patch(
            "/api/v1/orgs/acme",
            &admin,
            json!({"scim_deactivate": "disable", "scim_new_members": "enroll"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scim_deactivate"], "disable");

    // PATCH active=false disables; active=true enables again.
    let r = app
        .scim(
            Method::POST,
            "/Users",
            &scim,
            Some(user("ada@acme.example")),
        )
        .await;
    let ada = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(access(&app, &admin, &ada).await, "enrolled");
    let r = app
        .scim(
            Method::PATCH,
            &format!("/Users/{ada}"),
            &scim,
            Some(active(false)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], false);
    assert_eq!(access(&app, &admin, &ada).await, "disabled");
    let r = app
        .scim(
            Method::PATCH,
            &format!("/Users/{ada}"),
            &scim,
            Some(active(true)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], true);
    assert_eq!(access(&app, &admin, &ada).await, "enrolled");

    // PUT without active=true, and a Bulk PATCH, disable too.
    let mut body = user("ada@acme.example");
    body["active"] = json!(false);
    let r = app
        .scim(Method::PUT, &format!("/Users/{ada}"), &scim, Some(body))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(access(&app, &admin, &ada).await, "disabled");
    let r = app
        .scim(
            Method::POST,
            "/Users",
            &scim,
            Some(user("bob@acme.example")),
        )
        .await;
    let bob = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .scim(
            Method::POST,
            "/Bulk",
            &scim,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [{"method": "PATCH", "path": format!("/Users/{bob}"), "data": active(false)}]
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["Operations"][0]["status"], "200", "{}", r.text);
    assert_eq!(access(&app, &admin, &bob).await, "disabled");
    let r = app
        .get("/api/v1/orgs/acme/members?access=disabled", &admin)
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2, "{}", r.text);

    let acts = actions(&app, &admin).await;
    assert!(acts.iter().any(|a| a == "member.disabled"), "{acts:?}");
    assert!(acts.iter().any(|a| a == "member.readded"), "{acts:?}");
}

#[tokio::test]
async fn the_cli_sets_what_scim_active_false_does() {
    let cli = Cli::new().await;
    let (code, _, err) = cli.run(&["org", "create", "demo", "--name", "Demo"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli
        .run(&["org", "set", "demo", "--scim-deactivate", "disable"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"scim_deactivate\": \"disable\""), "{out}");
    let (code, _, err) = cli
        .run(&["org", "set", "demo", "--scim-deactivate", "archive"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("scim_deactivate"), "{err}");
}

/// Polls a job until it ends; answers it.
async fn finished_job(app: &TestApp, slug: &str, token: &str, id: &str) -> Value {
    let path = format!("/api/v1/orgs/{slug}/jobs/{id}");
    let mut last = Value::Null;
    for _ in 0..600 {
        let r = app.get(&path, token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if matches!(r.body["status"].as_str(), Some("succeeded" | "failed")) {
            return r.body;
        }
        last = r.body;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the job did not end: {last}");
}

#[tokio::test]
async fn dropping_all_members_erases_everyone_but_the_owner_and_the_acting_admin() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    app.allow_invites("acme", 30).await;
    let mut members =
        vec![json!({"email": "boss2@acme.example", "role": "admin", "given_name": "Grace"})];
    for i in 0..24 {
        members.push(json!({"email": format!("p{i}@acme.example"), "given_name": format!("Person{i}"), "family_name": "Zebulon"}));
    }
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": members}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let p0 = r.body["results"][1]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.add("other", &other, &["p0@acme.example"]).await;
    let r = put(
        &app,
        &format!("/api/v1/orgs/acme/members/{p0}/phones"),
        &admin,
        json!({"phones": [{"type": "mobile", "value": "+44 20 7946 0000"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post("/api/v1/orgs/acme/groups", &admin, json!({"name": "Crew"}))
        .await;
    let group = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/groups/{group}/members"),
            &admin,
            json!({"member_ids": [p0]}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);

    // Refusals: a wrong confirmation (422 naming it), another org (404); nothing changes.
    let before = app.snapshot("acme").await;
    for confirm in ["p0@acme.example", "nobody@acme.example", "acme", ""] {
        let r = app
            .post(
                "/api/v1/orgs/acme/members/drop",
                &admin,
                json!({"confirm": confirm}),
            )
            .await;
        assert_problem(&r, 422);
        assert!(r.text.contains("confirm"), "{}", r.text);
    }
    let r = app
        .post(
            "/api/v1/orgs/acme/members/drop",
            OPERATOR,
            json!({"confirm": "owner@acme.example"}),
        )
        .await;
    assert_problem(&r, 422);
    assert!(r.text.contains("slug"), "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/acme/members/drop",
            &other,
            json!({"confirm": "owner@other.example"}),
        )
        .await;
    assert_problem(&r, 404);
    assert_eq!(app.snapshot("acme").await, before);

    // The acting admin confirms with their own address.
    let r = app
        .post(
            "/api/v1/orgs/acme/members/drop",
            &admin,
            json!({"confirm": "Boss2@acme.example"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["kind"], "members.drop");
    let job_id = r.body["id"].as_str().unwrap().to_owned();
    assert!(r.headers["location"].to_str().unwrap().ends_with(&job_id));
    // Another org's token cannot see the job.
    let r = app
        .get(&format!("/api/v1/orgs/other/jobs/{job_id}"), &other)
        .await;
    assert_problem(&r, 404);
    let r = app
        .get(&format!("/api/v1/orgs/acme/jobs/{job_id}"), &other)
        .await;
    assert_problem(&r, 404);
    let job = finished_job(&app, "acme", &admin, &job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["dropped"], 24, "{job}");
    assert_eq!(job["progress"], 24);

    let r = app
        .get("/api/v1/orgs/acme/members?access=all&limit=200", &admin)
        .await;
    let left: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_email"].as_str().unwrap())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"owner@acme.example") && left.contains(&"boss2@acme.example"));
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{p0}"), &admin)
        .await;
    assert_eq!(r.body["access"], "removed");
    assert!(
        r.body["member_email"]
            .as_str()
            .unwrap()
            .starts_with("erased-")
    );
    assert!(app.group_members("acme", "Crew").await.is_empty());
    // Their data is nowhere in the store, except in the other org that holds its own copy.
    for needle in ["p7@acme.example", "person7", "zebulon", "7946"] {
        assert!(
            occurrences(&app, needle).await.is_empty(),
            "{needle}: {:?}",
            occurrences(&app, needle).await
        );
    }
    assert!(occurrences(&app, "person0").await.is_empty());
    let r = app.get("/api/v1/orgs/other/members", &other).await;
    assert!(r.text.contains("p0@acme.example"), "{}", r.text);
    // Audited: the request, one erasure per member, the end.
    let acts = actions(&app, &admin).await;
    assert!(
        acts.contains(&"org.members_drop_requested".to_owned()),
        "{acts:?}"
    );
    assert!(acts.contains(&"org.members_dropped".to_owned()), "{acts:?}");
    assert_eq!(acts.iter().filter(|a| *a == "member.erased").count(), 24);

    // The operator confirms with the slug; nothing is left to drop but the kept two.
    let r = app
        .post(
            "/api/v1/orgs/acme/members/drop",
            OPERATOR,
            json!({"confirm": "acme"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let job = finished_job(&app, "acme", OPERATOR, r.body["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // The operator keeps only the owner.
    assert_eq!(job["result"]["dropped"], 1, "{job}");
}

#[tokio::test]
async fn dropping_members_is_refused_in_a_managed_org() {
    let app = spawn_app().await;
    let (admin, _scim) = app.scim_org("acme").await;
    let before = app.snapshot("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members/drop",
            &admin,
            json!({"confirm": "owner@acme.example"}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "integration_managed", "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/acme/members/drop",
            OPERATOR,
            json!({"confirm": "acme"}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(app.snapshot("acme").await, before);
    // Unknown fields and missing confirmation are bad requests.
    let r = app
        .post(
            "/api/v1/orgs/acme/members/drop",
            &admin,
            json!({"confirm": "x", "force": true}),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
}

#[tokio::test]
async fn a_job_whose_process_died_is_marked_failed() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let org = app.org_id("acme").await;
    // A running job whose runner is gone: its lease is never renewed.
    let now = rosterd::clock::Clock::now(&app.clock);
    let id = uuid::Uuid::now_v7();
    let mut tx = app.store.write().await.unwrap();
    rosterd::store::jobs::insert(
        &mut tx,
        &rosterd::store::jobs::JobRow {
            id,
            org_id: org,
            kind: "members.export".into(),
            status: "queued".into(),
            params: "{}".into(),
            progress: 0,
            total: None,
            result: None,
            error: None,
            actor_kind: "operator".into(),
            actor_id: None,
            actor_label: "operator token".into(),
            created_at: now,
            started_at: None,
            finished_at: None,
            lease_until: None,
        },
    )
    .await
    .unwrap();
    // Claimed elsewhere (a process that then died) before this one's worker could.
    let claimed =
        rosterd::store::jobs::claim(&mut tx, id, now, now + chrono::Duration::seconds(60))
            .await
            .unwrap();
    assert!(claimed.is_some());
    tx.commit().await.unwrap();
    let r = app
        .get(&format!("/api/v1/orgs/acme/jobs/{id}"), &admin)
        .await;
    assert_eq!(r.body["status"], "running", "{}", r.text);
    app.clock.advance(chrono::Duration::seconds(61));
    let job = finished_job(&app, "acme", &admin, &id.to_string()).await;
    assert_eq!(job["status"], "failed");
    assert!(
        job["error"].as_str().unwrap().contains("interrupted"),
        "{job}"
    );
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    r.records()
        .map(|x| x.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

async fn seed_export(app: &TestApp, admin: &str) -> String {
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            admin,
            json!({"members": [
                {"email": "ada@acme.example", "given_name": "Ada", "family_name": "Lovelace"},
                {"email": "evil@acme.example", "display_name": "=cmd|' /C calc'!A0"}
            ]}),
        )
        .await;
    let ada = r.body["results"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    put(
        app,
        &format!("/api/v1/orgs/acme/members/{ada}/phones"),
        admin,
        json!({"phones": [{"type": "work", "value": "+1 555 0100"}, {"value": "+1 555 0101"}]}),
    )
    .await;
    let r = app
        .post("/api/v1/orgs/acme/groups", admin, json!({"name": "Crew"}))
        .await;
    let g = r.body["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/orgs/acme/groups/{g}/members"),
        admin,
        json!({"member_ids": [ada]}),
    )
    .await;
    ada
}

#[tokio::test]
async fn export_columns_and_zip() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    seed_export(&app, &admin).await;

    // Default: today's columns.
    let r = app.get("/api/v1/orgs/acme/members/export", &admin).await;
    assert_eq!(r.status, 200);
    let rows = csv_rows(&r.text);
    assert_eq!(rows[0].len(), 11, "{:?}", rows[0]);

    let r = app
        .get(
            "/api/v1/orgs/acme/members/export?columns=emails,phones,groups",
            &admin,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = csv_rows(&r.text);
    assert_eq!(
        rows[0],
        [
            "Member email",
            "Login email",
            "Contact email",
            "Phones",
            "Groups"
        ]
    );
    let ada = rows.iter().find(|r| r[0] == "ada@acme.example").unwrap();
    assert_eq!(ada[3], "work:+1 555 0100; +1 555 0101");
    assert_eq!(ada[4], "Crew");
    let r = app
        .get("/api/v1/orgs/acme/members/export?columns=basics", &admin)
        .await;
    let rows = csv_rows(&r.text);
    assert_eq!(
        rows[0],
        ["Name", "Access", "Role", "Activity date", "Added date"]
    );
    assert!(
        rows.iter().any(|r| r[0] == "'=cmd|' /C calc'!A0"),
        "{rows:?}"
    );

    // Unknown column group or format: 400 naming it; another org: 404.
    let r = app
        .get(
            "/api/v1/orgs/acme/members/export?columns=basics,salary",
            &admin,
        )
        .await;
    assert_problem(&r, 400);
    assert!(
        r.text.contains("salary") && r.text.contains("columns"),
        "{}",
        r.text
    );
    let r = app
        .get("/api/v1/orgs/acme/members/export?format=xlsx", &admin)
        .await;
    assert_problem(&r, 400);
    assert!(r.text.contains("xlsx"), "{}", r.text);
    let other = app.org_with_admin("other").await;
    let r = app.get("/api/v1/orgs/acme/members/export", &other).await;
    assert_problem(&r, 404);

    // A .zip holding the same CSV.
    let csv = app
        .get("/api/v1/orgs/acme/members/export?columns=basics,emails,phones,groups,balances,payments", &admin)
        .await
        .text;
    let res = app
        .client
        .get(app.url("/api/v1/orgs/acme/members/export?columns=basics,emails,phones,groups,balances,payments&format=zip"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("acme-members.zip")
    );
    let bytes = res.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(zip.len(), 1);
    let mut inner = String::new();
    let mut f = zip.by_index(0).unwrap();
    assert_eq!(f.name().unwrap(), "acme-members.csv");
    f.read_to_string(&mut inner).unwrap();
    assert_eq!(inner, csv);
}

#[tokio::test]
async fn export_jobs_store_a_file_that_expires() {
    // The worker stays asleep: the test runs the job itself, to see it queued first.
    let app = spawn_with(Mail::Files, |c| c.jobs.poll_interval_ms = 3_600_000).await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    seed_export(&app, &admin).await;

    let r = app
        .post(
            "/api/v1/orgs/acme/exports",
            &admin,
            json!({"columns": "nope"}),
        )
        .await;
    assert_problem(&r, 400);
    assert!(r.text.contains("nope"), "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/acme/exports",
            &admin,
            json!({"columns": "basics,phones", "format": "zip"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["status"], "queued");
    let download = format!("/api/v1/orgs/acme/exports/{id}/download");
    let r = app.get(&download, &admin).await;
    assert_problem(&r, 409);
    assert!(r.text.contains("queued"), "{}", r.text);

    let settings = rosterd::roster::jobs::JobSettings::from_config(&app.state.config);
    assert!(app.state.roster.run_next_job(&settings).await.unwrap());
    let r = app
        .get(&format!("/api/v1/orgs/acme/exports/{id}"), &admin)
        .await;
    assert_eq!(r.body["status"], "succeeded", "{}", r.text);
    let url = r.body["download_url"].as_str().unwrap();
    assert!(url.ends_with(&download), "{url}");

    // Another org: 404, for the job and the download.
    assert_problem(&app.get(&download, &other).await, 404);
    assert_problem(
        &app.get(&format!("/api/v1/orgs/other/exports/{id}/download"), &other)
            .await,
        404,
    );
    assert_problem(
        &app.get(&format!("/api/v1/orgs/other/jobs/{id}"), &other)
            .await,
        404,
    );

    let res = app
        .client
        .get(app.url(&download))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let bytes = res.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut inner = String::new();
    zip.by_index(0).unwrap().read_to_string(&mut inner).unwrap();
    let rows = csv_rows(&inner);
    assert_eq!(
        rows[0],
        [
            "Name",
            "Access",
            "Role",
            "Activity date",
            "Added date",
            "Phones"
        ]
    );
    assert!(inner.contains("work:+1 555 0100"), "{inner}");
    let acts = actions(&app, &admin).await;
    assert!(
        acts.contains(&"members.export_requested".to_owned()),
        "{acts:?}"
    );

    // After the expiry: 410, and the worker's sweep purges the chunks.
    app.clock.advance(chrono::Duration::seconds(24 * 3600 + 1));
    let r = app.get(&download, &admin).await;
    assert_problem(&r, 410);
    app.state.roster.sweep_jobs().await.unwrap();
    let mut tx = app.store.read().await.unwrap();
    let f = rosterd::store::jobs::file(&mut tx, app.org_id("acme").await, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(f.purged_at.is_some());
    assert!(
        rosterd::store::jobs::chunk(&mut tx, f.org_id, f.job_id, 0)
            .await
            .unwrap()
            .is_none()
    );
    tx.rollback().await.unwrap();
    assert_problem(&app.get(&download, &admin).await, 410);
}

#[tokio::test]
async fn the_cli_drops_members_and_exports_with_options() {
    let cli = Cli::new().await;
    let store = rosterd::store::Store::connect(&cli.url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let roster = rosterd::roster::Roster::new(
        store,
        std::sync::Arc::new(rosterd::clock::SystemClock),
        rosterd::roster::InviteSettings::from_config(&rosterd::config::Config::default()),
    );
    let (code, _, err) = cli
        .run(&[
            "org",
            "create",
            "demo",
            "--name",
            "Demo",
            "--owner-email",
            "owner@demo.example",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let org = roster.org_by_slug("demo").await.unwrap().unwrap();
    roster
        .add_members(
            org.id,
            &rosterd::roster::Actor::Cli,
            vec![rosterd::roster::NewMember {
                email: "ada@demo.example".into(),
                given_name: Some("Augusta".into()),
                ..Default::default()
            }],
        )
        .await
        .unwrap();

    let (code, out, err) = cli
        .run(&[
            "export",
            "--org",
            "demo",
            "--columns",
            "emails",
            "--format",
            "csv",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Member email,Login email,Contact email"),
        "{out}"
    );
    let (code, _, err) = cli
        .run(&["export", "--org", "demo", "--columns", "bogus"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("bogus"), "{err}");

    let (code, _, err) = cli
        .run(&[
            "drop-members",
            "--org",
            "demo",
            "--confirm",
            "owner@demo.example",
        ])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("confirm"), "{err}");
    let (code, out, err) = cli
        .run(&["drop-members", "--org", "demo", "--confirm", "demo"])
        .await;
    assert_eq!(code, 0, "{err}");
    let job: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["result"]["dropped"], 1);
    let (code, out, _) = cli
        .run(&["job", "--org", "demo", job["id"].as_str().unwrap()])
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("members.drop"), "{out}");
    let (_, out, _) = cli.run(&["export", "--org", "demo"]).await;
    assert!(!out.contains("ada@demo.example"), "{out}");
    assert!(out.contains("owner@demo.example"), "{out}");
    roster.store.close().await;
}

#[tokio::test]
async fn a_second_drop_while_one_is_queued_is_refused() {
    // The worker stays asleep, so the first drop stays queued.
    let app = spawn_with(Mail::Files, |c| c.jobs.poll_interval_ms = 3_600_000).await;
    let admin = app.org_with_admin("acme").await;
    app.add("acme", &admin, &["ada@acme.example"]).await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members/drop",
            OPERATOR,
            json!({"confirm": "acme"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["status"], "queued");
    let r = app
        .post(
            "/api/v1/orgs/acme/members/drop",
            OPERATOR,
            json!({"confirm": "acme"}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "job_in_progress", "{}", r.text);
    let settings = rosterd::roster::jobs::JobSettings::from_config(&app.state.config);
    assert!(app.state.roster.run_next_job(&settings).await.unwrap());
    let r = app
        .post(
            "/api/v1/orgs/acme/members/drop",
            OPERATOR,
            json!({"confirm": "acme"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
}
