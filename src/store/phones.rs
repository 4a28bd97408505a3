//! Members' phone numbers (`member_phones`): a member's list is written whole, in order.

use std::collections::HashMap;

use uuid::Uuid;

use super::{Result, Tx, on_tx};
use crate::domain::Phone;

#[derive(sqlx::FromRow)]
struct PhoneRow {
    member_id: Uuid,
    phone_type: Option<String>,
    value: String,
    display: Option<String>,
    is_primary: Option<bool>,
}

impl From<PhoneRow> for Phone {
    fn from(r: PhoneRow) -> Phone {
        Phone {
            kind: r.phone_type,
            value: r.value,
            display: r.display,
            primary: r.is_primary.unwrap_or(false),
            primary_stated: r.is_primary.is_some(),
        }
    }
}

/// One member's numbers, in their order.
pub async fn of_member(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> Result<Vec<Phone>> {
    let rows: Vec<PhoneRow> = on_tx!(tx, c => sqlx::query_as(
        "SELECT member_id, phone_type, value, display, is_primary FROM member_phones
         WHERE org_id = $1 AND member_id = $2 ORDER BY position")
        .bind(org_id).bind(member_id).fetch_all(&mut *c).await)?;
    Ok(rows.into_iter().map(Phone::from).collect())
}

/// The numbers of many members of one org at once (SCIM lists, export), each list in order.
/// Members without numbers are absent from the map.
pub async fn phones_for(
    tx: &mut Tx,
    org_id: Uuid,
    member_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Phone>>> {
    let mut out: HashMap<Uuid, Vec<Phone>> = HashMap::new();
    // Bounded batches keep the parameter count well inside both backends' limits.
    for chunk in member_ids.chunks(500) {
        let placeholders: Vec<String> = (2..=chunk.len() + 1).map(|i| format!("${i}")).collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT member_id, phone_type, value, display, is_primary FROM member_phones
             WHERE org_id = $1 AND member_id IN ({}) ORDER BY member_id, position",
            placeholders.join(", ")
        ));
        let rows: Vec<PhoneRow> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(sql).bind(org_id);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await
        })?;
        for r in rows {
            out.entry(r.member_id).or_default().push(Phone::from(r));
        }
    }
    Ok(out)
}

/// Makes `phones` the member's whole list.
pub async fn replace(tx: &mut Tx, org_id: Uuid, member_id: Uuid, phones: &[Phone]) -> Result<()> {
    delete_for_member(tx, org_id, member_id).await?;
    for (i, p) in phones.iter().enumerate() {
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO member_phones (org_id, member_id, position, phone_type, value, display, is_primary)
             VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(org_id).bind(member_id).bind(i as i64).bind(&p.kind).bind(&p.value)
            .bind(&p.display).bind(p.primary_stated.then_some(p.primary))
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Drops every number of a member (erasure).
pub async fn delete_for_member(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> Result<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "DELETE FROM member_phones WHERE org_id = $1 AND member_id = $2")
        .bind(org_id).bind(member_id).execute(&mut *c).await.map(|r| r.rows_affected()))?)
}
