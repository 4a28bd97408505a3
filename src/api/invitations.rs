//! `/api/v1/invitations/accept`: the invited person's side. No bearer token: the invitation
//! token from the email link is the credential.

use axum::extract::State;
use serde::Deserialize;

use super::extract::Json;
use super::members::MemberView;
use crate::roster::RosterError;
use crate::web::AppState;
use crate::web::problem::ApiError;
use crate::web::ratelimit::ClientIp;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The token from the invitation link.
    pub token: String,
    /// The address the person says they sign in with, if not the one invited. Not verified, so
    /// not an identity claim: rosterd stores and shows it, and never matches, merges or
    /// authorizes anyone by it (members are found by `member_email` and source links only).
    #[serde(default)]
    pub login_email: Option<String>,
}

pub async fn accept(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<AcceptBody>,
) -> Result<axum::Json<MemberView>, ApiError> {
    // Over budget, nothing is looked up: not even a correct token gets through.
    state.auth_failures.check(ip)?;
    if body.token.is_empty() || body.token.len() > 200 {
        state.auth_failures.record(ip)?;
        return Err(ApiError::field("token", "not an invitation token"));
    }
    match state
        .roster
        .accept_invitation(body.token.trim(), body.login_email.as_deref())
        .await
    {
        Ok(m) => Ok(axum::Json(MemberView::from(&m))),
        Err(e @ RosterError::NotFound(_)) => {
            // Guessing invitation links counts as failed authentication.
            state.auth_failures.record(ip)?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}
