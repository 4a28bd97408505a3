//! Errors at the HTTP edge: every failure of the admin API becomes an RFC 9457
//! `application/problem+json` body saying what is wrong and where. Internal errors are logged
//! with detail and answered with a bare 500 that leaks nothing.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::roster::{FieldError, RosterError};
use crate::store::StoreError;

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Machine-readable reason.
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The integration that manages the org, for the removal lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    /// Sent as the `Retry-After` header.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

/// An error answer of the admin API.
#[derive(Debug, Clone)]
pub struct ApiError(pub Box<Problem>);

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        ApiError(Box::new(Problem {
            kind: format!("urn:rosterd:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            errors: Vec::new(),
            integration: None,
            retry_after: None,
        }))
    }

    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("{field}: {message}"),
        );
        e.0.errors.push(FieldError::new(field, message));
        e
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unauthorized(detail: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.0.retry_after;
        let mut res = (status, Json(self.0)).into_response();
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unique(_) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the change conflicts with another one made at the same time; retry",
            ),
            StoreError::InvalidData(msg) => {
                tracing::warn!(error = %msg, "database refused a request value");
                // The database's own words name neither the field nor anything the client
                // sent; they stay in the log.
                ApiError::bad_request(
                    "invalid_value",
                    "a value in the request cannot be stored (a NUL character, or a date or \
                     number out of range)",
                )
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal()
            }
        }
    }
}

impl From<RosterError> for ApiError {
    fn from(e: RosterError) -> Self {
        match e {
            RosterError::NotFound(what) => ApiError::not_found(&what),
            RosterError::Invalid(errors) => {
                let mut api = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    RosterError::Invalid(errors.clone()).to_string(),
                );
                api.0.errors = errors;
                api
            }
            RosterError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            RosterError::Locked { ref integration } => {
                let mut api =
                    ApiError::new(StatusCode::CONFLICT, "integration_managed", e.to_string());
                api.0.integration = Some(integration.clone());
                api
            }
            RosterError::Gone(msg) => ApiError::new(StatusCode::GONE, "gone", msg),
            RosterError::WrongCode { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "wrong_code", e.to_string())
            }
            RosterError::LimitExceeded { field, message, .. } => {
                let mut api = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "limit_exceeded",
                    message.clone(),
                );
                api.0.errors = vec![FieldError::new(field, message)];
                api
            }
            RosterError::Precondition(msg) => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", msg)
            }
            RosterError::Store(s) => s.into(),
        }
    }
}
