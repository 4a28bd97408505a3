//! `/Users`: members as SCIM Users.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::error::ScimError;
use super::filter::{self, CompValue, Filter, Op};
use super::list::{ListQuery, list_response};
use super::resource::{self, UserWrite};
use super::schema::Rules;
use super::{ScimBody, ScimClient, base_url, if_match, not_modified, read_json, scim_response};
use crate::domain::Member;
use crate::roster::ProvisionedUser;
use crate::store::members::{ScimCondition, ScimOrder};
use crate::store::{self, like_contains};
use crate::web::AppState;

fn provisioned(w: UserWrite) -> ProvisionedUser {
    ProvisionedUser {
        user_name: w.user_name,
        email: w.email,
        given_name: w.given_name,
        family_name: w.family_name,
        display_name: w.display_name,
        active: w.active,
        external_id: w.external_id,
        phones: w.phones,
        data: w.data,
        attributes: w.attributes,
    }
}

fn parse_id(id: &str) -> Result<Uuid, ScimError> {
    Uuid::try_parse(id).map_err(|_| ScimError::not_found(format!("no User with id `{id}`")))
}

/// Narrows a filter to what SQL can check with indexes; `exact` when SQL checks all of it.
fn condition(f: &Filter) -> (ScimCondition, bool) {
    let core = |p: &filter::AttrPath| p.urn.as_deref().is_none_or(filter::is_core_urn);
    match f {
        Filter::Compare(p, Op::Eq, CompValue::Str(v)) if core(p) && p.is("userName", None) => {
            (ScimCondition::UserNameEq(v.clone()), true)
        }
        Filter::Compare(p, op @ (Op::Sw | Op::Co | Op::Ew), CompValue::Str(v))
            if core(p) && p.is("userName", None) =>
        {
            let inner = like_contains(&v.to_lowercase());
            let inner = &inner[1..inner.len() - 1];
            let pat = match op {
                Op::Sw => format!("{inner}%"),
                Op::Ew => format!("%{inner}"),
                _ => format!("%{inner}%"),
            };
            (ScimCondition::UserNameLike(pat), true)
        }
        Filter::Compare(p, Op::Eq, CompValue::Str(v)) if core(p) && p.is("externalId", None) => {
            (ScimCondition::ExternalIdEq(v.clone()), true)
        }
        Filter::Compare(p, Op::Eq, CompValue::Str(v)) if core(p) && p.is("id", None) => {
            match Uuid::try_parse(v) {
                Ok(id) => (ScimCondition::IdEq(id), true),
                Err(_) => (ScimCondition::None, true),
            }
        }
        Filter::Compare(p, Op::Eq | Op::Co | Op::Sw | Op::Ew, CompValue::Str(v))
            if kept_in_document(p) =>
        {
            match data_pattern(v) {
                Some(pat) => (ScimCondition::DataLike(pat), false),
                None => (ScimCondition::All, false),
            }
        }
        Filter::And(a, b) => {
            let (ca, ea) = condition(a);
            let (cb, eb) = condition(b);
            let c = match (ca, cb) {
                (ScimCondition::All, c) | (c, ScimCondition::All) => c,
                (a, b) => ScimCondition::And(Box::new(a), Box::new(b)),
            };
            (c, ea && eb)
        }
        Filter::Or(a, b) => {
            let (ca, ea) = condition(a);
            let (cb, eb) = condition(b);
            match (ca, cb) {
                (ScimCondition::All, _) | (_, ScimCondition::All) => (ScimCondition::All, false),
                (a, b) => (ScimCondition::Or(Box::new(a), Box::new(b)), ea && eb),
            }
        }
        _ => (ScimCondition::All, false),
    }
}

/// Whether an attribute is rendered only from the stored document (`scim_data`), not from a
/// column: then a string it holds appears, JSON-escaped, in the stored text.
fn kept_in_document(p: &filter::AttrPath) -> bool {
    const FROM_COLUMNS: [&str; 11] = [
        "id",
        "userName",
        "externalId",
        "active",
        "name",
        "displayName",
        "emails",
        "groups",
        "meta",
        "schemas",
        // Kept in their own table (`store::phones`).
        "phoneNumbers",
    ];
    let core = p.urn.as_deref().is_none_or(filter::is_core_urn);
    // The org's attributes live in their own table too (`store::attributes`).
    if p.urn
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case(super::schema::ORG_USER))
    {
        return false;
    }
    !core || !FROM_COLUMNS.iter().any(|c| p.attr.eq_ignore_ascii_case(c))
}

/// A `LIKE` pattern matching every stored document whose text holds `needle` (JSON-escaped) in
/// any case: a superset of the users the comparison (`eq`, `co`, `sw`, `ew`, any case) can
/// match. Only for ASCII needles, where both databases fold case as Rust does; `i` and `k`
/// match any one character, as `İ` (U+0130) and the Kelvin sign (U+212A) lowercase to them.
fn data_pattern(needle: &str) -> Option<String> {
    if !needle.is_ascii() || needle.is_empty() {
        return None;
    }
    let escaped = serde_json::to_string(&needle.to_ascii_lowercase()).ok()?;
    let inner = escaped.get(1..escaped.len() - 1)?;
    let mut pat = String::with_capacity(inner.len() + 2);
    pat.push('%');
    for c in inner.chars() {
        match c {
            'i' | 'k' => pat.push('_'),
            '%' | '_' | '\\' => {
                pat.push('\\');
                pat.push(c);
            }
            c => pat.push(c),
        }
    }
    pat.push('%');
    Some(pat)
}

