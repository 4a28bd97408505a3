//! Entitlements (`entitlements`): named items attached to a group — a training course, a
//! licence — with an optional reference in another system. Members have them through their
//! groups; nothing here touches membership.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Result, Tx, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Entitlement {
    pub id: Uuid,
    pub org_id: Uuid,
    pub group_id: Uuid,
    pub name: String,
    pub external_ref: Option<String>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, org_id, group_id, name, external_ref, created_at";

/// Adds one; a name the group already has (any case) is `StoreError::Unique`.
pub async fn insert(tx: &mut Tx, e: &Entitlement) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO entitlements (id, org_id, group_id, name, name_key, external_ref, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(e.id).bind(e.org_id).bind(e.group_id).bind(&e.name).bind(e.name.to_lowercase())
        .bind(&e.external_ref).bind(e.created_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A group's entitlements, by name.
pub async fn of_group(tx: &mut Tx, org_id: Uuid, group_id: Uuid) -> Result<Vec<Entitlement>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM entitlements WHERE org_id = $1 AND group_id = $2
         ORDER BY name_key, id"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, Entitlement>(sql)
        .bind(org_id).bind(group_id).fetch_all(&mut *c).await)?)
}

/// The entitlements of several groups of one org, by group then name.
pub async fn of_groups(tx: &mut Tx, org_id: Uuid, group_ids: &[Uuid]) -> Result<Vec<Entitlement>> {
    let mut out = Vec::new();
    for chunk in group_ids.chunks(500) {
        let placeholders: Vec<String> = (2..=chunk.len() + 1).map(|i| format!("${i}")).collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM entitlements WHERE org_id = $1 AND group_id IN ({})
             ORDER BY group_id, name_key, id",
            placeholders.join(", ")
        ));
        let rows: Vec<Entitlement> = on_tx!(tx, c => {
            let mut q = sqlx::query_as::<_, Entitlement>(sql).bind(org_id);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}

pub async fn by_id(
    tx: &mut Tx,
    org_id: Uuid,
    group_id: Uuid,
    id: Uuid,
) -> Result<Option<Entitlement>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM entitlements WHERE org_id = $1 AND group_id = $2 AND id = $3"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, Entitlement>(sql)
        .bind(org_id).bind(group_id).bind(id).fetch_optional(&mut *c).await)?)
}

pub async fn delete(tx: &mut Tx, org_id: Uuid, group_id: Uuid, id: Uuid) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "DELETE FROM entitlements WHERE org_id = $1 AND group_id = $2 AND id = $3")
        .bind(org_id).bind(group_id).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Drops a group's entitlements (the group is being deleted).
pub async fn delete_for_group(tx: &mut Tx, org_id: Uuid, group_id: Uuid) -> Result<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "DELETE FROM entitlements WHERE org_id = $1 AND group_id = $2")
        .bind(org_id).bind(group_id).execute(&mut *c).await.map(|r| r.rows_affected()))?)
}
