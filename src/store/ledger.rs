//! Points: the org's pool (`orgs.points_pool`), members' balances (`members.points`) and the
//! append-only ledger of movements (`points_ledger`). There is no UPDATE or DELETE of a
//! ledger row anywhere; balances change only together with the row that explains them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Result, Tx, on_tx};

/// One movement of points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LedgerRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub at: DateTime<Utc>,
    /// `pool_add`, `give` (pool → member) or `take` (member → pool).
    pub kind: String,
    pub member_id: Option<Uuid>,
    pub amount: i64,
    pub reason: String,
    pub idempotency_key: String,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_label: String,
    /// The pool after this movement.
    pub pool_after: i64,
    /// The member's balance after this movement (`give` and `take`).
    pub balance_after: Option<i64>,
}

const COLUMNS: &str = "id, org_id, at, kind, member_id, amount, reason, idempotency_key, \
     actor_kind, actor_id, actor_label, pool_after, balance_after";

/// The org's pool. Call after `orgs::lock` when the value is about to change.
pub async fn pool(tx: &mut Tx, org_id: Uuid) -> Result<Option<i64>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, i64>(
        "SELECT points_pool FROM orgs WHERE id = $1")
        .bind(org_id).fetch_optional(&mut *c).await)?)
}

/// Points held by the org's members together.
pub async fn distributed(tx: &mut Tx, org_id: Uuid) -> Result<i64> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM members WHERE org_id = $1")
        .bind(org_id).fetch_one(&mut *c).await)?)
}

/// A member's balance, `None` when the member is not in the org.
pub async fn balance(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> Result<Option<i64>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, i64>(
        "SELECT points FROM members WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(member_id).fetch_optional(&mut *c).await)?)
}

pub async fn set_pool(tx: &mut Tx, org_id: Uuid, points: i64) -> Result<()> {
    on_tx!(tx, c => sqlx::query("UPDATE orgs SET points_pool = $2 WHERE id = $1")
        .bind(org_id).bind(points)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn set_balance(tx: &mut Tx, org_id: Uuid, member_id: Uuid, points: i64) -> Result<()> {
    on_tx!(tx, c => sqlx::query("UPDATE members SET points = $3 WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(member_id).bind(points)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The movement made under an idempotency key, if any.
pub async fn by_key(tx: &mut Tx, org_id: Uuid, key: &str) -> Result<Option<LedgerRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM points_ledger WHERE org_id = $1 AND idempotency_key = $2"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, LedgerRow>(sql)
        .bind(org_id).bind(key).fetch_optional(&mut *c).await)?)
}

pub async fn insert(tx: &mut Tx, row: &LedgerRow) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO points_ledger (id, org_id, at, kind, member_id, amount, reason,
             idempotency_key, actor_kind, actor_id, actor_label, pool_after, balance_after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
        .bind(row.id)
        .bind(row.org_id)
        .bind(row.at)
        .bind(&row.kind)
        .bind(row.member_id)
        .bind(row.amount)
        .bind(&row.reason)
        .bind(&row.idempotency_key)
        .bind(&row.actor_kind)
        .bind(&row.actor_id)
        .bind(&row.actor_label)
        .bind(row.pool_after)
        .bind(row.balance_after)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Newest first, optionally one member's; `before_id` continues after the last row of the
/// previous page (ids are UUIDv7, so their order is the order of writing).
pub async fn page(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Option<Uuid>,
    before_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<LedgerRow>> {
    // Statement text only from constants; every value bound. `$2`/`$3` may be NULL.
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM points_ledger
         WHERE org_id = $1
           AND ($2 IS NULL OR member_id = $2)
           AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, LedgerRow>(sql)
        .bind(org_id).bind(member_id).bind(before_id).bind(limit)
        .fetch_all(&mut *c).await)?)
}

/// Runs of the org waiting for approval.
pub async fn held_runs(tx: &mut Tx, org_id: Uuid) -> Result<i64> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM sync_runs WHERE org_id = $1 AND status = 'held'")
        .bind(org_id).fetch_one(&mut *c).await)?)
}

/// Names of the org's sources whose last runs failed (`consecutive_failures > 0`).
pub async fn failing_sources(tx: &mut Tx, org_id: Uuid) -> Result<Vec<String>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, String>(
        "SELECT name FROM sync_sources WHERE org_id = $1 AND consecutive_failures > 0
         ORDER BY name")
        .bind(org_id).fetch_all(&mut *c).await)?)
}

/// One recorded payment of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub member_id: Uuid,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    pub paid_on: chrono::NaiveDate,
    pub note: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub actor_label: String,
}

const PAYMENT_COLUMNS: &str =
    "id, org_id, member_id, amount, currency, paid_on, note, recorded_at, actor_label";

/// Sets a member's fee, currency and total paid (the money columns only).
pub async fn set_money(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Uuid,
    monthly_fee: Option<i64>,
    currency: Option<&str>,
    total_paid: i64,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE members SET monthly_fee = $3, currency = $4, total_paid = $5
         WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(member_id).bind(monthly_fee).bind(currency).bind(total_paid)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn insert_payment(tx: &mut Tx, p: &PaymentRow) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO payments (id, org_id, member_id, amount, currency, paid_on, note,
             recorded_at, actor_label)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(p.id)
        .bind(p.org_id)
        .bind(p.member_id)
        .bind(p.amount)
        .bind(&p.currency)
        .bind(p.paid_on)
        .bind(&p.note)
        .bind(p.recorded_at)
        .bind(&p.actor_label)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A member's payments, newest recorded first; `before_id` continues a previous page.
pub async fn payments(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Uuid,
    before_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<PaymentRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments
         WHERE org_id = $1 AND member_id = $2 AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, PaymentRow>(sql)
        .bind(org_id).bind(member_id).bind(before_id).bind(limit)
        .fetch_all(&mut *c).await)?)
}
