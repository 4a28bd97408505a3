//! One member's full detail, read in one transaction: the member row, their phone numbers,
//! their groups and what each grants (entitlements), the status trail, who claims them (sources
//! and SCIM clients), their application answers, their points and money, and their most recent
//! audit entries.
//!
//! The status trail is derived from the audit log: every change of a member's access — by an
//! admin, the invitee, the join page, an invite link, a SCIM client, a sync run or rosterd's
//! reminders — writes an audit entry about the member (subject `member`) with the member before
//! and after, in the same transaction as the change. An entry joins the trail when the access
//! it records changed, or when it is an invitation email (resend, reminder) or an erasure; so
//! new ways of changing access show up without this module knowing them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::join::ApplicationView;
use super::{Result, Roster, RosterError};
use crate::domain::{Access, Member, Phone};
use crate::store::audit::AuditRow;
use crate::store::detail::{LinkRow, WriterRow};
use crate::store::entitlements::Entitlement;
use crate::store::ledger::PaymentRow;
use crate::store::{self};

/// Audit entries the status trail reads at most (newest first); older ones are left out and
/// the detail says so (`trail_complete: false`).
pub const TRAIL_SCAN: i64 = 1000;
/// Recent audit entries and payments the detail shows; the rest page through
/// `GET …/audit?member=ID&cursor=…` and `GET …/members/{id}/payments?cursor=…`.
pub const RECENT: i64 = 20;

/// Member actions that never change access: the trail does not read them.
const NOT_TRAIL: &[&str] = &[
    "member.active",
    "member.fee_set",
    "member.phones_set",
    "member.attributes_set",
    "points.give",
    "points.take",
    "payment.recorded",
];

/// What happened to the member's access (or invitation) at one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailEvent {
    /// Added and invited.
    Invited,
    /// Added with access at once (a source or SCIM client whose org enrols directly).
    Added,
    /// An invitation sent again by an admin.
    InvitationResent,
    /// An automatic reminder.
    ReminderSent,
    /// Accepted the invitation.
    Enrolled,
    /// Joined by themselves (the join page or an invite link).
    Joined,
    /// Added again after being gone, and invited again.
    Reinvited,
    /// Added again after being gone, with access at once (had enrolled before).
    Reenrolled,
    Disabled,
    Enabled,
    /// The pending invitation was withdrawn.
    Cancelled,
    Removed,
    /// Their personal data was erased.
    Erased,
    /// Any other change of access (named by `access`).
    AccessChanged,
}

/// Who or what did it, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailActor {
    /// `admin_token`, `operator`, `cli`, `system`, `invitee`, `applicant`, `scim_client`, `sync`.
    pub kind: String,
    /// The token, run, request or member id, where there is one.
    pub id: Option<String>,
    pub label: String,
}

/// One step of the status trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailStep {
    pub at: DateTime<Utc>,
    pub event: TrailEvent,
    /// The access after this step.
    pub access: Option<Access>,
    pub by: TrailActor,
    /// The audit entry it comes from.
    pub audit_id: Uuid,
    pub action: String,
}

/// A group the member is in, who keeps it, and what it grants.
#[derive(Debug, Clone, Serialize)]
pub struct GroupGrant {
    pub id: Uuid,
    pub name: String,
    /// `source:NAME`, `scim`, or absent when the org's admins keep it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_by: Option<String>,
    pub entitlements: Vec<EntitlementView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntitlementView {
    pub id: Uuid,
    pub name: String,
    pub external_ref: Option<String>,
}

/// An entitlement the member has, and the group it comes through.
#[derive(Debug, Clone, Serialize)]
pub struct HeldEntitlement {
    pub id: Uuid,
    pub name: String,
    pub external_ref: Option<String>,
    pub group_id: Uuid,
    pub group: String,
}

/// A source holding a link to the member.
#[derive(Debug, Clone, Serialize)]
pub struct SourceClaim {
    pub source: String,
    pub external_id: String,
    /// A claiming link stops other sources removing the member; import links never claim.
    pub claiming: bool,
    pub linked_at: DateTime<Utc>,
}

/// A SCIM client that wrote the member (from the audit log).
#[derive(Debug, Clone, Serialize)]
pub struct ScimWriter {
    /// The SCIM token's id.
    pub token_id: Option<String>,
    pub label: String,
    pub first_write: DateTime<Utc>,
    pub last_write: DateTime<Utc>,
}

/// The member as a live SCIM resource.
#[derive(Debug, Clone, Serialize)]
pub struct ScimClaim {
    pub user_name: String,
    pub external_id: Option<String>,
    /// The SCIM clients (tokens) that created or changed the user, first writer first.
    pub clients: Vec<ScimWriter>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    /// Links from configured sources and import jobs (the SCIM link is under `scim`).
    pub sources: Vec<SourceClaim>,
    /// Present while a SCIM client provisions the member (a live SCIM User).
    pub scim: Option<ScimClaim>,
}

/// Points and money.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerSummary {
    pub points: i64,
    pub monthly_fee: Option<i64>,
    pub currency: Option<String>,
    pub total_paid: i64,
    /// The most recent payments, newest first.
    pub payments: Vec<PaymentRow>,
    /// Pass as `cursor` to `GET …/members/{id}/payments` for older ones; absent when all shown.
    pub payments_next_cursor: Option<String>,
}

