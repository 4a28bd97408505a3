//! The events feed: rows numbered per org (`seq`) in the order their transactions commit.
//!
//! [`next_seqs`] takes the org's next numbers by updating its `event_counters` row, which holds
//! that row's lock until the transaction ends (SQLite has one writer anyway): a transaction that
//! numbers events after another one also commits after it, so a reader continuing after the last
//! `seq` it saw never skips an event that commits later with a smaller number.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Result, Tx, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRow {
    pub org_id: Uuid,
    pub seq: i64,
    pub id: Uuid,
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub subject_kind: String,
    pub subject_id: Option<String>,
    pub audit_id: Option<Uuid>,
    /// JSON.
    pub data: String,
}

const COLUMNS: &str = "org_id, seq, id, event_type, at, subject_kind, subject_id, audit_id, data";

/// Reserves `n` numbers for the org's next events; returns the first. Locks the org's counter
/// until the transaction ends.
pub async fn next_seqs(tx: &mut Tx, org_id: Uuid, n: i64) -> Result<i64> {
    let last: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "INSERT INTO event_counters (org_id, last_seq) VALUES ($1, $2)
         ON CONFLICT (org_id) DO UPDATE SET last_seq = event_counters.last_seq + $2
         RETURNING last_seq")
        .bind(org_id).bind(n).fetch_one(&mut *c).await)?;
    Ok(last - n + 1)
}

pub async fn insert_many(tx: &mut Tx, rows: &[EventRow]) -> Result<()> {
    let size = |r: &EventRow| {
        r.data.len()
            + r.event_type.len()
            + r.subject_kind.len()
            + r.subject_id.as_ref().map_or(0, String::len)
            + 120
    };
    for chunk in super::size_chunks(tx, rows, 9, size) {
        on_tx!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO events (org_id, seq, id, event_type, at, subject_kind, subject_id,
                audit_id, data) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.org_id)
                    .push_bind(r.seq)
                    .push_bind(r.id)
                    .push_bind(r.event_type.clone())
                    .push_bind(r.at)
                    .push_bind(r.subject_kind.clone())
                    .push_bind(r.subject_id.clone())
                    .push_bind(r.audit_id)
                    .push_bind(r.data.clone());
            });
            q.build().execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// The org's events after `after` (a `seq`), oldest first.
pub async fn page(tx: &mut Tx, org_id: Uuid, after: i64, limit: i64) -> Result<Vec<EventRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, EventRow>(sql)
        .bind(org_id).bind(after).bind(limit).fetch_all(&mut *c).await)?)
}

/// One event of the org.
pub async fn by_id(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<Option<EventRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM events WHERE org_id = $1 AND id = $2"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, EventRow>(sql)
        .bind(org_id).bind(id).fetch_optional(&mut *c).await)?)
}

/// The org's last event number (0 before the first event).
pub async fn last_seq(tx: &mut Tx, org_id: Uuid) -> Result<i64> {
    let last: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT last_seq FROM event_counters WHERE org_id = $1")
        .bind(org_id).fetch_optional(&mut *c).await)?;
    Ok(last.unwrap_or(0))
}

/// Every event's `(seq, subject_id, data)` of the org, for erasure.
pub async fn values(
    tx: &mut Tx,
    org_id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Option<String>, String)>> {
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, (i64, Option<String>, String)>(
        "SELECT seq, subject_id, data FROM events WHERE org_id = $1 AND seq > $2
         ORDER BY seq LIMIT $3")
        .bind(org_id).bind(after.unwrap_or(0)).bind(limit).fetch_all(&mut *c).await)?,
    )
}

/// Replaces an event's data (erasure); type, time and number stay.
pub async fn rewrite_data(tx: &mut Tx, org_id: Uuid, seq: i64, data: &str) -> Result<()> {
    on_tx!(tx, c => sqlx::query("UPDATE events SET data = $3 WHERE org_id = $1 AND seq = $2")
        .bind(org_id).bind(seq).bind(data)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}
