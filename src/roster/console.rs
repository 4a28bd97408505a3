//! The web console's sign-in and sessions, and what the invitee's public pages show before
//! anything is accepted.
//!
//! Owners and admins sign in with a one-time link emailed to their member address (through the
//! outbox, valid [`SIGN_IN_MINUTES`], single use, stored hashed); the operator signs in with the
//! operator token, checked by the console. A session lives server-side; the browser holds its
//! secret. Every use of a session checks again that its member is still an enrolled owner or
//! admin of its org, and ends it otherwise; a session unused for [`IDLE_MINUTES`] ends too.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::audit::{Actor, record};
use super::members::lock_org;
use super::{Result, Roster, RosterError};
use crate::domain::{Access, Email, Member, Role};
use crate::roster::join::Question;
use crate::store::console::{Session, SignInLink};
use crate::store::orgs::Org;
use crate::store::outbox::{LINK_TOKEN, OutboxRow};
use crate::store::{self};
use crate::token;

/// How long an emailed sign-in link works.
pub const SIGN_IN_MINUTES: i64 = 15;
/// A session unused this long has ended.
pub const IDLE_MINUTES: i64 = 30;
/// A session's last use is written at most this often (seconds).
const TOUCH_EVERY_SECS: i64 = 60;

/// A session just made: the secret goes into the cookie, once.
pub struct NewSession {
    pub secret: String,
    /// The org an admin's session belongs to (none for the operator).
    pub org_slug: Option<String>,
}

/// A live session, as each console request sees it.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub id: Uuid,
    pub csrf: String,
    /// The admin's org and membership; none for the operator.
    pub org: Option<Org>,
    pub member: Option<Member>,
}

impl ConsoleSession {
    /// Who console actions are recorded as.
    pub fn actor(&self) -> Actor {
        match &self.member {
            Some(m) => Actor::Console { member_id: m.id },
            None => Actor::ConsoleOperator,
        }
    }

    pub fn is_operator(&self) -> bool {
        self.org.is_none()
    }
}

/// Why an invitation link cannot be accepted, if it cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationState {
    Open,
    Accepted,
    Expired,
    Used,
    Cancelled,
    Removed,
    Suspended,
}

/// What the invitation page shows about a valid token.
#[derive(Debug, Clone)]
pub struct InvitationPreview {
    pub org_name: String,
    pub member_email: String,
    pub given_name: Option<String>,
    pub state: InvitationState,
}

/// What the public join page shows.
#[derive(Debug, Clone)]
pub struct JoinPageView {
    pub org_name: String,
    pub questions: Vec<Question>,
    pub require_approval: bool,
    /// The integration that manages the org: the page takes no requests then.
    pub managed_by: Option<String>,
}

fn may_sign_in(m: &Member) -> bool {
    m.access == Access::Enrolled && matches!(m.role, Role::Owner | Role::Admin)
}

