//! Dropping all member data of an org: every member but the owner and the acting admin is
//! erased (the same tombstone and scrubbing as erasing one member, `erase.rs`) and leaves their
//! groups. The request (`request_drop_members`) checks the confirmation and the lock and queues
//! a job; the job (`run_drop_members`) works in batches so its cost is linear in the org's size:
//!
//! 1. read the members to drop a page at a time and gather their values into one matcher;
//! 2. scrub the org's audit values, sync plan items and run error rows, a page per transaction;
//! 3. tombstone the members, a batch per transaction (each audited as `member.erased`);
//! 4. scrub the audit rows written meanwhile (after the mark of step 2).
//!
//! A job cut short is marked failed; running it again picks up the members not yet erased.

use std::collections::HashSet;

use serde_json::{Value, json};
use uuid::Uuid;

use super::audit::{Actor, record};
use super::erase::{
    Needles, scrub_audit_page, scrub_error_page, scrub_events_page, scrub_plan_page, tombstone,
};
use super::jobs::{JobCtx, KIND_DROP_MEMBERS};
use super::members::{lock_check, lock_org};
use super::{Result, Roster, RosterError};
use crate::domain::Role;
use crate::store::jobs::JobRow;
use crate::store::{self, Tx};

/// Members read (and erased) per transaction.
const BATCH: i64 = 500;

async fn refuse_claimed(tx: &mut Tx, org_id: Uuid) -> Result<()> {
    if let Some(source) = store::erase::any_claiming_source(tx, org_id).await? {
        return Err(RosterError::conflict(
            "claimed_by_integration",
            format!(
                "source `{source}` still claims members of this organization; remove them there first"
            ),
        ));
    }
    if store::erase::any_scim_member(tx, org_id).await? {
        return Err(RosterError::conflict(
            "claimed_by_integration",
            "a SCIM client still provisions members of this organization; delete the users there first",
        ));
    }
    Ok(())
}

