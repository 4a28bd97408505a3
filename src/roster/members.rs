//! Member operations: add, resend invitations, remove, accept, activity, role changes and
//! ownership transfer. Every one is a single transaction with its audit entries.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{Actor, record};
use super::invites::InviteKind;
use super::{FieldError, Result, Roster, RosterError};
use crate::domain::{Access, Email, Member, Role};
use crate::store::orgs::Org;
use crate::store::{self, Tx};
use crate::token;

/// Most members one request may add, resend to or remove.
pub const MAX_BATCH: usize = 1000;
const MAX_NAME: usize = 200;

/// A person to add.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub email: String,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub family_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Groups (by name) the person joins when they accept; joined at once if their access is
    /// restored without an invitation.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Phone numbers, set for a new or re-added member (one already here keeps theirs).
    #[serde(default)]
    pub phones: Vec<super::phones::NewPhone>,
    /// Values of the org's own attributes, by attribute name (see `roster::attributes`); set
    /// for a new or re-added member.
    #[serde(default)]
    pub attributes: super::attributes::ValueMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddOutcome {
    /// New member, invitation queued.
    Invited,
    /// Removed before and never enrolled: invited again.
    Reinvited,
    /// Removed before after enrolling: access restored at once.
    Reenrolled,
    /// Already invited or enrolled: nothing changed.
    AlreadyMember,
}

#[derive(Debug, Clone, Serialize)]
pub struct AddResult {
    pub email: String,
    pub member_id: Uuid,
    pub outcome: AddOutcome,
    pub access: Access,
    /// The groups the invitation names (joined on acceptance), or joined at once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResendOutcome {
    Sent,
    SkippedEnrolled,
    SkippedRemoved,
    SkippedNotFound,
    /// Mailed within the org's cool-down (`resend_cooldown_secs`).
    SkippedCooldown,
    SkippedCancelled,
    SkippedDisabled,
}

impl ResendOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ResendOutcome::Sent => "sent",
            ResendOutcome::SkippedEnrolled => "skipped_enrolled",
            ResendOutcome::SkippedRemoved => "skipped_removed",
            ResendOutcome::SkippedNotFound => "skipped_not_found",
            ResendOutcome::SkippedCooldown => "skipped_cooldown",
            ResendOutcome::SkippedCancelled => "skipped_cancelled",
            ResendOutcome::SkippedDisabled => "skipped_disabled",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ResendResult {
    pub member_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub outcome: ResendOutcome,
    /// Why nothing was sent, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveOutcome {
    Removed,
    SkippedOwner,
    SkippedAlreadyRemoved,
    /// The invitation was cancelled: there is no access to take away.
    SkippedCancelled,
    SkippedNotFound,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoveResult {
    pub member_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub outcome: RemoveOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Changes an admin may make to a member directly. Absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub family_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Values of the org's own attributes to set (`null` clears one); the others stay.
    #[serde(default)]
    pub attributes: Option<super::attributes::ValueMap>,
}

fn clean_name(field: String, v: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())?;
    if v.chars().count() > MAX_NAME {
        errors.push(FieldError::new(
            field,
            format!("at most {MAX_NAME} characters"),
        ));
    } else if v.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Some(v)
}

fn check_batch(field: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(RosterError::invalid(field, "must list at least one member"));
    }
    if n > MAX_BATCH {
        return Err(RosterError::invalid(
            field,
            format!("at most {MAX_BATCH} members per request (got {n})"),
        ));
    }
    Ok(())
}

/// Refuses a request that invites more people than the org allows at once.
pub(crate) fn check_invite_limit(
    field: &str,
    n: usize,
    limit: i64,
    setting: &'static str,
    what: &str,
) -> Result<()> {
    if n as i64 > limit {
        return Err(RosterError::LimitExceeded {
            field: field.to_owned(),
            setting,
            limit,
            message: format!(
                "this organization invites at most {limit} {what} (setting `{setting}`); \
                 this request has {n}"
            ),
        });
    }
    Ok(())
}

