//! Erasure of one member's personal data: names, emails, user name, external id, SCIM
//! attributes and contact email become a tombstone everywhere rosterd stored them — the member
//! row (which stays, removed, so ids in history still resolve), the audit log's before/after
//! values, the outbox, sync plan items and run error rows — and the member's source links and
//! phone numbers go.
//! Refused for the owner, in an integration-managed org, and while a source or SCIM client still
//! claims the member. One transaction, audited as `member.erased` (with no personal value).

use serde_json::Value;
use uuid::Uuid;

use super::audit::{Actor, record};
use super::members::{lock_check, lock_org, revoke_access};
use super::{Result, Roster, RosterError};
use crate::domain::{Access, Member, Role};
use crate::store;

/// What replaces an erased value.
pub const TOMBSTONE: &str = "[erased]";

/// The member-row fields that hold personal data (as serialized in audit values).
const PERSONAL_FIELDS: &[&str] = &[
    "given_name",
    "family_name",
    "display_name",
    "member_email",
    "login_email",
    "user_name",
    "external_id",
    "scim_data",
    "contact_email",
    "name",
    "email",
    // `member.phones_set` entries hold the member's numbers under this key.
    "phones",
];

/// The erased member's values, lowercased: emails and ids match inside longer text, names only
/// whole (a short name must not blot out other words).
struct Needles {
    contained: Vec<String>,
    whole: Vec<String>,
}

impl Needles {
    fn of(m: &Member) -> Self {
        let mut contained: Vec<String> = [
            Some(&m.member_email),
            m.login_email.as_ref(),
            Some(&m.user_name),
            m.external_id.as_ref(),
            m.contact_email.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| s.chars().count() >= 3)
        .collect();
        contained.sort();
        contained.dedup();
        let whole = [&m.given_name, &m.family_name, &m.display_name]
            .into_iter()
            .flatten()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        Needles { contained, whole }
    }

    fn hits(&self, text: &str) -> bool {
        let t = text.trim().to_lowercase();
        self.contained.iter().any(|n| t.contains(n.as_str())) || self.whole.contains(&t)
    }

    fn scrub_text(&self, text: &str) -> Option<String> {
        self.hits(text).then(|| TOMBSTONE.to_owned())
    }

    /// Replaces every string (and every key of a member-shaped object when `member` holds) that
    /// carries the person's data.
    fn scrub_value(&self, v: &mut Value, member: bool) -> bool {
        match v {
            Value::String(s) if self.hits(s) => {
                *s = TOMBSTONE.to_owned();
                true
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |c, i| self.scrub_value(i, member) | c),
            Value::Object(map) => {
                let mut changed = false;
                for (k, item) in map.iter_mut() {
                    if member && PERSONAL_FIELDS.contains(&k.as_str()) && !item.is_null() {
                        if *item != Value::String(TOMBSTONE.into()) {
                            *item = Value::String(TOMBSTONE.into());
                            changed = true;
                        }
                    } else {
                        changed |= self.scrub_value(item, member);
                    }
                }
                changed
            }
            _ => false,
        }
    }

    /// A stored JSON text scrubbed, or `None` when nothing in it is the person's.
    fn scrub_json(&self, text: &str, member: bool) -> Option<String> {
        match serde_json::from_str::<Value>(text) {
            Ok(mut v) => self.scrub_value(&mut v, member).then(|| v.to_string()),
            Err(_) => self.scrub_text(text),
        }
    }
}

impl Roster {
    /// Erases one member's personal data (see the module documentation).
    pub async fn erase_member(&self, org_id: Uuid, actor: &Actor, id: Uuid) -> Result<Member> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        lock_check(&org)?;
        let Some(before) = store::members::by_id(&mut tx, org_id, id, true).await? else {
            return Err(RosterError::NotFound("member".into()));
        };
        if before.role == Role::Owner {
            return Err(RosterError::conflict(
                "owner_cannot_be_erased",
                "the owner cannot be erased; transfer ownership to an admin first",
            ));
        }
        if let Some(source) = store::erase::claiming_source(&mut tx, org_id, id).await? {
            return Err(RosterError::conflict(
                "claimed_by_integration",
                format!(
                    "source `{source}` still claims this member; remove the person there first"
                ),
            ));
        }
        if before.scim_data.is_some() && !before.scim_deleted {
            return Err(RosterError::conflict(
                "claimed_by_integration",
                "a SCIM client still provisions this member; delete the user there first",
            ));
        }
        let needles = Needles::of(&before);
        let member_id = id.to_string();

