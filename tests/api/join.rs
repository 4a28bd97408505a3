//! The public join page: settings, the request and its verification email, the member it makes
//! or the application an admin approves or declines; every refusal changes nothing.

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Mail, OPERATOR, Res, TestApp, assert_problem, spawn_app, spawn_with};

async fn put_join(app: &TestApp, org: &str, token: &str, body: Value) -> Res {
    app.call(
        Method::PUT,
        &format!("/api/v1/orgs/{org}/join"),
        Some(token),
        Some(body),
    )
    .await
}

async fn open_page(app: &TestApp, org: &str, token: &str, body: Value) {
    let r = put_join(app, org, token, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn ask(app: &TestApp, slug: &str, body: Value) -> Res {
    app.call(
        Method::POST,
        &format!("/api/v1/join/{slug}"),
        None,
        Some(body),
    )
    .await
}

async fn verify(app: &TestApp, token: &str) -> Res {
    app.call(
        Method::POST,
        "/api/v1/join/verify",
        None,
        Some(json!({"token": token})),
    )
    .await
}

/// The token of the verification link in the email delivered to `email`.
async fn verification_token(app: &TestApp, org: &str, email: &str) -> String {
    let text = app.delivered_email(org, email).await;
    let start = text
        .find("/join/verify/")
        .expect("verification link in the email")
        + "/join/verify/".len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(!token.is_empty(), "{text}");
    token
}

async fn member(app: &TestApp, org: &str, token: &str, email: &str) -> Option<Value> {
    let r = app.get(&format!("/api/v1/orgs/{org}/members"), token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member_email"] == email)
        .cloned()
}

async fn actions(app: &TestApp, org: &str, token: &str) -> Vec<String> {
    let r = app.get(&format!("/api/v1/orgs/{org}/audit"), token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn applications(app: &TestApp, org: &str, token: &str, status: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/v1/orgs/{org}/applications?status={status}"),
            token,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

fn questions() -> Value {
    json!([
        {"id": "why", "label": "Why do you want to join?", "kind": "long_text", "required": true},
        {"id": "team", "label": "Team", "kind": "single_choice", "options": ["Red", "Blue"], "required": true},
        {"id": "nick", "label": "Nickname", "kind": "short_text"},
        {"id": "adult", "label": "Are you 18 or older?", "kind": "yes_no", "required": true}
    ])
}

fn answers() -> Value {
    json!({"why": "To help.\nAnd learn.", "team": "Blue", "adult": true})
}

#[tokio::test]
async fn join_settings_are_validated_kept_and_private_to_the_org() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("globex").await;

    let r = app.get("/api/v1/orgs/acme/join", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["enabled"], false);

    let before = app.get("/api/v1/orgs/acme/join", &admin).await.body;
    let bad = [
        (json!({"enabled": true}), "slug"),
        (json!({"enabled": true, "slug": "Not A Slug"}), "slug"),
        (json!({"enabled": true, "slug": "verify"}), "slug"),
        (
            json!({"enabled": true, "slug": "acme", "allowed_domains": ["acme"]}),
            "allowed_domains[0]",
        ),
        (
            json!({"enabled": true, "slug": "acme", "allowed_emails": ["nobody"]}),
            "allowed_emails[0]",
        ),
        (
            json!({"enabled": true, "slug": "acme", "questions": [{"id": "a", "label": "A", "kind": "single_choice"}]}),
            "questions[0].options",
        ),
        (
            json!({"enabled": true, "slug": "acme", "questions": [
                {"id": "a", "label": "A", "kind": "yes_no"}, {"id": "a", "label": "B", "kind": "yes_no"}]}),
            "questions[1].id",
        ),
        (
            json!({"enabled": true, "slug": "acme", "questions": [{"id": "A b", "label": "A", "kind": "yes_no"}]}),
            "questions[0].id",
        ),
    ];
    for (body, field) in bad {
        let r = put_join(&app, "acme", &admin, body.clone()).await;
        assert_problem(&r, 422);
        let fields: Vec<&str> = r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{body} → {}", r.text);
    }
    let r = put_join(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme", "kind": 1}),
    )
    .await;
    assert_problem(&r, 422);
    assert_eq!(app.get("/api/v1/orgs/acme/join", &admin).await.body, before);

    let r = put_join(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "join-acme", "allowed_domains": ["@Acme.Example", "acme.example"],
               "allowed_emails": ["Guest@Else.Example"], "require_approval": true, "questions": questions()}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["allowed_domains"], json!(["acme.example"]));
    assert_eq!(r.body["allowed_emails"], json!(["guest@else.example"]));
    let got = app.get("/api/v1/orgs/acme/join", &admin).await;
    assert_eq!(got.body, r.body);
    assert!(
        actions(&app, "acme", &admin)
            .await
            .contains(&"join.settings_updated".to_owned())
    );

    // The join slug is one namespace across orgs.
    let r = put_join(
        &app,
        "globex",
        &other,
        json!({"enabled": true, "slug": "join-acme"}),
    )
    .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "slug_taken");
    // Another org's admin sees nothing of it.
    assert_problem(&app.get("/api/v1/orgs/acme/join", &other).await, 404);
    assert_problem(
        &put_join(&app, "acme", &other, json!({"enabled": false})).await,
        404,
    );
}

#[tokio::test]
async fn a_verified_request_makes_an_enrolled_member_and_a_link_works_once() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme-club", "allowed_domains": ["acme.example"], "questions": questions()}),
    )
    .await;

    let r = ask(
        &app,
        "acme-club",
        json!({"email": "Ada@Acme.Example", "given_name": "Ada", "family_name": "Lovelace", "answers": answers()}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    // Not a member before the address is verified.
    assert!(
        member(&app, "acme", &admin, "Ada@Acme.Example")
            .await
            .is_none()
    );

    let token = verification_token(&app, "acme", "ada@acme.example").await;
    // The outbox keeps no usable link once the email is sent.
    let row = app
        .outbox("acme")
        .await
        .into_iter()
        .find(|r| r.kind == "join_verify")
        .unwrap();
    assert!(row.link_token.is_none() && !row.body.contains(&token));

    let r = verify(&app, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "joined");
    let m = member(&app, "acme", &admin, "Ada@Acme.Example")
        .await
        .expect("a member now");
    assert_eq!(m["access"], "enrolled");
    assert_eq!(m["role"], "member");
    assert_eq!(m["given_name"], "Ada");
    assert_eq!(m["family_name"], "Lovelace");
    let joined = applications(&app, "acme", &admin, "joined").await;
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0]["answers"]["team"], "Blue");
    assert_eq!(joined[0]["answers"]["adult"], true);

    // Single use.
    let before = app.snapshot("acme").await;
    assert_problem(&verify(&app, &token).await, 410);
    assert_eq!(app.snapshot("acme").await, before);

    let log = actions(&app, "acme", &admin).await;
    for a in ["join.requested", "join.verified", "member.joined"] {
        assert!(log.contains(&a.to_owned()), "{a} in {log:?}");
    }
}

#[tokio::test]
async fn a_member_address_gets_the_same_answer_and_an_invited_member_is_enrolled() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme"}),
    )
    .await;

    // The owner (invited when the org was made) and a stranger get the same answer.
    let owner = ask(&app, "acme", json!({"email": "owner@acme.example"})).await;
    let stranger = ask(&app, "acme", json!({"email": "new@else.example"})).await;
    assert_eq!(owner.status, 202, "{}", owner.text);
    assert_eq!(owner.status, stranger.status);
    assert_eq!(owner.body, stranger.body);

    let id = member(&app, "acme", &admin, "owner@acme.example")
        .await
        .unwrap()["id"]
        .clone();
    let token = verification_token(&app, "acme", "owner@acme.example").await;
    let r = verify(&app, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = member(&app, "acme", &admin, "owner@acme.example")
        .await
        .unwrap();
    assert_eq!(
        m["id"], id,
        "the invited member is enrolled, not a second one"
    );
    assert_eq!(m["access"], "enrolled");
    assert_eq!(m["role"], "owner");

    // Once enrolled, a second verified request is a conflict and changes nothing.
    let r = ask(&app, "acme", json!({"email": "owner@acme.example"})).await;
    assert_eq!(r.status, 202);
    let token = wait_second_token(&app, "acme", "owner@acme.example").await;
    let before = app.snapshot("acme").await;
    let r = verify(&app, &token).await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "already_member");
    assert_eq!(app.snapshot("acme").await, before);
}

