//! `/api/v1/orgs/{org}/points…`: the org's pool and what members hold, movements of points
//! (`POST /points/moves`, idempotent by key) and the ledger, newest first, paged by cursor;
//! a member's monthly fee (`PUT /members/{id}/fee`) and payments (`…/members/{id}/payments`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use super::members::MemberView;
use crate::roster::ledger::{FeeChange, NewPayment, PointsMove, PointsTotals};
use crate::store::ledger::{LedgerRow, PaymentRow};
use crate::store::{self};
use crate::web::AppState;
use crate::web::Principal;
use crate::web::problem::ApiError;

/// One movement as the API shows it.
#[derive(Debug, Serialize)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<Uuid>,
    pub amount: i64,
    pub reason: String,
    pub idempotency_key: String,
    pub actor: super::audit::Actor,
    pub pool_after: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance_after: Option<i64>,
}

impl From<LedgerRow> for LedgerEntry {
    fn from(r: LedgerRow) -> Self {
        LedgerEntry {
            id: r.id,
            at: r.at,
            kind: r.kind,
            member_id: r.member_id,
            amount: r.amount,
            reason: r.reason,
            idempotency_key: r.idempotency_key,
            actor: super::audit::Actor {
                kind: r.actor_kind,
                id: r.actor_id,
                label: r.actor_label,
            },
            pool_after: r.pool_after,
            balance_after: r.balance_after,
        }
    }
}

pub async fn totals(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<axum::Json<PointsTotals>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    Ok(axum::Json(state.roster.points_totals(org.id).await?))
}

/// `201` with the ledger entry; the same request again (same idempotency key and body) answers
/// the same entry, marked by `Idempotent-Replayed: true`.
pub async fn move_points(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<PointsMove>,
) -> Result<Response, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let done = state
        .roster
        .move_points(org.id, &principal.actor(), body)
        .await?;
    let mut res = (StatusCode::CREATED, axum::Json(LedgerEntry::from(done.row))).into_response();
    if done.replayed {
        res.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(res)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerParams {
    /// Only this member's movements.
    pub member_id: Option<Uuid>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LedgerPage {
    pub items: Vec<LedgerEntry>,
    pub next_cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(p): Query<LedgerParams>,
) -> Result<axum::Json<LedgerPage>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let limit = check_limit(p.limit)?;
    let before = parse_cursor(p.cursor.as_deref())?;
    let mut tx = state.roster.store.read().await?;
    if let Some(id) = p.member_id
        && store::ledger::balance(&mut tx, org.id, id).await?.is_none()
    {
        tx.rollback().await?;
        return Err(ApiError::not_found("member"));
    }
    let mut rows =
        store::ledger::page(&mut tx, org.id, p.member_id, before, i64::from(limit) + 1).await?;
    tx.rollback().await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = rows.last().filter(|_| more).map(|r| r.id.to_string());
    Ok(axum::Json(LedgerPage {
        items: rows.into_iter().map(LedgerEntry::from).collect(),
        next_cursor,
    }))
}

/// `PUT /members/{id}/fee`: the member's fee replaced; answers the member.
pub async fn put_fee(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
    Json(body): Json<FeeChange>,
) -> Result<axum::Json<MemberView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let m = state
        .roster
        .set_fee(org.id, &principal.actor(), id, body)
        .await?;
    Ok(axum::Json(MemberView::from(&m)))
}

pub async fn record_payment(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
    Json(body): Json<NewPayment>,
) -> Result<(StatusCode, axum::Json<PaymentRow>), ApiError> {
    let org = principal.org(&state, &slug).await?;
    let row = state
        .roster
        .record_payment(org.id, &principal.actor(), id, body)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(row)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PaymentPage {
    pub items: Vec<PaymentRow>,
    pub next_cursor: Option<String>,
}

/// A member's payments, newest recorded first.
pub async fn list_payments(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
    Query(p): Query<PageParams>,
) -> Result<axum::Json<PaymentPage>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let limit = check_limit(p.limit)?;
    let before = parse_cursor(p.cursor.as_deref())?;
    let mut tx = state.roster.store.read().await?;
    if store::ledger::balance(&mut tx, org.id, id).await?.is_none() {
        tx.rollback().await?;
        return Err(ApiError::not_found("member"));
    }
    let mut rows =
        store::ledger::payments(&mut tx, org.id, id, before, i64::from(limit) + 1).await?;
    tx.rollback().await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = rows.last().filter(|_| more).map(|r| r.id.to_string());
    Ok(axum::Json(PaymentPage {
        items: rows,
        next_cursor,
    }))
}

fn check_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > 200 {
        return Err(ApiError::field("limit", "must be between 1 and 200"));
    }
    Ok(limit)
}

fn parse_cursor(cursor: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    cursor
        .map(|c| {
            Uuid::try_parse(c).map_err(|_| {
                ApiError::field(
                    "cursor",
                    "not a cursor returned by this list; start again without it",
                )
            })
        })
        .transpose()
}