/// Everything about one member.
#[derive(Debug, Clone)]
pub struct MemberDetail {
    pub member: Member,
    pub phones: Vec<Phone>,
    /// Values of the org's own attributes, by attribute name.
    pub attributes: super::attributes::ValueMap,
    pub groups: Vec<GroupGrant>,
    pub entitlements: Vec<HeldEntitlement>,
    /// Oldest first.
    pub trail: Vec<TrailStep>,
    /// False when the member has more history than [`TRAIL_SCAN`] entries: the oldest steps
    /// are left out.
    pub trail_complete: bool,
    pub claims: Claims,
    pub applications: Vec<ApplicationView>,
    pub ledger: LedgerSummary,
    /// The newest audit entries about the member, newest first.
    pub recent_audit: Vec<AuditRow>,
    /// Pass as `cursor` to `GET …/audit?member=ID` for older entries.
    pub audit_next_cursor: Option<String>,
}

fn access_in(v: &Value) -> Option<Access> {
    let v = v.get("member").filter(|m| m.is_object()).unwrap_or(v);
    v.get("access")?.as_str()?.parse().ok()
}

fn parse(text: Option<&str>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// The trail step an audit entry makes, if any.
pub fn trail_step(row: &AuditRow) -> Option<TrailStep> {
    let before = parse(row.before.as_deref()).as_ref().and_then(access_in);
    let after = parse(row.after.as_deref()).as_ref().and_then(access_in);
    let event = match row.action.as_str() {
        "member.invite_resent" => TrailEvent::InvitationResent,
        "member.reminder_sent" => TrailEvent::ReminderSent,
        "member.erased" => TrailEvent::Erased,
        _ if after.is_none() || after == before => return None,
        "member.added" if after == Some(Access::Invited) => TrailEvent::Invited,
        "member.added" => TrailEvent::Added,
        "member.readded" if after == Some(Access::Invited) => TrailEvent::Reinvited,
        "member.readded" if after == Some(Access::Enrolled) => TrailEvent::Reenrolled,
        "member.enrolled" => TrailEvent::Enrolled,
        "member.joined" | "member.joined_by_link" => TrailEvent::Joined,
        _ => match after {
            Some(Access::Disabled) => TrailEvent::Disabled,
            Some(Access::Enrolled) if before == Some(Access::Disabled) => TrailEvent::Enabled,
            Some(Access::Cancelled) => TrailEvent::Cancelled,
            Some(Access::Removed) => TrailEvent::Removed,
            _ => TrailEvent::AccessChanged,
        },
    };
    Some(TrailStep {
        at: row.at,
        event,
        access: after,
        by: TrailActor {
            kind: row.actor_kind.clone(),
            id: row.actor_id.clone(),
            label: row.actor_label.clone(),
        },
        audit_id: row.id,
        action: row.action.clone(),
    })
}

impl Roster {
    /// Everything about one member of the org (not found for another org's member).
    pub async fn member_detail(&self, org_id: Uuid, id: Uuid) -> Result<MemberDetail> {
        let mut tx = self.store.read().await?;
        let Some(member) = store::members::by_id(&mut tx, org_id, id, false).await? else {
            tx.rollback().await?;
            return Err(RosterError::NotFound("member".into()));
        };
        let org = store::orgs::by_id(&mut tx, org_id)
            .await?
            .ok_or_else(|| RosterError::NotFound("organization".into()))?;
        let phones = store::phones::of_member(&mut tx, org_id, id).await?;
        let attributes = super::attributes::map_of(&mut tx, org_id, id).await?;

        let mut groups = Vec::new();
        for (_, group_id, _) in store::groups::groups_of(&mut tx, org_id, &[id]).await? {
            if let Some(g) = store::groups::by_id(&mut tx, org_id, group_id).await? {
                groups.push(g);
            }
        }
        let ids: Vec<Uuid> = groups.iter().map(|g| g.id).collect();
        let granted = store::entitlements::of_groups(&mut tx, org_id, &ids).await?;
        let view = |e: &Entitlement| EntitlementView {
            id: e.id,
            name: e.name.clone(),
            external_ref: e.external_ref.clone(),
        };
        let mut entitlements = Vec::new();
        let groups: Vec<GroupGrant> = groups
            .iter()
            .map(|g| {
                let mine: Vec<&Entitlement> =
                    granted.iter().filter(|e| e.group_id == g.id).collect();
                entitlements.extend(mine.iter().map(|e| HeldEntitlement {
                    id: e.id,
                    name: e.name.clone(),
                    external_ref: e.external_ref.clone(),
                    group_id: g.id,
                    group: g.name.clone(),
                }));
                GroupGrant {
                    id: g.id,
                    name: g.name.clone(),
                    kept_by: self.group_keeper(&org, g).map(|k| k.label()),
                    entitlements: mine.into_iter().map(view).collect(),
                }
            })
            .collect();
        entitlements.sort_by_key(|e| e.name.to_lowercase());

        let rows =
            store::detail::member_entries(&mut tx, org_id, id, NOT_TRAIL, TRAIL_SCAN).await?;
        let trail_complete = (rows.len() as i64) < TRAIL_SCAN;
        let trail: Vec<TrailStep> = rows.iter().rev().filter_map(trail_step).collect();

        let links = store::detail::links(&mut tx, org_id, id).await?;
        let scim = if member.scim_data.is_some() && !member.scim_deleted {
            let writers = store::detail::scim_writers(&mut tx, org_id, id).await?;
            Some(ScimClaim {
                user_name: member.user_name.clone(),
                external_id: member.external_id.clone(),
                clients: writers.into_iter().map(scim_writer).collect(),
            })
        } else {
            None
        };
        let claims = Claims {
            sources: links
                .into_iter()
                .filter(|l| l.source != super::SCIM_SOURCE)
                .map(source_claim)
                .collect(),
            scim,
        };

        let applications = store::join::requests_of_member(&mut tx, org_id, id)
            .await?
            .into_iter()
            .map(ApplicationView::from)
            .collect();

        let mut payments = store::ledger::payments(&mut tx, org_id, id, None, RECENT + 1).await?;
        let more = payments.len() as i64 > RECENT;
        payments.truncate(RECENT as usize);
        let payments_next_cursor = payments.last().filter(|_| more).map(|p| p.id.to_string());

        let mut recent_audit = store::audit::page_for_subject(
            &mut tx,
            org_id,
            ("member", &id.to_string()),
            None,
            RECENT + 1,
        )
        .await?;
        let more = recent_audit.len() as i64 > RECENT;
        recent_audit.truncate(RECENT as usize);
        let audit_next_cursor = recent_audit
            .last()
            .filter(|_| more)
            .map(|r| r.id.to_string());
        tx.rollback().await?;

        Ok(MemberDetail {
            ledger: LedgerSummary {
                points: member.points,
                monthly_fee: member.monthly_fee,
                currency: member.currency.clone(),
                total_paid: member.total_paid,
                payments,
                payments_next_cursor,
            },
            member,
            phones,
            attributes,
            groups,
            entitlements,
            trail,
            trail_complete,
            claims,
            applications,
            recent_audit,
            audit_next_cursor,
        })
    }
}

fn source_claim(l: LinkRow) -> SourceClaim {
    SourceClaim {
        source: l.source,
        external_id: l.external_id,
        claiming: l.claiming,
        linked_at: l.created_at,
    }
}

fn scim_writer(w: WriterRow) -> ScimWriter {
    ScimWriter {
        token_id: w.actor_id,
        label: w.actor_label,
        first_write: w.first_at,
        last_write: w.last_at,
    }
}
