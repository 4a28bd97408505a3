//! Org-defined attributes (`attributes`) and members' values (`member_attributes`).
//!
//! Values are kept in their canonical text form (see `domain::attribute`). While an attribute
//! is unique, each value row repeats its value in `unique_key`, and the unique index on
//! `(org_id, attribute_id, unique_key)` refuses a second member with the same value: uniqueness
//! is the database's, not only a check.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Result, StoreError, Tx, on_tx};
use crate::domain::attribute::AttrKind;

/// An attribute definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttributeDef {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: AttrKind,
    /// The choices of a `choice` attribute (empty for the other types).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    pub required: bool,
    pub unique: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct DefRow {
    id: Uuid,
    org_id: Uuid,
    name: String,
    kind: String,
    options: Option<String>,
    required: bool,
    is_unique: bool,
    description: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<DefRow> for AttributeDef {
    type Error = StoreError;
    fn try_from(r: DefRow) -> Result<Self> {
        let kind = r.kind.parse().map_err(StoreError::Corrupt)?;
        let options = match r.options {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("attribute options: {e}")))?,
            None => Vec::new(),
        };
        Ok(AttributeDef {
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            kind,
            options,
            required: r.required,
            unique: r.is_unique,
            description: r.description,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str =
    "id, org_id, name, kind, options, required, is_unique, description, created_at, updated_at";

fn options_json(d: &AttributeDef) -> Option<String> {
    (d.kind == AttrKind::Choice).then(|| serde_json::to_string(&d.options).unwrap_or_default())
}

/// The org's attributes, by name.
pub async fn list(tx: &mut Tx, org_id: Uuid) -> Result<Vec<AttributeDef>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM attributes WHERE org_id = $1 ORDER BY name_key"
    ));
    let rows: Vec<DefRow> =
        on_tx!(tx, c => sqlx::query_as(sql).bind(org_id).fetch_all(&mut *c).await)?;
    rows.into_iter().map(AttributeDef::try_from).collect()
}

/// One attribute by name (any case).
pub async fn by_name(tx: &mut Tx, org_id: Uuid, name: &str) -> Result<Option<AttributeDef>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM attributes WHERE org_id = $1 AND name_key = $2"
    ));
    let row: Option<DefRow> = on_tx!(tx, c => sqlx::query_as(sql)
        .bind(org_id).bind(name.to_lowercase()).fetch_optional(&mut *c).await)?;
    row.map(AttributeDef::try_from).transpose()
}

/// Adds one; a name the org already has (any case) is `StoreError::Unique`.
pub async fn insert(tx: &mut Tx, d: &AttributeDef) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO attributes (id, org_id, name, name_key, kind, options, required, is_unique,
            description, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(d.id).bind(d.org_id).bind(&d.name).bind(d.name.to_lowercase())
        .bind(d.kind.as_str()).bind(options_json(d)).bind(d.required).bind(d.unique)
        .bind(&d.description).bind(d.created_at).bind(d.updated_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Writes every field of a definition (not its values: see [`set_unique`]).
pub async fn update(tx: &mut Tx, d: &AttributeDef) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE attributes SET name = $3, name_key = $4, kind = $5, options = $6, required = $7,
            is_unique = $8, description = $9, updated_at = $10
         WHERE org_id = $1 AND id = $2")
        .bind(d.org_id).bind(d.id).bind(&d.name).bind(d.name.to_lowercase())
        .bind(d.kind.as_str()).bind(options_json(d)).bind(d.required).bind(d.unique)
        .bind(&d.description).bind(d.updated_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn delete(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<()> {
    on_tx!(tx, c => sqlx::query("DELETE FROM attributes WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// How many members hold a value of the attribute.
pub async fn value_count(tx: &mut Tx, org_id: Uuid, attribute_id: Uuid) -> Result<i64> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM member_attributes WHERE org_id = $1 AND attribute_id = $2")
        .bind(org_id).bind(attribute_id).fetch_one(&mut *c).await)?)
}

/// How many members hold each value of the attribute (the values in use), for option changes.
pub async fn values_in_use(
    tx: &mut Tx,
    org_id: Uuid,
    attribute_id: Uuid,
) -> Result<Vec<(String, i64)>> {
    Ok(on_tx!(tx, c => sqlx::query_as(
        "SELECT value_text, COUNT(*) FROM member_attributes WHERE org_id = $1 AND attribute_id = $2
         GROUP BY value_text ORDER BY value_text")
        .bind(org_id).bind(attribute_id).fetch_all(&mut *c).await)?)
}

/// How many current members (invited, enrolled, disabled) have no value of the attribute.
pub async fn missing_count(tx: &mut Tx, org_id: Uuid, attribute_id: Uuid) -> Result<i64> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM members m
         WHERE m.org_id = $1 AND m.access IN ('invited', 'enrolled', 'disabled')
           AND NOT EXISTS (SELECT 1 FROM member_attributes a
               WHERE a.org_id = $1 AND a.member_id = m.id AND a.attribute_id = $2)")
        .bind(org_id).bind(attribute_id).fetch_one(&mut *c).await)?)
}

/// Makes the index enforce (or stop enforcing) the attribute's uniqueness. Existing duplicates
/// make this `StoreError::Unique`.
pub async fn set_unique(tx: &mut Tx, org_id: Uuid, attribute_id: Uuid, unique: bool) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE member_attributes SET unique_key = CASE WHEN $3 THEN value_text ELSE NULL END
         WHERE org_id = $1 AND attribute_id = $2")
        .bind(org_id).bind(attribute_id).bind(unique)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A value that more than one member holds, if any.
pub async fn a_duplicate(tx: &mut Tx, org_id: Uuid, attribute_id: Uuid) -> Result<Option<String>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT value_text FROM member_attributes WHERE org_id = $1 AND attribute_id = $2
         GROUP BY value_text HAVING COUNT(*) > 1 ORDER BY value_text LIMIT 1")
        .bind(org_id).bind(attribute_id).fetch_optional(&mut *c).await)?)
}

