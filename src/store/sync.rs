//! Sync rows: per-source state and leases, runs with their error rows and stored plans, link
//! claims, and the member index a plan is computed against.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;
use uuid::Uuid;

use super::{Result, StoreError, Tx, on_tx};
use crate::domain::{Access, Role};
use crate::reconcile::plan::{Current, Item};

/// A configured source's state in the store.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SourceRow {
    pub name: String,
    pub org_id: Uuid,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub consecutive_failures: i64,
    pub retry_after: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Where the last applied run of a change-reading source left off (Graph's deltaLink).
    pub checkpoint: Option<String>,
    /// When the last full read of the source was applied.
    pub full_at: Option<DateTime<Utc>>,
}

/// Creates the row for a configured source (or moves it to its configured org).
pub async fn ensure_source(
    tx: &mut Tx,
    name: &str,
    org_id: Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sync_sources (name, org_id, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET org_id = excluded.org_id")
        .bind(name).bind(org_id).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn source(tx: &mut Tx, name: &str) -> Result<Option<SourceRow>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, SourceRow>(
        "SELECT name, org_id, lease_owner, lease_expires_at, consecutive_failures, retry_after,
                last_error, updated_at, checkpoint, full_at
         FROM sync_sources WHERE name = $1")
        .bind(name).fetch_optional(&mut *c).await)?)
}

/// Takes the source's lease for `owner` until `until` if it is free or expired. A live lease
/// is refused even to its own replica: it means a run of the source is in progress.
pub async fn acquire(
    tx: &mut Tx,
    name: &str,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE sync_sources SET lease_owner = $2, lease_expires_at = $4
         WHERE name = $1 AND (lease_owner IS NULL OR lease_expires_at < $3)")
        .bind(name).bind(owner).bind(now).bind(until)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Extends a lease we hold; `false` when it is no longer ours.
pub async fn renew(tx: &mut Tx, name: &str, owner: &str, until: DateTime<Utc>) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE sync_sources SET lease_expires_at = $3 WHERE name = $1 AND lease_owner = $2")
        .bind(name).bind(owner).bind(until)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn release(tx: &mut Tx, name: &str, owner: &str) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE sync_sources SET lease_owner = NULL, lease_expires_at = NULL
         WHERE name = $1 AND lease_owner = $2")
        .bind(name).bind(owner)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Every held lease (sources' and import leases): `(name, owner)`.
pub async fn leases(tx: &mut Tx) -> Result<Vec<(String, String)>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, (String, String)>(
        "SELECT name, lease_owner FROM sync_sources WHERE lease_owner IS NOT NULL ORDER BY name")
        .fetch_all(&mut *c).await)?)
}

