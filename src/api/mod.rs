//! The admin REST API (`/api/v1`): what operators and org admins (and their scripts) call.
//!
//! Handlers are thin: parse the request, check who is calling ([`Principal`]), call
//! [`crate::roster`] or [`crate::sync`], map the answer. They never write SQL. What this surface
//! shares with SCIM and the console (state, auth, rate limiting, problem bodies, layers) lives
//! in [`crate::web`]; this module imports no other surface.

mod attributes;
mod audit;
mod dashboard;
pub mod detail;
mod erase;
pub mod extract;
mod groups;
mod invitations;
mod invite_links;
mod jobs;
mod join;
mod ledger;
pub mod members;
mod orgs;
pub mod sync;
mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::config::Config;
use crate::web::AppState;

/// The routes under `/api/v1`.
pub fn router(config: &Config) -> Router<AppState> {
    let max_import = config.server.max_import_bytes;
    let org = Router::new()
        .route("/", get(orgs::get_one).patch(orgs::patch))
        .route("/members", get(members::list).post(members::add))
        .route("/members/counts", get(members::counts))
        .route("/members/export.csv", get(jobs::export_members))
        .route("/members/export", get(jobs::export_members))
        .route("/members/drop", post(jobs::drop_members))
        .route("/jobs/{id}", get(jobs::get_job))
        .route("/exports", post(jobs::create_export))
        .route("/exports/{id}", get(jobs::get_export))
        .route("/exports/{id}/download", get(jobs::download_export))
        .route("/members/resend-invites", post(members::resend))
        .route("/members/remove", post(members::remove_many))
        .route(
            "/members/cancel-invitations",
            post(members::cancel_invitations),
        )
        .route("/members/disable", post(members::disable))
        .route("/members/enable", post(members::enable))
        .route(
            "/members/{id}",
            get(detail::get_member)
                .patch(members::patch)
                .delete(members::remove_one),
        )
        .route("/members/{id}/activity", post(members::activity))
        .route("/members/{id}/fee", axum::routing::put(ledger::put_fee))
        .route(
            "/members/{id}/payments",
            get(ledger::list_payments).post(ledger::record_payment),
        )
        .route("/members/{id}/remove", post(members::remove_one_reachable))
        .route("/members/{id}/erase", post(erase::erase_one))
        .route("/ownership", post(members::transfer_ownership))
        .route("/audit", get(audit::list))
        .route("/dashboard", get(dashboard::get))
        .route("/points", get(ledger::totals))
        .route("/points/moves", post(ledger::move_points))
        .route("/points/ledger", get(ledger::list))
        .route(
            "/invite-links",
            get(invite_links::list).post(invite_links::create),
        )
        .route("/invite-links/{id}/revoke", post(invite_links::revoke))
        .route("/join", get(join::get_settings).put(join::put_settings))
        .route("/applications", get(join::list))
        .route("/applications/{id}/approve", post(join::approve))
        .route("/applications/{id}/decline", post(join::decline))
        .route("/tokens", get(orgs::list_tokens).post(orgs::create_token))
        .route("/tokens/{id}", axum::routing::delete(orgs::revoke_token))
        .route("/groups", get(groups::list).post(groups::create))
        .route(
            "/groups/{id}",
            axum::routing::patch(groups::patch).delete(groups::delete),
        )
        .route(
            "/groups/{id}/members",
            get(groups::members).post(groups::add_members),
        )
        .route("/groups/{id}/members/remove", post(groups::remove_members))
        .route(
            "/members/{id}/phones",
            get(detail::get_phones).put(detail::put_phones),
        )
        .route(
            "/groups/{id}/entitlements",
            get(detail::list_entitlements).post(detail::add_entitlement),
        )
        .route(
            "/groups/{id}/entitlements/{eid}",
            axum::routing::delete(detail::remove_entitlement),
        )
        .route("/sources", get(sync::list_sources))
        .route("/sources/{name}", get(sync::get_source))
        .route("/sources/{name}/runs", post(sync::run_now))
        .route("/runs", get(sync::list_runs))
        .route("/runs/{id}", get(sync::get_run))
        .route("/runs/{id}/plan", get(sync::run_plan))
        .route("/runs/{id}/errors.csv", get(sync::run_errors_csv))
        .route("/runs/{id}/approve", post(sync::approve_run))
        .route(
            "/imports",
            get(sync::list_imports)
                .post(sync::upload)
                .layer(DefaultBodyLimit::max(max_import)),
        )
        .route("/imports/template.csv", get(sync::template))
        .route("/imports/{id}", get(sync::get_import))
        .route("/imports/{id}/plan", get(sync::import_plan))
        .route("/imports/{id}/errors.csv", get(sync::import_errors_csv))
        .route("/imports/{id}/confirm", post(sync::confirm_import))
        .route("/imports/{id}/cancel", post(sync::cancel_import))
        .route(
            "/attributes",
            get(attributes::list).post(attributes::create),
        )
        .route(
            "/attributes/{name}",
            get(attributes::get_one)
                .patch(attributes::patch)
                .delete(attributes::delete),
        )
        .route("/events", get(webhooks::events))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{id}",
            get(webhooks::get_one)
                .patch(webhooks::patch)
                .delete(webhooks::delete),
        )
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        );
    Router::new()
        .route("/orgs", get(orgs::list).post(orgs::create))
        .nest("/orgs/{org}", org)
        .route("/invitations/accept", post(invitations::accept))
        .route("/invite-links/accept", post(invite_links::accept))
        .route("/join/verify", post(join::verify))
        .route("/join/{slug}", post(join::ask))
}
