//! The admin REST API (`/api/v1`), health endpoints, and the HTTP layers around them (request
//! ids, tracing, body limits, timeouts, panics turned into 500s).
//!
//! Handlers are thin: parse the request, check who is calling, call [`crate::roster`], map the
//! answer. They never write SQL.

mod audit;
mod auth;
pub mod extract;
mod groups;
mod health;
mod invitations;
pub mod members;
mod orgs;
pub mod problem;
pub mod ratelimit;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use secrecy::SecretString;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::Principal;
use problem::ApiError;

use crate::config::Config;
use crate::roster::Roster;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub roster: Roster,
    /// The sync engine (sources, runs, imports).
    pub sync: crate::sync::Engine,
    pub config: Arc<Config>,
    pub operator_token: Option<Arc<SecretString>>,
    /// Pokes the delivery worker so a new email leaves without waiting for the next poll.
    pub delivery_wake: Arc<Notify>,
    /// Failed authentications per client address.
    pub auth_failures: ratelimit::AuthFailures,
}

impl AppState {
    pub fn wake_delivery(&self) {
        self.delivery_wake.notify_one();
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    let max_import = state.config.server.max_import_bytes;
    let timeout = Duration::from_secs(state.config.server.request_timeout_secs);
    let org = Router::new()
        .route("/", get(orgs::get_one).patch(orgs::patch))
        .route("/members", get(members::list).post(members::add))
        .route("/members/counts", get(members::counts))
        .route("/members/export.csv", get(members::export_csv))
        .route("/members/resend-invites", post(members::resend))
        .route("/members/remove", post(members::remove_many))
        .route(
            "/members/{id}",
            get(members::get_one)
                .patch(members::patch)
                .delete(members::remove_one),
        )
        .route("/members/{id}/activity", post(members::activity))
        .route("/ownership", post(members::transfer_ownership))
        .route("/audit", get(audit::list))
        .route("/tokens", get(orgs::list_tokens).post(orgs::create_token))
        .route("/tokens/{id}", axum::routing::delete(orgs::revoke_token))
        .route("/groups", get(groups::list))
        .route("/groups/{id}/members", get(groups::members))
        .route("/sources", get(sync::list_sources))
        .route("/sources/{name}", get(sync::get_source))
        .route("/sources/{name}/runs", post(sync::run_now))
        .route("/runs", get(sync::list_runs))
        .route("/runs/{id}", get(sync::get_run))
        .route("/runs/{id}/plan", get(sync::run_plan))
        .route("/runs/{id}/errors.csv", get(sync::run_errors_csv))
        .route("/runs/{id}/approve", post(sync::approve_run))
        .route(
            "/imports",
            get(sync::list_imports)
                .post(sync::upload)
                .layer(DefaultBodyLimit::max(max_import)),
        )
        .route("/imports/template.csv", get(sync::template))
        .route("/imports/{id}", get(sync::get_import))
        .route("/imports/{id}/plan", get(sync::import_plan))
        .route("/imports/{id}/errors.csv", get(sync::import_errors_csv))
        .route("/imports/{id}/confirm", post(sync::confirm_import))
        .route("/imports/{id}/cancel", post(sync::cancel_import));
    let api = Router::new()
        .route("/orgs", get(orgs::list).post(orgs::create))
        .nest("/orgs/{org}", org)
        .route("/invitations/accept", post(invitations::accept));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .nest("/api/v1", api)
        .nest("/scim/v2", crate::scim::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            ApiError::internal().into_response()
        }))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}
