//! What refusals say: long offending values are cut in import error rows, bodies over the
//! limit, JSON values of the wrong type and NUL characters get problem bodies naming the place.

use reqwest::Method;
use rosterd::store;
use serde_json::{Value, json};

use crate::helpers::*;

async fn upload(app: &TestApp, token: &str, body: Vec<u8>) -> Res {
    let r = app
        .client
        .post(app.url("/api/v1/orgs/acme/imports?filename=people.csv"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Res {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

#[tokio::test]
async fn a_huge_bad_cell_is_cut_in_the_import_error_rows() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let cell = "x".repeat(1_000_000);
    let csv = format!("email,first_name\r\nann@acme.example,Ann\r\n{cell},Bo\r\n");
    let r = upload(&app, &admin, csv.into_bytes()).await;
    assert_eq!(r.status, 201, "{:.500}", r.text);
    assert_eq!(r.body["status"], "invalid", "{:.500}", r.text);
    assert!(
        r.text.len() < 10_000,
        "the job answer is {} bytes",
        r.text.len()
    );
    let row = &r.body["error_rows"][0];
    let value = row["value"].as_str().unwrap();
    assert!(value.ends_with('…'), "{value}");
    assert!(value.chars().count() <= 201, "{}", value.len());
    assert!(value.starts_with("xxxx"), "{value}");
    let id = r.body["id"].as_str().unwrap();
    let csv = app
        .get(
            &format!("/api/v1/orgs/acme/imports/{id}/errors.csv"),
            &admin,
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.text.len() < 10_000,
        "errors.csv is {} bytes",
        csv.text.len()
    );
    // And the database keeps only the cut value.
    let mut tx = app.store.read().await.unwrap();
    let rows = store::sync::errors(&mut tx, id.parse().unwrap(), 0, 10)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        rows.iter()
            .all(|e| e.value.as_deref().unwrap_or("").len() < 1000 && e.message.len() < 5000),
        "{:.300?}",
        rows
    );
}

#[tokio::test]
async fn an_upload_over_the_import_limit_gets_a_problem() {
    let app = spawn_with(Mail::Log, |c| c.server.max_import_bytes = 4096).await;
    let admin = app.org_with_admin("acme").await;
    let mut csv = String::from("email\r\n");
    for i in 0..500 {
        csv.push_str(&format!("person{i}@acme.example\r\n"));
    }
    let r = upload(&app, &admin, csv.into_bytes()).await;
    assert_problem(&r, 413);
    assert_eq!(r.body["code"], "body_too_large", "{}", r.text);
    let list = app.get("/api/v1/orgs/acme/imports", &admin).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_value_of_the_wrong_type_names_its_field() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let id = app.add("acme", &admin, &["ada@acme.example"]).await[0];
    let before = app.snapshot("acme").await;
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{id}"),
            &admin,
            json!({"role": 1}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["code"], "invalid_body", "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "role", "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "b@acme.example"}, {"email": "c@acme.example", "role": 1}]}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(
        r.body["errors"][0]["field"], "members[1].role",
        "{}",
        r.text
    );
    // Broken JSON says where.
    let r = app
        .client
        .post(app.url("/api/v1/orgs/acme/members"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"members\": [\n  {\"email\": }]}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "malformed_json", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("line 2"),
        "{body}"
    );
    assert_eq!(app.snapshot("acme").await, before);
}

#[tokio::test]
async fn a_nul_in_any_admin_api_string_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let before = app.snapshot("acme").await;
    for (path, field) in [
        ("/api/v1/orgs/acme/runs?source=a%00b", "source"),
        ("/api/v1/orgs/acme/imports?source=%00", "source"),
        ("/api/v1/orgs/acme/audit?cursor=%00", "cursor"),
        ("/api/v1/orgs/acme/members?q=a%00", "q"),
        ("/api/v1/orgs/acme/runs/%00", "id"),
        ("/api/v1/orgs/acme/sources/a%00", "name"),
    ] {
        let r = app.get(path, &admin).await;
        assert_problem(&r, 400);
        assert_eq!(r.body["errors"][0]["field"], field, "{path}: {}", r.text);
        assert!(r.text.contains("NUL"), "{path}: {}", r.text);
        assert!(!r.text.contains("0x00"), "{path}: {}", r.text);
    }
    for (method, path, body, field) in [
        (
            Method::POST,
            "/api/v1/orgs/acme/members",
            json!({"members": [{"email": "a@acme.example", "family_name": "B\u{0}"}]}),
            "members[0].family_name",
        ),
        (
            Method::POST,
            "/api/v1/invitations/accept",
            json!({"token": "abc\u{0}"}),
            "token",
        ),
    ] {
        let r = app.call(method, path, Some(&admin), Some(body)).await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field, "{path}: {}", r.text);
    }
    assert_eq!(app.snapshot("acme").await, before);
}
