//! Webhook subscriptions, their delivery rows (the webhook outbox) and the delivery log.
//!
//! A delivery row is written in the transaction that writes its event. Claiming works like the
//! email outbox: a lease (`claimed_until`) so a crashed worker's rows come back, and on
//! PostgreSQL `FOR UPDATE SKIP LOCKED` so replicas never claim the same row; a result is
//! recorded only while the claim is still the worker's.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Backend, Result, Tx, on_tx};

#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub url: String,
    /// JSON array of patterns.
    pub event_types: String,
    pub description: Option<String>,
    /// The signing key (`whsec_…`).
    pub secret: String,
    /// The key before the last rotation, which signs too until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub consecutive_failures: i64,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for WebhookRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRow")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("secret", &"[redacted]")
            .field("previous_secret_until", &self.previous_secret_until)
            .field("enabled", &self.enabled)
            .field("consecutive_failures", &self.consecutive_failures)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, org_id, url, event_types, description, secret, previous_secret, \
    previous_secret_until, enabled, consecutive_failures, disabled_at, disabled_reason, \
    created_at, updated_at";

pub async fn insert(tx: &mut Tx, w: &WebhookRow) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO webhooks (id, org_id, url, event_types, description, secret, enabled,
            consecutive_failures, disabled_at, disabled_reason, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(w.id).bind(w.org_id).bind(&w.url).bind(&w.event_types).bind(&w.description)
        .bind(&w.secret).bind(w.enabled).bind(w.consecutive_failures).bind(w.disabled_at)
        .bind(&w.disabled_reason).bind(w.created_at).bind(w.updated_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Writes a subscription's settings and state (not its secret).
pub async fn update(tx: &mut Tx, w: &WebhookRow) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE webhooks SET url = $3, event_types = $4, description = $5, enabled = $6,
            consecutive_failures = $7, disabled_at = $8, disabled_reason = $9, updated_at = $10
         WHERE org_id = $1 AND id = $2")
        .bind(w.org_id).bind(w.id).bind(&w.url).bind(&w.event_types).bind(&w.description)
        .bind(w.enabled).bind(w.consecutive_failures).bind(w.disabled_at)
        .bind(&w.disabled_reason).bind(w.updated_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn by_id(tx: &mut Tx, org_id: Uuid, id: Uuid, lock: bool) -> Result<Option<WebhookRow>> {
    let lock = match (lock, tx.backend()) {
        (true, Backend::Postgres) => " FOR UPDATE",
        _ => "",
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhooks WHERE org_id = $1 AND id = $2{lock}"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, WebhookRow>(sql)
        .bind(org_id).bind(id).fetch_optional(&mut *c).await)?)
}

/// The org's subscriptions, oldest first.
pub async fn of_org(tx: &mut Tx, org_id: Uuid) -> Result<Vec<WebhookRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhooks WHERE org_id = $1 ORDER BY id"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, WebhookRow>(sql)
        .bind(org_id).fetch_all(&mut *c).await)?)
}

/// `(id, event_types)` of the org's enabled subscriptions.
pub async fn enabled_of_org(tx: &mut Tx, org_id: Uuid) -> Result<Vec<(Uuid, String)>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, (Uuid, String)>(
        "SELECT id, event_types FROM webhooks WHERE org_id = $1 AND enabled = TRUE ORDER BY id")
        .bind(org_id).fetch_all(&mut *c).await)?)
}

