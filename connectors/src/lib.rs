//! rosterd connectors: readers of outside systems (Workday, Microsoft Graph, LDAP, HTTP JSON,
//! CSV) that turn what those systems say into a stream of normalized [`Record`]s.
//!
//! This crate must never depend on the store (sqlx) or the HTTP server (axum): a connector only
//! reads the outside world; the sync engine in the daemon decides what to do with it.
//!
//! So far: the normalized record, the field mapping (with transforms) shared by every
//! connector, and the CSV roster reader.

pub mod csv_roster;
pub mod mapping;
pub mod record;

pub use mapping::{FieldSpec, Mapping, MappingError, Transform};
pub use record::{Record, RecordError};
