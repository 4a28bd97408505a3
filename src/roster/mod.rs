//! Roster operations: the member state machine applied to the store, each change in one
//! transaction together with its audit entry and any invitation email it causes.
//!
//! This layer decides; the store only reads and writes rows, and the API only translates HTTP.
//! Clock-driven behaviour (reminders, expiry) takes its time from the [`Clock`], never from the
//! system directly.

mod access;
pub mod attributes;
mod audit;
pub mod console;
mod drop;
mod erase;
mod error;
pub mod export;
pub mod groups;
mod invite_groups;
pub mod invite_links;
mod invites;
pub mod jobs;
pub mod join;
pub mod ledger;
mod members;
pub mod orgs;
pub mod phones;
mod provisioning;
mod syncing;
pub use syncing::{GroupChanges, GroupSync};
pub mod detail;
pub mod entitlements;
pub mod events;
mod tokens;
pub mod webhooks;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::Store;

pub use access::{AccessChange, AccessOutcome, AccessResult};
pub use audit::Actor;
pub use error::{FieldError, RosterError};
pub use groups::{GroupKeeper, GroupMemberOutcome, GroupMemberResult, GroupPatch};
pub use invite_links::{CreatedInviteLink, InviteLinkView, NewInviteLink};
pub(crate) use members::check_invite_limit;
pub use members::{
    AddOutcome, AddResult, MemberPatch, NewMember, RemoveOutcome, RemoveResult, ResendOutcome,
    ResendResult,
};
pub use orgs::OrgChanges;
pub use provisioning::{ProvisionedGroup, ProvisionedUser, SCIM_SOURCE};
pub use tokens::{CreatedToken, TokenKind};

/// Invitation settings taken from the config.
#[derive(Debug, Clone)]
pub struct InviteSettings {
    pub accept_url: String,
    pub reminder_interval: chrono::Duration,
    pub reminders: i64,
    pub expiry: chrono::Duration,
    /// Groups a source keeps, by (org slug, lowercased name) → source name: invitations may
    /// not name them.
    pub kept_groups: std::collections::HashMap<(String, String), String>,
    /// The prefix an invite link's token is appended to (`{public_url}/invite-links/`).
    pub link_url: String,
    /// The prefix a join request's verification token is appended to
    /// (`{public_url}/join/verify/`).
    pub join_verify_url: String,
    /// The web console's root (`{public_url}/console/`): sign-in links go below it.
    pub console_url: String,
}

impl InviteSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            accept_url: config.accept_url(),
            reminder_interval: chrono::Duration::days(config.invitations.reminder_interval_days),
            reminders: config.invitations.reminders,
            expiry: chrono::Duration::days(config.invitations.expiry_days),
            link_url: format!(
                "{}/invite-links/",
                config.server.public_url.trim_end_matches('/')
            ),
            join_verify_url: format!(
                "{}/join/verify/",
                config.server.public_url.trim_end_matches('/')
            ),
            console_url: format!(
                "{}/console/",
                config.server.public_url.trim_end_matches('/')
            ),
            kept_groups: config
                .sources
                .iter()
                .flat_map(|s| {
                    s.kind
                        .managed_groups()
                        .into_iter()
                        .map(|g| ((s.org.clone(), g.to_lowercase()), s.name.clone()))
                })
                .collect(),
        }
    }
}

/// Everything roster operations need.
#[derive(Clone)]
pub struct Roster {
    pub store: Store,
    pub clock: SharedClock,
    pub invites: Arc<InviteSettings>,
}

impl Roster {
    pub fn new(store: Store, clock: SharedClock, invites: InviteSettings) -> Self {
        Self {
            store,
            clock,
            invites: Arc::new(invites),
        }
    }
}

pub type Result<T, E = RosterError> = std::result::Result<T, E>;
