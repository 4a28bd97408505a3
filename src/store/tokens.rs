//! API tokens: only a SHA-256 hash of each secret is kept.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Result, Tx, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TokenRow {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub kind: String,
    pub name: String,
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, org_id, kind, name, secret_hash, created_at, last_used_at, revoked_at";

pub async fn insert(tx: &mut Tx, t: &TokenRow) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO tokens (id, org_id, kind, name, secret_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(t.id)
        .bind(t.org_id)
        .bind(&t.kind)
        .bind(&t.name)
        .bind(&t.secret_hash)
        .bind(t.created_at)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn by_id(tx: &mut Tx, id: Uuid) -> Result<Option<TokenRow>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, TokenRow>(sql).bind(id).fetch_optional(&mut *c).await)?)
}

pub async fn list_for_org(tx: &mut Tx, org_id: Uuid) -> Result<Vec<TokenRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tokens WHERE org_id = $1 ORDER BY id"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, TokenRow>(sql).bind(org_id).fetch_all(&mut *c).await)?)
}

/// Marks a token revoked; false when it did not exist or was already revoked.
pub async fn revoke(tx: &mut Tx, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
    let done = on_tx!(tx, c => sqlx::query(
        "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(at)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

pub async fn touch(tx: &mut Tx, id: Uuid, at: DateTime<Utc>) -> Result<()> {
    on_tx!(tx, c => sqlx::query("UPDATE tokens SET last_used_at = $2 WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}
