//! Background jobs: long work (dropping an org's members, large exports) queued by a request
//! and run by the job worker (`app.rs`), one at a time per worker. A job records who asked, its
//! progress and its result; its runner holds a lease renewed with every progress report, and a
//! job whose lease ran out (its process died) is marked failed by the next sweep. Kinds are
//! dispatched here; each kind's work lives with its operation (`drop.rs`, `export.rs`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::audit::Actor;
use super::{Result, Roster, RosterError};
use crate::store::jobs::JobRow;
use crate::store::{self, Tx};

/// Dropping every member of an org but the owner and the acting admin.
pub const KIND_DROP_MEMBERS: &str = "members.drop";
/// A members export written to a file in the database.
pub const KIND_EXPORT: &str = "members.export";

/// What a job that died with its process says.
pub const INTERRUPTED: &str = "interrupted: the process running the job stopped; start it again";

/// Job settings taken from the config.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub lease: chrono::Duration,
    pub export_expiry: chrono::Duration,
}

impl JobSettings {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            lease: chrono::Duration::seconds(config.jobs.lease_secs.max(1) as i64),
            export_expiry: chrono::Duration::seconds(config.jobs.export_expiry_secs.max(1) as i64),
        }
    }
}

impl Default for JobSettings {
    fn default() -> Self {
        Self::from_config(&crate::config::Config::default())
    }
}

