//! The scheduler: one task per scheduled source computes the next fire time from its cron
//! schedule and, when it comes, asks the engine to run that tick. Every replica runs this; the
//! tick's unique run row and the source lease make each tick run once, on one replica.
//!
//! Time comes from the app's clock (checked every `POLL`), so tests can move a manual clock.
//! A failing source is backed off: ticks before its `retry_after` are skipped.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Engine, SyncError, Trigger};

/// How often a waiting task looks at the clock.
const POLL: Duration = Duration::from_millis(250);

/// Starts one task per scheduled source; they stop when `stop` turns true.
pub fn spawn(engine: &Engine, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![spawn_sweeper(engine, stop.clone())];
    tasks.extend(spawn_sources(engine, stop));
    tasks
}

/// Marks runs whose replica died (their source lease expired) as interrupted, every lease
/// period, so the run history tells the truth even before the source's next run.
fn spawn_sweeper(engine: &Engine, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let engine = engine.clone();
    let every = Duration::from_secs(engine.settings().lease_secs.max(1));
    tokio::spawn(async move {
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(every) => {}
            }
            // Old run details go once an hour.
            if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                last_prune = Some(tokio::time::Instant::now());
                match engine.prune().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "deleted old run details"),
                    Err(e) => tracing::warn!(error = %e, "deleting old run details failed"),
                }
            }
            match engine.sweep_orphans().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(runs = n, "marked runs of a dead replica interrupted"),
                Err(e) => tracing::warn!(error = %e, "sweeping interrupted runs failed"),
            }
        }
    })
}

fn spawn_sources(engine: &Engine, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    engine
        .sources()
        .iter()
        .filter(|s| s.schedule.is_scheduled())
        .map(|s| {
            let engine = engine.clone();
            let name = s.config.name.clone();
            let stop = stop.clone();
            tokio::spawn(async move { run_source(engine, name, stop).await })
        })
        .collect()
}

async fn run_source(engine: Engine, name: String, mut stop: watch::Receiver<bool>) {
    let Ok(def) = engine.source(&name).cloned() else {
        return;
    };
    let clock = engine.roster().clock.clone();
    let mut next = def.schedule.next_after(clock.now());
    tracing::info!(source = %name, next = ?next, "scheduled");
    while let Some(fire) = next {
        // Wait for the tick (or the stop signal).
        loop {
            if *stop.borrow() {
                return;
            }
            let now = clock.now();
            if now >= fire {
                break;
            }
            let left = (fire - now).to_std().unwrap_or(POLL).min(POLL);
            tokio::select! {
                _ = tokio::time::sleep(left) => {}
                _ = stop.changed() => {}
            }
        }
        let backoff = engine.retry_after(&name).await.ok().flatten();
        if backoff.is_some_and(|until| fire < until) {
            tracing::info!(source = %name, until = ?backoff, "source is failing; tick skipped (backing off)");
        } else {
            let by = format!("scheduler on replica {}", engine.replica());
            match engine.run(&name, Trigger::Schedule(fire), &by, None).await {
                Ok(run) => {
                    tracing::info!(source = %name, run = %run.id, status = %run.status, "scheduled run finished")
                }
                Err(SyncError::Busy(_)) => {
                    tracing::info!(source = %name, "a run is in progress elsewhere; tick skipped")
                }
                Err(SyncError::AlreadyRan) => {}
                Err(e) => tracing::error!(source = %name, error = %e, "scheduled run failed"),
            }
        }
        // Ticks missed while the run lasted are skipped, but not one falling due right now (a
        // run that ends exactly on a tick, or a clock that jumped to it).
        let just_before_now = clock.now() - chrono::Duration::milliseconds(1);
        next = def.schedule.next_after(fire.max(just_before_now));
    }
}
