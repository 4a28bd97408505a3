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
