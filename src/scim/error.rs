//! SCIM error responses (RFC 7644 §3.12): `application/scim+json` bodies with the Error
//! schema, the status as a string, and a `scimType` where the RFC defines one.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::roster::RosterError;
use crate::store::StoreError;

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SCIM_JSON: &str = "application/scim+json";

#[derive(Debug, Clone)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidValue"), detail)
    }
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidSyntax"), detail)
    }
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), detail)
    }
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidPath"), detail)
    }
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("noTarget"), detail)
    }
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some("uniqueness"), detail)
    }
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("mutability"), detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, None, detail)
    }
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, None, detail)
    }
    pub fn precondition(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, None, detail)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "an internal error occurred; it has been logged",
        )
    }

    pub fn body(&self) -> serde_json::Value {
        let mut b = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            b["scimType"] = json!(t);
        }
        b
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body())).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unique(_) => ScimError::uniqueness(
                "another resource already has this value (userName, email or displayName)",
            ),
            StoreError::InvalidData(m) => {
                ScimError::invalid_value(format!("a value cannot be stored: {m}"))
            }
            other => {
                tracing::error!(error = %other, "store error");
                ScimError::internal()
            }
        }
    }
}

impl From<RosterError> for ScimError {
    fn from(e: RosterError) -> Self {
        match e {
            RosterError::NotFound(what) => ScimError::not_found(format!("{what} not found")),
            RosterError::Invalid(errs) => ScimError::invalid_value(
                errs.iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            RosterError::Conflict {
                code: "uniqueness",
                message,
            } => ScimError::uniqueness(message),
            RosterError::Conflict { message, .. } => {
                ScimError::new(StatusCode::CONFLICT, None, message)
            }
            RosterError::Locked { .. } => ScimError::new(StatusCode::CONFLICT, None, e.to_string()),
            RosterError::Gone(m) => ScimError::not_found(m),
            RosterError::LimitExceeded { message, .. } => ScimError::invalid_value(message),
            RosterError::WrongCode { .. } => {
                ScimError::new(StatusCode::FORBIDDEN, None, e.to_string())
            }
            RosterError::Precondition(m) => ScimError::precondition(m),
            RosterError::Store(s) => s.into(),
        }
    }
}