fn too_many(n: i64, budget: usize) -> ScimError {
    ScimError::new(
        StatusCode::BAD_REQUEST,
        Some("tooMany"),
        format!(
            "this filter or sortBy would examine {n} users in memory, more than the {budget} \
             allowed (scim.filter_budget); narrow it with userName, externalId or id"
        ),
    )
}

fn sql_order(path: &filter::AttrPath) -> Option<ScimOrder> {
    if path.urn.as_deref().is_some_and(|u| !filter::is_core_urn(u)) {
        return None;
    }
    if path.is("userName", None) {
        Some(ScimOrder::UserName)
    } else if path.is("id", None) {
        Some(ScimOrder::Id)
    } else if path.is("meta", Some("created")) {
        Some(ScimOrder::Created)
    } else if path.is("meta", Some("lastModified")) {
        Some(ScimOrder::LastModified)
    } else {
        None
    }
}

async fn render_many(
    state: &AppState,
    org_id: Uuid,
    members: &[Member],
) -> Result<Vec<Value>, ScimError> {
    let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
    let mut tx = state.roster.store.read().await?;
    let memberships = store::groups::groups_of(&mut tx, org_id, &ids).await?;
    let phones = store::phones::phones_for(&mut tx, org_id, &ids).await?;
    let attrs = crate::roster::attributes::typed_for(&mut tx, org_id, &ids).await?;
    tx.rollback().await?;
    let mut by_member: HashMap<Uuid, Vec<(Uuid, String)>> = HashMap::new();
    for (m, g, name) in memberships {
        by_member.entry(m).or_default().push((g, name));
    }
    let base = base_url(state);
    Ok(members
        .iter()
        .map(|m| {
            resource::render_user(
                m,
                by_member.get(&m.id).map(Vec::as_slice).unwrap_or(&[]),
                phones.get(&m.id).map(Vec::as_slice).unwrap_or(&[]),
                attrs.get(&m.id).unwrap_or(&Vec::new()),
                &base,
            )
        })
        .collect())
}

pub async fn render_one(state: &AppState, m: &Member) -> Result<Value, ScimError> {
    Ok(render_many(state, m.org_id, std::slice::from_ref(m))
        .await?
        .remove(0))
}

/// Every user matching the query's filter, rendered (for in-memory paging and root search).
pub async fn filtered_docs(
    state: &AppState,
    client: &ScimClient,
    q: &ListQuery,
) -> Result<Vec<Value>, ScimError> {
    let (cond, _) = q
        .filter
        .as_ref()
        .map(condition)
        .unwrap_or((ScimCondition::All, true));
    let budget = state.config.scim.filter_budget;
    let mut tx = state.roster.store.read().await?;
    let n = store::members::scim_count(&mut tx, client.org_id, &cond).await?;
    if n > i64::try_from(budget).unwrap_or(i64::MAX) {
        tx.rollback().await?;
        return Err(too_many(n, budget));
    }
    let members = store::members::scim_all(&mut tx, client.org_id, &cond).await?;
    tx.rollback().await?;
    let docs = render_many(state, client.org_id, &members).await?;
    let Some(f) = q.filter.clone() else {
        return Ok(docs);
    };
    // Evaluating is CPU work on up to `filter_budget` documents: off the async threads.
    tokio::task::spawn_blocking(move || {
        docs.into_iter()
            .filter(|d| filter::matches(&f, d, &Rules))
            .collect()
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "SCIM filter evaluation failed");
        ScimError::internal()
    })
}

async fn run_query(
    state: &AppState,
    client: &ScimClient,
    q: &ListQuery,
) -> Result<Value, ScimError> {
    let (cond, exact) = q
        .filter
        .as_ref()
        .map(condition)
        .unwrap_or((ScimCondition::All, true));
    let order = match &q.sort_by {
        None => Some(ScimOrder::Id),
        Some(p) => sql_order(p),
    };
    if let (true, Some(order)) = (exact, order) {
        // SQL filters, counts, orders and pages.
        let mut tx = state.roster.store.read().await?;
        let (total, members) = store::members::scim_page(
            &mut tx,
            client.org_id,
            &cond,
            order,
            q.descending,
            q.start_index - 1,
            q.count,
        )
        .await?;
        tx.rollback().await?;
        let docs = render_many(state, client.org_id, &members).await?;
        let page = docs
            .into_iter()
            .map(|d| resource::project(d, &q.attributes, &q.excluded))
            .collect();
        return Ok(list_response(total, q.start_index, page));
    }
    let docs = filtered_docs(state, client, q).await?;
    let (total, page) = super::list::page_off_thread(docs, q).await?;
    Ok(list_response(total, q.start_index, page))
}

