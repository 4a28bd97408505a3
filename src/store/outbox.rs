//! The email outbox: one row per email, written in the same transaction as the change that
//! caused it, delivered at least once by the delivery worker.
//!
//! An invitation email's body holds [`LINK_TOKEN`] where the accept link's token goes; the token
//! itself is kept in `link_token` only while the email may still go out: sending, giving up,
//! cancelling or the link's expiry (`expires_at`) wipe it, so no usable link stays at rest.
//!
//! Claiming takes a lease (`claimed_until`) so a crashed worker's rows come back; on PostgreSQL
//! the claim also skips rows another replica holds (`FOR UPDATE SKIP LOCKED`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Backend, Result, Tx, on_tx};

/// Where the invitation token goes in an email body (filled in only when the email is sent).
pub const LINK_TOKEN: &str = "{invitation_token}";

#[derive(Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub member_id: Option<Uuid>,
    pub kind: String,
    pub idempotency_key: String,
    pub to_address: String,
    pub subject: String,
    #[serde(skip)]
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub available_at: DateTime<Utc>,
    pub attempts: i64,
    pub claimed_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The invitation token the body's [`LINK_TOKEN`] stands for, until the email is done with.
    #[serde(skip)]
    pub link_token: Option<String>,
    /// After this the email is not worth sending (its link expired): cancelled, token wiped.
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for OutboxRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRow")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("member_id", &self.member_id)
            .field("kind", &self.kind)
            .field("idempotency_key", &self.idempotency_key)
            .field("to_address", &self.to_address)
            .field("subject", &self.subject)
            .field("created_at", &self.created_at)
            .field("available_at", &self.available_at)
            .field("attempts", &self.attempts)
            .field("claimed_until", &self.claimed_until)
            .field("last_error", &self.last_error)
            .field("sent_at", &self.sent_at)
            .field("failed_at", &self.failed_at)
            .field("cancelled_at", &self.cancelled_at)
            .field(
                "link_token",
                &self.link_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl OutboxRow {
    /// The body as it goes out: [`LINK_TOKEN`] replaced by the token. The placeholder is the
    /// last one in the body (names and org names come before the link, so a name that happens to
    /// spell the placeholder is left as it is). `None` if the token is needed but gone.
    pub fn rendered_body(&self) -> Option<String> {
        let Some(at) = self.body.rfind(LINK_TOKEN) else {
            return Some(self.body.clone());
        };
        let token = self.link_token.as_deref()?;
        let mut body = self.body.clone();
        body.replace_range(at..at + LINK_TOKEN.len(), token);
        Some(body)
    }
}

const COLUMNS: &str = "id, org_id, member_id, kind, idempotency_key, to_address, subject, body, \
    created_at, available_at, attempts, claimed_until, last_error, sent_at, failed_at, cancelled_at, \
    link_token, expires_at";

pub async fn insert(tx: &mut Tx, row: &OutboxRow) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO outbox (id, org_id, member_id, kind, idempotency_key, to_address, subject,
            body, created_at, available_at, link_token, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(row.id)
        .bind(row.org_id)
        .bind(row.member_id)
        .bind(&row.kind)
        .bind(&row.idempotency_key)
        .bind(&row.to_address)
        .bind(&row.subject)
        .bind(&row.body)
        .bind(row.created_at)
        .bind(row.available_at)
        .bind(&row.link_token)
        .bind(row.expires_at)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Claims up to `limit` due emails until `lease_until`, counting the attempt. Emails whose link
/// expired before they could go out are cancelled first (and their token wiped).
pub async fn claim_due(
    tx: &mut Tx,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<OutboxRow>> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE outbox SET cancelled_at = $1, link_token = NULL,
            last_error = 'cancelled: the link expired before the email could be sent'
         WHERE expires_at <= $1 AND sent_at IS NULL AND failed_at IS NULL AND cancelled_at IS NULL
           AND (claimed_until IS NULL OR claimed_until <= $1)")
        .bind(now).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    let skip_locked = match tx.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE outbox SET claimed_until = $2, attempts = attempts + 1
         WHERE id IN (
            SELECT id FROM outbox
            WHERE sent_at IS NULL AND failed_at IS NULL AND cancelled_at IS NULL
              AND available_at <= $1
              AND (claimed_until IS NULL OR claimed_until <= $1)
            ORDER BY available_at LIMIT $3{skip_locked})
         RETURNING {COLUMNS}"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, OutboxRow>(sql)
        .bind(now).bind(lease_until).bind(limit).fetch_all(&mut *c).await)?)
}