/// Locks the org for this write transaction (see `store::orgs::lock`); always the first lock a
/// roster write takes, so locks are taken in one order everywhere.
pub(crate) async fn lock_org(tx: &mut Tx, org_id: Uuid) -> Result<Org> {
    store::orgs::lock(tx, org_id)
        .await?
        .ok_or_else(|| RosterError::NotFound("organization".into()))
}

/// Takes a member's access away: removed now, open invitation links closed, emails not yet
/// sent cancelled. Every removal (by hand, by SCIM) goes through here; the caller writes the
/// row and the audit entry.
pub(crate) async fn revoke_access(
    tx: &mut Tx,
    m: &mut Member,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    m.access = Access::Removed;
    m.removed_at = Some(now);
    m.disabled_at = None;
    m.contact_email = None;
    store::invitations::close_for_member(tx, m.id, now).await?;
    store::invitations::clear_groups(tx, m.org_id, m.id).await?;
    store::outbox::cancel_for_member(tx, m.id, now, "cancelled: member removed").await?;
    Ok(())
}

pub(crate) fn lock_check(org: &Org) -> Result<()> {
    match org.integration() {
        Some(integration) => Err(RosterError::Locked { integration }),
        None => Ok(()),
    }
}

impl Roster {
    /// Adds people (or re-adds removed ones) per the state machine. The whole request is
    /// checked first: one bad entry rejects it and nothing changes.
    pub async fn add_members(
        &self,
        org_id: Uuid,
        actor: &Actor,
        people: Vec<NewMember>,
    ) -> Result<Vec<AddResult>> {
        check_batch("members", people.len())?;
        let mut errors = Vec::new();
        let mut parsed = Vec::with_capacity(people.len());
        let mut seen = std::collections::HashSet::new();
        for (i, p) in people.into_iter().enumerate() {
            let email = match Email::parse(&p.email) {
                Ok(e) => e,
                Err(e) => {
                    errors.push(FieldError::new(
                        format!("members[{i}].email"),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            if !seen.insert(email.key()) {
                errors.push(FieldError::new(
                    format!("members[{i}].email"),
                    format!("`{email}` is listed more than once"),
                ));
            }
            let role = p.role.unwrap_or(Role::Member);
            if role == Role::Owner {
                errors.push(FieldError::new(
                    format!("members[{i}].role"),
                    "an org has exactly one owner; add the person as admin and transfer ownership",
                ));
            }
            let given = clean_name(
                format!("members[{i}].given_name"),
                p.given_name,
                &mut errors,
            );
            let family = clean_name(
                format!("members[{i}].family_name"),
                p.family_name,
                &mut errors,
            );
            let display = clean_name(
                format!("members[{i}].display_name"),
                p.display_name,
                &mut errors,
            );
            let mut names = Vec::with_capacity(p.groups.len());
            for (j, g) in p.groups.into_iter().enumerate() {
                match clean_name(format!("members[{i}].groups[{j}]"), Some(g), &mut errors) {
                    Some(g) => names.push(g),
                    None => errors.push(FieldError::new(
                        format!("members[{i}].groups[{j}]"),
                        "must name a group",
                    )),
                }
            }
            let phones = match super::phones::check_list(
                &format!("members[{i}].phones"),
                p.phones
                    .into_iter()
                    .map(crate::domain::Phone::from)
                    .collect(),
            ) {
                Ok(list) => list,
                Err(e) => {
                    errors.extend(e);
                    Vec::new()
                }
            };
            parsed.push((
                email,
                role,
                given,
                family,
                display,
                (names, phones, p.attributes),
            ));
        }
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
        }

        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        check_invite_limit(
            "members",
            parsed.len(),
            org.invite_limit,
            "invite_limit",
            "addresses per request",
        )?;
        let schema = super::attributes::Schema::load(&mut tx, org_id).await?;
        let mut resolved = Vec::with_capacity(parsed.len());
        for (i, (email, role, given, family, display, (names, phones, attrs))) in
            parsed.into_iter().enumerate()
        {
            let groups = self
                .invitation_groups(&mut tx, &org, &names, &format!("members[{i}]"), &mut errors)
                .await?;
            let field = format!("members[{i}].attributes");
            let attrs = schema.check_json(&field, &attrs, &mut errors);
            resolved.push((
                email,
                role,
                given,
                family,
                display,
                (groups, phones, (attrs, field)),
            ));
        }
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
        }
        let mut results = Vec::with_capacity(resolved.len());
        for (email, role, given, family, display, (groups, phones, (attrs, field))) in resolved {
            let group_names: Vec<String> = groups.iter().map(|(_, n)| n.clone()).collect();
            let group_ids: Vec<Uuid> = groups.iter().map(|(id, _)| *id).collect();
            let existing = store::members::by_email(&mut tx, org_id, email.as_str(), true).await?;
            let result = match existing {
                Some(m) if !m.access.is_gone() => AddResult {
                    email: m.member_email.clone(),
                    member_id: m.id,
                    outcome: AddOutcome::AlreadyMember,
                    access: m.access,
                    groups: Vec::new(),
                },
                Some(before) => {
                    let mut after = before.clone();
                    after.role = role;
                    after.given_name = given.or(after.given_name);
                    after.family_name = family.or(after.family_name);
                    after.display_name = display.or(after.display_name);
                    after.removed_at = None;
                    after.cancelled_at = None;
                    after.updated_at = now;
                    let outcome = if before.ever_enrolled {
                        after.access = Access::Enrolled;
                        AddOutcome::Reenrolled
                    } else {
                        after.access = Access::Invited;
                        after.invited_at = Some(now);
                        after.invite_count += 1;
                        after.reminders_sent = 0;
                        AddOutcome::Reinvited
                    };
                    store::members::update(&mut tx, &mut after).await?;
                    if outcome == AddOutcome::Reinvited {
                        store::invitations::add_groups(&mut tx, org_id, after.id, &group_ids, now)
                            .await?;
                        self.queue_invitation(&mut tx, &org, &after, InviteKind::Invite)
                            .await?;
                    } else {
                        self.join_groups(&mut tx, org_id, actor, after.id, &groups)
                            .await?;
                    }
                    record(
                        &mut tx,
                        now,
                        Some(org_id),
                        actor,
                        "member.readded",
                        ("member", Some(after.id.to_string())),
                        Some(&before),
                        Some(&after),
                    )
                    .await?;
                    self.add_phones(&mut tx, actor, &after, &phones).await?;
                    super::attributes::write_values(
                        &mut tx, now, org_id, actor, after.id, &schema, &attrs, true, &field,
                    )
                    .await?;
                    AddResult {
                        email: after.member_email.clone(),
                        member_id: after.id,
                        outcome,
                        access: after.access,
                        groups: group_names,
                    }
                }
                None => {
                    let m = self
                        .insert_invited(&mut tx, &org, actor, email, role, given, family, display)
                        .await?;
                    store::invitations::add_groups(&mut tx, org_id, m.id, &group_ids, now).await?;
                    self.add_phones(&mut tx, actor, &m, &phones).await?;
                    super::attributes::write_values(
                        &mut tx, now, org_id, actor, m.id, &schema, &attrs, true, &field,
                    )
                    .await?;
                    AddResult {
                        email: m.member_email.clone(),
                        member_id: m.id,
                        outcome: AddOutcome::Invited,
                        access: m.access,
                        groups: group_names,
                    }
                }
            };
            results.push(result);
        }
        tx.commit().await?;
        Ok(results)
    }

    /// Inserts a new invited member and queues their invitation.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn insert_invited(
        &self,
        tx: &mut Tx,
        org: &Org,
        actor: &Actor,
        email: Email,
        role: Role,
        given_name: Option<String>,
        family_name: Option<String>,
        display_name: Option<String>,
    ) -> Result<Member> {
        let now = self.clock.now();
        let mut m = Member {
            id: Uuid::now_v7(),
            org_id: org.id,
            given_name,
            family_name,
            display_name,
            member_email: email.as_str().to_owned(),
            login_email: None,
            role,
            access: Access::Invited,
            added_at: now,
            invited_at: Some(now),
            invite_count: 1,
            reminders_sent: 0,
            enrolled_at: None,
            last_active_at: None,
            removed_at: None,
            activity_at: now,
            ever_enrolled: false,
            updated_at: now,
            user_name: email.as_str().to_owned(),
            external_id: None,
            scim_data: None,
            version: 1,
            scim_deleted: false,
            cancelled_at: None,
            disabled_at: None,
            points: 0,
            monthly_fee: None,
            currency: None,
            total_paid: 0,
            contact_email: None,
        };
        store::members::insert(tx, &mut m).await?;
        self.queue_invitation(tx, org, &m, InviteKind::Invite)
            .await?;
        record(
            tx,
            now,
            Some(org.id),
            actor,
            "member.added",
            ("member", Some(m.id.to_string())),
            None::<&Member>,
            Some(&m),
        )
        .await?;
        Ok(m)
    }

    /// Resends invitations: only invited members get an email; the others are reported.
    pub async fn resend_invites(
        &self,
        org_id: Uuid,
        actor: &Actor,
        ids: &[Uuid],
    ) -> Result<Vec<ResendResult>> {
        check_batch("member_ids", ids.len())?;
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        let mut results = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(before) = store::members::by_id(&mut tx, org_id, id, true).await? else {
                results.push(ResendResult {
                    member_id: id,
                    email: None,
                    outcome: ResendOutcome::SkippedNotFound,
                    reason: Some("no such member in this organization".into()),
                });
                continue;
            };
            let cooldown = chrono::Duration::seconds(org.resend_cooldown_secs);
            let skip = match before.access {
                Access::Enrolled => Some((
                    ResendOutcome::SkippedEnrolled,
                    "already enrolled: has accepted the invitation".to_owned(),
                )),
                Access::Removed => Some((
                    ResendOutcome::SkippedRemoved,
                    "removed: add the person again to invite them".to_owned(),
                )),
                Access::Cancelled => Some((
                    ResendOutcome::SkippedCancelled,
                    "the invitation was cancelled: add the person again to invite them".to_owned(),
                )),
                Access::Disabled => Some((
                    ResendOutcome::SkippedDisabled,
                    "disabled: has accepted before; enable the member to restore access".to_owned(),
                )),
                Access::Invited => match before.invited_at {
                    Some(last) if org.resend_cooldown_secs > 0 && now < last + cooldown => Some((
                        ResendOutcome::SkippedCooldown,
                        format!(
                            "an invitation went to this person {} s ago; this organization waits \
                             {} s between invitation emails",
                            (now - last).num_seconds().max(0),
                            org.resend_cooldown_secs
                        ),
                    )),
                    _ => None,
                },
            };
            if let Some((outcome, reason)) = skip {
                results.push(ResendResult {
                    member_id: id,
                    email: Some(before.member_email.clone()),
                    outcome,
                    reason: Some(reason),
                });
                continue;
            }
            let mut after = before.clone();
            after.invited_at = Some(now);
            after.invite_count += 1;
            after.updated_at = now;
            store::members::update(&mut tx, &mut after).await?;
            self.queue_invitation(&mut tx, &org, &after, InviteKind::Resend)
                .await?;
            record(
                &mut tx,
                now,
                Some(org_id),
                actor,
                "member.invite_resent",
                ("member", Some(id.to_string())),
                Some(&before),
                Some(&after),
            )
            .await?;
            results.push(ResendResult {
                member_id: id,
                email: Some(after.member_email.clone()),
                outcome: ResendOutcome::Sent,
                reason: None,
            });
        }
        tx.commit().await?;
        Ok(results)
    }

