//! Points (credits): an org's pool and its members' balances. Admins add points to the pool and
//! move them between the pool and members. Every movement is one transaction under the org
//! lock: balances checked (never below zero), the ledger row written, the pool on the org and
//! the balance on the member updated, the audit entry appended. Its idempotency key is unique
//! per org: the same request again answers the movement already made, a different request with
//! that key is refused.
//!
//! Fees and payments: a member's monthly fee and recorded payments, in whole minor units of one
//! ISO 4217 currency per member (set by the first fee or payment; another currency is refused).
//! A payment adds to the member's `total_paid` in its transaction, audited like the rest.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{Actor, record};
use super::{Result, Roster, RosterError};
use crate::store::ledger::LedgerRow;
use crate::store::{self};

/// The most points one movement may carry, and the most a pool or balance may hold.
pub const MAX_POINTS: i64 = 1_000_000_000_000_000;
/// Longest reason and idempotency key, in characters.
pub const MAX_REASON: usize = 500;
pub const MAX_KEY: usize = 200;

/// What a movement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveKind {
    /// New points into the org's pool.
    PoolAdd,
    /// From the pool to a member.
    Give,
    /// From a member back to the pool.
    Take,
}

impl MoveKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MoveKind::PoolAdd => "pool_add",
            MoveKind::Give => "give",
            MoveKind::Take => "take",
        }
    }
}

/// A requested movement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointsMove {
    pub kind: MoveKind,
    /// Required for `give` and `take`, refused for `pool_add`.
    #[serde(default)]
    pub member_id: Option<Uuid>,
    pub amount: i64,
    pub reason: String,
    pub idempotency_key: String,
}

/// The pool and what members hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PointsTotals {
    pub pool: i64,
    pub distributed: i64,
}

/// A movement's result: the ledger row, and whether it was made now or earlier (a replay).
#[derive(Debug, Clone)]
pub struct MoveResult {
    pub row: LedgerRow,
    pub replayed: bool,
}

