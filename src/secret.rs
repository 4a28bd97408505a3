//! Secret references in configuration (`env:NAME`, `file:PATH`): defined in the connectors crate,
//! which resolves the credentials of the sources it reads; re-exported here for the daemon's
//! own secrets (operator token, SMTP password).

pub use rosterd_connectors::secret::*;
