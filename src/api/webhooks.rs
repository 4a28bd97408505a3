//! The org's events feed (`GET …/events?after=CURSOR&limit=N`, oldest first) and its webhook
//! subscriptions (`…/webhooks`, `…/webhooks/{id}`, `…/webhooks/{id}/deliveries`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use crate::roster::webhooks::{CreatedWebhook, NewWebhook, WebhookPatch, WebhookView};
use crate::store::webhooks::AttemptRow;
use crate::store::{self};
use crate::web::problem::ApiError;
use crate::web::{AppState, Principal};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// The `next` (or an event's `cursor`) of a previous page; absent: from the first event.
    pub after: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct EventPage {
    pub items: Vec<Value>,
    /// Pass as `after` for the events that follow; the same cursor again when there were none
    /// yet, so a consumer keeps it and asks again.
    pub next: String,
}

fn check_limit(limit: Option<u32>, default: u32) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > 500 {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    Ok(i64::from(limit))
}

pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(p): Query<EventParams>,
) -> Result<axum::Json<EventPage>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let limit = check_limit(p.limit, 100)?;
    let after = match p.after.as_deref() {
        None => 0,
        Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::field(
                "after",
                "not a cursor returned by this feed; start again without it",
            )
        })?,
    };
    let mut tx = state.roster.store.read().await?;
    let rows = store::events::page(&mut tx, org.id, after, limit).await?;
    tx.rollback().await?;
    let next = rows.last().map_or(after, |e| e.seq).to_string();
    let items = rows.iter().map(crate::roster::events::event_json).collect();
    Ok(axum::Json(EventPage { items, next }))
}

#[derive(Debug, Serialize)]
pub struct WebhookList {
    pub items: Vec<WebhookView>,
}

fn webhook_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(id)
        .map_err(|_| ApiError::not_found(&format!("webhook `{}`", id.escape_debug())))
}

pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<NewWebhook>,
) -> Result<(StatusCode, axum::Json<CreatedWebhook>), ApiError> {
    let org = principal.org(&state, &slug).await?;
    let created = state
        .roster
        .create_webhook(org.id, &principal.actor(), body)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<axum::Json<WebhookList>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let items = state.roster.webhooks(org.id).await?;
    Ok(axum::Json(WebhookList { items }))
}

pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let view = state.roster.webhook(org.id, webhook_id(&id)?).await?;
    Ok(axum::Json(view))
}

pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
    Json(body): Json<WebhookPatch>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let view = state
        .roster
        .update_webhook(org.id, &principal.actor(), webhook_id(&id)?, body)
        .await?;
    Ok(axum::Json(view))
}

pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = principal.org(&state, &slug).await?;
    state
        .roster
        .delete_webhook(org.id, &principal.actor(), webhook_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rotate_secret(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<axum::Json<CreatedWebhook>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let rotated = state
        .roster
        .rotate_webhook_secret(org.id, &principal.actor(), webhook_id(&id)?)
        .await?;
    Ok(axum::Json(rotated))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptParams {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct AttemptPage {
    /// Newest first.
    pub items: Vec<AttemptRow>,
    pub next_cursor: Option<String>,
    /// Deliveries still to be made (waiting, or waiting for a retry).
    pub pending: i64,
}

pub async fn deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
    Query(p): Query<AttemptParams>,
) -> Result<axum::Json<AttemptPage>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let id = webhook_id(&id)?;
    let limit = check_limit(p.limit, 50)?;
    let before = p
        .cursor
        .as_deref()
        .map(|c| {
            Uuid::try_parse(c).map_err(|_| {
                ApiError::field(
                    "cursor",
                    "not a cursor returned by this list; start again without it",
                )
            })
        })
        .transpose()?;
    let (mut items, pending) = state
        .roster
        .webhook_attempts(org.id, id, before, limit + 1)
        .await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = items.last().filter(|_| more).map(|a| a.id.to_string());
    Ok(axum::Json(AttemptPage {
        items,
        next_cursor,
        pending,
    }))
}