fn check_text(field: &str, v: &str, max: usize) -> Result<()> {
    if v.trim().is_empty() || v.chars().count() > max {
        return Err(RosterError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(RosterError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks a movement in full before anything is opened.
fn validate(m: &PointsMove) -> Result<()> {
    let mut errors = Vec::new();
    if m.amount <= 0 || m.amount > MAX_POINTS {
        errors.push(super::FieldError::new(
            "amount",
            format!("must be a whole number of points from 1 to {MAX_POINTS}"),
        ));
    }
    match (m.kind, m.member_id) {
        (MoveKind::PoolAdd, Some(_)) => errors.push(super::FieldError::new(
            "member_id",
            "not allowed for `pool_add` (points go to the org's pool)",
        )),
        (MoveKind::Give | MoveKind::Take, None) => errors.push(super::FieldError::new(
            "member_id",
            format!("required for `{}`", m.kind.as_str()),
        )),
        _ => {}
    }
    for (field, v, max) in [
        ("reason", &m.reason, MAX_REASON),
        ("idempotency_key", &m.idempotency_key, MAX_KEY),
    ] {
        if let Err(RosterError::Invalid(e)) = check_text(field, v, max) {
            errors.extend(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RosterError::Invalid(errors))
    }
}

impl Roster {
    /// Makes one movement of points (see the module docs).
    pub async fn move_points(
        &self,
        org_id: Uuid,
        actor: &Actor,
        m: PointsMove,
    ) -> Result<MoveResult> {
        validate(&m)?;
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        super::members::lock_org(&mut tx, org_id).await?;
        if let Some(row) = store::ledger::by_key(&mut tx, org_id, &m.idempotency_key).await? {
            tx.rollback().await?;
            let same = row.kind == m.kind.as_str()
                && row.member_id == m.member_id
                && row.amount == m.amount
                && row.reason == m.reason;
            if !same {
                return Err(RosterError::conflict(
                    "idempotency_key_reused",
                    format!(
                        "idempotency key `{}` was already used for a different movement (ledger entry {}); use a new key",
                        m.idempotency_key, row.id
                    ),
                ));
            }
            return Ok(MoveResult {
                row,
                replayed: true,
            });
        }
        let pool = store::ledger::pool(&mut tx, org_id)
            .await?
            .ok_or_else(|| RosterError::NotFound("organization".into()))?;
        if let (MoveKind::Give, Some(id)) = (m.kind, m.member_id)
            && store::members::by_id(&mut tx, org_id, id, false)
                .await?
                .is_some_and(|mem| mem.access.is_gone())
        {
            return Err(RosterError::conflict(
                "member_gone",
                "this member is removed (or their invitation cancelled): points go only to \
                 current members; taking points back still works",
            ));
        }
        let balance = match m.member_id {
            Some(id) => Some(
                store::ledger::balance(&mut tx, org_id, id)
                    .await?
                    .ok_or_else(|| RosterError::NotFound("member".into()))?,
            ),
            None => None,
        };
        let (pool_after, balance_after) = match (m.kind, balance) {
            (MoveKind::PoolAdd, _) => match pool.checked_add(m.amount) {
                Some(p) if p <= MAX_POINTS => (p, None),
                _ => {
                    return Err(RosterError::conflict(
                        "points_limit",
                        format!(
                            "the pool holds {pool} points; adding {} would take it above {MAX_POINTS}",
                            m.amount
                        ),
                    ));
                }
            },
            (MoveKind::Give, Some(b)) => {
                if m.amount > pool {
                    return Err(RosterError::conflict(
                        "insufficient_points",
                        format!(
                            "the pool holds {pool} points, fewer than the {} to give",
                            m.amount
                        ),
                    ));
                }
                // A balance is bounded like the pool: repeated adds and gives must not
                // overflow it.
                match b.checked_add(m.amount).filter(|v| *v <= MAX_POINTS) {
                    Some(after) => (pool - m.amount, Some(after)),
                    None => {
                        return Err(RosterError::conflict(
                            "points_limit",
                            format!(
                                "the member holds {b} points; giving {} would take them above \
                                 {MAX_POINTS}",
                                m.amount
                            ),
                        ));
                    }
                }
            }
            (MoveKind::Take, Some(b)) => {
                if m.amount > b {
                    return Err(RosterError::conflict(
                        "insufficient_points",
                        format!(
                            "the member holds {b} points, fewer than the {} to take",
                            m.amount
                        ),
                    ));
                }
                match pool.checked_add(m.amount).filter(|v| *v <= MAX_POINTS) {
                    Some(p) => (p, Some(b - m.amount)),
                    None => {
                        return Err(RosterError::conflict(
                            "points_limit",
                            format!(
                                "the pool holds {pool} points; taking {} back would take it \
                                 above {MAX_POINTS}",
                                m.amount
                            ),
                        ));
                    }
                }
            }
            (MoveKind::Give | MoveKind::Take, None) => {
                return Err(RosterError::invalid("member_id", "required"));
            }
        };
        let (actor_kind, actor_id, actor_label) = actor.parts();
        let row = LedgerRow {
            id: Uuid::now_v7(),
            org_id,
            at: now,
            kind: m.kind.as_str().to_owned(),
            member_id: m.member_id,
            amount: m.amount,
            reason: m.reason,
            idempotency_key: m.idempotency_key,
            actor_kind: actor_kind.to_owned(),
            actor_id,
            actor_label,
            pool_after,
            balance_after,
        };
        store::ledger::insert(&mut tx, &row).await?;
        store::ledger::set_pool(&mut tx, org_id, pool_after).await?;
        if let (Some(id), Some(b)) = (row.member_id, balance_after) {
            store::ledger::set_balance(&mut tx, org_id, id, b).await?;
        }
        let subject = match row.member_id {
            Some(id) => ("member", Some(id.to_string())),
            None => ("org", Some(org_id.to_string())),
        };
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            &format!("points.{}", row.kind),
            subject,
            None::<&LedgerRow>,
            Some(&row),
        )
        .await?;
        tx.commit().await?;
        Ok(MoveResult {
            row,
            replayed: false,
        })
    }

    /// The org's pool and the points its members hold.
    pub async fn points_totals(&self, org_id: Uuid) -> Result<PointsTotals> {
        let mut tx = self.store.read().await?;
        let pool = store::ledger::pool(&mut tx, org_id)
            .await?
            .ok_or_else(|| RosterError::NotFound("organization".into()))?;
        let distributed = store::ledger::distributed(&mut tx, org_id).await?;
        tx.rollback().await?;
        Ok(PointsTotals { pool, distributed })
    }
}

/// The most money (minor units) one fee, payment or total may be.
pub const MAX_MONEY: i64 = 1_000_000_000_000_000;
/// Longest payment note, in characters.
pub const MAX_NOTE: usize = 500;

/// A member's monthly fee, replaced as a whole (`PUT`): no `monthly_fee` means no fee.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeChange {
    /// Minor units of `currency` (2500 = 25.00 EUR), 0 or more; absent or null clears the fee.
    #[serde(default)]
    pub monthly_fee: Option<i64>,
    /// ISO 4217 code; required with a fee.
    #[serde(default)]
    pub currency: Option<String>,
}

/// A payment to record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    /// Minor units of `currency`, more than 0.
    pub amount: i64,
    pub currency: String,
    /// The day it was paid (`2026-03-01`), not after today.
    pub paid_on: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// An ISO 4217 currency code, as the standard writes it (`EUR`, not `eur`).
fn check_currency(field: &str, c: &str, errors: &mut Vec<super::FieldError>) {
    if !crate::domain::currency::is_currency(c) {
        errors.push(super::FieldError::new(
            field,
            "must be an ISO 4217 currency code in capitals, such as EUR",
        ));
    }
}

/// The member's currency must be the one given (or the member has none yet).
fn same_currency(m: &crate::domain::Member, given: &str) -> Result<()> {
    match &m.currency {
        Some(c) if c != given => Err(RosterError::conflict(
            "currency_mismatch",
            format!("this member's fee and payments are in {c}, not {given}"),
        )),
        _ => Ok(()),
    }
}

impl Roster {
    /// Sets or clears a member's monthly fee.
    pub async fn set_fee(
        &self,
        org_id: Uuid,
        actor: &Actor,
        member_id: Uuid,
        change: FeeChange,
    ) -> Result<crate::domain::Member> {
        let mut errors = Vec::new();
        if let Some(f) = change.monthly_fee
            && !(0..=MAX_MONEY).contains(&f)
        {
            errors.push(super::FieldError::new(
                "monthly_fee",
                format!("must be whole minor units (cents) from 0 to {MAX_MONEY}"),
            ));
        }
        match (&change.monthly_fee, &change.currency) {
            (_, Some(c)) => check_currency("currency", c, &mut errors),
            (Some(_), None) => errors.push(super::FieldError::new(
                "currency",
                "required with a monthly fee",
            )),
            (None, None) => {}
        }
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
        }
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        super::members::lock_org(&mut tx, org_id).await?;
        let before = store::members::by_id(&mut tx, org_id, member_id, true)
            .await?
            .ok_or_else(|| RosterError::NotFound("member".into()))?;
        if before.access.is_gone() {
            return Err(RosterError::conflict(
                "member_gone",
                "this member is removed (or their invitation cancelled): a monthly fee applies \
                 only to current members",
            ));
        }
        if let Some(c) = &change.currency {
            same_currency(&before, c)?;
        }
        let mut after = before.clone();
        after.monthly_fee = change.monthly_fee;
        after.currency = change.currency.or(before.currency.clone());
        store::ledger::set_money(
            &mut tx,
            org_id,
            member_id,
            after.monthly_fee,
            after.currency.as_deref(),
            after.total_paid,
        )
        .await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "member.fee_set",
            ("member", Some(member_id.to_string())),
            Some(&Money::of(&before)),
            Some(&Money::of(&after)),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Records a payment and adds it to the member's total.
    pub async fn record_payment(
        &self,
        org_id: Uuid,
        actor: &Actor,
        member_id: Uuid,
        p: NewPayment,
    ) -> Result<store::ledger::PaymentRow> {
        let now = self.clock.now();
        let mut errors = Vec::new();
        if !(1..=MAX_MONEY).contains(&p.amount) {
            errors.push(super::FieldError::new(
                "amount",
                format!("must be whole minor units (cents) from 1 to {MAX_MONEY}"),
            ));
        }
        check_currency("currency", &p.currency, &mut errors);
        let paid_on = match chrono::NaiveDate::parse_from_str(&p.paid_on, "%Y-%m-%d") {
            Ok(d) if d <= now.date_naive() => Some(d),
            Ok(_) => {
                errors.push(super::FieldError::new("paid_on", "must not be after today"));
                None
            }
            Err(_) => {
                errors.push(super::FieldError::new(
                    "paid_on",
                    format!("`{}` is not a date like 2026-01-31", p.paid_on),
                ));
                None
            }
        };
        let note = p
            .note
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if let Some(n) = &note
            && let Err(RosterError::Invalid(e)) = check_text("note", n, MAX_NOTE)
        {
            errors.extend(e);
        }
        let Some(paid_on) = paid_on.filter(|_| errors.is_empty()) else {
            return Err(RosterError::Invalid(errors));
        };
        let mut tx = self.store.write().await?;
        super::members::lock_org(&mut tx, org_id).await?;
        let m = store::members::by_id(&mut tx, org_id, member_id, true)
            .await?
            .ok_or_else(|| RosterError::NotFound("member".into()))?;
        same_currency(&m, &p.currency)?;
        let total = m
            .total_paid
            .checked_add(p.amount)
            .filter(|t| *t <= MAX_MONEY)
            .ok_or_else(|| {
                RosterError::conflict(
                    "money_limit",
                    format!("this payment would take the member's total above {MAX_MONEY}"),
                )
            })?;
        let row = store::ledger::PaymentRow {
            id: Uuid::now_v7(),
            org_id,
            member_id,
            amount: p.amount,
            currency: p.currency.clone(),
            paid_on,
            note,
            recorded_at: now,
            actor_label: actor.label(),
        };
        store::ledger::insert_payment(&mut tx, &row).await?;
        store::ledger::set_money(
            &mut tx,
            org_id,
            member_id,
            m.monthly_fee,
            Some(&p.currency),
            total,
        )
        .await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "payment.recorded",
            ("member", Some(member_id.to_string())),
            None::<&store::ledger::PaymentRow>,
            Some(&row),
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }
}

/// A member's money, as the audit log shows it.
#[derive(Debug, Serialize)]
struct Money<'a> {
    monthly_fee: Option<i64>,
    currency: Option<&'a str>,
    total_paid: i64,
}

impl<'a> Money<'a> {
    fn of(m: &'a crate::domain::Member) -> Self {
        Money {
            monthly_fee: m.monthly_fee,
            currency: m.currency.as_deref(),
            total_paid: m.total_paid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(kind: MoveKind, member: Option<Uuid>, amount: i64) -> PointsMove {
        PointsMove {
            kind,
            member_id: member,
            amount,
            reason: "r".into(),
            idempotency_key: "k".into(),
        }
    }

    #[test]
    fn validation_names_every_bad_field() {
        let mut m = mv(MoveKind::Give, None, 0);
        m.reason = " ".into();
        m.idempotency_key = "a\u{7}".into();
        let Err(RosterError::Invalid(errors)) = validate(&m) else {
            panic!("expected invalid");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["amount", "member_id", "reason", "idempotency_key"]);
        assert!(validate(&mv(MoveKind::PoolAdd, Some(Uuid::nil()), 1)).is_err());
        assert!(validate(&mv(MoveKind::PoolAdd, None, MAX_POINTS + 1)).is_err());
        assert!(validate(&mv(MoveKind::Take, Some(Uuid::nil()), MAX_POINTS)).is_ok());
    }
}
