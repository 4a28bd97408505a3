//! An org's groups, read-only for admins (SCIM clients and sources write them):
//!
//! - `GET /groups`: each group with its active member count and who keeps it — a source (its
//!   `groups` setting), a SCIM client, or nobody;
//! - `GET /groups/{id}/members?after=&limit=`: its members, paged by member id.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Path, Query};
use crate::store;
use crate::web::AppState;
use crate::web::Principal;
use crate::web::problem::ApiError;

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub id: Uuid,
    pub name: String,
    /// `source:NAME`, `scim`, or absent when nobody keeps the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_by: Option<String>,
    /// Members who are not removed.
    pub members: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let mut tx = state.roster.store.read().await?;
    let groups = store::groups::list(&mut tx, org.id).await?;
    let counts = store::groups::active_member_counts(&mut tx, org.id).await?;
    tx.rollback().await?;
    let counts: std::collections::HashMap<Uuid, i64> = counts.into_iter().collect();
    // Group names compare like the store's `name_key`: lowercased.
    let kept: std::collections::HashMap<String, &str> = state
        .sync
        .sources()
        .iter()
        .filter(|d| d.config.org == org.slug)
        .flat_map(|d| {
            d.config
                .kind
                .managed_groups()
                .into_iter()
                .map(|g| (g.to_lowercase(), d.config.name.as_str()))
        })
        .collect();
    let items: Vec<GroupView> = groups
        .into_iter()
        .map(|g| GroupView {
            // A SCIM client's group is its own: sources leave it alone.
            kept_by: if g.scim_data.is_some() {
                Some("scim".into())
            } else {
                kept.get(&g.name.to_lowercase())
                    .map(|s| format!("source:{s}"))
            },
            members: counts.get(&g.id).copied().unwrap_or(0),
            id: g.id,
            name: g.name,
            created_at: g.created_at,
            updated_at: g.updated_at,
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberParams {
    pub after: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct GroupMember {
    pub id: Uuid,
    pub member_email: String,
    pub display_name: Option<String>,
    pub access: String,
}

pub async fn members(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
    Query(p): Query<MemberParams>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let not_found = || ApiError::not_found(&format!("group `{}`", id.escape_debug()));
    let id = Uuid::try_parse(&id).map_err(|_| not_found())?;
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let after = match p.after.as_deref() {
        None => None,
        Some(a) => Some(
            Uuid::try_parse(a)
                .map_err(|_| ApiError::field("after", "must be a member id from next_after"))?,
        ),
    };
    let mut tx = state.roster.store.read().await?;
    // Another org's group is not found, like one that does not exist.
    store::groups::by_id(&mut tx, org.id, id)
        .await?
        .ok_or_else(not_found)?;
    let mut rows =
        store::groups::member_page(&mut tx, org.id, id, after, i64::from(limit) + 1).await?;
    tx.rollback().await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_after = rows.last().filter(|_| more).map(|r| r.id);
    let items: Vec<GroupMember> = rows
        .into_iter()
        .map(|r| GroupMember {
            display_name: crate::domain::display_name_of(
                r.display_name.as_deref(),
                r.given_name.as_deref(),
                r.family_name.as_deref(),
            ),
            id: r.id,
            member_email: r.member_email,
            access: r.access,
        })
        .collect();
    Ok(axum::Json(
        serde_json::json!({ "items": items, "next_after": next_after }),
    ))
}
