//! The operator's list of orgs and an org's members page: views with counts, search, filters,
//! sort, keyset paging, select one, many or all in the view, resend invitations or remove
//! (through the same `Roster` operations as the API), and the CSV export. In an org an
//! integration manages, a banner names it and the remove control says why it is unavailable.

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::form::FormData;
use super::session::{SignedIn, csrf_refused};
use super::{Refusal, render};
use crate::domain::{Access, AccessView, ActivityKind, Member, Role};
use crate::roster::{RemoveOutcome, ResendOutcome, export};
use crate::store::members::{MemberQuery, MemberSort, SortValue};
use crate::store::orgs::Org;
use crate::store::{self};
use crate::web::AppState;

const PAGE: i64 = 50;
/// At most this many members are acted on through "all in this view" at once.
const MAX_ALL: usize = 1000;

#[derive(Template)]
#[template(path = "console/orgs.html")]
struct OrgsPage {
    csrf: String,
    orgs: Vec<Org>,
}

pub(crate) async fn orgs(State(state): State<AppState>, session: SignedIn) -> Response {
    if let Some(org) = &session.0.org {
        return Redirect::to(&format!("/console/orgs/{}/members", org.slug)).into_response();
    }
    match state.roster.orgs().await {
        Ok(orgs) => render(
            StatusCode::OK,
            &OrgsPage {
                csrf: session.0.csrf.clone(),
                orgs,
            },
        ),
        Err(e) => super::refusal_page("Error", &e.into()),
    }
}

/// A page cursor: the sort it belongs to and the last row's `(key, id)`.
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

fn decode_cursor(text: &str, sort: MemberSort, desc: bool) -> Option<(SortValue, Uuid)> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let c: Cursor = serde_json::from_slice(&bytes).ok()?;
    if c.s != sort || c.d != desc || c.k.chars().any(char::is_control) {
        return None;
    }
    let key = if sort.is_time() {
        SortValue::Time(DateTime::parse_from_rfc3339(&c.k).ok()?.with_timezone(&Utc))
    } else if matches!(sort, MemberSort::Points | MemberSort::TotalPaid) {
        SortValue::Int(c.k.parse().ok()?)
    } else {
        SortValue::Text(c.k)
    };
    Some((key, c.i))
}

/// The view, filters and sort of the members page, as its query string states them.
#[derive(Debug, Clone, Default)]
struct Filters {
    view: String,
    q: String,
    role: String,
    email: String,
    joined_from: String,
    joined_to: String,
    sort: String,
    order: String,
}

const VIEWS: &[(&str, &str)] = &[
    ("all", "All"),
    ("invited", "Invited"),
    ("enrolled", "Enrolled"),
    ("disabled", "Disabled"),
    ("cancelled", "Cancelled"),
    ("removed", "Removed"),
];

const SORTS: &[(&str, &str)] = &[
    ("added", "Added"),
    ("name", "Name"),
    ("email", "Email"),
    ("activity", "Activity"),
];

impl Filters {
    fn read(f: &FormData) -> Self {
        let t = |n: &str| f.text(n).unwrap_or_default().chars().take(320).collect();
        Filters {
            view: t("view"),
            q: t("q"),
            role: t("role"),
            email: t("email"),
            joined_from: t("joined_from"),
            joined_to: t("joined_to"),
            sort: t("sort"),
            order: t("order"),
        }
    }

    /// The query string that states these filters (without a cursor).
    fn query(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("view", &self.view),
            ("q", &self.q),
            ("role", &self.role),
            ("email", &self.email),
            ("joined_from", &self.joined_from),
            ("joined_to", &self.joined_to),
            ("sort", &self.sort),
            ("order", &self.order),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        s.finish()
    }

    fn view(&self) -> Result<AccessView, Refusal> {
        Ok(match self.view.as_str() {
            "" | "all" => AccessView::All,
            "invited" => AccessView::Invited,
            "enrolled" => AccessView::Enrolled,
            "removed" => AccessView::Removed,
            "cancelled" => AccessView::Cancelled,
            "disabled" => AccessView::Disabled,
            _ => return Err(Refusal::on("view", "no such view")),
        })
    }

