//! Invite links: `POST/GET …/orgs/{org}/invite-links`, `POST …/invite-links/{id}/revoke` for
//! admins, and `POST /api/v1/invite-links/accept` for the invitee (no bearer token: the link's
//! token and its unlock code are the credential).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Json, Path};
use super::members::MemberView;
use crate::roster::{CreatedInviteLink, InviteLinkView, NewInviteLink, RosterError};
use crate::web::problem::ApiError;
use crate::web::ratelimit::ClientIp;
use crate::web::{AppState, Principal};

pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<NewInviteLink>,
) -> Result<(StatusCode, axum::Json<CreatedInviteLink>), ApiError> {
    let org = principal.org(&state, &slug).await?;
    let link = state
        .roster
        .create_invite_link(org.id, &principal.actor(), body)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(link)))
}

#[derive(Debug, Serialize)]
pub struct LinkList {
    pub items: Vec<InviteLinkView>,
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<axum::Json<LinkList>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let items = state.roster.invite_links(org.id).await?;
    Ok(axum::Json(LinkList { items }))
}

pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<axum::Json<InviteLinkView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let id = Uuid::try_parse(&id)
        .map_err(|_| ApiError::not_found(&format!("invite link `{}`", id.escape_debug())))?;
    let link = state
        .roster
        .revoke_invite_link(org.id, &principal.actor(), id)
        .await?;
    Ok(axum::Json(link))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The token from the link's URL.
    pub token: String,
    /// The unlock code the admin gave out.
    pub code: String,
    /// The invitee's email address.
    pub email: String,
}

pub async fn accept(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<AcceptBody>,
) -> Result<(StatusCode, axum::Json<MemberView>), ApiError> {
    // Over budget, nothing is looked up: not even a correct token and code get through.
    state.auth_failures.check(ip)?;
    if body.token.trim().is_empty() || body.token.len() > 200 {
        state.auth_failures.record(ip)?;
        return Err(ApiError::field("token", "not an invite link token"));
    }
    if body.code.len() > 200 {
        return Err(ApiError::field("code", "too long"));
    }
    match state
        .roster
        .accept_invite_link(body.token.trim(), &body.code, &body.email)
        .await
    {
        Ok(m) => Ok((StatusCode::CREATED, axum::Json(MemberView::from(&m)))),
        Err(e @ (RosterError::NotFound(_) | RosterError::WrongCode { .. })) => {
            // Guessing links or codes counts as failed authentication.
            state.auth_failures.record(ip)?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}
