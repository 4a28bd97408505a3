//! `/api/v1/orgs/{org}/members…`: list, add, resend invitations, remove, role changes,
//! activity, ownership transfer and the CSV export.

use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use crate::domain::{Access, AccessView, Activity, Member, Role};
use crate::roster::attributes::{Schema, ValueMap};
use crate::roster::{
    AccessChange, AccessOutcome, AccessResult, AddResult, MemberPatch, NewMember, RemoveOutcome,
    RemoveResult, ResendOutcome, ResendResult,
};
use crate::store::members::{MemberQuery, MemberSort, SortValue};
use crate::store::{self};
use crate::web::AppState;
use crate::web::Principal;
use crate::web::problem::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// A member as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct MemberView {
    pub id: Uuid,
    pub name: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub member_email: String,
    /// Present only where it differs from `member_email`. As the invitee (or a source) stated
    /// it, unverified: not an identity claim, nothing matches or authorizes by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_email: Option<String>,
    pub role: Role,
    pub access: Access,
    pub activity: Activity,
    pub added_at: DateTime<Utc>,
    pub invited_at: Option<DateTime<Utc>>,
    pub invite_count: i64,
    pub enrolled_at: Option<DateTime<Utc>>,
    pub last_active_at: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<DateTime<Utc>>,
    /// Points held.
    pub points: i64,
    /// Monthly fee in minor units of `currency` (cents for EUR), if one is set.
    pub monthly_fee: Option<i64>,
    /// ISO 4217 code of the fee and the payments.
    pub currency: Option<String>,
    /// Sum of the recorded payments, in minor units of `currency`.
    pub total_paid: i64,
    /// Where a removed member can still be reached, if the admin who removed them said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_email: Option<String>,
    /// Values of the org's own attributes, by attribute name.
    pub attributes: ValueMap,
}

impl MemberView {
    /// The view with the member's attribute values.
    pub fn with_attributes(mut self, values: ValueMap) -> Self {
        self.attributes = values;
        self
    }
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        MemberView {
            id: m.id,
            name: m.name(),
            given_name: m.given_name.clone(),
            family_name: m.family_name.clone(),
            display_name: m.display_name.clone(),
            member_email: m.member_email.clone(),
            login_email: m.distinct_login_email().map(str::to_owned),
            role: m.role,
            access: m.access,
            activity: m.activity(),
            added_at: m.added_at,
            invited_at: m.invited_at,
            invite_count: m.invite_count,
            enrolled_at: m.enrolled_at,
            last_active_at: m.last_active_at,
            removed_at: m.removed_at,
            cancelled_at: m.cancelled_at,
            disabled_at: m.disabled_at,
            points: m.points,
            monthly_fee: m.monthly_fee,
            currency: m.currency.clone(),
            total_paid: m.total_paid,
            contact_email: (m.access == Access::Removed)
                .then(|| m.contact_email.clone())
                .flatten(),
            attributes: ValueMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    Desc,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `all` (invited + enrolled, default), `invited`, `enrolled`, `removed`.
    pub access: Option<AccessView>,
    pub role: Option<Role>,
    /// Joined on or after: a date (`2026-01-31`) or an RFC 3339 time.
    pub joined_from: Option<String>,
    /// Joined on or before: a date (the whole day counts) or an RFC 3339 time (exclusive).
    pub joined_to: Option<String>,
    /// Case-insensitive search in names and emails.
    pub q: Option<String>,
    /// Exact member email (case-insensitive).
    pub email: Option<String>,
    /// `added` (default), `name`, `email`, `activity`, `points`, `total_paid`.
    pub sort: Option<MemberSort>,
    /// `asc` or `desc` (default `desc` for dates, `asc` otherwise).
    pub order: Option<Order>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A page cursor: the sort it belongs to and the last row's `(key, id)`. The key is kept as
/// text and read back by the sort's type, so a name that looks like a date stays a name.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    s: MemberSort,
    d: bool,
    k: String,
    i: Uuid,
}

fn key_text(v: &SortValue) -> String {
    match v {
        SortValue::Time(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        SortValue::Text(s) => s.clone(),
        SortValue::Int(n) => n.to_string(),
    }
}

fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode_cursor(text: &str, sort: MemberSort, desc: bool) -> Result<(SortValue, Uuid), ApiError> {
    let bad = || {
        ApiError::field(
            "cursor",
            "not a cursor returned by this list; start again without it",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if c.s != sort || c.d != desc {
        return Err(ApiError::field(
            "cursor",
            "this cursor belongs to a different sort order; start again without it",
        ));
    }
    let key = if sort.is_time() {
        let t = DateTime::parse_from_rfc3339(&c.k)
            .map_err(|_| bad())?
            .with_timezone(&Utc);
        check_year(t).map_err(|_| bad())?;
        SortValue::Time(t)
    } else if matches!(sort, MemberSort::Points | MemberSort::TotalPaid) {
        SortValue::Int(c.k.parse().map_err(|_| bad())?)
    } else {
        if c.k.chars().any(char::is_control) {
            return Err(bad());
        }
        SortValue::Text(c.k)
    };
    Ok((key, c.i))
}

/// Both stores keep years 1 to 9999 (PostgreSQL refuses far more, SQLite sorts text).
fn check_year(t: DateTime<Utc>) -> Result<DateTime<Utc>, ()> {
    use chrono::Datelike;
    if (1..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err(())
    }
}

/// Text filters must not carry control characters (PostgreSQL refuses NUL outright).
fn check_text(field: &str, v: &str) -> Result<(), ApiError> {
    if v.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            "must not contain control characters",
        ));
    }
    if v.chars().count() > 320 {
        return Err(ApiError::field(field, "at most 320 characters"));
    }
    Ok(())
}

/// Parses a date or time bound. For `end`, a bare date means the end of that day.
fn parse_bound(field: &str, text: &str, end: bool) -> Result<DateTime<Utc>, ApiError> {
    let out_of_range = || ApiError::field(field, "dates must fall in the years 1 to 9999");
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return check_year(t.with_timezone(&Utc)).map_err(|_| out_of_range());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ApiError::field(
            field,
            format!("`{text}` is not a date like 2026-01-31 or an RFC 3339 time like 2026-01-31T09:00:00Z"),
        )
    })?;
    let date = if end {
        date.succ_opt()
            .ok_or_else(|| ApiError::field(field, "date out of range"))?
    } else {
        date
    };
    let t = date
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc())
        .ok_or_else(|| ApiError::field(field, "date out of range"))?;
    check_year(t).map_err(|_| out_of_range())
}

