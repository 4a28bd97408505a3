//! Provisioning by SCIM clients: the identity provider creates, replaces and deletes members and
//! groups. Same state machine, invitations and audit as manual changes, with the SCIM client as
//! the actor; what a new member starts as is the org's `scim_new_members` setting.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::attributes::{Schema, Typed, ValueChange, write_values};
use super::audit::{Actor, record};
use super::invites::InviteKind;
use super::members::lock_org;
use super::{Result, Roster, RosterError};
use crate::domain::{Access, Email, Member, Phone, Role};
use crate::store::groups::Group;
use crate::store::{self, Tx};

/// A member as the identity provider describes it.
#[derive(Debug, Clone)]
pub struct ProvisionedUser {
    pub user_name: String,
    pub email: Email,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    /// `None`: not stated (create: active; replace: unchanged).
    pub active: Option<bool>,
    pub external_id: Option<String>,
    /// `phoneNumbers`: the member's whole list of numbers (checked by `roster::phones`).
    pub phones: Vec<Phone>,
    /// The whole resource document, kept as the client wrote it (without `phoneNumbers` and
    /// the org's attributes).
    pub data: Value,
    /// The org's attributes as text by name (see `roster::attributes`), the whole set: every
    /// attribute left out is cleared. `None`: not stated, the values stay as they are.
    pub attributes: Option<std::collections::BTreeMap<String, String>>,
}

/// Where SCIM writes the org's attributes, in error messages.
const ATTRIBUTES_FIELD: &str = "attributes";

/// Checks the attributes a SCIM write states (none stated: no change).
fn check_scim_attributes(schema: &Schema, u: &ProvisionedUser) -> Result<Vec<ValueChange>> {
    let Some(values) = &u.attributes else {
        return Ok(Vec::new());
    };
    let mut errors = Vec::new();
    let changes = schema.check_whole_text(ATTRIBUTES_FIELD, values, &mut errors);
    if !errors.is_empty() {
        return Err(RosterError::Invalid(errors));
    }
    Ok(changes)
}

/// A group as the identity provider describes it.
#[derive(Debug, Clone)]
pub struct ProvisionedGroup {
    pub name: String,
    pub external_id: Option<String>,
    pub data: Value,
}

/// The link source name for SCIM.
pub const SCIM_SOURCE: &str = "scim";

fn check_version(current: i64, expected: Option<i64>) -> Result<()> {
    match expected {
        Some(v) if v != current => Err(RosterError::Precondition(format!(
            "the resource has changed (version {current}, not {v}); read it again"
        ))),
        _ => Ok(()),
    }
}

async fn upsert_link(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Uuid,
    external_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    store::links::replace_for_member(tx, org_id, SCIM_SOURCE, member_id, external_id, now).await?;
    Ok(())
}

/// Takes a member's access away for a SCIM `active: false`, as the org's `scim_deactivate`
/// says: `disable` suspends them (reversible: `active: true` enables them again; a pending
/// invitation's link dies and its queued emails are dropped, so enabling a person who never
/// enrolled invites them again) or `remove` (the default). Returns the audit action.
async fn deactivate(
    tx: &mut Tx,
    org: &store::orgs::Org,
    m: &mut Member,
    now: DateTime<Utc>,
) -> Result<&'static str> {
    if org.scim_deactivate == "disable" {
        m.access = Access::Disabled;
        m.disabled_at = Some(now);
        store::invitations::close_for_member(tx, m.id, now).await?;
        store::outbox::cancel_for_member(tx, m.id, now, "cancelled: member disabled").await?;
        Ok("member.disabled")
    } else {
        super::members::revoke_access(tx, m, now).await?;
        Ok("member.removed")
    }
}

impl Roster {
    /// Applies `active` and the org's provisioning setting to a member being (re)activated.
    pub(crate) async fn activate(
        &self,
        tx: &mut Tx,
        org: &store::orgs::Org,
        m: &mut Member,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        // Returns whether an invitation must be queued (after the row is written).
        m.cancelled_at = None;
        m.disabled_at = None;
        if m.ever_enrolled || org.scim_new_members == "enroll" {
            m.access = Access::Enrolled;
            if !m.ever_enrolled {
                m.enrolled_at = Some(now);
                m.ever_enrolled = true;
            }
            Ok(false)
        } else {
            m.access = Access::Invited;
            m.invited_at = Some(now);
            m.reminders_sent = 0;
            let send = org.scim_new_members == "invite";
            if send {
                m.invite_count += 1;
            }
            let _ = tx;
            Ok(send)
        }
    }

