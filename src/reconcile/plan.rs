//! The reconciliation plan: a pure function of the store's members, the source's snapshot and
//! the source's policy. No I/O, no clock; tested with tables of cases.
//!
//! Rules (DESIGN §2 "Reconciliation"):
//! - a record matches a member by this source's link `(source, external_id)`, else by email
//!   (case-insensitively), which adopts and links the member;
//! - updates carry only the fields that differ;
//! - a linked member is removed when the record says inactive, or — for an authoritative source
//!   with a complete snapshot — when it is absent; never when another source still claims them,
//!   and never the owner (a warning instead);
//! - a removed member present and active again is reactivated;
//! - a record with no usable email or a duplicate id or email is a row error, and changes
//!   nothing for that person.

use std::collections::{HashMap, HashSet};

use rosterd_connectors::{Record, RecordError};
use uuid::Uuid;

use crate::domain::{Access, Role};

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
    /// Whether another source (or SCIM) also claims the member.
    pub claimed_elsewhere: bool,
}

/// How a source may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// May remove members absent from its snapshot.
    pub authoritative: bool,
    /// The snapshot holds everyone (a partial or failed fetch removes nobody by absence).
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    MemberEmail,
    LoginEmail,
    GivenName,
    FamilyName,
    DisplayName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: Field,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub member_id: Uuid,
    pub external_id: String,
    pub changes: Vec<FieldChange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub member_id: Uuid,
    pub external_id: Option<String>,
    /// `absent` or `inactive`.
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub creates: Vec<Record>,
    pub updates: Vec<Update>,
    pub removals: Vec<Removal>,
    /// Removed members to bring back, with the record that does.
    pub reactivations: Vec<(Uuid, Record)>,
    /// Members matched by email, to be linked under this external id.
    pub links: Vec<(Uuid, String)>,
    pub unchanged: usize,
    pub warnings: Vec<String>,
    pub errors: Vec<RecordError>,
}

fn diff(field: Field, from: &Option<String>, to: &Option<String>, out: &mut Vec<FieldChange>) {
    // A source that says nothing about a field leaves it alone.
    if to.is_some() && from != to {
        out.push(FieldChange {
            field,
            from: from.clone(),
            to: to.clone(),
        });
    }
}

