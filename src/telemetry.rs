//! Logging: `tracing` to stderr, as text or JSON lines, filtered by config or `RUST_LOG`. Text
//! is coloured only when stderr is a terminal. And the names of the Prometheus metrics the core
//! records through the `metrics` facade (served by `web::metrics`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Installs the global subscriber once; later calls do nothing.
pub fn init(cfg: &LoggingConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

// The metric names (README, Operations → Metrics, lists them with their labels).
pub const HTTP_REQUESTS: &str = "rosterd_http_requests_total";
pub const HTTP_DURATION: &str = "rosterd_http_request_duration_seconds";
pub const SCIM_OPERATIONS: &str = "rosterd_scim_operations_total";
pub const SYNC_RUNS: &str = "rosterd_sync_runs_total";
pub const SYNC_RUN_DURATION: &str = "rosterd_sync_run_duration_seconds";
pub const SYNC_ROWS: &str = "rosterd_sync_rows_total";
pub const SYNC_HELD: &str = "rosterd_sync_runs_held";
pub const SYNC_FAILING: &str = "rosterd_sync_source_consecutive_failures";
pub const SYNC_SOURCES_FAILING: &str = "rosterd_sync_sources_failing";
pub const OUTBOX_BACKLOG: &str = "rosterd_outbox_backlog";
pub const MAIL_SENT: &str = "rosterd_mail_sent_total";
pub const MAIL_FAILURES: &str = "rosterd_mail_delivery_failures_total";
pub const DB_POOL_CONNECTIONS: &str = "rosterd_db_pool_connections";
pub const WEBHOOK_ATTEMPTS: &str = "rosterd_webhook_attempts_total";
