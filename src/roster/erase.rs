//! Erasure of one member's personal data: names, emails, user name, external id, SCIM
//! attributes and contact email become a tombstone everywhere rosterd stored them — the member
//! row (which stays, removed, so ids in history still resolve), the audit log's before/after
//! values, the outbox, sync plan items and run error rows — and the member's source links and
//! phone numbers go.
//! Refused for the owner, in an integration-managed org, and while a source or SCIM client still
//! claims the member. One transaction, audited as `member.erased` (with no personal value).

use std::collections::HashSet;

use serde_json::Value;
use uuid::Uuid;

use super::audit::{Actor, record};
use super::members::{lock_check, lock_org, revoke_access};
use super::{Result, Roster, RosterError};
use crate::domain::{Access, Member, Role};
use crate::store::{self, Tx};

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
    // `member.attributes_set` entries hold the member's attribute values under this key.
    "attributes",
];

/// The erased members' values, lowercased: emails and ids match inside longer text (one
/// Aho-Corasick automaton over all of them, so a batch costs one pass per text), names only
/// whole (a short name must not blot out other words).
pub(crate) struct Needles {
    contained: Vec<String>,
    matcher: Option<aho_corasick::AhoCorasick>,
    whole: HashSet<String>,
    /// The members' ids: their own audit entries lose every personal field.
    ids: HashSet<String>,
}

impl Needles {
    pub(crate) fn of(members: &[Member]) -> Self {
        let mut n = Needles::empty();
        for m in members {
            n.add(m);
        }
        n.finish()
    }

    pub(crate) fn empty() -> Self {
        Needles {
            contained: Vec::new(),
            matcher: None,
            whole: HashSet::new(),
            ids: HashSet::new(),
        }
    }

    /// Adds a member's values (call [`Needles::finish`] after the last).
    pub(crate) fn add(&mut self, m: &Member) {
        self.contained.extend(
            [
                Some(&m.member_email),
                m.login_email.as_ref(),
                Some(&m.user_name),
                m.external_id.as_ref(),
                m.contact_email.as_ref(),
            ]
            .into_iter()
            .flatten()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| s.chars().count() >= 3),
        );
        self.whole.extend(
            [&m.given_name, &m.family_name, &m.display_name]
                .into_iter()
                .flatten()
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty()),
        );
        self.ids.insert(m.id.to_string());
    }

    /// Builds the matcher over every value added.
    pub(crate) fn finish(mut self) -> Self {
        self.contained.sort();
        self.contained.dedup();
        self.matcher = if self.contained.is_empty() {
            None
        } else {
            aho_corasick::AhoCorasick::new(&self.contained).ok()
        };
        self
    }

    fn contains_any(&self, lowered: &str) -> bool {
        match &self.matcher {
            Some(m) => m.is_match(lowered),
            // Only when the automaton could not be built (never for plain strings).
            None => self.contained.iter().any(|n| lowered.contains(n.as_str())),
        }
    }

    fn hits(&self, text: &str) -> bool {
        let t = text.trim().to_lowercase();
        self.contains_any(&t) || self.whole.contains(&t)
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

/// Rows read per page when scrubbing copies.
pub(crate) const SCRUB_PAGE: i64 = 1000;

/// Anonymises one page of the org's audit rows (after `after`, leaving out `skip_action`);
/// returns the last id read, `None` when the page was empty.
pub(crate) async fn scrub_audit_page(
    tx: &mut Tx,
    org_id: Uuid,
    needles: &Needles,
    after: Option<Uuid>,
    skip_action: Option<&str>,
) -> Result<Option<Uuid>> {
    let rows = store::erase::audit_values(tx, org_id, after, skip_action, SCRUB_PAGE).await?;
    let last = rows.last().map(|r| r.0);
    for (row, subject, b, a) in rows {
        let member = subject.as_deref().is_some_and(|s| needles.ids.contains(s));
        let nb = b.as_deref().and_then(|t| needles.scrub_json(t, member));
        let na = a.as_deref().and_then(|t| needles.scrub_json(t, member));
        if nb.is_some() || na.is_some() {
            store::erase::anonymise_audit(
                tx,
                org_id,
                row,
                nb.as_deref().or(b.as_deref()),
                na.as_deref().or(a.as_deref()),
            )
            .await?;
        }
    }
    Ok(last)
}

/// Scrubs one page of the org's events (they copy names and addresses from the audit entries
/// they were written with); returns the last number read.
pub(crate) async fn scrub_events_page(
    tx: &mut Tx,
    org_id: Uuid,
    needles: &Needles,
    after: Option<i64>,
) -> Result<Option<i64>> {
    let rows = store::events::values(tx, org_id, after, SCRUB_PAGE).await?;
    let last = rows.last().map(|r| r.0);
    for (seq, subject, data) in rows {
        let member = subject.as_deref().is_some_and(|s| needles.ids.contains(s));
        if let Some(scrubbed) = needles.scrub_json(&data, member) {
            store::events::rewrite_data(tx, org_id, seq, &scrubbed).await?;
        }
    }
    Ok(last)
}

/// Scrubs one page of the org's sync plan items; returns the last key read.
pub(crate) async fn scrub_plan_page(
    tx: &mut Tx,
    org_id: Uuid,
    needles: &Needles,
    after: Option<(Uuid, i64)>,
) -> Result<Option<(Uuid, i64)>> {
    let items = store::erase::plan_values(tx, org_id, after, SCRUB_PAGE).await?;
    let last = items.last().map(|i| (i.0, i.1));
    for mut item in items {
        let mine = item.2.as_deref().is_some_and(|x| needles.hits(x))
            || item.3.as_deref().is_some_and(|x| needles.hits(x));
        let own = item.5.is_some_and(|m| needles.ids.contains(&m.to_string()));
        let detail = needles.scrub_json(&item.4, own);
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
            store::erase::rewrite_plan_item(tx, org_id, &item).await?;
        }
    }
    Ok(last)
}

