//! Members: rows, lookups, and the admin list with keyset pagination.
//!
//! The list never uses OFFSET: each page continues strictly after the previous page's last
//! `(sort key, id)`, which an index on `(org_id, sort key, id)` serves directly at any depth.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Backend, Result, Tx, like_contains, on_tx};
use crate::domain::{Access, AccessView, Member, Role};

const COLUMNS: &str = "id, org_id, given_name, family_name, display_name, member_email, login_email, \
     role, access, added_at, invited_at, invite_count, reminders_sent, enrolled_at, last_active_at, \
     removed_at, activity_at, ever_enrolled, updated_at, user_name, external_id, scim_data, version, \
     scim_deleted, cancelled_at, disabled_at, points, \
     monthly_fee, currency, total_paid, contact_email";

/// What the list can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberSort {
    Added,
    Name,
    Email,
    Activity,
    Points,
    TotalPaid,
}

impl MemberSort {
    fn column(self) -> &'static str {
        match self {
            MemberSort::Added => "added_at",
            MemberSort::Name => "name_key",
            MemberSort::Email => "email_key",
            MemberSort::Activity => "activity_at",
            MemberSort::Points => "points",
            MemberSort::TotalPaid => "total_paid",
        }
    }

    /// The sort key of a member, as the cursor carries it.
    pub fn key_of(self, m: &Member) -> SortValue {
        match self {
            MemberSort::Added => SortValue::Time(m.added_at),
            MemberSort::Name => SortValue::Text(m.name_key()),
            MemberSort::Email => SortValue::Text(m.member_email.to_lowercase()),
            MemberSort::Activity => SortValue::Time(m.activity_at),
            MemberSort::Points => SortValue::Int(m.points),
            MemberSort::TotalPaid => SortValue::Int(m.total_paid),
        }
    }

    pub fn is_time(self) -> bool {
        matches!(self, MemberSort::Added | MemberSort::Activity)
    }
}

/// A sort key value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum SortValue {
    Time(DateTime<Utc>),
    Text(String),
    Int(i64),
}

/// A page request for the members list.
#[derive(Debug, Clone)]
pub struct MemberQuery {
    pub org_id: Uuid,
    pub view: AccessView,
    pub role: Option<Role>,
    /// Joined (added) at or after.
    pub joined_from: Option<DateTime<Utc>>,
    /// Joined strictly before.
    pub joined_before: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the name, member email or login email.
    pub search: Option<String>,
    /// Exact member email (case-insensitive).
    pub email: Option<String>,
    /// Org-defined attribute values the member must hold: `(attribute id, canonical value)`.
    pub attrs: Vec<(Uuid, String)>,
    pub sort: MemberSort,
    pub descending: bool,
    /// Continue after this `(sort key, id)`.
    pub after: Option<(SortValue, Uuid)>,
    pub limit: i64,
}

enum Bind {
    Uuid(Uuid),
    Text(String),
    Time(DateTime<Utc>),
    Int(i64),
}

macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bind::Uuid(v) => q.bind(*v),
                Bind::Text(v) => q.bind(v.clone()),
                Bind::Time(v) => q.bind(*v),
                Bind::Int(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// How many rows, in list order, the first attempt at a filtered page looks through.
const WINDOW: i64 = 2000;

/// How a page is fetched.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Walk the sort index and filter as rows come.
    Ordered,
    /// Look only at the next `WINDOW` rows in list order: enough when matches are common.
    Window,
    /// Start from the selective part (the search index, the role index) and sort what matches:
    /// right when matches are rare. (PostgreSQL's planner has the statistics to choose itself;
    /// SQLite's does not, so it is told.)
    Driven,
}

