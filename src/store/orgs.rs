//! Organizations (tenants).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Result, Tx, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Org {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    /// The integration that manages membership, if any (manual removal is then refused).
    pub managed_by: Option<String>,
    /// What a member created over SCIM starts as: `invite` (invited, with an email),
    /// `invite_silently` (invited, no email) or `enroll` (enrolled at once, for SSO orgs).
    pub scim_new_members: String,
    /// The authoritative source (from config) that manages membership, if any.
    pub managed_by_source: Option<String>,
    /// Most addresses one request may invite by hand (API, console).
    pub invite_limit: i64,
    /// Most people one import may invite.
    pub import_invite_limit: i64,
    /// Seconds after an invitation email before another may go to the same person.
    pub resend_cooldown_secs: i64,
    /// Every invitation must name at least one group.
    pub invite_requires_group: bool,
    /// Days an invite link (URL and unlock code) stays valid.
    pub invite_link_days: i64,
    /// What a SCIM `active: false` does: `remove` (default) or `disable` (reversible).
    pub scim_deactivate: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, slug, name, managed_by, scim_new_members, managed_by_source, \
     invite_limit, import_invite_limit, resend_cooldown_secs, invite_requires_group, \
     invite_link_days, created_at, updated_at, \
     scim_deactivate";

/// Defaults of the invitation options (also the columns' defaults in the schema).
pub const DEFAULT_INVITE_LIMIT: i64 = 10;
pub const DEFAULT_IMPORT_INVITE_LIMIT: i64 = 500;
pub const DEFAULT_RESEND_COOLDOWN_SECS: i64 = 600;
pub const DEFAULT_INVITE_LINK_DAYS: i64 = 14;
/// What SCIM `active: false` does unless an org says otherwise.
pub const DEFAULT_SCIM_DEACTIVATE: &str = "remove";
/// The values `scim_deactivate` may take.
pub const SCIM_DEACTIVATE_MODES: [&str; 2] = ["remove", "disable"];

impl Org {
    /// What manages the org's membership, in words for the 409: an authoritative source, else
    /// the SCIM integration.
    pub fn integration(&self) -> Option<String> {
        match (&self.managed_by_source, &self.managed_by) {
            (Some(s), _) => Some(format!("source `{s}`")),
            (None, Some(m)) => Some(m.clone()),
            (None, None) => None,
        }
    }
}

/// Records which orgs an authoritative source manages (from config): every org named gets
/// its source, every other org none.
pub async fn set_managing_sources(tx: &mut Tx, managed: &[(Uuid, String)]) -> Result<()> {
    on_tx!(tx, c => sqlx::query("UPDATE orgs SET managed_by_source = NULL WHERE managed_by_source IS NOT NULL")
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    for (id, source) in managed {
        on_tx!(tx, c => sqlx::query("UPDATE orgs SET managed_by_source = $2 WHERE id = $1")
            .bind(id).bind(source)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

pub async fn insert(tx: &mut Tx, org: &Org) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO orgs (id, slug, name, managed_by, created_at, updated_at, scim_new_members,
             invite_limit, import_invite_limit, resend_cooldown_secs, invite_requires_group,
             invite_link_days, scim_deactivate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
        .bind(org.id)
        .bind(&org.slug)
        .bind(&org.name)
        .bind(&org.managed_by)
        .bind(org.created_at)
        .bind(org.updated_at)
        .bind(&org.scim_new_members)
        .bind(org.invite_limit)
        .bind(org.import_invite_limit)
        .bind(org.resend_cooldown_secs)
        .bind(org.invite_requires_group)
        .bind(org.invite_link_days)
        .bind(&org.scim_deactivate)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn by_slug(tx: &mut Tx, slug: &str) -> Result<Option<Org>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM orgs WHERE slug = $1"));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, Org>(sql).bind(slug).fetch_optional(&mut *c).await)?)
}

pub async fn by_id(tx: &mut Tx, id: Uuid) -> Result<Option<Org>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM orgs WHERE id = $1"));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, Org>(sql).bind(id).fetch_optional(&mut *c).await)?)
}

/// Reads an org and, on PostgreSQL, locks its row until the transaction ends. Every write to an
/// org's roster takes this lock first, so writes within one org are serialized (as SQLite's
/// single writer does for the whole file): no lost updates, no deadlocks between bulk requests,
/// no race between two adds of the same email.
pub async fn lock(tx: &mut Tx, id: Uuid) -> Result<Option<Org>> {
    let suffix = match tx.backend() {
        super::Backend::Postgres => " FOR UPDATE",
        super::Backend::Sqlite => "",
    };
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM orgs WHERE id = $1{suffix}"));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, Org>(sql).bind(id).fetch_optional(&mut *c).await)?)
}

pub async fn list(tx: &mut Tx) -> Result<Vec<Org>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM orgs ORDER BY slug"));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, Org>(sql).fetch_all(&mut *c).await)?)
}

pub async fn update(tx: &mut Tx, org: &Org) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE orgs SET name = $2, managed_by = $3, updated_at = $4, scim_new_members = $5,
             invite_limit = $6, import_invite_limit = $7, resend_cooldown_secs = $8,
             invite_requires_group = $9, invite_link_days = $10, scim_deactivate = $11
         WHERE id = $1")
        .bind(org.id)
        .bind(&org.name)
        .bind(&org.managed_by)
        .bind(org.updated_at)
        .bind(&org.scim_new_members)
        .bind(org.invite_limit)
        .bind(org.import_invite_limit)
        .bind(org.resend_cooldown_secs)
        .bind(org.invite_requires_group)
        .bind(org.invite_link_days)
        .bind(&org.scim_deactivate)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}
