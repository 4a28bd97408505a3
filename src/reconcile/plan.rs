//! The reconciliation plan: a pure function of the store's members, the source's snapshot and
//! the source's policy. No I/O, no clock; tested with tables of cases.
//!
//! The [`Planner`] takes the snapshot one record at a time (a million-record source never sits in
//! memory) and emits plan [`Item`]s as it goes; absences are known only at [`Planner::finish`].
//!
//! Rules (DESIGN §2 "Reconciliation"):
//! - a record matches a member by this source's link `(source, external_id)`, else by email
//!   (case-insensitively), which adopts and links the member;
//! - updates carry only the fields that differ, and only when no source of higher priority
//!   claims the member;
//! - a linked member is removed when the record says inactive, or — for an authoritative source
//!   with a complete snapshot — when it is absent; never when another source still claims them
//!   (this source's claim is released instead), and never the owner (a warning instead);
//! - a removed member present and active again is reactivated;
//! - a record with an unusable email, a bad name, or a duplicate id or email is a row error, and
//!   changes nothing for that person (who counts as present); so does a row the connector could
//!   not map whose id it read. Only a row without a readable id blocks removals by absence.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use rosterd_connectors::{Record, RecordError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Access, Email, Role};

/// Longest name a source may set.
const MAX_NAME: usize = 200;

/// What the plan needs to know about one member of the org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub member_id: Uuid,
    pub member_email: String,
    pub login_email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub access: Access,
    pub role: Role,
    /// This source's external id for the member, if linked.
    pub link: Option<String>,
    /// Whether this source's link still claims the member.
    pub claiming: bool,
    /// Whether another source (or SCIM) also claims the member.
    pub claimed_elsewhere: bool,
    /// Whether a source of higher priority claims the member (its attributes win).
    pub outranked: bool,
}

/// How a source may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// May remove members absent from its snapshot.
    pub authoritative: bool,
    /// The snapshot holds everyone (a partial or failed fetch removes nobody by absence).
    pub complete: bool,
    /// The admin's own hand (an import): an inactive row removes the member it names even if
    /// no source link claims them (the integration lock is checked by the caller).
    pub by_hand: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    MemberEmail,
    LoginEmail,
    GivenName,
    FamilyName,
    DisplayName,
    Role,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::MemberEmail => "member_email",
            Field::LoginEmail => "login_email",
            Field::GivenName => "given_name",
            Field::FamilyName => "family_name",
            Field::DisplayName => "display_name",
            Field::Role => "role",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: Field,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A person as the source describes them, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Person {
    pub external_id: String,
    pub member_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// Why a member is removed or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not in a complete snapshot of an authoritative source.
    Absent,
    /// The source says inactive.
    Inactive,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Absent => "absent",
            Reason::Inactive => "inactive",
        }
    }
}

/// One step of a plan. Stored as JSON with the run, so a held plan can be shown and approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Item {
    /// A new member (invited, or enrolled per the org's setting), linked to this source.
    Create { person: Person },
    /// Changed fields of a member.
    Update {
        member_id: Uuid,
        email: String,
        external_id: String,
        changes: Vec<FieldChange>,
    },
    /// Adopts a member matched by email (or claims one again) under this source's id.
    Link {
        member_id: Uuid,
        email: String,
        external_id: String,
    },
    /// Takes a member's access away.
    Remove {
        member_id: Uuid,
        email: String,
        external_id: Option<String>,
        reason: Reason,
    },
    /// Brings a removed member back (same state machine as a re-add).
    Reactivate { member_id: Uuid, person: Person },
    /// This source stops claiming a member another source still claims: kept.
    Release {
        member_id: Uuid,
        email: String,
        external_id: String,
        reason: Reason,
    },
}

