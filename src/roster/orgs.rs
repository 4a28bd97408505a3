//! Organizations: creation (with an invited owner), the integration-managed flag, and the orgs
//! the config says must exist.

use uuid::Uuid;

use super::audit::{Actor, record};
use super::{Result, Roster, RosterError};
use crate::config::OrgSeed;
use crate::domain::{Email, Role, Slug};
use crate::store::orgs::Org;
use crate::store::{self, StoreError};

impl Roster {
    /// Creates an org; with `owner_email`, its owner is added (invited) in the same transaction.
    pub async fn create_org(
        &self,
        actor: &Actor,
        slug: &str,
        name: &str,
        owner_email: Option<&str>,
    ) -> Result<Org> {
        let slug = Slug::parse(slug).map_err(|e| RosterError::invalid("slug", e.to_string()))?;
        let name = super::error::check_label("name", name, 200)?;
        let owner = owner_email
            .map(|e| {
                Email::parse(e).map_err(|err| RosterError::invalid("owner_email", err.to_string()))
            })
            .transpose()?;
        let now = self.clock.now();
        let org = Org {
            id: Uuid::now_v7(),
            slug: slug.as_str().to_owned(),
            name,
            managed_by: None,
            managed_by_source: None,
            scim_new_members: "invite".into(),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.write().await?;
        match store::orgs::insert(&mut tx, &org).await {
            Err(StoreError::Unique(_)) => {
                return Err(RosterError::conflict(
                    "slug_taken",
                    format!("an organization with slug `{slug}` already exists"),
                ));
            }
            other => other?,
        }
        record(
            &mut tx,
            now,
            Some(org.id),
            actor,
            "org.created",
            ("org", Some(org.id.to_string())),
            None::<&Org>,
            Some(&org),
        )
        .await?;
        if let Some(owner) = owner {
            self.insert_invited(&mut tx, &org, actor, owner, Role::Owner, None, None, None)
                .await?;
        }
        tx.commit().await?;
        Ok(org)
    }

    /// Looks an org up by slug.
    pub async fn org_by_slug(&self, slug: &str) -> Result<Option<Org>> {
        let mut tx = self.store.read().await?;
        let org = store::orgs::by_slug(&mut tx, slug).await?;
        tx.rollback().await?;
        Ok(org)
    }

    pub async fn orgs(&self) -> Result<Vec<Org>> {
        let mut tx = self.store.read().await?;
        let orgs = store::orgs::list(&mut tx).await?;
        tx.rollback().await?;
        Ok(orgs)
    }

    /// Renames an org and/or sets which integration manages its membership (`Some("")` clears).
    pub async fn update_org(
        &self,
        actor: &Actor,
        org_id: Uuid,
        name: Option<&str>,
        managed_by: Option<Option<&str>>,
        scim_new_members: Option<&str>,
    ) -> Result<Org> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let before = super::members::lock_org(&mut tx, org_id).await?;
        let mut after = before.clone();
        if let Some(name) = name {
            after.name = super::error::check_label("name", name, 200)?;
        }
        if let Some(managed) = managed_by {
            after.managed_by = match managed.map(str::trim).filter(|m| !m.is_empty()) {
                Some(m) => Some(super::error::check_label("managed_by", m, 200)?),
                None => None,
            };
        }
        if let Some(mode) = scim_new_members {
            if !["invite", "invite_silently", "enroll"].contains(&mode) {
                return Err(RosterError::invalid(
                    "scim_new_members",
                    "must be invite, invite_silently or enroll",
                ));
            }
            after.scim_new_members = mode.to_owned();
        }
        if after == before {
            tx.rollback().await?;
            return Ok(before);
        }
        after.updated_at = now;
        store::orgs::update(&mut tx, &after).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "org.updated",
            ("org", Some(org_id.to_string())),
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Creates the orgs the config lists that do not exist yet. Existing ones are left alone.
    pub async fn ensure_orgs(&self, seeds: &[OrgSeed]) -> Result<Vec<Org>> {
        let mut created = Vec::new();
        for seed in seeds {
            if self.org_by_slug(&seed.slug).await?.is_some() {
                continue;
            }
            match self
                .create_org(
                    &Actor::System,
                    &seed.slug,
                    &seed.name,
                    seed.owner_email.as_deref(),
                )
                .await
            {
                Ok(org) => created.push(org),
                // Another replica created it first.
                Err(RosterError::Conflict {
                    code: "slug_taken", ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(created)
    }
}
