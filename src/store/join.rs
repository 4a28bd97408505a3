//! Join pages (an org's public sign-up settings) and the requests made through them. Lists and
//! questions are stored as JSON text; a request's verification token only as its SHA-256 hash
//! (kept after use, so a used or voided link is told apart from a wrong one).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Backend, Result, Tx, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct JoinPage {
    pub org_id: Uuid,
    pub enabled: bool,
    pub slug: Option<String>,
    /// JSON array of lowercase domains.
    pub allowed_domains: String,
    /// JSON array of addresses.
    pub allowed_emails: String,
    pub require_approval: bool,
    /// JSON array of questions.
    pub questions: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct JoinRequest {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// JSON object: question id → answer.
    pub answers: String,
    #[serde(skip)]
    pub token_hash: Option<Vec<u8>>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub member_id: Option<Uuid>,
}

const PAGE_COLUMNS: &str = "org_id, enabled, slug, allowed_domains, allowed_emails, \
    require_approval, questions, updated_at";
const REQUEST_COLUMNS: &str = "id, org_id, email, given_name, family_name, answers, token_hash, \
    status, created_at, expires_at, verified_at, decided_at, decided_by, reason, member_id";

pub async fn page(tx: &mut Tx, org_id: Uuid) -> Result<Option<JoinPage>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {PAGE_COLUMNS} FROM join_pages WHERE org_id = $1"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, JoinPage>(sql).bind(org_id).fetch_optional(&mut *c).await)?,
    )
}

pub async fn page_by_slug(tx: &mut Tx, slug: &str) -> Result<Option<JoinPage>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {PAGE_COLUMNS} FROM join_pages WHERE slug = $1"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, JoinPage>(sql).bind(slug).fetch_optional(&mut *c).await)?,
    )
}

/// Writes an org's page whole (a taken slug is `StoreError::Unique`).
pub async fn put_page(tx: &mut Tx, p: &JoinPage) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO join_pages (org_id, enabled, slug, allowed_domains, allowed_emails,
             require_approval, questions, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (org_id) DO UPDATE SET enabled = $2, slug = $3, allowed_domains = $4,
             allowed_emails = $5, require_approval = $6, questions = $7, updated_at = $8")
        .bind(p.org_id).bind(p.enabled).bind(&p.slug).bind(&p.allowed_domains)
        .bind(&p.allowed_emails).bind(p.require_approval).bind(&p.questions).bind(p.updated_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn insert_request(tx: &mut Tx, r: &JoinRequest) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO join_requests (id, org_id, email, given_name, family_name, answers,
             token_hash, status, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(r.id).bind(r.org_id).bind(&r.email).bind(&r.given_name).bind(&r.family_name)
        .bind(&r.answers).bind(&r.token_hash).bind(&r.status).bind(r.created_at)
        .bind(r.expires_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn request_by_token_hash(tx: &mut Tx, hash: &[u8]) -> Result<Option<JoinRequest>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM join_requests WHERE token_hash = $1"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, JoinRequest>(sql).bind(hash).fetch_optional(&mut *c).await)?,
    )
}

/// A request of an org, locked for update on PostgreSQL when `lock`.
pub async fn request_by_id(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<JoinRequest>> {
    let suffix = if lock && tx.backend() == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM join_requests WHERE org_id = $1 AND id = $2{suffix}"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, JoinRequest>(sql).bind(org_id).bind(id).fetch_optional(&mut *c).await)?,
    )
}

/// An org's requests in one status, oldest first.
pub async fn requests(
    tx: &mut Tx,
    org_id: Uuid,
    status: &str,
    limit: i64,
) -> Result<Vec<JoinRequest>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM join_requests WHERE org_id = $1 AND status = $2
         ORDER BY created_at, id LIMIT $3"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, JoinRequest>(sql).bind(org_id).bind(status).bind(limit).fetch_all(&mut *c).await)?,
    )
}

/// Writes a request's outcome (its status makes the token single use).
pub async fn update_request(tx: &mut Tx, r: &JoinRequest) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE join_requests SET status = $3, verified_at = $4,
             decided_at = $5, decided_by = $6, reason = $7, member_id = $8
         WHERE org_id = $1 AND id = $2")
        .bind(r.org_id).bind(r.id).bind(&r.status).bind(r.verified_at).bind(r.decided_at)
        .bind(&r.decided_by).bind(&r.reason).bind(r.member_id)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Voids an org's unverified requests and cancels their verification
/// emails not yet sent (their tokens wiped); answers how many requests died.
pub async fn void_unverified(tx: &mut Tx, org_id: Uuid, at: DateTime<Utc>) -> Result<u64> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE join_requests SET status = 'void'
         WHERE org_id = $1 AND status = 'unverified'")
        .bind(org_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    on_tx!(tx, c => sqlx::query(
        "UPDATE outbox SET cancelled_at = $2, link_token = NULL,
             last_error = 'cancelled: the join page was turned off'
         WHERE org_id = $1 AND kind = 'join_verify'
           AND sent_at IS NULL AND failed_at IS NULL AND cancelled_at IS NULL")
        .bind(org_id).bind(at).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n)
}

/// How many applications of an org wait for an admin (`pending`).
pub async fn pending_count(tx: &mut Tx, org_id: Uuid) -> Result<i64> {
    let (n,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "SELECT COUNT(*) FROM join_requests WHERE org_id = $1 AND status = 'pending'")
        .bind(org_id).fetch_one(&mut *c).await)?;
    Ok(n)
}

/// The requests that made (or name) a member, oldest first: their answers are the member's.
pub async fn requests_of_member(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Uuid,
) -> Result<Vec<JoinRequest>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM join_requests WHERE org_id = $1 AND member_id = $2
         ORDER BY created_at, id"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, JoinRequest>(sql)
        .bind(org_id).bind(member_id).fetch_all(&mut *c).await)?)
}