/// A job as the API and the CLI show it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub progress: i64,
    pub total: Option<i64>,
    pub params: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub actor: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&JobRow> for JobView {
    fn from(j: &JobRow) -> Self {
        let json = |t: &str| serde_json::from_str(t).unwrap_or(Value::Null);
        JobView {
            id: j.id,
            kind: j.kind.clone(),
            status: j.status.clone(),
            progress: j.progress,
            total: j.total,
            params: json(&j.params),
            result: j.result.as_deref().map(json),
            error: j.error.clone(),
            actor: j.actor_label.clone(),
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

/// The actor a job acts as: the one who asked for it.
fn actor_of(j: &JobRow) -> Actor {
    let id = j.actor_id.as_deref().and_then(|i| i.parse::<Uuid>().ok());
    match (j.actor_kind.as_str(), id) {
        ("operator", _) => Actor::Operator,
        ("cli", _) => Actor::Cli,
        ("admin_token", Some(id)) => Actor::AdminToken {
            id,
            name: j
                .actor_label
                .strip_prefix("admin token ")
                .unwrap_or(&j.actor_label)
                .to_owned(),
        },
        _ => Actor::System,
    }
}

/// Hands a running job's work its progress reports (which renew the lease).
pub(crate) struct JobCtx {
    pub id: Uuid,
    pub org_id: Uuid,
    pub actor: Actor,
    pub params: Value,
    roster: Roster,
    lease: chrono::Duration,
}

impl JobCtx {
    /// Records progress; fails when the job is no longer running (its lease was swept).
    pub async fn report(&self, progress: i64, total: Option<i64>) -> Result<()> {
        let lease_until = self.roster.clock.now() + self.lease;
        let mut tx = self.roster.store.write().await?;
        let alive = store::jobs::progress(&mut tx, self.id, progress, total, lease_until).await?;
        tx.commit().await?;
        if alive {
            Ok(())
        } else {
            Err(RosterError::Gone(
                "the job is no longer running (its lease ran out)".into(),
            ))
        }
    }
}

impl Roster {
    /// Queues a job in `tx` (the caller's write transaction, which also holds its audit entry).
    pub(crate) async fn queue_job(
        &self,
        tx: &mut Tx,
        org_id: Uuid,
        actor: &Actor,
        kind: &str,
        params: &Value,
    ) -> Result<JobRow> {
        let (actor_kind, actor_id, actor_label) = actor.parts();
        let job = JobRow {
            id: Uuid::now_v7(),
            org_id,
            kind: kind.to_owned(),
            status: "queued".into(),
            params: params.to_string(),
            progress: 0,
            total: None,
            result: None,
            error: None,
            actor_kind: actor_kind.into(),
            actor_id,
            actor_label,
            created_at: self.clock.now(),
            started_at: None,
            finished_at: None,
            lease_until: None,
        };
        store::jobs::insert(tx, &job).await?;
        Ok(job)
    }

    /// One job of the org (another org's job is not found).
    pub async fn job(&self, org_id: Uuid, id: Uuid) -> Result<JobRow> {
        let mut tx = self.store.read().await?;
        let job = store::jobs::by_id(&mut tx, org_id, id).await?;
        tx.rollback().await?;
        job.ok_or_else(|| RosterError::NotFound("job".into()))
    }

    /// Marks failed the running jobs whose lease ran out, and purges expired export files.
    pub async fn sweep_jobs(&self) -> Result<u64> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let n = store::jobs::sweep(&mut tx, now, INTERRUPTED).await?;
        store::jobs::purge_expired(&mut tx, now, 100).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Claims the oldest queued job and runs it to its end. False when none was queued.
    pub async fn run_next_job(&self, settings: &JobSettings) -> Result<bool> {
        match self.claim_next_job(settings).await? {
            Some(job) => {
                self.run_claimed(job, settings).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Claims the oldest queued job (it becomes `running`, leased to this process).
    pub async fn claim_next_job(&self, settings: &JobSettings) -> Result<Option<JobRow>> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let job = store::jobs::claim_next(&mut tx, now, now + settings.lease).await?;
        tx.commit().await?;
        Ok(job)
    }

    /// Runs a claimed job to its end and records how it ended.
    pub async fn run_claimed_job(&self, job: JobRow, settings: &JobSettings) -> Result<()> {
        self.run_claimed(job, settings).await
    }

    /// Marks a running job failed as interrupted (its runner is stopping; the batches it
    /// committed stay, running it again picks up the rest).
    pub async fn abandon_job(&self, id: Uuid) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        store::jobs::delete_chunks(&mut tx, id).await?;
        store::jobs::finish(&mut tx, id, "failed", None, Some(INTERRUPTED), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs a job this process queued (the command line) and answers it finished: claimed here,
    /// or, when a daemon's worker took it first, waited for.
    pub async fn run_job_here(
        &self,
        org_id: Uuid,
        id: Uuid,
        settings: &JobSettings,
    ) -> Result<JobRow> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let claimed = store::jobs::claim(&mut tx, id, now, now + settings.lease).await?;
        tx.commit().await?;
        if let Some(job) = claimed {
            self.run_claimed(job, settings).await?;
        }
        loop {
            let job = self.job(org_id, id).await?;
            if matches!(job.status.as_str(), "succeeded" | "failed") {
                return Ok(job);
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    async fn run_claimed(&self, job: JobRow, settings: &JobSettings) -> Result<()> {
        let ctx = JobCtx {
            id: job.id,
            org_id: job.org_id,
            actor: actor_of(&job),
            params: serde_json::from_str(&job.params).unwrap_or(Value::Null),
            roster: self.clone(),
            lease: settings.lease,
        };
        tracing::info!(job = %job.id, kind = %job.kind, org = %job.org_id, "job started");
        let outcome = match job.kind.as_str() {
            KIND_DROP_MEMBERS => self.run_drop_members(&ctx).await,
            KIND_EXPORT => self.run_export_job(&ctx, settings).await,
            other => Err(RosterError::invalid(
                "kind",
                format!("unknown job kind `{other}`"),
            )),
        };
        let end = self.clock.now();
        let mut tx = self.store.write().await?;
        match outcome {
            Ok(result) => {
                let text = result.to_string();
                store::jobs::finish(&mut tx, job.id, "succeeded", Some(&text), None, end).await?;
                tracing::info!(job = %job.id, "job succeeded");
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "job failed");
                store::jobs::delete_chunks(&mut tx, job.id).await?;
                store::jobs::finish(&mut tx, job.id, "failed", None, Some(&e.to_string()), end)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
