//! The webhook delivery worker: claims due deliveries (the webhook outbox), POSTs each event to
//! its subscription's URL signed the Standard Webhooks way, and records the attempt.
//!
//! A request has a timeout, follows no redirect (a 3xx is a failure), and reads at most
//! [`MAX_ANSWER_BYTES`] of the answer. A delivery is done when the receiver answers 2xx; any
//! other outcome is retried with exponential backoff and jitter until `webhooks.max_attempts`,
//! then given up. Delivery is at least once: a receiver should use `webhook-id` to drop
//! repeats. This module sends; `roster::webhooks` records and decides when to disable.

use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use uuid::Uuid;

use crate::config::WebhooksConfig;
use crate::roster::Roster;
use crate::store::webhooks::{AttemptRow, ClaimedDelivery};
use crate::store::{self};

/// Deliveries claimed (and sent concurrently) per pass.
const BATCH: i64 = 16;
/// The most of a receiver's answer that is read (and the start of it kept in the log).
pub const MAX_ANSWER_BYTES: usize = 1024;
/// Characters of an answer's body kept in the delivery log.
const KEPT_ANSWER_CHARS: usize = 200;

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the base64-decoded part of
/// the `whsec_` secret. `None` if the secret is not one rosterd generated.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_")?)
        .ok()?;
    let mut mac = hmac::Hmac::<sha2_011::Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    ))
}

/// The wait before attempt `attempts + 1`: `base` doubled per attempt made, at most `max`, plus
/// `jitter` (0 to 0.25) of it.
pub fn retry_delay(base: u64, max: u64, attempts: i64, jitter: f64) -> chrono::Duration {
    let exp = attempts.clamp(1, 40) as u32 - 1;
    let secs = base.saturating_mul(1u64 << exp.min(32)).min(max);
    let ms = (secs as f64 * 1000.0 * (1.0 + jitter.clamp(0.0, 0.25))) as i64;
    chrono::Duration::milliseconds(ms)
}

#[derive(Clone)]
pub struct Deliverer {
    pub roster: Roster,
    pub settings: WebhooksConfig,
    client: reqwest::Client,
}

/// What one attempt came to.
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    duration: Duration,
}