impl Item {
    pub fn action(&self) -> &'static str {
        match self {
            Item::Create { .. } => "create",
            Item::Update { .. } => "update",
            Item::Link { .. } => "link",
            Item::Remove { .. } => "remove",
            Item::Reactivate { .. } => "reactivate",
            Item::Release { .. } => "release",
        }
    }

    pub fn member_id(&self) -> Option<Uuid> {
        match self {
            Item::Create { .. } => None,
            Item::Update { member_id, .. }
            | Item::Link { member_id, .. }
            | Item::Remove { member_id, .. }
            | Item::Reactivate { member_id, .. }
            | Item::Release { member_id, .. } => Some(*member_id),
        }
    }

    pub fn email(&self) -> &str {
        match self {
            Item::Create { person } | Item::Reactivate { person, .. } => &person.member_email,
            Item::Update { email, .. }
            | Item::Link { email, .. }
            | Item::Remove { email, .. }
            | Item::Release { email, .. } => email,
        }
    }

    pub fn external_id(&self) -> Option<&str> {
        match self {
            Item::Create { person } | Item::Reactivate { person, .. } => Some(&person.external_id),
            Item::Update { external_id, .. }
            | Item::Link { external_id, .. }
            | Item::Release { external_id, .. } => Some(external_id),
            Item::Remove { external_id, .. } => external_id.as_deref(),
        }
    }

    /// The plan line a person reads in a dry run.
    pub fn describe(&self) -> String {
        match self {
            Item::Create { person } => format!(
                "create      {} (id {}){}",
                person.member_email,
                person.external_id,
                person
                    .role
                    .map(|r| format!(", role {}", r.as_str()))
                    .unwrap_or_default()
            ),
            Item::Update { email, changes, .. } => {
                let parts: Vec<String> = changes
                    .iter()
                    .map(|c| {
                        format!(
                            "{}: {} -> {}",
                            c.field.as_str(),
                            c.from.as_deref().unwrap_or("(none)"),
                            c.to.as_deref().unwrap_or("(none)")
                        )
                    })
                    .collect();
                format!("update      {email}: {}", parts.join("; "))
            }
            Item::Link {
                email, external_id, ..
            } => format!("link        {email} to id {external_id}"),
            Item::Remove { email, reason, .. } => {
                format!("remove      {email} ({})", reason.as_str())
            }
            Item::Reactivate { person, .. } => format!("reactivate  {}", person.member_email),
            Item::Release { email, reason, .. } => format!(
                "release     {email} ({}; another source still claims them: kept)",
                reason.as_str()
            ),
        }
    }
}

/// A 128-bit fingerprint for duplicate detection without keeping every id and email.
struct Fingerprints {
    a: std::hash::RandomState,
    b: std::hash::RandomState,
    seen: HashSet<u128>,
}

impl Fingerprints {
    /// Sized for `n` keys up front (a snapshot is usually about as large as the org).
    fn new(n: usize) -> Self {
        Self {
            a: std::hash::RandomState::new(),
            b: std::hash::RandomState::new(),
            seen: HashSet::with_capacity(n),
        }
    }
    /// Whether `key` is new.
    fn insert(&mut self, key: &str) -> bool {
        let h = (u128::from(self.a.hash_one(key)) << 64) | u128::from(self.b.hash_one(key));
        self.seen.insert(h)
    }
}

/// Which key of a member an index finds it by.
#[derive(Clone, Copy)]
enum Key {
    /// This source's external id.
    Link,
    /// The member email, lowercased.
    Email,
}

/// Finds members by a string key without keeping a second copy of every key: the map holds
/// the key's 64-bit hash and each hit is confirmed against the member itself; the rare keys
/// whose hashes collide live in a small exact map. At a million members this saves about a
/// hundred bytes per member over a map of owned strings.
struct KeyIndex {
    key: Key,
    hasher: std::hash::RandomState,
    by_hash: HashMap<u64, usize>,
    exact: HashMap<String, usize>,
}

impl KeyIndex {
    fn new(key: Key, n: usize) -> Self {
        Self {
            key,
            hasher: std::hash::RandomState::new(),
            by_hash: HashMap::with_capacity(n),
            exact: HashMap::new(),
        }
    }

    fn is(&self, current: &[Current], i: usize, key: &str) -> bool {
        let c = &current[i];
        match self.key {
            Key::Link => c.link.as_deref() == Some(key),
            // The same lowercasing as the key (`str::to_lowercase` knows word-final sigma).
            Key::Email => {
                (c.member_email.is_ascii() && c.member_email.eq_ignore_ascii_case(key))
                    || c.member_email.to_lowercase() == key
            }
        }
    }

    fn insert(&mut self, current: &[Current], key: &str, i: usize) {
        let h = self.hasher.hash_one(key);
        match self.by_hash.get(&h) {
            Some(&j) if !self.is(current, j, key) => {
                self.exact.insert(key.to_owned(), i);
            }
            _ => {
                self.by_hash.insert(h, i);
            }
        }
    }