/// Records how the source's last run went: failures count up (with the earliest time the
/// scheduler may try again), a success resets them.
pub async fn record_outcome(
    tx: &mut Tx,
    name: &str,
    failed: Option<(&str, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Result<()> {
    match failed {
        Some((error, retry_after)) => on_tx!(tx, c => sqlx::query(
            "UPDATE sync_sources SET consecutive_failures = consecutive_failures + 1,
                 retry_after = $2, last_error = $3, updated_at = $4 WHERE name = $1")
            .bind(name).bind(retry_after).bind(error).bind(now)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?,
        None => on_tx!(tx, c => sqlx::query(
            "UPDATE sync_sources SET consecutive_failures = 0, retry_after = NULL,
                 last_error = NULL, updated_at = $2 WHERE name = $1")
            .bind(name).bind(now)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?,
    };
    Ok(())
}

/// One run: a scheduled or manual sync of a source, or an import job.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub source: String,
    pub org_id: Uuid,
    pub kind: String,
    pub trigger: String,
    pub fire_time: Option<DateTime<Utc>>,
    pub status: String,
    pub phase: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub lease_owner: Option<String>,
    /// The lease the run holds while running (its source's, or its org's import lease).
    #[serde(skip)]
    pub lease_name: Option<String>,
    pub fetched: i64,
    pub created: i64,
    pub updated: i64,
    pub removed: i64,
    pub reactivated: i64,
    pub unchanged: i64,
    pub errors: i64,
    pub planned_creates: i64,
    pub planned_updates: i64,
    pub planned_removals: i64,
    pub planned_reactivations: i64,
    pub message: Option<String>,
    #[serde(skip)]
    pub warnings: String,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub filename: Option<String>,
    pub created_by: String,
    /// What the read covered: `full` (everyone) or `changes` (a delta query).
    pub coverage: Option<String>,
    /// Where the read ended, for the next change-reading run once this one is applied.
    #[serde(skip)]
    pub checkpoint: Option<String>,
}

const RUN_COLUMNS: &str = "id, source, org_id, kind, trigger, fire_time, status, phase, started_at,
    finished_at, lease_owner, lease_name, fetched, created, updated, removed, reactivated, unchanged, errors,
    planned_creates, planned_updates, planned_removals, planned_reactivations, message, warnings,
    approved_by, approved_at, filename, created_by, coverage, checkpoint";

impl RunRow {
    pub fn warnings(&self) -> Vec<String> {
        serde_json::from_str(&self.warnings).unwrap_or_default()
    }
}

/// Records what a run's read covered and where it ended.
pub async fn set_read(
    tx: &mut Tx,
    id: Uuid,
    coverage: &str,
    checkpoint: Option<&str>,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query("UPDATE sync_runs SET coverage = $2, checkpoint = $3 WHERE id = $1")
        .bind(id).bind(coverage).bind(checkpoint)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// After a run's plan is applied: the source reads changes from the run's checkpoint next time,
/// and a full read counts as the last full one.
pub async fn advance(tx: &mut Tx, source: &str, run: &RunRow, now: DateTime<Utc>) -> Result<()> {
    let full = run.coverage.as_deref() == Some("full");
    on_tx!(tx, c => sqlx::query(
        "UPDATE sync_sources SET checkpoint = $2,
             full_at = CASE WHEN $3 THEN $4 ELSE full_at END
         WHERE name = $1")
        .bind(source).bind(&run.checkpoint).bind(full).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Inserts a run; `false` when its scheduled tick already has one (another replica ran it).
pub async fn insert_run(tx: &mut Tx, r: &RunRow) -> Result<bool> {
    let res = on_tx!(tx, c => sqlx::query(
        "INSERT INTO sync_runs (id, source, org_id, kind, trigger, fire_time, status, phase,
             started_at, lease_owner, filename, created_by, warnings, lease_name)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '[]', $13)
         ON CONFLICT (source, fire_time) DO NOTHING")
        .bind(r.id).bind(&r.source).bind(r.org_id).bind(&r.kind).bind(&r.trigger)
        .bind(r.fire_time).bind(&r.status).bind(&r.phase).bind(r.started_at)
        .bind(&r.lease_owner).bind(&r.filename).bind(&r.created_by).bind(&r.lease_name)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(res == 1)
}

pub async fn run(tx: &mut Tx, id: Uuid) -> Result<Option<RunRow>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1"));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, RunRow>(sql).bind(id).fetch_optional(&mut *c).await)?)
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub org_id: Option<Uuid>,
    pub source: Option<String>,
    pub kind: Option<&'static str>,
    /// Runs older than this one (a cursor).
    pub before: Option<Uuid>,
    pub limit: i64,
}

pub async fn runs(tx: &mut Tx, q: &RunQuery) -> Result<Vec<RunRow>> {
    // Only the conditions asked for are in the statement (so PostgreSQL's cached plans use the
    // `(org_id, kind, id)` and `(source, id)` indexes); every value is bound, in this order.
    let mut sql = format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE TRUE");
    let mut n = 0;
    let mut cond = |col: &str, op: &str, on: bool| {
        if on {
            n += 1;
            sql.push_str(&format!(" AND {col} {op} ${n}"));
        }
    };
    cond("org_id", "=", q.org_id.is_some());
    cond("source", "=", q.source.is_some());
    cond("kind", "=", q.kind.is_some());
    cond("id", "<", q.before.is_some());
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
    let sql = sqlx::AssertSqlSafe(sql);
    Ok(on_tx!(tx, c => {
        let mut query = sqlx::query_as::<_, RunRow>(sql);
        if let Some(o) = q.org_id {
            query = query.bind(o);
        }
        if let Some(s) = &q.source {
            query = query.bind(s.clone());
        }
        if let Some(k) = q.kind {
            query = query.bind(k);
        }
        if let Some(b) = q.before {
            query = query.bind(b);
        }
        query.bind(q.limit).fetch_all(&mut *c).await
    })?)
}

/// Whether the scheduled tick `(source, fire_time)` already has its run.
pub async fn tick_exists(tx: &mut Tx, source: &str, fire: DateTime<Utc>) -> Result<bool> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM sync_runs WHERE source = $1 AND fire_time = $2)")
        .bind(source).bind(fire).fetch_one(&mut *c).await)?)
}

/// Ends a run that is still running (and only then: a run the sweeper marked interrupted stays
/// so).
pub async fn finish_running(
    tx: &mut Tx,
    id: Uuid,
    status: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE sync_runs SET status = $2, phase = 'done', finished_at = $3
         WHERE id = $1 AND status = 'running'")
        .bind(id).bind(status).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Cancels an import preview; `false` when it is no longer a preview.
pub async fn cancel_preview(tx: &mut Tx, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE sync_runs SET status = 'cancelled', phase = 'done', finished_at = $2
         WHERE id = $1 AND status = 'preview'")
        .bind(id).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The newest run of a source, optionally only finished ones.
pub async fn last_run(tx: &mut Tx, source: &str) -> Result<Option<RunRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE source = $1 AND kind = 'sync'
         ORDER BY id DESC LIMIT 1"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, RunRow>(sql).bind(source).fetch_optional(&mut *c).await)?,
    )
}

/// Sets a run's status, phase, message and finish time.
pub async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    status: &str,
    phase: &str,
    message: Option<&str>,
    finished_at: Option<DateTime<Utc>>,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE sync_runs SET status = $2, phase = $3, message = COALESCE($4, message),
             finished_at = COALESCE($5, finished_at)
         WHERE id = $1")
        .bind(id).bind(status).bind(phase).bind(message).bind(finished_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// What the plan of a run holds, and what planning counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanCounts {
    pub fetched: i64,
    pub unchanged: i64,
    pub errors: i64,
    pub creates: i64,
    pub updates: i64,
    pub removals: i64,
    pub reactivations: i64,
}

pub async fn set_planned(tx: &mut Tx, id: Uuid, c: &PlanCounts, warnings: &[String]) -> Result<()> {
    let warnings =
        serde_json::to_string(warnings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    on_tx!(tx, conn => sqlx::query(
        "UPDATE sync_runs SET fetched = $2, unchanged = $3, errors = $4, planned_creates = $5,
             planned_updates = $6, planned_removals = $7, planned_reactivations = $8,
             warnings = $9
         WHERE id = $1")
        .bind(id).bind(c.fetched).bind(c.unchanged).bind(c.errors).bind(c.creates)
        .bind(c.updates).bind(c.removals).bind(c.reactivations).bind(warnings)
        .execute(&mut *conn).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Appends a warning to a run.
pub async fn add_warning(tx: &mut Tx, id: Uuid, warning: &str) -> Result<()> {
    let Some(run) = run(tx, id).await? else {
        return Ok(());
    };
    let mut warnings = run.warnings();
    warnings.push(warning.to_owned());
    let warnings =
        serde_json::to_string(&warnings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    on_tx!(tx, c => sqlx::query("UPDATE sync_runs SET warnings = $2 WHERE id = $1")
        .bind(id).bind(warnings)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The members a source claims (not removed), by the source's external id.
pub async fn claimed_members(
    tx: &mut Tx,
    org_id: Uuid,
    source: &str,
) -> Result<Vec<(String, Uuid)>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, (String, Uuid)>(
        "SELECT l.external_id, l.member_id FROM member_links l
         JOIN members m ON m.id = l.member_id AND m.org_id = l.org_id
         WHERE l.org_id = $1 AND l.source = $2 AND l.claiming AND m.access NOT IN ('removed', 'cancelled')")
        .bind(org_id).bind(source).fetch_all(&mut *c).await)?)
}

/// Adds what one applied batch did to the run's counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Applied {
    pub created: i64,
    pub updated: i64,
    pub removed: i64,
    pub reactivated: i64,
    pub unchanged: i64,
    pub errors: i64,
}

pub async fn add_applied(tx: &mut Tx, id: Uuid, a: &Applied) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE sync_runs SET created = created + $2, updated = updated + $3,
             removed = removed + $4, reactivated = reactivated + $5,
             unchanged = unchanged + $6, errors = errors + $7
         WHERE id = $1")
        .bind(id).bind(a.created).bind(a.updated).bind(a.removed).bind(a.reactivated)
        .bind(a.unchanged).bind(a.errors)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Approves a held run (or confirms an import preview, or resumes an interrupted import);
/// `false` when it is no longer waiting.
pub async fn approve(
    tx: &mut Tx,
    id: Uuid,
    by: &str,
    now: DateTime<Utc>,
    owner: &str,
    lease_name: &str,
) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE sync_runs SET status = 'running', phase = 'applying', approved_by = $2,
             approved_at = $3, lease_owner = $4, lease_name = $5, finished_at = NULL
         WHERE id = $1 AND (status IN ('held', 'preview')
             OR (kind = 'import' AND status = 'interrupted'))")
        .bind(id).bind(by).bind(now).bind(owner).bind(lease_name)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Held runs of a source become superseded (a newer run replaces their plan).
pub async fn supersede_held(tx: &mut Tx, source: &str, now: DateTime<Utc>) -> Result<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE sync_runs SET status = 'superseded', finished_at = COALESCE(finished_at, $2),
             message = 'a newer run of this source replaced this plan'
         WHERE source = $1 AND status = 'held'")
        .bind(source).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?)
}

/// Runs of a source still marked running: their replica died (we hold the lease now).
pub async fn interrupt_running(tx: &mut Tx, source: &str, now: DateTime<Utc>) -> Result<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE sync_runs SET status = 'interrupted', finished_at = $2,
             message = 'the replica running this stopped before it finished; the next run converges'
         WHERE source = $1 AND status = 'running'")
        .bind(source).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?)
}

/// Marks interrupted every running run (sync or import) whose lease has expired (or is gone).
pub async fn interrupt_orphans(tx: &mut Tx, now: DateTime<Utc>) -> Result<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE sync_runs SET status = 'interrupted', finished_at = $1,
             message = CASE kind WHEN 'import'
                 THEN 'the replica applying this stopped before it finished; confirm again to apply the rest'
                 ELSE 'the replica running this stopped before it finished; the next run converges' END
         WHERE status = 'running' AND NOT EXISTS (
             SELECT 1 FROM sync_sources s WHERE s.name = sync_runs.lease_name
               AND s.lease_owner = sync_runs.lease_owner AND s.lease_expires_at >= $1)")
        .bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?)
}

/// Deletes the plan items and error rows of runs that ended before `before`; returns how many
/// rows went. The run rows stay.
pub async fn prune_details(tx: &mut Tx, before: DateTime<Utc>) -> Result<u64> {
    let mut n = 0;
    for sql in [
        "DELETE FROM sync_plan_items WHERE run_id IN
             (SELECT id FROM sync_runs WHERE finished_at < $1
                AND status NOT IN ('held', 'preview', 'running')
                AND NOT (kind = 'import' AND status = 'interrupted'))",
        "DELETE FROM sync_run_errors WHERE run_id IN
             (SELECT id FROM sync_runs WHERE finished_at < $1
                AND status NOT IN ('held', 'preview', 'running')
                AND NOT (kind = 'import' AND status = 'interrupted'))",
    ] {
        n += on_tx!(tx, c => sqlx::query(sql).bind(before)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(n)
}

/// A row error of a run.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunError {
    pub seq: i64,
    pub line: i64,
    pub external_id: Option<String>,
    pub field: Option<String>,
    pub value: Option<String>,
    pub message: String,
}

/// Longest offending value (and external id, field name) kept in an error row, in characters.
pub const ERROR_VALUE_CHARS: usize = 200;
/// Longest error message kept, in characters (messages may quote the value).
pub const ERROR_MESSAGE_CHARS: usize = 1000;

/// `s` cut to `max` characters, ending with an ellipsis when cut, with any NUL shown as U+FFFD
/// (PostgreSQL text cannot hold NUL, and a report should not carry one either).
pub fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let cut = match s.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(s),
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &s[..end])),
    };
    if cut.contains('\0') {
        std::borrow::Cow::Owned(cut.replace('\0', "\u{FFFD}"))
    } else {
        cut
    }
}