/// Replaces the signing secret; the old one keeps signing until `previous_until`.
pub async fn rotate_secret(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    secret: &str,
    previous_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE webhooks SET previous_secret = secret, previous_secret_until = $4, secret = $3,
            updated_at = $5
         WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(id).bind(secret).bind(previous_until).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Deletes a subscription with its deliveries and log.
pub async fn delete(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<bool> {
    on_tx!(tx, c => sqlx::query("DELETE FROM webhook_attempts WHERE org_id = $1 AND webhook_id = $2")
        .bind(org_id).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    on_tx!(tx, c => sqlx::query("DELETE FROM webhook_deliveries WHERE org_id = $1 AND webhook_id = $2")
        .bind(org_id).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    let n = on_tx!(tx, c => sqlx::query("DELETE FROM webhooks WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A delivery to queue: one event for one subscription.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: Uuid,
    pub org_id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_seq: i64,
    pub event_type: String,
    pub at: DateTime<Utc>,
}

pub async fn insert_deliveries(tx: &mut Tx, rows: &[NewDelivery]) -> Result<()> {
    for chunk in super::size_chunks(tx, rows, 20, |r| r.event_type.len() + 120) {
        on_tx!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO webhook_deliveries (id, org_id, webhook_id, event_id, event_seq,
                event_type, created_at, available_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.id)
                    .push_bind(r.org_id)
                    .push_bind(r.webhook_id)
                    .push_bind(r.event_id)
                    .push_bind(r.event_seq)
                    .push_bind(r.event_type.clone())
                    .push_bind(r.at)
                    .push_bind(r.at);
            });
            q.build().execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// A claimed delivery with what sending it needs.
#[derive(Clone)]
pub struct ClaimedDelivery {
    pub id: Uuid,
    pub org_id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_seq: i64,
    pub event_type: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub url: String,
    pub secret: String,
    /// The secret before a rotation, while it still signs.
    pub previous_secret: Option<String>,
}

impl std::fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("id", &self.id)
            .field("webhook_id", &self.webhook_id)
            .field("event_id", &self.event_id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Claims up to `limit` due deliveries of enabled subscriptions until `lease_until`, counting
/// the attempt.
pub async fn claim_due(
    tx: &mut Tx,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ClaimedDelivery>> {
    let skip_locked = match tx.backend() {
        Backend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND d.available_at <= $1
           AND (d.claimed_until IS NULL OR d.claimed_until <= $1) AND w.enabled = TRUE
         ORDER BY d.available_at, d.event_seq LIMIT $2{skip_locked}"
    ));
    let ids: Vec<Uuid> = on_tx!(tx, c => sqlx::query_scalar(sql)
        .bind(now).bind(limit).fetch_all(&mut *c).await)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let (id, org_id, webhook_id, event_id, event_seq, event_type, attempts) = on_tx!(tx, c =>
            sqlx::query_as::<_, (Uuid, Uuid, Uuid, Uuid, i64, String, i64)>(
            "UPDATE webhook_deliveries SET claimed_until = $2, attempts = attempts + 1
             WHERE id = $1
             RETURNING id, org_id, webhook_id, event_id, event_seq, event_type, attempts")
            .bind(id).bind(lease_until).fetch_one(&mut *c).await)?;
        let (url, secret, previous_secret) = on_tx!(tx, c =>
            sqlx::query_as::<_, (String, String, Option<String>)>(
            "SELECT url, secret, CASE WHEN previous_secret_until > $3 THEN previous_secret END
             FROM webhooks WHERE org_id = $1 AND id = $2")
            .bind(org_id).bind(webhook_id).bind(now).fetch_one(&mut *c).await)?;
        out.push(ClaimedDelivery {
            id,
            org_id,
            webhook_id,
            event_id,
            event_seq,
            event_type,
            attempts,
            url,
            secret,
            previous_secret,
        });
    }
    Ok(out)
}

/// One attempt's outcome, for the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: Uuid,
    #[serde(skip)]
    pub org_id: Uuid,
    pub webhook_id: Uuid,
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub attempt: i64,
    pub at: DateTime<Utc>,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub succeeded: bool,
    pub retry_at: Option<DateTime<Utc>>,
}

const ATTEMPT_COLUMNS: &str = "id, org_id, webhook_id, delivery_id, event_id, event_type, \
    attempt, at, duration_ms, status_code, error, succeeded, retry_at";

/// Records an attempt and moves its delivery on (delivered, retried at `retry_at`, or given
/// up); a no-op (false) if the claim `lease` was lost meanwhile.
pub async fn record_attempt(tx: &mut Tx, a: &AttemptRow, lease: DateTime<Utc>) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE webhook_deliveries SET claimed_until = NULL,
            delivered_at = CASE WHEN $3 THEN $4 ELSE NULL END,
            available_at = COALESCE($5, available_at),
            failed_at = CASE WHEN NOT $3 AND $5 IS NULL THEN $4 ELSE NULL END
         WHERE id = $1 AND claimed_until = $2")
        .bind(a.delivery_id).bind(lease).bind(a.succeeded).bind(a.at).bind(a.retry_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Ok(false);
    }
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO webhook_attempts (id, org_id, webhook_id, delivery_id, event_id, event_type,
            attempt, at, duration_ms, status_code, error, succeeded, retry_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
        .bind(a.id).bind(a.org_id).bind(a.webhook_id).bind(a.delivery_id).bind(a.event_id)
        .bind(&a.event_type).bind(a.attempt).bind(a.at).bind(a.duration_ms).bind(a.status_code)
        .bind(&a.error).bind(a.succeeded).bind(a.retry_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(true)
}

/// Counts a subscription's failed attempt (returns the run of failures so far) or resets the
/// count after a success.
pub async fn count_outcome(tx: &mut Tx, org_id: Uuid, id: Uuid, succeeded: bool) -> Result<i64> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "UPDATE webhooks SET consecutive_failures =
            CASE WHEN $3 THEN 0 ELSE consecutive_failures + 1 END
         WHERE org_id = $1 AND id = $2 RETURNING consecutive_failures")
        .bind(org_id).bind(id).bind(succeeded).fetch_optional(&mut *c).await)?
    .unwrap_or(0))
}

/// A subscription's delivery log, newest first; `before` continues after the last attempt of
/// the previous page.
pub async fn attempts(
    tx: &mut Tx,
    org_id: Uuid,
    webhook_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AttemptRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts
         WHERE org_id = $1 AND webhook_id = $2 AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, AttemptRow>(sql)
        .bind(org_id).bind(webhook_id).bind(before).bind(limit).fetch_all(&mut *c).await)?)
}

/// Deliveries of a subscription still to be made (pending or retrying).
pub async fn pending(tx: &mut Tx, org_id: Uuid, webhook_id: Uuid) -> Result<i64> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_deliveries
         WHERE org_id = $1 AND webhook_id = $2 AND delivered_at IS NULL AND failed_at IS NULL")
        .bind(org_id).bind(webhook_id).fetch_one(&mut *c).await)?)
}

/// Deletes finished deliveries (delivered or given up before `before`) and their log rows.
pub async fn prune(tx: &mut Tx, before: DateTime<Utc>) -> Result<u64> {
    on_tx!(tx, c => sqlx::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (
            SELECT id FROM webhook_deliveries WHERE delivered_at < $1 OR failed_at < $1)")
        .bind(before).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(on_tx!(tx, c => sqlx::query(
        "DELETE FROM webhook_deliveries WHERE delivered_at < $1 OR failed_at < $1")
        .bind(before).execute(&mut *c).await.map(|r| r.rows_affected()))?)
}
