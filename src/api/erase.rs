//! `/api/v1/orgs/{org}/members/{id}/erase`: erasing one member's personal data.

use axum::extract::State;
use uuid::Uuid;

use super::extract::Path;
use super::members::MemberView;
use crate::web::AppState;
use crate::web::Principal;
use crate::web::problem::ApiError;

/// `POST …/members/{id}/erase`: the member becomes a removed tombstone; answers it.
pub async fn erase_one(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<axum::Json<MemberView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let m = state
        .roster
        .erase_member(org.id, &principal.actor(), id)
        .await?;
    Ok(axum::Json(MemberView::from(&m)))
}
