//! Automatic reminders, driven by the manual clock (no sleeping).

use chrono::Duration;
use serde_json::json;

use crate::helpers::*;

async fn emails_to(app: &TestApp, addr: &str) -> Vec<String> {
    app.outbox("acme")
        .await
        .into_iter()
        .filter(|r| r.to_address == addr)
        .map(|r| r.kind)
        .collect()
}

#[tokio::test]
async fn two_reminders_one_week_apart_while_invited() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add("acme", &admin, &["slow@acme.example", "quick@acme.example"])
        .await;
    app.accept("acme", "quick@acme.example", None).await;
    assert_eq!(emails_to(&app, "slow@acme.example").await, ["invite"]);

    // Six days on: nothing yet.
    app.clock.advance(Duration::days(6));
    app.state.roster.send_due_reminders().await.unwrap();
    assert_eq!(emails_to(&app, "slow@acme.example").await, ["invite"]);

    // A week after the invitation: the first reminder (the worker picks it up by itself).
    app.clock.advance(Duration::days(1));
    wait_for(10, "first reminder", || async {
        emails_to(&app, "slow@acme.example").await.len() == 2
    })
    .await;
    assert_eq!(
        emails_to(&app, "slow@acme.example").await,
        ["reminder", "invite"]
    );
    let m = app
        .get(&format!("/api/v1/orgs/acme/members/{}", ids[0]), &admin)
        .await;
    assert_eq!(m.body["invite_count"], 2);

    // Another week: the second reminder.
    app.clock.advance(Duration::days(7));
    wait_for(10, "second reminder", || async {
        emails_to(&app, "slow@acme.example").await.len() == 3
    })
    .await;

    // And never a third.
    app.clock.advance(Duration::days(7));
    app.state.roster.send_due_reminders().await.unwrap();
    app.clock.advance(Duration::days(30));
    app.state.roster.send_due_reminders().await.unwrap();
    assert_eq!(emails_to(&app, "slow@acme.example").await.len(), 3);
    // The enrolled member never got one.
    assert_eq!(emails_to(&app, "quick@acme.example").await, ["invite"]);

    // The audit log names rosterd itself as the actor of reminders.
    let audit = app.get("/api/v1/orgs/acme/audit?limit=200", &admin).await;
    let reminders: Vec<_> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "member.reminder_sent" && e["subject"]["id"] == ids[0].to_string()
        })
        .collect();
    assert_eq!(reminders.len(), 2);
    assert_eq!(reminders[0]["actor"]["kind"], "system");
}

#[tokio::test]
async fn reminders_stop_once_removed() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app.add("acme", &admin, &["x@acme.example"]).await;
    app.clock.advance(Duration::days(7));
    wait_for(10, "first reminder", || async {
        emails_to(&app, "x@acme.example").await.len() == 2
    })
    .await;
    app.post(
        "/api/v1/orgs/acme/members/remove",
        &admin,
        json!({"member_ids": ids}),
    )
    .await;
    app.clock.advance(Duration::days(7));
    app.state.roster.send_due_reminders().await.unwrap();
    assert_eq!(
        emails_to(&app, "x@acme.example").await,
        ["reminder", "invite"]
    );
}

/// The accept link's token is in the delivered email and nowhere else: the outbox row keeps a
/// placeholder, and the `.eml` file is for its owner's eyes only.
#[tokio::test]
async fn a_delivered_invitation_keeps_no_token_at_rest() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    app.add("acme", &admin, &["ada@acme.example"]).await;
    let token = app.invitation_token("acme", "ada@acme.example").await;
    let rows = app.outbox("acme").await;
    let row = rows
        .iter()
        .find(|r| r.to_address == "ada@acme.example")
        .unwrap();
    assert!(row.sent_at.is_some(), "{row:?}");
    assert_eq!(row.link_token, None, "the token is wiped once sent");
    assert!(!row.body.contains(&token), "{}", row.body);
    assert!(
        row.body
            .contains("https://learn.example/invite/{invitation_token}"),
        "{}",
        row.body
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = app.mail_dir.clone().unwrap();
        let file = dir.join(format!("{}.eml", row.idempotency_key));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    }
    // The link in the email works.
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/invitations/accept",
            None,
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["access"], "enrolled");
}

