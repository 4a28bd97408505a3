//! Applying a sync plan to the store: each item goes through the same state machine, invitation
//! flow and audit log as a manual change, with the sync run as the actor.
//!
//! Items are applied in batches, one transaction each (the engine's job); within a batch every
//! item is re-checked against the store as it is now, so applying a plan twice, or applying an
//! approved plan after the store moved on, changes only what still needs changing.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::{Actor, entry, record};
use super::invites::InviteKind;
use super::members::{lock_org, revoke_access};
use super::{Result, Roster};
use crate::domain::{Access, Member, Role};
use crate::reconcile::plan::{Field, FieldChange, Item, Person};
use crate::store::sync::{Applied, RunError};
use crate::store::{self, Tx};

/// What one item did.
enum Outcome {
    Created,
    Updated,
    Removed,
    Reactivated,
    Unchanged,
    Error(String),
}

/// What syncing a source's groups changed, and what it left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupChanges {
    pub created: u64,
    pub added: u64,
    pub removed: u64,
    /// Groups or members left as they were, and why (for the run's warnings).
    pub warnings: Vec<String>,
}

/// One sync of a source's groups: what the source says, and the guards.
#[derive(Debug, Clone, Copy)]
pub struct GroupSync<'a> {
    /// rosterd group name → the external ids the source puts in it.
    pub wanted: &'a rosterd_connectors::Groups,
    /// Whether anyone may leave a group (not after rows that could not be tied to a person:
    /// they may be the members in question).
    pub removals: bool,
    /// External ids whose rows had errors: their memberships stay as they are.
    pub keep: &'a std::collections::HashSet<String>,
    /// The source's `max_removals`, applied to each group's active members.
    pub max_removals: crate::config::MaxRemovals,
}

impl Roster {
    /// Makes each group a source manages hold exactly the members the source claims under the
    /// external ids it puts there; a missing group is created. Removed members always leave the
    /// source's groups. Active members leave within the guards: not at all after unreadable rows,
    /// not those whose rows had errors, not more than `max_removals` of a group, and not from a
    /// group the source put nobody in (more likely a broken read than everyone leaving). A group
    /// a SCIM client manages is left alone. One transaction, audited per group.
    pub async fn sync_source_groups(
        &self,
        org_id: Uuid,
        source: &str,
        actor: &Actor,
        sync: &GroupSync<'_>,
    ) -> Result<GroupChanges> {
        use std::collections::{HashMap, HashSet};
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let claimed: HashMap<String, Uuid> = store::sync::claimed_members(&mut tx, org_id, source)
            .await?
            .into_iter()
            .collect();
        let kept: HashSet<Uuid> = sync
            .keep
            .iter()
            .filter_map(|x| claimed.get(x).copied())
            .collect();
        let mut changes = GroupChanges::default();
        let mut held_back = 0usize;
        for (name, ids) in sync.wanted {
            let group = match store::groups::by_name(&mut tx, org_id, name).await? {
                Some(g) if g.scim_data.is_some() => {
                    changes.warnings.push(format!(
                        "group `{name}` is managed by a SCIM client: this source leaves it alone"
                    ));
                    continue;
                }
                Some(g) => g,
                None => {
                    let g = store::groups::Group {
                        id: Uuid::now_v7(),
                        org_id,
                        name: name.clone(),
                        external_id: None,
                        scim_data: None,
                        version: 1,
                        created_at: now,
                        updated_at: now,
                    };
                    store::groups::insert(&mut tx, &g).await?;
                    record(
                        &mut tx,
                        now,
                        Some(org_id),
                        actor,
                        "group.created",
                        ("group", Some(g.id.to_string())),
                        None::<&()>,
                        Some(&serde_json::json!({"group": &g, "source": source})),
                    )
                    .await?;
                    changes.created += 1;
                    g
                }
            };
            let want: HashSet<Uuid> = ids.iter().filter_map(|x| claimed.get(x).copied()).collect();
            let mut active = HashSet::new();
            let mut removed = Vec::new();
            for (id, access) in store::groups::member_access(&mut tx, org_id, group.id).await? {
                if access.is_gone() {
                    removed.push(id); // no longer in the org: out of its groups too
                } else {
                    active.insert(id);
                }
            }
            let mut added: Vec<Uuid> = want.difference(&active).copied().collect();
            let mut leaving: Vec<Uuid> = active
                .difference(&want)
                .filter(|m| !kept.contains(m))
                .copied()
                .collect();
            if want.is_empty() && !active.is_empty() {
                changes.warnings.push(format!(
                    "group `{name}`: the source put nobody in it; its {} member(s) stay",
                    active.len()
                ));
                leaving.clear();
            } else if !sync.removals {
                held_back += leaving.len();
                leaving.clear();
            } else {
                let limit = sync.max_removals.limit(active.len() as u64);
                if leaving.len() as u64 > limit {
                    changes.warnings.push(format!(
                        "group `{name}`: {} of {} member(s) would leave, more than max_removals \
                         ({}, here {limit}); nobody left it in this run",
                        leaving.len(),
                        active.len(),
                        sync.max_removals
                    ));
                    leaving.clear();
                }
            }
            removed.extend(leaving);
            if added.is_empty() && removed.is_empty() {
                continue;
            }
            added.sort();
            removed.sort();
            for m in &added {
                store::groups::add_member(&mut tx, group.id, *m, now).await?;
            }
            for m in &removed {
                store::groups::remove_member(&mut tx, group.id, *m).await?;
            }
            store::groups::touch(&mut tx, org_id, group.id, now).await?;
            let changed: Vec<Uuid> = added.iter().chain(removed.iter()).copied().collect();
            store::members::bump_versions(&mut tx, org_id, &changed, now).await?;
            record(
                &mut tx,
                now,
                Some(org_id),
                actor,
                "group.members_changed",
                ("group", Some(group.id.to_string())),
                Some(&serde_json::json!({"removed": removed})),
                Some(&serde_json::json!({"added": added, "source": source})),
            )
            .await?;
            changes.added += added.len() as u64;
            changes.removed += removed.len() as u64;
        }
        if held_back > 0 {
            changes.warnings.push(format!(
                "some rows could not be read: {held_back} member(s) stay in groups the source no \
                 longer puts them in, until a clean run"
            ));
        }
        tx.commit().await?;
        Ok(changes)
    }