/// Plans the changes that make the store agree with `snapshot` (rows already mapped; `line` of
/// each is its position for error reports).
pub fn plan(current: &[Current], snapshot: &[(u64, Record)], policy: &Policy) -> Plan {
    let mut p = Plan::default();
    let by_link: HashMap<&str, &Current> = current
        .iter()
        .filter_map(|c| c.link.as_deref().map(|l| (l, c)))
        .collect();
    let by_email: HashMap<String, &Current> = current
        .iter()
        .map(|c| (c.member_email.to_lowercase(), c))
        .collect();
    let mut seen_ids = HashSet::new();
    let mut seen_emails = HashSet::new();
    let mut matched: HashSet<Uuid> = HashSet::new();
    let err = |line: u64, column: &str, value: &str, message: &str| RecordError {
        line,
        column: Some(column.to_owned()),
        value: Some(value.to_owned()),
        message: message.to_owned(),
    };
    for (line, r) in snapshot {
        if !seen_ids.insert(r.external_id.clone()) {
            p.errors.push(err(
                *line,
                "external_id",
                &r.external_id,
                "this id appears more than once",
            ));
            continue;
        }
        let email_key = r.member_email.as_ref().map(|e| e.to_lowercase());
        if let Some(k) = &email_key
            && !seen_emails.insert(k.clone())
        {
            p.errors.push(err(
                *line,
                "member_email",
                k,
                "this email appears more than once",
            ));
            continue;
        }
        let found = by_link
            .get(r.external_id.as_str())
            .copied()
            .or_else(|| email_key.as_ref().and_then(|k| by_email.get(k).copied()));
        let Some(c) = found else {
            if !r.active {
                p.unchanged += 1; // an inactive person we never had: nothing to do
                continue;
            }
            if r.member_email.is_none() {
                p.errors.push(err(
                    *line,
                    "member_email",
                    "",
                    "a new member needs an email address",
                ));
                continue;
            }
            p.creates.push(r.clone());
            continue;
        };
        matched.insert(c.member_id);
        if c.link.as_deref() != Some(r.external_id.as_str()) {
            p.links.push((c.member_id, r.external_id.clone()));
        }
        if !r.active {
            if c.access != Access::Removed {
                if c.role == Role::Owner {
                    p.warnings.push(format!(
                        "{} is the owner: not removed although inactive in the source",
                        c.member_email
                    ));
                } else {
                    p.removals.push(Removal {
                        member_id: c.member_id,
                        external_id: Some(r.external_id.clone()),
                        reason: "inactive",
                    });
                }
            } else {
                p.unchanged += 1;
            }
            continue;
        }
        if c.access == Access::Removed {
            p.reactivations.push((c.member_id, r.clone()));
            continue;
        }
        let mut changes = Vec::new();
        diff(
            Field::MemberEmail,
            &Some(c.member_email.clone()),
            &r.member_email,
            &mut changes,
        );
        diff(
            Field::LoginEmail,
            &c.login_email,
            &r.login_email,
            &mut changes,
        );
        diff(Field::GivenName, &c.given_name, &r.given_name, &mut changes);
        diff(
            Field::FamilyName,
            &c.family_name,
            &r.family_name,
            &mut changes,
        );
        diff(
            Field::DisplayName,
            &c.display_name,
            &r.display_name,
            &mut changes,
        );
        // Emails compare case-insensitively: a change of case alone is no change.
        changes.retain(|ch| {
            !(matches!(ch.field, Field::MemberEmail | Field::LoginEmail)
                && ch.from.as_deref().map(str::to_lowercase)
                    == ch.to.as_deref().map(str::to_lowercase))
        });
        if changes.is_empty() {
            p.unchanged += 1;
        } else {
            p.updates.push(Update {
                member_id: c.member_id,
                external_id: r.external_id.clone(),
                changes,
            });
        }
    }
    if policy.authoritative && policy.complete {
        for c in current {
            let linked_here = c.link.is_some();
            if !linked_here || matched.contains(&c.member_id) || c.access == Access::Removed {
                continue;
            }
            if c.claimed_elsewhere {
                p.warnings.push(format!(
                    "{} is gone from this source but another still claims them: kept",
                    c.member_email
                ));
            } else if c.role == Role::Owner {
                p.warnings.push(format!(
                    "{} is the owner: not removed although absent from the source",
                    c.member_email
                ));
            } else {
                p.removals.push(Removal {
                    member_id: c.member_id,
                    external_id: c.link.clone(),
                    reason: "absent",
                });
            }
        }
    }
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
            claimed_elsewhere: false,
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
        assert_eq!(p.links, [(Uuid::from_u128(2), "B".to_owned())]);
        assert_eq!(p.creates.len(), 1);
        assert_eq!(p.creates[0].external_id, "C");
        assert!(p.updates.is_empty(), "{:?}", p.updates);
        assert_eq!(p.unchanged, 2);
    }

    #[test]
    fn updates_carry_only_changed_fields() {
        let current = [member(1, "a@x.io", Some("A"), Access::Enrolled)];
        let mut r = rec("A", "a@x.io", true);
        r.given_name = Some("New".into());
        r.family_name = Some("Fam".into());
        let p = plan(&current, &[(2, r)], &FULL);
        let fields: Vec<_> = p.updates[0]
            .changes
            .iter()
            .map(|c| c.field.clone())
            .collect();
        assert_eq!(fields, [Field::GivenName, Field::FamilyName]);
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
        let removed: Vec<(u128, &str)> = p
            .removals
            .iter()
            .map(|r| (r.member_id.as_u128(), r.reason))
            .collect();
        assert_eq!(removed, [(2, "inactive"), (1, "absent")]);
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        // A partial snapshot, or a source that may not remove, removes nobody by absence.
        for policy in [
            Policy {
                authoritative: true,
                complete: false,
            },
            Policy {
                authoritative: false,
                complete: true,
            },
        ] {
            let p = plan(&current, &snap, &policy);
            let removed: Vec<&str> = p.removals.iter().map(|r| r.reason).collect();
            assert_eq!(removed, ["inactive"]);
        }
    }

    #[test]
    fn removed_members_come_back_and_the_same_snapshot_twice_is_idempotent() {
        let current = [member(1, "a@x.io", Some("A"), Access::Removed)];
        let p = plan(&current, &[(2, rec("A", "a@x.io", true))], &FULL);
        assert_eq!(p.reactivations.len(), 1);
        // After applying, the store agrees: nothing more to do.
        let mut after = member(1, "a@x.io", Some("A"), Access::Enrolled);
        after.given_name = None;
        let p = plan(&[after], &[(2, rec("A", "a@x.io", true))], &FULL);
        assert_eq!(
            p,
            Plan {
                unchanged: 1,
                ..Plan::default()
            }
        );
    }

    #[test]
    fn bad_rows_are_errors_and_change_nothing() {
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
        ];
        let p = plan(&[], &snap, &FULL);
        assert_eq!(p.creates.len(), 1);
        let lines: Vec<u64> = p.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5]);
        // An empty snapshot plans the removal of every linked member: the safety check (which
        // holds such runs) is the engine's job, not the planner's.
        let current = [member(1, "a@x.io", Some("A"), Access::Enrolled)];
        assert_eq!(plan(&current, &[], &FULL).removals.len(), 1);
    }
}