/// One page of the members list.
///
/// Unfiltered (and date-bounded) pages walk the `(org_id, sort key, id)` index. Pages with a
/// search, role, email or attribute (`attrs`) filter first look through the next `WINDOW` rows in order: when matches are common
/// that fills the page at once and is exact (the first matches in order lie within those
/// rows). Only when it does not, the page is fetched starting from the selective index, so a
/// rare match never costs a walk through the whole org.
pub async fn list(tx: &mut Tx, q: &MemberQuery) -> Result<Vec<Member>> {
    // Several attribute filters: the rarest value goes first, as the one a driven page starts
    // from (each counted only up to a bound, on its index range).
    if q.attrs.len() > 1 {
        let mut counted = Vec::with_capacity(q.attrs.len());
        for (attribute_id, value) in &q.attrs {
            let n: i64 = on_tx!(tx, c => sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM member_attributes
                 WHERE org_id = $1 AND attribute_id = $2 AND value_text = $3 LIMIT $4) x")
                .bind(q.org_id).bind(*attribute_id).bind(value).bind(ATTR_COUNT_BOUND)
                .fetch_one(&mut *c).await)?;
            counted.push((n, (*attribute_id, value.clone())));
        }
        counted.sort_by_key(|(n, _)| *n);
        let mut q = q.clone();
        q.attrs = counted.into_iter().map(|(_, a)| a).collect();
        return list_ordered(tx, &q).await;
    }
    list_ordered(tx, q).await
}

/// How far the attribute filters' index ranges are counted to pick the rarest.
const ATTR_COUNT_BOUND: i64 = 5000;

async fn list_ordered(tx: &mut Tx, q: &MemberQuery) -> Result<Vec<Member>> {
    // Date bounds alone are ranges on the sort index (or cheap to check while walking it).
    let filtered = q.role.is_some()
        || q.email.is_some()
        || !q.attrs.is_empty()
        || q.search.as_deref().is_some_and(|s| !s.is_empty());
    if !filtered {
        return fetch(tx, q, Plan::Ordered).await;
    }
    // Owners and admins are few by nature: go straight to the role index.
    if matches!(q.role, Some(Role::Owner | Role::Admin)) {
        return fetch(tx, q, Plan::Driven).await;
    }
    let rows = fetch(tx, q, Plan::Window).await?;
    if rows.len() as i64 >= q.limit {
        return Ok(rows);
    }
    fetch(tx, q, Plan::Driven).await
}

