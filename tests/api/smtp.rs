//! A real SMTP listener on loopback (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT; optionally STARTTLS with a throwaway CA and AUTH PLAIN/LOGIN) that records what it
//! receives, and delivery tests against it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use rosterd::clock::Clock;

use crate::helpers::*;

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// Whether the message came over TLS (after STARTTLS).
    pub tls: bool,
    /// Who logged in (and how) before sending it.
    pub auth: Option<(String, String)>,
}

/// What the listener demands: STARTTLS before anything else, and a login.
#[derive(Clone)]
pub struct Security {
    pub tls: Arc<tokio_rustls::rustls::ServerConfig>,
    /// The one mechanism advertised (`PLAIN` or `LOGIN`), user and password.
    pub auth: Option<(&'static str, String, String)>,
}

#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<Received>>>,
    /// The next N transactions are refused with a temporary failure (451).
    pub fail_next: Arc<AtomicUsize>,
    /// Failed logins.
    pub refused_logins: Arc<AtomicUsize>,
    security: Option<Security>,
}

/// Where a session stands.
#[derive(Default)]
struct Session {
    tls: bool,
    auth: Option<(String, String)>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        Self::start_with(None).await
    }

    pub async fn start_with(security: Option<Security>) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = SmtpServer {
            port: listener.local_addr().unwrap().port(),
            messages: Arc::default(),
            fail_next: Arc::default(),
            refused_logins: Arc::default(),
            security,
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.connection(sock).await;
                });
            }
        });
        server
    }

    async fn connection(&self, sock: tokio::net::TcpStream) -> std::io::Result<()> {
        let mut sock = BufReader::new(sock);
        sock.write_all(b"220 localhost ESMTP test\r\n").await?;
        let Some(sock) = self.session(sock, Session::default()).await? else {
            return Ok(());
        };
        // STARTTLS: the handshake, then a new session over TLS (RFC 3207: state is reset).
        let Some(security) = &self.security else {
            return Ok(());
        };
        let tls = TlsAcceptor::from(security.tls.clone())
            .accept(sock.into_inner())
            .await?;
        let session = Session {
            tls: true,
            ..Session::default()
        };
        self.session(BufReader::new(tls), session).await?;
        Ok(())
    }

    /// Serves commands; returns the stream when the client asked for STARTTLS.
    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut sock: BufReader<S>,
        mut st: Session,
    ) -> std::io::Result<Option<BufReader<S>>> {
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        let needs_tls = self.security.is_some() && !st.tls;
        let auth = self.security.as_ref().and_then(|s| s.auth.clone());
        loop {
            line.clear();
            if sock.read_line(&mut line).await? == 0 {
                return Ok(None);
            }
            let cmd = line.trim_end().to_owned();
            let upper = cmd.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                let mut reply = String::from("250-localhost\r\n250-8BITMIME\r\n");
                if needs_tls {
                    reply.push_str("250-STARTTLS\r\n");
                } else if let Some((mech, _, _)) = &auth {
                    reply.push_str(&format!("250-AUTH {mech}\r\n"));
                }
                reply.push_str("250 SMTPUTF8\r\n");
                sock.write_all(reply.as_bytes()).await?;
            } else if upper.starts_with("HELO") {
                sock.write_all(b"250 localhost\r\n").await?;
            } else if upper == "STARTTLS" && needs_tls {
                sock.write_all(b"220 2.0.0 ready to start TLS\r\n").await?;
                return Ok(Some(sock));
            } else if upper.starts_with("AUTH ") {
                let Some((mech, user, pass)) = &auth else {
                    sock.write_all(b"502 not implemented\r\n").await?;
                    continue;
                };
                if needs_tls {
                    sock.write_all(b"538 5.7.11 encryption required\r\n")
                        .await?;
                    continue;
                }
                let mut words = cmd.split_whitespace().skip(1);
                let asked = words.next().unwrap_or("").to_ascii_uppercase();
                if asked != *mech {
                    sock.write_all(b"504 5.5.4 mechanism not supported\r\n")
                        .await?;
                    continue;
                }
                let initial = words.next().map(str::to_owned);
                let given = if asked == "PLAIN" {
                    let b64 = match initial {
                        Some(b) => b,
                        None => {
                            sock.write_all(b"334 \r\n").await?;
                            read_reply(&mut sock).await?
                        }
                    };
                    let plain = decode(&b64);
                    let mut parts = plain.split('\0').skip(1);
                    (
                        parts.next().unwrap_or("").to_owned(),
                        parts.next().unwrap_or("").to_owned(),
                    )
                } else {
                    let u = match initial {
                        Some(b) => b,
                        None => {
                            sock.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                            read_reply(&mut sock).await?
                        }
                    };
                    sock.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                    let p = read_reply(&mut sock).await?;
                    (decode(&u), decode(&p))
                };
                if given.0 == *user && given.1 == *pass {
                    st.auth = Some((asked, given.0));
                    sock.write_all(b"235 2.7.0 authentication successful\r\n")
                        .await?;
                } else {
                    self.refused_logins.fetch_add(1, Ordering::SeqCst);
                    sock.write_all(b"535 5.7.8 authentication credentials invalid\r\n")
                        .await?;
                }
            } else if upper.starts_with("MAIL FROM:") {
                if needs_tls {
                    sock.write_all(b"530 5.7.0 must issue a STARTTLS command first\r\n")
                        .await?;
                    continue;
                }
                if auth.is_some() && st.auth.is_none() {
                    sock.write_all(b"530 5.7.0 authentication required\r\n")
                        .await?;
                    continue;
                }
                if self.fail_next.load(Ordering::SeqCst) > 0 {
                    self.fail_next.fetch_sub(1, Ordering::SeqCst);
                    sock.write_all(b"451 4.3.0 try again later\r\n").await?;
                    continue;
                }
                from = cmd[10..].trim().trim_matches(['<', '>']).to_owned();
                to.clear();
                sock.write_all(b"250 OK\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                to.push(cmd[8..].trim().trim_matches(['<', '>']).to_owned());
                sock.write_all(b"250 OK\r\n").await?;
            } else if upper == "DATA" {
                sock.write_all(b"354 end with .\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if sock.read_line(&mut line).await? == 0 {
                        return Ok(None);
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
                    tls: st.tls,
                    auth: st.auth.clone(),
                });
                sock.write_all(b"250 OK queued\r\n").await?;
            } else if upper == "RSET" || upper == "NOOP" {
                sock.write_all(b"250 OK\r\n").await?;
            } else if upper == "QUIT" {
                sock.write_all(b"221 bye\r\n").await?;
                return Ok(None);
            } else {
                sock.write_all(b"502 not implemented\r\n").await?;
            }
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }
}