/// The token of the newest verification email to `email` (after an earlier one).
async fn wait_second_token(app: &TestApp, org: &str, email: &str) -> String {
    crate::helpers::wait_for(10, "the second verification email", || async {
        app.outbox(org)
            .await
            .iter()
            .filter(|r| r.kind == "join_verify" && r.to_address == email && r.sent_at.is_some())
            .count()
            >= 2
    })
    .await;
    verification_token(app, org, email).await
}

#[tokio::test]
async fn every_refused_request_says_why_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme", "allowed_domains": ["acme.example"],
               "allowed_emails": ["guest@else.example"], "questions": questions()}),
    )
    .await;
    let before = app.snapshot("acme").await;

    let field_of = |r: &Res| -> Vec<String> {
        r.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let cases = [
        (
            json!({"email": "eve@evil.example", "answers": answers()}),
            "email",
        ),
        (
            json!({"email": "not an email", "answers": answers()}),
            "email",
        ),
        (json!({"email": "a@acme.example"}), "answers.why"),
        (
            json!({"email": "a@acme.example", "answers": {"why": "x", "team": "Green", "adult": true}}),
            "answers.team",
        ),
        (
            json!({"email": "a@acme.example", "answers": {"why": "x", "team": "Red", "adult": "yes"}}),
            "answers.adult",
        ),
        (
            json!({"email": "a@acme.example", "answers": {"why": "x", "team": "Red", "adult": true, "age": 3}}),
            "answers.age",
        ),
        (
            json!({"email": "a@acme.example", "answers": {"why": "x", "team": "Red", "adult": true, "nick": "n".repeat(201)}}),
            "answers.nick",
        ),
        (
            json!({"email": "a@acme.example", "answers": {"why": "x", "team": "Red", "adult": true, "nick": "a\nb"}}),
            "answers.nick",
        ),
        (
            json!({"email": "a@acme.example", "answers": {"why": 5, "team": "Red", "adult": true}}),
            "answers.why",
        ),
    ];
    for (body, field) in cases {
        let r = ask(&app, "acme", body.clone()).await;
        assert_problem(&r, 422);
        assert!(
            field_of(&r).contains(&field.to_owned()),
            "{body} → {}",
            r.text
        );
    }
    assert_eq!(app.snapshot("acme").await, before);

    // Unknown page, and a closed one: not found.
    assert_problem(
        &ask(&app, "nope", json!({"email": "a@acme.example"})).await,
        404,
    );
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": false, "slug": "acme"}),
    )
    .await;
    let before = app.snapshot("acme").await;
    let r = ask(
        &app,
        "acme",
        json!({"email": "a@acme.example", "answers": answers()}),
    )
    .await;
    assert_problem(&r, 404);
    // A wrong token is not found; a malformed one is refused as such.
    assert_problem(&verify(&app, "abcdefabcdefabcdefabcdef").await, 404);
    assert_problem(&verify(&app, "").await, 400);
    let r = app
        .call(
            Method::POST,
            "/api/v1/join/verify",
            None,
            Some(json!({"token": "x", "extra": 1})),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(app.snapshot("acme").await, before);
}

