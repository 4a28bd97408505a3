//! `/api/v1/invitations/accept`: the invited person's side. No bearer token: the invitation
//! token from the email link is the credential.

use axum::extract::State;
use serde::Deserialize;

use super::AppState;
use super::extract::Json;
use super::members::MemberView;
use super::problem::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The token from the invitation link.
    pub token: String,
    /// The address the person signs in with, if not the one invited.
    #[serde(default)]
    pub login_email: Option<String>,
}

pub async fn accept(
    State(state): State<AppState>,
    Json(body): Json<AcceptBody>,
) -> Result<axum::Json<MemberView>, ApiError> {
    if body.token.is_empty() || body.token.len() > 200 {
        return Err(ApiError::field("token", "not an invitation token"));
    }
    let m = state
        .roster
        .accept_invitation(body.token.trim(), body.login_email.as_deref())
        .await?;
    Ok(axum::Json(MemberView::from(&m)))
}
