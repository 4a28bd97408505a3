//! Entitlements: named items attached to a group — a training course, a licence — with an
//! optional reference in another system (a course id, a licence SKU). Members have them through
//! their groups (see `roster::detail`).
//!
//! Entitlements are rosterd's own: an admin attaches them to any group of the org, also one a
//! SCIM client or a source keeps (whose membership stays the keeper's) and also in an
//! integration-managed org (they grant nothing to the membership itself). Adding and removing
//! one is audited on the group (`group.entitlement_added`, `group.entitlement_removed`).

use serde::Deserialize;
use uuid::Uuid;

use super::audit::{Actor, record};
use super::error::check_label;
use super::members::lock_org;
use super::{Result, Roster, RosterError};
use crate::store::entitlements::Entitlement;
use crate::store::{self, StoreError};

/// Most entitlements one group has.
pub const MAX_PER_GROUP: usize = 200;
const MAX_NAME: usize = 200;
const MAX_REF: usize = 500;

/// An entitlement as an admin adds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntitlement {
    /// Unique within the group, ignoring case.
    pub name: String,
    /// Where it lives elsewhere (a course id, a URL, a licence SKU).
    #[serde(default)]
    pub external_ref: Option<String>,
}

impl Roster {
    /// A group's entitlements, by name.
    pub async fn entitlements(&self, org_id: Uuid, group_id: Uuid) -> Result<Vec<Entitlement>> {
        let mut tx = self.store.read().await?;
        if store::groups::by_id(&mut tx, org_id, group_id)
            .await?
            .is_none()
        {
            tx.rollback().await?;
            return Err(RosterError::NotFound("group".into()));
        }
        let list = store::entitlements::of_group(&mut tx, org_id, group_id).await?;
        tx.rollback().await?;
        Ok(list)
    }

    /// Attaches an entitlement to a group.
    pub async fn add_entitlement(
        &self,
        org_id: Uuid,
        actor: &Actor,
        group_id: Uuid,
        new: NewEntitlement,
    ) -> Result<Entitlement> {
        let name = check_label("name", &new.name, MAX_NAME)?;
        let external_ref = match new.external_ref.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) => Some(check_label("external_ref", r, MAX_REF)?),
        };
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let group = store::groups::by_id(&mut tx, org_id, group_id)
            .await?
            .ok_or_else(|| RosterError::NotFound("group".into()))?;
        let existing = store::entitlements::of_group(&mut tx, org_id, group_id).await?;
        let taken = |e: &Entitlement| e.name.to_lowercase() == name.to_lowercase();
        if existing.iter().any(taken) {
            return Err(RosterError::conflict(
                "entitlement_exists",
                format!(
                    "group `{}` already has an entitlement named `{name}`",
                    group.name
                ),
            ));
        }
        if existing.len() >= MAX_PER_GROUP {
            return Err(RosterError::LimitExceeded {
                field: "name".into(),
                setting: "entitlements per group",
                limit: MAX_PER_GROUP as i64,
                message: format!(
                    "group `{}` has {MAX_PER_GROUP} entitlements, the most a group has; remove one first",
                    group.name
                ),
            });
        }
        let e = Entitlement {
            id: Uuid::now_v7(),
            org_id,
            group_id,
            name,
            external_ref,
            created_at: now,
        };
        match store::entitlements::insert(&mut tx, &e).await {
            // A concurrent add on another replica won the name.
            Err(StoreError::Unique(_)) => {
                return Err(RosterError::conflict(
                    "entitlement_exists",
                    format!(
                        "group `{}` already has an entitlement named `{}`",
                        group.name, e.name
                    ),
                ));
            }
            other => other?,
        }
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "group.entitlement_added",
            ("group", Some(group_id.to_string())),
            None::<&Entitlement>,
            Some(&e),
        )
        .await?;
        tx.commit().await?;
        Ok(e)
    }

    /// Detaches an entitlement from its group.
    pub async fn remove_entitlement(
        &self,
        org_id: Uuid,
        actor: &Actor,
        group_id: Uuid,
        id: Uuid,
    ) -> Result<Entitlement> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        if store::groups::by_id(&mut tx, org_id, group_id)
            .await?
            .is_none()
        {
            return Err(RosterError::NotFound("group".into()));
        }
        let e = store::entitlements::by_id(&mut tx, org_id, group_id, id)
            .await?
            .ok_or_else(|| RosterError::NotFound("entitlement".into()))?;
        store::entitlements::delete(&mut tx, org_id, group_id, id).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "group.entitlement_removed",
            ("group", Some(group_id.to_string())),
            Some(&e),
            None::<&Entitlement>,
        )
        .await?;
        tx.commit().await?;
        Ok(e)
    }
}
