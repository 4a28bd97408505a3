//! The normalized record every connector produces, and row-level errors.

use std::collections::BTreeMap;
use std::fmt;

/// One person as a source describes them, after mapping.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The source's stable id for the person.
    pub external_id: String,
    pub member_email: Option<String>,
    pub login_email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    /// Whether the source says the person should have access.
    pub active: bool,
    /// The record does not say whether the person has access (a change from a delta query that
    /// did not touch it): `active` means nothing, and neither a removal nor a reactivation
    /// follows from this record.
    pub status_unknown: bool,
    /// A role hint (`admin` or `member`) when the mapping has one.
    pub role: Option<String>,
    pub groups: Vec<String>,
    /// Every field as read, for debugging mappings.
    pub raw: BTreeMap<String, String>,
}

/// What is wrong with one record: where (line, column), the value, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// 1-based line in the source (CSV) or record number (APIs).
    pub line: u64,
    /// The record's id when it could be read: a bad row whose id is known stands for that
    /// person alone; one without blocks every absence removal of the run.
    pub external_id: Option<String>,
    pub column: Option<String>,
    pub value: Option<String>,
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        if let Some(v) = &self.value {
            write!(f, ", value {v:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for RecordError {}