async fn read_reply<S: AsyncRead + AsyncWrite + Unpin>(
    sock: &mut BufReader<S>,
) -> std::io::Result<String> {
    let mut line = String::new();
    sock.read_line(&mut line).await?;
    Ok(line.trim_end().to_owned())
}

fn decode(b64: &str) -> String {
    String::from_utf8_lossy(&B64.decode(b64).unwrap_or_default()).into_owned()
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

/// A throwaway CA and a server certificate for 127.0.0.1 (openssl, as for slapd), and the
/// listener's TLS configuration.
async fn tls_setup(dir: &std::path::Path) -> Arc<tokio_rustls::rustls::ServerConfig> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::slapd::make_certificates(dir).await;
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    Arc::new(config)
}

fn secure_app_config(
    c: &mut rosterd::config::Config,
    dir: &std::path::Path,
    password: &str,
    trust_ca: bool,
) {
    let pw_file = dir.join(format!("smtp-password-{password}"));
    std::fs::write(&pw_file, password).unwrap();
    let smtp = c.mail.smtp.as_mut().unwrap();
    smtp.tls = rosterd::config::SmtpTls::Starttls;
    smtp.username = Some("rosterd".into());
    smtp.password =
        Some(rosterd::secret::SecretRef::parse(&format!("file:{}", pw_file.display())).unwrap());
    smtp.ca_file = trust_ca.then(|| dir.join("ca.pem"));
}

