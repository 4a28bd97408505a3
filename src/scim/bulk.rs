//! `/Bulk` (RFC 7644 §3.7): many operations in one request, run in order, with `bulkId`
//! references from later operations to resources created by earlier ones, and `failOnErrors`.
//! `maxOperations` and `maxPayloadSize` are advertised in ServiceProviderConfig and enforced.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::error::ScimError;
use super::filter::get_ci;
use super::schema::{BULK_REQUEST, BULK_RESPONSE};
use super::{
    MAX_BULK_OPERATIONS, MAX_PAYLOAD, ScimBody, ScimClient, groups, parse_etag, read_json,
    scim_response, users,
};
use crate::web::AppState;

/// The bulkIds an operation refers to (in its path or data).
fn references(op: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                if let Some(k) = s.split("bulkId:").nth(1) {
                    out.push(k.split('/').next().unwrap_or(k).to_owned());
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(d) = get_ci(op, "data") {
        walk(d, &mut out);
    }
    if let Some(p) = get_ci(op, "path") {
        walk(p, &mut out);
    }
    out
}

/// Replaces `"bulkId:x"` strings (anywhere in `v`) by the id created for `x`.
fn resolve(v: &mut Value, ids: &HashMap<String, String>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            if let Some(key) = s.strip_prefix("bulkId:") {
                match ids.get(key) {
                    Some(id) => *s = id.clone(),
                    None => {
                        return Err(format!(
                            "bulkId `{key}` is not defined by an earlier operation"
                        ));
                    }
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                resolve(x, ids)?;
            }
        }
        Value::Object(o) => {
            for x in o.values_mut() {
                resolve(x, ids)?;
            }
        }
        _ => {}
    }
    Ok(())
}

