//! `/Groups`: groups inside the org. Membership changes by PATCH add or remove single rows, so
//! they cost the same in a group of ten or of a hundred thousand; such a PATCH answers 204 (the
//! RFC allows it) rather than reading the whole member list back.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::error::ScimError;
use super::filter::{self, CompValue, Filter, Op};
use super::list::{ListQuery, list_response, sort_and_slice};
use super::patch::{OpKind, PatchOp};
use super::resource::{self, GroupWrite};
use super::schema::Rules;
use super::{ScimBody, ScimClient, base_url, if_match, not_modified, read_json, scim_response};
use crate::roster::ProvisionedGroup;
use crate::store::groups::Group;
use crate::store::{self};
use crate::web::AppState;

fn parse_id(id: &str) -> Result<Uuid, ScimError> {
    Uuid::try_parse(id).map_err(|_| ScimError::not_found(format!("no Group with id `{id}`")))
}

fn provisioned(w: &GroupWrite) -> ProvisionedGroup {
    ProvisionedGroup {
        name: w.display_name.clone(),
        external_id: w.external_id.clone(),
        data: w.data.clone(),
    }
}

async fn members_of(state: &AppState, id: Uuid) -> Result<Vec<(Uuid, String)>, ScimError> {
    let mut tx = state.roster.store.read().await?;
    let m = store::groups::members_of(&mut tx, id).await?;
    tx.rollback().await?;
    Ok(m)
}

async fn render(state: &AppState, g: &Group, with_members: bool) -> Result<Value, ScimError> {
    let members = if with_members {
        Some(members_of(state, g.id).await?)
    } else {
        None
    };
    Ok(resource::render_group(
        g,
        members.as_deref(),
        &base_url(state),
    ))
}

fn mentions_members(f: &Filter) -> bool {
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => mentions_members(a) || mentions_members(b),
        Filter::Not(a) => mentions_members(a),
        Filter::Present(p) | Filter::Compare(p, _, _) | Filter::ValuePath(p, _) => {
            p.attr.eq_ignore_ascii_case("members")
        }
    }
}

/// The members of several groups, read in one statement per 500 groups.
async fn members_by_group(
    state: &AppState,
    client: &ScimClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<(Uuid, String)>>, ScimError> {
    let mut by_group: HashMap<Uuid, Vec<(Uuid, String)>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_group);
    }
    let mut tx = state.roster.store.read().await?;
    let rows = store::groups::members_of_groups(&mut tx, client.org_id, ids).await?;
    tx.rollback().await?;
    for (g, m, name) in rows {
        by_group.entry(g).or_default().push((m, name));
    }
    Ok(by_group)
}

/// Renders groups, with their members when `with_members` (read in one batch).
async fn render_all(
    state: &AppState,
    client: &ScimClient,
    groups: &[Group],
    with_members: bool,
) -> Result<Vec<Value>, ScimError> {
    let base = base_url(state);
    let mut members = if with_members {
        let ids: Vec<Uuid> = groups.iter().map(|g| g.id).collect();
        members_by_group(state, client, &ids).await?
    } else {
        HashMap::new()
    };
    Ok(groups
        .iter()
        .map(|g| {
            let m = with_members.then(|| members.remove(&g.id).unwrap_or_default());
            resource::render_group(g, m.as_deref(), &base)
        })
        .collect())
}

/// Every group matching the query's filter, rendered (members read in one batch, and only when
/// the filter or the answer needs them).
pub async fn filtered_docs(
    state: &AppState,
    client: &ScimClient,
    q: &ListQuery,
) -> Result<Vec<Value>, ScimError> {
    let mut tx = state.roster.store.read().await?;
    let groups = store::groups::list(&mut tx, client.org_id).await?;
    tx.rollback().await?;
    let budget = state.config.scim.filter_budget;
    if groups.len() > budget && (q.filter.is_some() || q.sort_by.is_some()) {
        return Err(ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("tooMany"),
            format!(
                "this filter or sortBy would examine {} groups in memory, more than the {budget} \
                 allowed (scim.filter_budget)",
                groups.len()
            ),
        ));
    }
    let filter_members = q.filter.as_ref().is_some_and(mentions_members);
    let docs = render_all(state, client, &groups, filter_members).await?;
    let keep: Vec<bool> = docs
        .iter()
        .map(|d| {
            q.filter
                .as_ref()
                .is_none_or(|f| filter::matches(f, d, &Rules))
        })
        .collect();
    let wants = q.wants("members");
    if filter_members || !wants {
        return Ok(docs
            .into_iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(mut d, _)| {
                if !wants && let Some(o) = d.as_object_mut() {
                    o.remove("members");
                }
                d
            })
            .collect());
    }
    let matched: Vec<Group> = groups
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(g, _)| g)
        .collect();
    render_all(state, client, &matched, true).await
}