    fn get(&self, current: &[Current], key: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(key) {
            return Some(i);
        }
        let &i = self.by_hash.get(&self.hasher.hash_one(key))?;
        self.is(current, i, key).then_some(i)
    }
}

/// Counts of what a plan does (the rest is in its items).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub creates: u64,
    pub updates: u64,
    pub removals: u64,
    pub reactivations: u64,
    pub unchanged: u64,
}

/// Plans one snapshot against the store, record by record.
pub struct Planner {
    current: Vec<Current>,
    by_link: KeyIndex,
    by_email: KeyIndex,
    matched: Vec<bool>,
    ids: Fingerprints,
    emails: Fingerprints,
    pub policy: Policy,
    pub tally: Tally,
    pub warnings: Vec<String>,
    /// Rows that could not be read or tied to anyone: absence means nothing this run.
    unidentified_errors: u64,
}

fn err(line: u64, column: &str, value: &str, message: &str) -> RecordError {
    RecordError {
        line,
        external_id: None,
        column: Some(column.to_owned()),
        value: Some(value.to_owned()),
        message: message.to_owned(),
    }
}

fn diff(field: Field, from: Option<&str>, to: Option<&str>, out: &mut Vec<FieldChange>) {
    // A source that says nothing about a field leaves it alone.
    let Some(to) = to else { return };
    let same = match field {
        // Emails compare case-insensitively: a change of case alone is no change.
        Field::MemberEmail | Field::LoginEmail => from
            .is_some_and(|f| f.eq_ignore_ascii_case(to) || f.to_lowercase() == to.to_lowercase()),
        _ => from == Some(to),
    };
    if !same {
        out.push(FieldChange {
            field,
            from: from.map(str::to_owned),
            to: Some(to.to_owned()),
        });
    }
}

/// Checks a record into a [`Person`], or says what is wrong with it.
fn person(line: u64, r: &Record) -> Result<Person, RecordError> {
    let email = |col: &str, v: &Option<String>| -> Result<Option<String>, RecordError> {
        match v {
            None => Ok(None),
            Some(v) => Email::parse(v)
                .map(|e| Some(e.as_str().to_owned()))
                .map_err(|e| err(line, col, v, &e.to_string())),
        }
    };
    // An id is kept as the source sent it, but a NUL (or any control character) can be
    // neither stored on every backend nor matched reliably: the row is in error.
    if r.external_id.chars().any(char::is_control) {
        return Err(err(
            line,
            "external_id",
            &r.external_id,
            "the id must not contain control characters",
        ));
    }
    let member_email = email("member_email", &r.member_email)?;
    let login_email = email("login_email", &r.login_email)?;
    let name = |col: &str, v: &Option<String>| -> Result<Option<String>, RecordError> {
        let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if v.chars().count() > MAX_NAME {
            return Err(err(line, col, v, &format!("at most {MAX_NAME} characters")));
        }
        if v.chars().any(char::is_control) {
            return Err(err(line, col, v, "must not contain control characters"));
        }
        Ok(Some(v.to_owned()))
    };
    let role = match r.role.as_deref() {
        None => None,
        Some("admin") => Some(Role::Admin),
        Some("member") => Some(Role::Member),
        Some(other) => {
            return Err(err(
                line,
                "role",
                other,
                "the role must be `admin` or `member`",
            ));
        }
    };
    Ok(Person {
        external_id: r.external_id.clone(),
        member_email: member_email.unwrap_or_default(),
        login_email,
        given_name: name("given_name", &r.given_name)?,
        family_name: name("family_name", &r.family_name)?,
        display_name: name("display_name", &r.display_name)?,
        role,
    })
}

impl Planner {
    pub fn new(current: Vec<Current>, policy: Policy) -> Self {
        let n = current.len();
        let mut by_link = KeyIndex::new(Key::Link, n);
        let mut by_email = KeyIndex::new(Key::Email, n);
        for (i, c) in current.iter().enumerate() {
            if let Some(l) = &c.link {
                by_link.insert(&current, l, i);
            }
            by_email.insert(&current, &c.member_email.to_lowercase(), i);
        }
        Self {
            matched: vec![false; current.len()],
            current,
            by_link,
            by_email,
            ids: Fingerprints::new(n),
            emails: Fingerprints::new(n),
            policy,
            tally: Tally::default(),
            warnings: Vec::new(),
            unidentified_errors: 0,
        }
    }

