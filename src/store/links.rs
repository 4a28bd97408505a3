//! Source links: which integration claims a member, under which external id.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Result, Tx, on_tx};

/// Makes `external_id` (or nothing) the member's one link for `source`.
pub async fn replace_for_member(
    tx: &mut Tx,
    org_id: Uuid,
    source: &str,
    member_id: Uuid,
    external_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "DELETE FROM member_links WHERE org_id = $1 AND source = $2 AND member_id = $3")
        .bind(org_id).bind(source).bind(member_id)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    if let Some(x) = external_id {
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO member_links (org_id, source, external_id, member_id, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (org_id, source, external_id) DO UPDATE SET member_id = excluded.member_id")
            .bind(org_id).bind(source).bind(x).bind(member_id).bind(now)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}