    fn sort(&self) -> Result<(MemberSort, bool), Refusal> {
        let sort = match self.sort.as_str() {
            "" | "added" => MemberSort::Added,
            "name" => MemberSort::Name,
            "email" => MemberSort::Email,
            "activity" => MemberSort::Activity,
            _ => {
                return Err(Refusal::on(
                    "sort",
                    "sort by added, name, email or activity",
                ));
            }
        };
        let desc = match self.order.as_str() {
            "" => sort.is_time(),
            "desc" => true,
            "asc" => false,
            _ => return Err(Refusal::on("order", "ascending or descending")),
        };
        Ok((sort, desc))
    }

    /// The store query for these filters; each bad value refused with its field.
    fn to_query(&self, org_id: Uuid) -> Result<MemberQuery, Refusal> {
        let role = match self.role.as_str() {
            "" => None,
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => return Err(Refusal::on("role", "owner, admin or member")),
        };
        let date = |field: &str, text: &str, end: bool| -> Result<Option<DateTime<Utc>>, Refusal> {
            if text.is_empty() {
                return Ok(None);
            }
            let d = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| Refusal::on(field, "a date like 2026-01-31"))?;
            let d = if end { d.succ_opt() } else { Some(d) };
            Ok(d.and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc()))
        };
        let joined_from = date("joined_from", &self.joined_from, false)?;
        let joined_before = date("joined_to", &self.joined_to, true)?;
        if let (Some(a), Some(b)) = (joined_from, joined_before)
            && a >= b
        {
            return Err(Refusal::on("joined_to", "must be after the first date"));
        }
        for (field, v) in [("q", &self.q), ("email", &self.email)] {
            if v.chars().any(char::is_control) {
                return Err(Refusal::on(field, "must not contain control characters"));
            }
        }
        let (sort, descending) = self.sort()?;
        Ok(MemberQuery {
            org_id,
            view: self.view()?,
            role,
            joined_from,
            joined_before,
            search: (!self.q.is_empty()).then(|| self.q.clone()),
            email: (!self.email.is_empty()).then(|| self.email.clone()),
            attrs: Vec::new(),
            sort,
            descending,
            after: None,
            limit: PAGE + 1,
        })
    }
}