async fn fetch(tx: &mut Tx, q: &MemberQuery, plan: Plan) -> Result<Vec<Member>> {
    let sqlite = tx.backend() == Backend::Sqlite;
    let mut binds = vec![Bind::Uuid(q.org_id)];
    let next = |binds: &mut Vec<Bind>, b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    let col = q.sort.column();
    let (cmp, dir) = if q.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let states: Vec<String> = q
        .view
        .states()
        .iter()
        .map(|a| format!("'{}'", a.as_str()))
        .collect();

    // The part every plan applies where the rows come from: org, view, cursor.
    let mut base = format!("m.org_id = $1 AND m.access IN ({})", states.join(", "));
    if let Some((value, id)) = &q.after {
        let v = next(
            &mut binds,
            match value {
                SortValue::Time(t) => Bind::Time(*t),
                SortValue::Text(s) => Bind::Text(s.clone()),
                SortValue::Int(n) => Bind::Int(*n),
            },
        );
        let i = next(&mut binds, Bind::Uuid(*id));
        base.push_str(&format!(" AND (m.{col}, m.id) {cmp} ({v}, {i})"));
    }
    // The filters.
    let mut filters = String::new();
    let mut search_param = None;
    if let Some(role) = q.role {
        let p = next(&mut binds, Bind::Text(role.as_str().to_owned()));
        filters.push_str(&format!(" AND m.role = {p}"));
    }
    if let Some(from) = q.joined_from {
        let p = next(&mut binds, Bind::Time(from));
        filters.push_str(&format!(" AND m.added_at >= {p}"));
    }
    if let Some(before) = q.joined_before {
        let p = next(&mut binds, Bind::Time(before));
        filters.push_str(&format!(" AND m.added_at < {p}"));
    }
    if let Some(email) = &q.email {
        let p = next(&mut binds, Bind::Text(email.to_lowercase()));
        filters.push_str(&format!(" AND m.email_key = {p}"));
    }
    if let Some(search) = q.search.as_deref().filter(|s| !s.is_empty()) {
        let term = search.to_lowercase();
        let p = next(&mut binds, Bind::Text(like_contains(&term)));
        filters.push_str(&format!(" AND m.search_key LIKE {p} ESCAPE '\\'"));
        // The trigram index (FTS5) serves terms of three characters or more, and only without
        // an ESCAPE clause, so terms holding `%`, `_` or `\` cannot use it.
        if term.chars().count() >= 3 && !term.contains(['%', '_', '\\']) {
            search_param = Some(p);
        }
    }
    // Attribute values: each an index probe on `member_attributes (org_id, member_id, …)`;
    // the first one can also drive the page (see `Plan::Driven`).
    let mut attr_param = None;
    for (i, (attribute_id, value)) in q.attrs.iter().enumerate() {
        let a = next(&mut binds, Bind::Uuid(*attribute_id));
        let v = next(&mut binds, Bind::Text(value.clone()));
        filters.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM member_attributes a{i} WHERE a{i}.org_id = $1 \
             AND a{i}.member_id = m.id AND a{i}.attribute_id = {a} AND a{i}.value_text = {v})"
        ));
        if i == 0 {
            attr_param = Some((a, v));
        }
    }
    let l = next(&mut binds, Bind::Int(q.limit));
    let order = format!("ORDER BY m.{col} {dir}, m.id {dir}");
    let sql = match plan {
        Plan::Ordered => format!(
            "SELECT {cols} FROM members m WHERE {base}{filters} {order} LIMIT {l}",
            cols = prefixed("m")
        ),
        Plan::Window => {
            let w = next(&mut binds, Bind::Int(WINDOW));
            format!(
                "SELECT {cols} FROM (SELECT * FROM members m WHERE {base} {order} LIMIT {w}) m
                 WHERE TRUE{filters} {order} LIMIT {l}",
                cols = prefixed("m")
            )
        }
        Plan::Driven if sqlite => match (&search_param, q.role) {
            (Some(p), _) => format!(
                "SELECT {cols} FROM members_search s CROSS JOIN members m ON m.rowid = s.rowid
                 WHERE s.search_key LIKE {p} AND {base}{filters} {order} LIMIT {l}",
                cols = prefixed("m")
            ),
            (None, _) if attr_param.is_some() => {
                let (a, v) = attr_param.clone().unwrap_or_default();
                format!(
                    "SELECT {cols} FROM member_attributes d CROSS JOIN members m ON m.id = d.member_id
                     WHERE d.org_id = $1 AND d.attribute_id = {a} AND d.value_text = {v}
                       AND {base}{filters} {order} LIMIT {l}",
                    cols = prefixed("m")
                )
            }
            (None, Some(_)) => format!(
                "SELECT {cols} FROM members m INDEXED BY members_org_role_access
                 WHERE {base}{filters} {order} LIMIT {l}",
                cols = prefixed("m")
            ),
            (None, None) => format!(
                "SELECT {cols} FROM members m WHERE {base}{filters} {order} LIMIT {l}",
                cols = prefixed("m")
            ),
        },
        // PostgreSQL: the trigram (GIN) index finds the candidates first, whatever the
        // planner guesses about how common the term is.
        Plan::Driven => match &search_param {
            Some(p) => format!(
                "WITH hits AS MATERIALIZED (
                    SELECT id FROM members WHERE org_id = $1 AND search_key LIKE {p})
                 SELECT {cols} FROM members m JOIN hits h ON h.id = m.id
                 WHERE {base}{filters} {order} LIMIT {l}",
                cols = prefixed("m")
            ),
            None if attr_param.is_some() => {
                let (a, v) = attr_param.clone().unwrap_or_default();
                format!(
                    "WITH hits AS MATERIALIZED (
                        SELECT member_id FROM member_attributes
                        WHERE org_id = $1 AND attribute_id = {a} AND value_text = {v})
                     SELECT {cols} FROM members m JOIN hits h ON h.member_id = m.id
                     WHERE {base}{filters} {order} LIMIT {l}",
                    cols = prefixed("m")
                )
            }
            None => format!(
                "SELECT {cols} FROM members m WHERE {base}{filters} {order} LIMIT {l}",
                cols = prefixed("m")
            ),
        },
    };
    let sql = sqlx::AssertSqlSafe(sql);
    Ok(
        on_tx!(tx, c => bind_all!(sqlx::query_as::<_, Member>(sql), &binds).fetch_all(&mut *c).await)?,
    )
}

/// The member columns, qualified by a table alias.
fn prefixed(alias: &str) -> String {
    COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every member of an org, current and past, in `(added_at, id)` order, a batch at a time.
pub async fn export_batch(
    tx: &mut Tx,
    org_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Member>> {
    let rows = match after {
        Some((at, id)) => {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM members WHERE org_id = $1 AND (added_at, id) > ($2, $3)
                 ORDER BY added_at, id LIMIT $4"
            ));
            on_tx!(tx, c => sqlx::query_as::<_, Member>(sql)
                .bind(org_id).bind(at).bind(id).bind(limit).fetch_all(&mut *c).await)?
        }
        None => {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM members WHERE org_id = $1 ORDER BY added_at, id LIMIT $2"
            ));
            on_tx!(tx, c => sqlx::query_as::<_, Member>(sql)
                .bind(org_id).bind(limit).fetch_all(&mut *c).await)?
        }
    };
    Ok(rows)
}