    pub async fn scim_create_user(
        &self,
        org_id: Uuid,
        actor: &Actor,
        u: ProvisionedUser,
    ) -> Result<Member> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        let schema = Schema::load(&mut tx, org_id).await?;
        let attrs = check_scim_attributes(&schema, &u)?;
        let by_user = store::members::by_user_name(&mut tx, org_id, &u.user_name).await?;
        let by_email = store::members::by_email(&mut tx, org_id, u.email.as_str(), true).await?;
        // A member may be taken over by this POST only when SCIM never described it (added by
        // hand before the identity provider was connected) or SCIM deleted it (re-create).
        let adoptable =
            |m: &Member| m.scim_deleted || (m.scim_data.is_none() && m.external_id.is_none());
        let existing = match (by_user, by_email) {
            (Some(a), Some(b)) if a.id != b.id => {
                return Err(RosterError::conflict(
                    "uniqueness",
                    format!("another user already has the email `{}`", u.email),
                ));
            }
            (Some(m), _) | (None, Some(m)) if adoptable(&m) => Some(m),
            (Some(_), _) => {
                return Err(RosterError::conflict(
                    "uniqueness",
                    format!("userName `{}` is already taken", u.user_name),
                ));
            }
            (None, Some(_)) => {
                return Err(RosterError::conflict(
                    "uniqueness",
                    format!("another user already has the email `{}`", u.email),
                ));
            }
            (None, None) => None,
        };
        let (before, mut m) = match existing {
            Some(m) => (Some(m.clone()), m),
            None => (
                None,
                Member {
                    id: Uuid::now_v7(),
                    org_id,
                    given_name: None,
                    family_name: None,
                    display_name: None,
                    member_email: u.email.as_str().to_owned(),
                    login_email: None,
                    role: Role::Member,
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
                    user_name: u.user_name.clone(),
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
                },
            ),
        };
        m.user_name = u.user_name.clone();
        m.member_email = u.email.as_str().to_owned();
        m.given_name = u.given_name.clone();
        m.family_name = u.family_name.clone();
        m.display_name = u.display_name.clone();
        m.external_id = u.external_id.clone();
        m.scim_data = Some(u.data.to_string());
        m.scim_deleted = false;
        m.updated_at = now;
        let mut invite = false;
        let was_active = before
            .as_ref()
            .is_some_and(|b| b.access.has_access() && !b.scim_deleted);
        let active = u.active.unwrap_or(true);
        if active && !was_active {
            invite = self.activate(&mut tx, &org, &mut m, now).await?;
            m.removed_at = None;
        } else if !active && m.access.has_access() {
            if m.role == Role::Owner {
                return Err(RosterError::conflict(
                    "owner_cannot_be_removed",
                    "the org's owner cannot be deactivated; transfer ownership first",
                ));
            }
            deactivate(&mut tx, &org, &mut m, now).await?;
        }
        match &before {
            Some(_) => store::members::update(&mut tx, &mut m).await?,
            None => store::members::insert(&mut tx, &mut m).await?,
        }
        if invite {
            self.queue_invitation(&mut tx, &org, &m, InviteKind::Invite)
                .await?;
        }
        upsert_link(&mut tx, org_id, m.id, m.external_id.as_deref(), now).await?;
        let action = if before.is_some() {
            "member.readded"
        } else {
            "member.added"
        };
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            action,
            ("member", Some(m.id.to_string())),
            before.as_ref(),
            Some(&m),
        )
        .await?;
        let phones_before = store::phones::of_member(&mut tx, org_id, m.id).await?;
        if phones_before != u.phones {
            super::phones::write_list(&mut tx, now, actor, &m, &phones_before, &u.phones).await?;
        }
        write_values(
            &mut tx,
            now,
            org_id,
            actor,
            m.id,
            &schema,
            &attrs,
            !was_active,
            ATTRIBUTES_FIELD,
        )
        .await?;
        tx.commit().await?;
        Ok(m)
    }

    /// Replaces a SCIM user (PUT). `expected_version` is If-Match.
    pub async fn scim_replace_user(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        u: ProvisionedUser,
        expected_version: Option<i64>,
    ) -> Result<Member> {
        self.scim_update_user(org_id, actor, id, expected_version, |_, _, _, _| Ok(u))
            .await
    }

    /// Read-modify-write of a SCIM user (PATCH, or a PUT that must see the current resource):
    /// `change` is given the member as it is now, with its groups `(id, name)` and its phone
    /// numbers, under the org
    /// lock and the member's row lock, and says what the user becomes. Concurrent changes
    /// therefore apply one after the other to the current version and none is lost;
    /// `expected_version` (If-Match) is only checked when the client sent one.
    pub async fn scim_update_user<E: From<RosterError>>(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        expected_version: Option<i64>,
        change: impl FnOnce(
            &Member,
            &[(Uuid, String)],
            &[Phone],
            &Typed,
        ) -> std::result::Result<ProvisionedUser, E>,
    ) -> std::result::Result<Member, E> {
        let (mut tx, org, before, groups, phones) =
            self.user_for_update(org_id, id, expected_version).await?;
        let schema = Schema::load(&mut tx, org_id)
            .await
            .map_err(RosterError::from)?;
        let values = store::attributes::values_of(&mut tx, org_id, id)
            .await
            .map_err(RosterError::from)?;
        let u = change(&before, &groups, &phones, &schema.typed(&values))?;
        Ok(self
            .write_user(tx, &org, actor, before, phones, (schema, u))
            .await?)
    }

    /// Opens the write transaction, locks the org and the user, checks If-Match, reads the
    /// user's groups and phone numbers.
    #[allow(clippy::type_complexity)]
    async fn user_for_update(
        &self,
        org_id: Uuid,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(
        Tx,
        store::orgs::Org,
        Member,
        Vec<(Uuid, String)>,
        Vec<Phone>,
    )> {
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        let before = store::members::by_id(&mut tx, org_id, id, true)
            .await?
            .filter(|m| !m.scim_deleted)
            .ok_or_else(|| RosterError::NotFound("User".into()))?;
        check_version(before.version, expected_version)?;
        let groups: Vec<(Uuid, String)> = store::groups::groups_of(&mut tx, org_id, &[id])
            .await?
            .into_iter()
            .map(|(_, g, name)| (g, name))
            .collect();
        let phones = store::phones::of_member(&mut tx, org_id, id).await?;
        Ok((tx, org, before, groups, phones))
    }

    async fn write_user(
        &self,
        mut tx: Tx,
        org: &store::orgs::Org,
        actor: &Actor,
        before: Member,
        phones_before: Vec<Phone>,
        (schema, u): (Schema, ProvisionedUser),
    ) -> Result<Member> {
        let now = self.clock.now();
        let (org_id, id) = (before.org_id, before.id);
        let attrs = check_scim_attributes(&schema, &u)?;
        if !before.user_name.eq_ignore_ascii_case(&u.user_name)
            && let Some(holder) =
                store::members::by_user_name(&mut tx, org_id, &u.user_name).await?
        {
            if !holder.scim_deleted {
                return Err(RosterError::conflict(
                    "uniqueness",
                    format!("userName `{}` is already taken", u.user_name),
                ));
            }
            // A deleted user gives its userName up to a live one.
            let mut freed = holder.clone();
            freed.user_name = format!("deleted:{}", holder.id);
            store::members::update(&mut tx, &mut freed).await?;
        }
        if !before.member_email.eq_ignore_ascii_case(u.email.as_str())
            && store::members::by_email(&mut tx, org_id, u.email.as_str(), false)
                .await?
                .is_some()
        {
            return Err(RosterError::conflict(
                "uniqueness",
                format!("another user already has the email `{}`", u.email),
            ));
        }
        let mut m = before.clone();
        m.user_name = u.user_name.clone();
        m.member_email = u.email.as_str().to_owned();
        m.given_name = u.given_name.clone();
        m.family_name = u.family_name.clone();
        m.display_name = u.display_name.clone();
        m.external_id = u.external_id.clone();
        m.scim_data = Some(u.data.to_string());
        m.updated_at = now;
        let mut invite = false;
        let mut action = "member.updated";
        let active = u.active.unwrap_or(m.access.has_access());
        if active && !m.access.has_access() {
            invite = self.activate(&mut tx, org, &mut m, now).await?;
            m.removed_at = None;
            action = "member.readded";
        } else if !active && m.access.has_access() {
            if m.role == Role::Owner {
                return Err(RosterError::conflict(
                    "owner_cannot_be_removed",
                    "the org's owner cannot be deactivated; transfer ownership first",
                ));
            }
            action = deactivate(&mut tx, org, &mut m, now).await?;
        }
        let phones_changed = phones_before != u.phones;
        let attrs_changed = write_values(
            &mut tx,
            now,
            org_id,
            actor,
            id,
            &schema,
            &attrs,
            !before.access.has_access() && m.access.has_access(),
            ATTRIBUTES_FIELD,
        )
        .await?;
        if m == before && !phones_changed && !attrs_changed {
            tx.rollback().await?;
            return Ok(before);
        }
        store::members::update(&mut tx, &mut m).await?;
        if invite {
            self.queue_invitation(&mut tx, org, &m, InviteKind::Invite)
                .await?;
        }
        upsert_link(&mut tx, org_id, m.id, m.external_id.as_deref(), now).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            action,
            ("member", Some(id.to_string())),
            Some(&before),
            Some(&m),
        )
        .await?;
        if phones_changed {
            super::phones::write_list(&mut tx, now, actor, &m, &phones_before, &u.phones).await?;
        }
        tx.commit().await?;
        Ok(m)
    }

    /// DELETE: the member is removed and the SCIM resource is gone (404) from then on.
    pub async fn scim_delete_user(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let before = store::members::by_id(&mut tx, org_id, id, true)
            .await?
            .filter(|m| !m.scim_deleted)
            .ok_or_else(|| RosterError::NotFound("User".into()))?;
        check_version(before.version, expected_version)?;
        if before.role == Role::Owner {
            return Err(RosterError::conflict(
                "owner_cannot_be_removed",
                "the org's owner cannot be deleted; transfer ownership first",
            ));
        }
        let mut m = before.clone();
        if !m.access.is_gone() {
            super::members::revoke_access(&mut tx, &mut m, now).await?;
        }
        m.scim_deleted = true;
        m.updated_at = now;
        store::members::update(&mut tx, &mut m).await?;
        // A deleted user leaves its groups: a later re-create must not bring them back.
        store::groups::remove_member_everywhere(&mut tx, org_id, id, now).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "member.removed",
            ("member", Some(id.to_string())),
            Some(&before),
            Some(&m),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Members of `org_id` by SCIM id, refusing ids that are not visible users.
    async fn resolve_members(tx: &mut Tx, org_id: Uuid, values: &[String]) -> Result<Vec<Uuid>> {
        let mut ids = Vec::with_capacity(values.len());
        for v in values {
            let id = Uuid::try_parse(v)
                .map_err(|_| RosterError::invalid("members", format!("`{v}` is not a User id")))?;
            match store::members::by_id(tx, org_id, id, false).await? {
                Some(m) if !m.scim_deleted => ids.push(id),
                _ => {
                    return Err(RosterError::invalid(
                        "members",
                        format!("no User with id `{v}`"),
                    ));
                }
            }
        }
        Ok(ids)
    }

    pub async fn scim_create_group(
        &self,
        org_id: Uuid,
        actor: &Actor,
        g: ProvisionedGroup,
        members: Vec<String>,
    ) -> Result<Group> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        if store::groups::by_name(&mut tx, org_id, &g.name)
            .await?
            .is_some()
        {
            return Err(RosterError::conflict(
                "uniqueness",
                format!("a group named `{}` already exists", g.name),
            ));
        }
        let ids = Self::resolve_members(&mut tx, org_id, &members).await?;
        let group = Group {
            id: Uuid::now_v7(),
            org_id,
            name: g.name,
            external_id: g.external_id,
            scim_data: Some(g.data.to_string()),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        store::groups::insert(&mut tx, &group).await?;
        for id in &ids {
            store::groups::add_member(&mut tx, group.id, *id, now).await?;
        }
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "group.created",
            ("group", Some(group.id.to_string())),
            None::<&Group>,
            Some(&serde_json::json!({"group": &group, "members": ids})),
        )
        .await?;
        tx.commit().await?;
        Ok(group)
    }

    /// Replaces a group's attributes; `members`, when given, replaces the membership.
    pub async fn scim_replace_group(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        g: ProvisionedGroup,
        members: Option<Vec<String>>,
        expected_version: Option<i64>,
    ) -> Result<Group> {
        self.scim_update_group(org_id, actor, id, members, expected_version, |_| Ok(g))
            .await
    }

    /// Read-modify-write of a group's attributes (PATCH, or a PUT that must see the current
    /// resource): `change` is given the group as it is now, under the org lock, and says what it
    /// becomes; `members`, when given, replaces the membership. As for users, concurrent
    /// changes apply one after the other and `expected_version` is only checked when sent.
    pub async fn scim_update_group<E: From<RosterError>>(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        members: Option<Vec<String>>,
        expected_version: Option<i64>,
        change: impl FnOnce(&Group) -> std::result::Result<ProvisionedGroup, E>,
    ) -> std::result::Result<Group, E> {
        let (tx, before) = self.group_for_update(org_id, id, expected_version).await?;
        let g = change(&before)?;
        Ok(self.write_group(tx, actor, before, g, members).await?)
    }

    async fn group_for_update(
        &self,
        org_id: Uuid,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(Tx, Group)> {
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let before = store::groups::by_id(&mut tx, org_id, id)
            .await?
            .ok_or_else(|| RosterError::NotFound("Group".into()))?;
        check_version(before.version, expected_version)?;
        Ok((tx, before))
    }

    async fn write_group(
        &self,
        mut tx: Tx,
        actor: &Actor,
        before: Group,
        g: ProvisionedGroup,
        members: Option<Vec<String>>,
    ) -> Result<Group> {
        let now = self.clock.now();
        let (org_id, id) = (before.org_id, before.id);
        if !before.name.eq_ignore_ascii_case(&g.name)
            && store::groups::by_name(&mut tx, org_id, &g.name)
                .await?
                .is_some()
        {
            return Err(RosterError::conflict(
                "uniqueness",
                format!("a group named `{}` already exists", g.name),
            ));
        }
        let mut after = before.clone();
        after.name = g.name;
        after.external_id = g.external_id;
        after.scim_data = Some(g.data.to_string());
        after.updated_at = now;
        store::groups::update(&mut tx, &mut after).await?;
        if let Some(values) = members {
            let ids = Self::resolve_members(&mut tx, org_id, &values).await?;
            store::groups::bump_member_versions(&mut tx, org_id, id, now).await?;
            store::groups::clear_members(&mut tx, id).await?;
            for mid in &ids {
                store::groups::add_member(&mut tx, id, *mid, now).await?;
            }
            store::members::bump_versions(&mut tx, org_id, &ids, now).await?;
        }
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "group.updated",
            ("group", Some(id.to_string())),
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Adds and removes single members: one row each, whatever the group's size.
    #[allow(clippy::too_many_arguments)]
    pub async fn scim_change_group_members(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        add: &[String],
        remove: &[String],
        remove_all: bool,
        expected_version: Option<i64>,
    ) -> Result<Group> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let group = store::groups::by_id(&mut tx, org_id, id)
            .await?
            .ok_or_else(|| RosterError::NotFound("Group".into()))?;
        check_version(group.version, expected_version)?;
        if remove_all {
            // Every member's `groups` changes: their versions move on.
            store::groups::bump_member_versions(&mut tx, org_id, id, now).await?;
            store::groups::clear_members(&mut tx, id).await?;
        }
        let mut removed = Vec::new();
        for v in remove {
            // Removing someone who is not a member (or no longer exists) is harmless.
            if let Ok(mid) = Uuid::try_parse(v)
                && store::groups::remove_member(&mut tx, id, mid).await?
            {
                removed.push(mid);
            }
        }
        let ids = Self::resolve_members(&mut tx, org_id, add).await?;
        let mut added = Vec::new();
        for mid in ids {
            if store::groups::add_member(&mut tx, id, mid, now).await? {
                added.push(mid);
            }
        }
        store::groups::touch(&mut tx, org_id, id, now).await?;
        let changed: Vec<Uuid> = added.iter().chain(removed.iter()).copied().collect();
        store::members::bump_versions(&mut tx, org_id, &changed, now).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "group.members_changed",
            ("group", Some(id.to_string())),
            Some(&serde_json::json!({"removed": removed, "cleared": remove_all})),
            Some(&serde_json::json!({"added": added})),
        )
        .await?;
        let after = store::groups::by_id(&mut tx, org_id, id)
            .await?
            .ok_or_else(|| RosterError::NotFound("Group".into()))?;
        tx.commit().await?;
        Ok(after)
    }

    pub async fn scim_delete_group(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let before = store::groups::by_id(&mut tx, org_id, id)
            .await?
            .ok_or_else(|| RosterError::NotFound("Group".into()))?;
        check_version(before.version, expected_version)?;
        super::groups::delete_group_row(&mut tx, actor, &before, now).await?;
        tx.commit().await?;
        Ok(())
    }
}