/// STARTTLS against a listener with a certificate from the configured CA, then AUTH PLAIN or
/// LOGIN (whichever the server offers), then the email: it arrives over TLS, logged in, and its
/// accept link works.
#[tokio::test]
async fn starttls_and_auth_plain_or_login_against_a_tls_listener() {
    let dir = crate::sync::temp_dir();
    let tls = tls_setup(&dir).await;
    for mech in ["PLAIN", "LOGIN"] {
        let smtp = SmtpServer::start_with(Some(Security {
            tls: tls.clone(),
            auth: Some((mech, "rosterd".into(), "s3cret pw".into())),
        }))
        .await;
        let app = spawn_with(Mail::Smtp(smtp.port), |c| {
            secure_app_config(c, &dir, "s3cret pw", true)
        })
        .await;
        let admin = app.org_with_admin("acme").await;
        app.add("acme", &admin, &["ada@acme.example"]).await;
        wait_for(10, "two emails over STARTTLS (owner + ada)", || async {
            smtp.received().len() >= 2
        })
        .await;
        for m in smtp.received() {
            assert!(m.tls, "{mech}: sent in clear: {m:?}");
            assert_eq!(
                m.auth,
                Some((mech.to_owned(), "rosterd".to_owned())),
                "{mech}"
            );
        }
        assert_eq!(smtp.refused_logins.load(Ordering::SeqCst), 0);
        let ada = smtp
            .received()
            .into_iter()
            .find(|m| m.to == ["ada@acme.example"])
            .unwrap();
        let token = token_in(&decode_email(&ada.data));
        let r = app
            .call(
                reqwest::Method::POST,
                "/api/v1/invitations/accept",
                None,
                Some(serde_json::json!({ "token": token })),
            )
            .await;
        assert_eq!(r.status, 200, "{mech}: {}", r.text);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A certificate from a CA the daemon was not told to trust, or a wrong password: nothing is
/// sent, the email waits for a retry, and the error says why without the password.
#[tokio::test]
async fn an_untrusted_certificate_or_a_wrong_password_sends_nothing() {
    let dir = crate::sync::temp_dir();
    let tls = tls_setup(&dir).await;
    for (trust_ca, password, why) in [
        (false, "s3cret pw", "certificate"),
        (true, "wrong-pw", "535"),
    ] {
        let smtp = SmtpServer::start_with(Some(Security {
            tls: tls.clone(),
            auth: Some(("PLAIN", "rosterd".into(), "s3cret pw".into())),
        }))
        .await;
        let app = spawn_with(Mail::Smtp(smtp.port), |c| {
            secure_app_config(c, &dir, password, trust_ca)
        })
        .await;
        let admin = app.org_with_admin("acme").await;
        app.add("acme", &admin, &["ada@acme.example"]).await;
        wait_for(10, "a failed attempt", || async {
            app.outbox("acme")
                .await
                .iter()
                .any(|r| r.to_address == "ada@acme.example" && r.last_error.is_some())
        })
        .await;
        let row = app
            .outbox("acme")
            .await
            .into_iter()
            .find(|r| r.to_address == "ada@acme.example")
            .unwrap();
        let error = row.last_error.clone().unwrap();
        assert!(error.to_lowercase().contains(why), "{why}: {error}");
        assert!(!error.contains(password), "{error}");
        assert!(row.sent_at.is_none() && row.available_at > app.clock.now());
        assert!(smtp.received().is_empty(), "{why}");
        assert_eq!(
            smtp.refused_logins.load(Ordering::SeqCst) > 0,
            trust_ca,
            "{why}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two replicas on one PostgreSQL database, both delivering the outbox to one SMTP server: every
/// email arrives exactly once (claims skip rows the other replica holds).
#[tokio::test]
async fn two_replicas_deliver_each_email_once() {
    let smtp = SmtpServer::start().await;
    let (url, cleanup) = fresh_postgres_database().await;
    let _db = DbGuard(cleanup);
    let replica = |domain: &'static str| {
        let url = url.clone();
        spawn_with(Mail::Smtp(smtp.port), move |c| {
            c.database.url = url;
            c.mail.from = format!("Roster <roster@{domain}>");
            c.server.max_body_bytes = 1024 * 1024;
        })
    };
    let a = replica("a.example").await;
    let b = replica("b.example").await;
    let admin = a.org_with_admin("acme").await;
    const N: usize = 150;
    for chunk in 0..3 {
        let emails: Vec<String> = (0..N / 3)
            .map(|i| format!("m{chunk}-{i}@acme.example"))
            .collect();
        let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
        // Half the emails are queued through each replica.
        let app = if chunk % 2 == 0 { &a } else { &b };
        app.add("acme", &admin, &refs).await;
    }
    wait_for(60, "every email marked sent", || async {
        let rows = a.outbox("acme").await;
        rows.len() == N + 1 && rows.iter().all(|r| r.sent_at.is_some())
    })
    .await;
    let received = smtp.received();
    let mut keys: Vec<(String, String)> = received
        .iter()
        .map(|m| {
            let id = m
                .data
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: <"))
                .unwrap_or_else(|| panic!("no Message-ID in {}", m.data));
            let (key, domain) = id.trim_end_matches('>').split_once('@').unwrap();
            (key.to_owned(), domain.to_owned())
        })
        .collect();
    assert_eq!(received.len(), N + 1, "one email per outbox row");
    keys.sort();
    keys.dedup_by(|x, y| x.0 == y.0);
    assert_eq!(keys.len(), N + 1, "no Message-ID twice");
    for r in a.outbox("acme").await {
        assert_eq!(r.attempts, 1, "claimed once: {r:?}");
    }
    // Which replica sent what shows in the Message-ID's domain (its From address).
    let by_a = keys.iter().filter(|k| k.1 == "a.example").count();
    let by_b = keys.iter().filter(|k| k.1 == "b.example").count();
    assert_eq!(by_a + by_b, N + 1);
    // Each replica is woken by the emails it queues itself, so both take part.
    assert!(by_a > 0 && by_b > 0, "a sent {by_a}, b sent {by_b}");
}
