//! Sources, runs and import jobs of an org:
//!
//! - `GET /sources`, `GET /sources/{name}`: status (last run, next run, last error, failing);
//!   `POST /sources/{name}/runs`: run now (202, the run goes on in the background);
//! - `GET /runs`, `GET /runs/{id}` (with warnings and the first error rows), `GET
//!   /runs/{id}/plan` (the stored plan, paged), `GET /runs/{id}/errors.csv`, `POST
//!   /runs/{id}/approve` (a held run);
//! - `POST /imports` (the CSV or .zip as the body), `GET /imports`, `GET /imports/{id}`,
//!   `GET /imports/{id}/errors.csv`, `POST /imports/{id}/confirm`, `POST /imports/{id}/cancel`,
//!   `GET /imports/template.csv`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Path, Query, RawBody};
use crate::reconcile::plan::Item;
use crate::store::orgs::Org;
use crate::store::sync::{RunError, RunQuery, RunRow};
use crate::store::{self};
use crate::sync::SyncError;
use crate::web::AppState;
use crate::web::Principal;
use crate::web::problem::ApiError;

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::UnknownSource(name) => {
                ApiError::not_found(&format!("source `{}`", name.escape_debug()))
            }
            SyncError::Busy(_) => {
                ApiError::new(StatusCode::CONFLICT, "run_in_progress", e.to_string())
            }
            SyncError::AlreadyRan => {
                ApiError::new(StatusCode::CONFLICT, "already_ran", e.to_string())
            }
            SyncError::RunNotFound(id) => ApiError::not_found(&format!("run {id}")),
            SyncError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            SyncError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_upload", m)
            }
            SyncError::Store(s) => s.into(),
            SyncError::Roster(r) => r.into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub fetched: i64,
    pub created: i64,
    pub updated: i64,
    pub removed: i64,
    pub reactivated: i64,
    pub unchanged: i64,
    pub errors: i64,
}

#[derive(Debug, Serialize)]
pub struct Planned {
    pub create: i64,
    pub update: i64,
    pub remove: i64,
    pub reactivate: i64,
}

/// A run (or import job) as the API shows it.
#[derive(Debug, Serialize)]
pub struct RunView {
    pub id: Uuid,
    pub source: String,
    pub kind: String,
    pub trigger: String,
    pub status: String,
    pub phase: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub counts: Counts,
    pub planned: Planned,
    pub message: Option<String>,
    pub warnings: Vec<String>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    pub created_by: String,
    /// `full` (the source's whole roster) or `changes` (a delta read); absent before the read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<String>,
}

impl From<&RunRow> for RunView {
    fn from(r: &RunRow) -> Self {
        RunView {
            id: r.id,
            source: r.source.clone(),
            kind: r.kind.clone(),
            trigger: r.trigger.clone(),
            status: r.status.clone(),
            phase: r.phase.clone(),
            scheduled_for: r.fire_time,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.finished_at.map(|f| (f - r.started_at).num_milliseconds()),
            counts: Counts {
                fetched: r.fetched,
                created: r.created,
                updated: r.updated,
                removed: r.removed,
                reactivated: r.reactivated,
                unchanged: r.unchanged,
                errors: r.errors,
            },
            planned: Planned {
                create: r.planned_creates,
                update: r.planned_updates,
                remove: r.planned_removals,
                reactivate: r.planned_reactivations,
            },
            message: r.message.clone(),
            warnings: r.warnings(),
            approved_by: r.approved_by.clone(),
            approved_at: r.approved_at,
            filename: r.filename.clone(),
            created_by: r.created_by.clone(),
            coverage: r.coverage.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SourceView {
    pub name: String,
    pub kind: &'static str,
    pub schedule: Option<String>,
    pub timezone: String,
    pub authoritative: bool,
    /// Whether this source is the integration that locks manual removal in the org.
    pub manages_org: bool,
    pub priority: i32,
    pub max_removals: String,
    pub next_run_at: Option<DateTime<Utc>>,
    pub running: bool,
    pub last_run: Option<RunView>,
    pub last_error: Option<String>,
    pub consecutive_failures: i64,
    /// Failing runs in a row: the source is backed off until `retry_after`.
    pub failing: bool,
    pub retry_after: Option<DateTime<Utc>>,
}

async fn source_view(state: &AppState, org: &Org, name: &str) -> Result<SourceView, ApiError> {
    let def = state.sync.source(name)?;
    if def.config.org != org.slug {
        return Err(SyncError::UnknownSource(name.to_owned()).into());
    }
    let now = state.roster.clock.now();
    let mut tx = state.roster.store.read().await?;
    let row = store::sync::source(&mut tx, name).await?;
    let last = store::sync::last_run(&mut tx, name).await?;
    tx.rollback().await?;
    let (failures, last_error, retry_after, running) = match &row {
        Some(r) => (
            r.consecutive_failures,
            r.last_error.clone(),
            r.retry_after,
            r.lease_owner.is_some() && r.lease_expires_at.is_some_and(|t| t >= now),
        ),
        None => (0, None, None, false),
    };
    // The next tick the scheduler will actually run (ticks before a backoff are skipped).
    let next_run_at = match retry_after.filter(|t| *t > now) {
        Some(t) => def
            .schedule
            .next_after(t - chrono::Duration::milliseconds(1)),
        None => def.schedule.next_after(now),
    };
    Ok(SourceView {
        name: def.config.name.clone(),
        kind: def.config.kind.name(),
        schedule: def.config.schedule.clone(),
        timezone: def.config.timezone.clone().unwrap_or_else(|| "UTC".into()),
        authoritative: def.config.authoritative,
        manages_org: org.managed_by_source.as_deref() == Some(name),
        priority: def.config.priority,
        max_removals: def.config.max_removals.to_string(),
        next_run_at,
        running,
        last_run: last.as_ref().map(RunView::from),
        last_error,
        consecutive_failures: failures,
        failing: failures > 0,
        retry_after,
    })
}

pub async fn list_sources(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let mut items = Vec::new();
    for def in state.sync.sources() {
        if def.config.org == org.slug {
            items.push(source_view(&state, &org, &def.config.name).await?);
        }
    }
    Ok(axum::Json(serde_json::json!({ "items": items })))
}

pub async fn get_source(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, name)): Path<(String, String)>,
) -> Result<axum::Json<SourceView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    Ok(axum::Json(source_view(&state, &org, &name).await?))
}

