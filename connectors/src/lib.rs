//! rosterd connectors: readers of outside systems (Workday, Microsoft Graph, LDAP, HTTP JSON,
//! CSV) that turn what those systems say into a normalized record stream.
//!
//! This crate must never depend on the store (sqlx) or the HTTP server (axum): a connector only
//! reads the outside world. The sync engine that arrives with a later issue fills it in.
