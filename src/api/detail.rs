//! A member's full detail and the parts an admin sets beside the member row:
//!
//! - `GET /members/{id}`: the member (every field of [`MemberView`]) with their phone numbers,
//!   groups and entitlements, status trail, claims, application answers, points and money,
//!   and most recent audit entries ([`Roster::member_detail`](crate::roster::Roster));
//! - `GET`/`PUT /members/{id}/phones`: a member's phone numbers, replaced as a whole;
//! - `GET`/`POST /groups/{id}/entitlements`, `DELETE /groups/{id}/entitlements/{eid}`: what a
//!   group grants its members.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::AuditEntry;
use super::extract::{Json, Path};
use super::members::MemberView;
use crate::domain::Phone;
use crate::roster::detail::{
    Claims, GroupGrant, HeldEntitlement, LedgerSummary, MemberDetail, TrailStep,
};
use crate::roster::entitlements::NewEntitlement;
use crate::roster::join::ApplicationView;
use crate::roster::phones::NewPhone;
use crate::store::entitlements::Entitlement;
use crate::web::AppState;
use crate::web::Principal;
use crate::web::problem::ApiError;

/// The newest audit entries about the member, and how to read older ones.
#[derive(Debug, Serialize)]
pub struct RecentAudit {
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` to `GET …/audit?member={id}` for older entries; absent when all shown.
    pub next_cursor: Option<String>,
}

/// `GET …/members/{id}`: a member as [`MemberView`] shows them, and everything about them.
#[derive(Debug, Serialize)]
pub struct MemberDetailView {
    #[serde(flatten)]
    pub member: MemberView,
    pub phones: Vec<Phone>,
    /// The groups the member is in, each with who keeps it and the entitlements it grants.
    pub groups: Vec<GroupGrant>,
    /// Every entitlement the member has through their groups, by name.
    pub entitlements: Vec<HeldEntitlement>,
    /// Each change of access and each invitation email, oldest first, with who did it.
    pub status_trail: Vec<TrailStep>,
    /// False when the member's history is longer than the trail reads: its oldest steps are
    /// left out (the audit list has them all).
    pub status_trail_complete: bool,
    /// Which sources and SCIM clients hold the member.
    pub claims: Claims,
    /// Join-page applications that made the member, with their answers.
    pub applications: Vec<ApplicationView>,
    pub ledger: LedgerSummary,
    pub recent_audit: RecentAudit,
}

impl From<MemberDetail> for MemberDetailView {
    fn from(d: MemberDetail) -> Self {
        MemberDetailView {
            member: MemberView::from(&d.member).with_attributes(d.attributes),
            phones: d.phones,
            groups: d.groups,
            entitlements: d.entitlements,
            status_trail: d.trail,
            status_trail_complete: d.trail_complete,
            claims: d.claims,
            applications: d.applications,
            ledger: d.ledger,
            recent_audit: RecentAudit {
                items: d.recent_audit.into_iter().map(AuditEntry::from).collect(),
                next_cursor: d.audit_next_cursor,
            },
        }
    }
}

pub async fn get_member(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<axum::Json<MemberDetailView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let d = state.roster.member_detail(org.id, id).await?;
    Ok(axum::Json(d.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhonesBody {
    pub phones: Vec<NewPhone>,
}

#[derive(Debug, Serialize)]
pub struct PhonesAnswer {
    pub phones: Vec<Phone>,
}

pub async fn get_phones(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<axum::Json<PhonesAnswer>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let phones = state.roster.phones(org.id, id).await?;
    Ok(axum::Json(PhonesAnswer { phones }))
}

/// `PUT …/members/{id}/phones`: the member's numbers become the list given.
pub async fn put_phones(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
    Json(body): Json<PhonesBody>,
) -> Result<axum::Json<PhonesAnswer>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let phones = state
        .roster
        .set_phones(org.id, &principal.actor(), id, body.phones)
        .await?;
    Ok(axum::Json(PhonesAnswer { phones }))
}

/// An entitlement as the API shows it.
#[derive(Debug, Serialize)]
pub struct EntitlementAnswer {
    pub id: Uuid,
    pub group_id: Uuid,
    pub name: String,
    pub external_ref: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Entitlement> for EntitlementAnswer {
    fn from(e: Entitlement) -> Self {
        EntitlementAnswer {
            id: e.id,
            group_id: e.group_id,
            name: e.name,
            external_ref: e.external_ref,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EntitlementList {
    pub items: Vec<EntitlementAnswer>,
}

pub async fn list_entitlements(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, group)): Path<(String, Uuid)>,
) -> Result<axum::Json<EntitlementList>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let items = state.roster.entitlements(org.id, group).await?;
    Ok(axum::Json(EntitlementList {
        items: items.into_iter().map(EntitlementAnswer::from).collect(),
    }))
}

pub async fn add_entitlement(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, group)): Path<(String, Uuid)>,
    Json(body): Json<NewEntitlement>,
) -> Result<(StatusCode, axum::Json<EntitlementAnswer>), ApiError> {
    let org = principal.org(&state, &slug).await?;
    let e = state
        .roster
        .add_entitlement(org.id, &principal.actor(), group, body)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(e.into())))
}

pub async fn remove_entitlement(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, group, id)): Path<(String, Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let org = principal.org(&state, &slug).await?;
    state
        .roster
        .remove_entitlement(org.id, &principal.actor(), group, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
