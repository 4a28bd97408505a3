//! The application: builds everything from a [`Config`], binds the listener, runs the HTTP
//! server and the background workers (email delivery, invitation reminders, jobs) until told to stop,
//! then drains in-flight requests and stops the workers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::mail::Mailer;
use crate::mail::delivery::Delivery;
use crate::roster::{InviteSettings, Roster};
use crate::store::Store;
use crate::web::{self, AppState};

/// Things tests (and embedders) may swap in.
#[derive(Default, Clone)]
pub struct AppOptions {
    /// The clock; the system clock when absent.
    pub clock: Option<SharedClock>,
    /// The operator token; otherwise read from `auth.operator_token`.
    pub operator_token: Option<SecretString>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Roster(#[from] crate::roster::RosterError),
}

pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    /// `metrics.listen`, when set.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    delivery: Delivery,
    webhooks: crate::webhooks::Deliverer,
}

impl App {
    /// Opens the store, migrates it, creates configured orgs and binds the listener.
    pub async fn build(config: Config, options: AppOptions) -> Result<App, AppError> {
        let store = Store::connect(&config.database.url, config.database.max_connections).await?;
        store.migrate().await?;
        store.optimize().await?;
        Self::build_with_store(config, store, options).await
    }

    /// Like [`App::build`] on an already open (and migrated) store.
    pub async fn build_with_store(
        config: Config,
        store: Store,
        options: AppOptions,
    ) -> Result<App, AppError> {
        let clock: SharedClock = options.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let operator_token = match options.operator_token {
            Some(t) => Some(t),
            None => match &config.auth.operator_token {
                Some(r) => Some(
                    r.resolve()
                        .map_err(|e| AppError::Config(format!("auth.operator_token: {e}")))?,
                ),
                None => None,
            },
        };
        let mailer =
            Mailer::from_config(&config.mail).map_err(|e| AppError::Config(e.to_string()))?;
        let listener =
            TcpListener::bind(config.server.listen)
                .await
                .map_err(|e| AppError::Bind {
                    addr: config.server.listen,
                    reason: e.to_string(),
                })?;
        let addr = listener.local_addr().map_err(|e| AppError::Bind {
            addr: config.server.listen,
            reason: e.to_string(),
        })?;
        let mut config = config;
        warn_if_public_url_differs(&config.server.public_url, addr);
        config.server.public_url = config.public_url_or(addr);
        let roster = Roster::new(
            store.clone(),
            clock.clone(),
            InviteSettings::from_config(&config),
        );
        roster.ensure_orgs(&config.orgs).await?;
        let webhooks = crate::webhooks::Deliverer::new(roster.clone(), config.webhooks.clone())
            .map_err(AppError::Config)?;
        let delivery = Delivery {
            store: store.clone(),
            clock,
            mailer: Arc::new(mailer),
            from: config.mail.from.clone(),
            max_attempts: config.mail.max_attempts,
        };
        let auth_failures = crate::web::ratelimit::AuthFailures::new(
            config.server.auth_failures_per_minute,
            config.server.trusted_proxies.iter().map(|p| p.0).collect(),
        );
        let delivery_wake = Arc::new(Notify::new());
        let sync = crate::sync::Engine::new(&config, roster.clone())
            .map_err(|e| AppError::Config(e.to_string()))?
            .with_wake(delivery_wake.clone());
        sync.prepare()
            .await
            .map_err(|e| AppError::Config(e.to_string()))?;
        let metrics_token = match &config.metrics.token {
            Some(r) => {
                Some(Arc::new(r.resolve().map_err(|e| {
                    AppError::Config(format!("metrics.token: {e}"))
                })?))
            }
            None => None,
        };
        let metrics_listener = match config.metrics.listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| AppError::Bind {
                addr,
                reason: e.to_string(),
            })?),
            None => None,
        };
        // Installed before anything is recorded (once per process).
        crate::web::metrics::handle();
        let state = AppState {
            roster,
            sync,
            config: Arc::new(config),
            operator_token: operator_token.map(Arc::new),
            delivery_wake,
            auth_failures,
            metrics: crate::web::metrics::MetricsAccess {
                token: metrics_token,
            },
        };
        Ok(App {
            listener,
            addr,
            metrics_listener,
            state,
            delivery,
            webhooks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address `/metrics` is served on without a token, when `metrics.listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// The webhook delivery worker (tests run passes of it directly).
    pub fn webhooks(&self) -> &crate::webhooks::Deliverer {
        &self.webhooks
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to the
    /// configured grace period) and stops the workers.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut workers = spawn_workers(&self.state, &self.delivery, stop_rx.clone());
        if self.state.config.webhooks.deliver {
            workers.push(spawn_webhooks(
                self.webhooks.clone(),
                &self.state,
                stop_rx.clone(),
            ));
        }
        let schedulers = if self.state.config.sync.scheduler {
            crate::sync::scheduler::spawn(&self.state.sync, stop_rx.clone())
        } else {
            Vec::new()
        };
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_secs);
        let limits = crate::server::Limits {
            max_connections: self.state.config.server.max_connections,
            header_read_timeout: Duration::from_secs(
                self.state.config.server.header_read_timeout_secs,
            ),
        };
        let store = self.state.roster.store.clone();
        let metrics_server = self.metrics_listener.map(|listener| {
            let router = web::metrics_router(self.state.clone());
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            })
        });
        let router = web::router(self.state);
        let (drain_tx, mut drain_rx) = watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = drain_tx.send(true);
        };
        let server = tokio::spawn(crate::server::serve(self.listener, router, limits, signal));
        // Once draining starts, give in-flight requests the grace period, then stop anyway.
        let result = tokio::select! {
            r = server => r.map_err(std::io::Error::other),
            _ = async {
                let _ = drain_rx.wait_for(|d| *d).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!("grace period over; closing remaining connections");
                Ok(())
            }
        };
        let _ = stop_tx.send(true);
        // A sync run cut short here is marked interrupted at the next start (or by another
        // replica once its lease expires); its applied batches are whole, the next run converges.
        for s in schedulers {
            s.abort();
        }
        for w in workers {
            let _ = w.await;
        }
        if let Some(m) = metrics_server {
            let _ = m.await;
        }
        store.close().await;
        tracing::info!("stopped");
        result
    }
}

fn spawn_workers(
    state: &AppState,
    delivery: &Delivery,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut handles = Vec::new();
    {
        let delivery = delivery.clone();
        let wake = state.delivery_wake.clone();
        let every = Duration::from_millis(state.config.mail.poll_interval_ms.max(10));
        let mut stop = stop.clone();
        handles.push(tokio::spawn(async move {
            loop {
                if let Err(e) = delivery.run_once().await {
                    tracing::warn!(error = %e, "email delivery pass failed");
                }
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }));
    }
    {
        let limiter = state.auth_failures.clone();
        let store = state.roster.store.clone();
        let mut stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut minutes = 0u64;
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                limiter.tidy();
                minutes += 1;
                if minutes.is_multiple_of(6 * 60)
                    && let Err(e) = store.optimize().await
                {
                    tracing::warn!(error = %e, "refreshing planner statistics failed");
                }
            }
        }));
    }
    {
        // Jobs: fail the ones whose process died, purge expired export files, run queued ones.
        let roster = state.roster.clone();
        let settings = crate::roster::jobs::JobSettings::from_config(&state.config);
        let every = Duration::from_millis(state.config.jobs.poll_interval_ms.max(10));
        let mut stop = stop.clone();
        handles.push(tokio::spawn(async move {
            loop {
                match roster.sweep_jobs().await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(jobs = n, "marked jobs of a stopped process failed"),
                    Err(e) => tracing::warn!(error = %e, "sweeping jobs failed"),
                }
                // Queued jobs, one after the other. A job still running at shutdown is
                // dropped between statements (its open batch rolls back) and marked failed.
                loop {
                    let stopping = *stop.borrow();
                    if stopping {
                        break;
                    }
                    let job = match roster.claim_next_job(&settings).await {
                        Ok(Some(job)) => job,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "claiming a job failed");
                            break;
                        }
                    };
                    let id = job.id;
                    let finished = tokio::select! {
                        r = roster.run_claimed_job(job, &settings) => {
                            if let Err(e) = r {
                                tracing::warn!(job = %id, error = %e, "recording a job's end failed");
                            }
                            true
                        }
                        _ = stop.wait_for(|s| *s) => false,
                    };
                    if !finished {
                        if let Err(e) = roster.abandon_job(id).await {
                            tracing::warn!(job = %id, error = %e, "marking a stopped job failed");
                        }
                        break;
                    }
                }
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }));
    }
    {
        let roster = state.roster.clone();
        let wake = state.delivery_wake.clone();
        let every = Duration::from_millis(state.config.invitations.poll_interval_ms.max(10));
        let mut stop = stop;
        handles.push(tokio::spawn(async move {
            loop {
                match roster.send_due_reminders().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(reminders = n, "queued invitation reminders");
                        wake.notify_one();
                    }
                    Err(e) => tracing::warn!(error = %e, "reminder pass failed"),
                }
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }));
    }
    handles
}

/// The webhook delivery worker: a pass every `webhooks.poll_interval_ms`, and the delivery
/// log pruned hourly.
fn spawn_webhooks(
    deliverer: crate::webhooks::Deliverer,
    state: &AppState,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let every = Duration::from_millis(state.config.webhooks.poll_interval_ms.max(10));
    tokio::spawn(async move {
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                last_prune = Some(tokio::time::Instant::now());
                if let Err(e) = deliverer.prune().await {
                    tracing::warn!(error = %e, "pruning the webhook delivery log failed");
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                r = deliverer.run_once() => if let Err(e) = r {
                    tracing::warn!(error = %e, "webhook delivery pass failed");
                },
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

/// Warns when a configured public URL names a local address other than the one bound (say the
/// shipped `http://127.0.0.1:8080` under `--listen 127.0.0.1:9000`): identity providers and
/// invitation links would be sent to the wrong place. A public host name (a reverse proxy) is
/// not compared.
fn warn_if_public_url_differs(public_url: &str, bound: SocketAddr) {
    let Ok(url) = url::Url::parse(public_url) else {
        return;
    };
    let local = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
            Some(std::net::IpAddr::from([127, 0, 0, 1]))
        }
        _ => None,
    };
    let Some(ip) = local else {
        return;
    };
    let port = url.port_or_known_default();
    let same_host = ip == bound.ip()
        || bound.ip().is_unspecified()
        || (ip.is_loopback() && bound.ip().is_loopback());
    if port != Some(bound.port()) || !same_host {
        tracing::warn!(
            public_url,
            listening = %bound,
            "server.public_url names another address than the one listened on; links given to \
             identity providers and invitees will use it (set --public-url, or leave it unset to \
             use the bound address)"
        );
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