async fn run_query(
    state: &AppState,
    client: &ScimClient,
    q: &ListQuery,
) -> Result<Value, ScimError> {
    if q.filter.as_ref().is_some_and(mentions_members) || !q.wants("members") {
        let docs = filtered_docs(state, client, q).await?;
        let (total, page) = super::list::page_off_thread(docs, q).await?;
        return Ok(list_response(total, q.start_index, page));
    }
    // Filter, sort and slice without members; read the members of the page's groups only.
    let plain = ListQuery {
        excluded: vec!["members".into()],
        attributes: Vec::new(),
        ..q.clone()
    };
    let docs = filtered_docs(state, client, &plain).await?;
    let (total, page) = sort_and_slice(docs, q);
    let ids: Vec<Uuid> = page
        .iter()
        .filter_map(|d| d.get("id").and_then(Value::as_str))
        .filter_map(|id| Uuid::try_parse(id).ok())
        .collect();
    let mut members = members_by_group(state, client, &ids).await?;
    let base = base_url(state);
    let page = page
        .into_iter()
        .zip(ids)
        .map(|(mut d, id)| {
            let list = members.remove(&id).unwrap_or_default();
            if let Some(o) = d.as_object_mut() {
                o.insert(
                    "members".into(),
                    resource::render_group_members(&list, &base),
                );
            }
            resource::project(d, &q.attributes, &q.excluded)
        })
        .collect();
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

async fn load(state: &AppState, client: &ScimClient, id: Uuid) -> Result<Group, ScimError> {
    let mut tx = state.roster.store.read().await?;
    let g = store::groups::by_id(&mut tx, client.org_id, id).await?;
    tx.rollback().await?;
    g.ok_or_else(|| ScimError::not_found(format!("no Group with id `{id}`")))
}

pub async fn get_one(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let g = load(&state, &client, parse_id(&id)?).await?;
    if not_modified(&headers, g.version) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let q = ListQuery::from_query(&params)?;
    let doc = render(&state, &g, q.wants("members")).await?;
    Ok(scim_response(
        StatusCode::OK,
        &resource::project(doc, &q.attributes, &q.excluded),
    ))
}

pub async fn create_doc(
    state: &AppState,
    client: &ScimClient,
    body: &Value,
) -> Result<Value, ScimError> {
    let w = resource::read_group(body)?;
    let g = state
        .roster
        .scim_create_group(
            client.org_id,
            &client.actor(),
            provisioned(&w),
            w.members.clone().unwrap_or_default(),
        )
        .await?;
    render(state, &g, true).await
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
    let w = resource::read_group(body)?;
    // PUT replaces everything: no `members` means an empty group.
    let members = Some(w.members.clone().unwrap_or_default());
    let base = base_url(state);
    let g = state
        .roster
        .scim_update_group(client.org_id, &client.actor(), id, members, version, |g| {
            resource::check_put_read_only(&resource::render_group(g, None, &base), body)?;
            Ok::<_, ScimError>(provisioned(&w))
        })
        .await?;
    render(state, &g, true).await
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

/// The member ids a `members[...]` filter names, when it is `value eq "…"` (or an `or` of them).
fn filter_values(f: &Filter) -> Option<Vec<String>> {
    match f {
        Filter::Compare(p, Op::Eq, CompValue::Str(v)) if p.is("value", None) => {
            Some(vec![v.clone()])
        }
        Filter::Or(a, b) => {
            let mut x = filter_values(a)?;
            x.extend(filter_values(b)?);
            Some(x)
        }
        _ => None,
    }
}

fn is_members(p: &filter::AttrPath) -> bool {
    p.urn.as_deref().is_none_or(filter::is_core_urn) && p.attr.eq_ignore_ascii_case("members")
}

/// Membership changes of one PATCH, folded in order: the last operation naming a member wins.
#[derive(Default)]
struct MemberChanges {
    /// `true`: add, `false`: remove.
    wanted: std::collections::HashMap<String, bool>,
    remove_all: bool,
    touched: bool,
    /// The current members, loaded once if a filter needs them.
    current: Option<Vec<(Uuid, String)>>,
}

impl MemberChanges {
    fn add(&mut self, ids: Vec<String>) {
        self.touched = true;
        for id in ids {
            self.wanted.insert(id, true);
        }
    }

    fn remove(&mut self, ids: Vec<String>) {
        self.touched = true;
        for id in ids {
            self.wanted.insert(id, false);
        }
    }

    fn clear(&mut self) {
        self.touched = true;
        self.wanted.clear();
        self.remove_all = true;
    }

    /// Members matching `f` as the group stands after the operations so far.
    async fn remove_where(
        &mut self,
        state: &AppState,
        gid: Uuid,
        f: &Filter,
    ) -> Result<(), ScimError> {
        self.touched = true;
        if self.current.is_none() {
            self.current = Some(members_of(state, gid).await?);
        }
        let mut candidates: Vec<String> = if self.remove_all {
            Vec::new()
        } else {
            self.current
                .iter()
                .flatten()
                .map(|(id, _)| id.to_string())
                .collect()
        };
        candidates.extend(
            self.wanted
                .iter()
                .filter(|(_, add)| **add)
                .map(|(id, _)| id.clone()),
        );
        for id in candidates {
            let item = serde_json::json!({"value": id, "type": "User"});
            if filter::matches(f, &item, &Rules) {
                self.wanted.insert(id, false);
            }
        }
        Ok(())
    }

    fn split(&self) -> (Vec<String>, Vec<String>) {
        let mut add = Vec::new();
        let mut remove = Vec::new();
        for (id, a) in &self.wanted {
            if *a {
                add.push(id.clone())
            } else {
                remove.push(id.clone())
            }
        }
        add.sort();
        remove.sort();
        (add, remove)
    }
}

fn values_of(v: &Value) -> Result<Vec<String>, ScimError> {
    match v {
        Value::Array(list) => resource::member_values(list),
        Value::Object(_) => resource::member_values(std::slice::from_ref(v)),
        _ => Err(ScimError::invalid_value(
            "members must be a list of {\"value\": id}",
        )),
    }
}

pub async fn patch_doc(
    state: &AppState,
    client: &ScimClient,
    id: &str,
    body: &Value,
    version: Option<i64>,
) -> Result<Option<Value>, ScimError> {
    let ops = super::patch::parse(body)?;
    let gid = parse_id(id)?;
    let g = load(state, client, gid).await?;
    if let Some(v) = version
        && v != g.version
    {
        return Err(ScimError::precondition(
            "the resource has changed; read it again",
        ));
    }
    let mut changes = MemberChanges::default();
    let mut doc_ops: Vec<PatchOp> = Vec::new();
    for op in ops {
        match (&op.path, op.op) {
            (Some(p), kind) if is_members(&p.attr) => match (kind, &p.filter, &op.value) {
                (OpKind::Add, None, Some(v)) => changes.add(values_of(v)?),
                (OpKind::Replace, None, Some(v)) => {
                    changes.clear();
                    changes.add(values_of(v)?);
                }
                (OpKind::Remove, None, Some(v)) => changes.remove(values_of(v)?),
                (OpKind::Remove, None, None) => changes.clear(),
                (OpKind::Remove, Some(f), _) => match filter_values(f) {
                    Some(vals) => changes.remove(vals),
                    None => changes.remove_where(state, gid, f).await?,
                },
                _ => {
                    return Err(ScimError::invalid_path(
                        "members can be added, replaced or removed (with a value filter)",
                    ));
                }
            },
            (None, kind) => {
                // A path-less value may carry members next to other attributes.
                let mut value = op.value.clone().unwrap_or(Value::Null);
                if let Some(obj) = value.as_object_mut()
                    && let Some(m) = resource::remove_ci(obj, "members")
                {
                    if kind == OpKind::Replace {
                        changes.clear();
                    }
                    changes.add(values_of(&m)?);
                }
                if value.as_object().is_some_and(|o| !o.is_empty()) {
                    doc_ops.push(PatchOp {
                        op: kind,
                        path: None,
                        value: Some(value),
                    });
                }
            }
            _ => doc_ops.push(op),
        }
    }
    if !doc_ops.is_empty() {
        // Applied to the group as it is when the write holds the org lock, so concurrent
        // PATCHes all land; only an If-Match the client sent can refuse one.
        let base = base_url(state);
        state
            .roster
            .scim_update_group(client.org_id, &client.actor(), gid, None, version, |g| {
                let before = resource::render_group(g, None, &base);
                let mut doc = before.clone();
                super::patch::apply(&mut doc, &doc_ops)?;
                resource::check_patch_read_only(&before, &doc)?;
                Ok::<_, ScimError>(provisioned(&resource::read_group(&doc)?))
            })
            .await?;
    }
    if changes.touched {
        let (add, remove) = changes.split();
        state
            .roster
            .scim_change_group_members(
                client.org_id,
                &client.actor(),
                gid,
                &add,
                &remove,
                changes.remove_all,
                None,
            )
            .await?;
        return Ok(None);
    }
    let g = load(state, client, gid).await?;
    Ok(Some(render(state, &g, true).await?))
}

pub async fn patch(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let version = if_match(&headers)?;
    match patch_doc(&state, &client, &id, &read_json(&body)?, version).await? {
        Some(doc) => Ok(scim_response(StatusCode::OK, &doc)),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
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
        .scim_delete_group(client.org_id, &client.actor(), id, version)
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