/// Adds `FOR UPDATE` on PostgreSQL (SQLite's single writer already serializes).
fn for_update(tx: &Tx, lock: bool) -> &'static str {
    if lock && tx.backend() == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    }
}

pub async fn by_id(tx: &mut Tx, org_id: Uuid, id: Uuid, lock: bool) -> Result<Option<Member>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM members WHERE org_id = $1 AND id = $2{}",
        for_update(tx, lock)
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, Member>(sql).bind(org_id).bind(id).fetch_optional(&mut *c).await)?,
    )
}

pub async fn by_email(
    tx: &mut Tx,
    org_id: Uuid,
    email: &str,
    lock: bool,
) -> Result<Option<Member>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM members WHERE org_id = $1 AND email_key = $2{}",
        for_update(tx, lock)
    ));
    let key = email.to_lowercase();
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, Member>(sql).bind(org_id).bind(key).fetch_optional(&mut *c).await)?,
    )
}

pub async fn owner(tx: &mut Tx, org_id: Uuid) -> Result<Option<Member>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM members WHERE org_id = $1 AND role = 'owner'"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, Member>(sql).bind(org_id).fetch_optional(&mut *c).await)?,
    )
}

pub async fn insert(tx: &mut Tx, m: &mut Member) -> Result<()> {
    m.activity_at = m.computed_activity_at();
    let m = &*m;
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO members (id, org_id, given_name, family_name, display_name, name_key,
            member_email, email_key, login_email, login_key, role, access, added_at, invited_at,
            invite_count, reminders_sent, enrolled_at, last_active_at, removed_at, activity_at,
            ever_enrolled, updated_at, search_key, user_name, user_name_key, external_id,
            scim_data, version, scim_deleted, cancelled_at, disabled_at, contact_email)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)")
        .bind(m.id)
        .bind(m.org_id)
        .bind(&m.given_name)
        .bind(&m.family_name)
        .bind(&m.display_name)
        .bind(m.name_key())
        .bind(&m.member_email)
        .bind(m.member_email.to_lowercase())
        .bind(&m.login_email)
        .bind(m.login_email.as_ref().map(|l| l.to_lowercase()))
        .bind(m.role.as_str())
        .bind(m.access.as_str())
        .bind(m.added_at)
        .bind(m.invited_at)
        .bind(m.invite_count)
        .bind(m.reminders_sent)
        .bind(m.enrolled_at)
        .bind(m.last_active_at)
        .bind(m.removed_at)
        .bind(m.computed_activity_at())
        .bind(m.ever_enrolled)
        .bind(m.updated_at)
        .bind(m.search_key())
        .bind(&m.user_name)
        .bind(m.user_name.to_lowercase())
        .bind(&m.external_id)
        .bind(&m.scim_data)
        .bind(m.version)
        .bind(m.scim_deleted)
        .bind(m.cancelled_at)
        .bind(m.disabled_at)
        .bind(&m.contact_email)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Writes every mutable field of `m` (and the derived keys, which it also refreshes in `m`),