impl Roster {
    /// Emails a sign-in link to `email` if it is an enrolled owner or admin of the org at
    /// `slug`. Says nothing either way (the caller answers the same), so the form cannot be
    /// used to learn who administers an org. A malformed address is refused.
    pub async fn request_console_link(&self, slug: &str, email: &str) -> Result<()> {
        let email =
            Email::parse(email.trim()).map_err(|e| RosterError::invalid("email", e.to_string()))?;
        if crate::domain::Slug::parse(slug.trim()).is_err() {
            return Ok(());
        }
        let (org, member) = {
            let mut tx = self.store.read().await?;
            let org = store::orgs::by_slug(&mut tx, slug.trim()).await?;
            let member = match &org {
                Some(o) => store::members::by_email(&mut tx, o.id, email.as_str(), false).await?,
                None => None,
            };
            tx.rollback().await?;
            (org, member)
        };
        let (Some(org), Some(member)) = (org, member) else {
            return Ok(());
        };
        if !may_sign_in(&member) {
            return Ok(());
        }
        let now = self.clock.now();
        let secret = token::random_secret();
        let link = SignInLink {
            id: Uuid::now_v7(),
            org_id: org.id,
            member_id: member.id,
            token_hash: token::hash(&secret),
            created_at: now,
            expires_at: now + Duration::minutes(SIGN_IN_MINUTES),
            used_at: None,
        };
        let body = format!(
            "Hello,\n\nSomeone asked to sign in to the {org} console with this address. If it was \
             you, sign in here:\n{url}sign-in/{LINK_TOKEN}\n\nThe link works once, for \
             {SIGN_IN_MINUTES} minutes. If it was not you, ignore this email.\n",
            org = org.name,
            url = self.invites.console_url,
        );
        let mail = OutboxRow {
            id: Uuid::now_v7(),
            org_id: Some(org.id),
            member_id: Some(member.id),
            kind: "console_sign_in".into(),
            idempotency_key: format!("console-sign-in-{}", link.id),
            to_address: member.member_email.clone(),
            subject: format!("Sign in to {}", org.name),
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
            expires_at: Some(link.expires_at),
        };
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org.id).await?;
        store::console::insert_link(&mut tx, &link).await?;
        store::outbox::insert(&mut tx, &mail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Spends an emailed sign-in link: a new session for its member, if they may still sign in.
    pub async fn console_sign_in(&self, secret: &str) -> Result<NewSession> {
        let now = self.clock.now();
        let hash = token::hash(secret);
        let known = {
            let mut tx = self.store.read().await?;
            let l = store::console::link_by_token_hash(&mut tx, &hash).await?;
            tx.rollback().await?;
            l.ok_or_else(|| RosterError::NotFound("sign-in link".into()))?
        };
        let used = || {
            RosterError::Gone("this sign-in link has already been used; ask for a new one".into())
        };
        if known.used_at.is_some() {
            return Err(used());
        }
        if known.expires_at <= now {
            return Err(RosterError::Gone(
                "this sign-in link has expired; ask for a new one".into(),
            ));
        }
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, known.org_id).await?;
        let member = store::members::by_id(&mut tx, org.id, known.member_id, false)
            .await?
            .filter(may_sign_in)
            .ok_or_else(|| {
                RosterError::Gone(
                    "this address can no longer sign in to this organization's console".into(),
                )
            })?;
        if !store::console::use_link(&mut tx, org.id, known.id, now).await? {
            return Err(used());
        }
        let secret = self
            .open_session(&mut tx, Some(org.id), Some(member.id), now)
            .await?;
        tx.commit().await?;
        Ok(NewSession {
            secret,
            org_slug: Some(org.slug),
        })
    }