pub async fn bulk(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    if body.len() > MAX_PAYLOAD {
        return Err(ScimError::too_large(format!(
            "a Bulk request may be at most {MAX_PAYLOAD} bytes"
        )));
    }
    let req = read_json(&body)?;
    let schemas_ok = get_ci(&req, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(BULK_REQUEST))
            })
        });
    if !schemas_ok {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must contain {BULK_REQUEST}"
        )));
    }
    let ops = get_ci(&req, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be a list"))?;
    if ops.len() > MAX_BULK_OPERATIONS {
        return Err(ScimError::too_large(format!(
            "a Bulk request may hold at most {MAX_BULK_OPERATIONS} operations (this one has {})",
            ops.len()
        )));
    }
    let fail_on_errors =
        match get_ci(&req, "failOnErrors") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                ScimError::invalid_value("failOnErrors must be a positive integer")
            })?),
        };
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results = Vec::with_capacity(ops.len());
    let mut errors = 0u64;
    // Operations run in order, except that one referring to a bulkId created by a later
    // operation waits until that one has run (RFC 7644 §3.7.2); what still waits when nothing
    // more can run refers to a missing or circular bulkId and fails with 409.
    let defined: std::collections::HashSet<String> = ops
        .iter()
        .filter_map(|op| {
            get_ci(op, "bulkId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    let mut pending: Vec<&Value> = ops.iter().collect();
    let mut order: Vec<&Value> = Vec::with_capacity(ops.len());
    let mut done: std::collections::HashSet<String> = std::collections::HashSet::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut still = Vec::new();
        for op in pending {
            let waits = references(op)
                .iter()
                .any(|r| defined.contains(r) && !done.contains(r));
            if waits {
                still.push(op);
            } else {
                if let Some(b) = get_ci(op, "bulkId").and_then(Value::as_str) {
                    done.insert(b.to_owned());
                }
                order.push(op);
            }
        }
        if still.len() == before {
            // Circular: run them anyway; their references fail with 409.
            order.extend(still);
            break;
        }
        pending = still;
    }
    for op in order {
        if fail_on_errors.is_some_and(|limit| errors >= limit) {
            break;
        }
        let method = get_ci(op, "method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_uppercase();
        let bulk_id = get_ci(op, "bulkId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let path = get_ci(op, "path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let version = get_ci(op, "version")
            .and_then(Value::as_str)
            .and_then(parse_etag);
        let outcome = run_one(
            &state,
            &client,
            &method,
            &path,
            bulk_id.as_deref(),
            op,
            version,
            &ids,
        )
        .await;
        let mut result = json!({"method": method});
        if let Some(b) = &bulk_id {
            result["bulkId"] = json!(b);
        }
        match outcome {
            Ok((status, doc)) => {
                if let Some(doc) = &doc {
                    if let Some(loc) = doc.pointer("/meta/location") {
                        result["location"] = loc.clone();
                    }
                    if let Some(v) = doc.pointer("/meta/version") {
                        result["version"] = v.clone();
                    }
                    if let (Some(b), Some(id)) = (&bulk_id, doc.get("id").and_then(Value::as_str)) {
                        ids.insert(b.clone(), id.to_owned());
                    }
                }
                result["status"] = json!(status.as_u16().to_string());
            }
            Err(e) => {
                errors += 1;
                result["status"] = json!(e.status.as_u16().to_string());
                result["response"] = e.body();
            }
        }
        results.push(result);
    }
    Ok(scim_response(
        StatusCode::OK,
        &json!({"schemas": [BULK_RESPONSE], "Operations": results}),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    state: &AppState,
    client: &ScimClient,
    method: &str,
    path: &str,
    bulk_id: Option<&str>,
    op: &Value,
    version: Option<i64>,
    ids: &HashMap<String, String>,
) -> Result<(StatusCode, Option<Value>), ScimError> {
    let mut data = get_ci(op, "data").cloned().unwrap_or(Value::Null);
    resolve(&mut data, ids)
        .map_err(|m| ScimError::new(StatusCode::CONFLICT, Some("invalidValue"), m))?;
    let path = path.trim_start_matches('/').to_owned();
    let (kind, id) = match path.split_once('/') {
        Some((k, id)) => {
            // `/Users/bulkId:x` names the resource an earlier operation created.
            let mut id = Value::String(id.to_owned());
            resolve(&mut id, ids)
                .map_err(|m| ScimError::new(StatusCode::CONFLICT, Some("invalidValue"), m))?;
            (k.to_owned(), id.as_str().map(str::to_owned))
        }
        None => (path.clone(), None),
    };
    let users = kind.eq_ignore_ascii_case("Users");
    if !users && !kind.eq_ignore_ascii_case("Groups") {
        return Err(ScimError::invalid_path(format!(
            "path `/{path}` is not /Users or /Groups"
        )));
    }
    match (method, id) {
        ("POST", None) => {
            if bulk_id.is_none() {
                return Err(ScimError::invalid_value("a POST operation needs a bulkId"));
            }
            let doc = if users {
                users::create_doc(state, client, &data).await?
            } else {
                groups::create_doc(state, client, &data).await?
            };
            Ok((StatusCode::CREATED, Some(doc)))
        }
        ("PUT", Some(id)) => {
            let doc = if users {
                users::replace_doc(state, client, &id, &data, version).await?
            } else {
                groups::replace_doc(state, client, &id, &data, version).await?
            };
            Ok((StatusCode::OK, Some(doc)))
        }
        ("PATCH", Some(id)) => {
            if users {
                Ok((
                    StatusCode::OK,
                    Some(users::patch_doc(state, client, &id, &data, version).await?),
                ))
            } else {
                match groups::patch_doc(state, client, &id, &data, version).await? {
                    Some(doc) => Ok((StatusCode::OK, Some(doc))),
                    None => Ok((StatusCode::NO_CONTENT, None)),
                }
            }
        }
        ("DELETE", Some(id)) => {
            if users {
                users::delete_doc(state, client, &id, version).await?;
            } else {
                groups::delete_doc(state, client, &id, version).await?;
            }
            Ok((StatusCode::NO_CONTENT, None))
        }
        (m, _) => Err(ScimError::invalid_syntax(format!(
            "`{m}` on `/{path}` is not a Bulk operation"
        ))),
    }
}
