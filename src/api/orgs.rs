//! `/api/v1/orgs…`: organizations and their tokens.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Json, Path};
use crate::roster::{CreatedToken, OrgChanges, TokenKind};
use crate::store::orgs::Org;
use crate::store::tokens::TokenRow;
use crate::store::{self};
use crate::web::AppState;
use crate::web::Principal;
use crate::web::problem::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub owner_email: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateOrg>,
) -> Result<(StatusCode, axum::Json<Org>), ApiError> {
    principal.require_operator()?;
    let org = state
        .roster
        .create_org(
            &principal.actor(),
            &body.slug,
            &body.name,
            body.owner_email.as_deref(),
        )
        .await?;
    state.wake_delivery();
    Ok((StatusCode::CREATED, axum::Json(org)))
}

#[derive(Debug, Serialize)]
pub struct OrgList {
    pub items: Vec<Org>,
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<OrgList>, ApiError> {
    let orgs = state.roster.orgs().await?;
    let items = match &principal {
        Principal::Operator => orgs,
        Principal::OrgAdmin { org_id, .. } => {
            orgs.into_iter().filter(|o| o.id == *org_id).collect()
        }
    };
    Ok(axum::Json(OrgList { items }))
}

pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<axum::Json<Org>, ApiError> {
    Ok(axum::Json(principal.org(&state, &slug).await?))
}

/// Absent: leave as is; `null` or `""`: clear.
fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchOrg {
    #[serde(default)]
    pub name: Option<String>,
    /// The integration that manages membership; `null` makes the org manual again.
    #[serde(default, deserialize_with = "double_option")]
    pub managed_by: Option<Option<String>>,
    /// What members created over SCIM start as: `invite`, `invite_silently` or `enroll`.
    #[serde(default)]
    pub scim_new_members: Option<String>,
    /// Most addresses one request may invite by hand (operator only).
    #[serde(default)]
    pub invite_limit: Option<i64>,
    /// Most people one import may invite (operator only).
    #[serde(default)]
    pub import_invite_limit: Option<i64>,
    /// Seconds before a person may be mailed another invitation (operator only).
    #[serde(default)]
    pub resend_cooldown_secs: Option<i64>,
    /// Every invitation must name at least one group.
    #[serde(default)]
    pub invite_requires_group: Option<bool>,
    /// Days an invite link stays valid (1–90).
    #[serde(default)]
    pub invite_link_days: Option<i64>,
    /// What a SCIM `active: false` does: `remove` (default) or `disable`.
    #[serde(default)]
    pub scim_deactivate: Option<String>,
}

pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<PatchOrg>,
) -> Result<axum::Json<Org>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    // Limits guard the platform against mass mailing: the operator sets them.
    if body.managed_by.is_some()
        || body.invite_limit.is_some()
        || body.import_invite_limit.is_some()
        || body.resend_cooldown_secs.is_some()
    {
        principal.require_operator()?;
    }
    let changes = OrgChanges {
        name: body.name,
        managed_by: body.managed_by,
        scim_new_members: body.scim_new_members,
        invite_limit: body.invite_limit,
        import_invite_limit: body.import_invite_limit,
        resend_cooldown_secs: body.resend_cooldown_secs,
        invite_requires_group: body.invite_requires_group,
        invite_link_days: body.invite_link_days,
        scim_deactivate: body.scim_deactivate,
    };
    let org = state
        .roster
        .update_org(&principal.actor(), org.id, &changes)
        .await?;
    Ok(axum::Json(org))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub kind: TokenKind,
    #[serde(default)]
    pub name: Option<String>,
}

pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, axum::Json<CreatedToken>), ApiError> {
    let org = principal.org(&state, &slug).await?;
    // A SCIM token makes its org SCIM-managed: that is the operator's decision, like the
    // integration lock elsewhere.
    if body.kind == TokenKind::Scim {
        principal.require_operator().map_err(|_| {
            ApiError::forbidden(
                "only the operator token may create SCIM tokens (a SCIM client manages the org's members)",
            )
        })?;
    }
    let created = state
        .roster
        .create_token(&principal.actor(), org.id, body.kind, body.name.as_deref())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[derive(Debug, Serialize)]
pub struct TokenList {
    pub items: Vec<TokenRow>,
}

pub async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<axum::Json<TokenList>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let mut tx = state.roster.store.read().await?;
    let items = store::tokens::list_for_org(&mut tx, org.id).await?;
    tx.rollback().await?;
    Ok(axum::Json(TokenList { items }))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let org = principal.org(&state, &slug).await?;
    // SCIM tokens are the operator's to create, and so to revoke: an org admin cutting off the
    // identity provider would undo the operator's decision.
    if principal.require_operator().is_err() {
        let mut tx = state.roster.store.read().await?;
        let row = store::tokens::by_id(&mut tx, id).await?;
        tx.rollback().await?;
        if row.is_some_and(|t| t.org_id == Some(org.id) && t.kind == "scim") {
            return Err(ApiError::forbidden(
                "only the operator token may revoke SCIM tokens",
            ));
        }
    }
    state
        .roster
        .revoke_token(&principal.actor(), id, Some(org.id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
