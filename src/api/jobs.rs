//! `/api/v1/orgs/{org}/jobs/{id}`, dropping all member data of an org
//! (`POST …/members/drop`), and members exports: streamed (`GET …/members/export`) or as a job
//! (`POST …/exports`, then `GET …/exports/{id}/download`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use crate::roster::export::{self, ExportFormat, ExportOptions};
use crate::roster::jobs::{JobView, KIND_EXPORT};
use crate::store::jobs::JobRow;
use crate::web::AppState;
use crate::web::Principal;
use crate::web::problem::ApiError;

/// A job, with the download URL of a finished export.
#[derive(Debug, Serialize)]
pub struct JobAnswer {
    #[serde(flatten)]
    pub job: JobView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

fn answer(state: &AppState, slug: &str, job: &JobRow) -> JobAnswer {
    let download_url = (job.kind == KIND_EXPORT && job.status == "succeeded").then(|| {
        format!(
            "{}/api/v1/orgs/{slug}/exports/{}/download",
            state.config.server.public_url.trim_end_matches('/'),
            job.id
        )
    });
    JobAnswer {
        job: JobView::from(job),
        download_url,
    }
}

fn accepted(state: &AppState, slug: &str, job: &JobRow) -> Response {
    let mut res = (StatusCode::ACCEPTED, axum::Json(answer(state, slug, job))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/orgs/{slug}/jobs/{}", job.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// `GET …/jobs/{id}`.
pub async fn get_job(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<axum::Json<JobAnswer>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let job = state.roster.job(org.id, id).await?;
    Ok(axum::Json(answer(&state, &org.slug, &job)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropBody {
    /// An admin token: your own member email. The operator token: the org's slug.
    pub confirm: String,
}

/// `POST …/members/drop`: 202 with the job.
pub async fn drop_members(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<DropBody>,
) -> Result<Response, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let job = state
        .roster
        .request_drop_members(org.id, &principal.actor(), &body.confirm, None)
        .await?;
    Ok(accepted(&state, &org.slug, &job))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Comma-separated column groups.
    #[serde(default)]
    pub columns: Option<String>,
    /// `csv` (default) or `zip`.
    #[serde(default)]
    pub format: Option<String>,
}

fn options(columns: Option<&str>, format: Option<&str>) -> Result<ExportOptions, ApiError> {
    let columns = columns
        .map(export::parse_columns)
        .transpose()
        .map_err(|e| ApiError::field("columns", e))?;
    let format = format
        .map(ExportFormat::parse)
        .transpose()
        .map_err(|e| ApiError::field("format", e))?
        .unwrap_or(ExportFormat::Csv);
    Ok(ExportOptions { columns, format })
}

fn download(body: Body, content_type: &str, file_name: &str) -> Response {
    let mut res = body.into_response();
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    let disposition = format!("attachment; filename=\"{file_name}\"");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// `GET …/members/export` (and `…/members/export.csv`): the export, streamed.
pub async fn export_members(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let options = options(q.columns.as_deref(), q.format.as_deref())?;
    let csv_name = format!("{}-members.csv", org.slug);
    let body = Body::from_stream(export::stream(
        state.roster.store.clone(),
        org.id,
        &options,
        &csv_name,
    ));
    Ok(download(
        body,
        options.format.content_type(),
        &options.file_name(&org.slug),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportJobBody {
    /// Comma-separated column groups (as the `columns` query parameter).
    #[serde(default)]
    pub columns: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
}

/// `POST …/exports`: 202 with the export job.
pub async fn create_export(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<ExportJobBody>,
) -> Result<Response, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let options = options(body.columns.as_deref(), body.format.as_deref())?;
    let job = state
        .roster
        .request_export(org.id, &principal.actor(), &options)
        .await?;
    Ok(accepted(&state, &org.slug, &job))
}

/// `GET …/exports/{id}`: the export job (as `…/jobs/{id}`, for exports only).
pub async fn get_export(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<axum::Json<JobAnswer>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let job = state.roster.job(org.id, id).await?;
    if job.kind != KIND_EXPORT {
        return Err(ApiError::not_found("export"));
    }
    Ok(axum::Json(answer(&state, &org.slug, &job)))
}

/// `GET …/exports/{id}/download`: 409 until the job succeeded, 410 once expired.
pub async fn download_export(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<Response, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let file = state.roster.export_file(org.id, id).await?;
    let (content_type, name) = (file.content_type.clone(), file.file_name.clone());
    let body = Body::from_stream(export::file_stream(state.roster.store.clone(), file));
    Ok(download(body, &content_type, &name))
}
