//! ServiceProviderConfig, Schemas and ResourceTypes (RFC 7644 §4). Discovery needs no
//! authentication, as the RFC allows, so clients can learn how to talk to rosterd.

use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::error::ScimError;
use super::schema::{self, LIST};
use super::{MAX_BULK_OPERATIONS, MAX_PAYLOAD, MAX_RESULTS, scim_response};
use crate::store::attributes::AttributeDef;
use crate::web::AppState;

fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

pub async fn service_provider_config(State(state): State<AppState>) -> Response {
    let base = super::base_url(&state);
    scim_response(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/rosterd/rosterd#scim",
            "patch": {"supported": true},
            "bulk": {"supported": true, "maxOperations": MAX_BULK_OPERATIONS, "maxPayloadSize": MAX_PAYLOAD},
            "filter": {"supported": true, "maxResults": MAX_RESULTS},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A per-org SCIM token: rosterd token create --org SLUG --kind scim",
                "primary": true
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
        }),
    )
}

/// The attributes of the org whose SCIM token the caller sent, if it sent a valid one
/// (discovery answers anonymous callers too, with an empty org extension).
async fn caller_attributes(state: &AppState, headers: &HeaderMap) -> Vec<AttributeDef> {
    let Some(token) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
    else {
        return Vec::new();
    };
    match state.roster.authenticate(&token).await {
        Ok(Some(row)) if row.kind == "scim" => match row.org_id {
            Some(org_id) => state.roster.attributes(org_id).await.unwrap_or_default(),
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn with_org_user(defs: &[AttributeDef]) -> Vec<Value> {
    let mut all = schema::all_schemas();
    all.push(schema::org_user_schema(defs));
    all
}

pub async fn schemas(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let defs = caller_attributes(&state, &headers).await;
    let items = with_org_user(&defs)
        .into_iter()
        .map(|mut s| {
            s["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]);
            s
        })
        .collect();
    scim_response(StatusCode::OK, &list(items))
}

pub async fn schema(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let defs = caller_attributes(&state, &headers).await;
    let mut s = with_org_user(&defs)
        .into_iter()
        .find(|s| {
            s["id"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case(&id))
        })
        .ok_or_else(|| ScimError::not_found(format!("no schema `{id}`")))?;
    s["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]);
    Ok(scim_response(StatusCode::OK, &s))
}

pub async fn resource_types() -> Response {
    scim_response(StatusCode::OK, &list(schema::resource_types()))
}

pub async fn resource_type(Path(id): Path<String>) -> Result<Response, ScimError> {
    let r = schema::resource_types()
        .into_iter()
        .find(|r| {
            r["id"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case(&id))
        })
        .ok_or_else(|| ScimError::not_found(format!("no resource type `{id}`")))?;
    Ok(scim_response(StatusCode::OK, &r))
}