/// Scrubs one page of the org's run error rows; returns the last key read.
pub(crate) async fn scrub_error_page(
    tx: &mut Tx,
    org_id: Uuid,
    needles: &Needles,
    after: Option<(Uuid, i64)>,
) -> Result<Option<(Uuid, i64)>> {
    let rows = store::erase::error_values(tx, org_id, after, SCRUB_PAGE).await?;
    let last = rows.last().map(|r| (r.0, r.1));
    for mut row in rows {
        let id_hit = row.2.as_deref().is_some_and(|x| needles.hits(x));
        let value_hit = row.3.as_deref().is_some_and(|x| needles.hits(x));
        let message = needles.contains_any(&row.4.to_lowercase());
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
            store::erase::rewrite_error(tx, org_id, &row).await?;
        }
    }
    Ok(last)
}

/// Makes one member a removed tombstone and erases the rows that are theirs alone (source
/// links, phone numbers, join requests and invite links holding their address, payment notes
/// and ledger reasons, their emails in the outbox), audited as `member.erased`. The copies of
/// their data in shared rows (audit values, plan items, run errors) are the caller's to scrub
/// with [`Needles`]. Returns the tombstone.
pub(crate) async fn tombstone(
    tx: &mut Tx,
    actor: &Actor,
    before: &Member,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Member> {
    let (org_id, id) = (before.org_id, before.id);
    let mut after = before.clone();
    if !after.access.is_gone() {
        revoke_access(tx, &mut after, now).await?;
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
    store::members::update(tx, &mut after).await?;
    store::erase::drop_links(tx, org_id, id).await?;
    store::phones::delete_for_member(tx, org_id, id).await?;
    store::attributes::delete_for_member(tx, org_id, id).await?;
    let emails: Vec<String> = [Some(&before.member_email), before.login_email.as_ref()]
        .into_iter()
        .flatten()
        .map(|e| e.to_lowercase())
        .collect();
    store::erase::erase_join_and_links(tx, org_id, id, &emails, &placeholder).await?;
    store::erase::erase_money_notes(tx, org_id, id, TOMBSTONE).await?;
    let own = Needles::of(std::slice::from_ref(before));
    store::erase::erase_outbox(tx, org_id, id, &own.contained, &placeholder, TOMBSTONE).await?;
    record(
        tx,
        now,
        Some(org_id),
        actor,
        "member.erased",
        ("member", Some(id.to_string())),
        None::<&Member>,
        Some(&after),
    )
    .await?;
    Ok(after)
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
        let needles = Needles::of(std::slice::from_ref(&before));
        let after = tombstone(&mut tx, actor, &before, now).await?;
        // The copies in shared rows, a page at a time (all in this one transaction).
        let mut audit = None;
        while let Some(last) =
            scrub_audit_page(&mut tx, org_id, &needles, audit, Some("member.erased")).await?
        {
            audit = Some(last);
        }
        let mut events = None;
        while let Some(last) = scrub_events_page(&mut tx, org_id, &needles, events).await? {
            events = Some(last);
        }
        let mut plan = None;
        while let Some(last) = scrub_plan_page(&mut tx, org_id, &needles, plan).await? {
            plan = Some(last);
        }
        let mut errors = None;
        while let Some(last) = scrub_error_page(&mut tx, org_id, &needles, errors).await? {
            errors = Some(last);
        }
        tx.commit().await?;
        Ok(after)
    }
}
