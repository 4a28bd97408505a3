//! Invite links: an admin makes a URL and an unlock code (no email is sent) for one person to
//! join with. The invitee opens the URL, types the code and their email, and becomes an enrolled
//! member with the link's role and groups.
//!
//! The link's token is 256 random bits stored as a SHA-256 hash, like every token. The code is
//! short enough to read out, so it is only ever checked together with a valid token: it is
//! stored as a SHA-256 hash salted with the link id (a stolen database yields no token to try
//! codes against), compared in constant time, counted per link (`MAX_WRONG_CODES` wrong codes
//! kill the link) and per client (the failed-authentication limiter at the HTTP edge).
//!
//! The email the invitee types is not verified: the code is the proof. A link may name the
//! intended email, and then only that address is accepted. So a link only ever makes a new
//! member, unless it was made for an address that has a record: then it enrols that invited
//! person (their role becomes the link's, never touching the owner) or re-adds that past member
//! (not in an integration-managed org, where the integration decides who comes back).

use chrono::Duration;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::audit::{Actor, record};
use super::members::lock_org;
use super::{FieldError, Result, Roster, RosterError};
use crate::domain::{Access, Email, Member, Role};
use crate::store::invite_links::InviteLink;
use crate::store::{self, Tx};
use crate::token;

/// Wrong codes a link takes before it dies.
pub const MAX_WRONG_CODES: i64 = 10;
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTVWXYZ23456789";
const GENERATED_CODE_LEN: usize = 10;
const MIN_CODE: usize = 6;
const MAX_CODE: usize = 64;

/// What an admin asks for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInviteLink {
    pub description: String,
    /// Only this address may accept, when given.
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The unlock code; generated when absent.
    #[serde(default)]
    pub code: Option<String>,
}

/// A link just made: the only time its URL and code are seen.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedInviteLink {
    #[serde(flatten)]
    pub link: InviteLinkView,
    pub url: String,
    pub code: String,
}

/// A link as admins see it (never its token or code).
#[derive(Debug, Clone, Serialize)]
pub struct InviteLinkView {
    pub id: Uuid,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub role: String,
    pub groups: Vec<String>,
    /// `pending`, `accepted`, `expired`, `revoked` or `locked` (too many wrong codes).
    pub status: &'static str,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    pub wrong_codes: i64,
}

fn status(l: &InviteLink, now: chrono::DateTime<chrono::Utc>) -> &'static str {
    if l.accepted_at.is_some() {
        "accepted"
    } else if l.revoked_at.is_some() {
        "revoked"
    } else if l.failed_codes >= MAX_WRONG_CODES {
        "locked"
    } else if l.expires_at <= now {
        "expired"
    } else {
        "pending"
    }
}

fn view(l: InviteLink, groups: Vec<String>, now: chrono::DateTime<chrono::Utc>) -> InviteLinkView {
    InviteLinkView {
        status: status(&l, now),
        id: l.id,
        description: l.description,
        email: l.email,
        role: l.role,
        groups,
        created_by: l.created_by,
        created_at: l.created_at,
        expires_at: l.expires_at,
        accepted_at: l.accepted_at,
        member_id: l.member_id,
        revoked_at: l.revoked_at,
        wrong_codes: l.failed_codes,
    }
}

/// Codes compare ignoring surrounding space and the case of ASCII letters (other letters must
/// match exactly: full case folding would make `ß` and `SS` the same code).
fn code_hash(link_id: Uuid, code: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(link_id.as_bytes());
    h.update(code.trim().to_ascii_uppercase().as_bytes());
    h.finalize().to_vec()
}

