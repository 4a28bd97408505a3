//! The SCIM 2.0 service provider (RFC 7643 / 7644) at `/scim/v2`: what identity providers push
//! users and groups to. The bearer token picks the org.
//!
//! Only this module knows SCIM JSON: requests are read into [`resource::UserWrite`] /
//! [`resource::GroupWrite`], handed to the roster's provisioning operations, and answers are
//! rendered back from members and groups. Errors are SCIM error bodies (`scimType`), never
//! problem+json.

mod bulk;
mod discovery;
pub mod error;
pub mod filter;
mod groups;
mod list;
pub mod number;
pub mod patch;
pub mod resource;
pub mod schema;
mod users;

use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use uuid::Uuid;

use crate::roster::Actor;
use crate::web::AppState;
use error::{SCIM_JSON, ScimError};

/// Largest request body (and Bulk payload) accepted.
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// Most operations in one Bulk request.
pub const MAX_BULK_OPERATIONS: usize = 1000;
/// Most resources in one list page.
pub const MAX_RESULTS: i64 = 1000;

/// The SCIM client calling: its org and token.
#[derive(Debug, Clone)]
pub struct ScimClient {
    pub org_id: Uuid,
    pub token_id: Uuid,
    pub name: String,
}

impl ScimClient {
    pub fn actor(&self) -> Actor {
        Actor::ScimClient {
            id: self.token_id,
            name: self.name.clone(),
        }
    }
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimError> {
        let ip = crate::web::ratelimit::client_ip(parts, state);
        let fail = |detail: &str| -> ScimError {
            if let Err(e) = state.auth_failures.record(ip) {
                return ScimError::new(StatusCode::TOO_MANY_REQUESTS, None, e.0.detail.clone());
            }
            ScimError::unauthorized(detail)
        };
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(token) = header
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
        else {
            return Err(fail("missing `Authorization: Bearer <token>` header"));
        };
        match state
            .roster
            .authenticate(token)
            .await
            .map_err(ScimError::from)?
        {
            Some(row) if row.kind == "scim" => match row.org_id {
                Some(org_id) => Ok({
                    if let Some(caller) = parts.extensions.get::<crate::web::metrics::Caller>() {
                        caller.set(&row.name);
                    }
                    ScimClient {
                        org_id,
                        token_id: row.id,
                        name: row.name,
                    }
                }),
                None => Err(fail("invalid or revoked token")),
            },
            Some(_) => Err(ScimError::new(
                StatusCode::FORBIDDEN,
                None,
                "this is not a SCIM token; create one with `rosterd token create --kind scim`",
            )),
            None => Err(fail("invalid or revoked token")),
        }
    }
}

/// A SCIM JSON answer with optional ETag and Location.
pub fn scim_response(status: StatusCode, body: &Value) -> Response {
    let mut res = (status, number::to_string(body)).into_response();
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    if let Some(v) = body.pointer("/meta/version").and_then(Value::as_str)
        && let Ok(h) = HeaderValue::from_str(v)
    {
        res.headers_mut().insert(ETAG, h);
    }
    if status == StatusCode::CREATED
        && let Some(l) = body.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(h) = HeaderValue::from_str(l)
    {
        res.headers_mut().insert(LOCATION, h);
    }
    res
}

/// A request body, refused with a SCIM error (413) when larger than the server accepts.
pub struct ScimBody(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ScimError> {
        match <Bytes as axum::extract::FromRequest<S>>::from_request(req, state).await {
            Ok(b) => Ok(ScimBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ScimError::too_large(
                format!("the body is larger than the {MAX_PAYLOAD} bytes this server accepts"),
            )),
            Err(e) => Err(ScimError::invalid_syntax(e.body_text())),
        }
    }
}

/// Reads a JSON body (`application/scim+json` or `application/json`).
pub fn read_json(body: &Bytes) -> Result<Value, ScimError> {
    if body.len() > MAX_PAYLOAD {
        return Err(ScimError::too_large(format!(
            "the body is larger than {MAX_PAYLOAD} bytes"
        )));
    }
    number::parse(body)
}

/// The version an `If-Match` header demands (`*` or absent: any).
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ScimError> {
    let Some(v) = headers.get(IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let v = v.trim();
    if v == "*" {
        return Ok(None);
    }
    parse_etag(v).map(Some).ok_or_else(|| {
        ScimError::precondition(format!("If-Match `{v}` is not a version of this resource"))
    })
}

pub fn parse_etag(v: &str) -> Option<i64> {
    let v = v.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.trim_matches('"').parse().ok()
}

/// Whether an `If-None-Match` header names the current version (answer 304).
pub fn not_modified(headers: &HeaderMap, version: i64) -> bool {
    headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "*" || v.split(',').any(|t| parse_etag(t) == Some(version)))
}

/// The base URL resources are located under.
pub fn base_url(state: &AppState) -> String {
    format!(
        "{}/scim/v2",
        state.config.server.public_url.trim_end_matches('/')
    )
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Users", get(users::list).post(users::create))
        .route("/Users/.search", post(users::search))
        .route(
            "/Users/{id}",
            get(users::get_one)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::create))
        .route("/Groups/.search", post(groups::search))
        .route(
            "/Groups/{id}",
            get(groups::get_one)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route("/.search", post(list::root_search))
        .route("/Bulk", post(bulk::bulk))
        .fallback(|| async { ScimError::not_found("no such SCIM endpoint") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_PAYLOAD))
}
