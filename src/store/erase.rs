//! Erasure: the statements that overwrite one person's data where it was copied — audit
//! before/after values (the only UPDATE of the audit log: it anonymises, never deletes, and never
//! changes who, when or what), outbox emails, sync plan items and run error rows — and drop the
//! member's source links. Rows are read whole per org and rewritten only where they change.

use uuid::Uuid;

use super::{Result, Tx, on_tx};

/// One audit row's values: `(id, subject_id, before, after)`.
pub type AuditValues = (Uuid, Option<String>, Option<String>, Option<String>);

/// A page of the org's audit rows in id order, after `after` (and, with `skip_action`, not of
/// that action).
pub async fn audit_values(
    tx: &mut Tx,
    org_id: Uuid,
    after: Option<Uuid>,
    skip_action: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditValues>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, AuditValues>(
        "SELECT id, subject_id, before, after FROM audit_log
         WHERE org_id = $1 AND ($2 IS NULL OR id > $2) AND ($3 IS NULL OR action <> $3)
         ORDER BY id LIMIT $4")
        .bind(org_id).bind(after).bind(skip_action).bind(limit).fetch_all(&mut *c).await)?)
}

/// Replaces an audit row's before/after values; who, when and what stay as they were.
pub async fn anonymise_audit(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    before: Option<&str>,
    after: Option<&str>,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE audit_log SET before = $3, after = $4 WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(id).bind(before).bind(after)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// One plan item: `(run_id, seq, external_id, email, detail, member_id)`.
pub type PlanValues = (
    Uuid,
    i64,
    Option<String>,
    Option<String>,
    String,
    Option<Uuid>,
);

/// A page of the org's plan items in `(run_id, seq)` order, after `after`.
pub async fn plan_values(
    tx: &mut Tx,
    org_id: Uuid,
    after: Option<(Uuid, i64)>,
    limit: i64,
) -> Result<Vec<PlanValues>> {
    let (run, seq) = after.map_or((None, 0), |(r, s)| (Some(r), s));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, PlanValues>(
        "SELECT i.run_id, i.seq, i.external_id, i.email, i.detail, i.member_id FROM sync_plan_items i
         JOIN sync_runs r ON r.id = i.run_id
         WHERE r.org_id = $1 AND ($2 IS NULL OR i.run_id > $2 OR (i.run_id = $2 AND i.seq > $3))
         ORDER BY i.run_id, i.seq LIMIT $4")
        .bind(org_id).bind(run).bind(seq).bind(limit).fetch_all(&mut *c).await)?)
}

pub async fn rewrite_plan_item(tx: &mut Tx, org_id: Uuid, item: &PlanValues) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE sync_plan_items SET external_id = $4, email = $5, detail = $6
         WHERE run_id = $2 AND seq = $3
           AND run_id IN (SELECT id FROM sync_runs WHERE org_id = $1)")
        .bind(org_id).bind(item.0).bind(item.1).bind(&item.2).bind(&item.3).bind(&item.4)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// One run error row: `(run_id, seq, external_id, value, message)`.
pub type ErrorValues = (Uuid, i64, Option<String>, Option<String>, String);

/// A page of the org's run error rows in `(run_id, seq)` order, after `after`.
pub async fn error_values(
    tx: &mut Tx,
    org_id: Uuid,
    after: Option<(Uuid, i64)>,
    limit: i64,
) -> Result<Vec<ErrorValues>> {
    let (run, seq) = after.map_or((None, 0), |(r, s)| (Some(r), s));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, ErrorValues>(
        "SELECT e.run_id, e.seq, e.external_id, e.value, e.message FROM sync_run_errors e
         JOIN sync_runs r ON r.id = e.run_id
         WHERE r.org_id = $1 AND ($2 IS NULL OR e.run_id > $2 OR (e.run_id = $2 AND e.seq > $3))
         ORDER BY e.run_id, e.seq LIMIT $4")
        .bind(org_id).bind(run).bind(seq).bind(limit).fetch_all(&mut *c).await)?)
}

pub async fn rewrite_error(tx: &mut Tx, org_id: Uuid, row: &ErrorValues) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE sync_run_errors SET external_id = $4, value = $5, message = $6
         WHERE run_id = $2 AND seq = $3
           AND run_id IN (SELECT id FROM sync_runs WHERE org_id = $1)")
        .bind(org_id).bind(row.0).bind(row.1).bind(&row.2).bind(&row.3).bind(&row.4)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Every email to the member (or to one of their addresses, lowercased in `keys`) keeps its row