    /// Notes a row the connector could not map (no record). If its id could be read, the member
    /// linked under that id counts as present (a bad row never removes its person) and nobody
    /// else is affected; a row without a readable id may be anyone, so nobody is removed for
    /// being absent in this run.
    pub fn unmapped_row(&mut self, external_id: Option<&str>) {
        match external_id.filter(|id| !id.trim().is_empty()) {
            Some(id) => {
                if let Some(i) = self.by_link.get(&self.current, id) {
                    self.matched[i] = true;
                }
            }
            None => self.unidentified_errors += 1,
        }
    }

    /// A row error for record `r`: the member it names (by link, else email) counts as present,
    /// so a bad row never removes its person; a row naming nobody blocks absence removals.
    fn row_error(&mut self, r: &Record, e: RecordError) -> RecordError {
        let by_email = r
            .member_email
            .as_deref()
            .map(|m| m.trim().to_lowercase())
            .and_then(|k| self.by_email.get(&self.current, &k));
        match self
            .by_link
            .get(&self.current, r.external_id.as_str())
            .or(by_email)
        {
            Some(i) => self.matched[i] = true,
            None if r.external_id.trim().is_empty() => self.unidentified_errors += 1,
            // A new id with a bad row: not one of ours, nobody to protect.
            None => {}
        }
        e
    }

    /// Members the source claimed before this run (the base of a percentage limit).
    pub fn claimed_before(&self) -> u64 {
        self.current
            .iter()
            .filter(|c| c.link.is_some() && c.claiming && !c.access.is_gone())
            .count() as u64
    }

    /// Plans one record; `out` receives its items. A row error changes nothing for the person
    /// (who is then not removed as absent either).
    pub fn push(&mut self, line: u64, r: &Record, out: &mut Vec<Item>) -> Result<(), RecordError> {
        self.push_inner(line, r, out)
            .map_err(|e| self.row_error(r, e))
    }

    fn push_inner(
        &mut self,
        line: u64,
        r: &Record,
        out: &mut Vec<Item>,
    ) -> Result<(), RecordError> {
        if !self.ids.insert(&r.external_id) {
            return Err(err(
                line,
                "external_id",
                &r.external_id,
                "this id appears more than once",
            ));
        }
        let p = person(line, r)?;
        let email_key = r
            .member_email
            .as_ref()
            .map(|_| p.member_email.to_lowercase());
        if let Some(k) = &email_key
            && !self.emails.insert(k)
        {
            return Err(err(
                line,
                "member_email",
                k,
                "this email appears more than once",
            ));
        }
        let found = self
            .by_link
            .get(&self.current, r.external_id.as_str())
            .or_else(|| {
                email_key
                    .as_ref()
                    .and_then(|k| self.by_email.get(&self.current, k))
            });
        let Some(i) = found else {
            // An inactive person we never had, or a change that does not say whether the person
            // has access (the periodic full snapshot brings them if they should be here).
            if !r.active || r.status_unknown {
                self.tally.unchanged += 1;
                return Ok(());
            }
            if email_key.is_none() {
                return Err(err(
                    line,
                    "member_email",
                    "",
                    "a new member needs an email address",
                ));
            }
            self.tally.creates += 1;
            out.push(Item::Create { person: p });
            return Ok(());
        };
        if self.matched[i] {
            // Matched by link to one record and by email to another.
            return Err(err(
                line,
                "member_email",
                &p.member_email,
                "another record already matched the member with this email",
            ));
        }
        self.matched[i] = true;
        let c = &self.current[i];
        let linked_here = c.link.as_deref() == Some(r.external_id.as_str());
        if !r.active && !r.status_unknown {
            // A source removes only members it brought (linked and claiming); by hand, anyone.
            let ours = self.policy.by_hand || (linked_here && c.claiming);
            if c.access.is_gone() || !ours {
                self.tally.unchanged += 1;
            } else if c.role == Role::Owner {
                self.tally.unchanged += 1;
                self.warnings.push(format!(
                    "{} is the owner: not removed although inactive in the source",
                    c.member_email
                ));
            } else if c.claimed_elsewhere {
                self.tally.unchanged += 1;
                out.push(Item::Release {
                    member_id: c.member_id,
                    email: c.member_email.clone(),
                    external_id: r.external_id.clone(),
                    reason: Reason::Inactive,
                });
            } else {
                self.tally.removals += 1;
                out.push(Item::Remove {
                    member_id: c.member_id,
                    email: c.member_email.clone(),
                    external_id: Some(r.external_id.clone()),
                    reason: Reason::Inactive,
                });
            }
            return Ok(());
        }
        if c.access.is_gone() && r.status_unknown {
            self.tally.unchanged += 1;
            return Ok(());
        }
        if c.access.is_gone() {
            self.tally.reactivations += 1;
            out.push(Item::Reactivate {
                member_id: c.member_id,
                person: p,
            });
            return Ok(());
        }
        if !linked_here || !c.claiming {
            out.push(Item::Link {
                member_id: c.member_id,
                email: c.member_email.clone(),
                external_id: r.external_id.clone(),
            });
        }
        let mut changes = Vec::new();
        if !c.outranked {
            let member_email = email_key.as_ref().map(|_| p.member_email.as_str());
            diff(
                Field::MemberEmail,
                Some(&c.member_email),
                member_email,
                &mut changes,
            );
            diff(
                Field::LoginEmail,
                c.login_email.as_deref(),
                p.login_email.as_deref(),
                &mut changes,
            );
            diff(
                Field::GivenName,
                c.given_name.as_deref(),
                p.given_name.as_deref(),
                &mut changes,
            );
            diff(
                Field::FamilyName,
                c.family_name.as_deref(),
                p.family_name.as_deref(),
                &mut changes,
            );
            diff(
                Field::DisplayName,
                c.display_name.as_deref(),
                p.display_name.as_deref(),
                &mut changes,
            );
            // The owner's role changes only by an ownership transfer.
            if c.role != Role::Owner {
                diff(
                    Field::Role,
                    Some(c.role.as_str()),
                    p.role.map(Role::as_str),
                    &mut changes,
                );
            }
        }
        if changes.is_empty() {
            self.tally.unchanged += 1;
        } else {
            self.tally.updates += 1;
            out.push(Item::Update {
                member_id: c.member_id,
                email: c.member_email.clone(),
                external_id: r.external_id.clone(),
                changes,
            });
        }
        Ok(())
    }

