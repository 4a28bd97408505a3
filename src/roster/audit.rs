//! Who did a thing, and writing what they did to the append-only audit log.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::store::audit::AuditRow;
use crate::store::{self, Tx};

/// The one who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The operator token (all orgs).
    Operator,
    /// An org admin token.
    AdminToken { id: Uuid, name: String },
    /// The command line on the server.
    Cli,
    /// rosterd itself (reminders, expiry).
    System,
    /// The invited person, through their invitation link.
    Invitee { member_id: Uuid },
    /// A person who asked to join through an org's public join page, by request id.
    Applicant { request_id: Uuid },
    /// An identity provider over SCIM, by its token.
    ScimClient { id: Uuid, name: String },
    /// A sync run of a configured source (or an import job), by run id.
    Sync { source: String, run_id: Uuid },
    /// An owner or admin signed in to the web console, by member id.
    Console { member_id: Uuid },
    /// The operator signed in to the web console.
    ConsoleOperator,
}

impl Actor {
    /// Who, in words (as the audit log's `actor_label`).
    pub fn label(&self) -> String {
        self.parts().2
    }

    pub(crate) fn parts(&self) -> (&'static str, Option<String>, String) {
        match self {
            Actor::Operator => ("operator", None, "operator token".into()),
            Actor::AdminToken { id, name } => (
                "admin_token",
                Some(id.to_string()),
                format!("admin token {name}"),
            ),
            Actor::Cli => ("cli", None, "command line".into()),
            Actor::System => ("system", None, "rosterd".into()),
            Actor::ScimClient { id, name } => (
                "scim_client",
                Some(id.to_string()),
                format!("SCIM client {name}"),
            ),
            Actor::Sync { source, run_id } => (
                "sync",
                Some(run_id.to_string()),
                format!("sync of {source}"),
            ),
            Actor::Applicant { request_id } => (
                "applicant",
                Some(request_id.to_string()),
                "join request".into(),
            ),
            Actor::Console { member_id } => (
                "console",
                Some(member_id.to_string()),
                format!("console: member {member_id}"),
            ),
            Actor::ConsoleOperator => ("console_operator", None, "console: operator".into()),
            Actor::Invitee { member_id } => (
                "invitee",
                Some(member_id.to_string()),
                "invited person".into(),
            ),
        }
    }
}

/// Appends one audit entry. `before`/`after` are snapshots of the subject.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record<B: Serialize, A: Serialize>(
    tx: &mut Tx,
    at: DateTime<Utc>,
    org_id: Option<Uuid>,
    actor: &Actor,
    action: &str,
    subject: (&str, Option<String>),
    before: Option<&B>,
    after: Option<&A>,
) -> store::Result<()> {
    let row = entry(at, org_id, actor, action, subject, before, after);
    store::audit::append(tx, &row).await?;
    super::events::publish(tx, std::slice::from_ref(&row)).await
}

/// One audit entry, for the caller to write (alone or with others).
#[allow(clippy::too_many_arguments)]
pub(crate) fn entry<B: Serialize, A: Serialize>(
    at: DateTime<Utc>,
    org_id: Option<Uuid>,
    actor: &Actor,
    action: &str,
    subject: (&str, Option<String>),
    before: Option<&B>,
    after: Option<&A>,
) -> AuditRow {
    let (actor_kind, actor_id, actor_label) = actor.parts();
    let json = |v: Option<String>| v;
    AuditRow {
        id: Uuid::now_v7(),
        org_id,
        at,
        actor_kind: actor_kind.to_owned(),
        actor_id,
        actor_label,
        action: action.to_owned(),
        subject_kind: subject.0.to_owned(),
        subject_id: subject.1,
        before: json(before.and_then(|b| serde_json::to_string(b).ok())),
        after: json(after.and_then(|a| serde_json::to_string(a).ok())),
    }
}
