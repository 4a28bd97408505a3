//! Organizations: creation (with an invited owner), the integration-managed flag, and the orgs
//! the config says must exist.

use uuid::Uuid;

use super::audit::{Actor, record};
use super::{FieldError, Result, Roster, RosterError};
use crate::config::OrgSeed;
use crate::domain::{Email, Role, Slug};
use crate::store::orgs::Org;
use crate::store::{self, StoreError};

/// Largest import invite limit an org may have.
pub const MAX_IMPORT_INVITE_LIMIT: i64 = 1_000_000;
/// Longest an invite link may stay valid.
pub const MAX_INVITE_LINK_DAYS: i64 = 90;
/// Longest resend cool-down (a week).
pub const MAX_RESEND_COOLDOWN_SECS: i64 = 7 * 24 * 3600;

/// What `update_org` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct OrgChanges {
    pub name: Option<String>,
    /// `Some(None)` (or an empty name) makes the org manual again.
    pub managed_by: Option<Option<String>>,
    pub scim_new_members: Option<String>,
    pub invite_limit: Option<i64>,
    pub import_invite_limit: Option<i64>,
    pub resend_cooldown_secs: Option<i64>,
    pub invite_requires_group: Option<bool>,
    pub invite_link_days: Option<i64>,
    /// `remove` or `disable`: what a SCIM `active: false` does.
    pub scim_deactivate: Option<String>,
}

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
            invite_limit: store::orgs::DEFAULT_INVITE_LIMIT,
            import_invite_limit: store::orgs::DEFAULT_IMPORT_INVITE_LIMIT,
            resend_cooldown_secs: store::orgs::DEFAULT_RESEND_COOLDOWN_SECS,
            invite_requires_group: false,
            invite_link_days: store::orgs::DEFAULT_INVITE_LINK_DAYS,
            scim_deactivate: store::orgs::DEFAULT_SCIM_DEACTIVATE.into(),
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

    /// Changes an org's name, managing integration and settings. Absent fields stay as they
    /// are; every field is checked before anything is written.
    pub async fn update_org(
        &self,
        actor: &Actor,
        org_id: Uuid,
        changes: &OrgChanges,
    ) -> Result<Org> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let before = super::members::lock_org(&mut tx, org_id).await?;
        let mut after = before.clone();
        let mut errors = Vec::new();
        if let Some(name) = &changes.name {
            match super::error::check_label("name", name, 200) {
                Ok(n) => after.name = n,
                Err(RosterError::Invalid(e)) => errors.extend(e),
                Err(e) => return Err(e),
            }
        }
        if let Some(managed) = &changes.managed_by {
            after.managed_by = match managed.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
                Some(m) => match super::error::check_label("managed_by", m, 200) {
                    Ok(m) => Some(m),
                    Err(RosterError::Invalid(e)) => {
                        errors.extend(e);
                        None
                    }
                    Err(e) => return Err(e),
                },
                None => None,
            };
        }
        if let Some(mode) = &changes.scim_new_members {
            if ["invite", "invite_silently", "enroll"].contains(&mode.as_str()) {
                after.scim_new_members = mode.clone();
            } else {
                errors.push(FieldError::new(
                    "scim_new_members",
                    "must be invite, invite_silently or enroll",
                ));
            }
        }
        if let Some(mode) = &changes.scim_deactivate {
            if store::orgs::SCIM_DEACTIVATE_MODES.contains(&mode.as_str()) {
                after.scim_deactivate = mode.clone();
            } else {
                errors.push(FieldError::new(
                    "scim_deactivate",
                    format!("must be remove or disable (got `{}`)", mode.escape_debug()),
                ));
            }
        }
        let mut bounded = |field: &str, v: Option<i64>, min: i64, max: i64, into: &mut i64| {
            if let Some(v) = v {
                if (min..=max).contains(&v) {
                    *into = v;
                } else {
                    errors.push(FieldError::new(
                        field,
                        format!("must be between {min} and {max} (got {v})"),
                    ));
                }
            }
        };
        bounded(
            "invite_limit",
            changes.invite_limit,
            1,
            super::members::MAX_BATCH as i64,
            &mut after.invite_limit,
        );
        bounded(
            "import_invite_limit",
            changes.import_invite_limit,
            1,
            MAX_IMPORT_INVITE_LIMIT,
            &mut after.import_invite_limit,
        );
        bounded(
            "resend_cooldown_secs",
            changes.resend_cooldown_secs,
            0,
            MAX_RESEND_COOLDOWN_SECS,
            &mut after.resend_cooldown_secs,
        );
        bounded(
            "invite_link_days",
            changes.invite_link_days,
            1,
            MAX_INVITE_LINK_DAYS,
            &mut after.invite_link_days,
        );
        if let Some(required) = changes.invite_requires_group {
            after.invite_requires_group = required;
        }
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
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
