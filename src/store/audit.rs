//! The audit log: append-only. There is no delete statement for it anywhere, and no update
//! outside erasure (`store::erase::anonymise_audit`, which only anonymises values).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Result, Tx, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_label: String,
    pub action: String,
    pub subject_kind: String,
    pub subject_id: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

const COLUMNS: &str = "id, org_id, at, actor_kind, actor_id, actor_label, action, subject_kind, subject_id, before, after";

pub async fn append(tx: &mut Tx, row: &AuditRow) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO audit_log
           (id, org_id, at, actor_kind, actor_id, actor_label, action, subject_kind, subject_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(row.id)
        .bind(row.org_id)
        .bind(row.at)
        .bind(&row.actor_kind)
        .bind(&row.actor_id)
        .bind(&row.actor_label)
        .bind(&row.action)
        .bind(&row.subject_kind)
        .bind(&row.subject_id)
        .bind(&row.before)
        .bind(&row.after)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Newest first; `before_id` continues after the last row of the previous page.
pub async fn page(
    tx: &mut Tx,
    org_id: Uuid,
    before_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditRow>> {
    let rows = match before_id {
        Some(cursor) => {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ));
            on_tx!(tx, c => sqlx::query_as::<_, AuditRow>(sql)
                .bind(org_id).bind(cursor).bind(limit).fetch_all(&mut *c).await)?
        }
        None => {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE org_id = $1 ORDER BY id DESC LIMIT $2"
            ));
            on_tx!(tx, c => sqlx::query_as::<_, AuditRow>(sql)
                .bind(org_id).bind(limit).fetch_all(&mut *c).await)?
        }
    };
    Ok(rows)
}

/// Appends many entries (a sync's creates).
pub async fn append_many(tx: &mut Tx, rows: &[AuditRow]) -> Result<()> {
    let size = |r: &AuditRow| {
        r.before.as_ref().map_or(0, String::len)
            + r.after.as_ref().map_or(0, String::len)
            + r.actor_label.len()
            + r.action.len()
            + 200
    };
    for chunk in super::size_chunks(tx, rows, 10, size) {
        on_tx!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO audit_log (id, org_id, at, actor_kind, actor_id, actor_label, action,
                subject_kind, subject_id, before, after) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.id)
                    .push_bind(r.org_id)
                    .push_bind(r.at)
                    .push_bind(r.actor_kind.clone())
                    .push_bind(r.actor_id.clone())
                    .push_bind(r.actor_label.clone())
                    .push_bind(r.action.clone())
                    .push_bind(r.subject_kind.clone())
                    .push_bind(r.subject_id.clone())
                    .push_bind(r.before.clone())
                    .push_bind(r.after.clone());
            });
            q.build().execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// One subject's entries (e.g. `("member", id)`), newest first; `before_id` continues after
/// the last row of the previous page.
pub async fn page_for_subject(
    tx: &mut Tx,
    org_id: Uuid,
    subject: (&str, &str),
    before_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_log
         WHERE org_id = $1 AND subject_kind = $2 AND subject_id = $3 AND ($4 IS NULL OR id < $4)
         ORDER BY id DESC LIMIT $5"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, AuditRow>(sql)
        .bind(org_id).bind(subject.0).bind(subject.1).bind(before_id).bind(limit)
        .fetch_all(&mut *c).await)?)
}