    /// A console session for the operator (the caller has checked the operator token).
    pub async fn operator_console_session(&self) -> Result<NewSession> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let secret = self.open_session(&mut tx, None, None, now).await?;
        tx.commit().await?;
        Ok(NewSession {
            secret,
            org_slug: None,
        })
    }

    async fn open_session(
        &self,
        tx: &mut store::Tx,
        org_id: Option<Uuid>,
        member_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let secret = token::random_secret();
        let session = Session {
            id: Uuid::now_v7(),
            token_hash: token::hash(&secret),
            org_id,
            member_id,
            csrf: token::random_secret(),
            created_at: now,
            last_seen_at: now,
            ended_at: None,
        };
        store::console::insert_session(tx, &session).await?;
        let actor = match member_id {
            Some(member_id) => Actor::Console { member_id },
            None => Actor::ConsoleOperator,
        };
        record(
            tx,
            now,
            org_id,
            &actor,
            "console.signed_in",
            ("console_session", Some(session.id.to_string())),
            None::<&()>,
            None::<&()>,
        )
        .await?;
        Ok(secret)
    }

    /// The live session whose secret a browser presented, if any. An idle session, or one
    /// whose member is no longer an enrolled owner or admin, is ended here and is none.
    pub async fn console_session(&self, secret: &str) -> Result<Option<ConsoleSession>> {
        let now = self.clock.now();
        let (session, org, member) = {
            let mut tx = self.store.read().await?;
            let s = store::console::session_by_token_hash(&mut tx, &token::hash(secret)).await?;
            let (org, member) = match &s {
                Some(Session {
                    org_id: Some(org_id),
                    member_id,
                    ..
                }) => {
                    let org = store::orgs::by_id(&mut tx, *org_id).await?;
                    let member = match member_id {
                        Some(m) => store::members::by_id(&mut tx, *org_id, *m, false).await?,
                        None => None,
                    };
                    (org, member)
                }
                _ => (None, None),
            };
            tx.rollback().await?;
            (s, org, member)
        };
        let Some(session) = session.filter(|s| s.ended_at.is_none()) else {
            return Ok(None);
        };
        let idle = session.last_seen_at + Duration::minutes(IDLE_MINUTES) <= now;
        let still_admin = match session.org_id {
            None => true,
            Some(_) => org.is_some() && member.as_ref().is_some_and(may_sign_in),
        };
        if idle || !still_admin {
            let mut tx = self.store.write().await?;
            store::console::end_session(&mut tx, session.id, now).await?;
            tx.commit().await?;
            return Ok(None);
        }
        if now - session.last_seen_at >= Duration::seconds(TOUCH_EVERY_SECS) {
            let mut tx = self.store.write().await?;
            store::console::touch_session(&mut tx, session.id, now).await?;
            tx.commit().await?;
        }
        Ok(Some(ConsoleSession {
            id: session.id,
            csrf: session.csrf,
            org,
            member,
        }))
    }

    /// Signs a session out.
    pub async fn console_sign_out(&self, session: &ConsoleSession) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        if store::console::end_session(&mut tx, session.id, now).await? {
            record(
                &mut tx,
                now,
                session.org.as_ref().map(|o| o.id),
                &session.actor(),
                "console.signed_out",
                ("console_session", Some(session.id.to_string())),
                None::<&()>,
                None::<&()>,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// What an invitation link leads to, for the invitee's page. An unknown token is "not
    /// found" and says nothing about any org.
    pub async fn invitation_preview(&self, secret: &str) -> Result<InvitationPreview> {
        let now = self.clock.now();
        let not_found = || RosterError::NotFound("invitation".into());
        let mut tx = self.store.read().await?;
        let Some(invitation) =
            store::invitations::by_token_hash(&mut tx, &token::hash(secret)).await?
        else {
            tx.rollback().await?;
            return Err(not_found());
        };
        let org = store::orgs::by_id(&mut tx, invitation.org_id).await?;
        let member =
            store::members::by_id(&mut tx, invitation.org_id, invitation.member_id, false).await?;
        tx.rollback().await?;
        let (Some(org), Some(member)) = (org, member) else {
            return Err(not_found());
        };
        let state = match member.access {
            Access::Enrolled => InvitationState::Accepted,
            Access::Removed => InvitationState::Removed,
            Access::Cancelled => InvitationState::Cancelled,
            Access::Disabled => InvitationState::Suspended,
            Access::Invited if invitation.used_at.is_some() => InvitationState::Used,
            Access::Invited if invitation.expires_at <= now => InvitationState::Expired,
            Access::Invited => InvitationState::Open,
        };
        Ok(InvitationPreview {
            org_name: org.name,
            member_email: member.member_email,
            given_name: member.given_name,
            state,
        })
    }

    /// The public join page at `slug`, if it is open.
    pub async fn join_page_view(&self, slug: &str) -> Result<JoinPageView> {
        let not_found = || RosterError::NotFound("join page".into());
        let mut tx = self.store.read().await?;
        let page = store::join::page_by_slug(&mut tx, slug)
            .await?
            .filter(|p| p.enabled);
        let org = match &page {
            Some(p) => store::orgs::by_id(&mut tx, p.org_id).await?,
            None => None,
        };
        tx.rollback().await?;
        let (Some(page), Some(org)) = (page, org) else {
            return Err(not_found());
        };
        let questions: Vec<Question> = serde_json::from_str(&page.questions)
            .map_err(|_| RosterError::Store(store::StoreError::Corrupt("questions".into())))?;
        Ok(JoinPageView {
            managed_by: org.integration(),
            org_name: org.name,
            questions,
            require_approval: page.require_approval,
        })
    }
}