/// and bumps its version.
pub async fn update(tx: &mut Tx, m: &mut Member) -> Result<()> {
    m.activity_at = m.computed_activity_at();
    m.version += 1;
    let m = &*m;
    on_tx!(tx, c => sqlx::query(
        "UPDATE members SET given_name = $3, family_name = $4, display_name = $5, name_key = $6,
            member_email = $7, email_key = $8, login_email = $9, login_key = $10, role = $11,
            access = $12, invited_at = $13, invite_count = $14, reminders_sent = $15,
            enrolled_at = $16, last_active_at = $17, removed_at = $18, activity_at = $19,
            ever_enrolled = $20, updated_at = $21, search_key = $22, user_name = $23,
            user_name_key = $24, external_id = $25, scim_data = $26, version = $27,
            scim_deleted = $28, cancelled_at = $29, disabled_at = $30, contact_email = $31
         WHERE org_id = $1 AND id = $2")
        .bind(m.org_id)
        .bind(m.id)
        .bind(&m.given_name)
        .bind(&m.family_name)
        .bind(&m.display_name)
        .bind(m.name_key())
        .bind(&m.member_email)
        .bind(m.member_email.to_lowercase())
        .bind(&m.login_email)
        .bind(m.login_email.as_ref().map(|l| l.to_lowercase()))
        .bind(m.role.as_str())
        .bind(m.access.as_str())
        .bind(m.invited_at)
        .bind(m.invite_count)
        .bind(m.reminders_sent)
        .bind(m.enrolled_at)
        .bind(m.last_active_at)
        .bind(m.removed_at)
        .bind(m.computed_activity_at())
        .bind(m.ever_enrolled)
        .bind(m.updated_at)
        .bind(m.search_key())
        .bind(&m.user_name)
        .bind(m.user_name.to_lowercase())
        .bind(&m.external_id)
        .bind(&m.scim_data)
        .bind(m.version)
        .bind(m.scim_deleted)
        .bind(m.cancelled_at)
        .bind(m.disabled_at)
        .bind(&m.contact_email)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Invited members whose last invitation went out at or before `sent_before` and who have had
/// fewer than `max_reminders` automatic reminders (any org), oldest first.
pub async fn due_reminders(
    tx: &mut Tx,
    sent_before: DateTime<Utc>,
    max_reminders: i64,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>> {
    let rows: Vec<(Uuid, Uuid)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT org_id, id FROM members
         WHERE access = 'invited' AND invited_at <= $1 AND reminders_sent < $2
         ORDER BY invited_at LIMIT $3")
        .bind(sent_before)
        .bind(max_reminders)
        .bind(limit)
        .fetch_all(&mut *c)
        .await)?;
    Ok(rows)
}

/// Ids of an org's invited members after `after`, in id order.
pub async fn invited_ids(
    tx: &mut Tx,
    org_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Uuid>> {
    let rows: Vec<(Uuid,)> = match after {
        Some(after) => on_tx!(tx, c => sqlx::query_as(
            "SELECT id FROM members WHERE org_id = $1 AND access = 'invited' AND id > $2
             ORDER BY id LIMIT $3")
            .bind(org_id).bind(after).bind(limit).fetch_all(&mut *c).await)?,
        None => on_tx!(tx, c => sqlx::query_as(
            "SELECT id FROM members WHERE org_id = $1 AND access = 'invited' ORDER BY id LIMIT $2")
            .bind(org_id).bind(limit).fetch_all(&mut *c).await)?,
    };
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// How many members an org has in each access state.
pub async fn counts(tx: &mut Tx, org_id: Uuid) -> Result<Vec<(Access, i64)>> {
    let rows: Vec<(String, i64)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT access, COUNT(*) FROM members WHERE org_id = $1 GROUP BY access")
        .bind(org_id)
        .fetch_all(&mut *c)
        .await)?;
    rows.into_iter()
        .map(|(a, n)| {
            a.parse::<Access>()
                .map(|a| (a, n))
                .map_err(|e| super::StoreError::Corrupt(e.to_string()))
        })
        .collect()
}

pub async fn by_user_name(tx: &mut Tx, org_id: Uuid, user_name: &str) -> Result<Option<Member>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM members WHERE org_id = $1 AND user_name_key = $2"
    ));
    let key = user_name.to_lowercase();
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, Member>(sql).bind(org_id).bind(key).fetch_optional(&mut *c).await)?,
    )
}

/// A condition on SCIM users that SQL can check with indexes: a SCIM filter is narrowed to
/// one of these (a superset of its matches) before the exact filter runs in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum ScimCondition {
    All,
    None,
    UserNameEq(String),
    /// `LIKE` pattern on the lowercased userName (built by the caller with [`like_contains`]
    /// and friends).
    UserNameLike(String),
    ExternalIdEq(String),
    IdEq(Uuid),
    /// `LIKE` pattern (lowercase ASCII, `\` escapes) on the lowercased stored SCIM document
    /// (`scim_data`): a superset of the users holding some text in an attribute kept there.
    DataLike(String),
    And(Box<ScimCondition>, Box<ScimCondition>),
    Or(Box<ScimCondition>, Box<ScimCondition>),
}