#[derive(Debug, Serialize)]
pub struct MemberPage {
    pub items: Vec<MemberView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Most `attr.NAME=VALUE` filters one list request has.
pub const MAX_ATTR_FILTERS: usize = 5;

/// The list's query: [`ListParams`] and the `attr.NAME=VALUE` filters on org-defined attributes
/// (whose names the org chooses, so they cannot be fields of a struct).
pub struct ListQuery {
    pub params: ListParams,
    pub attrs: Vec<(String, String)>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let (attrs, rest) = split_attr_filters(parts.uri.query().unwrap_or(""))?;
        if attrs.len() > MAX_ATTR_FILTERS {
            return Err(ApiError::field(
                "attr",
                format!("at most {MAX_ATTR_FILTERS} attribute filters per request"),
            ));
        }
        let original = parts.uri.clone();
        let path = if rest.is_empty() {
            original.path().to_owned()
        } else {
            format!("{}?{rest}", original.path())
        };
        parts.uri = path
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_query", "the query string is malformed"))?;
        let params = Query::<ListParams>::from_request_parts(parts, state).await;
        parts.uri = original;
        Ok(ListQuery {
            params: params?.0,
            attrs,
        })
    }
}

/// Splits `attr.NAME=VALUE` pairs from the rest of a query string (re-encoded).
fn split_attr_filters(query: &str) -> Result<(Vec<(String, String)>, String), ApiError> {
    let mut attrs = Vec::new();
    let mut rest = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.strip_prefix("attr.") {
            Some(name) => {
                check_text(&k, name)?;
                check_text(&k, &v)?;
                attrs.push((name.to_owned(), v.into_owned()));
            }
            None => {
                rest.append_pair(&k, &v);
            }
        }
    }
    Ok((attrs, rest.finish()))
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    ListQuery { params: p, attrs }: ListQuery,
) -> Result<axum::Json<MemberPage>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let sort = p.sort.unwrap_or(MemberSort::Added);
    let desc = match p.order {
        Some(o) => o == Order::Desc,
        None => sort.is_time(),
    };
    let joined_from = p
        .joined_from
        .as_deref()
        .map(|t| parse_bound("joined_from", t, false))
        .transpose()?;
    let joined_before = p
        .joined_to
        .as_deref()
        .map(|t| parse_bound("joined_to", t, true))
        .transpose()?;
    if let (Some(a), Some(b)) = (joined_from, joined_before)
        && a >= b
    {
        return Err(ApiError::field("joined_to", "must be after joined_from"));
    }
    if let Some(q) = &p.q {
        check_text("q", q)?;
    }
    if let Some(e) = &p.email {
        check_text("email", e)?;
    }
    let after = p
        .cursor
        .as_deref()
        .map(|c| decode_cursor(c, sort, desc))
        .transpose()?;
    let mut query = MemberQuery {
        org_id: org.id,
        view: p.access.unwrap_or_default(),
        role: p.role,
        joined_from,
        joined_before,
        search: p.q.map(|q| q.trim().to_owned()),
        email: p.email.map(|e| e.trim().to_owned()),
        attrs: Vec::new(),
        sort,
        descending: desc,
        after,
        limit: i64::from(limit) + 1,
    };
    let mut tx = state.roster.store.read().await?;
    let schema = Schema::load(&mut tx, org.id).await?;
    for (name, value) in &attrs {
        let v = schema
            .filter_value(name, value)
            .map_err(|e| ApiError::field(&format!("attr.{name}"), e))?;
        query.attrs.push(v);
    }
    let mut rows = store::members::list(&mut tx, &query).await?;
    let ids: Vec<Uuid> = rows.iter().map(|m| m.id).collect();
    let mut values = crate::roster::attributes::maps_for(&mut tx, org.id, &ids).await?;
    tx.rollback().await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = match rows.last() {
        Some(last) if more => Some(encode_cursor(&Cursor {
            s: sort,
            d: desc,
            k: key_text(&sort.key_of(last)),
            i: last.id,
        })),
        _ => None,
    };
    Ok(axum::Json(MemberPage {
        items: rows
            .iter()
            .map(|m| MemberView::from(m).with_attributes(values.remove(&m.id).unwrap_or_default()))
            .collect(),
        next_cursor,
    }))
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub all: i64,
    pub invited: i64,
    pub enrolled: i64,
    pub removed: i64,
    pub cancelled: i64,
    pub disabled: i64,
}