impl Roster {
    /// Queues dropping every member of the org but the owner and the acting admin.
    ///
    /// `confirm` must be, for an admin token, the email (member or login) of an owner or admin
    /// of the org with access — the person asking, who is kept (`acting_member`, when the caller
    /// knows who is signed in, must be that person); for the operator token and the command
    /// line, the org's slug. Refused (409) in an integration-managed org, while a source or SCIM
    /// client claims members, and while another drop of the org is queued or running.
    pub async fn request_drop_members(
        &self,
        org_id: Uuid,
        actor: &Actor,
        confirm: &str,
        acting_member: Option<Uuid>,
    ) -> Result<JobRow> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        lock_check(&org)?;
        let confirm = confirm.trim();
        let mut keep: Vec<Uuid> = Vec::new();
        match actor {
            Actor::Operator | Actor::Cli => {
                if confirm != org.slug {
                    return Err(RosterError::invalid(
                        "confirm",
                        format!(
                            "must be the organization's slug `{}` to drop all its members",
                            org.slug
                        ),
                    ));
                }
            }
            _ => {
                let who = store::members::by_email(&mut tx, org_id, confirm, true)
                    .await?
                    .filter(|m| {
                        matches!(m.role, Role::Owner | Role::Admin)
                            && m.access.has_access()
                            && acting_member.is_none_or(|a| a == m.id)
                    });
                let Some(who) = who else {
                    return Err(RosterError::invalid(
                        "confirm",
                        "must be your own email address (an owner or admin of this organization) to drop all its members",
                    ));
                };
                keep.push(who.id);
            }
        }
        if let Some(owner) = store::members::owner(&mut tx, org_id).await? {
            keep.push(owner.id);
        }
        keep.sort();
        keep.dedup();
        refuse_claimed(&mut tx, org_id).await?;
        if let Some(j) = store::jobs::active_of_kind(&mut tx, org_id, KIND_DROP_MEMBERS).await? {
            return Err(RosterError::conflict(
                "job_in_progress",
                format!(
                    "a drop of this organization's members is already {} (job {})",
                    j.status, j.id
                ),
            ));
        }
        let params = json!({ "keep": keep });
        let job = self
            .queue_job(&mut tx, org_id, actor, KIND_DROP_MEMBERS, &params)
            .await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "org.members_drop_requested",
            ("org", Some(org_id.to_string())),
            None::<&Value>,
            Some(&json!({ "job_id": job.id, "keep": keep })),
        )
        .await?;
        tx.commit().await?;
        Ok(job)
    }

    /// The drop job's work (see the module documentation). Returns its result.
    pub(crate) async fn run_drop_members(&self, ctx: &JobCtx) -> Result<Value> {
        let org_id = ctx.org_id;
        let keep: HashSet<Uuid> = ctx.params["keep"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        {
            let mut tx = self.store.read().await?;
            let org = store::orgs::by_id(&mut tx, org_id)
                .await?
                .ok_or_else(|| RosterError::NotFound("organization".into()))?;
            lock_check(&org)?;
            // Checked once (the request checked too): a batch checks only the lock.
            refuse_claimed(&mut tx, org_id).await?;
            tx.rollback().await?;
        }
        // 1. Who goes, and their values.
        let mut ids = Vec::new();
        let mut needles = Needles::empty();
        let mut after = None;
        loop {
            let mut tx = self.store.read().await?;
            let page = store::erase::droppable_members(&mut tx, org_id, after, BATCH).await?;
            for &id in &page {
                if keep.contains(&id) {
                    continue;
                }
                if let Some(m) = store::members::by_id(&mut tx, org_id, id, false).await? {
                    if m.role == Role::Owner {
                        continue;
                    }
                    needles.add(&m);
                    ids.push(id);
                }
            }
            tx.rollback().await?;
            match page.last() {
                Some(&last) if page.len() as i64 == BATCH => after = Some(last),
                _ => break,
            }
        }
        let needles = needles.finish();
        let total = ids.len() as i64;
        ctx.report(0, Some(total)).await?;

        // 2. The copies in shared rows.
        let mut mark = None;
        loop {
            let mut tx = self.store.write().await?;
            lock_org(&mut tx, org_id).await?;
            let last = scrub_audit_page(&mut tx, org_id, &needles, mark, None).await?;
            tx.commit().await?;
            ctx.report(0, Some(total)).await?;
            match last {
                Some(l) => mark = Some(l),
                None => break,
            }
        }
        let mut events = None;
        loop {
            let mut tx = self.store.write().await?;
            lock_org(&mut tx, org_id).await?;
            let last = scrub_events_page(&mut tx, org_id, &needles, events).await?;
            tx.commit().await?;
            match last {
                Some(l) => events = Some(l),
                None => break,
            }
        }
        let mut plan = None;
        loop {
            let mut tx = self.store.write().await?;
            lock_org(&mut tx, org_id).await?;
            let last = scrub_plan_page(&mut tx, org_id, &needles, plan).await?;
            tx.commit().await?;
            match last {
                Some(l) => plan = Some(l),
                None => break,
            }
        }
        let mut errors = None;
        loop {
            let mut tx = self.store.write().await?;
            lock_org(&mut tx, org_id).await?;
            let last = scrub_error_page(&mut tx, org_id, &needles, errors).await?;
            tx.commit().await?;
            match last {
                Some(l) => errors = Some(l),
                None => break,
            }
        }

        // 3. The members themselves.
        let mut dropped = 0i64;
        for chunk in ids.chunks(BATCH as usize) {
            let now = self.clock.now();
            let mut tx = self.store.write().await?;
            let org = lock_org(&mut tx, org_id).await?;
            lock_check(&org)?;
            for &id in chunk {
                let Some(before) = store::members::by_id(&mut tx, org_id, id, true).await? else {
                    continue;
                };
                if before.role == Role::Owner {
                    continue;
                }
                tombstone(&mut tx, &ctx.actor, &before, now).await?;
                store::groups::remove_member_everywhere(&mut tx, org_id, id, now).await?;
                dropped += 1;
            }
            tx.commit().await?;
            ctx.report(dropped, Some(total)).await?;
        }

        // 4. What was written about them meanwhile, and the job's own entry.
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        while let Some(last) =
            scrub_audit_page(&mut tx, org_id, &needles, mark, Some("member.erased")).await?
        {
            mark = Some(last);
        }
        while let Some(last) = scrub_events_page(&mut tx, org_id, &needles, events).await? {
            events = Some(last);
        }
        let result = json!({ "dropped": dropped, "kept": keep.len() });
        record(
            &mut tx,
            now,
            Some(org_id),
            &ctx.actor,
            "org.members_dropped",
            ("org", Some(org_id.to_string())),
            None::<&Value>,
            Some(&json!({ "job_id": ctx.id, "dropped": dropped, "kept": keep })),
        )
        .await?;
        tx.commit().await?;
        Ok(result)
    }
}