fn scim_where(cond: &ScimCondition, binds: &mut Vec<Bind>) -> String {
    let mut push = |b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    match cond {
        ScimCondition::All => "TRUE".into(),
        ScimCondition::None => "FALSE".into(),
        ScimCondition::UserNameEq(v) => {
            format!("user_name_key = {}", push(Bind::Text(v.to_lowercase())))
        }
        ScimCondition::UserNameLike(p) => format!(
            "user_name_key LIKE {} ESCAPE '\\'",
            push(Bind::Text(p.clone()))
        ),
        ScimCondition::ExternalIdEq(v) => format!("external_id = {}", push(Bind::Text(v.clone()))),
        ScimCondition::IdEq(id) => format!("id = {}", push(Bind::Uuid(*id))),
        ScimCondition::DataLike(p) => format!(
            "LOWER(scim_data) LIKE {} ESCAPE '\\'",
            push(Bind::Text(p.clone()))
        ),
        ScimCondition::And(a, b) => {
            let a = scim_where(a, binds);
            let b = scim_where(b, binds);
            format!("({a} AND {b})")
        }
        ScimCondition::Or(a, b) => {
            let a = scim_where(a, binds);
            let b = scim_where(b, binds);
            format!("({a} OR {b})")
        }
    }
}

/// How SCIM lists are ordered in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimOrder {
    Id,
    UserName,
    Created,
    LastModified,
}

impl ScimOrder {
    fn column(self) -> &'static str {
        match self {
            ScimOrder::Id => "id",
            ScimOrder::UserName => "user_name_key",
            ScimOrder::Created => "added_at",
            ScimOrder::LastModified => "updated_at",
        }
    }
}

/// SCIM-visible users matching `cond`: one page (`offset`, `limit`) in `order`, and the total.
pub async fn scim_page(
    tx: &mut Tx,
    org_id: Uuid,
    cond: &ScimCondition,
    order: ScimOrder,
    descending: bool,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<Member>)> {
    let mut binds = vec![Bind::Uuid(org_id)];
    let w = scim_where(cond, &mut binds);
    let count_sql = sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM members WHERE org_id = $1 AND scim_deleted = FALSE AND {w}"
    ));
    let total: (i64,) =
        on_tx!(tx, c => bind_all!(sqlx::query_as(count_sql), &binds).fetch_one(&mut *c).await)?;
    let dir = if descending { "DESC" } else { "ASC" };
    let col = order.column();
    let o = binds.len() + 1;
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM members WHERE org_id = $1 AND scim_deleted = FALSE AND {w}
         ORDER BY {col} {dir}, id {dir} LIMIT ${} OFFSET ${o}",
        o + 1
    ));
    binds.push(Bind::Int(offset));
    binds.push(Bind::Int(limit));
    let rows = on_tx!(tx, c => bind_all!(sqlx::query_as::<_, Member>(sql), &binds).fetch_all(&mut *c).await)?;
    Ok((total.0, rows))
}

/// How many SCIM-visible users match `cond`.
pub async fn scim_count(tx: &mut Tx, org_id: Uuid, cond: &ScimCondition) -> Result<i64> {
    let mut binds = vec![Bind::Uuid(org_id)];
    let w = scim_where(cond, &mut binds);
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM members WHERE org_id = $1 AND scim_deleted = FALSE AND {w}"
    ));
    let total: (i64,) =
        on_tx!(tx, c => bind_all!(sqlx::query_as(sql), &binds).fetch_one(&mut *c).await)?;
    Ok(total.0)
}

/// Every SCIM-visible user matching `cond`, in id order (for filters SQL cannot check fully).
pub async fn scim_all(tx: &mut Tx, org_id: Uuid, cond: &ScimCondition) -> Result<Vec<Member>> {
    let mut binds = vec![Bind::Uuid(org_id)];
    let w = scim_where(cond, &mut binds);
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM members WHERE org_id = $1 AND scim_deleted = FALSE AND {w} ORDER BY id"
    ));
    Ok(
        on_tx!(tx, c => bind_all!(sqlx::query_as::<_, Member>(sql), &binds).fetch_all(&mut *c).await)?,
    )
}

