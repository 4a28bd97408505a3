//! What the three HTTP surfaces share: the application state every handler reaches, the tenant
//! resolver (`Principal`), the failed-authentication rate limiter, problem+json rendering,
//! health endpoints, and the layers every request passes through (request ids, tracing, body
//! limits, timeouts, panics turned into 500s).
//!
//! The surfaces sit beside each other and depend only on this module and the core
//! (`roster`, `sync`, `store` reads): `api` (the admin REST API at `/api/v1`), `scim` (SCIM 2.0
//! at `/scim/v2`) and the console. No surface imports another; [`router`] is the one place that
//! puts them together.

pub mod auth;
mod health;
pub mod metrics;
pub mod problem;
pub mod ratelimit;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
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

/// What every handler of every surface can reach.
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
    /// Who may read `/metrics` on the main listener.
    pub metrics: metrics::MetricsAccess,
}

impl AppState {
    pub fn wake_delivery(&self) {
        self.delivery_wake.notify_one();
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every surface under its prefix, behind the shared layers.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    let timeout = Duration::from_secs(state.config.server.request_timeout_secs);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::scrape_with_token))
        .nest("/api/v1", crate::api::router(&state.config))
        .nest("/scim/v2", crate::scim::router())
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(metrics::track))
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
        .layer(axum::middleware::map_request(sane_request_id))
}

/// The router of `metrics.listen`: `/metrics` alone, without a token.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::scrape_open))
        .fallback(not_found)
        .with_state(state)
}

/// A client's `x-request-id` is kept only if it is a plain token (letters, digits, `-_.:`, at
/// most 64); anything else is dropped and a fresh id assigned, so it cannot forge log fields.
async fn sane_request_id(mut req: Request<axum::body::Body>) -> Request<axum::body::Body> {
    let plain = |v: &axum::http::HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= 64
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
    };
    if req.headers().get(REQUEST_ID).is_some_and(|v| !plain(v)) {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
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
