//! The delivery worker: claims due outbox rows, sends them, and records the outcome. A failed
//! send is retried with exponential backoff (30 s doubling to at most an hour) until the
//! configured number of attempts, then marked failed. Delivery is at least once: a row is
//! marked sent only after the sink accepted it.

use std::sync::Arc;

use chrono::Duration;

use super::{MailError, Mailer};
use crate::clock::SharedClock;
use crate::store::{self, Store};

/// A claim holds this long per claimed row before another worker may take the rows: enough for
/// an SMTP exchange that runs into every timeout, so a slow server does not cause a second
/// worker to send the same emails while the first is still at it.
const LEASE_PER_ROW: Duration = Duration::minutes(3);
const BATCH: i64 = 10;

#[derive(Clone)]
pub struct Delivery {
    pub store: Store,
    pub clock: SharedClock,
    pub mailer: Arc<Mailer>,
    pub from: String,
    pub max_attempts: u32,
}

/// Backoff before attempt `attempts + 1`.
pub fn retry_delay(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 8) as u32 - 1;
    Duration::seconds((30i64 << exp).min(3600))
}

impl Delivery {
    /// Delivers what is due now; returns how many emails were sent.
    pub async fn run_once(&self) -> Result<usize, store::StoreError> {
        let mut sent = 0;
        loop {
            let now = self.clock.now();
            let mut tx = self.store.write().await?;
            let lease = now + LEASE_PER_ROW * BATCH as i32;
            let rows = store::outbox::claim_due(&mut tx, now, lease, BATCH).await?;
            tx.commit().await?;
            if rows.is_empty() {
                return Ok(sent);
            }
            for row in rows {
                let result = self.mailer.send(&self.from, &row).await;
                let now = self.clock.now();
                let mut tx = self.store.write().await?;
                match result {
                    Ok(()) => {
                        if !store::outbox::mark_sent(&mut tx, row.id, lease, now).await? {
                            tracing::warn!(email = %row.id, "claim expired before the email was marked sent; another worker may send it again");
                        }
                        sent += 1;
                        metrics::counter!(crate::telemetry::MAIL_SENT).increment(1);
                    }
                    Err(e) => {
                        // An email that cannot be built never will be: given up at once.
                        let retry = (matches!(e, MailError::Send(_))
                            && row.attempts < i64::from(self.max_attempts))
                        .then(|| now + retry_delay(row.attempts));
                        tracing::warn!(email = %row.id, attempts = row.attempts, error = %e, gave_up = retry.is_none(), "email delivery failed");
                        let gave_up = if retry.is_none() { "true" } else { "false" };
                        metrics::counter!(crate::telemetry::MAIL_FAILURES, "gave_up" => gave_up)
                            .increment(1);
                        store::outbox::mark_failed(
                            &mut tx,
                            row.id,
                            lease,
                            &e.to_string(),
                            now,
                            retry,
                        )
                        .await?;
                    }
                }
                tx.commit().await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(retry_delay(1), Duration::seconds(30));
        assert_eq!(retry_delay(2), Duration::seconds(60));
        assert_eq!(retry_delay(3), Duration::seconds(120));
        assert_eq!(retry_delay(20), Duration::seconds(3600));
    }
}
