//! Reads for one member's detail: their source links, the audit entries about them (the status
//! trail) and the SCIM clients that wrote them. Every statement is scoped by org.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::audit::AuditRow;
use super::{Result, Tx, on_tx};

/// One source link of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LinkRow {
    pub source: String,
    pub external_id: String,
    /// Whether the link claims the member (stops other sources removing them).
    pub claiming: bool,
    pub created_at: DateTime<Utc>,
}

/// Every source link of a member (including the SCIM one, source `scim`), by source.
pub async fn links(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> Result<Vec<LinkRow>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, LinkRow>(
        "SELECT source, external_id, claiming, created_at FROM member_links
         WHERE org_id = $1 AND member_id = $2 ORDER BY source, external_id")
        .bind(org_id).bind(member_id).fetch_all(&mut *c).await)?)
}

const AUDIT_COLUMNS: &str = "id, org_id, at, actor_kind, actor_id, actor_label, action, \
    subject_kind, subject_id, before, after";

/// The newest `limit` audit entries about a member whose action is none of `skip`, newest
/// first.
pub async fn member_entries(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Uuid,
    skip: &[&str],
    limit: i64,
) -> Result<Vec<AuditRow>> {
    let placeholders: Vec<String> = (4..skip.len() + 4).map(|i| format!("${i}")).collect();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log
         WHERE org_id = $1 AND subject_kind = 'member' AND subject_id = $2
           AND action NOT IN ({})
         ORDER BY id DESC LIMIT $3",
        placeholders.join(", ")
    ));
    Ok(on_tx!(tx, c => {
        let mut q = sqlx::query_as::<_, AuditRow>(sql)
            .bind(org_id)
            .bind(member_id.to_string())
            .bind(limit);
        for a in skip {
            q = q.bind(*a);
        }
        q.fetch_all(&mut *c).await
    })?)
}

/// A SCIM client (token) that wrote a member, from the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct WriterRow {
    pub actor_id: Option<String>,
    pub actor_label: String,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

/// The SCIM clients that created or changed a member, first writer first.
pub async fn scim_writers(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> Result<Vec<WriterRow>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, WriterRow>(
        "SELECT actor_id, actor_label, MIN(at) AS first_at, MAX(at) AS last_at FROM audit_log
         WHERE org_id = $1 AND subject_kind = 'member' AND subject_id = $2
           AND actor_kind = 'scim_client'
         GROUP BY actor_id, actor_label ORDER BY MIN(at), actor_id")
        .bind(org_id).bind(member_id.to_string()).fetch_all(&mut *c).await)?)
}
