//! Findings of a hostile review, each fixed: a NUL in an imported value is a row error on every
//! backend (never the database's text), a file of many bad rows keeps a bounded report, a
//! client's request id cannot forge log fields, and SCIM tokens are the operator's to revoke.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{OPERATOR, TestApp, assert_problem, spawn_app};

async fn upload(app: &TestApp, body: Vec<u8>) -> (u16, Value) {
    let r = app
        .client
        .post(app.url("/api/v1/orgs/acme/imports?filename=people.csv"))
        .bearer_auth(OPERATOR)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_nul_in_an_imported_value_is_a_row_error_and_the_report_holds_no_nul() {
    let app = spawn_app().await;
    app.org_with_admin("acme").await;
    let (status, job) = upload(
        &app,
        b"email,first_name\r\nz1@acme.example,Z\0Q\r\n".to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["status"], "invalid", "{job}");
    assert_eq!(job["counts"]["errors"], 1, "{job}");
    let id = job["id"].as_str().unwrap();
    let csv = app
        .get(
            &format!("/api/v1/orgs/acme/imports/{id}/errors.csv"),
            OPERATOR,
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(!csv.text.contains('\0'), "{:?}", csv.text);
    assert!(csv.text.contains("Z\u{FFFD}Q"), "{:?}", csv.text);
}

#[tokio::test]
async fn a_file_of_many_bad_rows_keeps_a_bounded_report_but_counts_them_all() {
    let app = spawn_app().await;
    app.org_with_admin("acme").await;
    let mut csv = String::from("email\r\n");
    for i in 0..1500 {
        csv.push_str(&format!("not-an-email-{i}\r\n"));
    }
    let (status, job) = upload(&app, csv.into_bytes()).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["counts"]["errors"], 1500, "{job}");
    assert!(
        job["warnings"].to_string().contains("keeps the first 1000"),
        "{job}"
    );
    let id = job["id"].as_str().unwrap();
    let report = app
        .get(
            &format!("/api/v1/orgs/acme/imports/{id}/errors.csv"),
            OPERATOR,
        )
        .await;
    assert_eq!(report.text.lines().count(), 1001, "a header and 1000 rows");
}

#[tokio::test]
async fn a_clients_request_id_is_kept_only_when_plain() {
    let app = spawn_app().await;
    for (sent, kept) in [
        ("abc-123_x.y:z", true),
        ("zzz method=DELETE path=/fake", false),
        ("a\"b", false),
    ] {
        let r = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", sent)
            .send()
            .await
            .unwrap();
        let echoed = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(echoed == sent, kept, "{sent:?} → {echoed:?}");
        assert!(!echoed.contains(' '), "{echoed:?}");
    }
}

#[tokio::test]
async fn only_the_operator_revokes_scim_tokens() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let t = app
        .post(
            "/api/v1/orgs/acme/tokens",
            OPERATOR,
            json!({"kind": "scim", "name": "Okta"}),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.text);
    let scim = t.body["token"].as_str().unwrap().to_owned();
    let id = t.body["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/orgs/acme/tokens/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_problem(&r, 403);
    let users = app
        .client
        .get(app.url("/scim/v2/Users"))
        .bearer_auth(&scim)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), 200, "the SCIM client still works");
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/orgs/acme/tokens/{id}"),
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let users = app
        .client
        .get(app.url("/scim/v2/Users"))
        .bearer_auth(&scim)
        .send()
        .await
        .unwrap();
    assert_eq!(
        users.status(),
        401,
        "the revoked SCIM token no longer works"
    );
}

#[tokio::test]
async fn erasure_reaches_money_notes_and_a_gone_member_gets_no_points_or_fee() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let id = app.add("acme", &admin, &["m1@acme.example"]).await[0];
    let post = |path: String, body: Value| {
        let admin = admin.clone();
        let app = &app;
        async move { app.post(&path, &admin, body).await }
    };
    let r = post(
        format!("/api/v1/orgs/acme/members/{id}/payments"),
        json!({"amount": 100, "currency": "EUR", "paid_on": "2020-01-01", "note": "m1@acme.example paid"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = post(
        "/api/v1/orgs/acme/points/moves".into(),
        json!({"kind": "pool_add", "amount": 10, "reason": "x", "idempotency_key": "p"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = post(
        "/api/v1/orgs/acme/points/moves".into(),
        json!({"kind": "give", "member_id": id, "amount": 1, "reason": "bonus for m1@acme.example", "idempotency_key": "g"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = post(format!("/api/v1/orgs/acme/members/{id}/erase"), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let payments = app
        .get(&format!("/api/v1/orgs/acme/members/{id}/payments"), &admin)
        .await;
    let ledger = app
        .get(
            &format!("/api/v1/orgs/acme/points/ledger?member_id={id}"),
            &admin,
        )
        .await;
    assert!(!payments.text.contains("m1@acme"), "{}", payments.text);
    assert!(!ledger.text.contains("m1@acme"), "{}", ledger.text);
    assert!(
        ledger.text.contains("\"amount\":1"),
        "amounts stay: {}",
        ledger.text
    );

    // A removed (here erased) member takes no new points and no fee; points can come back.
    let r = post(
        "/api/v1/orgs/acme/points/moves".into(),
        json!({"kind": "give", "member_id": id, "amount": 1, "reason": "x", "idempotency_key": "g2"}),
    )
    .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "member_gone", "{}", r.text);
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/orgs/acme/members/{id}/fee"),
            Some(&admin),
            Some(json!({"monthly_fee": 2500, "currency": "EUR"})),
        )
        .await;
    assert_problem(&r, 409);
    let r = post(
        "/api/v1/orgs/acme/points/moves".into(),
        json!({"kind": "take", "member_id": id, "amount": 1, "reason": "x", "idempotency_key": "t"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_managed_orgs_join_page_takes_no_requests_and_sends_no_mail() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .call(
            Method::PUT,
            "/api/v1/orgs/acme/join",
            Some(&admin),
            Some(json!({"enabled": true, "slug": "club"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": "Okta"}))
        .await;
    assert_eq!(r.status, 200);
    let before = app.outbox("acme").await.len();
    let r = app
        .call(
            Method::POST,
            "/api/v1/join/club",
            None,
            Some(json!({"email": "late@z.example"})),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "integration_managed", "{}", r.text);
    assert_eq!(app.outbox("acme").await.len(), before, "no email goes out");
}