pub async fn counts(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<axum::Json<Counts>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let mut tx = state.roster.store.read().await?;
    let rows = store::members::counts(&mut tx, org.id).await?;
    tx.rollback().await?;
    let get = |a: Access| rows.iter().find(|(x, _)| *x == a).map_or(0, |(_, n)| *n);
    Ok(axum::Json(Counts {
        all: get(Access::Invited) + get(Access::Enrolled),
        invited: get(Access::Invited),
        enrolled: get(Access::Enrolled),
        removed: get(Access::Removed),
        cancelled: get(Access::Cancelled),
        disabled: get(Access::Disabled),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    pub members: Vec<NewMember>,
}

#[derive(Debug, Serialize)]
pub struct AddAnswer {
    pub results: Vec<AddResult>,
}

pub async fn add(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<AddBody>,
) -> Result<axum::Json<AddAnswer>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let results = state
        .roster
        .add_members(org.id, &principal.actor(), body.members)
        .await?;
    state.wake_delivery();
    Ok(axum::Json(AddAnswer { results }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdsBody {
    pub member_ids: Vec<Uuid>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendBody {
    #[serde(default)]
    pub member_ids: Option<Vec<Uuid>>,
    /// Every invited member of the org instead of a list.
    #[serde(default)]
    pub all_invited: bool,
}

#[derive(Debug, Serialize)]
pub struct ResendAnswer {
    pub sent: usize,
    pub skipped: usize,
    /// How many were skipped, by outcome (`skipped_cooldown`, `skipped_enrolled`, …).
    pub skipped_by_reason: std::collections::BTreeMap<String, usize>,
    /// One entry per member named; absent for `all_invited` (the counts say it all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<ResendResult>>,
}

pub async fn resend(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<ResendBody>,
) -> Result<axum::Json<ResendAnswer>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let results = match (body.all_invited, body.member_ids) {
        (true, None) => {
            state
                .roster
                .resend_all_invited(org.id, &principal.actor())
                .await?
        }
        (false, Some(ids)) => {
            state
                .roster
                .resend_invites(org.id, &principal.actor(), &ids)
                .await?
        }
        (true, Some(_)) => {
            return Err(ApiError::field(
                "all_invited",
                "give either `member_ids` or `\"all_invited\": true`, not both",
            ));
        }
        (false, None) => {
            return Err(ApiError::field(
                "member_ids",
                "required (or `\"all_invited\": true` to resend to every invited member)",
            ));
        }
    };
    state.wake_delivery();
    let mut skipped_by_reason = std::collections::BTreeMap::new();
    let mut sent = 0;
    for r in &results {
        if r.outcome == ResendOutcome::Sent {
            sent += 1;
        } else {
            *skipped_by_reason
                .entry(r.outcome.as_str().to_owned())
                .or_insert(0) += 1;
        }
    }
    Ok(axum::Json(ResendAnswer {
        sent,
        skipped: results.len() - sent,
        skipped_by_reason,
        results: (!body.all_invited).then_some(results),
    }))
}

#[derive(Debug, Serialize)]
pub struct RemoveAnswer {
    pub removed: usize,
    pub skipped: usize,
    pub results: Vec<RemoveResult>,
}

pub async fn remove_many(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<IdsBody>,
) -> Result<axum::Json<RemoveAnswer>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let results = state
        .roster
        .remove_members(org.id, &principal.actor(), &body.member_ids)
        .await?;
    let removed = results
        .iter()
        .filter(|r| r.outcome == RemoveOutcome::Removed)
        .count();
    Ok(axum::Json(RemoveAnswer {
        removed,
        skipped: results.len() - removed,
        results,
    }))
}

#[derive(Debug, Serialize)]
pub struct AccessAnswer {
    pub changed: usize,
    pub skipped: usize,
    pub results: Vec<AccessResult>,
}

async fn change_access(
    state: AppState,
    principal: Principal,
    slug: String,
    ids: Vec<Uuid>,
    change: AccessChange,
) -> Result<axum::Json<AccessAnswer>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let results = state
        .roster
        .change_access(org.id, &principal.actor(), &ids, change)
        .await?;
    let changed = results
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                AccessOutcome::Cancelled | AccessOutcome::Disabled | AccessOutcome::Enabled
            )
        })
        .count();
    Ok(axum::Json(AccessAnswer {
        changed,
        skipped: results.len() - changed,
        results,
    }))
}