    /// Plans the absences (authoritative source, complete snapshot only) after the last record.
    pub fn finish(&mut self, out: &mut Vec<Item>) {
        if !(self.policy.authoritative && self.policy.complete) {
            return;
        }
        if self.unidentified_errors > 0 {
            self.warnings.push(format!(
                "{} row(s) could not be read or tied to a person: nobody is removed for being absent in this run",
                self.unidentified_errors
            ));
            return;
        }
        for (i, c) in self.current.iter().enumerate() {
            let Some(link) = &c.link else { continue };
            if self.matched[i] || c.access.is_gone() || !c.claiming {
                continue;
            }
            if c.role == Role::Owner {
                self.warnings.push(format!(
                    "{} is the owner: not removed although absent from the source",
                    c.member_email
                ));
            } else if c.claimed_elsewhere {
                self.warnings.push(format!(
                    "{} is gone from this source but another still claims them: kept",
                    c.member_email
                ));
                out.push(Item::Release {
                    member_id: c.member_id,
                    email: c.member_email.clone(),
                    external_id: link.clone(),
                    reason: Reason::Absent,
                });
            } else {
                self.tally.removals += 1;
                out.push(Item::Remove {
                    member_id: c.member_id,
                    email: c.member_email.clone(),
                    external_id: Some(link.clone()),
                    reason: Reason::Absent,
                });
            }
        }
    }
}

/// A whole plan in memory (tests and small snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub items: Vec<Item>,
    pub tally: Tally,
    pub warnings: Vec<String>,
    pub errors: Vec<RecordError>,
}

impl Plan {
    pub fn of(&self, action: &str) -> Vec<&Item> {
        self.items.iter().filter(|i| i.action() == action).collect()
    }
}