/// Moves on the version (SCIM ETag) of some members without other changes.
pub async fn bump_versions(
    tx: &mut Tx,
    org_id: Uuid,
    ids: &[Uuid],
    at: DateTime<Utc>,
) -> Result<()> {
    for id in ids {
        on_tx!(tx, c => sqlx::query(
            "UPDATE members SET version = version + 1, updated_at = $3 WHERE org_id = $1 AND id = $2")
            .bind(org_id).bind(*id).bind(at).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Inserts new members, many per statement (a sync's creates).
pub async fn insert_many(tx: &mut Tx, ms: &mut [Member]) -> Result<()> {
    for m in ms.iter_mut() {
        m.activity_at = m.computed_activity_at();
    }
    let size = |m: &Member| {
        3 * (m.member_email.len() + m.user_name.len())
            + 3 * [&m.given_name, &m.family_name, &m.display_name]
                .iter()
                .map(|n| n.as_ref().map_or(0, String::len))
                .sum::<usize>()
            + 2 * m.login_email.as_ref().map_or(0, String::len)
            + m.scim_data.as_ref().map_or(0, String::len)
            + 400
    };
    for chunk in super::size_chunks(tx, ms, 20, size) {
        on_tx!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO members (id, org_id, given_name, family_name, display_name, name_key,
                member_email, email_key, login_email, login_key, role, access, added_at, invited_at,
                invite_count, reminders_sent, enrolled_at, last_active_at, removed_at, activity_at,
                ever_enrolled, updated_at, search_key, user_name, user_name_key, external_id,
                scim_data, version, scim_deleted) ",
            );
            q.push_values(chunk, |mut b, m| {
                b.push_bind(m.id)
                    .push_bind(m.org_id)
                    .push_bind(m.given_name.clone())
                    .push_bind(m.family_name.clone())
                    .push_bind(m.display_name.clone())
                    .push_bind(m.name_key())
                    .push_bind(m.member_email.clone())
                    .push_bind(m.member_email.to_lowercase())
                    .push_bind(m.login_email.clone())
                    .push_bind(m.login_email.as_ref().map(|l| l.to_lowercase()))
                    .push_bind(m.role.as_str())
                    .push_bind(m.access.as_str())
                    .push_bind(m.added_at)
                    .push_bind(m.invited_at)
                    .push_bind(m.invite_count)
                    .push_bind(m.reminders_sent)
                    .push_bind(m.enrolled_at)
                    .push_bind(m.last_active_at)
                    .push_bind(m.removed_at)
                    .push_bind(m.activity_at)
                    .push_bind(m.ever_enrolled)
                    .push_bind(m.updated_at)
                    .push_bind(m.search_key())
                    .push_bind(m.user_name.clone())
                    .push_bind(m.user_name.to_lowercase())
                    .push_bind(m.external_id.clone())
                    .push_bind(m.scim_data.clone())
                    .push_bind(m.version)
                    .push_bind(m.scim_deleted);
            });
            q.build().execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// Which of these email keys and user-name keys are taken in the org.
pub async fn taken_keys(
    tx: &mut Tx,
    org_id: Uuid,
    keys: &[String],
) -> Result<std::collections::HashSet<String>> {
    let mut taken = std::collections::HashSet::new();
    for chunk in keys.chunks(200) {
        let rows: Vec<(String, String)> = match tx {
            // One array parameter: the same statement every time, planned with both indexes.
            Tx::Postgres(c) => {
                sqlx::query_as(
                    "SELECT email_key, user_name_key FROM members
                     WHERE org_id = $1 AND (email_key = ANY($2) OR user_name_key = ANY($2))",
                )
                .bind(org_id)
                .bind(chunk)
                .fetch_all(&mut **c)
                .await?
            }
            // Two lookups, each on its own index (SQLite does not combine IN lists under OR:
            // one statement scanned the whole org per batch, quadratic over a large sync).
            Tx::Sqlite(c) => {
                let mut rows = Vec::new();
                for column in ["email_key", "user_name_key"] {
                    let mut q = sqlx::QueryBuilder::new(
                        "SELECT email_key, user_name_key FROM members WHERE org_id = ",
                    );
                    q.push_bind(org_id).push(format!(" AND {column} IN ("));
                    let mut list = q.separated(", ");
                    for k in chunk {
                        list.push_bind(k.clone());
                    }
                    q.push(")");
                    let found: Vec<(String, String)> =
                        q.build_query_as().fetch_all(&mut **c).await?;
                    rows.extend(found);
                }
                rows
            }
        };
        for (e, u) in rows {
            taken.insert(e);
            taken.insert(u);
        }
    }
    Ok(taken)
}
