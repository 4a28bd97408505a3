//! Invitation links: one row per invitation email, holding only a hash of the link's token.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Result, Tx, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub member_id: Uuid,
    pub token_hash: Vec<u8>,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn insert(tx: &mut Tx, row: &InvitationRow) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO invitations (id, org_id, member_id, token_hash, kind, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(row.id)
        .bind(row.org_id)
        .bind(row.member_id)
        .bind(&row.token_hash)
        .bind(&row.kind)
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn by_token_hash(tx: &mut Tx, hash: &[u8]) -> Result<Option<InvitationRow>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, InvitationRow>(
        "SELECT id, org_id, member_id, token_hash, kind, created_at, expires_at, used_at
         FROM invitations WHERE token_hash = $1")
        .bind(hash.to_vec())
        .fetch_optional(&mut *c)
        .await)?)
}

/// Closes every open invitation of a member (after acceptance or removal).
pub async fn close_for_member(tx: &mut Tx, member_id: Uuid, at: DateTime<Utc>) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE invitations SET used_at = $2 WHERE member_id = $1 AND used_at IS NULL")
        .bind(member_id)
        .bind(at)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Inserts many invitation rows (a sync's creates).
pub async fn insert_many(tx: &mut Tx, rows: &[InvitationRow]) -> Result<()> {
    for chunk in super::size_chunks(tx, rows, 50, |r| r.token_hash.len() + r.kind.len() + 150) {
        on_tx!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO invitations (id, org_id, member_id, token_hash, kind, created_at, expires_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.id)
                    .push_bind(r.org_id)
                    .push_bind(r.member_id)
                    .push_bind(r.token_hash.clone())
                    .push_bind(r.kind.clone())
                    .push_bind(r.created_at)
                    .push_bind(r.expires_at);
            });
            q.build().execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// Records the groups an invited member joins on acceptance (added to any already recorded).
pub async fn add_groups(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Uuid,
    group_ids: &[Uuid],
    at: DateTime<Utc>,
) -> Result<()> {
    for g in group_ids {
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO invitation_groups (org_id, member_id, group_id, added_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (member_id, group_id) DO NOTHING")
            .bind(org_id).bind(member_id).bind(g).bind(at)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// The groups an invited member joins on acceptance, by id and name, ordered by name.
pub async fn groups_of(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> Result<Vec<(Uuid, String)>> {
    Ok(on_tx!(tx, c => sqlx::query_as(
        "SELECT g.id, g.name FROM invitation_groups ig JOIN groups g ON g.id = ig.group_id
         WHERE ig.org_id = $1 AND ig.member_id = $2 ORDER BY g.name_key")
        .bind(org_id).bind(member_id).fetch_all(&mut *c).await)?)
}

/// Forgets the groups an invitation named (accepted, cancelled or removed).
pub async fn clear_groups(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> Result<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "DELETE FROM invitation_groups WHERE org_id = $1 AND member_id = $2")
        .bind(org_id).bind(member_id).execute(&mut *c).await.map(|r| r.rows_affected()))?)
}
