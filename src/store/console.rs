//! The web console's sign-in links and sessions: only hashes of their secrets are kept.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Result, Tx, on_tx};

/// A one-time sign-in link emailed to an org's owner or admin.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SignInLink {
    pub id: Uuid,
    pub org_id: Uuid,
    pub member_id: Uuid,
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// A signed-in browser. No `org_id`: the operator's session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub token_hash: Vec<u8>,
    pub org_id: Option<Uuid>,
    pub member_id: Option<Uuid>,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

pub async fn insert_link(tx: &mut Tx, l: &SignInLink) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO console_sign_in_links (id, org_id, member_id, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(l.id).bind(l.org_id).bind(l.member_id).bind(&l.token_hash)
        .bind(l.created_at).bind(l.expires_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn link_by_token_hash(tx: &mut Tx, hash: &[u8]) -> Result<Option<SignInLink>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, SignInLink>(
        "SELECT id, org_id, member_id, token_hash, created_at, expires_at, used_at
         FROM console_sign_in_links WHERE token_hash = $1")
        .bind(hash.to_vec()).fetch_optional(&mut *c).await)?)
}

/// Marks a link used; false when it already was (another request got there first).
pub async fn use_link(tx: &mut Tx, org_id: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE console_sign_in_links SET used_at = $3
         WHERE org_id = $1 AND id = $2 AND used_at IS NULL")
        .bind(org_id).bind(id).bind(at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn insert_session(tx: &mut Tx, s: &Session) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO console_sessions (id, token_hash, org_id, member_id, csrf, created_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(s.id).bind(&s.token_hash).bind(s.org_id).bind(s.member_id).bind(&s.csrf)
        .bind(s.created_at).bind(s.last_seen_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn session_by_token_hash(tx: &mut Tx, hash: &[u8]) -> Result<Option<Session>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, Session>(
        "SELECT id, token_hash, org_id, member_id, csrf, created_at, last_seen_at, ended_at
         FROM console_sessions WHERE token_hash = $1")
        .bind(hash.to_vec()).fetch_optional(&mut *c).await)?)
}

/// Records that a session was used now.
pub async fn touch_session(tx: &mut Tx, id: Uuid, at: DateTime<Utc>) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE console_sessions SET last_seen_at = $2 WHERE id = $1 AND ended_at IS NULL")
        .bind(id).bind(at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Ends one session; false when it had already ended.
pub async fn end_session(tx: &mut Tx, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE console_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
        .bind(id).bind(at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Ends every open session of one member of an org (removed, demoted); how many ended.
pub async fn end_member_sessions(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Uuid,
    at: DateTime<Utc>,
) -> Result<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE console_sessions SET ended_at = $3
         WHERE org_id = $1 AND member_id = $2 AND ended_at IS NULL")
        .bind(org_id).bind(member_id).bind(at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?)
}