        let mut after = before.clone();
        if !after.access.is_gone() {
            revoke_access(&mut tx, &mut after, now).await?;
        }
        after.access = Access::Removed;
        after.removed_at.get_or_insert(now);
        let placeholder = format!("erased-{}@invalid", id.simple());
        after.given_name = None;
        after.family_name = None;
        after.display_name = None;
        after.member_email.clone_from(&placeholder);
        after.login_email = None;
        after.user_name.clone_from(&placeholder);
        after.external_id = None;
        after.scim_data = None;
        after.contact_email = None;
        after.updated_at = now;
        store::members::update(&mut tx, &mut after).await?;
        store::erase::drop_links(&mut tx, org_id, id).await?;
        store::phones::delete_for_member(&mut tx, org_id, id).await?;
        let emails: Vec<String> = [Some(&before.member_email), before.login_email.as_ref()]
            .into_iter()
            .flatten()
            .map(|e| e.to_lowercase())
            .collect();
        store::erase::erase_join_and_links(&mut tx, org_id, id, &emails, &placeholder).await?;
        store::erase::erase_money_notes(&mut tx, org_id, id, TOMBSTONE).await?;
        store::erase::erase_outbox(
            &mut tx,
            org_id,
            id,
            &needles.contained,
            &placeholder,
            TOMBSTONE,
        )
        .await?;

        for (row, subject, b, a) in store::erase::audit_values(&mut tx, org_id).await? {
            let member = subject.as_deref() == Some(member_id.as_str());
            let nb = b.as_deref().and_then(|t| needles.scrub_json(t, member));
            let na = a.as_deref().and_then(|t| needles.scrub_json(t, member));
            if nb.is_some() || na.is_some() {
                store::erase::anonymise_audit(
                    &mut tx,
                    org_id,
                    row,
                    nb.as_deref().or(b.as_deref()),
                    na.as_deref().or(a.as_deref()),
                )
                .await?;
            }
        }
        // Events copy the member's names and addresses from the audit entries.
        for (seq, subject, data) in store::events::values(&mut tx, org_id).await? {
            let member = subject.as_deref() == Some(member_id.as_str());
            if let Some(scrubbed) = needles.scrub_json(&data, member) {
                store::events::rewrite_data(&mut tx, org_id, seq, &scrubbed).await?;
            }
        }
        for mut item in store::erase::plan_values(&mut tx, org_id).await? {
            let mine = item.2.as_deref().is_some_and(|x| needles.hits(x))
                || item.3.as_deref().is_some_and(|x| needles.hits(x));
            let detail = needles.scrub_json(&item.4, item.5 == Some(id));
            if mine || detail.is_some() {
                if item.2.as_deref().is_some_and(|x| needles.hits(x)) {
                    item.2 = Some(TOMBSTONE.into());
                }
                if item.3.as_deref().is_some_and(|x| needles.hits(x)) {
                    item.3 = Some(TOMBSTONE.into());
                }
                if let Some(d) = detail {
                    item.4 = d;
                }
                store::erase::rewrite_plan_item(&mut tx, org_id, &item).await?;
            }
        }
        for mut row in store::erase::error_values(&mut tx, org_id).await? {
            let id_hit = row.2.as_deref().is_some_and(|x| needles.hits(x));
            let value_hit = row.3.as_deref().is_some_and(|x| needles.hits(x));
            let message = needles
                .contained
                .iter()
                .any(|n| row.4.to_lowercase().contains(n.as_str()));
            if id_hit || value_hit || message {
                if id_hit {
                    row.2 = Some(TOMBSTONE.into());
                }
                if value_hit || (id_hit && row.3.is_some()) {
                    row.3 = Some(TOMBSTONE.into());
                }
                if message {
                    row.4 = TOMBSTONE.into();
                }
                store::erase::rewrite_error(&mut tx, org_id, &row).await?;
            }
        }
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "member.erased",
            ("member", Some(member_id)),
            None::<&Member>,
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }
}