    /// Resends to every invited member of the org, a batch at a time (each batch its own
    /// transaction, each member checked again inside it, the cool-down applied).
    pub async fn resend_all_invited(
        &self,
        org_id: Uuid,
        actor: &Actor,
    ) -> Result<Vec<ResendResult>> {
        const BATCH: i64 = 500;
        let mut results = Vec::new();
        let mut after = None;
        loop {
            let mut rtx = self.store.read().await?;
            let ids = store::members::invited_ids(&mut rtx, org_id, after, BATCH).await?;
            rtx.rollback().await?;
            let Some(&last) = ids.last() else {
                break;
            };
            after = Some(last);
            results.extend(self.resend_invites(org_id, actor, &ids).await?);
            if (ids.len() as i64) < BATCH {
                break;
            }
        }
        Ok(results)
    }

    /// Removes members by hand. Refused as a whole when an integration manages the org.
    pub async fn remove_members(
        &self,
        org_id: Uuid,
        actor: &Actor,
        ids: &[Uuid],
    ) -> Result<Vec<RemoveResult>> {
        self.remove_members_reachable(org_id, actor, ids, None)
            .await
    }

    /// Removes members as [`Roster::remove_members`] does, recording `contact_email` on each
    /// member removed: where the former member can still be reached.
    pub async fn remove_members_reachable(
        &self,
        org_id: Uuid,
        actor: &Actor,
        ids: &[Uuid],
        contact_email: Option<&str>,
    ) -> Result<Vec<RemoveResult>> {
        check_batch("member_ids", ids.len())?;
        let contact = contact_email
            .map(|c| {
                Email::parse(c)
                    .map(|e| e.as_str().to_owned())
                    .map_err(|e| RosterError::invalid("contact_email", e.to_string()))
            })
            .transpose()?;
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        lock_check(&org)?;
        let mut results = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(before) = store::members::by_id(&mut tx, org_id, id, true).await? else {
                results.push(RemoveResult {
                    member_id: id,
                    email: None,
                    outcome: RemoveOutcome::SkippedNotFound,
                    reason: Some("no such member in this organization".into()),
                });
                continue;
            };
            let skip = if before.role == Role::Owner {
                Some((
                    RemoveOutcome::SkippedOwner,
                    "the owner cannot be removed; transfer ownership to an admin first",
                ))
            } else if before.access == Access::Removed {
                Some((RemoveOutcome::SkippedAlreadyRemoved, "already removed"))
            } else if before.access == Access::Cancelled {
                Some((
                    RemoveOutcome::SkippedCancelled,
                    "the invitation was cancelled; there is no access to remove",
                ))
            } else {
                None
            };
            if let Some((outcome, reason)) = skip {
                results.push(RemoveResult {
                    member_id: id,
                    email: Some(before.member_email.clone()),
                    outcome,
                    reason: Some(reason.into()),
                });
                continue;
            }
            let mut after = before.clone();
            revoke_access(&mut tx, &mut after, now).await?;
            after.contact_email.clone_from(&contact);
            after.updated_at = now;
            store::members::update(&mut tx, &mut after).await?;
            record(
                &mut tx,
                now,
                Some(org_id),
                actor,
                "member.removed",
                ("member", Some(id.to_string())),
                Some(&before),
                Some(&after),
            )
            .await?;
            results.push(RemoveResult {
                member_id: id,
                email: Some(after.member_email.clone()),
                outcome: RemoveOutcome::Removed,
                reason: None,
            });
        }
        tx.commit().await?;
        Ok(results)
    }

    /// Accepts an invitation: the invited person becomes enrolled, signing in as `login_email`
    /// (their member email when not given). The login email is the invitee's word, unverified:
    /// it is shown and searchable but never used to match or merge members.
    pub async fn accept_invitation(
        &self,
        secret: &str,
        login_email: Option<&str>,
    ) -> Result<Member> {
        let login = match login_email {
            Some(l) => Some(
                Email::parse(l).map_err(|e| RosterError::invalid("login_email", e.to_string()))?,
            ),
            None => None,
        };
        let now = self.clock.now();
        let hash = token::hash(secret);
        // An unknown token (a guess) is answered from a reader: it never waits for, or holds up,
        // the writer.
        let mut read = self.store.read().await?;
        let known = store::invitations::by_token_hash(&mut read, &hash).await?;
        read.rollback().await?;
        if known.is_none() {
            return Err(RosterError::NotFound("invitation".into()));
        }
        let mut tx = self.store.write().await?;
        let invitation = store::invitations::by_token_hash(&mut tx, &hash)
            .await?
            .ok_or_else(|| RosterError::NotFound("invitation".into()))?;
        lock_org(&mut tx, invitation.org_id).await?;
        let before = store::members::by_id(&mut tx, invitation.org_id, invitation.member_id, true)
            .await?
            .ok_or_else(|| RosterError::NotFound("invitation".into()))?;
        match before.access {
            Access::Enrolled => {
                return Err(RosterError::conflict(
                    "already_enrolled",
                    "this invitation has already been accepted",
                ));
            }
            Access::Removed => {
                return Err(RosterError::Gone(
                    "this invitation is no longer valid: the membership was removed".into(),
                ));
            }
            Access::Cancelled => {
                return Err(RosterError::Gone(
                    "this invitation was cancelled; ask an admin to invite you again".into(),
                ));
            }
            Access::Disabled => {
                return Err(RosterError::Gone(
                    "this invitation has been accepted and access is suspended".into(),
                ));
            }
            Access::Invited => {}
        }
        if invitation.used_at.is_some() {
            return Err(RosterError::Gone(
                "this invitation link is no longer valid".into(),
            ));
        }
        if invitation.expires_at <= now {
            return Err(RosterError::Gone(
                "this invitation link has expired; ask an admin to resend the invitation".into(),
            ));
        }
        let mut after = before.clone();
        after.access = Access::Enrolled;
        after.enrolled_at = Some(now);
        after.ever_enrolled = true;
        after.login_email = Some(
            login
                .map(|l| l.as_str().to_owned())
                .unwrap_or_else(|| before.member_email.clone()),
        );
        after.updated_at = now;
        store::members::update(&mut tx, &mut after).await?;
        store::invitations::close_for_member(&mut tx, after.id, now).await?;
        store::outbox::cancel_for_member(&mut tx, after.id, now, "cancelled: invitation accepted")
            .await?;
        let invitee = Actor::Invitee {
            member_id: after.id,
        };
        self.join_invitation_groups(&mut tx, after.org_id, &invitee, after.id)
            .await?;
        record(
            &mut tx,
            now,
            Some(after.org_id),
            &Actor::Invitee {
                member_id: after.id,
            },
            "member.enrolled",
            ("member", Some(after.id.to_string())),
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Records that an enrolled member was active now.
    pub async fn record_activity(&self, org_id: Uuid, actor: &Actor, id: Uuid) -> Result<Member> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let before = store::members::by_id(&mut tx, org_id, id, true)
            .await?
            .ok_or_else(|| RosterError::NotFound("member".into()))?;
        if before.access != Access::Enrolled {
            return Err(RosterError::conflict(
                "not_enrolled",
                format!(
                    "only enrolled members can be active; this member is {}",
                    before.access
                ),
            ));
        }
        let mut after = before.clone();
        after.last_active_at = Some(now);
        after.updated_at = now;
        store::members::update(&mut tx, &mut after).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "member.active",
            ("member", Some(id.to_string())),
            Some(&before.last_active_at),
            Some(&after.last_active_at),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Changes a member's role (admin / member) or names.
    pub async fn update_member(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        patch: MemberPatch,
    ) -> Result<Member> {
        let mut errors = Vec::new();
        let given = patch
            .given_name
            .map(|g| clean_name("given_name".into(), Some(g), &mut errors));
        let family = patch
            .family_name
            .map(|f| clean_name("family_name".into(), Some(f), &mut errors));
        let display = patch
            .display_name
            .map(|d| clean_name("display_name".into(), Some(d), &mut errors));
        if patch.role == Some(Role::Owner) {
            errors.push(FieldError::new(
                "role",
                "ownership moves only by transfer: POST .../ownership with the new owner",
            ));
        }
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
        }
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let before = store::members::by_id(&mut tx, org_id, id, true)
            .await?
            .ok_or_else(|| RosterError::NotFound("member".into()))?;
        let schema = super::attributes::Schema::load(&mut tx, org_id).await?;
        let attrs = match &patch.attributes {
            Some(values) => {
                let mut errors = Vec::new();
                let changes = schema.check_json("attributes", values, &mut errors);
                if !errors.is_empty() {
                    return Err(RosterError::Invalid(errors));
                }
                changes
            }
            None => Vec::new(),
        };
        let mut after = before.clone();
        if let Some(role) = patch.role
            && role != before.role
        {
            if before.role == Role::Owner {
                return Err(RosterError::conflict(
                    "owner_role",
                    "the owner cannot be demoted; transfer ownership to an admin first",
                ));
            }
            after.role = role;
        }
        if let Some(g) = given {
            after.given_name = g;
        }
        if let Some(f) = family {
            after.family_name = f;
        }
        if let Some(d) = display {
            after.display_name = d;
        }
        let attrs_changed = super::attributes::write_values(
            &mut tx,
            now,
            org_id,
            actor,
            id,
            &schema,
            &attrs,
            false,
            "attributes",
        )
        .await?;
        if after == before {
            if attrs_changed {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            return Ok(before);
        }
        after.updated_at = now;
        store::members::update(&mut tx, &mut after).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "member.updated",
            ("member", Some(id.to_string())),
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Makes an enrolled admin the owner; the previous owner becomes an admin.
    pub async fn transfer_ownership(
        &self,
        org_id: Uuid,
        actor: &Actor,
        to: Uuid,
    ) -> Result<(Member, Option<Member>)> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let target = store::members::by_id(&mut tx, org_id, to, true)
            .await?
            .ok_or_else(|| RosterError::NotFound("member".into()))?;
        if target.role == Role::Owner {
            return Err(RosterError::conflict(
                "already_owner",
                "this member is already the owner",
            ));
        }
        if target.role != Role::Admin || target.access != Access::Enrolled {
            return Err(RosterError::conflict(
                "not_an_enrolled_admin",
                format!(
                    "ownership can only go to an enrolled admin; this member is a {} and {}",
                    target.role, target.access
                ),
            ));
        }
        let old_owner = store::members::owner(&mut tx, org_id).await?;
        let mut demoted = None;
        if let Some(old) = old_owner {
            let mut after = old.clone();
            after.role = Role::Admin;
            after.updated_at = now;
            store::members::update(&mut tx, &mut after).await?;
            demoted = Some(after);
        }
        let mut promoted = target.clone();
        promoted.role = Role::Owner;
        promoted.updated_at = now;
        store::members::update(&mut tx, &mut promoted).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "org.ownership_transferred",
            ("member", Some(to.to_string())),
            Some(&serde_json::json!({ "owner": demoted.as_ref().map(|d| d.id) })),
            Some(&serde_json::json!({ "owner": promoted.id })),
        )
        .await?;
        tx.commit().await?;
        Ok((promoted, demoted))
    }

    pub async fn member(&self, org_id: Uuid, id: Uuid) -> Result<Member> {
        let mut tx = self.store.read().await?;
        let m = store::members::by_id(&mut tx, org_id, id, false).await?;
        tx.rollback().await?;
        m.ok_or_else(|| RosterError::NotFound("member".into()))
    }
}