#[tokio::test]
async fn an_exact_address_is_let_in_and_an_expired_link_is_refused() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme", "allowed_domains": ["acme.example"], "allowed_emails": ["guest@else.example"]}),
    )
    .await;
    let r = ask(&app, "acme", json!({"email": "GUEST@else.example"})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let token = verification_token(&app, "acme", "guest@else.example").await;
    app.clock.advance(Duration::hours(24));
    let before = app.snapshot("acme").await;
    let r = verify(&app, &token).await;
    assert_problem(&r, 410);
    assert!(
        r.body["detail"].as_str().unwrap().contains("expired"),
        "{}",
        r.text
    );
    assert_eq!(app.snapshot("acme").await, before);
    assert!(
        member(&app, "acme", &admin, "GUEST@else.example")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn turning_the_page_off_breaks_pending_verifications_at_once() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme"}),
    )
    .await;
    assert_eq!(
        ask(&app, "acme", json!({"email": "a@x.example"}))
            .await
            .status,
        202
    );
    let token = verification_token(&app, "acme", "a@x.example").await;

    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": false, "slug": "acme"}),
    )
    .await;
    let r = verify(&app, &token).await;
    assert_problem(&r, 410);
    assert!(
        r.body["detail"].as_str().unwrap().contains("closed"),
        "{}",
        r.text
    );
    // Opening it again does not bring the old request back.
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme"}),
    )
    .await;
    assert_problem(&verify(&app, &token).await, 410);
    assert!(member(&app, "acme", &admin, "a@x.example").await.is_none());
    assert_eq!(applications(&app, "acme", &admin, "void").await.len(), 1);
}