impl Deliverer {
    pub fn new(roster: Roster, settings: WebhooksConfig) -> Result<Deliverer, String> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("rosterd-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook HTTP client: {e}"))?;
        Ok(Deliverer {
            roster,
            settings,
            client,
        })
    }

    /// Delivers what is due now; returns how many deliveries were attempted.
    pub async fn run_once(&self) -> Result<usize, store::StoreError> {
        let mut attempted = 0;
        loop {
            let now = self.roster.clock.now();
            // Every claimed delivery is sent at once, so one timeout (and slack) covers them.
            let lease = now
                + chrono::Duration::milliseconds(self.settings.timeout_ms as i64 * 3)
                + chrono::Duration::seconds(60);
            let claimed = {
                let mut tx = self.roster.store.write().await?;
                let rows = store::webhooks::claim_due(&mut tx, now, lease, BATCH).await?;
                tx.commit().await?;
                rows
            };
            if claimed.is_empty() {
                return Ok(attempted);
            }
            attempted += claimed.len();
            let sends = claimed.iter().map(|d| self.send(d));
            let outcomes = futures_util::future::join_all(sends).await;
            for (d, outcome) in claimed.iter().zip(outcomes) {
                self.record(d, lease, outcome?).await?;
            }
        }
    }

    /// Deletes finished deliveries older than `webhooks.keep_log_days`, with their log.
    pub async fn prune(&self) -> Result<u64, store::StoreError> {
        let days = i64::from(self.settings.keep_log_days);
        let before = self.roster.clock.now() - chrono::Duration::days(days);
        let mut tx = self.roster.store.write().await?;
        let n = store::webhooks::prune(&mut tx, before).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn send(&self, d: &ClaimedDelivery) -> Result<Outcome, store::StoreError> {
        let event = {
            let mut tx = self.roster.store.read().await?;
            let e = store::events::by_id(&mut tx, d.org_id, d.event_id).await?;
            tx.rollback().await?;
            e
        };
        let started = Instant::now();
        let Some(event) = event else {
            return Ok(Outcome {
                status: None,
                error: Some("the event no longer exists".into()),
                duration: started.elapsed(),
            });
        };
        let body = crate::roster::events::event_json(&event).to_string();
        let id = event.id.to_string();
        let timestamp = self.roster.clock.now().timestamp();
        // After a rotation, the old secret's signature goes along (space-separated) for a day.
        let previous = d
            .previous_secret
            .as_deref()
            .and_then(|p| signature(p, &id, timestamp, body.as_bytes()));
        let Some(signature) =
            signature(&d.secret, &id, timestamp, body.as_bytes()).map(|s| match &previous {
                Some(p) => format!("{s} {p}"),
                None => s,
            })
        else {
            return Ok(Outcome {
                status: None,
                error: Some("the subscription's secret cannot sign".into()),
                duration: started.elapsed(),
            });
        };
        let sent = self
            .client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    format!("no answer within {} ms", self.settings.timeout_ms)
                } else if e.is_connect() {
                    "could not connect".to_owned()
                } else {
                    "the request failed".to_owned()
                };
                return Ok(Outcome {
                    status: None,
                    error: Some(what),
                    duration: started.elapsed(),
                });
            }
        };
        let status = response.status();
        // Only the start of the answer is read; the rest is dropped with the connection.
        let mut answer = Vec::new();
        let mut read_error = None;
        while answer.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(if e.is_timeout() {
                        format!(
                            "the answer took longer than {} ms",
                            self.settings.timeout_ms
                        )
                    } else {
                        "reading the answer failed".to_owned()
                    });
                    break;
                }
            }
        }
        drop(response);
        let duration = started.elapsed();
        // A 2xx is an acceptance even if the rest of the answer never came.
        let error = if status.is_success() {
            None
        } else if let Some(e) = read_error {
            Some(format!("HTTP {}; {e}", status.as_u16()))
        } else if status.is_redirection() {
            Some(format!(
                "HTTP {} (redirects are not followed)",
                status.as_u16()
            ))
        } else {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(MAX_ANSWER_BYTES)]);
            let text: String = text
                .chars()
                .filter(|c| !c.is_control())
                .take(KEPT_ANSWER_CHARS)
                .collect();
            Some(if text.trim().is_empty() {
                format!("HTTP {}", status.as_u16())
            } else {
                format!("HTTP {}: {}", status.as_u16(), text.trim())
            })
        };
        Ok(Outcome {
            status: Some(status.as_u16()),
            error,
            duration,
        })
    }

    async fn record(
        &self,
        d: &ClaimedDelivery,
        lease: DateTime<Utc>,
        outcome: Outcome,
    ) -> Result<(), store::StoreError> {
        let now = self.roster.clock.now();
        let succeeded = outcome.error.is_none();
        let retry_at =
            (!succeeded && d.attempts < i64::from(self.settings.max_attempts)).then(|| {
                now + retry_delay(
                    self.settings.retry_base_secs,
                    self.settings.max_retry_secs,
                    d.attempts,
                    rand::random_range(0.0..=0.25),
                )
            });
        let result = match (succeeded, retry_at) {
            (true, _) => "succeeded",
            (false, Some(_)) => "failed",
            (false, None) => "gave_up",
        };
        metrics::counter!(crate::telemetry::WEBHOOK_ATTEMPTS, "result" => result).increment(1);
        if !succeeded {
            tracing::warn!(webhook = %d.webhook_id, delivery = %d.id, attempt = d.attempts,
                error = outcome.error.as_deref().unwrap_or(""), gave_up = retry_at.is_none(),
                "webhook delivery failed");
        }
        let attempt = AttemptRow {
            id: Uuid::now_v7(),
            org_id: d.org_id,
            webhook_id: d.webhook_id,
            delivery_id: d.id,
            event_id: d.event_id,
            event_type: d.event_type.clone(),
            attempt: d.attempts,
            at: now,
            duration_ms: i64::try_from(outcome.duration.as_millis()).unwrap_or(i64::MAX),
            status_code: outcome.status.map(i64::from),
            error: outcome.error,
            succeeded,
            retry_at,
        };
        let recorded = self
            .roster
            .record_webhook_attempt(
                d,
                lease,
                &attempt,
                i64::from(self.settings.disable_after_failures),
            )
            .await;
        match recorded {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery = %d.id, "claim expired before the attempt was recorded; the delivery may be sent again")
            }
            Err(crate::roster::RosterError::Store(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt failed")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let d = |n, j| retry_delay(30, 3600, n, j).num_seconds();
        assert_eq!(d(1, 0.0), 30);
        assert_eq!(d(2, 0.0), 60);
        assert_eq!(d(3, 0.0), 120);
        assert_eq!(d(30, 0.0), 3600);
        assert_eq!(d(1, 0.25), 37);
        assert_eq!(d(1, 9.0), 37, "jitter is capped at a quarter");
    }

    #[test]
    fn signs_like_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification.
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(signature("nope", "x", 1, b""), None);
    }
}
