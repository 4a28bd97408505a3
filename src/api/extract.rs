//! Request extractors whose rejections are problem bodies: JSON bodies (unknown fields refused,
//! the failing field named, 422), raw bodies, query strings and path parameters (400). A NUL
//! character in any string is refused here, naming the field or parameter (databases refuse it
//! in text).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::web::problem::ApiError;

const NUL: &str = "must not contain a NUL character";

/// A JSON body.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

fn is_json(req: &Request) -> bool {
    let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON body into `T`: a syntax error says where (line and column), a value of the
/// wrong shape names its field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // JSON text can only carry a NUL as the escape `\u0000`.
    if bytes.windows(6).any(|w| w == b"\\u0000")
        && let Ok(v) = serde_json::from_slice::<Value>(bytes)
        && let Some(path) = nul_path(&v, String::new())
    {
        let field = if path.is_empty() { "body" } else { &path };
        return Err(body_field(field, NUL.to_owned()));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de)
        .map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            json_error(&inner, &path, bytes)
        })
        .and_then(|v| de.end().map(|()| v).map_err(|e| json_error(&e, "", bytes)))?;
    Ok(value)
}

fn json_error(e: &serde_json::Error, path: &str, bytes: &[u8]) -> ApiError {
    use serde_json::error::Category;
    // serde_json reports some values of the wrong type (a number where a name from a list is
    // expected) as syntax errors; well-formed JSON makes them what they are.
    let well_formed = || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
    match e.classify() {
        Category::Syntax if well_formed() => {
            let message = "a value of the wrong type".to_owned();
            if path.is_empty() || path == "." {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
            } else {
                body_field(path, message)
            }
        }
        Category::Data => {
            let message = strip_location(e);
            if path.is_empty() || path == "." {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
            } else {
                body_field(path, message)
            }
        }
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "malformed_json",
            format!(
                "the body is not valid JSON: {} (line {}, column {})",
                strip_location(e),
                e.line(),
                e.column()
            ),
        ),
    }
}

/// A body field of the wrong shape (422, like every other refused body field), named.
fn body_field(path: &str, message: String) -> ApiError {
    let mut err = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        format!("{path}: {message}"),
    );
    err.0
        .errors
        .push(crate::roster::FieldError::new(path, message));
    err
}

/// serde_json's message without its trailing ` at line L column C`.
fn strip_location(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The path of the first string (key or value) holding a NUL, if any.
fn nul_path(v: &Value, at: String) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let here = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_path(item, here)
            }
        }),
        _ => None,
    }
}

/// The whole body as bytes (within the route's body limit).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(body_rejection)
    }
}

fn body_rejection(r: BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than this endpoint accepts",
        )
    } else {
        ApiError::new(r.status(), "unreadable_body", r.body_text())
    }
}

/// A query string.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(q) = parts.uri.query() {
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                if k.contains('\0') || v.contains('\0') {
                    return Err(ApiError::field(&k.replace('\0', "\\0"), NUL));
                }
            }
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", r.body_text())
}

/// Path parameters.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(raw) = RawPathParams::from_request_parts(parts, state).await {
            for (k, v) in &raw {
                if v.contains('\0') {
                    return Err(ApiError::field(k, NUL));
                }
            }
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(r) => Err(path_rejection(r)),
        }
    }
}

fn path_rejection(r: PathRejection) -> ApiError {
    ApiError::bad_request("invalid_path", r.body_text())
}