/// `POST …/members/cancel-invitations`: pending invitations become `cancelled`.
pub async fn cancel_invitations(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<IdsBody>,
) -> Result<axum::Json<AccessAnswer>, ApiError> {
    change_access(
        state,
        principal,
        slug,
        body.member_ids,
        AccessChange::Cancel,
    )
    .await
}

/// `POST …/members/disable`: enrolled members lose access until enabled.
pub async fn disable(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<IdsBody>,
) -> Result<axum::Json<AccessAnswer>, ApiError> {
    change_access(
        state,
        principal,
        slug,
        body.member_ids,
        AccessChange::Disable,
    )
    .await
}

/// `POST …/members/enable`: disabled members are enrolled again.
pub async fn enable(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<IdsBody>,
) -> Result<axum::Json<AccessAnswer>, ApiError> {
    change_access(
        state,
        principal,
        slug,
        body.member_ids,
        AccessChange::Enable,
    )
    .await
}

pub async fn remove_one(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<axum::Json<MemberView>, ApiError> {
    remove_and_show(state, principal, slug, id, None).await
}

/// The body of `POST …/members/{id}/remove`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveOneBody {
    /// Where the former member can still be reached; shown while they are removed.
    pub contact_email: Option<String>,
}

/// `POST …/members/{id}/remove`: removes one member, recording an alternative contact email.
pub async fn remove_one_reachable(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
    Json(body): Json<RemoveOneBody>,
) -> Result<axum::Json<MemberView>, ApiError> {
    remove_and_show(state, principal, slug, id, body.contact_email).await
}

async fn remove_and_show(
    state: AppState,
    principal: Principal,
    slug: String,
    id: Uuid,
    contact_email: Option<String>,
) -> Result<axum::Json<MemberView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let results = state
        .roster
        .remove_members_reachable(org.id, &principal.actor(), &[id], contact_email.as_deref())
        .await?;
    match results.first().map(|r| r.outcome) {
        Some(RemoveOutcome::SkippedNotFound) | None => Err(ApiError::not_found("member")),
        Some(RemoveOutcome::SkippedOwner) => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "owner_cannot_be_removed",
            "the owner cannot be removed; transfer ownership to an admin first",
        )),
        Some(
            RemoveOutcome::Removed
            | RemoveOutcome::SkippedAlreadyRemoved
            | RemoveOutcome::SkippedCancelled,
        ) => {
            let m = state.roster.member(org.id, id).await?;
            Ok(axum::Json(MemberView::from(&m)))
        }
    }
}

pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
    Json(body): Json<MemberPatch>,
) -> Result<axum::Json<MemberView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let m = state
        .roster
        .update_member(org.id, &principal.actor(), id, body)
        .await?;
    let values = state.roster.member_attributes(org.id, id).await?;
    Ok(axum::Json(MemberView::from(&m).with_attributes(values)))
}

pub async fn activity(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<axum::Json<MemberView>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let m = state
        .roster
        .record_activity(org.id, &principal.actor(), id)
        .await?;
    Ok(axum::Json(MemberView::from(&m)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    pub member_id: Uuid,
}

#[derive(Debug, Serialize)]
pub struct TransferAnswer {
    pub owner: MemberView,
    pub previous_owner: Option<MemberView>,
}

pub async fn transfer_ownership(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(body): Json<TransferBody>,
) -> Result<axum::Json<TransferAnswer>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    let (owner, previous) = state
        .roster
        .transfer_ownership(org.id, &principal.actor(), body.member_id)
        .await?;
    Ok(axum::Json(TransferAnswer {
        owner: MemberView::from(&owner),
        previous_owner: previous.as_ref().map(MemberView::from),
    }))
}