/// Stores error rows; long values are cut (a 32 MB cell must not come back in every job
/// answer and `errors.csv`, nor bloat the database).
pub async fn insert_errors(tx: &mut Tx, run_id: Uuid, errors: &[RunError]) -> Result<()> {
    for e in errors {
        let external_id = e.external_id.as_deref().map(|v| clip(v, ERROR_VALUE_CHARS));
        let field = e.field.as_deref().map(|v| clip(v, ERROR_VALUE_CHARS));
        let value = e.value.as_deref().map(|v| clip(v, ERROR_VALUE_CHARS));
        let message = clip(&e.message, ERROR_MESSAGE_CHARS);
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO sync_run_errors (run_id, seq, line, external_id, field, value, message)
             VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(run_id).bind(e.seq).bind(e.line).bind(external_id.as_deref())
            .bind(field.as_deref()).bind(value.as_deref()).bind(message.as_ref())
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

pub async fn errors(tx: &mut Tx, run_id: Uuid, after: i64, limit: i64) -> Result<Vec<RunError>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, RunError>(
        "SELECT seq, line, external_id, field, value, message FROM sync_run_errors
         WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
        .bind(run_id).bind(after).bind(limit).fetch_all(&mut *c).await)?)
}

pub async fn insert_items(tx: &mut Tx, run_id: Uuid, first_seq: i64, items: &[Item]) -> Result<()> {
    // Many rows per statement: a million-record plan is a thousand statements, not a million.
    let mut details = Vec::with_capacity(items.len());
    for item in items {
        details.push(serde_json::to_string(item).map_err(|e| StoreError::Corrupt(e.to_string()))?);
    }
    let numbered: Vec<(i64, &Item, String)> = items
        .iter()
        .zip(details)
        .enumerate()
        .map(|(i, (item, d))| (first_seq + i as i64, item, d))
        .collect();
    let size = |(_, item, d): &(i64, &Item, String)| d.len() + 2 * item.email().len() + 120;
    for chunk in super::size_chunks(tx, &numbered, 40, size) {
        let mut sql = String::from(
            "INSERT INTO sync_plan_items (run_id, seq, action, member_id, external_id, email, detail) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 7;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            ));
        }
        let sql = sqlx::AssertSqlSafe(sql);
        on_tx!(tx, c => {
            let mut q = sqlx::query(sql);
            for (seq, item, detail) in chunk {
                q = q
                    .bind(run_id)
                    .bind(*seq)
                    .bind(item.action())
                    .bind(item.member_id())
                    .bind(item.external_id().map(str::to_owned))
                    .bind(item.email().to_owned())
                    .bind(detail.clone());
            }
            q.execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// A stored plan item.
#[derive(Debug, Clone)]
pub struct PlanItemRow {
    pub seq: i64,
    pub applied: bool,
    pub item: Item,
}

#[derive(sqlx::FromRow)]
struct RawItem {
    seq: i64,
    applied: bool,
    detail: String,
}

/// Plan items after `after` in order; `pending_only` skips applied ones.
pub async fn items(
    tx: &mut Tx,
    run_id: Uuid,
    after: i64,
    limit: i64,
    pending_only: bool,
) -> Result<Vec<PlanItemRow>> {
    let rows = on_tx!(tx, c => sqlx::query_as::<_, RawItem>(
        "SELECT seq, applied, detail FROM sync_plan_items
         WHERE run_id = $1 AND seq > $2 AND ($3 = FALSE OR applied = FALSE)
         ORDER BY seq LIMIT $4")
        .bind(run_id).bind(after).bind(pending_only).bind(limit).fetch_all(&mut *c).await)?;
    rows.into_iter()
        .map(|r| {
            Ok(PlanItemRow {
                seq: r.seq,
                applied: r.applied,
                item: serde_json::from_str(&r.detail)
                    .map_err(|e| StoreError::Corrupt(format!("plan item {}: {e}", r.seq)))?,
            })
        })
        .collect()
}

pub async fn mark_applied(tx: &mut Tx, run_id: Uuid, first: i64, last: i64) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE sync_plan_items SET applied = TRUE WHERE run_id = $1 AND seq >= $2 AND seq <= $3")
        .bind(run_id).bind(first).bind(last)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct CurrentRow {
    id: Uuid,
    member_email: String,
    login_email: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    display_name: Option<String>,
    access: String,
    role: String,
    link: Option<String>,
    claiming: Option<bool>,
    claimed_elsewhere: bool,
}

impl CurrentRow {
    fn into_current(self) -> Result<Current> {
        let access: Access = self
            .access
            .parse()
            .map_err(|e: crate::domain::UnknownVariant| StoreError::Corrupt(e.to_string()))?;
        let role: Role = self
            .role
            .parse()
            .map_err(|e: crate::domain::UnknownVariant| StoreError::Corrupt(e.to_string()))?;
        Ok(Current {
            member_id: self.id,
            member_email: self.member_email,
            login_email: self.login_email,
            given_name: self.given_name,
            family_name: self.family_name,
            display_name: self.display_name,
            access,
            role,
            claiming: self.claiming.unwrap_or(false),
            link: self.link,
            claimed_elsewhere: self.claimed_elsewhere,
            outranked: false,
        })
    }
}

/// What the planner compares a snapshot with: every member of the org, with this source's
/// link and whether another source (a claiming link, or SCIM) also claims them. `outranking`
/// names the sources of higher priority.
pub async fn current(
    tx: &mut Tx,
    org_id: Uuid,
    source: &str,
    outranking: &[String],
) -> Result<Vec<Current>> {
    let mut out = match tx {
        Tx::Postgres(_) => current_rows(tx, org_id, source).await?,
        Tx::Sqlite(_) => current_rows_sqlite(tx, org_id, source).await?,
    };
    out.shrink_to_fit();
    if !outranking.is_empty() {
        let mut higher = std::collections::HashSet::new();
        for s in outranking {
            let ids: Vec<Uuid> = on_tx!(tx, c => sqlx::query_scalar(
                "SELECT member_id FROM member_links WHERE org_id = $1 AND source = $2 AND claiming")
                .bind(org_id).bind(s).fetch_all(&mut *c).await)?;
            higher.extend(ids);
        }
        for c in &mut out {
            c.outranked = higher.contains(&c.member_id);
        }
    }
    Ok(out)
}

/// How many members the org has: the member index is allocated once at its final size (growing
/// a million-entry vector by doubling holds the old and the new buffer at once).
async fn member_count(tx: &mut Tx, org_id: Uuid) -> Result<usize> {
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE org_id = $1")
        .bind(org_id).fetch_one(&mut *c).await)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The member index, one row per member (PostgreSQL streams rows cheaply).
async fn current_rows(tx: &mut Tx, org_id: Uuid, source: &str) -> Result<Vec<Current>> {
    let sql = "SELECT m.id, m.member_email, m.login_email, m.given_name, m.family_name,
            m.display_name, m.access, m.role, l.external_id AS link, l.claiming,
            (EXISTS (SELECT 1 FROM member_links o WHERE o.member_id = m.id
                AND o.source <> $2 AND o.source <> 'scim' AND o.claiming)
             OR (m.scim_data IS NOT NULL AND NOT m.scim_deleted)) AS claimed_elsewhere
         FROM members m
         LEFT JOIN member_links l ON l.member_id = m.id AND l.source = $2 AND l.org_id = $1
         WHERE m.org_id = $1";
    let mut out = Vec::with_capacity(member_count(tx, org_id).await?);
    let streamed: std::result::Result<(), StoreError> = on_tx!(tx, c => {
        let mut s = sqlx::query_as::<_, CurrentRow>(sql).bind(org_id).bind(source).fetch(&mut *c);
        loop {
            match s.try_next().await {
                Ok(Some(r)) => match r.into_current() {
                    Ok(cur) => out.push(cur),
                    Err(e) => break Err(e),
                },
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.into()),
            }
        }
    });
    streamed?;
    Ok(out)
}

/// The member index on SQLite, 5 000 members per statement as one JSON array: sqlx hands every
/// SQLite row across threads, which at 100k rows costs more than the query itself.
async fn current_rows_sqlite(tx: &mut Tx, org_id: Uuid, source: &str) -> Result<Vec<Current>> {
    type Packed = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        String,
        Option<String>,
        Option<i64>,
        i64,
    );
    let sql = "SELECT json_group_array(json_array(hex(id), member_email, login_email, given_name,
                family_name, display_name, access, role, link, claiming, claimed_elsewhere))
         FROM (SELECT m.id, m.member_email, m.login_email, m.given_name, m.family_name,
                m.display_name, m.access, m.role, l.external_id AS link, l.claiming,
                (EXISTS (SELECT 1 FROM member_links o WHERE o.member_id = m.id
                    AND o.source <> $2 AND o.source <> 'scim' AND o.claiming)
                 OR (m.scim_data IS NOT NULL AND NOT m.scim_deleted)) AS claimed_elsewhere
             FROM members m
             LEFT JOIN member_links l ON l.member_id = m.id AND l.source = $2 AND l.org_id = $1
             WHERE m.org_id = $1 AND m.id > $3
             ORDER BY m.id LIMIT 5000)";
    let mut out = Vec::with_capacity(member_count(tx, org_id).await?);
    let mut after = Uuid::nil();
    loop {
        let text: String = on_tx!(tx, c => sqlx::query_scalar(sql)
            .bind(org_id).bind(source).bind(after).fetch_one(&mut *c).await)?;
        let page: Vec<Packed> = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("member index: {e}")))?;
        if page.is_empty() {
            break;
        }
        let n = page.len();
        for p in page {
            let row = CurrentRow {
                id: Uuid::try_parse(&p.0)
                    .map_err(|e| StoreError::Corrupt(format!("member id: {e}")))?,
                member_email: p.1,
                login_email: p.2,
                given_name: p.3,
                family_name: p.4,
                display_name: p.5,
                access: p.6,
                role: p.7,
                link: p.8,
                claiming: p.9.map(|c| c != 0),
                claimed_elsewhere: p.10 != 0,
            };
            // The next page starts after the largest id seen (SQLite does not promise that
            // `json_group_array` keeps the subquery's order); `Uuid` orders like the BLOB.
            after = after.max(row.id);
            out.push(row.into_current()?);
        }
        if n < 5000 {
            break;
        }
    }
    Ok(out)
}

