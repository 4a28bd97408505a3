//! `/api/v1/orgs/{org}/attributes…`: the org's own member attributes (its typed roster schema).
//! Values are set on members (`POST …/members`, `PATCH …/members/{id}`), shown in the list and
//! the detail, and filter the list (`attr.NAME=VALUE`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::extract::{Json, Path};
use crate::roster::attributes::{AttributePatch, NewAttribute};
use crate::store::attributes::AttributeDef;
use crate::web::AppState;
use crate::web::Principal;
use crate::web::problem::ApiError;

#[derive(Debug, Serialize)]
pub struct AttributeList {
    pub items: Vec<AttributeDef>,
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<axum::Json<AttributeList>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let items = state.roster.attributes(org.id).await?;
    Ok(axum::Json(AttributeList { items }))
}

pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<NewAttribute>,
) -> Result<(StatusCode, axum::Json<AttributeDef>), ApiError> {
    let org = principal.org(&state, &slug).await?;
    let d = state
        .roster
        .create_attribute(org.id, &principal.actor(), body)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(d)))
}

pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, name)): Path<(String, String)>,
) -> Result<axum::Json<AttributeDef>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    Ok(axum::Json(state.roster.attribute(org.id, &name).await?))
}

pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, name)): Path<(String, String)>,
    Json(body): Json<AttributePatch>,
) -> Result<axum::Json<AttributeDef>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let d = state
        .roster
        .update_attribute(org.id, &principal.actor(), &name, body)
        .await?;
    Ok(axum::Json(d))
}

pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = principal.org(&state, &slug).await?;
    state
        .roster
        .delete_attribute(org.id, &principal.actor(), &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
