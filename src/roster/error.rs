//! What can go wrong in a roster operation, in terms the edges (HTTP, CLI) translate once.

use serde::Serialize;

use crate::store::StoreError;

/// One problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where: a path into the input such as `members[2].email`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(
        "membership of this organization is managed by {integration}; remove the person in {integration} and the change will sync here"
    )]
    Locked { integration: String },
    #[error("{0}")]
    Gone(String),
    /// An invite link's unlock code did not match.
    #[error("wrong code; {remaining} more wrong code(s) and this link stops working")]
    WrongCode { remaining: i64 },
    /// A request larger than an org setting allows.
    #[error("{message}")]
    LimitExceeded {
        field: String,
        setting: &'static str,
        limit: i64,
        message: String,
    },
    /// The caller's version (ETag) is not the current one.
    #[error("{0}")]
    Precondition(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RosterError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        RosterError::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        RosterError::Conflict {
            code,
            message: message.into(),
        }
    }
}

/// Checks a short label (org name, token name, integration name): trimmed, 1..=`max`
/// characters, no control characters.
pub(crate) fn check_label(field: &str, value: &str, max: usize) -> Result<String, RosterError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(RosterError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(RosterError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(v.to_owned())
}
