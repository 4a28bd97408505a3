//! The public join page and applications: `GET/PUT …/orgs/{org}/join` (settings),
//! `GET …/applications`, `POST …/applications/{id}/approve|decline` for admins, and the public
//! side without a bearer token: `POST /api/v1/join/{slug}` (ask to join) and
//! `POST /api/v1/join/verify` (the emailed token). Both public calls check the client's
//! failed-authentication budget first; an unknown or closed page, a wrong token, and every
//! request that queues an email count against it, so the page can neither be probed nor used
//! to flood an inbox.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use crate::roster::RosterError;
use crate::roster::join::{ApplicationView, JoinAsk, JoinSettings, Verified};
use crate::web::problem::ApiError;
use crate::web::ratelimit::ClientIp;
use crate::web::{AppState, Principal};

pub async fn get_settings(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<axum::Json<JoinSettings>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    Ok(axum::Json(state.roster.join_settings(org.id).await?))
}

pub async fn put_settings(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<JoinSettings>,
) -> Result<axum::Json<JoinSettings>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let settings = state
        .roster
        .put_join_settings(org.id, &principal.actor(), body)
        .await?;
    Ok(axum::Json(settings))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `pending` (the default), `approved`, `declined`, `joined`, `unverified` or `void`.
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ApplicationList {
    pub items: Vec<ApplicationView>,
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<ApplicationList>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let items = state
        .roster
        .applications(org.id, q.status.as_deref().unwrap_or("pending"))
        .await?;
    Ok(axum::Json(ApplicationList { items }))
}

fn application_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(id)
        .map_err(|_| ApiError::not_found(&format!("application `{}`", id.escape_debug())))
}

pub async fn approve(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<axum::Json<ApplicationView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let id = application_id(&id)?;
    let a = state
        .roster
        .approve_application(org.id, &principal.actor(), id)
        .await?;
    Ok(axum::Json(a))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclineBody {
    /// Told to the applicant in the email.
    #[serde(default)]
    pub reason: Option<String>,
}

pub async fn decline(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
    Json(body): Json<DeclineBody>,
) -> Result<axum::Json<ApplicationView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let id = application_id(&id)?;
    let a = state
        .roster
        .decline_application(org.id, &principal.actor(), id, body.reason.as_deref())
        .await?;
    Ok(axum::Json(a))
}

#[derive(Debug, Serialize)]
pub struct Asked {
    pub status: &'static str,
    pub detail: &'static str,
}

pub async fn ask(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(slug): Path<String>,
    Json(body): Json<JoinAsk>,
) -> Result<(StatusCode, axum::Json<Asked>), ApiError> {
    state.auth_failures.check(ip)?;
    // Every request spends budget before anything is sent: the page cannot be used to flood an
    // inbox, and a client over its budget is refused before an email leaves, never after.
    state.auth_failures.record(ip)?;
    match state.roster.request_to_join(&slug, body).await {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            axum::Json(Asked {
                status: "verification_sent",
                detail: "check your inbox: the link in the email we sent confirms the request",
            }),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The token from the emailed link.
    pub token: String,
}

pub async fn verify(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<VerifyBody>,
) -> Result<axum::Json<Verified>, ApiError> {
    state.auth_failures.check(ip)?;
    let token = body.token.trim();
    if token.is_empty() || token.len() > 200 {
        state.auth_failures.record(ip)?;
        return Err(ApiError::field("token", "not a verification token"));
    }
    match state.roster.verify_join(token).await {
        Ok(v) => Ok(axum::Json(v)),
        Err(e @ RosterError::NotFound(_)) => {
            state.auth_failures.record(ip)?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}
