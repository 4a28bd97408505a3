//! Integration tests: each test boots the real application on a random loopback port with its
//! own fresh database and talks HTTP to it. The backend is SQLite unless
//! `ROSTERD_TEST_POSTGRES_URL` is set, in which case every test gets its own PostgreSQL database
//! (and fails, never skips, if that server cannot be reached).

mod accept;
mod architecture;
mod attributes;
mod audit;
mod auth;
mod backup;
mod bad_input;
mod cli;
mod concurrency;
mod conformance;
mod console;
mod console_browser;
mod csv_url;
mod detail;
mod erase;
mod error_details;
mod export;
mod fuzz_corpus;
mod graph;
mod health;
mod helpers;
mod http_json;
mod invite_links;
mod invite_options;
mod invites;
mod join;
mod ldap;
mod ledger;
mod lock;
mod member_states;
mod members;
mod metrics;
mod owner;
mod review_fixes;
mod scim;
mod serving;
mod shutdown;
mod slapd;
mod smtp;
mod sync;
mod sync_process;
mod ways;
mod webhooks;
mod workday;
