//! Prometheus metrics: the recorder, the layer that counts and times every HTTP request (and
//! every SCIM operation by client), and `GET /metrics`.
//!
//! Counters and histograms are recorded where things happen through the `metrics` facade
//! (requests here, sync runs in `sync`, deliveries in `mail`); what the database knows (held
//! runs, failing sources, the outbox backlog, pool use) is read when scraped, so every replica
//! reports the same figures for shared state and nothing drifts.
//!
//! `/metrics` is served on the main listener to a bearer of `metrics.token` (or the operator
//! token), and, when `metrics.listen` is set, on that address without a token (for a network
//! only the scraper reaches). With neither a token nor a listen address it answers 404.
//! The names are listed in the README (Operations → Metrics).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::{ExposeSecret, SecretString};

use super::AppState;
use super::problem::ApiError;
use crate::store;

use crate::telemetry::{
    DB_POOL_CONNECTIONS, HTTP_DURATION, HTTP_REQUESTS, MAIL_FAILURES, MAIL_SENT, OUTBOX_BACKLOG,
    SCIM_OPERATIONS, SYNC_FAILING, SYNC_HELD, SYNC_ROWS, SYNC_RUN_DURATION, SYNC_RUNS,
    SYNC_SOURCES_FAILING,
};

/// Latency buckets (seconds): from a cached read to a long import.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0,
];

/// The process's recorder, installed the first time it is asked for. One per process: every
/// app built in it (tests build many) reports into the same registry.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                describe();
            }
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency, by route and method"
    );
    describe_counter!(
        SCIM_OPERATIONS,
        "SCIM operations, by client (token name), operation and result"
    );
    describe_counter!(SYNC_RUNS, "Sync runs ended, by source and status");
    describe_histogram!(
        SYNC_RUN_DURATION,
        Unit::Seconds,
        "Sync run duration, by source"
    );
    describe_counter!(
        SYNC_ROWS,
        "Rows of ended sync runs, by source and outcome (fetched, created, updated, …)"
    );
    describe_gauge!(SYNC_HELD, "Runs held for approval, by source");
    describe_gauge!(
        SYNC_FAILING,
        "Consecutive failed runs of each failing source"
    );
    describe_gauge!(SYNC_SOURCES_FAILING, "Sources whose last run failed");
    describe_gauge!(OUTBOX_BACKLOG, "Emails waiting to be delivered");
    describe_counter!(MAIL_SENT, "Emails delivered");
    describe_counter!(
        MAIL_FAILURES,
        "Failed email deliveries, by whether rosterd gave up on the email"
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database connections, by pool and state (idle, in_use)"
    );
    describe_counter!(
        crate::telemetry::WEBHOOK_ATTEMPTS,
        "Webhook delivery attempts, by result (succeeded, failed, gave_up)"
    );
}

/// Who called the SCIM surface: filled in by its authentication, read by [`track`] once the
/// response is ready, so SCIM operations are counted by client.
#[derive(Clone, Default)]
pub struct Caller(pub Arc<OnceLock<String>>);

impl Caller {
    pub fn set(&self, name: &str) {
        let _ = self.0.set(name.to_owned());
    }
}

/// Counts and times every request by its route pattern (never its raw path: ids and slugs
/// would make a series per member), and every SCIM operation by client and result.
pub async fn track(matched: Option<MatchedPath>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = matched
        .as_ref()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let caller = Caller::default();
    req.extensions_mut().insert(caller.clone());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let method = method.as_str().to_owned();
    metrics::histogram!(HTTP_DURATION, "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    if let Some(op) = scim_operation(&route, &method) {
        let client = caller.0.get().cloned().unwrap_or_else(|| "-".to_owned());
        let result = match response.status().as_u16() {
            200..=399 => "success",
            401 | 403 | 429 => "refused",
            400..=499 => "client_error",
            _ => "server_error",
        };
        metrics::counter!(SCIM_OPERATIONS, "client" => client, "operation" => op, "result" => result)
            .increment(1);
    }
    metrics::counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// The SCIM operation a route and method are (`create_user`, `patch_group`, `bulk`, …).
fn scim_operation(route: &str, method: &str) -> Option<&'static str> {
    let rest = route.strip_prefix("/scim/v2")?;
    Some(match (method, rest) {
        ("POST", "/Users") => "create_user",
        ("GET", "/Users") | ("POST", "/Users/.search") => "list_users",
        ("GET", "/Users/{id}") => "get_user",
        ("PUT", "/Users/{id}") => "replace_user",
        ("PATCH", "/Users/{id}") => "patch_user",
        ("DELETE", "/Users/{id}") => "delete_user",
        ("POST", "/Groups") => "create_group",
        ("GET", "/Groups") | ("POST", "/Groups/.search") => "list_groups",
        ("GET", "/Groups/{id}") => "get_group",
        ("PUT", "/Groups/{id}") => "replace_group",
        ("PATCH", "/Groups/{id}") => "patch_group",
        ("DELETE", "/Groups/{id}") => "delete_group",
        ("POST", "/.search") => "search",
        ("POST", "/Bulk") => "bulk",
        _ => "discovery",
    })
}