/// Makes `external_id` the member's link for `source`, claiming or not.
pub async fn link(
    tx: &mut Tx,
    org_id: Uuid,
    source: &str,
    external_id: &str,
    member_id: Uuid,
    claiming: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "DELETE FROM member_links WHERE org_id = $1 AND source = $2 AND member_id = $3
             AND external_id <> $4")
        .bind(org_id).bind(source).bind(member_id).bind(external_id)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO member_links (org_id, source, external_id, member_id, created_at, claiming)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (org_id, source, external_id)
         DO UPDATE SET member_id = excluded.member_id, claiming = excluded.claiming")
        .bind(org_id).bind(source).bind(external_id).bind(member_id).bind(now).bind(claiming)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Whether a source other than `source` (or SCIM) claims the member now.
pub async fn claimed_elsewhere(tx: &mut Tx, member_id: Uuid, source: &str) -> Result<bool> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM member_links WHERE member_id = $1 AND source <> $2
                 AND source <> 'scim' AND claiming)
             OR EXISTS (SELECT 1 FROM members WHERE id = $1 AND scim_data IS NOT NULL AND NOT scim_deleted)")
        .bind(member_id).bind(source).fetch_one(&mut *c).await)?)
}

/// Links new members (none had a link from this source before), many per statement.
pub async fn link_new(
    tx: &mut Tx,
    org_id: Uuid,
    source: &str,
    links: &[(String, Uuid)],
    claiming: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    for chunk in super::size_chunks(tx, links, 50, |(x, _)| x.len() + source.len() + 120) {
        on_tx!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO member_links (org_id, source, external_id, member_id, created_at, claiming) ",
            );
            q.push_values(chunk, |mut b, (x, m)| {
                b.push_bind(org_id)
                    .push_bind(source.to_owned())
                    .push_bind(x.clone())
                    .push_bind(*m)
                    .push_bind(now)
                    .push_bind(claiming);
            });
            q.push(
                " ON CONFLICT (org_id, source, external_id)
                  DO UPDATE SET member_id = excluded.member_id, claiming = excluded.claiming",
            );
            q.build().execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// Runs held for approval, per source (for the metrics).
pub async fn held_per_source(tx: &mut Tx) -> Result<Vec<(String, i64)>> {
    Ok(on_tx!(tx, c => sqlx::query_as(
        "SELECT source, COUNT(*) FROM sync_runs WHERE status = 'held' GROUP BY source")
        .fetch_all(&mut *c).await)?)
}

/// Sources whose last run failed, with their consecutive failures (for the metrics).
pub async fn failing_sources(tx: &mut Tx) -> Result<Vec<(String, i64)>> {
    Ok(on_tx!(tx, c => sqlx::query_as(
        "SELECT name, consecutive_failures FROM sync_sources WHERE consecutive_failures > 0")
        .fetch_all(&mut *c).await)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_on_char_boundaries_with_an_ellipsis() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("éééé", 3), "ééé…");
        assert_eq!(clip("😀😀😀", 2), "😀😀…");
        assert_eq!(clip("", 0), "");
        let long = "x".repeat(1_000_000);
        assert_eq!(
            clip(&long, ERROR_VALUE_CHARS).chars().count(),
            ERROR_VALUE_CHARS + 1
        );
    }
}