/// Marks a claimed email sent; a no-op (false) if the claim `lease` was lost meanwhile.
pub async fn mark_sent(
    tx: &mut Tx,
    id: Uuid,
    lease: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE outbox SET sent_at = $2, claimed_until = NULL, last_error = NULL, link_token = NULL
         WHERE id = $1 AND claimed_until = $3")
        .bind(id).bind(at).bind(lease).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Records a failed attempt: retried at `retry_at`, or given up when `retry_at` is `None`.
/// A no-op if the claim `lease` was lost meanwhile.
pub async fn mark_failed(
    tx: &mut Tx,
    id: Uuid,
    lease: DateTime<Utc>,
    error: &str,
    now: DateTime<Utc>,
    retry_at: Option<DateTime<Utc>>,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE outbox SET last_error = $2, claimed_until = NULL,
            available_at = COALESCE($3, available_at),
            failed_at = CASE WHEN $3 IS NULL THEN $4 ELSE NULL END,
            link_token = CASE WHEN $3 IS NULL THEN NULL ELSE link_token END
         WHERE id = $1 AND claimed_until = $5")
        .bind(id).bind(error).bind(retry_at).bind(now).bind(lease).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Cancels a member's emails that have not gone out yet (after removal or enrolment). An email
/// already claimed by a worker may still be delivered (at least once).
pub async fn cancel_for_member(
    tx: &mut Tx,
    member_id: Uuid,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE outbox SET cancelled_at = $2, last_error = $3, link_token = NULL
         WHERE member_id = $1 AND sent_at IS NULL AND failed_at IS NULL AND cancelled_at IS NULL")
        .bind(member_id).bind(at).bind(reason).execute(&mut *c).await.map(|r| r.rows_affected()))?)
}

/// Emails of one org, newest first (for tests and the operator).
pub async fn for_org(tx: &mut Tx, org_id: Uuid, limit: i64) -> Result<Vec<OutboxRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbox WHERE org_id = $1 ORDER BY id DESC LIMIT $2"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, OutboxRow>(sql).bind(org_id).bind(limit).fetch_all(&mut *c).await)?,
    )
}

/// Queues many emails (a sync's invitations).
pub async fn insert_many(tx: &mut Tx, rows: &[OutboxRow]) -> Result<()> {
    let size = |r: &OutboxRow| {
        r.body.len()
            + r.subject.len()
            + r.to_address.len()
            + r.idempotency_key.len()
            + r.link_token.as_ref().map_or(0, String::len)
            + 180
    };
    for chunk in super::size_chunks(tx, rows, 16, size) {
        on_tx!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO outbox (id, org_id, member_id, kind, idempotency_key, to_address,
                subject, body, created_at, available_at, link_token, expires_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.id)
                    .push_bind(r.org_id)
                    .push_bind(r.member_id)
                    .push_bind(r.kind.clone())
                    .push_bind(r.idempotency_key.clone())
                    .push_bind(r.to_address.clone())
                    .push_bind(r.subject.clone())
                    .push_bind(r.body.clone())
                    .push_bind(r.created_at)
                    .push_bind(r.available_at)
                    .push_bind(r.link_token.clone())
                    .push_bind(r.expires_at);
            });
            q.build().execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// Emails waiting to leave (not sent, not given up, not cancelled), for the metrics.
pub async fn backlog(tx: &mut Tx) -> Result<i64> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL AND cancelled_at IS NULL")
        .fetch_one(&mut *c).await)?)
}