    /// Applies a batch of plan items for `source` in `tx` (the caller commits). Items that can
    /// no longer apply (an email taken meanwhile) become error rows; the rest go through.
    pub async fn apply_sync_items(
        &self,
        tx: &mut Tx,
        org_id: Uuid,
        source: &str,
        actor: &Actor,
        items: &[(i64, Item)],
        claiming: bool,
    ) -> Result<(Applied, Vec<RunError>)> {
        let now = self.clock.now();
        let org = lock_org(tx, org_id).await?;
        let mut applied = Applied::default();
        let mut errors = Vec::new();
        // Removals by import obey the integration lock (checked again here: the org may have
        // become managed between the preview and the confirmation).
        let locked_import = if source == crate::sync::IMPORT_SOURCE {
            org.integration()
        } else {
            None
        };
        // Creates whose email and sign-in name are free are written together (a few statements
        // per batch instead of several per member); the others go one by one, adopting or
        // reporting whoever took the address since the plan was made.
        let keys: Vec<String> = items
            .iter()
            .filter_map(|(_, i)| match i {
                Item::Create { person } => Some(person.member_email.to_lowercase()),
                _ => None,
            })
            .collect();
        let mut taken = if keys.is_empty() {
            Default::default()
        } else {
            store::members::taken_keys(tx, org_id, &keys).await?
        };
        let mut bulk: Vec<&Person> = Vec::new();
        let mut in_bulk = std::collections::HashSet::new();
        for (seq, item) in items {
            if let Item::Create { person } = item
                && taken.insert(person.member_email.to_lowercase())
            {
                bulk.push(person);
                in_bulk.insert(*seq);
            }
        }
        // Written first: those addresses were free when the batch began, and every later item
        // (a create of the same address, an update to it) then sees them and adopts or reports.
        applied.created += self
            .create_many(tx, &org, source, actor, &bulk, claiming, now)
            .await?;
        for (seq, item) in items {
            if in_bulk.contains(seq) {
                continue;
            }
            let outcome = match item {
                Item::Create { person } => {
                    self.sync_create(tx, &org, source, actor, person, claiming, now)
                        .await?
                }
                Item::Update {
                    member_id,
                    external_id,
                    changes,
                    ..
                } => {
                    let linked = store::sync::link(
                        tx,
                        org_id,
                        source,
                        external_id,
                        *member_id,
                        claiming,
                        now,
                    );
                    linked.await?;
                    self.sync_update(tx, org_id, actor, *member_id, changes, now)
                        .await?
                }
                Item::Link {
                    member_id,
                    external_id,
                    ..
                } => {
                    if store::members::by_id(tx, org_id, *member_id, false)
                        .await?
                        .is_some()
                    {
                        store::sync::link(
                            tx,
                            org_id,
                            source,
                            external_id,
                            *member_id,
                            claiming,
                            now,
                        )
                        .await?;
                    }
                    Outcome::Unchanged
                }
                Item::Release {
                    member_id,
                    external_id,
                    ..
                } => {
                    store::sync::link(tx, org_id, source, external_id, *member_id, false, now)
                        .await?;
                    Outcome::Unchanged
                }
                Item::Remove { .. } if locked_import.is_some() => {
                    let integration = locked_import.clone().unwrap_or_default();
                    Outcome::Error(format!(
                        "membership of this organization is managed by {integration}; remove the person in {integration}"
                    ))
                }
                Item::Remove {
                    member_id,
                    external_id,
                    reason,
                    ..
                } => {
                    if let Some(x) = external_id {
                        store::sync::link(tx, org_id, source, x, *member_id, false, now).await?;
                    }
                    self.sync_remove(tx, org_id, source, actor, *member_id, *reason, now)
                        .await?
                }
                Item::Reactivate { member_id, person } => {
                    self.sync_reactivate(tx, &org, source, actor, *member_id, person, claiming, now)
                        .await?
                }
            };
            match outcome {
                Outcome::Created => applied.created += 1,
                Outcome::Updated => applied.updated += 1,
                Outcome::Removed => applied.removed += 1,
                Outcome::Reactivated => applied.reactivated += 1,
                Outcome::Unchanged => {}
                Outcome::Error(message) => {
                    applied.errors += 1;
                    errors.push(RunError {
                        seq: *seq,
                        line: 0,
                        external_id: item.external_id().map(str::to_owned),
                        field: None,
                        value: Some(item.email().to_owned()),
                        message,
                    });
                }
            }
        }
        Ok((applied, errors))
    }