#[tokio::test]
async fn the_email_of_a_page_turned_off_before_delivery_is_never_sent() {
    // The SMTP relay refuses every connection: the email waits in the outbox, unsent, however
    // soon the delivery worker is woken.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_with(Mail::Smtp(closed), |c| c.mail.poll_interval_ms = 3_600_000).await;
    let admin = app.org_with_admin("acme").await;
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme"}),
    )
    .await;
    assert_eq!(
        ask(&app, "acme", json!({"email": "a@x.example"}))
            .await
            .status,
        202
    );
    let row = |rows: Vec<rosterd::store::outbox::OutboxRow>| {
        rows.into_iter().find(|r| r.kind == "join_verify").unwrap()
    };
    let queued = row(app.outbox("acme").await);
    assert!(queued.link_token.is_some() && queued.sent_at.is_none());
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": false, "slug": "acme"}),
    )
    .await;
    let after = row(app.outbox("acme").await);
    assert!(after.cancelled_at.is_some(), "{after:?}");
    assert!(after.link_token.is_none(), "the token is wiped");
}

#[tokio::test]
async fn applications_are_approved_or_declined_and_the_applicant_is_told() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("globex").await;
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme", "require_approval": true, "questions": questions()}),
    )
    .await;
    for who in ["ann@x.example", "bob@x.example"] {
        let r = ask(
            &app,
            "acme",
            json!({"email": who, "given_name": "Pat", "answers": answers()}),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    // Unverified requests are not applications yet.
    assert!(
        applications(&app, "acme", &admin, "pending")
            .await
            .is_empty()
    );
    for who in ["ann@x.example", "bob@x.example"] {
        let token = verification_token(&app, "acme", who).await;
        let r = verify(&app, &token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "pending");
    }
    assert!(
        member(&app, "acme", &admin, "ann@x.example")
            .await
            .is_none()
    );
    let pending = applications(&app, "acme", &admin, "pending").await;
    assert_eq!(pending.len(), 2);
    let dash = app.get("/api/v1/orgs/acme/dashboard", &admin).await;
    assert_eq!(dash.body["pending_applications"], 2, "{}", dash.text);
    assert_eq!(pending[0]["answers"]["why"], "To help.\nAnd learn.");
    let ann = pending
        .iter()
        .find(|a| a["email"] == "ann@x.example")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = pending
        .iter()
        .find(|a| a["email"] == "bob@x.example")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another org's admin cannot see or decide them.
    assert!(
        applications(&app, "globex", &other, "pending")
            .await
            .is_empty()
    );
    assert_problem(
        &app.post(
            &format!("/api/v1/orgs/globex/applications/{ann}/approve"),
            &other,
            json!({}),
        )
        .await,
        404,
    );
    assert_problem(
        &app.post(
            &format!("/api/v1/orgs/acme/applications/{ann}/approve"),
            &other,
            json!({}),
        )
        .await,
        404,
    );
    assert_problem(
        &app.post(
            "/api/v1/orgs/acme/applications/nope/approve",
            &admin,
            json!({}),
        )
        .await,
        404,
    );
    assert_problem(
        &app.get("/api/v1/orgs/acme/applications?status=maybe", &admin)
            .await,
        422,
    );

    let r = app
        .post(
            &format!("/api/v1/orgs/acme/applications/{ann}/approve"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "approved");
    let m = member(&app, "acme", &admin, "ann@x.example").await.unwrap();
    assert_eq!(m["access"], "enrolled");
    assert_eq!(r.body["member_id"], m["id"]);
    assert!(
        wait_outcome(&app, "ann@x.example", "join_approved")
            .await
            .contains("approved")
    );

    // A reason too long is refused; a decided application cannot be decided again.
    let before = app.snapshot("acme").await;
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/applications/{bob}/decline"),
            &admin,
            json!({"reason": "x".repeat(1001)}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "reason");
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/applications/{ann}/decline"),
            &admin,
            json!({}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(app.snapshot("acme").await, before);

    let r = app
        .post(
            &format!("/api/v1/orgs/acme/applications/{bob}/decline"),
            &admin,
            json!({"reason": "We are full this season."}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "declined");
    assert!(
        member(&app, "acme", &admin, "bob@x.example")
            .await
            .is_none()
    );
    let mail = wait_outcome(&app, "bob@x.example", "join_declined").await;
    assert!(
        mail.contains("declined") && mail.contains("We are full this season."),
        "{mail}"
    );
    assert_eq!(
        applications(&app, "acme", &admin, "declined").await.len(),
        1
    );
    assert!(
        applications(&app, "acme", &admin, "pending")
            .await
            .is_empty()
    );

    let log = actions(&app, "acme", &admin).await;
    for a in [
        "application.submitted",
        "application.approved",
        "application.declined",
        "member.joined",
    ] {
        assert!(log.contains(&a.to_owned()), "{a} in {log:?}");
    }
}

/// The delivered outcome email of `kind` to `email`.
async fn wait_outcome(app: &TestApp, email: &str, kind: &str) -> String {
    crate::helpers::wait_for(10, kind, || async {
        app.outbox("acme")
            .await
            .iter()
            .any(|r| r.kind == kind && r.to_address == email && r.sent_at.is_some())
    })
    .await;
    app.delivered_email("acme", email).await
}

#[tokio::test]
async fn guessing_verification_tokens_is_rate_limited() {
    let app = spawn_with(Mail::Files, |c| c.server.auth_failures_per_minute = 3).await;
    let admin = app.org_with_admin("acme").await;
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme"}),
    )
    .await;
    assert_eq!(
        ask(&app, "acme", json!({"email": "a@x.example"}))
            .await
            .status,
        202
    );
    let token = verification_token(&app, "acme", "a@x.example").await;
    let mut last = 0;
    for i in 0..5 {
        last = verify(&app, &format!("wrong-token-{i}"))
            .await
            .status
            .as_u16();
    }
    assert_eq!(last, 429);
    // Over budget, even the right token is not looked at.
    let r = verify(&app, &token).await;
    assert_problem(&r, 429);
    assert!(member(&app, "acme", &admin, "a@x.example").await.is_none());
}

/// Each request to join spends budget before anything is queued: the request that finds the
/// client over its budget answers 429 and no email is queued for it.
#[tokio::test]
async fn a_request_over_budget_is_refused_before_any_email() {
    let app = spawn_with(Mail::Files, |c| c.server.auth_failures_per_minute = 3).await;
    let admin = app.org_with_admin("acme").await;
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme"}),
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let email = format!("p{i}@x.example");
        statuses.push(
            ask(&app, "acme", json!({ "email": email }))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [202, 202, 202, 429]);
    let queued: Vec<String> = app
        .outbox("acme")
        .await
        .into_iter()
        .filter(|r| r.kind == "join_verify")
        .map(|r| r.to_address)
        .collect();
    assert_eq!(queued.len(), 3, "{queued:?}");
    assert!(!queued.iter().any(|a| a == "p3@x.example"), "{queued:?}");
}

/// Runs the `rosterd` binary against the app's database.
async fn rosterd(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!("rosterd-join-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("rosterd.toml");
    std::fs::write(&config, "").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rosterd"))
        .arg("--config")
        .arg(&config)
        .args(["--database-url", &app.state.config.database.url])
        .args(args)
        .env_remove("ROSTERD_DATABASE_URL")
        .env_remove("ROSTERD_CONFIG")
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_command_line_lists_approves_and_declines_applications() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme", "require_approval": true}),
    )
    .await;
    for who in ["ann@x.example", "bob@x.example"] {
        assert_eq!(
            ask(&app, "acme", json!({"email": who, "given_name": "Pat"}))
                .await
                .status,
            202
        );
        let token = verification_token(&app, "acme", who).await;
        assert_eq!(verify(&app, &token).await.status, 200);
    }

    let (code, out, err) = rosterd(&app, &["applications", "list", "--org", "acme"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let id_of = |email: &str| {
        lines
            .iter()
            .find(|l| l.contains(email))
            .unwrap()
            .split('\t')
            .next()
            .unwrap()
            .to_owned()
    };
    let (ann, bob) = (id_of("ann@x.example"), id_of("bob@x.example"));
    assert!(lines.iter().all(|l| l.ends_with("\tpending")), "{out}");

    let (code, out, err) = rosterd(
        &app,
        &["applications", "approve", "--org", "acme", &ann, "--json"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let approved: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(approved["status"], "approved");
    assert_eq!(
        member(&app, "acme", &admin, "ann@x.example").await.unwrap()["access"],
        "enrolled"
    );

    let (code, _, err) = rosterd(
        &app,
        &[
            "applications",
            "decline",
            "--org",
            "acme",
            &bob,
            "--reason",
            "Full.",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // Queued at the command line's (real) time, not the app's test clock: read from the outbox.
    let mail = app
        .outbox("acme")
        .await
        .into_iter()
        .find(|r| r.kind == "join_declined")
        .expect("the outcome email is queued");
    assert_eq!(mail.to_address, "bob@x.example");
    assert!(mail.body.contains("Full."), "{}", mail.body);

    // Deciding again, or an application of another org, fails with a message.
    let (code, _, err) = rosterd(&app, &["applications", "approve", "--org", "acme", &bob]).await;
    assert_eq!(code, 1);
    assert!(err.contains("already declined"), "{err}");
    app.org_with_admin("globex").await;
    let (code, _, err) = rosterd(&app, &["applications", "decline", "--org", "globex", &ann]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
    let (code, out, _) = rosterd(&app, &["applications", "list", "--org", "acme"]).await;
    assert_eq!(code, 0);
    assert!(out.is_empty(), "{out}");
}

#[tokio::test]
async fn an_integration_managed_org_admits_nobody_through_the_page() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme", "require_approval": true}),
    )
    .await;
    assert_eq!(
        ask(&app, "acme", json!({"email": "ann@x.example"}))
            .await
            .status,
        202
    );
    let token = verification_token(&app, "acme", "ann@x.example").await;
    assert_eq!(verify(&app, &token).await.body["status"], "pending");
    let id = applications(&app, "acme", &admin, "pending").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": "Okta"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let before = app.snapshot("acme").await;
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/applications/{id}/approve"),
            &admin,
            json!({}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "integration_managed", "{}", r.text);
    let r = put_join(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme"}),
    )
    .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "integration_managed", "{}", r.text);
    assert_eq!(app.snapshot("acme").await, before);
    // Declining and turning the page off stay allowed.
    open_page(&app, "acme", &admin, json!({"enabled": false})).await;
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/applications/{id}/decline"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_removed_admin_comes_back_through_the_page_as_a_member() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "boss@acme.example", "role": "admin"}]}),
        )
        .await;
    let id = r.body["results"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            "/api/v1/orgs/acme/members/remove",
            &admin,
            json!({"member_ids": [id]}),
        )
        .await;
    assert_eq!(r.body["removed"], 1, "{}", r.text);
    open_page(
        &app,
        "acme",
        &admin,
        json!({"enabled": true, "slug": "acme-club"}),
    )
    .await;
    let r = ask(&app, "acme-club", json!({"email": "boss@acme.example"})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let token = verification_token(&app, "acme", "boss@acme.example").await;
    let r = verify(&app, &token).await;
    assert!(r.status.is_success(), "{}", r.text);
    let m = member(&app, "acme", &admin, "boss@acme.example")
        .await
        .unwrap();
    assert_eq!(m["access"], "enrolled", "{m}");
    assert_eq!(
        m["role"], "member",
        "an admin decides who is admin again: {m}"
    );
}
