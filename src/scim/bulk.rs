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

/// The order operations run in: request order, except that one referring to a bulkId defined by
/// a later operation waits until that one has run (RFC 7644 §3.7.2). Operations still waiting
/// when nothing more can run refer to each other in a circle; they run last, in request order,
/// and fail with 409 as their references cannot be resolved. Linear in the operations and their
/// references (each reference is counted once and released once), whatever the dependencies.
fn run_order(ops: &[Value]) -> Vec<&Value> {
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashSet};

    // bulkId → the operations that define it.
    let mut defined: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(b) = get_ci(op, "bulkId").and_then(Value::as_str) {
            defined.entry(b).or_default().push(i);
        }
    }
    // Each operation waits for the distinct bulkIds it refers to that some operation defines.
    let mut waiting_on = vec![0usize; ops.len()];
    let mut waiters: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        let refs: HashSet<String> = references(op)
            .into_iter()
            .filter(|r| defined.contains_key(r.as_str()))
            .collect();
        waiting_on[i] = refs.len();
        for r in refs {
            waiters.entry(r).or_default().push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..ops.len())
        .filter(|i| waiting_on[*i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(ops.len());
    let mut ran = vec![false; ops.len()];
    while let Some(Reverse(i)) = ready.pop() {
        ran[i] = true;
        order.push(&ops[i]);
        if let Some(b) = get_ci(&ops[i], "bulkId").and_then(Value::as_str)
            && let Some(ws) = waiters.remove(b)
        {
            for w in ws {
                waiting_on[w] -= 1;
                if waiting_on[w] == 0 {
                    ready.push(Reverse(w));
                }
            }
        }
    }
    order.extend(
        ops.iter()
            .enumerate()
            .filter(|(i, _)| !ran[*i])
            .map(|(_, op)| op),
    );
    order
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
    let order = run_order(ops);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ids(order: &[&Value]) -> Vec<String> {
        order
            .iter()
            .map(|op| op["n"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    #[test]
    fn operations_wait_only_for_what_they_refer_to() {
        let ops = vec![
            json!({"n": "a", "bulkId": "a", "data": {"manager": "bulkId:c"}}),
            json!({"n": "b", "bulkId": "b"}),
            json!({"n": "c", "bulkId": "c", "data": {"x": ["bulkId:b"]}}),
            json!({"n": "d", "path": "/Users/bulkId:a"}),
            json!({"n": "e", "data": "bulkId:missing"}),
            json!({"n": "x", "bulkId": "x", "data": "bulkId:y"}),
            json!({"n": "y", "bulkId": "y", "data": "bulkId:x"}),
            json!({"n": "s", "bulkId": "s", "data": "bulkId:s"}),
        ];
        // b, then c (which needed b), then a (which needed c), then d (which needed a); e refers
        // to nothing defined; x, y and s wait on each other or themselves and run last.
        assert_eq!(
            ids(&run_order(&ops)),
            ["b", "c", "a", "d", "e", "x", "y", "s"]
        );
    }

    #[test]
    fn a_long_backward_chain_is_ordered_in_one_pass() {
        // Operation i refers to i + 1: the last runs first and the first last.
        let n = 1000;
        let ops: Vec<Value> = (0..n)
            .map(|i| {
                let mut op = json!({"n": i.to_string(), "bulkId": format!("u{i}")});
                if i + 1 < n {
                    op["data"] = json!({"manager": {"value": format!("bulkId:u{}", i + 1)}});
                }
                op
            })
            .collect();
        let want: Vec<String> = (0..n).rev().map(|i| i.to_string()).collect();
        assert_eq!(ids(&run_order(&ops)), want);
    }
}