/// Plans a whole snapshot (rows already mapped; `line` of each is its position for errors).
pub fn plan(current: &[Current], snapshot: &[(u64, Record)], policy: &Policy) -> Plan {
    let mut planner = Planner::new(current.to_vec(), policy.clone());
    let mut p = Plan::default();
    for (line, r) in snapshot {
        if let Err(e) = planner.push(*line, r, &mut p.items) {
            p.errors.push(e);
        }
    }
    planner.finish(&mut p.items);
    p.tally = planner.tally;
    p.warnings = planner.warnings;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u128, email: &str, link: Option<&str>, access: Access) -> Current {
        Current {
            member_id: Uuid::from_u128(n),
            member_email: email.into(),
            login_email: None,
            given_name: Some("Old".into()),
            family_name: None,
            display_name: None,
            access,
            role: Role::Member,
            link: link.map(str::to_owned),
            claiming: true,
            claimed_elsewhere: false,
            outranked: false,
        }
    }

    fn rec(id: &str, email: &str, active: bool) -> Record {
        Record {
            external_id: id.into(),
            member_email: Some(email.into()),
            active,
            ..Default::default()
        }
    }

    const FULL: Policy = Policy {
        authoritative: true,
        complete: true,
        by_hand: false,
    };

    #[test]
    fn matches_by_link_then_email_and_adopts() {
        let current = [
            member(1, "a@x.io", Some("A"), Access::Enrolled),
            member(2, "B@x.io", None, Access::Invited),
        ];
        let snap = [
            (2, rec("A", "a@x.io", true)),
            (3, rec("B", "b@X.io", true)),
            (4, rec("C", "c@x.io", true)),
        ];
        let p = plan(&current, &snap, &FULL);
        assert_eq!(
            p.of("link"),
            [&Item::Link {
                member_id: Uuid::from_u128(2),
                email: "B@x.io".into(),
                external_id: "B".into()
            }]
        );
        let creates = p.of("create");
        assert_eq!(creates.len(), 1);
        assert_eq!(creates[0].external_id(), Some("C"));
        assert!(p.of("update").is_empty(), "{:?}", p.items);
        assert_eq!(p.tally.unchanged, 2);
    }

    #[test]
    fn updates_carry_only_changed_fields_unless_outranked() {
        let current = [member(1, "a@x.io", Some("A"), Access::Enrolled)];
        let mut r = rec("A", "A@x.io", true);
        r.given_name = Some("New".into());
        r.family_name = Some("Fam".into());
        r.role = Some("admin".into());
        let p = plan(&current, &[(2, r.clone())], &FULL);
        let Item::Update { changes, .. } = &p.items[0] else {
            panic!("{:?}", p.items)
        };
        let fields: Vec<_> = changes.iter().map(|c| c.field).collect();
        assert_eq!(fields, [Field::GivenName, Field::FamilyName, Field::Role]);
        let mut outranked = current[0].clone();
        outranked.outranked = true;
        let p = plan(&[outranked], &[(2, r)], &FULL);
        assert!(p.items.is_empty(), "{:?}", p.items);
        assert_eq!(p.tally.unchanged, 1);
    }

    #[test]
    fn removals_follow_policy_and_protect_owner_and_shared_members() {
        let mut owner = member(3, "o@x.io", Some("O"), Access::Enrolled);
        owner.role = Role::Owner;
        let mut shared = member(4, "s@x.io", Some("S"), Access::Enrolled);
        shared.claimed_elsewhere = true;
        let current = [
            member(1, "gone@x.io", Some("G"), Access::Enrolled),
            member(2, "off@x.io", Some("F"), Access::Enrolled),
            owner,
            shared,
            member(5, "manual@x.io", None, Access::Enrolled),
        ];
        let snap = [(2, rec("F", "off@x.io", false))];
        let p = plan(&current, &snap, &FULL);
        let acts: Vec<(&str, u128)> = p
            .items
            .iter()
            .map(|i| (i.action(), i.member_id().unwrap().as_u128()))
            .collect();
        assert_eq!(acts, [("remove", 2), ("remove", 1), ("release", 4)]);
        assert_eq!(p.tally.removals, 2);
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        // A partial snapshot, or a source that may not remove, removes nobody by absence.
        for policy in [
            Policy {
                authoritative: true,
                complete: false,
                by_hand: false,
            },
            Policy {
                authoritative: false,
                complete: true,
                by_hand: false,
            },
        ] {
            let p = plan(&current, &snap, &policy);
            let acts: Vec<&str> = p.items.iter().map(Item::action).collect();
            assert_eq!(acts, ["remove"]);
        }
        // A released claim is not counted again.
        let mut released = member(4, "s@x.io", Some("S"), Access::Enrolled);
        released.claiming = false;
        released.claimed_elsewhere = true;
        assert!(plan(&[released], &[], &FULL).items.is_empty());
    }

    #[test]
    fn a_bad_row_never_removes_its_person_and_an_unreadable_one_blocks_absences() {
        let current = [
            member(1, "a@x.io", Some("A"), Access::Enrolled),
            member(2, "b@x.io", Some("B"), Access::Enrolled),
            member(3, "c@x.io", Some("C"), Access::Enrolled),
        ];
        let mut bad = rec("B", "b@x.io", true);
        bad.given_name = Some("x\u{1}".into());
        let mut bad_by_email = rec("new-id", "C@x.io", true);
        bad_by_email.role = Some("boss".into());
        let p = plan(
            &current,
            &[(2, rec("A", "a@x.io", true)), (3, bad), (4, bad_by_email)],
            &FULL,
        );
        assert_eq!(p.errors.len(), 2);
        assert!(
            p.items.is_empty(),
            "B and C had bad rows, not absent: {:?}",
            p.items
        );
        // A row the connector could not map at all: it may be anyone.
        let mut planner = Planner::new(current.to_vec(), FULL);
        let mut out = Vec::new();
        planner
            .push(2, &rec("A", "a@x.io", true), &mut out)
            .unwrap();
        planner.unmapped_row(None);
        planner.finish(&mut out);
        assert!(out.is_empty(), "{out:?}");
        assert!(planner.warnings[0].contains("nobody is removed"));
    }

    #[test]
    fn an_unmapped_row_with_a_readable_id_protects_only_that_person() {
        let current = [
            member(1, "a@x.io", Some("A"), Access::Enrolled),
            member(2, "b@x.io", Some("B"), Access::Enrolled),
            member(3, "c@x.io", Some("C"), Access::Enrolled),
        ];
        // (rows the connector could not map, by the id it could read) → who is removed as absent
        let cases: [(&[Option<&str>], &[&str]); 6] = [
            // `IsActive = maybe` on B's row: B stays, C (gone) is removed.
            (&[Some("B")], &["c@x.io"]),
            // A bad row of someone we never had protects nobody and blocks nothing.
            (&[Some("NEW")], &["b@x.io", "c@x.io"]),
            (&[Some("B"), Some("C")], &[]),
            // No readable id: it may be anyone, nobody is removed.
            (&[None], &[]),
            (&[Some("  ")], &[]),
            (&[Some("B"), None], &[]),
        ];
        for (unmapped, removed) in cases {
            let mut planner = Planner::new(current.to_vec(), FULL);
            let mut out = Vec::new();
            planner
                .push(2, &rec("A", "a@x.io", true), &mut out)
                .unwrap();
            for id in unmapped {
                planner.unmapped_row(*id);
            }
            planner.finish(&mut out);
            let got: Vec<&str> = out
                .iter()
                .filter(|i| matches!(i, Item::Remove { .. }))
                .map(Item::email)
                .collect();
            assert_eq!(got, removed, "unmapped rows {unmapped:?}: {out:?}");
            assert_eq!(
                planner
                    .warnings
                    .iter()
                    .any(|w| w.contains("nobody is removed")),
                removed.is_empty()
                    && unmapped
                        .iter()
                        .any(|id| id.is_none_or(|i| i.trim().is_empty())),
                "unmapped rows {unmapped:?}: {:?}",
                planner.warnings
            );
        }
    }

    #[test]
    fn emails_match_with_the_same_lowercasing_as_their_keys() {
        // `str::to_lowercase` turns a word-final capital sigma into ς, char by char it is σ.
        let current = [member(1, "ΟΔΥΣΣΕΥΣ@x.io", None, Access::Enrolled)];
        let p = plan(&current, &[(2, rec("O", "ΟΔΥΣΣΕΥΣ@x.io", true))], &FULL);
        assert!(p.of("create").is_empty(), "{:?}", p.items);
        assert_eq!(p.of("link").len(), 1, "{:?}", p.items);
    }

    #[test]
    fn an_inactive_row_removes_only_a_member_the_source_brought_unless_by_hand() {
        let current = [member(1, "manual@x.io", None, Access::Enrolled)];
        let snap = [(2, rec("M", "manual@x.io", false))];
        let p = plan(&current, &snap, &FULL);
        assert!(p.items.is_empty(), "{:?}", p.items);
        let by_hand = Policy {
            authoritative: false,
            complete: true,
            by_hand: true,
        };
        assert_eq!(plan(&current, &snap, &by_hand).tally.removals, 1);
    }

    #[test]
    fn a_change_that_does_not_state_access_neither_removes_reactivates_nor_creates() {
        let current = [
            member(1, "a@x.io", Some("A"), Access::Enrolled),
            member(2, "b@x.io", Some("B"), Access::Removed),
        ];
        let change = |id: &str, given: &str| Record {
            external_id: id.into(),
            given_name: Some(given.into()),
            active: true,
            status_unknown: true,
            ..Default::default()
        };
        let changes = Policy {
            authoritative: true,
            complete: false,
            by_hand: false,
        };
        let snap = [
            (1, change("A", "Ann")),
            (2, change("B", "Bea")),
            (3, change("C", "Cy")),
        ];
        let p = plan(&current, &snap, &changes);
        // Only A's name changes: B stays removed, C (unknown, maybe disabled) is not created.
        assert_eq!(p.items.len(), 1, "{:?}", p.items);
        assert_eq!(p.of("update").len(), 1);
        assert_eq!(p.tally.unchanged, 2);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        // The same change stating the access does reactivate B.
        let mut stated = change("B", "Bea");
        stated.status_unknown = false;
        assert_eq!(
            plan(&current, &[(1, stated)], &changes).tally.reactivations,
            1
        );
    }

    #[test]
    fn removed_members_come_back_and_the_same_snapshot_twice_is_idempotent() {
        let current = [member(1, "a@x.io", Some("A"), Access::Removed)];
        let p = plan(&current, &[(2, rec("A", "a@x.io", true))], &FULL);
        assert_eq!(p.tally.reactivations, 1);
        assert_eq!(p.of("reactivate").len(), 1);
        // After applying, the store agrees: nothing more to do.
        let mut after = member(1, "a@x.io", Some("A"), Access::Enrolled);
        after.given_name = None;
        let p = plan(&[after], &[(2, rec("A", "a@x.io", true))], &FULL);
        assert_eq!(
            p,
            Plan {
                tally: Tally {
                    unchanged: 1,
                    ..Tally::default()
                },
                ..Plan::default()
            }
        );
    }

    #[test]
    fn cancelled_invitations_come_back_like_removed_members_and_disabled_ones_stay_disabled() {
        let mut disabled = member(2, "b@x.io", Some("B"), Access::Disabled);
        disabled.given_name = None;
        let current = [member(1, "a@x.io", Some("A"), Access::Cancelled), disabled];
        let snap = [(2, rec("A", "a@x.io", true)), (3, rec("B", "b@x.io", true))];
        let p = plan(&current, &snap, &FULL);
        assert_eq!(p.tally.reactivations, 1, "{p:?}");
        assert_eq!(p.of("reactivate").len(), 1);
        // The source still has B; an admin's suspension is not undone by a sync.
        assert_eq!(p.tally.unchanged, 1, "{p:?}");
        // Gone from the source: the cancelled one is not removed again, the disabled one is.
        let p = plan(&current, &[], &FULL);
        assert_eq!(p.of("remove").len(), 1, "{p:?}");
    }

    #[test]
    fn bad_rows_are_errors_and_change_nothing() {
        let mut bad_name = rec("E", "e@x.io", true);
        bad_name.given_name = Some("a\u{7}b".into());
        let snap = [
            (2, rec("A", "a@x.io", true)),
            (3, rec("A", "other@x.io", true)),
            (4, rec("B", "A@x.io", true)),
            (
                5,
                Record {
                    external_id: "C".into(),
                    active: true,
                    ..Default::default()
                },
            ),
            (6, rec("D", "not an email", true)),
            (7, bad_name),
        ];
        let p = plan(&[], &snap, &FULL);
        assert_eq!(p.of("create").len(), 1);
        let lines: Vec<(u64, Option<&str>)> = p
            .errors
            .iter()
            .map(|e| (e.line, e.column.as_deref()))
            .collect();
        assert_eq!(
            lines,
            [
                (3, Some("external_id")),
                (4, Some("member_email")),
                (5, Some("member_email")),
                (6, Some("member_email")),
                (7, Some("given_name"))
            ]
        );
        // An empty snapshot plans the removal of every linked member: the safety check (which
        // holds such runs) is the engine's job, not the planner's.
        let current = [member(1, "a@x.io", Some("A"), Access::Enrolled)];
        assert_eq!(plan(&current, &[], &FULL).tally.removals, 1);
    }
}
