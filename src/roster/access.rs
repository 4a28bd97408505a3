//! Changes of access short of removal: cancelling a pending invitation (a `cancelled` state of
//! its own, kept in history; adding the person again is a new invitation) and disabling an
//! enrolled member (reversible: enabling restores them). Both obey the integration lock, as
//! removal does: in a managed org the integration decides who has access.

use serde::Serialize;
use uuid::Uuid;

use super::audit::{Actor, record};
use super::members::{MAX_BATCH, lock_check, lock_org};
use super::{Result, Roster, RosterError};
use crate::domain::{Access, Role};
use crate::store;

/// What became of one member named in a cancel, disable or enable request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessOutcome {
    Cancelled,
    Disabled,
    Enabled,
    /// Not in the state the change applies to (the reason says which it is in).
    SkippedState,
    SkippedOwner,
    SkippedNotFound,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccessResult {
    pub member_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub outcome: AccessOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The change asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChange {
    /// invited → cancelled
    Cancel,
    /// enrolled → disabled
    Disable,
    /// disabled → enrolled
    Enable,
}

impl AccessChange {
    fn applies_to(self) -> Access {
        match self {
            AccessChange::Cancel => Access::Invited,
            AccessChange::Disable => Access::Enrolled,
            AccessChange::Enable => Access::Disabled,
        }
    }

    fn action(self) -> &'static str {
        match self {
            AccessChange::Cancel => "member.invitation_cancelled",
            AccessChange::Disable => "member.disabled",
            AccessChange::Enable => "member.enabled",
        }
    }

    fn outcome(self) -> AccessOutcome {
        match self {
            AccessChange::Cancel => AccessOutcome::Cancelled,
            AccessChange::Disable => AccessOutcome::Disabled,
            AccessChange::Enable => AccessOutcome::Enabled,
        }
    }

    fn needs(self) -> &'static str {
        match self {
            AccessChange::Cancel => "only a pending (invited) invitation can be cancelled",
            AccessChange::Disable => "only an enrolled member can be disabled",
            AccessChange::Enable => "only a disabled member can be enabled",
        }
    }
}

impl Roster {
    /// Cancels invitations, disables or enables members, one transaction for the request.
    /// Refused as a whole when an integration manages the org; members in another state are
    /// reported, not changed.
    pub async fn change_access(
        &self,
        org_id: Uuid,
        actor: &Actor,
        ids: &[Uuid],
        change: AccessChange,
    ) -> Result<Vec<AccessResult>> {
        if ids.is_empty() || ids.len() > MAX_BATCH {
            return Err(RosterError::invalid(
                "member_ids",
                format!("must list 1 to {MAX_BATCH} members"),
            ));
        }
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        lock_check(&org)?;
        let mut results = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(before) = store::members::by_id(&mut tx, org_id, id, true).await? else {
                results.push(AccessResult {
                    member_id: id,
                    email: None,
                    outcome: AccessOutcome::SkippedNotFound,
                    reason: Some("no such member in this organization".into()),
                });
                continue;
            };
            let skip = if before.access != change.applies_to() {
                Some((
                    AccessOutcome::SkippedState,
                    format!("{}; this member is {}", change.needs(), before.access),
                ))
            } else if before.role == Role::Owner && change == AccessChange::Disable {
                Some((
                    AccessOutcome::SkippedOwner,
                    "the owner cannot be disabled; transfer ownership to an admin first".into(),
                ))
            } else {
                None
            };
            if let Some((outcome, reason)) = skip {
                results.push(AccessResult {
                    member_id: id,
                    email: Some(before.member_email.clone()),
                    outcome,
                    reason: Some(reason),
                });
                continue;
            }
            let mut after = before.clone();
            match change {
                AccessChange::Cancel => {
                    after.access = Access::Cancelled;
                    after.cancelled_at = Some(now);
                    // The link dies at once; queued invitation emails and reminders are dropped.
                    store::invitations::close_for_member(&mut tx, id, now).await?;
                    store::invitations::clear_groups(&mut tx, org_id, id).await?;
                    store::outbox::cancel_for_member(
                        &mut tx,
                        id,
                        now,
                        "cancelled: invitation cancelled",
                    )
                    .await?;
                }
                AccessChange::Disable => {
                    after.access = Access::Disabled;
                    after.disabled_at = Some(now);
                }
                AccessChange::Enable => {
                    after.access = Access::Enrolled;
                    after.disabled_at = None;
                }
            }
            after.updated_at = now;
            store::members::update(&mut tx, &mut after).await?;
            record(
                &mut tx,
                now,
                Some(org_id),
                actor,
                change.action(),
                ("member", Some(id.to_string())),
                Some(&before),
                Some(&after),
            )
            .await?;
            results.push(AccessResult {
                member_id: id,
                email: Some(after.member_email.clone()),
                outcome: change.outcome(),
                reason: None,
            });
        }
        tx.commit().await?;
        Ok(results)
    }
}