    /// Creates members whose email and sign-in name are known to be free: the same rows as
    /// [`Roster::sync_create`] (member, link, invitation and its email, audit entry), written
    /// many per statement.
    #[allow(clippy::too_many_arguments)]
    async fn create_many(
        &self,
        tx: &mut Tx,
        org: &store::orgs::Org,
        source: &str,
        actor: &Actor,
        people: &[&Person],
        claiming: bool,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        if people.is_empty() {
            return Ok(0);
        }
        let mut members = Vec::with_capacity(people.len());
        let mut invite = Vec::with_capacity(people.len());
        for p in people {
            let mut m = new_member(org.id, p, now);
            invite.push(self.activate(tx, org, &mut m, now).await?);
            members.push(m);
        }
        store::members::insert_many(tx, &mut members).await?;
        let mut invitations = Vec::new();
        let mut emails = Vec::new();
        let mut entries = Vec::with_capacity(members.len());
        let mut links = Vec::with_capacity(members.len());
        for ((m, p), send) in members.iter().zip(people).zip(invite) {
            if send {
                let (i, e) = self.invitation_rows(org, m, InviteKind::Invite);
                invitations.push(i);
                emails.push(e);
            }
            links.push((p.external_id.clone(), m.id));
            entries.push(entry(
                now,
                Some(org.id),
                actor,
                "member.added",
                ("member", Some(m.id.to_string())),
                None::<&Member>,
                Some(m),
            ));
        }
        store::invitations::insert_many(tx, &invitations).await?;
        store::outbox::insert_many(tx, &emails).await?;
        store::sync::link_new(tx, org.id, source, &links, claiming, now).await?;
        store::audit::append_many(tx, &entries).await?;
        super::events::publish(tx, &entries).await?;
        Ok(members.len() as i64)
    }