/// An email that never goes out does not keep its token either: cancelled by a removal, or
/// cancelled because its link expired before it could be delivered.
#[tokio::test]
async fn an_undelivered_invitation_loses_its_token_when_cancelled_or_expired() {
    // Nothing listens on this port: every delivery fails and is retried later.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = spawn_with(Mail::Smtp(port), |c| c.invitations.reminders = 0).await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add("acme", &admin, &["bye@acme.example", "late@acme.example"])
        .await;
    let row_to = |addr: &'static str| {
        let app = &app;
        async move {
            app.outbox("acme")
                .await
                .into_iter()
                .find(|r| r.to_address == addr)
                .unwrap()
        }
    };
    wait_for(10, "failed attempts", || async {
        row_to("bye@acme.example").await.attempts >= 1
            && row_to("late@acme.example").await.attempts >= 1
    })
    .await;
    assert!(row_to("bye@acme.example").await.link_token.is_some());
    assert!(row_to("late@acme.example").await.link_token.is_some());

    app.post(
        "/api/v1/orgs/acme/members/remove",
        &admin,
        json!({"member_ids": [ids[0]]}),
    )
    .await;
    let bye = row_to("bye@acme.example").await;
    assert!(bye.cancelled_at.is_some(), "{bye:?}");
    assert_eq!(bye.link_token, None);

    // A month on the link has expired: the email is cancelled, not sent, and its token wiped.
    app.clock.advance(Duration::days(31));
    app.delivery.run_once().await.unwrap();
    let late = row_to("late@acme.example").await;
    assert!(late.cancelled_at.is_some(), "{late:?}");
    assert!(late.sent_at.is_none());
    assert_eq!(late.link_token, None);
    assert!(
        late.last_error.as_deref().unwrap_or("").contains("expired"),
        "{late:?}"
    );
}

/// `login_email` is whatever the invitee typed: it is kept and shown, but nothing treats it as
/// who the person is. Claiming someone else's address gains nothing.
#[tokio::test]
async fn a_login_email_is_not_an_identity_claim() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app.add("acme", &admin, &["mallory@acme.example"]).await;
    let r = app
        .accept("acme", "mallory@acme.example", Some("boss@acme.example"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["login_email"], "boss@acme.example");

    // Adding the claimed address invites a new person: Mallory is not "already a member" by it.
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "boss@acme.example", "role": "admin"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["results"][0]["outcome"], "invited", "{}", r.text);
    let boss = r.body["results"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(boss, ids[0].to_string());

    // An import naming the claimed address updates the real boss, never Mallory.
    let res = app
        .client
        .post(app.url("/api/v1/orgs/acme/imports?filename=people.csv"))
        .bearer_auth(OPERATOR)
        .header("content-type", "text/csv")
        .body("email,first_name\r\nboss@acme.example,Real\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let job: serde_json::Value = res.json().await.unwrap();
    let r = app
        .post(
            &format!(
                "/api/v1/orgs/acme/imports/{}/confirm",
                job["id"].as_str().unwrap()
            ),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    wait_for(10, "the import applied", || async {
        let m = app
            .get(&format!("/api/v1/orgs/acme/members/{boss}"), &admin)
            .await;
        m.body["given_name"] == "Real"
    })
    .await;
    let m = app
        .get(&format!("/api/v1/orgs/acme/members/{}", ids[0]), &admin)
        .await;
    assert_eq!(m.body["member_email"], "mallory@acme.example");
    assert_eq!(m.body["given_name"], serde_json::Value::Null, "{}", m.text);
    assert_eq!(m.body["access"], "enrolled");
}

/// An email that cannot be built (here: its link's token is gone) is never sent without the
/// link, and is given up at once rather than retried for hours.
#[tokio::test]
async fn an_email_whose_token_is_gone_is_given_up_not_sent_without_its_link() {
    use rosterd::store::outbox::{LINK_TOKEN, OutboxRow};
    let app = spawn_app().await;
    app.org_with_admin("acme").await;
    let org_id = app.org_id("acme").await;
    let now = rosterd::clock::Clock::now(&app.clock);
    let row = OutboxRow {
        id: uuid::Uuid::now_v7(),
        org_id: Some(org_id),
        member_id: None,
        kind: "invite".into(),
        idempotency_key: "invitation-orphan".into(),
        to_address: "orphan@acme.example".into(),
        subject: "You are invited".into(),
        body: format!("Accept here:\nhttps://learn.example/invite/{LINK_TOKEN}\n"),
        created_at: now,
        available_at: now,
        attempts: 0,
        claimed_until: None,
        last_error: None,
        sent_at: None,
        failed_at: None,
        cancelled_at: None,
        link_token: None,
        expires_at: None,
    };
    let mut tx = app.store.write().await.unwrap();
    rosterd::store::outbox::insert(&mut tx, &row).await.unwrap();
    tx.commit().await.unwrap();
    wait_for(10, "the email given up", || async {
        app.outbox("acme")
            .await
            .iter()
            .any(|r| r.to_address == "orphan@acme.example" && r.failed_at.is_some())
    })
    .await;
    let r = app
        .outbox("acme")
        .await
        .into_iter()
        .find(|r| r.to_address == "orphan@acme.example")
        .unwrap();
    assert_eq!(r.attempts, 1, "{r:?}");
    assert!(r.sent_at.is_none());
    assert!(
        r.last_error.as_deref().unwrap_or("").contains("token"),
        "{r:?}"
    );
    let file = app.mail_dir.clone().unwrap().join("invitation-orphan.eml");
    assert!(!file.exists(), "nothing delivered");
}
