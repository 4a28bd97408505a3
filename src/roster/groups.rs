//! Groups administered by an org's admins: create, rename, delete, add and remove members.
//! A group a SCIM client or a source keeps is theirs: every change here answers 409 naming the
//! keeper, so an admin's edit is never silently undone by the next push or sync.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{Actor, record};
use super::members::{MAX_BATCH, lock_org};
use super::{Result, Roster, RosterError};
use crate::store::groups::Group;
use crate::store::orgs::Org;
use crate::store::{self, StoreError, Tx};

/// Who keeps a group's membership when the org's admins do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKeeper {
    /// A SCIM client created it (its `members` are the client's to set).
    Scim,
    /// A configured source maps members into it.
    Source(String),
}

impl GroupKeeper {
    /// The short form the API shows: `scim` or `source:NAME`.
    pub fn label(&self) -> String {
        match self {
            GroupKeeper::Scim => "scim".into(),
            GroupKeeper::Source(s) => format!("source:{s}"),
        }
    }
}

impl fmt::Display for GroupKeeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupKeeper::Scim => f.write_str("the SCIM client"),
            GroupKeeper::Source(s) => write!(f, "source `{s}`"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMemberOutcome {
    Added,
    Removed,
    SkippedAlready,
    SkippedNotMember,
    SkippedRemovedMember,
    SkippedNotFound,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupMemberResult {
    pub member_id: Uuid,
    pub outcome: GroupMemberOutcome,
}

/// What an admin may change about a group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    #[serde(default)]
    pub name: Option<String>,
}

/// Deletes a group inside the caller's transaction: its members' versions move (their `groups`
/// change), its memberships and the invitations naming it go, and the deletion is audited.
/// Every group deletion (an admin's, a SCIM client's) goes through here.
pub(crate) async fn delete_group_row(
    tx: &mut Tx,
    actor: &Actor,
    group: &Group,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    store::groups::bump_member_versions(tx, group.org_id, group.id, now).await?;
    store::groups::delete(tx, group.org_id, group.id).await?;
    record(
        tx,
        now,
        Some(group.org_id),
        actor,
        "group.deleted",
        ("group", Some(group.id.to_string())),
        Some(group),
        None::<&Group>,
    )
    .await?;
    Ok(())
}

impl Roster {
    /// Who keeps `group`, if not the org's admins.
    pub fn group_keeper(&self, org: &Org, group: &Group) -> Option<GroupKeeper> {
        if group.scim_data.is_some() {
            return Some(GroupKeeper::Scim);
        }
        self.kept_by_source(org, &group.name)
    }

    fn kept_by_source(&self, org: &Org, name: &str) -> Option<GroupKeeper> {
        self.invites
            .kept_groups
            .get(&(org.slug.clone(), name.to_lowercase()))
            .map(|s| GroupKeeper::Source(s.clone()))
    }

    /// Reads a group of the org for an admin's change: not found, or 409 if someone else keeps it.
    async fn admin_group(&self, tx: &mut Tx, org: &Org, id: Uuid) -> Result<Group> {
        let group = store::groups::by_id(tx, org.id, id)
            .await?
            .ok_or_else(|| RosterError::NotFound("group".into()))?;
        if let Some(keeper) = self.group_keeper(org, &group) {
            return Err(RosterError::conflict(
                "group_kept",
                format!(
                    "group `{}` is kept by {keeper}: change its members there",
                    group.name
                ),
            ));
        }
        Ok(group)
    }

    async fn free_name(&self, tx: &mut Tx, org: &Org, name: &str) -> Result<()> {
        if let Some(keeper) = self.kept_by_source(org, name) {
            return Err(RosterError::conflict(
                "group_kept",
                format!("a group named `{name}` is kept by {keeper}; choose another name"),
            ));
        }
        if store::groups::by_name(tx, org.id, name).await?.is_some() {
            return Err(RosterError::conflict(
                "group_exists",
                format!("a group named `{name}` already exists"),
            ));
        }
        Ok(())
    }

    pub async fn create_group(&self, org_id: Uuid, actor: &Actor, name: &str) -> Result<Group> {
        let name = super::error::check_label("name", name, 200)?;
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        self.free_name(&mut tx, &org, &name).await?;
        let group = Group {
            id: Uuid::now_v7(),
            org_id,
            name,
            external_id: None,
            scim_data: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        match store::groups::insert(&mut tx, &group).await {
            Err(StoreError::Unique(_)) => {
                return Err(RosterError::conflict(
                    "group_exists",
                    format!("a group named `{}` already exists", group.name),
                ));
            }
            other => other?,
        }
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "group.created",
            ("group", Some(group.id.to_string())),
            None::<&Group>,
            Some(&group),
        )
        .await?;
        tx.commit().await?;
        Ok(group)
    }

    pub async fn update_group(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        patch: GroupPatch,
    ) -> Result<Group> {
        let name = patch
            .name
            .map(|n| super::error::check_label("name", &n, 200))
            .transpose()?;
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        let before = self.admin_group(&mut tx, &org, id).await?;
        let mut after = before.clone();
        if let Some(name) = name
            && name != before.name
        {
            if name.to_lowercase() != before.name.to_lowercase() {
                self.free_name(&mut tx, &org, &name).await?;
            }
            after.name = name;
        }
        if after == before {
            tx.rollback().await?;
            return Ok(before);
        }
        after.updated_at = now;
        store::groups::update(&mut tx, &mut after).await?;
        // Members show their groups' names (SCIM `groups`): their versions move too.
        store::groups::bump_member_versions(&mut tx, org_id, id, now).await?;
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

    pub async fn delete_group(&self, org_id: Uuid, actor: &Actor, id: Uuid) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        let group = self.admin_group(&mut tx, &org, id).await?;
        delete_group_row(&mut tx, actor, &group, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds (`add = true`) or removes members of an admin's group; one audit entry for the
    /// change. Removed members cannot be added.
    pub async fn change_group_members(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        member_ids: &[Uuid],
        add: bool,
    ) -> Result<Vec<GroupMemberResult>> {
        if member_ids.is_empty() || member_ids.len() > MAX_BATCH {
            return Err(RosterError::invalid(
                "member_ids",
                format!("must list 1 to {MAX_BATCH} members"),
            ));
        }
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        let group = self.admin_group(&mut tx, &org, id).await?;
        let mut results = Vec::with_capacity(member_ids.len());
        let mut changed = Vec::new();
        for &mid in member_ids {
            let outcome = match store::members::by_id(&mut tx, org_id, mid, false).await? {
                None => GroupMemberOutcome::SkippedNotFound,
                Some(m) if add && m.access.is_gone() => GroupMemberOutcome::SkippedRemovedMember,
                Some(_) if add => {
                    if store::groups::add_member(&mut tx, group.id, mid, now).await? {
                        GroupMemberOutcome::Added
                    } else {
                        GroupMemberOutcome::SkippedAlready
                    }
                }
                Some(_) => {
                    if store::groups::remove_member(&mut tx, group.id, mid).await? {
                        GroupMemberOutcome::Removed
                    } else {
                        GroupMemberOutcome::SkippedNotMember
                    }
                }
            };
            if matches!(
                outcome,
                GroupMemberOutcome::Added | GroupMemberOutcome::Removed
            ) {
                changed.push(mid);
            }
            results.push(GroupMemberResult {
                member_id: mid,
                outcome,
            });
        }
        if !changed.is_empty() {
            store::groups::touch(&mut tx, org_id, group.id, now).await?;
            store::members::bump_versions(&mut tx, org_id, &changed, now).await?;
            let (before, after) = if add {
                (
                    serde_json::json!({"removed": []}),
                    serde_json::json!({"added": changed}),
                )
            } else {
                (
                    serde_json::json!({"removed": changed}),
                    serde_json::json!({"added": []}),
                )
            };
            record(
                &mut tx,
                now,
                Some(org_id),
                actor,
                "group.members_changed",
                ("group", Some(group.id.to_string())),
                Some(&before),
                Some(&after),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(results)
    }
}