    #[allow(clippy::too_many_arguments)]
    async fn sync_create(
        &self,
        tx: &mut Tx,
        org: &store::orgs::Org,
        source: &str,
        actor: &Actor,
        p: &Person,
        claiming: bool,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        // Someone with this email may have arrived since the plan was made: adopt them.
        if let Some(m) = store::members::by_email(tx, org.id, &p.member_email, true).await? {
            store::sync::link(tx, org.id, source, &p.external_id, m.id, claiming, now).await?;
            if m.access.is_gone() {
                return self
                    .sync_reactivate(tx, org, source, actor, m.id, p, claiming, now)
                    .await;
            }
            let changes = person_changes(&m, p);
            return self
                .sync_update(tx, org.id, actor, m.id, &changes, now)
                .await;
        }
        if store::members::by_user_name(tx, org.id, &p.member_email)
            .await?
            .is_some()
        {
            return Ok(Outcome::Error(format!(
                "`{}` is already another member's sign-in name",
                p.member_email
            )));
        }
        let mut m = new_member(org.id, p, now);
        let invite = self.activate(tx, org, &mut m, now).await?;
        store::members::insert(tx, &mut m).await?;
        if invite {
            self.queue_invitation(tx, org, &m, InviteKind::Invite)
                .await?;
        }
        store::sync::link(tx, org.id, source, &p.external_id, m.id, claiming, now).await?;
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
        Ok(Outcome::Created)
    }

    async fn sync_update(
        &self,
        tx: &mut Tx,
        org_id: Uuid,
        actor: &Actor,
        member_id: Uuid,
        changes: &[FieldChange],
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let Some(before) = store::members::by_id(tx, org_id, member_id, true).await? else {
            return Ok(Outcome::Error("the member no longer exists".into()));
        };
        let mut after = before.clone();
        for ch in changes {
            let to = ch.to.clone();
            match ch.field {
                Field::MemberEmail => {
                    let Some(email) = to else { continue };
                    if email.eq_ignore_ascii_case(&after.member_email) {
                        continue;
                    }
                    if store::members::by_email(tx, org_id, &email, false)
                        .await?
                        .is_some_and(|o| o.id != member_id)
                    {
                        return Ok(Outcome::Error(format!(
                            "cannot change the email to `{email}`: another member has it"
                        )));
                    }
                    after.member_email = email;
                }
                Field::LoginEmail => after.login_email = to,
                Field::GivenName => after.given_name = to,
                Field::FamilyName => after.family_name = to,
                Field::DisplayName => after.display_name = to,
                Field::Role => {
                    let role = match to.as_deref() {
                        Some("admin") => Role::Admin,
                        Some("member") => Role::Member,
                        _ => continue,
                    };
                    // The owner's role changes only by an ownership transfer.
                    if after.role != Role::Owner {
                        after.role = role;
                    }
                }
            }
        }
        if after == before {
            return Ok(Outcome::Unchanged);
        }
        after.updated_at = now;
        store::members::update(tx, &mut after).await?;
        record(
            tx,
            now,
            Some(org_id),
            actor,
            "member.updated",
            ("member", Some(member_id.to_string())),
            Some(&before),
            Some(&after),
        )
        .await?;
        Ok(Outcome::Updated)
    }