/// but loses its address, subject, body and link.
pub async fn erase_outbox(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Uuid,
    keys: &[String],
    placeholder: &str,
    tombstone: &str,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE outbox SET to_address = $3, subject = $4, body = $4, link_token = NULL
         WHERE org_id = $1 AND member_id = $2")
        .bind(org_id).bind(member_id).bind(placeholder).bind(tombstone)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    for key in keys {
        on_tx!(tx, c => sqlx::query(
            "UPDATE outbox SET to_address = $3, subject = $4, body = $4, link_token = NULL
             WHERE org_id = $1 AND LOWER(to_address) = $2")
            .bind(org_id).bind(key).bind(placeholder).bind(tombstone)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// A source that still claims any member of the org, if any.
pub async fn any_claiming_source(tx: &mut Tx, org_id: Uuid) -> Result<Option<String>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, String>(
        "SELECT source FROM member_links
         WHERE org_id = $1 AND claiming = TRUE ORDER BY source LIMIT 1")
        .bind(org_id).fetch_optional(&mut *c).await)?)
}

/// Whether a SCIM client still provisions any member of the org.
pub async fn any_scim_member(tx: &mut Tx, org_id: Uuid) -> Result<bool> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM members
         WHERE org_id = $1 AND scim_data IS NOT NULL AND scim_deleted = FALSE")
        .bind(org_id).fetch_one(&mut *c).await)?
        > 0)
}

/// A page of the org's member ids in id order after `after`, leaving out `keep` and members
/// already erased (tombstones: `erased-…@invalid`).
pub async fn droppable_members(
    tx: &mut Tx,
    org_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Uuid>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM members
         WHERE org_id = $1 AND ($2 IS NULL OR id > $2)
           AND NOT (member_email LIKE 'erased-%' AND member_email LIKE '%@invalid')
         ORDER BY id LIMIT $3")
        .bind(org_id).bind(after).bind(limit).fetch_all(&mut *c).await)?)
}

/// A source that still claims the member, if any.
pub async fn claiming_source(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> Result<Option<String>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, String>(
        "SELECT source FROM member_links
         WHERE org_id = $1 AND member_id = $2 AND claiming = TRUE ORDER BY source LIMIT 1")
        .bind(org_id).bind(member_id).fetch_optional(&mut *c).await)?)
}

/// Drops the member's source links: their external ids are the person's identifiers.
pub async fn drop_links(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "DELETE FROM member_links WHERE org_id = $1 AND member_id = $2")
        .bind(org_id).bind(member_id)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Join requests and invite links that hold one of `emails` (lowercased) or name the member:
/// the address becomes `placeholder`; a request's names, answers and decline reason go.
pub async fn erase_join_and_links(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Uuid,
    emails: &[String],
    placeholder: &str,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE join_requests SET email = $3, given_name = NULL, family_name = NULL,
             answers = '{}', reason = NULL
         WHERE org_id = $1 AND member_id = $2")
        .bind(org_id).bind(member_id).bind(placeholder)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    on_tx!(tx, c => sqlx::query(
        "UPDATE invite_links SET email = $3 WHERE org_id = $1 AND member_id = $2 AND email IS NOT NULL")
        .bind(org_id).bind(member_id).bind(placeholder)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    for e in emails {
        on_tx!(tx, c => sqlx::query(
            "UPDATE join_requests SET email = $3, given_name = NULL, family_name = NULL,
                 answers = '{}', reason = NULL
             WHERE org_id = $1 AND lower(email) = $2")
            .bind(org_id).bind(e).bind(placeholder)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        on_tx!(tx, c => sqlx::query(
            "UPDATE invite_links SET email = $3 WHERE org_id = $1 AND lower(email) = $2")
            .bind(org_id).bind(e).bind(placeholder)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// The free text admins wrote about the member (payment notes, points-movement reasons) is
/// replaced by the tombstone; amounts, dates and who moved what stay. Like the audit log's, the
/// ledger's only UPDATE is this anonymisation.
pub async fn erase_money_notes(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Uuid,
    tombstone: &str,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE payments SET note = $3 WHERE org_id = $1 AND member_id = $2 AND note IS NOT NULL")
        .bind(org_id).bind(member_id).bind(tombstone)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    on_tx!(tx, c => sqlx::query(
        "UPDATE points_ledger SET reason = $3 WHERE org_id = $1 AND member_id = $2")
        .bind(org_id).bind(member_id).bind(tombstone)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}
