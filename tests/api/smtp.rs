//! A real SMTP listener on loopback (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT) that records what it receives, and delivery tests against it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use rosterd::clock::Clock;

use crate::helpers::*;

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<Received>>>,
    /// The next N transactions are refused with a temporary failure (451).
    pub fail_next: Arc<AtomicUsize>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = SmtpServer {
            port: listener.local_addr().unwrap().port(),
            messages: Arc::default(),
            fail_next: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.session(sock).await;
                });
            }
        });
        server
    }

    async fn session(&self, sock: tokio::net::TcpStream) -> std::io::Result<()> {
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 localhost ESMTP test\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let cmd = line.trim_end().to_owned();
            let upper = cmd.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                w.write_all(b"250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?;
            } else if upper.starts_with("HELO") {
                w.write_all(b"250 localhost\r\n").await?;
            } else if upper.starts_with("MAIL FROM:") {
                if self.fail_next.load(Ordering::SeqCst) > 0 {
                    self.fail_next.fetch_sub(1, Ordering::SeqCst);
                    w.write_all(b"451 4.3.0 try again later\r\n").await?;
                    continue;
                }
                from = cmd[10..].trim().trim_matches(['<', '>']).to_owned();
                to.clear();
                w.write_all(b"250 OK\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                to.push(cmd[8..].trim().trim_matches(['<', '>']).to_owned());
                w.write_all(b"250 OK\r\n").await?;
            } else if upper == "DATA" {
                w.write_all(b"354 end with .\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let l = line
                        .strip_prefix('.')
                        .filter(|_| line.starts_with(".."))
                        .unwrap_or(&line);
                    data.push_str(l);
                }
                self.messages.lock().unwrap().push(Received {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                });
                w.write_all(b"250 OK queued\r\n").await?;
            } else if upper == "RSET" || upper == "NOOP" {
                w.write_all(b"250 OK\r\n").await?;
            } else if upper == "QUIT" {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                w.write_all(b"502 not implemented\r\n").await?;
            }
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn invitation_emails_are_delivered_over_smtp() {
    let smtp = SmtpServer::start().await;
    let app = spawn_with(Mail::Smtp(smtp.port), |c| {
        c.mail.from = "Roster <roster@learn.example>".into();
    })
    .await;
    let admin = app.org_with_admin("acme").await;
    app.add("acme", &admin, &["ada@acme.example"]).await;
    wait_for(10, "two emails over SMTP (owner + ada)", || async {
        smtp.received().len() >= 2
    })
    .await;
    let msgs = smtp.received();
    let ada = msgs
        .iter()
        .find(|m| m.to == ["ada@acme.example"])
        .expect("email to ada");
    assert_eq!(ada.from, "roster@learn.example");
    assert!(
        ada.data
            .contains("Subject: You are invited to join Org acme"),
        "{}",
        ada.data
    );
    // The Message-ID comes from the outbox row's idempotency key, so a redelivery is recognisable.
    let row = app
        .outbox("acme")
        .await
        .into_iter()
        .find(|r| r.to_address == "ada@acme.example")
        .unwrap();
    assert!(
        ada.data.contains(&format!(
            "Message-ID: <{}@learn.example>",
            row.idempotency_key
        )),
        "{}",
        ada.data
    );
    wait_for(5, "outbox row marked sent", || async {
        app.outbox("acme").await.iter().all(|r| r.sent_at.is_some())
    })
    .await;
    // The link in the email received works, and its token is not kept once sent.
    let token = token_in(&decode_email(&ada.data));
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/invitations/accept",
            None,
            Some(serde_json::json!({ "token": token })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for r in app.outbox("acme").await {
        assert_eq!(r.link_token, None, "{r:?}");
        assert!(!r.body.contains(&token), "{}", r.body);
    }
}

#[tokio::test]
async fn a_refused_delivery_is_retried_with_backoff() {
    let smtp = SmtpServer::start().await;
    smtp.fail_next.store(1, Ordering::SeqCst);
    let app = spawn_with(Mail::Smtp(smtp.port), |_| {}).await;
    // No owner: one email only.
    let r = app
        .post(
            "/api/v1/orgs",
            OPERATOR,
            serde_json::json!({"slug": "solo", "name": "Solo"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let t = app
        .post(
            "/api/v1/orgs/solo/tokens",
            OPERATOR,
            serde_json::json!({"kind": "admin"}),
        )
        .await;
    let admin = t.body["token"].as_str().unwrap().to_owned();
    app.add("solo", &admin, &["bo@solo.example"]).await;
    wait_for(10, "the failed attempt to be recorded", || async {
        app.outbox("solo")
            .await
            .iter()
            .any(|r| r.attempts == 1 && r.last_error.is_some())
    })
    .await;
    let row = app.outbox("solo").await.remove(0);
    assert!(row.sent_at.is_none());
    assert!(
        row.available_at > app.clock.now(),
        "retry is scheduled in the future"
    );
    assert!(smtp.received().is_empty());
    // Nothing happens until the backoff has passed on the (manual) clock.
    app.delivery.run_once().await.unwrap();
    assert!(smtp.received().is_empty());
    app.clock.advance(Duration::minutes(1));
    wait_for(10, "the retried delivery", || async {
        smtp.received().len() == 1
    })
    .await;
    wait_for(5, "row marked sent", || async {
        let r = app.outbox("solo").await.remove(0);
        r.sent_at.is_some() && r.attempts == 2
    })
    .await;
}

#[tokio::test]
async fn removal_cancels_emails_not_yet_sent() {
    // Nothing listens on this port: every delivery fails and is retried later.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = spawn_with(Mail::Smtp(port), |_| {}).await;
    let admin = app.org_with_admin("acme").await;
    let ids = app.add("acme", &admin, &["bye@acme.example"]).await;
    wait_for(10, "a failed attempt", || async {
        app.outbox("acme")
            .await
            .iter()
            .any(|r| r.to_address == "bye@acme.example" && r.attempts >= 1)
    })
    .await;
    app.post(
        "/api/v1/orgs/acme/members/remove",
        &admin,
        serde_json::json!({"member_ids": ids}),
    )
    .await;
    let row = app
        .outbox("acme")
        .await
        .into_iter()
        .find(|r| r.to_address == "bye@acme.example")
        .unwrap();
    assert!(row.cancelled_at.is_some(), "{row:?}");
    let attempts = row.attempts;
    app.clock.advance(Duration::hours(3));
    app.delivery.run_once().await.unwrap();
    let row = app
        .outbox("acme")
        .await
        .into_iter()
        .find(|r| r.to_address == "bye@acme.example")
        .unwrap();
    assert_eq!(
        row.attempts, attempts,
        "a cancelled email is not tried again"
    );
    assert!(row.sent_at.is_none());
}
