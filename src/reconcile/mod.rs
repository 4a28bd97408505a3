//! Reconciliation: turning a source's snapshot into changes to the member store.
//!
//! So far the pure core: [`plan::plan`] compares what the store holds with what a source says
//! and returns the plan as data (creates, updates of changed fields only, removals,
//! reactivations, links, warnings, row errors). Fetching, the safety check, applying in
//! transactions and recording runs arrive with the sync engine.

pub mod plan;
