//! An org's groups:
//!
//! - `GET /groups`: each group with its active member count and who keeps it — a source (its
//!   `groups` setting), a SCIM client, or nobody (then the org's admins do);
//! - `GET /groups/{id}/members?after=&limit=`: its members, paged by member id;
//! - `POST /groups`, `PATCH`/`DELETE /groups/{id}`, `POST /groups/{id}/members` and
//!   `POST /groups/{id}/members/remove`: admins keep their own groups; a kept group answers 409
//!   naming its keeper.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use crate::roster::{GroupMemberOutcome, GroupMemberResult, GroupPatch};
use crate::store;
use crate::store::groups::Group;
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
    let items: Vec<GroupView> = groups
        .into_iter()
        .map(|g| GroupView {
            kept_by: state.roster.group_keeper(&org, &g).map(|k| k.label()),
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

/// A group as an admin changed it.
#[derive(Debug, Serialize)]
pub struct GroupAnswer {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Group> for GroupAnswer {
    fn from(g: Group) -> Self {
        Self {
            id: g.id,
            name: g.name,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
}

fn group_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(id).map_err(|_| ApiError::not_found(&format!("group `{}`", id.escape_debug())))
}

pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<NewGroup>,
) -> Result<(StatusCode, axum::Json<GroupAnswer>), ApiError> {
    let org = principal.org(&state, &slug).await?;
    let g = state
        .roster
        .create_group(org.id, &principal.actor(), &body.name)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(g.into())))
}

pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
    Json(body): Json<GroupPatch>,
) -> Result<axum::Json<GroupAnswer>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let id = group_id(&id)?;
    let g = state
        .roster
        .update_group(org.id, &principal.actor(), id, body)
        .await?;
    Ok(axum::Json(g.into()))
}

pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let id = group_id(&id)?;
    state
        .roster
        .delete_group(org.id, &principal.actor(), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberIds {
    pub member_ids: Vec<Uuid>,
}

#[derive(Debug, Serialize)]
pub struct MembersChanged {
    pub changed: usize,
    pub skipped: usize,
    pub results: Vec<GroupMemberResult>,
}

async fn change(
    state: AppState,
    principal: Principal,
    slug: String,
    id: String,
    ids: Vec<Uuid>,
    add: bool,
) -> Result<axum::Json<MembersChanged>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let id = group_id(&id)?;
    let results = state
        .roster
        .change_group_members(org.id, &principal.actor(), id, &ids, add)
        .await?;
    let changed = results
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                GroupMemberOutcome::Added | GroupMemberOutcome::Removed
            )
        })
        .count();
    Ok(axum::Json(MembersChanged {
        changed,
        skipped: results.len() - changed,
        results,
    }))
}

/// `POST …/groups/{id}/members` `{"member_ids": [...]}`: adds members.
pub async fn add_members(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
    Json(body): Json<MemberIds>,
) -> Result<axum::Json<MembersChanged>, ApiError> {
    change(state, principal, slug, id, body.member_ids, true).await
}

/// `POST …/groups/{id}/members/remove` `{"member_ids": [...]}`: removes members.
pub async fn remove_members(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
    Json(body): Json<MemberIds>,
) -> Result<axum::Json<MembersChanged>, ApiError> {
    change(state, principal, slug, id, body.member_ids, false).await
}
