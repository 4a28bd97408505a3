//! The sync engine: one run of a source is fetch -> plan -> check -> apply -> record.
//!
//! - **Fetch** streams the connector's snapshot; nothing is applied until the whole snapshot
//!   has been read, so a source that fails or stops halfway changes nothing.
//! - **Plan** feeds each record to the pure [`Planner`]; plan items and row errors are stored
//!   with the run as they are produced (memory stays bounded by the org's member index).
//! - **Check**: a run removing more than `max_removals`, or an empty snapshot from a source that
//!   had members, is `held`: nothing applied, the plan kept for an admin to approve (or for the
//!   next run to supersede).
//! - **Apply** in batches, one transaction each, every item re-checked against the store; each
//!   batch marks its items applied, so a crash leaves whole batches and the next run converges.
//! - **Record**: status, counts, error rows, and the source's failure backoff.
//!
//! Only one run of a source at a time, across replicas: a run holds the source's lease (a row
//! with an owner and an expiry, renewed while running); a scheduled tick is a unique
//! `(source, fire_time)` run row, so each tick runs on exactly one replica.

pub mod import;
pub mod report;
mod schedule;
pub mod scheduler;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rosterd_connectors::{Context, Coverage, Groups, Snapshot};
use uuid::Uuid;

pub use schedule::Schedule;

use crate::clock::SharedClock;
use crate::config::{Config, MaxRemovals, SourceConfig, SyncConfig};
use crate::reconcile::plan::{Item, Planner, Policy};
use crate::roster::{Actor, Roster, RosterError};
use crate::store::sync::{Applied, PlanCounts, RunError, RunRow};
use crate::store::{self, Store, StoreError};

/// The link source (and run source) name of admin CSV imports.
pub const IMPORT_SOURCE: &str = "import";

/// What a finished read covered and where it ended.
#[derive(Debug)]
pub(crate) struct Read {
    coverage: Coverage,
    checkpoint: Option<String>,
    /// For a source that manages groups, when the read knows them completely.
    groups: Option<GroupRead>,
    /// What the source said beyond its rows (a group it could not read, say).
    warnings: Vec<String>,
}

/// The groups a source keeps, and how its records name them.
struct KeptGroups<'a> {
    /// The rosterd group names.
    names: Vec<String>,
    /// For records that name groups by a field's values: value → rosterd name.
    values: Option<&'a std::collections::BTreeMap<String, String>>,
}

impl KeptGroups<'_> {
    /// The rosterd group a record's group value stands for (values match ignoring case).
    fn name<'v>(&'v self, value: &'v str) -> Option<&'v str> {
        match self.values {
            None => Some(value),
            Some(map) => map
                .get(value)
                .or_else(|| {
                    map.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(value))
                        .map(|(_, n)| n)
                })
                .map(String::as_str),
        }
    }
}

/// A source's groups as one read knows them.
#[derive(Debug, Default)]
pub(crate) struct GroupRead {
    /// Each group's members, by external id (from the source itself, or from a full read's
    /// records).
    wanted: Groups,
    /// Whether anyone may leave a group: not after rows that could not be tied to a person.
    removals: bool,
    /// External ids whose rows had errors: their memberships stay as they are.
    keep: HashSet<String>,
}

/// The lease under which an org's import jobs apply.
fn import_lease(org_id: Uuid) -> String {
    format!("{IMPORT_SOURCE}/{org_id}")
}

/// Error rows found while applying are numbered from here plus their plan item's number.
const APPLY_ERROR_SEQ: i64 = 1_000_000_000;

/// Plan items and error rows written per transaction while planning.
const PLAN_FLUSH: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no source named `{0}`")]
    UnknownSource(String),
    #[error("a run of `{0}` is already in progress")]
    Busy(String),
    #[error("this scheduled tick already ran on another replica")]
    AlreadyRan,
    #[error("run {0} not found")]
    RunNotFound(Uuid),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Roster(#[from] RosterError),
}

pub type Result<T, E = SyncError> = std::result::Result<T, E>;

/// A configured source, with its parsed schedule and org.
#[derive(Debug, Clone)]
pub struct SourceDef {
    pub config: SourceConfig,
    pub schedule: Schedule,
}

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A scheduled tick.
    Schedule(DateTime<Utc>),
    /// Run now, from the API.
    Api,
    /// `rosterd sync`.
    Cli,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule(_) => "schedule",
            Trigger::Api => "api",
            Trigger::Cli => "cli",
        }
    }
}

/// Progress of a run, for the CLI's progress bar.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    Fetched(u64),
    Planned { items: u64 },
    Applied { done: u64, total: u64 },
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// A plan computed without a run (dry run).
#[derive(Debug, Clone, Default)]
pub struct DryRun {
    pub items: Vec<Item>,
    pub counts: PlanCounts,
    pub warnings: Vec<String>,
    pub errors: Vec<RunError>,
    /// Why a real run would be held, if it would.
    pub held: Option<String>,
    /// Why the fetch failed, if it did.
    pub failed: Option<String>,
}

/// The sync engine, shared by the scheduler, the API and the CLI.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    roster: Roster,
    sources: Vec<SourceDef>,
    settings: SyncConfig,
    ctx: Context,
    /// This process's lease owner id.
    replica: String,
    /// Pokes email delivery after a batch queued invitations.
    wake: Option<Arc<tokio::sync::Notify>>,
}

/// A held lease on a source, renewed in the background until dropped.
struct Lease {
    lost: Arc<AtomicBool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// This process's lease owner id: `host:pid:uuid`, so a later process of the same host can
/// tell that the owner of a lease is gone.
fn replica_id() -> String {
    let id = format!("{}:{}:{}", host_name(), std::process::id(), Uuid::now_v7());
    live_here().push(id.clone());
    id
}

/// The replica ids of the engines of this process (an embedder may build several).
fn live_here() -> std::sync::MutexGuard<'static, Vec<String>> {
    static LIVE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    // Plain data: a panic elsewhere cannot leave it inconsistent.
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

fn host_name() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().replace(':', "_"))
        .unwrap_or_default()
}