pub async fn list(
    State(state): State<AppState>,
    client: ScimClient,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let q = ListQuery::from_query(&params)?;
    Ok(scim_response(
        StatusCode::OK,
        &run_query(&state, &client, &q).await?,
    ))
}

pub async fn search(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let q = ListQuery::from_search(&read_json(&body)?)?;
    Ok(scim_response(
        StatusCode::OK,
        &run_query(&state, &client, &q).await?,
    ))
}

async fn load(state: &AppState, client: &ScimClient, id: Uuid) -> Result<Member, ScimError> {
    let mut tx = state.roster.store.read().await?;
    let m = store::members::by_id(&mut tx, client.org_id, id, false).await?;
    tx.rollback().await?;
    m.filter(|m| !m.scim_deleted)
        .ok_or_else(|| ScimError::not_found(format!("no User with id `{id}`")))
}

fn projection(params: &HashMap<String, String>) -> Result<(Vec<String>, Vec<String>), ScimError> {
    let q = ListQuery::from_query(params)?;
    Ok((q.attributes, q.excluded))
}

pub async fn get_one(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let m = load(&state, &client, parse_id(&id)?).await?;
    if not_modified(&headers, m.version) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let (attrs, excluded) = projection(&params)?;
    let doc = render_one(&state, &m).await?;
    Ok(scim_response(
        StatusCode::OK,
        &resource::project(doc, &attrs, &excluded),
    ))
}

pub async fn create_doc(
    state: &AppState,
    client: &ScimClient,
    body: &Value,
) -> Result<Value, ScimError> {
    let mut w = resource::read_user(body)?;
    if w.active.is_none() {
        // A new user is active unless it says otherwise.
        w.active = Some(true);
        if let Some(o) = w.data.as_object_mut() {
            resource::remove_ci(o, "active");
        }
    }
    let m = state
        .roster
        .scim_create_user(client.org_id, &client.actor(), provisioned(w))
        .await?;
    state.wake_delivery();
    render_one(state, &m).await
}

pub async fn create(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let doc = create_doc(&state, &client, &read_json(&body)?).await?;
    Ok(scim_response(StatusCode::CREATED, &doc))
}

pub async fn replace_doc(
    state: &AppState,
    client: &ScimClient,
    id: &str,
    body: &Value,
    version: Option<i64>,
) -> Result<Value, ScimError> {
    let id = parse_id(id)?;
    let w = resource::read_user(body)?;
    let base = base_url(state);
    let m = state
        .roster
        .scim_update_user(
            client.org_id,
            &client.actor(),
            id,
            version,
            |m, groups, phones, attrs| {
                let current = resource::render_user(m, groups, phones, attrs, &base);
                resource::check_put_read_only(&current, body)?;
                Ok::<_, ScimError>(provisioned(w))
            },
        )
        .await?;
    state.wake_delivery();
    render_one(state, &m).await
}

pub async fn replace(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let version = if_match(&headers)?;
    let doc = replace_doc(&state, &client, &id, &read_json(&body)?, version).await?;
    Ok(scim_response(StatusCode::OK, &doc))
}

pub async fn patch_doc(
    state: &AppState,
    client: &ScimClient,
    id: &str,
    body: &Value,
    version: Option<i64>,
) -> Result<Value, ScimError> {
    let ops = super::patch::parse(body)?;
    let uid = parse_id(id)?;
    let base = base_url(state);
    // The operations apply to the user as it is when the write holds its lock, so concurrent
    // PATCHes all land; only an If-Match the client sent can refuse one.
    let m = state
        .roster
        .scim_update_user(
            client.org_id,
            &client.actor(),
            uid,
            version,
            |m, groups, phones, attrs| {
                let before = resource::render_user(m, groups, phones, attrs, &base);
                let mut doc = before.clone();
                super::patch::apply(&mut doc, &ops)?;
                resource::check_patch_read_only(&before, &doc)?;
                Ok::<_, ScimError>(provisioned(resource::read_user(&doc)?))
            },
        )
        .await
        .map_err(|e| not_found_as_user(e, uid))?;
    state.wake_delivery();
    render_one(state, &m).await
}

fn not_found_as_user(e: ScimError, id: Uuid) -> ScimError {
    if e.status == StatusCode::NOT_FOUND {
        ScimError::not_found(format!("no User with id `{id}`"))
    } else {
        e
    }
}

pub async fn patch(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let version = if_match(&headers)?;
    let doc = patch_doc(&state, &client, &id, &read_json(&body)?, version).await?;
    Ok(scim_response(StatusCode::OK, &doc))
}

pub async fn delete_doc(
    state: &AppState,
    client: &ScimClient,
    id: &str,
    version: Option<i64>,
) -> Result<(), ScimError> {
    let id = parse_id(id)?;
    state
        .roster
        .scim_delete_user(client.org_id, &client.actor(), id, version)
        .await?;
    Ok(())
}

pub async fn delete(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let version = if_match(&headers)?;
    delete_doc(&state, &client, &id, version).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
