//! `/api/v1/orgs/{org}/audit`: the org's audit log, newest first, paginated by cursor;
//! `?member=ID` keeps the entries about one member.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Path, Query};
use crate::store::audit::AuditRow;
use crate::store::{self};
use crate::web::AppState;
use crate::web::Principal;
use crate::web::problem::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Only the entries about this member (their changes, emails, points, payments…).
    pub member: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: Actor,
    pub action: String,
    pub subject: Subject,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct Actor {
    pub kind: String,
    pub id: Option<String>,
    pub label: String,
}

#[derive(Debug, Serialize)]
pub struct Subject {
    pub kind: String,
    pub id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(p): Query<AuditParams>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let limit = p.limit.unwrap_or(50);
    if limit == 0 || limit > 200 {
        return Err(ApiError::field("limit", "must be between 1 and 200"));
    }
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
    let member = p
        .member
        .as_deref()
        .map(|m| {
            Uuid::try_parse(m)
                .map(|id| id.to_string())
                .map_err(|_| ApiError::field("member", "must be a member id"))
        })
        .transpose()?;
    let mut tx = state.roster.store.read().await?;
    let mut rows = match &member {
        Some(id) => {
            store::audit::page_for_subject(
                &mut tx,
                org.id,
                ("member", id),
                before,
                i64::from(limit) + 1,
            )
            .await?
        }
        None => store::audit::page(&mut tx, org.id, before, i64::from(limit) + 1).await?,
    };
    tx.rollback().await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = rows.last().filter(|_| more).map(|r| r.id.to_string());
    let items = rows.into_iter().map(AuditEntry::from).collect();
    Ok(axum::Json(AuditPage { items, next_cursor }))
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
        AuditEntry {
            id: r.id,
            at: r.at,
            actor: Actor {
                kind: r.actor_kind,
                id: r.actor_id,
                label: r.actor_label,
            },
            action: r.action,
            subject: Subject {
                kind: r.subject_kind,
                id: r.subject_id,
            },
            before: parse(r.before),
            after: parse(r.after),
        }
    }
}