/// The member holding a value, if any.
pub async fn holder(
    tx: &mut Tx,
    org_id: Uuid,
    attribute_id: Uuid,
    value: &str,
) -> Result<Option<Uuid>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT member_id FROM member_attributes
         WHERE org_id = $1 AND attribute_id = $2 AND value_text = $3 LIMIT 1")
        .bind(org_id).bind(attribute_id).bind(value).fetch_optional(&mut *c).await)?)
}

/// One member's values: `(attribute id, value)`.
pub async fn values_of(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> Result<Vec<(Uuid, String)>> {
    Ok(on_tx!(tx, c => sqlx::query_as(
        "SELECT attribute_id, value_text FROM member_attributes
         WHERE org_id = $1 AND member_id = $2")
        .bind(org_id).bind(member_id).fetch_all(&mut *c).await)?)
}

/// The values of many members of one org at once (list pages, export batches, SCIM lists).
/// Members without values are absent from the map.
pub async fn values_for(
    tx: &mut Tx,
    org_id: Uuid,
    member_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<(Uuid, String)>>> {
    let mut out: HashMap<Uuid, Vec<(Uuid, String)>> = HashMap::new();
    for chunk in member_ids.chunks(500) {
        let placeholders: Vec<String> = (2..=chunk.len() + 1).map(|i| format!("${i}")).collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT member_id, attribute_id, value_text FROM member_attributes
             WHERE org_id = $1 AND member_id IN ({})",
            placeholders.join(", ")
        ));
        let rows: Vec<(Uuid, Uuid, String)> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(sql).bind(org_id);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await
        })?;
        for (m, a, v) in rows {
            out.entry(m).or_default().push((a, v));
        }
    }
    Ok(out)
}

/// Sets one member's value; a unique attribute's value another member holds is
/// `StoreError::Unique`.
pub async fn set_value(
    tx: &mut Tx,
    org_id: Uuid,
    attribute_id: Uuid,
    member_id: Uuid,
    value: &str,
    unique: bool,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO member_attributes (org_id, attribute_id, member_id, value_text, unique_key)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id, member_id, attribute_id)
         DO UPDATE SET value_text = excluded.value_text, unique_key = excluded.unique_key")
        .bind(org_id).bind(attribute_id).bind(member_id).bind(value)
        .bind(unique.then_some(value))
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Clears one member's value.
pub async fn clear_value(
    tx: &mut Tx,
    org_id: Uuid,
    attribute_id: Uuid,
    member_id: Uuid,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "DELETE FROM member_attributes WHERE org_id = $1 AND attribute_id = $2 AND member_id = $3")
        .bind(org_id).bind(attribute_id).bind(member_id)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Drops every value of a member (erasure).
pub async fn delete_for_member(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> Result<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "DELETE FROM member_attributes WHERE org_id = $1 AND member_id = $2")
        .bind(org_id).bind(member_id).execute(&mut *c).await.map(|r| r.rows_affected()))?)
}