/// One row of the members table.
struct Row {
    id: Uuid,
    name: String,
    member_email: String,
    login_email: Option<String>,
    access: String,
    role: String,
    activity: String,
    added: String,
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

impl From<&Member> for Row {
    fn from(m: &Member) -> Self {
        let a = m.activity();
        let what = match a.kind {
            ActivityKind::InviteSent => "invited",
            ActivityKind::LastActive => "active",
            ActivityKind::Removed => "removed",
            ActivityKind::Cancelled => "cancelled",
            ActivityKind::Disabled => "disabled",
        };
        Row {
            id: m.id,
            name: m.name(),
            member_email: m.member_email.clone(),
            login_email: m.distinct_login_email().map(str::to_owned),
            access: m.access.to_string(),
            role: m.role.as_str().to_owned(),
            activity: format!("{what} {}", day(a.at)),
            added: day(m.added_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/members.html")]
struct MembersPage {
    csrf: String,
    operator: bool,
    org: Org,
    integration: Option<String>,
    filters: Filters,
    /// (value, label, count) of each view.
    views: Vec<(&'static str, &'static str, i64)>,
    sorts: &'static [(&'static str, &'static str)],
    rows: Vec<Row>,
    /// The query string of this view (without a cursor).
    query: String,
    next: Option<String>,
    first_page: bool,
    /// What the last action did (from the redirect after it).
    notice: Option<String>,
    refusal: Option<Refusal>,
}

impl MembersPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.refusal.as_ref().and_then(|r| r.field(field))
    }

    fn action_error(&self) -> Option<&str> {
        self.refusal
            .as_ref()
            .filter(|r| r.fields.is_empty())
            .map(|r| r.message.as_str())
    }

    fn current_view(&self) -> &str {
        if self.filters.view.is_empty() {
            "all"
        } else {
            &self.filters.view
        }
    }

    fn view_count(&self) -> i64 {
        self.views
            .iter()
            .find(|(v, _, _)| *v == self.current_view())
            .map_or(0, |(_, _, n)| *n)
    }

    fn view_link(&self, view: &str) -> String {
        let mut f = self.filters.clone();
        f.view = view.to_owned();
        format!("?{}", f.query())
    }
}

async fn counts(
    state: &AppState,
    org_id: Uuid,
) -> Result<Vec<(&'static str, &'static str, i64)>, Refusal> {
    let mut tx = state
        .roster
        .store
        .read()
        .await
        .map_err(|e| Refusal::from(crate::roster::RosterError::from(e)))?;
    let rows = store::members::counts(&mut tx, org_id)
        .await
        .map_err(|e| Refusal::from(crate::roster::RosterError::from(e)))?;
    let _ = tx.rollback().await;
    let get = |a: Access| rows.iter().find(|(x, _)| *x == a).map_or(0, |(_, n)| *n);
    Ok(VIEWS
        .iter()
        .map(|(v, label)| {
            let n = match *v {
                "all" => get(Access::Invited) + get(Access::Enrolled),
                "invited" => get(Access::Invited),
                "enrolled" => get(Access::Enrolled),
                "disabled" => get(Access::Disabled),
                "cancelled" => get(Access::Cancelled),
                _ => get(Access::Removed),
            };
            (*v, *label, n)
        })
        .collect())
}

/// The members page for `params`, with a notice or a refusal to show.
async fn page(
    state: &AppState,
    session: &SignedIn,
    org: Org,
    params: &FormData,
    notice: Option<String>,
    refusal: Option<Refusal>,
) -> Response {
    let filters = Filters::read(params);
    let views = match counts(state, org.id).await {
        Ok(v) => v,
        Err(r) => return super::refusal_page("Error", &r),
    };
    let mut page = MembersPage {
        csrf: session.0.csrf.clone(),
        operator: session.0.is_operator(),
        integration: org.integration(),
        org,
        query: filters.query(),
        filters: filters.clone(),
        views,
        sorts: SORTS,
        rows: Vec::new(),
        next: None,
        first_page: true,
        notice,
        refusal,
    };
    let mut query = match filters.to_query(page.org.id) {
        Ok(q) => q,
        Err(r) => {
            let status = r.status();
            page.refusal = Some(r);
            return render(status, &page);
        }
    };
    if let Some(c) = params.text("cursor") {
        match decode_cursor(c, query.sort, query.descending) {
            Some(after) => {
                query.after = Some(after);
                page.first_page = false;
            }
            None => {
                let r = Refusal::on(
                    "cursor",
                    "this page link is out of date; start again from the first page",
                );
                page.refusal = Some(r);
                return render(StatusCode::BAD_REQUEST, &page);
            }
        }
    }
    let rows = async {
        let mut tx = state.roster.store.read().await?;
        let rows = store::members::list(&mut tx, &query).await?;
        tx.rollback().await?;
        Ok::<_, store::StoreError>(rows)
    }
    .await;
    let mut rows = match rows {
        Ok(r) => r,
        Err(e) => return super::refusal_page("Error", &crate::roster::RosterError::from(e).into()),
    };
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    if more && let Some(last) = rows.last() {
        let c = Cursor {
            s: query.sort,
            d: query.descending,
            k: key_text(&query.sort.key_of(last)),
            i: last.id,
        };
        let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap_or_default());
        let mut s = url::form_urlencoded::Serializer::new(page.query.clone());
        s.append_pair("cursor", &c);
        page.next = Some(s.finish());
    }
    page.rows = rows.iter().map(Row::from).collect();
    let status = page
        .refusal
        .as_ref()
        .map_or(StatusCode::OK, Refusal::status);
    render(status, &page)
}

pub(crate) async fn list(
    State(state): State<AppState>,
    session: SignedIn,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let org = match session.org(&state, &slug).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let params = FormData::parse(raw.unwrap_or_default().as_bytes());
    // A redirect after an action says what it did in numbers only.
    let n = |k: &str| params.get(k).and_then(|v| v.parse::<usize>().ok());
    let notice = match (params.get("done"), n("n"), n("skipped")) {
        (Some("resend"), Some(sent), Some(skipped)) => Some(format!(
            "Invitations resent: {sent} sent, {skipped} skipped (only invited members get an \
             email, and not twice within the cool-down)."
        )),
        (Some("remove"), Some(removed), Some(skipped)) => Some(format!(
            "Removed {removed} member(s); {skipped} skipped (the owner, or already gone)."
        )),
        _ => None,
    };
    page(&state, &session, org, &params, notice, None).await
}

/// The members an action names: the ticked rows, or every member in the view.
async fn selected(state: &AppState, org: &Org, form: &FormData) -> Result<Vec<Uuid>, Refusal> {
    if form.get("all_in_view") == Some("1") {
        let filters = Filters::read(form);
        let mut query = filters.to_query(org.id)?;
        query.limit = 500;
        let mut ids = Vec::new();
        loop {
            let rows = async {
                let mut tx = state.roster.store.read().await?;
                let rows = store::members::list(&mut tx, &query).await?;
                tx.rollback().await?;
                Ok::<_, store::StoreError>(rows)
            }
            .await
            .map_err(|e| Refusal::from(crate::roster::RosterError::from(e)))?;
            let Some(last) = rows.last() else { break };
            query.after = Some((query.sort.key_of(last), last.id));
            let n = rows.len();
            ids.extend(rows.iter().map(|m| m.id));
            if ids.len() > MAX_ALL {
                return Err(Refusal::on(
                    "member",
                    format!(
                        "this view holds more than {MAX_ALL} members; narrow it with a search or \
                         filter"
                    ),
                ));
            }
            if (n as i64) < query.limit {
                break;
            }
        }
        if ids.is_empty() {
            return Err(Refusal::on("member", "there is nobody in this view"));
        }
        return Ok(ids);
    }
    let mut ids = Vec::new();
    for v in form.all("member") {
        match Uuid::try_parse(v) {
            Ok(id) => ids.push(id),
            Err(_) => return Err(Refusal::on("member", "not a member of this list")),
        }
    }
    if ids.is_empty() {
        return Err(Refusal::on("member", "select at least one member"));
    }
    Ok(ids)
}

/// After an action: back to the same view, saying what happened.
fn back(slug: &str, form: &FormData, done: &str, n: usize, skipped: usize) -> Response {
    let mut s = url::form_urlencoded::Serializer::new(Filters::read(form).query());
    s.append_pair("done", done);
    s.append_pair("n", &n.to_string());
    s.append_pair("skipped", &skipped.to_string());
    Redirect::to(&format!("/console/orgs/{slug}/members?{}", s.finish())).into_response()
}

pub(crate) async fn resend(
    State(state): State<AppState>,
    session: SignedIn,
    Path(slug): Path<String>,
    body: Bytes,
) -> Response {
    let form = FormData::from_body(&body);
    if !session.csrf_ok(&form) {
        return csrf_refused();
    }
    let org = match session.org(&state, &slug).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let ids = match selected(&state, &org, &form).await {
        Ok(ids) => ids,
        Err(r) => return page(&state, &session, org, &form, None, Some(r)).await,
    };
    match state
        .roster
        .resend_invites(org.id, &session.0.actor(), &ids)
        .await
    {
        Ok(results) => {
            state.wake_delivery();
            let sent = results
                .iter()
                .filter(|r| r.outcome == ResendOutcome::Sent)
                .count();
            back(&org.slug, &form, "resend", sent, results.len() - sent)
        }
        Err(e) => page(&state, &session, org, &form, None, Some(e.into())).await,
    }
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    session: SignedIn,
    Path(slug): Path<String>,
    body: Bytes,
) -> Response {
    let form = FormData::from_body(&body);
    if !session.csrf_ok(&form) {
        return csrf_refused();
    }
    let org = match session.org(&state, &slug).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let ids = match selected(&state, &org, &form).await {
        Ok(ids) => ids,
        Err(r) => return page(&state, &session, org, &form, None, Some(r)).await,
    };
    match state
        .roster
        .remove_members(org.id, &session.0.actor(), &ids)
        .await
    {
        Ok(results) => {
            let removed = results
                .iter()
                .filter(|r| r.outcome == RemoveOutcome::Removed)
                .count();
            back(&org.slug, &form, "remove", removed, results.len() - removed)
        }
        Err(e) => page(&state, &session, org, &form, None, Some(e.into())).await,
    }
}

pub(crate) async fn export(
    State(state): State<AppState>,
    session: SignedIn,
    Path(slug): Path<String>,
) -> Response {
    let org = match session.org(&state, &slug).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let csv_name = format!("{}-members.csv", org.slug);
    let body = Body::from_stream(export::stream(
        state.roster.store.clone(),
        org.id,
        &export::ExportOptions::default(),
        &csv_name,
    ));
    let mut res = body.into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-members.csv\"",
        org.slug
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// One line of the member detail's lists (the status trail, the audit entries).
struct Line {
    at: String,
    what: String,
    by: String,
}

fn minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[derive(Template)]
#[template(path = "console/member.html")]
struct MemberPage {
    csrf: String,
    operator: bool,
    org: Org,
    integration: Option<String>,
    row: Row,
    /// (label, value) facts about the member.
    facts: Vec<(&'static str, String)>,
    phones: Vec<String>,
    groups: Vec<String>,
    entitlements: Vec<String>,
    trail: Vec<Line>,
    trail_complete: bool,
    audit: Vec<Line>,
}

pub(crate) async fn detail(
    State(state): State<AppState>,
    session: SignedIn,
    Path((slug, id)): Path<(String, String)>,
) -> Response {
    let org = match session.org(&state, &slug).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let not_found = || {
        super::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such member in this organization.",
        )
    };
    let Ok(id) = Uuid::try_parse(&id) else {
        return not_found();
    };
    let d = match state.roster.member_detail(org.id, id).await {
        Ok(d) => d,
        Err(crate::roster::RosterError::NotFound(_)) => return not_found(),
        Err(e) => return super::refusal_page("Error", &e.into()),
    };
    let m = &d.member;
    let opt = |t: Option<DateTime<Utc>>| t.map(minute).unwrap_or_else(|| "—".into());
    let mut facts = vec![
        ("Member email", m.member_email.clone()),
        (
            "Sign-in address",
            m.distinct_login_email()
                .unwrap_or("same as member email")
                .to_owned(),
        ),
        ("Role", m.role.as_str().to_owned()),
        ("Access", m.access.to_string()),
        ("Added", minute(m.added_at)),
        (
            "Last invitation",
            format!("{} ({} sent)", opt(m.invited_at), m.invite_count),
        ),
        ("Enrolled", opt(m.enrolled_at)),
        ("Last active", opt(m.last_active_at)),
    ];
    if let Some(t) = m.removed_at {
        facts.push(("Removed", minute(t)));
    }
    if let Some(t) = m.disabled_at {
        facts.push(("Disabled", minute(t)));
    }
    if let Some(t) = m.cancelled_at {
        facts.push(("Cancelled", minute(t)));
    }
    for c in &d.claims.sources {
        facts.push((
            "Source link",
            format!(
                "{} ({}){}",
                c.source,
                c.external_id,
                if c.claiming { ", claiming" } else { "" }
            ),
        ));
    }
    if let Some(s) = &d.claims.scim {
        facts.push(("SCIM user", s.user_name.clone()));
    }
    let event = |e: &crate::roster::detail::TrailEvent| {
        serde_json::to_value(e)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
            .unwrap_or_default()
    };
    let page = MemberPage {
        csrf: session.0.csrf.clone(),
        operator: session.0.is_operator(),
        integration: org.integration(),
        row: Row::from(m),
        facts,
        phones: d
            .phones
            .iter()
            .map(|p| match &p.kind {
                Some(k) => format!("{} ({k})", p.value),
                None => p.value.clone(),
            })
            .collect(),
        groups: d.groups.iter().map(|g| g.name.clone()).collect(),
        entitlements: d
            .entitlements
            .iter()
            .map(|e| format!("{} (through {})", e.name, e.group))
            .collect(),
        trail: d
            .trail
            .iter()
            .map(|s| Line {
                at: minute(s.at),
                what: event(&s.event),
                by: s.by.label.clone(),
            })
            .collect(),
        trail_complete: d.trail_complete,
        audit: d
            .recent_audit
            .iter()
            .map(|a| Line {
                at: minute(a.at),
                what: a.action.clone(),
                by: a.actor_label.clone(),
            })
            .collect(),
        org,
    };
    render(StatusCode::OK, &page)
}