/// Whether `owner` (a [`replica_id`]) is a process of this host that no longer runs: our pid
/// but none of our engines (a restart that got the pid again, as in a container) or, on Linux,
/// a pid with no `/proc` entry. Hosts must have distinct names (the default for containers and
/// VMs).
fn dead_on_this_host(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(_uuid), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if host.is_empty() || host != host_name() {
        return false;
    }
    if pid == std::process::id() {
        return !live_here().iter().any(|id| id == owner);
    }
    cfg!(target_os = "linux") && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn chrono_secs(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}

impl Engine {
    /// Builds the engine from config (schedules were checked when the config loaded).
    pub fn new(config: &Config, roster: Roster) -> Result<Engine> {
        let mut sources = Vec::new();
        for s in &config.sources {
            let schedule = Schedule::parse(s.schedule.as_deref(), s.timezone.as_deref())
                .map_err(|(k, e)| SyncError::Invalid(format!("source `{}`: {k}: {e}", s.name)))?;
            sources.push(SourceDef {
                config: s.clone(),
                schedule,
            });
        }
        // `request_timeout_secs` bounds each wait for the server (connect, headers, every read
        // of the body), not the whole download: `max_fetch_secs` bounds that.
        let mut ctx = Context::new(
            std::path::PathBuf::from("."),
            Duration::from_secs(config.sync.request_timeout_secs),
        )
        .map_err(|e| SyncError::Invalid(e.message))?;
        ctx.retries = config.sync.fetch_retries;
        ctx.retry_base = Duration::from_millis(config.sync.retry_base_ms);
        ctx.max_response_bytes = config.sync.max_response_bytes;
        ctx.max_record_bytes = config.sync.max_record_bytes;
        ctx.max_fetch_time = Duration::from_secs(config.sync.max_fetch_secs);
        Ok(Engine {
            inner: Arc::new(Inner {
                roster,
                sources,
                settings: config.sync.clone(),
                ctx,
                replica: replica_id(),
                wake: None,
            }),
        })
    }

    /// Wakes `notify` whenever applied changes may have queued emails.
    pub fn with_wake(self, notify: Arc<tokio::sync::Notify>) -> Engine {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|arc| Inner {
            roster: arc.roster.clone(),
            sources: arc.sources.clone(),
            settings: arc.settings.clone(),
            ctx: arc.ctx.clone(),
            replica: arc.replica.clone(),
            wake: arc.wake.clone(),
        });
        inner.wake = Some(notify);
        Engine {
            inner: Arc::new(inner),
        }
    }

    pub fn roster(&self) -> &Roster {
        &self.inner.roster
    }
    fn store(&self) -> &Store {
        &self.inner.roster.store
    }
    fn clock(&self) -> &SharedClock {
        &self.inner.roster.clock
    }
    pub fn sources(&self) -> &[SourceDef] {
        &self.inner.sources
    }
    pub fn source(&self, name: &str) -> Result<&SourceDef> {
        self.inner
            .sources
            .iter()
            .find(|s| s.config.name == name)
            .ok_or_else(|| SyncError::UnknownSource(name.to_owned()))
    }
    pub fn settings(&self) -> &SyncConfig {
        &self.inner.settings
    }

    /// Makes the store agree with the configured sources: each source's org must exist; each
    /// gets its state row; orgs with an authoritative source become integration-managed (the
    /// source of highest priority names the lock); runs orphaned by a dead replica are marked.
    pub async fn prepare(&self) -> Result<()> {
        let now = self.clock().now();
        let mut tx = self.store().write().await?;
        let mut managed: Vec<(Uuid, String, i32)> = Vec::new();
        for s in &self.inner.sources {
            let org = store::orgs::by_slug(&mut tx, &s.config.org)
                .await?
                .ok_or_else(|| {
                    SyncError::Invalid(format!(
                        "source `{}`: org `{}` does not exist (list it under [[orgs]] or run `rosterd org create`)",
                        s.config.name, s.config.org
                    ))
                })?;
            store::sync::ensure_source(&mut tx, &s.config.name, org.id, now).await?;
            if s.config.authoritative {
                match managed.iter_mut().find(|(id, _, _)| *id == org.id) {
                    Some(m) if s.config.priority < m.2 => {
                        *m = (org.id, s.config.name.clone(), s.config.priority)
                    }
                    Some(_) => {}
                    None => managed.push((org.id, s.config.name.clone(), s.config.priority)),
                }
            }
        }
        let managed: Vec<(Uuid, String)> = managed.into_iter().map(|(i, n, _)| (i, n)).collect();
        store::orgs::set_managing_sources(&mut tx, &managed).await?;
        // A process of this host that died (`kill -9`, a crash, a power cut) left its leases
        // behind: free them now rather than refusing runs until they expire.
        for (name, owner) in store::sync::leases(&mut tx).await? {
            if owner != self.inner.replica && dead_on_this_host(&owner) {
                tracing::warn!(source = %name, owner = %owner, "taking over the lease of a process of this host that is gone");
                store::sync::release(&mut tx, &name, &owner).await?;
            }
        }
        store::sync::interrupt_orphans(&mut tx, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn acquire(&self, name: &str) -> Result<Option<Lease>> {
        let lease = chrono_secs(self.inner.settings.lease_secs);
        let now = self.clock().now();
        let mut tx = self.store().write().await?;
        let ok = store::sync::acquire(&mut tx, name, &self.inner.replica, now, now + lease).await?;
        tx.commit().await?;
        if !ok {
            return Ok(None);
        }
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let engine = self.clone();
        let name = name.to_owned();
        let lost2 = lost.clone();
        let every = Duration::from_millis(self.inner.settings.lease_secs.saturating_mul(1000) / 3);
        // Until when the lease is surely ours: a renewal that keeps failing past it means
        // another replica may have taken the source over, so the run must stop.
        let mut held_until = now + lease;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(every) => {}
                }
                let until = engine.clock().now() + lease;
                let renewed = async {
                    let mut tx = engine.store().write().await?;
                    let ok =
                        store::sync::renew(&mut tx, &name, &engine.inner.replica, until).await?;
                    tx.commit().await?;
                    Ok::<_, StoreError>(ok)
                };
                match renewed.await {
                    Ok(true) => held_until = until,
                    Ok(false) => {
                        tracing::warn!(source = %name, "lost the source's lease; stopping the run");
                        lost2.store(true, Ordering::SeqCst);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(source = %name, error = %e, "cannot renew the lease");
                        if engine.clock().now() >= held_until {
                            lost2.store(true, Ordering::SeqCst);
                            break;
                        }
                    }
                }
            }
            // The run releases the lease when it ends (`Engine::release`); a killed process
            // leaves it to expire.
        });
        Ok(Some(Lease {
            lost,
            stop: Some(stop),
        }))
    }

    /// Starts a run: takes the source's lease and records the run row. The caller then calls
    /// [`Engine::execute`] (in the background for the API).
    async fn begin(&self, name: &str, trigger: Trigger, by: &str) -> Result<(RunRow, Lease)> {
        let def = self.source(name)?;
        if let Trigger::Schedule(fire) = trigger
            && self.tick_ran(name, fire).await?
        {
            return Err(SyncError::AlreadyRan);
        }
        let Some(lease) = self.acquire(name).await? else {
            return Err(SyncError::Busy(name.to_owned()));
        };
        match self.open_run(def, name, trigger, by).await {
            Ok(run) => Ok((run, lease)),
            Err(e) => {
                self.release(name, lease).await;
                Err(e)
            }
        }
    }

    /// Whether a run row for this scheduled tick exists (another replica ran it).
    async fn tick_ran(&self, name: &str, fire: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.store().read().await?;
        let ran = store::sync::tick_exists(&mut tx, name, fire).await?;
        tx.rollback().await?;
        Ok(ran)
    }

    /// Records the run row of a run whose lease we hold.
    async fn open_run(
        &self,
        def: &SourceDef,
        name: &str,
        trigger: Trigger,
        by: &str,
    ) -> Result<RunRow> {
        let now = self.clock().now();
        let mut tx = self.store().write().await?;
        let org = store::orgs::by_slug(&mut tx, &def.config.org)
            .await?
            .ok_or_else(|| SyncError::Conflict(format!("org `{}` is gone", def.config.org)))?;
        // We hold the lease: any run still marked running belongs to a replica that died.
        store::sync::interrupt_running(&mut tx, name, now).await?;
        let run = RunRow {
            id: Uuid::now_v7(),
            source: name.to_owned(),
            org_id: org.id,
            kind: "sync".into(),
            trigger: trigger.as_str().into(),
            fire_time: match trigger {
                Trigger::Schedule(t) => Some(t),
                _ => None,
            },
            status: "running".into(),
            phase: "fetching".into(),
            started_at: now,
            finished_at: None,
            lease_owner: Some(self.inner.replica.clone()),
            lease_name: Some(name.to_owned()),
            fetched: 0,
            created: 0,
            updated: 0,
            removed: 0,
            reactivated: 0,
            unchanged: 0,
            errors: 0,
            planned_creates: 0,
            planned_updates: 0,
            planned_removals: 0,
            planned_reactivations: 0,
            message: None,
            warnings: "[]".into(),
            approved_by: None,
            approved_at: None,
            filename: None,
            created_by: by.to_owned(),
            coverage: None,
            checkpoint: None,
        };
        if !store::sync::insert_run(&mut tx, &run).await? {
            tx.rollback().await?;
            return Err(SyncError::AlreadyRan);
        }
        store::sync::supersede_held(&mut tx, name, now).await?;
        tx.commit().await?;
        Ok(run)
    }

    /// Runs a source to the end (scheduler, CLI).
    pub async fn run(
        &self,
        name: &str,
        trigger: Trigger,
        by: &str,
        progress: Option<ProgressFn>,
    ) -> Result<RunRow> {
        let (run, lease) = self.begin(name, trigger, by).await?;
        let source = run.source.clone();
        let started = std::time::Instant::now();
        let done = self.execute(run, &lease, progress).await;
        record_metrics(&source, done.as_ref().ok(), started);
        self.release(&source, lease).await;
        done
    }

    /// Ends a run's hold on its source: stops renewing and frees the lease at once.
    async fn release(&self, name: &str, lease: Lease) {
        let lost = lease.lost.load(Ordering::SeqCst);
        drop(lease);
        if lost {
            return;
        }
        let freed = async {
            let mut tx = self.store().write().await?;
            store::sync::release(&mut tx, name, &self.inner.replica).await?;
            tx.commit().await
        };
        if let Err(e) = freed.await {
            tracing::warn!(source = %name, error = %e, "cannot release the lease; it will expire");
        }
    }

    /// Starts a run and finishes it in the background (the API's run now); returns the run as
    /// started.
    pub async fn start(&self, name: &str, by: &str) -> Result<RunRow> {
        let (run, lease) = self.begin(name, Trigger::Api, by).await?;
        let engine = self.clone();
        let started = run.clone();
        tokio::spawn(async move {
            let source = run.source.clone();
            let started = std::time::Instant::now();
            let done = engine.execute(run, &lease, None).await;
            record_metrics(&source, done.as_ref().ok(), started);
            if let Err(e) = done {
                tracing::error!(error = %e, "sync run failed");
            }
            engine.release(&source, lease).await;
        });
        Ok(started)
    }

    fn outranking(&self, def: &SourceDef) -> Vec<String> {
        self.inner
            .sources
            .iter()
            .filter(|s| s.config.org == def.config.org && s.config.priority < def.config.priority)
            .map(|s| s.config.name.clone())
            .collect()
    }

    /// Fetches and plans. Returns the planner and what planning produced; with `run`, items and
    /// errors are stored with it as they come, else kept in `dry`.
    async fn plan(
        &self,
        def: &SourceDef,
        org_id: Uuid,
        run: Option<(&RunRow, &Lease)>,
        dry: &mut DryRun,
        progress: &Option<ProgressFn>,
    ) -> Result<(Planner, std::result::Result<Read, String>)> {
        if let Err(e) = self.store().refresh_member_stats().await {
            tracing::warn!(error = %e, "refreshing planner statistics failed");
        }
        let current = {
            let mut tx = self.store().read().await?;
            let c = store::sync::current(&mut tx, org_id, &def.config.name, &self.outranking(def))
                .await?;
            tx.rollback().await?;
            c
        };
        let policy = Policy {
            authoritative: def.config.authoritative,
            complete: false,
            by_hand: false,
        };
        let mut planner = Planner::new(current, policy);
        let checkpoint = self.checkpoint(def).await?;
        let snapshot = def
            .config
            .kind
            .open(&def.config.mapping, &self.inner.ctx, checkpoint.as_deref())
            .await;
        let fetched = match snapshot {
            Ok(s) => {
                let kept = KeptGroups {
                    names: def.config.kind.managed_groups(),
                    values: def.config.kind.group_values(),
                };
                self.consume(s, &mut planner, &kept, run, dry, progress)
                    .await?
            }
            Err(e) => Err(e.message),
        };
        Ok((planner, fetched))
    }

    /// Where a change-reading source starts: its stored checkpoint, unless a full read is due
    /// (none applied yet, or the last is older than the source's `full_every`).
    /// A source that reads validators (a CSV URL) always gets its stored checkpoint.
    async fn checkpoint(&self, def: &SourceDef) -> Result<Option<String>> {
        let every = def.config.kind.full_every();
        if every.is_none() && !def.config.kind.reads_validators() {
            return Ok(None);
        }
        let row = {
            let mut tx = self.store().read().await?;
            let r = store::sync::source(&mut tx, &def.config.name).await?;
            tx.rollback().await?;
            r
        };
        let Some(every) = every else {
            return Ok(row.and_then(|r| r.checkpoint));
        };
        let now = self.clock().now();
        let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
        Ok(row.and_then(|r| match r.full_at {
            Some(at) if now - at < every => r.checkpoint,
            _ => None,
        }))
    }

    /// Reads a snapshot into the planner.
    async fn consume(
        &self,
        mut snapshot: Snapshot,
        planner: &mut Planner,
        kept: &KeptGroups<'_>,
        run: Option<(&RunRow, &Lease)>,
        dry: &mut DryRun,
        progress: &Option<ProgressFn>,
    ) -> Result<std::result::Result<Read, String>> {
        let coverage = snapshot.coverage;
        // Group memberships named by the records, and what the records' errors leave unknown.
        let (mut unreadable, mut keep) = (0u64, HashSet::new());
        let mut groups: Groups = kept
            .names
            .iter()
            .map(|g| (g.clone(), HashSet::new()))
            .collect();
        let mut items = Vec::new();
        let mut errors = Vec::new();
        let mut item_seq = 0i64;
        let mut error_seq = 0i64;
        let outcome = loop {
            let next = snapshot.next().await;
            match next {
                None => {
                    let finish = snapshot.take_finish();
                    // From the source, groups read apart from the rows; else a full read's
                    // records (a delta read's do not name everyone in a group).
                    let groups = match finish.groups {
                        Some(wanted) => Some(GroupRead {
                            wanted,
                            removals: true,
                            keep: HashSet::new(),
                        }),
                        None if coverage == Coverage::Full && !kept.names.is_empty() => {
                            Some(GroupRead {
                                wanted: std::mem::take(&mut groups),
                                removals: unreadable == 0,
                                keep: std::mem::take(&mut keep),
                            })
                        }
                        None => None,
                    };
                    break Ok(Read {
                        coverage,
                        checkpoint: finish.checkpoint,
                        groups,
                        warnings: finish.warnings,
                    });
                }
                Some(Err(e)) => break Err(e.message),
                Some(Ok((line, row))) => {
                    dry.counts.fetched += 1;
                    if let Ok(rec) = &row {
                        for g in &rec.groups {
                            if let Some(ids) = kept.name(g).and_then(|n| groups.get_mut(n)) {
                                ids.insert(rec.external_id.clone());
                            }
                        }
                    }
                    let res = match &row {
                        Ok(rec) => planner.push(line, rec, &mut items),
                        Err(e) => {
                            planner.unmapped_row(e.external_id.as_deref());
                            Err(e.clone())
                        }
                    };
                    if res.is_err() && !kept.names.is_empty() {
                        // A bad row keeps its person's groups; one naming nobody keeps everyone's.
                        match row
                            .as_ref()
                            .map(|r| Some(&r.external_id))
                            .unwrap_or_else(|e| e.external_id.as_ref())
                        {
                            Some(id) => {
                                keep.insert(id.clone());
                            }
                            None => unreadable += 1,
                        }
                    }
                    if let Err(e) = res {
                        error_seq += 1;
                        errors.push(RunError {
                            seq: error_seq,
                            line: i64::try_from(e.line).unwrap_or(i64::MAX),
                            external_id: match &row {
                                Ok(r) => Some(r.external_id.clone()),
                                Err(_) => e.external_id,
                            },
                            field: e.column,
                            value: e.value,
                            message: e.message,
                        });
                    }
                    if dry.counts.fetched % 10_000 == 0
                        && let Some(p) = progress
                    {
                        p(Progress::Fetched(dry.counts.fetched as u64));
                    }
                }
            }
            if let Some((run, lease)) = run {
                if lease.lost.load(Ordering::SeqCst) {
                    break Err("the run lost its lease (this replica stalled)".into());
                }
                if items.len() >= PLAN_FLUSH || errors.len() >= PLAN_FLUSH {
                    self.flush(run.id, &mut item_seq, &mut items, &mut errors)
                        .await?;
                }
            }
        };
        if outcome.is_ok() {
            planner.policy.complete = coverage == Coverage::Full;
            planner.finish(&mut items);
        }
        dry.counts.errors = error_seq;
        match run {
            Some((run, _)) => {
                self.flush(run.id, &mut item_seq, &mut items, &mut errors)
                    .await?
            }
            None => {
                dry.items.append(&mut items);
                dry.errors.append(&mut errors);
            }
        }
        Ok(outcome)
    }

    async fn flush(
        &self,
        run_id: Uuid,
        item_seq: &mut i64,
        items: &mut Vec<Item>,
        errors: &mut Vec<RunError>,
    ) -> Result<()> {
        if items.is_empty() && errors.is_empty() {
            return Ok(());
        }
        let mut tx = self.store().write().await?;
        store::sync::insert_items(&mut tx, run_id, *item_seq + 1, items).await?;
        store::sync::insert_errors(&mut tx, run_id, errors).await?;
        tx.commit().await?;
        *item_seq += items.len() as i64;
        items.clear();
        errors.clear();
        Ok(())
    }

    /// Why a plan must wait for an admin, if it must. `whole_roster`: the read was an
    /// authoritative source's full roster, so coming back empty is suspicious (a delta read with
    /// no changes is not).
    fn held_reason(
        max: MaxRemovals,
        whole_roster: bool,
        claimed_before: u64,
        fetched: i64,
        removals: u64,
    ) -> Option<String> {
        if whole_roster && fetched == 0 && claimed_before > 0 {
            return Some(format!(
                "the source returned nobody, but {claimed_before} member(s) came from it; \
                 approve the run to remove them"
            ));
        }
        let limit = max.limit(claimed_before);
        (removals > limit).then(|| {
            format!(
                "this run would remove {removals} member(s), more than max_removals ({max}, \
                 here {limit}); approve it, or fix the source and the next run replaces it"
            )
        })
    }

    /// Plans a source without changing anything: the dry run.
    pub async fn dry_run(&self, name: &str) -> Result<DryRun> {
        let def = self.source(name)?;
        let org_id = {
            let mut tx = self.store().read().await?;
            let org = store::orgs::by_slug(&mut tx, &def.config.org).await?;
            tx.rollback().await?;
            org.ok_or_else(|| SyncError::Conflict(format!("org `{}` is gone", def.config.org)))?
                .id
        };
        let mut dry = DryRun::default();
        let (planner, fetched) = self.plan(def, org_id, None, &mut dry, &None).await?;
        self.fill_counts(&planner, &mut dry.counts);
        dry.warnings = planner.warnings.clone();
        match fetched {
            Err(e) => dry.failed = Some(e),
            Ok(read) => {
                dry.held = Self::held_reason(
                    def.config.max_removals,
                    def.config.authoritative && read.coverage == Coverage::Full,
                    planner.claimed_before(),
                    dry.counts.fetched,
                    planner.tally.removals,
                )
            }
        }
        Ok(dry)
    }

    fn fill_counts(&self, planner: &Planner, c: &mut PlanCounts) {
        c.unchanged = planner.tally.unchanged as i64;
        c.creates = planner.tally.creates as i64;
        c.updates = planner.tally.updates as i64;
        c.removals = planner.tally.removals as i64;
        c.reactivations = planner.tally.reactivations as i64;
    }

    /// Fetch, plan, check, apply, record — for a run that has begun.
    async fn execute(
        &self,
        run: RunRow,
        lease: &Lease,
        progress: Option<ProgressFn>,
    ) -> Result<RunRow> {
        let def = self.source(&run.source)?.clone();
        let span = tracing::info_span!("sync", source = %run.source, run = %run.id);
        let _enter = span.enter();
        drop(_enter);
        let mut dry = DryRun::default();
        let planned = self
            .plan(&def, run.org_id, Some((&run, lease)), &mut dry, &progress)
            .await;
        let (planner, fetched) = match planned {
            Ok(p) => p,
            Err(e) => {
                self.fail(&run, &e.to_string()).await?;
                return Err(e);
            }
        };
        let mut counts = dry.counts;
        self.fill_counts(&planner, &mut counts);
        {
            let mut tx = self.store().write().await?;
            store::sync::set_planned(&mut tx, run.id, &counts, &planner.warnings).await?;
            tx.commit().await?;
        }
        if let Some(p) = &progress {
            p(Progress::Planned {
                items: (counts.creates + counts.updates + counts.removals + counts.reactivations)
                    as u64,
            });
        }
        let read = match fetched {
            Ok(read) => read,
            Err(message) => {
                tracing::warn!(source = %run.source, error = %message, "fetch failed; nothing applied");
                return self.fail(&run, &message).await;
            }
        };
        {
            let mut tx = self.store().write().await?;
            let coverage = match read.coverage {
                Coverage::Full => "full",
                Coverage::Changes => "changes",
            };
            store::sync::set_read(&mut tx, run.id, coverage, read.checkpoint.as_deref()).await?;
            for w in &read.warnings {
                store::sync::add_warning(&mut tx, run.id, w).await?;
            }
            tx.commit().await?;
        }
        if let Some(reason) = Self::held_reason(
            def.config.max_removals,
            def.config.authoritative && read.coverage == Coverage::Full,
            planner.claimed_before(),
            counts.fetched,
            planner.tally.removals,
        ) {
            tracing::warn!(source = %run.source, %reason, "run held for approval");

            let now = self.clock().now();
            let mut tx = self.store().write().await?;
            store::orgs::lock(&mut tx, run.org_id).await?;
            store::sync::set_status(&mut tx, run.id, "held", "held", Some(&reason), Some(now))
                .await?;
            if read.groups.is_some() {
                store::sync::add_warning(
                    &mut tx,
                    run.id,
                    "group memberships are not changed by a held run; the next run that applies \
                     without approval brings them up to date",
                )
                .await?;
            }
            let failures = self.failures(&mut tx, &run).await?;
            store::sync::record_outcome(&mut tx, &run.source, None, now).await?;
            crate::roster::events::record_run(&mut tx, now, run.id, failures).await?;
            self.release_in(&mut tx, &run).await?;
            tx.commit().await?;
            return self.run_row(run.id).await;
        }
        self.apply(&run, lease, &progress, true, read.groups.as_ref())
            .await
    }

    /// Applies a run's pending plan items in batches and records the outcome.
    async fn apply(
        &self,
        run: &RunRow,
        lease: &Lease,
        progress: &Option<ProgressFn>,
        claiming: bool,
        groups: Option<&GroupRead>,
    ) -> Result<RunRow> {
        {
            let mut tx = self.store().write().await?;
            store::sync::set_status(&mut tx, run.id, "running", "applying", None, None).await?;
            tx.commit().await?;
        }
        let actor = Actor::Sync {
            source: run.source.clone(),
            run_id: run.id,
        };
        let batch = i64::try_from(self.inner.settings.apply_batch).unwrap_or(500);
        let total = {
            let r = self.run_row(run.id).await?;
            (r.planned_creates + r.planned_updates + r.planned_removals + r.planned_reactivations)
                as u64
        };
        let mut done = 0u64;
        let mut after = 0i64;
        let mut batches = 0u64;
        loop {
            if lease.lost.load(Ordering::SeqCst) {
                let msg = "the run lost its lease (this replica stalled); the next run converges";
                let mut tx = self.store().write().await?;
                let now = self.clock().now();
                store::sync::set_status(
                    &mut tx,
                    run.id,
                    "interrupted",
                    "applying",
                    Some(msg),
                    Some(now),
                )
                .await?;
                tx.commit().await?;
                return self.run_row(run.id).await;
            }
            let mut tx = self.store().write().await?;
            let rows = store::sync::items(&mut tx, run.id, after, batch, true).await?;
            let Some(last) = rows.last().map(|r| r.seq) else {
                tx.rollback().await?;
                break;
            };
            let first = rows[0].seq;
            let items: Vec<(i64, Item)> = rows.into_iter().map(|r| (r.seq, r.item)).collect();
            let applying = self
                .inner
                .roster
                .apply_sync_items(&mut tx, run.org_id, &run.source, &actor, &items, claiming)
                .await;
            let (applied, errors) = match applying {
                Ok(x) => x,
                Err(e) => {
                    tx.rollback().await?;
                    let msg = format!("applying failed: {e}; the next run converges");
                    return self.fail(run, &msg).await;
                }
            };
            store::sync::mark_applied(&mut tx, run.id, first, last).await?;
            store::sync::add_applied(&mut tx, run.id, &applied).await?;
            let mut errors = errors;
            for e in &mut errors {
                e.seq += APPLY_ERROR_SEQ; // after the planning errors, in plan order
            }
            store::sync::insert_errors(&mut tx, run.id, &errors).await?;
            tx.commit().await?;
            done += applied_count(&applied);
            after = last;
            batches += 1;
            // A large first sync grows the member tables many times over: keep PostgreSQL's
            // statistics up with them, or its plans for the lookups above turn into scans.
            if batches.is_multiple_of(10)
                && let Err(e) = self.store().refresh_member_stats().await
            {
                tracing::warn!(error = %e, "refreshing planner statistics failed");
            }
            if let Some(w) = &self.inner.wake {
                w.notify_one();
            }
            if let Some(p) = progress {
                p(Progress::Applied { done, total });
            }
        }
        // Large changes leave PostgreSQL's statistics behind; the lists admins open next (and
        // the next run) need them.
        if let Err(e) = self.store().refresh_member_stats().await {
            tracing::warn!(error = %e, "refreshing planner statistics failed");
        }
        // Before the run counts as done (and only while it is still ours): the source's groups.
        if let Some(groups) = groups
            && !lease.lost.load(Ordering::SeqCst)
        {
            self.sync_groups(run, groups).await?;
        }
        // What the read covered and where it ended (recorded after `run` was taken).
        let read = self.run_row(run.id).await?;
        let now = self.clock().now();
        let mut tx = self.store().write().await?;
        // The org first, as every roster write: the run's events queue webhook deliveries.
        store::orgs::lock(&mut tx, run.org_id).await?;
        // Only a run still ours ends as succeeded (the sweeper may have marked it interrupted);
        // only then does a change-reading source move on to where this run's read ended.
        if store::sync::finish_running(&mut tx, run.id, "succeeded", now).await? && claiming {
            store::sync::advance(&mut tx, &run.source, &read, now).await?;
        }
        let failures = self.failures(&mut tx, run).await?;
        store::sync::record_outcome(&mut tx, &run.source, None, now).await?;
        crate::roster::events::record_run(&mut tx, now, run.id, failures).await?;
        self.release_in(&mut tx, &read).await?;
        tx.commit().await?;
        tracing::info!(source = %run.source, run = %run.id, "sync run succeeded");
        self.run_row(run.id).await
    }

    /// After a read that knew the source's groups completely is applied: each holds exactly the
    /// members the source puts in it, within the guards of `Roster::sync_source_groups`. A
    /// failure leaves the members applied and says so on the run.
    async fn sync_groups(&self, run: &RunRow, groups: &GroupRead) -> Result<()> {
        let actor = Actor::Sync {
            source: run.source.clone(),
            run_id: run.id,
        };
        let sync = crate::roster::GroupSync {
            wanted: &groups.wanted,
            removals: groups.removals,
            keep: &groups.keep,
            max_removals: self.source(&run.source)?.config.max_removals,
        };
        let synced = self
            .inner
            .roster
            .sync_source_groups(run.org_id, &run.source, &actor, &sync)
            .await;
        let notes = match synced {
            Ok(c) => {
                // Each change is in the audit log (`group.created`, `group.members_changed`).
                tracing::info!(source = %run.source, created = c.created, added = c.added,
                    removed = c.removed, "groups synced");
                c.warnings
            }
            Err(e) => {
                tracing::warn!(source = %run.source, error = %e, "syncing groups failed");
                vec![format!(
                    "syncing groups failed: {e}; the next run tries again"
                )]
            }
        };
        if notes.is_empty() {
            return Ok(());
        }
        let mut tx = self.store().write().await?;
        for n in &notes {
            store::sync::add_warning(&mut tx, run.id, n).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks a run failed and backs its source off.
    async fn fail(&self, run: &RunRow, message: &str) -> Result<RunRow> {
        let now = self.clock().now();
        let mut tx = self.store().write().await?;
        // The org first, as every roster write: the run's events queue webhook deliveries.
        store::orgs::lock(&mut tx, run.org_id).await?;
        store::sync::set_status(&mut tx, run.id, "failed", "done", Some(message), Some(now))
            .await?;
        let failures = self.failures(&mut tx, run).await?;
        if run.kind == "sync" {
            let wait = self.backoff(failures + 1);
            store::sync::record_outcome(&mut tx, &run.source, Some((message, now + wait)), now)
                .await?;
        }
        crate::roster::events::record_run(&mut tx, now, run.id, failures).await?;
        self.release_in(&mut tx, run).await?;
        tx.commit().await?;
        self.run_row(run.id).await
    }

    /// The source's failures in a row before this run's outcome (0 for imports).
    async fn failures(&self, tx: &mut store::Tx, run: &RunRow) -> Result<i64> {
        if run.kind != "sync" {
            return Ok(0);
        }
        Ok(store::sync::source(tx, &run.source)
            .await?
            .map_or(0, |s| s.consecutive_failures))
    }

    /// Frees a finished run's lease in the transaction that records how it ended, so whoever
    /// sees the run done can start the next one (the lease's own release afterwards finds
    /// nothing left to do).
    async fn release_in(&self, tx: &mut store::Tx, run: &RunRow) -> Result<()> {
        let name = run.lease_name.as_deref().unwrap_or(&run.source);
        store::sync::release(tx, name, &self.inner.replica).await?;
        Ok(())
    }

    /// How long a source that failed `failures` times in a row waits: exponential, capped,
    /// with jitter so replicas and sources spread out.
    fn backoff(&self, failures: i64) -> chrono::Duration {
        backoff(
            &self.inner.settings,
            failures,
            rand::random_range(0.0..=0.25),
        )
    }

    pub async fn run_row(&self, id: Uuid) -> Result<RunRow> {
        let mut tx = self.store().read().await?;
        let r = store::sync::run(&mut tx, id).await?;
        tx.rollback().await?;
        r.ok_or(SyncError::RunNotFound(id))
    }

    /// Approves a held run (or confirms an import preview) and applies its stored plan.
    /// `background`: return once approved and apply in a task.
    pub async fn approve(&self, id: Uuid, by: &str, background: bool) -> Result<RunRow> {
        let run = self.run_row(id).await?;
        let import = run.kind == "import";
        // An import confirmation cut short by a crash may be confirmed again: it resumes with
        // the items not yet applied.
        let approvable = run.status == "held"
            || run.status == "preview"
            || (import && run.status == "interrupted");
        if !approvable {
            return Err(SyncError::Conflict(format!(
                "run {id} is {}; only a held run (or an import preview) can be approved",
                run.status
            )));
        }
        // Imports of one org apply one at a time under a lease of their own, so a crash is
        // noticed (and swept to `interrupted`) like a sync run's.
        let lease_name = if import {
            let name = import_lease(run.org_id);
            let mut tx = self.store().write().await?;
            store::sync::ensure_source(&mut tx, &name, run.org_id, self.clock().now()).await?;
            tx.commit().await?;
            name
        } else {
            run.source.clone()
        };
        let Some(lease) = self.acquire(&lease_name).await? else {
            return Err(SyncError::Busy(lease_name));
        };
        let now = self.clock().now();
        let approved = async {
            let mut tx = self.store().write().await?;
            let ok = store::sync::approve(&mut tx, id, by, now, &self.inner.replica, &lease_name)
                .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(ok)
        };
        match approved.await {
            Ok(true) => {
                self.apply_detached(run, lease_name, lease, background)
                    .await
            }
            Ok(false) => {
                self.release(&lease_name, lease).await;
                Err(SyncError::Conflict(format!(
                    "run {id} is no longer waiting for approval (a newer run superseded it, or it was approved or cancelled)"
                )))
            }
            Err(e) => {
                self.release(&lease_name, lease).await;
                Err(e.into())
            }
        }
    }

    async fn apply_detached(
        &self,
        run: RunRow,
        lease_name: String,
        lease: Lease,
        background: bool,
    ) -> Result<RunRow> {
        let run_id = run.id;
        let claiming = run.kind != "import";
        let engine = self.clone();
        let task = async move {
            let done = engine.apply(&run, &lease, &None, claiming, None).await;
            engine.release(&lease_name, lease).await;
            done
        };
        if background {
            tokio::spawn(async move {
                if let Err(e) = task.await {
                    tracing::error!(error = %e, "applying an approved run failed");
                }
            });
            return self.run_row(run_id).await;
        }
        task.await
    }

    /// The earliest time a failing source may run again by schedule.
    pub async fn retry_after(&self, name: &str) -> Result<Option<DateTime<Utc>>> {
        let mut tx = self.store().read().await?;
        let s = store::sync::source(&mut tx, name).await?;
        tx.rollback().await?;
        Ok(s.and_then(|s| s.retry_after))
    }

    /// Deletes plans and error rows of runs older than `keep_run_details_days`.
    pub async fn prune(&self) -> Result<u64> {
        let days = i64::from(self.inner.settings.keep_run_details_days);
        let before = self.clock().now() - chrono::Duration::days(days);
        let mut tx = self.store().write().await?;
        let n = store::sync::prune_details(&mut tx, before).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Marks interrupted the runs whose replica died (their source lease has expired).
    pub async fn sweep_orphans(&self) -> Result<u64> {
        let now = self.clock().now();
        let mut tx = self.store().write().await?;
        let n = store::sync::interrupt_orphans(&mut tx, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Opens a source's snapshot without planning (to inspect a mapping).
    pub async fn open_snapshot(&self, name: &str) -> Result<Snapshot> {
        let def = self.source(name)?;
        let mut mapping = def.config.mapping.clone();
        mapping.keep_raw = true;
        def.config
            .kind
            .open(&mapping, &self.inner.ctx, None)
            .await
            .map_err(|e| SyncError::Invalid(format!("the fetch failed: {}", e.message)))
    }

    pub(crate) fn replica(&self) -> &str {
        &self.inner.replica
    }
}

/// The wait after `failures` failed runs in a row: `failure_backoff_secs` doubling with each,
/// capped at `max_failure_backoff_secs`, plus `jitter` (a fraction, 0 to 0.25) of it.
fn backoff(s: &SyncConfig, failures: i64, jitter: f64) -> chrono::Duration {
    let exp = u32::try_from(failures.clamp(1, 30) - 1).unwrap_or(0);
    let secs = s
        .failure_backoff_secs
        .saturating_mul(2u64.saturating_pow(exp))
        .min(s.max_failure_backoff_secs);
    let extra = (secs as f64 * jitter.clamp(0.0, 0.25)) as u64;
    chrono_secs(secs + extra)
}

fn applied_count(a: &Applied) -> u64 {
    (a.created + a.updated + a.removed + a.reactivated + a.errors) as u64
}

/// Counts an ended run (by its status; `error` when it could not even be recorded), its
/// duration and its rows.
fn record_metrics(source: &str, run: Option<&RunRow>, started: std::time::Instant) {
    use crate::telemetry::{SYNC_ROWS, SYNC_RUN_DURATION, SYNC_RUNS};
    let status = run.map_or("error", |r| r.status.as_str()).to_owned();
    metrics::counter!(SYNC_RUNS, "source" => source.to_owned(), "status" => status).increment(1);
    metrics::histogram!(SYNC_RUN_DURATION, "source" => source.to_owned())
        .record(started.elapsed().as_secs_f64());
    if let Some(r) = run {
        for (outcome, n) in [
            ("fetched", r.fetched),
            ("created", r.created),
            ("updated", r.updated),
            ("removed", r.removed),
            ("reactivated", r.reactivated),
            ("unchanged", r.unchanged),
            ("errors", r.errors),
        ] {
            metrics::counter!(SYNC_ROWS, "source" => source.to_owned(), "outcome" => outcome)
                .increment(u64::try_from(n).unwrap_or(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_sources_back_off_exponentially_with_a_cap_and_jitter() {
        let s = SyncConfig::default();
        let secs = |f, j| backoff(&s, f, j).num_seconds();
        assert_eq!([secs(1, 0.0), secs(2, 0.0), secs(3, 0.0)], [60, 120, 240]);
        assert_eq!(secs(7, 0.0), 3600, "capped");
        assert_eq!(secs(40, 0.0), 3600);
        assert_eq!(secs(1, 0.25), 75);
        assert_eq!(secs(1, 9.0), 75, "jitter is at most a quarter");
    }

    #[test]
    fn held_when_removals_exceed_the_limit_or_the_snapshot_is_empty() {
        let held = |max, before, fetched, removals| {
            Engine::held_reason(max, true, before, fetched, removals).is_some()
        };
        assert!(!held(MaxRemovals::Count(2), 10, 8, 2));
        assert!(held(MaxRemovals::Count(2), 10, 7, 3));
        assert!(!held(MaxRemovals::Percent(10), 100, 90, 10));
        assert!(held(MaxRemovals::Percent(10), 100, 89, 11));
        assert!(held(MaxRemovals::Percent(100), 5, 0, 5), "empty snapshot");
        assert!(
            !held(MaxRemovals::Percent(10), 0, 0, 0),
            "a new source may be empty"
        );
        assert!(held(MaxRemovals::Count(0), 3, 2, 1));
        assert!(
            !held(MaxRemovals::Percent(10), 5, 4, 1),
            "10% of 5 rounds up to 1"
        );
        assert!(
            Engine::held_reason(MaxRemovals::Percent(10), false, 5, 0, 0).is_none(),
            "an empty snapshot from a source that cannot remove holds nothing"
        );
    }

    #[test]
    fn only_gone_processes_of_this_host_have_dead_leases() {
        let mine = replica_id();
        assert!(!dead_on_this_host(&mine), "a live engine of this process");
        let host = host_name();
        let pid = std::process::id();
        // This pid but no engine of ours: an earlier process that had the same pid.
        assert!(dead_on_this_host(&format!(
            "{host}:{pid}:{}",
            Uuid::now_v7()
        )));
        // A running process of this host (pid 1 always runs).
        assert!(!dead_on_this_host(&format!("{host}:1:{}", Uuid::now_v7())));
        // Another host, or an owner id of the old form: never.
        assert!(!dead_on_this_host(&format!("elsewhere-{host}:{pid}:x")));
        assert!(!dead_on_this_host(&Uuid::now_v7().to_string()));
        if cfg!(target_os = "linux") {
            // A pid no process has (above the kernel's maximum).
            assert!(dead_on_this_host(&format!("{host}:4294967295:x")));
        }
    }
}
