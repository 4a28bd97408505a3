//! Background jobs (kind, org, status, progress, result) and the files they produce, kept in
//! chunks so any replica can serve a download. A running job holds a lease its runner renews
//! with every progress report; `sweep` fails the jobs whose lease ran out (their process died).
//! Claims take the oldest queued job (`SKIP LOCKED` on PostgreSQL, so replicas share the queue).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Backend, Result, Tx, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub kind: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// What the job was asked to do (JSON).
    pub params: String,
    pub progress: i64,
    pub total: Option<i64>,
    /// What it did (JSON), once it succeeded.
    pub result: Option<String>,
    pub error: Option<String>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_label: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub lease_until: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, org_id, kind, status, params, progress, total, result, error, \
     actor_kind, actor_id, actor_label, created_at, started_at, finished_at, lease_until";

pub async fn insert(tx: &mut Tx, j: &JobRow) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO jobs (id, org_id, kind, status, params, progress, total, actor_kind,
             actor_id, actor_label, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(j.id).bind(j.org_id).bind(&j.kind).bind(&j.status).bind(&j.params)
        .bind(j.progress).bind(j.total).bind(&j.actor_kind).bind(&j.actor_id)
        .bind(&j.actor_label).bind(j.created_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// One job of one org.
pub async fn by_id(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<Option<JobRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE org_id = $1 AND id = $2"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, JobRow>(sql)
        .bind(org_id).bind(id).fetch_optional(&mut *c).await)?)
}

/// A job of `kind` of the org that is queued or running, if any.
pub async fn active_of_kind(tx: &mut Tx, org_id: Uuid, kind: &str) -> Result<Option<JobRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE org_id = $1 AND kind = $2
           AND status IN ('queued', 'running') ORDER BY id LIMIT 1"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, JobRow>(sql)
        .bind(org_id).bind(kind).fetch_optional(&mut *c).await)?)
}

/// Takes the oldest queued job: it becomes `running` with a lease until `lease_until`.
pub async fn claim_next(
    tx: &mut Tx,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<JobRow>> {
    let lock = match tx.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET status = 'running', started_at = $1, lease_until = $2
         WHERE id = (SELECT id FROM jobs WHERE status = 'queued'
                     ORDER BY created_at, id LIMIT 1{lock})
           AND status = 'queued'
         RETURNING {COLUMNS}"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, JobRow>(sql)
        .bind(now).bind(lease_until).fetch_optional(&mut *c).await)?)
}

/// Takes one queued job by id (the command line runs the job it queued); `None` when another
/// runner took it first.
pub async fn claim(
    tx: &mut Tx,
    id: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<JobRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET status = 'running', started_at = $2, lease_until = $3
         WHERE id = $1 AND status = 'queued'
         RETURNING {COLUMNS}"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, JobRow>(sql)
        .bind(id).bind(now).bind(lease_until).fetch_optional(&mut *c).await)?)
}

/// Records progress and renews the lease; false when the job is no longer running (swept).
pub async fn progress(
    tx: &mut Tx,
    id: Uuid,
    progress: i64,
    total: Option<i64>,
    lease_until: DateTime<Utc>,
) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE jobs SET progress = $2, total = $3, lease_until = $4
         WHERE id = $1 AND status = 'running'")
        .bind(id).bind(progress).bind(total).bind(lease_until)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Ends a running job; false when it was no longer running.
pub async fn finish(
    tx: &mut Tx,
    id: Uuid,
    status: &str,
    result: Option<&str>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE jobs SET status = $2, result = $3, error = $4, finished_at = $5,
             lease_until = NULL
         WHERE id = $1 AND status = 'running'")
        .bind(id).bind(status).bind(result).bind(error).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Fails every running job whose lease ran out: its process died (or lost the database).
pub async fn sweep(tx: &mut Tx, now: DateTime<Utc>, error: &str) -> Result<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE jobs SET status = 'failed', error = $2, finished_at = $1, lease_until = NULL
         WHERE status = 'running' AND (lease_until IS NULL OR lease_until < $1)")
        .bind(now).bind(error)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?)
}

/// A file a job produced.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobFile {
    pub job_id: Uuid,
    pub org_id: Uuid,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub chunks: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub purged_at: Option<DateTime<Utc>>,
}

pub async fn insert_chunk(tx: &mut Tx, job_id: Uuid, seq: i64, data: &[u8]) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO job_file_chunks (job_id, seq, data) VALUES ($1, $2, $3)")
        .bind(job_id).bind(seq).bind(data)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Drops the chunks of a job's file (a failed job's partial output).
pub async fn delete_chunks(tx: &mut Tx, job_id: Uuid) -> Result<()> {
    on_tx!(tx, c => sqlx::query("DELETE FROM job_file_chunks WHERE job_id = $1")
        .bind(job_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn insert_file(tx: &mut Tx, f: &JobFile) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO job_files (job_id, org_id, file_name, content_type, size, chunks,
             created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(f.job_id).bind(f.org_id).bind(&f.file_name).bind(&f.content_type)
        .bind(f.size).bind(f.chunks).bind(f.created_at).bind(f.expires_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn file(tx: &mut Tx, org_id: Uuid, job_id: Uuid) -> Result<Option<JobFile>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, JobFile>(
        "SELECT job_id, org_id, file_name, content_type, size, chunks, created_at, expires_at,
             purged_at
         FROM job_files WHERE org_id = $1 AND job_id = $2")
        .bind(org_id).bind(job_id).fetch_optional(&mut *c).await)?)
}

/// One chunk of a job's file (scoped by org through the file row).
pub async fn chunk(tx: &mut Tx, org_id: Uuid, job_id: Uuid, seq: i64) -> Result<Option<Vec<u8>>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar::<_, Vec<u8>>(
        "SELECT k.data FROM job_file_chunks k JOIN job_files f ON f.job_id = k.job_id
         WHERE f.org_id = $1 AND k.job_id = $2 AND k.seq = $3")
        .bind(org_id).bind(job_id).bind(seq).fetch_optional(&mut *c).await)?)
}

/// Deletes the chunks of files that expired before `now` (at most `limit` files per call) and
/// marks them purged. Returns how many files were purged.
pub async fn purge_expired(tx: &mut Tx, now: DateTime<Utc>, limit: i64) -> Result<u64> {
    let ids: Vec<Uuid> = on_tx!(tx, c => sqlx::query_scalar::<_, Uuid>(
        "SELECT job_id FROM job_files WHERE purged_at IS NULL AND expires_at <= $1
         ORDER BY expires_at LIMIT $2")
        .bind(now).bind(limit).fetch_all(&mut *c).await)?;
    for id in &ids {
        delete_chunks(tx, *id).await?;
        on_tx!(tx, c => sqlx::query("UPDATE job_files SET purged_at = $2 WHERE job_id = $1")
            .bind(id).bind(now).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(ids.len() as u64)
}
