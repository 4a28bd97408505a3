//! Invite links: a URL (its token hashed) and an unlock code (hashed) that let one person join
//! an org without an email invitation.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Result, Tx, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct InviteLink {
    pub id: Uuid,
    pub org_id: Uuid,
    #[serde(skip)]
    pub token_hash: Vec<u8>,
    #[serde(skip)]
    pub code_hash: Vec<u8>,
    pub description: String,
    pub email: Option<String>,
    pub role: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub member_id: Option<Uuid>,
    pub failed_codes: i64,
}

const COLUMNS: &str = "id, org_id, token_hash, code_hash, description, email, role, created_by, \
     created_at, expires_at, revoked_at, accepted_at, member_id, failed_codes";

pub async fn insert(tx: &mut Tx, l: &InviteLink) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO invite_links (id, org_id, token_hash, code_hash, description, email, role,
             created_by, created_at, expires_at, failed_codes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)")
        .bind(l.id).bind(l.org_id).bind(&l.token_hash).bind(&l.code_hash).bind(&l.description)
        .bind(&l.email).bind(&l.role).bind(&l.created_by).bind(l.created_at).bind(l.expires_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Only a link and groups of `org_id` are ever paired.
pub async fn add_groups(
    tx: &mut Tx,
    org_id: Uuid,
    link_id: Uuid,
    group_ids: &[Uuid],
) -> Result<()> {
    for g in group_ids {
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO invite_link_groups (link_id, group_id)
             SELECT l.id, g.id FROM invite_links l JOIN groups g ON g.org_id = l.org_id
             WHERE l.org_id = $1 AND l.id = $2 AND g.id = $3
             ON CONFLICT (link_id, group_id) DO NOTHING")
            .bind(org_id).bind(link_id).bind(g).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// The groups a link's invitee joins, by id and name.
pub async fn groups_of(tx: &mut Tx, org_id: Uuid, link_id: Uuid) -> Result<Vec<(Uuid, String)>> {
    Ok(on_tx!(tx, c => sqlx::query_as(
        "SELECT g.id, g.name FROM invite_link_groups lg JOIN groups g ON g.id = lg.group_id
         WHERE g.org_id = $1 AND lg.link_id = $2 ORDER BY g.name_key")
        .bind(org_id).bind(link_id).fetch_all(&mut *c).await)?)
}

/// Every group name of an org's links, for a listing: (link id, group name).
pub async fn group_names(tx: &mut Tx, org_id: Uuid) -> Result<Vec<(Uuid, String)>> {
    Ok(on_tx!(tx, c => sqlx::query_as(
        "SELECT lg.link_id, g.name FROM invite_link_groups lg
         JOIN invite_links l ON l.id = lg.link_id JOIN groups g ON g.id = lg.group_id
         WHERE l.org_id = $1 ORDER BY g.name_key")
        .bind(org_id).fetch_all(&mut *c).await)?)
}

pub async fn by_token_hash(tx: &mut Tx, hash: &[u8]) -> Result<Option<InviteLink>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invite_links WHERE token_hash = $1"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, InviteLink>(sql).bind(hash).fetch_optional(&mut *c).await)?,
    )
}

/// A link of an org, locked for update on PostgreSQL when `lock`.
pub async fn by_id(tx: &mut Tx, org_id: Uuid, id: Uuid, lock: bool) -> Result<Option<InviteLink>> {
    let suffix = if lock && tx.backend() == super::Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invite_links WHERE org_id = $1 AND id = $2{suffix}"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, InviteLink>(sql).bind(org_id).bind(id).fetch_optional(&mut *c).await)?,
    )
}

/// An org's links, newest first.
pub async fn list(tx: &mut Tx, org_id: Uuid, limit: i64) -> Result<Vec<InviteLink>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invite_links WHERE org_id = $1
         ORDER BY created_at DESC, id DESC LIMIT $2"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, InviteLink>(sql).bind(org_id).bind(limit).fetch_all(&mut *c).await)?,
    )
}

pub async fn revoke(tx: &mut Tx, org_id: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<()> {
    on_tx!(tx, c => sqlx::query("UPDATE invite_links SET revoked_at = $3 WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(id).bind(at).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Counts one wrong code; answers the new count.
pub async fn count_failure(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<i64> {
    let (n,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "UPDATE invite_links SET failed_codes = failed_codes + 1 WHERE org_id = $1 AND id = $2
         RETURNING failed_codes")
        .bind(org_id).bind(id).fetch_one(&mut *c).await)?;
    Ok(n)
}

pub async fn accept(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    member_id: Uuid,
    at: DateTime<Utc>,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE invite_links SET accepted_at = $3, member_id = $4 WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(id).bind(at).bind(member_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Forgets a deleted group in the links that named it.
pub async fn forget_group(tx: &mut Tx, org_id: Uuid, group_id: Uuid) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "DELETE FROM invite_link_groups
         WHERE group_id = $2 AND link_id IN (SELECT id FROM invite_links WHERE org_id = $1)")
        .bind(org_id).bind(group_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}