fn generate_code() -> String {
    let mut rng = rand::rng();
    (0..GENERATED_CODE_LEN)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

impl Roster {
    /// The URL an invite link's token is appended to.
    fn invite_link_url(&self, token: &str) -> String {
        format!("{}{token}", self.invites.link_url)
    }

    pub async fn create_invite_link(
        &self,
        org_id: Uuid,
        actor: &Actor,
        new: NewInviteLink,
    ) -> Result<CreatedInviteLink> {
        let mut errors = Vec::new();
        let description = match super::error::check_label("description", &new.description, 200) {
            Ok(d) => Some(d),
            Err(RosterError::Invalid(e)) => {
                errors.extend(e);
                None
            }
            Err(e) => return Err(e),
        };
        let email = match new
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            Some(e) => match Email::parse(e) {
                Ok(e) => Some(e),
                Err(err) => {
                    errors.push(FieldError::new("email", err.to_string()));
                    None
                }
            },
            None => None,
        };
        let role = new.role.unwrap_or(Role::Member);
        if role == Role::Owner {
            errors.push(FieldError::new(
                "role",
                "an org has exactly one owner; invite the person as admin and transfer ownership",
            ));
        }
        let code = match new.code {
            Some(c) => {
                let c = c.trim().to_owned();
                let n = c.chars().count();
                if !(MIN_CODE..=MAX_CODE).contains(&n) {
                    errors.push(FieldError::new(
                        "code",
                        format!("must be {MIN_CODE} to {MAX_CODE} characters"),
                    ));
                } else if c.chars().any(char::is_control) {
                    errors.push(FieldError::new(
                        "code",
                        "must not contain control characters",
                    ));
                }
                c
            }
            None => generate_code(),
        };
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        let groups = self
            .invitation_groups(&mut tx, &org, &new.groups, "link", &mut errors)
            .await?;
        // The org's rule names the request's own field here.
        for e in &mut errors {
            if let Some(rest) = e.field.strip_prefix("link.") {
                e.field = rest.to_owned();
            }
        }
        let Some(description) = description else {
            return Err(RosterError::Invalid(errors));
        };
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
        }
        let id = Uuid::now_v7();
        let secret = token::random_secret();
        let link = InviteLink {
            id,
            org_id,
            token_hash: token::hash(&secret),
            code_hash: code_hash(id, &code),
            description,
            email: email.map(|e| e.as_str().to_owned()),
            role: role.as_str().to_owned(),
            created_by: actor.label(),
            created_at: now,
            expires_at: now + Duration::days(org.invite_link_days),
            revoked_at: None,
            accepted_at: None,
            member_id: None,
            failed_codes: 0,
        };
        store::invite_links::insert(&mut tx, &link).await?;
        let group_ids: Vec<Uuid> = groups.iter().map(|(id, _)| *id).collect();
        store::invite_links::add_groups(&mut tx, org_id, id, &group_ids).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "invite_link.created",
            ("invite_link", Some(id.to_string())),
            None::<&InviteLink>,
            Some(&serde_json::json!({"link": &link, "groups": group_ids})),
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedInviteLink {
            url: self.invite_link_url(&secret),
            code,
            link: view(link, groups.into_iter().map(|(_, n)| n).collect(), now),
        })
    }

    /// An org's links, newest first (at most 1000).
    pub async fn invite_links(&self, org_id: Uuid) -> Result<Vec<InviteLinkView>> {
        let now = self.clock.now();
        let mut tx = self.store.read().await?;
        let links = store::invite_links::list(&mut tx, org_id, 1000).await?;
        let names = store::invite_links::group_names(&mut tx, org_id).await?;
        tx.rollback().await?;
        let mut by_link: std::collections::HashMap<Uuid, Vec<String>> =
            std::collections::HashMap::new();
        for (link, name) in names {
            by_link.entry(link).or_default().push(name);
        }
        Ok(links
            .into_iter()
            .map(|l| {
                let groups = by_link.remove(&l.id).unwrap_or_default();
                view(l, groups, now)
            })
            .collect())
    }

    /// Revokes a pending link: it stops working at once.
    pub async fn revoke_invite_link(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
    ) -> Result<InviteLinkView> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let mut link = store::invite_links::by_id(&mut tx, org_id, id, true)
            .await?
            .ok_or_else(|| RosterError::NotFound("invite link".into()))?;
        if link.accepted_at.is_some() {
            return Err(RosterError::conflict(
                "link_used",
                "this link has been accepted; remove the member instead",
            ));
        }
        if link.revoked_at.is_none() {
            store::invite_links::revoke(&mut tx, org_id, id, now).await?;
            link.revoked_at = Some(now);
            record(
                &mut tx,
                now,
                Some(org_id),
                actor,
                "invite_link.revoked",
                ("invite_link", Some(id.to_string())),
                None::<&InviteLink>,
                Some(&link),
            )
            .await?;
        }
        let groups = store::invite_links::groups_of(&mut tx, org_id, id).await?;
        tx.commit().await?;
        Ok(view(
            link,
            groups.into_iter().map(|(_, n)| n).collect(),
            now,
        ))
    }

    /// Whether an invite link's token is one that can still be accepted (for the invitee's
    /// page); the link's org name and description when it is.
    pub async fn open_invite_link(&self, secret: &str) -> Result<(String, String)> {
        let now = self.clock.now();
        let mut tx = self.store.read().await?;
        let link = store::invite_links::by_token_hash(&mut tx, &token::hash(secret)).await?;
        let org = match &link {
            Some(l) => store::orgs::by_id(&mut tx, l.org_id).await?,
            None => None,
        };
        tx.rollback().await?;
        let (Some(link), Some(org)) = (link, org) else {
            return Err(RosterError::NotFound("invite link".into()));
        };
        usable(&link, now)?;
        Ok((org.name, link.description))
    }

    /// The invitee's side: token, code and email make an enrolled member. Nothing is written
    /// for an unknown token; a wrong code is counted against the link.
    pub async fn accept_invite_link(
        &self,
        secret: &str,
        code: &str,
        email: &str,
    ) -> Result<Member> {
        let email =
            Email::parse(email).map_err(|e| RosterError::invalid("email", e.to_string()))?;
        let now = self.clock.now();
        // Look the token up on the read pool: a guess never touches the writer.
        let link = {
            let mut tx = self.store.read().await?;
            let l = store::invite_links::by_token_hash(&mut tx, &token::hash(secret)).await?;
            tx.rollback().await?;
            l.ok_or_else(|| RosterError::NotFound("invite link".into()))?
        };
        usable(&link, now)?;
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, link.org_id).await?;
        let link = store::invite_links::by_id(&mut tx, org.id, link.id, true)
            .await?
            .ok_or_else(|| RosterError::NotFound("invite link".into()))?;
        usable(&link, now)?;
        let given: Vec<u8> = code_hash(link.id, code);
        if !bool::from(given.ct_eq(&link.code_hash)) {
            let n = store::invite_links::count_failure(&mut tx, org.id, link.id).await?;
            tx.commit().await?;
            return Err(RosterError::WrongCode {
                remaining: (MAX_WRONG_CODES - n).max(0),
            });
        }
        if let Some(intended) = &link.email
            && Email::parse(intended).map(|e| e.key()).ok() != Some(email.key())
        {
            return Err(RosterError::invalid(
                "email",
                "this link was made for a different email address",
            ));
        }
        let role: Role = link
            .role
            .parse()
            .map_err(|_| RosterError::Store(store::StoreError::Corrupt("link role".into())))?;
        let existing = store::members::by_email(&mut tx, org.id, email.as_str(), true).await?;
        // A link makes a new member. It reaches an existing member's record only when the admin
        // made it for that very address: the typed email is not verified, so a link holder must
        // not be able to take over someone else's invitation, role or past membership.
        let member = match existing {
            None => {
                self.insert_by_link(&mut tx, org.id, &email, role, now)
                    .await?
            }
            Some(_) if link.email.is_none() => {
                return Err(RosterError::conflict(
                    "address_has_membership",
                    "this address already has a membership in this organization; ask an admin \
                     to invite it",
                ));
            }
            Some(m) if matches!(m.access, Access::Enrolled | Access::Disabled) => {
                return Err(RosterError::conflict(
                    "already_member",
                    "this address is already a member of the organization",
                ));
            }
            Some(m) if m.access.is_gone() && org.integration().is_some() => {
                // Whoever the integration removed comes back through the integration.
                return Err(RosterError::Locked {
                    integration: org.integration().unwrap_or_default(),
                });
            }
            Some(before) => self.enrol_by_link(&mut tx, before, role, now).await?,
        };
        let invitee = Actor::Invitee {
            member_id: member.id,
        };
        let groups = store::invite_links::groups_of(&mut tx, org.id, link.id).await?;
        self.join_groups(&mut tx, org.id, &invitee, member.id, &groups)
            .await?;
        self.join_invitation_groups(&mut tx, org.id, &invitee, member.id)
            .await?;
        store::invite_links::accept(&mut tx, org.id, link.id, member.id, now).await?;
        record(
            &mut tx,
            now,
            Some(org.id),
            &invitee,
            "member.joined_by_link",
            ("member", Some(member.id.to_string())),
            None::<&Member>,
            Some(&serde_json::json!({"member": &member, "invite_link": link.id})),
        )
        .await?;
        tx.commit().await?;
        Ok(member)
    }

    /// An invited or past member comes in through a link: enrolled now.
    async fn enrol_by_link(
        &self,
        tx: &mut Tx,
        before: Member,
        role: Role,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Member> {
        let mut after = before.clone();
        after.access = Access::Enrolled;
        after.enrolled_at = Some(now);
        after.ever_enrolled = true;
        after.removed_at = None;
        after.cancelled_at = None;
        if after.role != Role::Owner {
            after.role = role;
        }
        after.login_email = Some(before.member_email.clone());
        after.updated_at = now;
        store::members::update(tx, &mut after).await?;
        store::invitations::close_for_member(tx, after.id, now).await?;
        store::outbox::cancel_for_member(tx, after.id, now, "cancelled: joined by invite link")
            .await?;
        Ok(after)
    }

    async fn insert_by_link(
        &self,
        tx: &mut Tx,
        org_id: Uuid,
        email: &Email,
        role: Role,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Member> {
        let mut m = Member::joined(org_id, email.as_str(), role, now);
        store::members::insert(tx, &mut m).await?;
        Ok(m)
    }
}

/// Refuses a link that can no longer be accepted, saying why.
fn usable(link: &InviteLink, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
    match status(link, now) {
        "pending" => Ok(()),
        "accepted" => Err(RosterError::Gone(
            "this invite link has already been used".into(),
        )),
        "revoked" => Err(RosterError::Gone(
            "this invite link has been revoked; ask an admin for a new one".into(),
        )),
        "locked" => Err(RosterError::Gone(
            "this invite link took too many wrong codes and no longer works; ask an admin for a \
             new one"
                .into(),
        )),
        _ => Err(RosterError::Gone(
            "this invite link has expired; ask an admin for a new one".into(),
        )),
    }
}
