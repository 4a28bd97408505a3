//! Invitations: the email with a one-time link, and the automatic reminders that follow it.
//!
//! The link's token is random and stored only hashed (`invitations.token_hash`). The email needs
//! it in clear once, at send time: the outbox row keeps it beside the body (which holds a
//! placeholder) and the store wipes it as soon as the email is sent, given up, cancelled or its
//! link expires (`store::outbox`).

use uuid::Uuid;

use super::audit::{Actor, record};
use super::{Result, Roster};
use crate::domain::{Access, Member};
use crate::store::invitations::InvitationRow;
use crate::store::orgs::Org;
use crate::store::outbox::{LINK_TOKEN, OutboxRow};
use crate::store::{self, Tx};
use crate::token;

/// Why an invitation email goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteKind {
    Invite,
    Resend,
    Reminder,
}

impl InviteKind {
    fn as_str(self) -> &'static str {
        match self {
            InviteKind::Invite => "invite",
            InviteKind::Resend => "resend",
            InviteKind::Reminder => "reminder",
        }
    }
}

impl Roster {
    /// Creates an invitation link for `member` and queues its email, inside `tx`.
    pub(crate) async fn queue_invitation(
        &self,
        tx: &mut Tx,
        org: &Org,
        member: &Member,
        kind: InviteKind,
    ) -> Result<()> {
        let (invitation, email) = self.invitation_rows(org, member, kind);
        store::invitations::insert(tx, &invitation).await?;
        store::outbox::insert(tx, &email).await?;
        Ok(())
    }

    /// The invitation link row and its email, for `member` (written by the caller).
    pub(crate) fn invitation_rows(
        &self,
        org: &Org,
        member: &Member,
        kind: InviteKind,
    ) -> (InvitationRow, OutboxRow) {
        let now = self.clock.now();
        let secret = token::random_secret();
        let invitation = InvitationRow {
            id: Uuid::now_v7(),
            org_id: org.id,
            member_id: member.id,
            token_hash: token::hash(&secret),
            kind: kind.as_str().to_owned(),
            created_at: now,
            expires_at: now + self.invites.expiry,
            used_at: None,
        };
        // The body keeps a placeholder; the token travels beside it until the email is sent.
        let link = format!("{}{}", self.invites.accept_url, LINK_TOKEN);
        let greeting = member
            .given_name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .map(|n| format!("Hello {n},"))
            .unwrap_or_else(|| "Hello,".to_owned());
        let (subject, lead) = match kind {
            InviteKind::Reminder => (
                format!("Reminder: you are invited to join {}", org.name),
                format!(
                    "This is a reminder that you are invited to join {}.",
                    org.name
                ),
            ),
            _ => (
                format!("You are invited to join {}", org.name),
                format!("You have been invited to join {}.", org.name),
            ),
        };
        let days = self.invites.expiry.num_days();
        let body = format!(
            "{greeting}\n\n{lead}\n\nAccept the invitation here:\n{link}\n\nThe link works for {days} days.\n"
        );
        let row = OutboxRow {
            id: Uuid::now_v7(),
            org_id: Some(org.id),
            member_id: Some(member.id),
            kind: kind.as_str().to_owned(),
            idempotency_key: format!("invitation-{}", invitation.id),
            to_address: member.member_email.clone(),
            subject,
            body,
            created_at: now,
            available_at: now,
            attempts: 0,
            claimed_until: None,
            last_error: None,
            sent_at: None,
            failed_at: None,
            cancelled_at: None,
            link_token: Some(secret),
            expires_at: Some(invitation.expires_at),
        };
        (invitation, row)
    }

    /// Queues the automatic reminders that are due now; returns how many went out.
    ///
    /// A member gets `reminders` reminders, each `reminder_interval` after the previous
    /// invitation email, and only while still invited. Safe to run on several replicas at once:
    /// each member is re-read under lock and only reminded if still due.
    pub async fn send_due_reminders(&self) -> Result<usize> {
        let now = self.clock.now();
        let cutoff = now - self.invites.reminder_interval;
        let mut sent = 0;
        loop {
            let mut tx = self.store.read().await?;
            let due =
                store::members::due_reminders(&mut tx, cutoff, self.invites.reminders, 200).await?;
            tx.rollback().await?;
            if due.is_empty() {
                break;
            }
            let mut progressed = false;
            for (org_id, member_id) in due {
                let mut tx = self.store.write().await?;
                let org = super::members::lock_org(&mut tx, org_id).await?;
                let Some(before) = store::members::by_id(&mut tx, org_id, member_id, true).await?
                else {
                    continue;
                };
                let still_due = before.access == Access::Invited
                    && before.reminders_sent < self.invites.reminders
                    && before.invited_at.is_some_and(|at| at <= cutoff);
                if !still_due {
                    tx.rollback().await?;
                    continue;
                }
                let mut after = before.clone();
                after.invited_at = Some(now);
                after.invite_count += 1;
                after.reminders_sent += 1;
                after.updated_at = now;
                store::members::update(&mut tx, &mut after).await?;
                self.queue_invitation(&mut tx, &org, &after, InviteKind::Reminder)
                    .await?;
                record(
                    &mut tx,
                    now,
                    Some(org_id),
                    &Actor::System,
                    "member.reminder_sent",
                    ("member", Some(member_id.to_string())),
                    Some(&before),
                    Some(&after),
                )
                .await?;
                tx.commit().await?;
                sent += 1;
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        Ok(sent)
    }
}