fn label(principal: &Principal) -> String {
    match principal {
        Principal::Operator => "operator token".into(),
        Principal::OrgAdmin { name, .. } => format!("admin token {name}"),
    }
}

pub async fn run_now(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = principal.org(&state, &slug).await?;
    source_view(&state, &org, &name).await?;
    let run = state.sync.start(&name, &label(&principal)).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(RunView::from(&run))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    pub source: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunPage {
    pub items: Vec<RunView>,
    pub next_cursor: Option<String>,
}

fn cursor(c: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    c.map(|c| {
        Uuid::try_parse(c).map_err(|_| {
            ApiError::field(
                "cursor",
                "not a cursor returned by this list; start again without it",
            )
        })
    })
    .transpose()
}

async fn page(
    state: &AppState,
    org: &Org,
    p: RunParams,
    kind: &'static str,
) -> Result<axum::Json<RunPage>, ApiError> {
    let limit = p.limit.unwrap_or(50);
    if limit == 0 || limit > 200 {
        return Err(ApiError::field("limit", "must be between 1 and 200"));
    }
    let q = RunQuery {
        org_id: Some(org.id),
        source: p.source,
        kind: Some(kind),
        before: cursor(p.cursor.as_deref())?,
        limit: i64::from(limit) + 1,
    };
    let mut tx = state.roster.store.read().await?;
    let mut rows = store::sync::runs(&mut tx, &q).await?;
    tx.rollback().await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = rows.last().filter(|_| more).map(|r| r.id.to_string());
    Ok(axum::Json(RunPage {
        items: rows.iter().map(RunView::from).collect(),
        next_cursor,
    }))
}

pub async fn list_runs(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(p): Query<RunParams>,
) -> Result<axum::Json<RunPage>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    page(&state, &org, p, "sync").await
}

/// A run of this org (of the given kind), or 404: another org's run is never shown.
async fn org_run(state: &AppState, org: &Org, id: &str, kind: &str) -> Result<RunRow, ApiError> {
    let not_found = || {
        ApiError::not_found(&format!(
            "{} `{}`",
            if kind == "import" { "import" } else { "run" },
            id.escape_debug()
        ))
    };
    let id = Uuid::try_parse(id).map_err(|_| not_found())?;
    let mut tx = state.roster.store.read().await?;
    let run = store::sync::run(&mut tx, id).await?;
    tx.rollback().await?;
    run.filter(|r| r.org_id == org.id && r.kind == kind)
        .ok_or_else(not_found)
}

#[derive(Debug, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunView,
    /// The first error rows (all of them: `errors.csv`).
    pub error_rows: Vec<RunError>,
}

async fn detail(state: &AppState, run: &RunRow) -> Result<RunDetail, ApiError> {
    let mut tx = state.roster.store.read().await?;
    let errors = store::sync::errors(&mut tx, run.id, 0, 100).await?;
    tx.rollback().await?;
    Ok(RunDetail {
        run: RunView::from(run),
        error_rows: errors,
    })
}