    #[allow(clippy::too_many_arguments)]
    async fn sync_remove(
        &self,
        tx: &mut Tx,
        org_id: Uuid,
        source: &str,
        actor: &Actor,
        member_id: Uuid,
        reason: crate::reconcile::plan::Reason,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let Some(before) = store::members::by_id(tx, org_id, member_id, true).await? else {
            return Ok(Outcome::Unchanged);
        };
        if before.access.is_gone() || before.role == Role::Owner {
            return Ok(Outcome::Unchanged);
        }
        // Another source may have claimed the member since the plan was made: keep them.
        if source != crate::sync::IMPORT_SOURCE
            && store::sync::claimed_elsewhere(tx, member_id, source).await?
        {
            return Ok(Outcome::Unchanged);
        }
        let mut after = before.clone();
        revoke_access(tx, &mut after, now).await?;
        after.updated_at = now;
        store::members::update(tx, &mut after).await?;
        tracing::debug!(member = %member_id, reason = reason.as_str(), "removed by sync");
        record(
            tx,
            now,
            Some(org_id),
            actor,
            "member.removed",
            ("member", Some(member_id.to_string())),
            Some(&before),
            Some(&after),
        )
        .await?;
        Ok(Outcome::Removed)
    }

    #[allow(clippy::too_many_arguments)]
    async fn sync_reactivate(
        &self,
        tx: &mut Tx,
        org: &store::orgs::Org,
        source: &str,
        actor: &Actor,
        member_id: Uuid,
        p: &Person,
        claiming: bool,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let Some(before) = store::members::by_id(tx, org.id, member_id, true).await? else {
            return Ok(Outcome::Error("the member no longer exists".into()));
        };
        store::sync::link(tx, org.id, source, &p.external_id, member_id, claiming, now).await?;
        if !before.access.is_gone() {
            let changes = person_changes(&before, p);
            return self
                .sync_update(tx, org.id, actor, member_id, &changes, now)
                .await;
        }
        let mut after = before.clone();
        after.given_name = p.given_name.clone().or(after.given_name);
        after.family_name = p.family_name.clone().or(after.family_name);
        after.display_name = p.display_name.clone().or(after.display_name);
        after.login_email = p.login_email.clone().or(after.login_email);
        if let Some(role) = p.role
            && after.role != Role::Owner
        {
            after.role = role;
        }
        // Same state machine as a re-add: enrolled again if they ever enrolled, else invited.
        let invite = self.activate(tx, org, &mut after, now).await?;
        after.removed_at = None;
        after.cancelled_at = None;
        after.updated_at = now;
        store::members::update(tx, &mut after).await?;
        if invite {
            self.queue_invitation(tx, org, &after, InviteKind::Invite)
                .await?;
        }
        record(
            tx,
            now,
            Some(org.id),
            actor,
            "member.readded",
            ("member", Some(member_id.to_string())),
            Some(&before),
            Some(&after),
        )
        .await?;
        Ok(Outcome::Reactivated)
    }
}

/// The changes that make `m` agree with `p` (fields `p` states only).
fn person_changes(m: &Member, p: &Person) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let mut push = |field, from: Option<&str>, to: Option<&str>| {
        if let Some(to) = to
            && from != Some(to)
        {
            out.push(FieldChange {
                field,
                from: from.map(str::to_owned),
                to: Some(to.to_owned()),
            });
        }
    };
    push(
        Field::LoginEmail,
        m.login_email.as_deref(),
        p.login_email.as_deref(),
    );
    push(
        Field::GivenName,
        m.given_name.as_deref(),
        p.given_name.as_deref(),
    );
    push(
        Field::FamilyName,
        m.family_name.as_deref(),
        p.family_name.as_deref(),
    );
    push(
        Field::DisplayName,
        m.display_name.as_deref(),
        p.display_name.as_deref(),
    );
    push(Field::Role, Some(m.role.as_str()), p.role.map(Role::as_str));
    out
}

/// A new member as a source describes them (access is set by `activate`).
fn new_member(org_id: Uuid, p: &Person, now: DateTime<Utc>) -> Member {
    Member {
        id: Uuid::now_v7(),
        org_id,
        given_name: p.given_name.clone(),
        family_name: p.family_name.clone(),
        display_name: p.display_name.clone(),
        member_email: p.member_email.clone(),
        login_email: p.login_email.clone(),
        role: p.role.unwrap_or(Role::Member),
        access: Access::Invited,
        added_at: now,
        invited_at: None,
        invite_count: 0,
        reminders_sent: 0,
        enrolled_at: None,
        last_active_at: None,
        removed_at: None,
        activity_at: now,
        ever_enrolled: false,
        updated_at: now,
        user_name: p.member_email.clone(),
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
    }
}