/// Who may read `/metrics` on the main listener.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    pub token: Option<Arc<SecretString>>,
}

/// `GET /metrics` on the main listener: the bearer of `metrics.token` or the operator token.
pub async fn scrape_with_token(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some(token) = &state.metrics.token else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_route",
            "no such endpoint (set metrics.token or metrics.listen to serve metrics)",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .unwrap_or("");
    let operator = state
        .operator_token
        .as_ref()
        .is_some_and(|op| crate::token::equal(presented, op.expose_secret()));
    if !(crate::token::equal(presented, token.expose_secret()) || operator) {
        return Err(ApiError::unauthorized(
            "metrics need `Authorization: Bearer` with metrics.token",
        ));
    }
    Ok(scrape(&state).await)
}

/// `GET /metrics` on `metrics.listen`: no token (that address is for the scraper alone).
pub async fn scrape_open(State(state): State<AppState>) -> Response {
    scrape(&state).await
}

/// The exposition: what was recorded, plus what the database knows now.
async fn scrape(state: &AppState) -> Response {
    let store = &state.roster.store;
    for (pool, open, idle) in store.pool_use() {
        let idle = idle as f64;
        metrics::gauge!(DB_POOL_CONNECTIONS, "pool" => pool, "state" => "idle").set(idle);
        metrics::gauge!(DB_POOL_CONNECTIONS, "pool" => pool, "state" => "in_use")
            .set((f64::from(open) - idle).max(0.0));
    }
    match read_state(store).await {
        Ok((held, failing, backlog)) => {
            // Sources no longer held or failing read 0, not their last value.
            for s in state.sync.sources().iter().map(|d| &d.config.name) {
                let h = held.iter().find(|(n, _)| n == s).map_or(0, |(_, c)| *c);
                metrics::gauge!(SYNC_HELD, "source" => s.clone()).set(h as f64);
                let f = failing.iter().find(|(n, _)| n == s).map_or(0, |(_, c)| *c);
                metrics::gauge!(SYNC_FAILING, "source" => s.clone()).set(f as f64);
            }
            metrics::gauge!(SYNC_SOURCES_FAILING).set(failing.len() as f64);
            metrics::gauge!(OUTBOX_BACKLOG).set(backlog as f64);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the database's figures"),
    }
    let handle = handle();
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

type Figures = (Vec<(String, i64)>, Vec<(String, i64)>, i64);

async fn read_state(store: &store::Store) -> store::Result<Figures> {
    let mut tx = store.read().await?;
    let held = store::sync::held_per_source(&mut tx).await?;
    let failing = store::sync::failing_sources(&mut tx).await?;
    let backlog = store::outbox::backlog(&mut tx).await?;
    tx.rollback().await?;
    Ok((held, failing, backlog))
}

#[cfg(test)]
mod tests {
    use super::scim_operation;

    #[test]
    fn scim_routes_name_their_operation() {
        assert_eq!(
            scim_operation("/scim/v2/Users", "POST"),
            Some("create_user")
        );
        assert_eq!(
            scim_operation("/scim/v2/Groups/{id}", "PATCH"),
            Some("patch_group")
        );
        assert_eq!(scim_operation("/scim/v2/Schemas", "GET"), Some("discovery"));
        assert_eq!(scim_operation("/api/v1/orgs", "GET"), None);
    }
}