pub async fn get_run(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<axum::Json<RunDetail>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let run = org_run(&state, &org, &id, "sync").await?;
    Ok(axum::Json(detail(&state, &run).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanParams {
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

/// One plan step: the item's own fields (`action`, …) plus its number, whether it has been
/// applied, and the person's email and external id at the top level for every action.
#[derive(Debug, Serialize)]
pub struct PlanEntry {
    pub seq: i64,
    pub applied: bool,
    #[serde(flatten)]
    pub item: serde_json::Map<String, serde_json::Value>,
}

fn entry(seq: i64, applied: bool, item: &Item) -> PlanEntry {
    let mut map = match serde_json::to_value(item) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    map.entry("email")
        .or_insert_with(|| serde_json::Value::from(item.email()));
    if let Some(x) = item.external_id() {
        map.entry("external_id")
            .or_insert_with(|| serde_json::Value::from(x));
    }
    PlanEntry {
        seq,
        applied,
        item: map,
    }
}

#[derive(Debug, Serialize)]
pub struct PlanPage {
    pub items: Vec<PlanEntry>,
    /// Pass as `after` for the next page.
    pub next_after: Option<i64>,
}

async fn plan_page(
    state: &AppState,
    run: &RunRow,
    p: PlanParams,
) -> Result<axum::Json<PlanPage>, ApiError> {
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let mut tx = state.roster.store.read().await?;
    let mut rows = store::sync::items(
        &mut tx,
        run.id,
        p.after.unwrap_or(0),
        i64::from(limit) + 1,
        false,
    )
    .await?;
    tx.rollback().await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_after = rows.last().filter(|_| more).map(|r| r.seq);
    Ok(axum::Json(PlanPage {
        items: rows
            .into_iter()
            .map(|r| entry(r.seq, r.applied, &r.item))
            .collect(),
        next_after,
    }))
}

pub async fn run_plan(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
    Query(p): Query<PlanParams>,
) -> Result<axum::Json<PlanPage>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let run = org_run(&state, &org, &id, "sync").await?;
    plan_page(&state, &run, p).await
}

/// Every error row of a run as CSV (line, external id, field, value, message).
async fn errors_csv(state: &AppState, run: &RunRow) -> Result<Response, ApiError> {
    let stream = crate::sync::report::errors_csv(state.roster.store.clone(), run.id);
    let mut res = Body::from_stream(stream).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-{}-errors.csv\"",
        run.source, run.id
    )) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

pub async fn run_errors_csv(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let run = org_run(&state, &org, &id, "sync").await?;
    errors_csv(&state, &run).await
}

pub async fn approve_run(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let run = org_run(&state, &org, &id, "sync").await?;
    let run = state.sync.approve(run.id, &label(&principal), true).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(RunView::from(&run))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    pub filename: Option<String>,
}

pub async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(p): Query<UploadParams>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let org = principal.org(&state, &slug).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_upload",
            "the request body must be the CSV file (or a .zip holding one)",
        ));
    }
    let name = p.filename.unwrap_or_else(|| "upload.csv".into());
    let job = state
        .sync
        .import(org.id, &name, body, &label(&principal))
        .await?;
    let detail = detail(&state, &job).await?;
    Ok((StatusCode::CREATED, axum::Json(detail)).into_response())
}

pub async fn list_imports(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(p): Query<RunParams>,
) -> Result<axum::Json<RunPage>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    if p.source.is_some() {
        return Err(ApiError::field("source", "imports have no source"));
    }
    page(&state, &org, p, "import").await
}

pub async fn get_import(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<axum::Json<RunDetail>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let run = org_run(&state, &org, &id, "import").await?;
    Ok(axum::Json(detail(&state, &run).await?))
}

pub async fn import_plan(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
    Query(p): Query<PlanParams>,
) -> Result<axum::Json<PlanPage>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let run = org_run(&state, &org, &id, "import").await?;
    plan_page(&state, &run, p).await
}

pub async fn import_errors_csv(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let run = org_run(&state, &org, &id, "import").await?;
    errors_csv(&state, &run).await
}

pub async fn confirm_import(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let run = org_run(&state, &org, &id, "import").await?;
    let run = state.sync.approve(run.id, &label(&principal), true).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(RunView::from(&run))).into_response())
}

pub async fn cancel_import(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, String)>,
) -> Result<axum::Json<RunView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let run = org_run(&state, &org, &id, "import").await?;
    let run = state.sync.cancel_import(run.id).await?;
    Ok(axum::Json(RunView::from(&run)))
}

pub async fn template(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    principal.org(&state, &slug).await?;
    let mut res = Body::from(crate::sync::import::template()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    res.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"import-template.csv\""),
    );
    Ok(res)
}
