//! Outgoing email: the sinks an outbox row can be delivered to (SMTP through lettre, a folder
//! of `.eml` files, or the log) and the delivery worker that drains the outbox.

pub mod delivery;

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{MailConfig, MailSink, SmtpConfig, SmtpTls};
use crate::store::outbox::OutboxRow;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail configuration: {0}")]
    Config(String),
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("delivery failed: {0}")]
    Send(String),
}

/// Where emails go.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(PathBuf),
    Log,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Smtp(_) => f.write_str("Mailer::Smtp"),
            Mailer::File(p) => write!(f, "Mailer::File({})", p.display()),
            Mailer::Log => f.write_str("Mailer::Log"),
        }
    }
}

impl Mailer {
    pub fn from_config(cfg: &MailConfig) -> Result<Mailer, MailError> {
        match cfg.sink {
            MailSink::Log => Ok(Mailer::Log),
            MailSink::File => {
                private_dir(&cfg.dir).map_err(|e| {
                    MailError::Config(format!("cannot create {}: {e}", cfg.dir.display()))
                })?;
                Ok(Mailer::File(cfg.dir.clone()))
            }
            MailSink::Smtp => {
                let smtp = cfg
                    .smtp
                    .as_ref()
                    .ok_or_else(|| MailError::Config("[mail.smtp] is missing".into()))?;
                let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host);
                let builder = match smtp.tls {
                    SmtpTls::None => builder,
                    SmtpTls::Starttls => builder.tls(Tls::Required(tls_parameters(smtp)?)),
                    SmtpTls::Tls => builder.tls(Tls::Wrapper(tls_parameters(smtp)?)),
                };
                let mut builder = builder
                    .port(smtp.port)
                    .timeout(Some(Duration::from_secs(smtp.timeout_secs)));
                if let Some(user) = &smtp.username {
                    let password = match &smtp.password {
                        Some(r) => r
                            .resolve()
                            .map_err(|e| MailError::Config(format!("mail.smtp.password: {e}")))?
                            .expose_secret()
                            .to_owned(),
                        None => String::new(),
                    };
                    builder = builder.credentials(Credentials::new(user.clone(), password));
                }
                Ok(Mailer::Smtp(builder.build()))
            }
        }
    }

    /// Delivers one outbox row. The Message-ID is derived from the row's idempotency key, so a
    /// retried delivery carries the same id and receivers can drop the duplicate.
    pub async fn send(&self, from: &str, row: &OutboxRow) -> Result<(), MailError> {
        match self {
            Mailer::Log => {
                tracing::info!(to = %row.to_address, subject = %row.subject, key = %row.idempotency_key, "email (log sink)");
                Ok(())
            }
            Mailer::File(dir) => {
                let msg = build(from, row)?;
                let path = dir.join(format!("{}.eml", row.idempotency_key));
                let tmp = dir.join(format!(".{}.tmp", row.idempotency_key));
                write_private(&tmp, &msg.formatted())
                    .await
                    .map_err(|e| MailError::Send(format!("{}: {e}", tmp.display())))?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .map_err(|e| MailError::Send(format!("{}: {e}", path.display())))
            }
            Mailer::Smtp(transport) => {
                let msg = build(from, row)?;
                transport
                    .send(msg)
                    .await
                    .map(|_| ())
                    .map_err(|e| MailError::Send(e.to_string()))
            }
        }
    }
}

/// TLS for the SMTP server: its certificate is always verified, against the public web PKI and
/// the certificates of `ca_file` if set.
fn tls_parameters(smtp: &SmtpConfig) -> Result<TlsParameters, MailError> {
    let mut params = TlsParameters::builder(smtp.host.clone());
    if let Some(path) = &smtp.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            MailError::Config(format!("mail.smtp.ca_file `{}`: {e}", path.display()))
        })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(MailError::Config(format!(
                "mail.smtp.ca_file `{}`: no PEM certificate in it",
                path.display()
            )));
        }
        let cert = Certificate::from_pem(&pem).map_err(|e| {
            MailError::Config(format!("mail.smtp.ca_file `{}`: {e}", path.display()))
        })?;
        params = params.add_root_certificate(cert);
    }
    params
        .build_rustls()
        .map_err(|e| MailError::Config(format!("mail.smtp: {e}")))
}

/// Creates the mail folder (and its parents) readable by this user alone when it is new.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Writes a new file readable and writable by this user alone (an email holds a live link). A
/// stale file of an earlier attempt is replaced, never reused with its old permissions.
async fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).await?;
    f.write_all(bytes).await?;
    f.sync_all().await
}

fn build(from: &str, row: &OutboxRow) -> Result<Message, MailError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| MailError::Build(format!("from `{from}`: {e}")))?;
    let to: Mailbox = row
        .to_address
        .parse()
        .map_err(|e| MailError::Build(format!("to `{}`: {e}", row.to_address)))?;
    let domain = from.email.domain().to_owned();
    let body = row
        .rendered_body()
        .ok_or_else(|| MailError::Build("the invitation link's token is no longer kept".into()))?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(row.subject.clone())
        .message_id(Some(format!("<{}@{}>", row.idempotency_key, domain)))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SmtpConfig;

    fn smtp(ca_file: &std::path::Path) -> MailConfig {
        MailConfig {
            sink: MailSink::Smtp,
            smtp: Some(SmtpConfig {
                host: "smtp.example.com".into(),
                port: 587,
                tls: SmtpTls::Starttls,
                username: None,
                password: None,
                timeout_secs: 5,
                ca_file: Some(ca_file.to_owned()),
            }),
            ..MailConfig::default()
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_config_error() {
        let missing = std::env::temp_dir().join("rosterd-no-such-ca.pem");
        let err = Mailer::from_config(&smtp(&missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("mail.smtp.ca_file"), "{err}");
        let empty =
            std::env::temp_dir().join(format!("rosterd-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = Mailer::from_config(&smtp(&empty)).unwrap_err().to_string();
        let _ = std::fs::remove_file(&empty);
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
