//! rosterd keeps organizations' member rosters in sync with where people really live.
//!
//! The daemon is a library so tests boot the real application on a random port; `main.rs` only
//! calls [`cli::main`]. See `ARCHITECTURE.md` for the map of the modules and their invariants.

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod domain;
pub mod mail;
pub mod reconcile;
pub mod roster;
pub mod scim;
pub mod secret;
pub mod server;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod token;
pub mod web;
pub mod webhooks;

pub use app::{App, AppOptions};
