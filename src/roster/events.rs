//! Events: what happened in an org, for the feed (`GET …/events`) and webhooks.
//!
//! Events are derived from audit entries as they are written ([`publish`], called by the two
//! places that append to the audit log), so every change that is audited — on every path — is
//! an event in the same transaction, and a new way of changing a member needs nothing here. A
//! member entry becomes an event when the member's access, role or profile changed. Run and
//! source events (`run.*`, `source.*`) are written by [`record_run`] where a run records how it
//! ended, in that transaction.
//! Each event also queues one webhook delivery per enabled subscription that wants its type.
//!
//! This module decides what an event is; the store numbers and keeps them.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::domain::Access;
use crate::store::audit::AuditRow;
use crate::store::events::EventRow;
use crate::store::webhooks::NewDelivery;
use crate::store::{self, Tx};

/// Every event type, in the order the README lists them.
pub const EVENT_TYPES: &[&str] = &[
    "member.invited",
    "member.enrolled",
    "member.disabled",
    "member.enabled",
    "member.removed",
    "member.cancelled",
    "member.erased",
    "member.role_changed",
    "member.updated",
    "run.succeeded",
    "run.held",
    "run.failed",
    "source.failing",
    "source.recovered",
];

/// Whether a subscription's pattern (`*`, `member.*` or an exact type) takes `event_type`.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) if prefix.ends_with('.') => event_type.starts_with(prefix),
        _ => pattern == event_type,
    }
}

/// Whether a pattern names at least one event type (what subscriptions may hold).
pub fn pattern_is_known(pattern: &str) -> bool {
    EVENT_TYPES.iter().any(|t| pattern_matches(pattern, t))
        && (pattern == "*" || pattern.ends_with(".*") || EVENT_TYPES.contains(&pattern))
}

/// One event derived from an audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub event_type: &'static str,
    pub subject_kind: &'static str,
    pub subject_id: Option<String>,
    pub data: Value,
}

fn parse(text: Option<&str>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// The member snapshot in an audit value (some entries wrap it as `{"member": …}`).
fn member_in(v: &Value) -> Option<&Value> {
    let m = v.get("member").filter(|m| m.is_object()).unwrap_or(v);
    m.get("access").and_then(Value::as_str).map(|_| m)
}

const MEMBER_FIELDS: &[&str] = &[
    "id",
    "member_email",
    "login_email",
    "given_name",
    "family_name",
    "display_name",
    "role",
    "access",
];
const PROFILE_FIELDS: &[&str] = &[
    "member_email",
    "login_email",
    "given_name",
    "family_name",
    "display_name",
];

fn member_view(m: &Value) -> Value {
    let mut out = Map::new();
    for f in MEMBER_FIELDS {
        out.insert((*f).to_owned(), m.get(*f).cloned().unwrap_or(Value::Null));
    }
    Value::Object(out)
}

fn actor(row: &AuditRow) -> Value {
    json!({ "kind": row.actor_kind, "id": row.actor_id, "label": row.actor_label })
}

fn access(m: &Value) -> Option<Access> {
    m.get("access")?.as_str()?.parse().ok()
}

/// The events an audit entry makes (none for most: tokens, settings, groups, …).
pub fn derive(row: &AuditRow) -> Vec<Derived> {
    let before = parse(row.before.as_deref());
    let after = parse(row.after.as_deref());
    let mut out = Vec::new();
    let event = |event_type, kind, id: Option<String>, data: Value| Derived {
        event_type,
        subject_kind: kind,
        subject_id: id,
        data,
    };
    match (row.subject_kind.as_str(), row.action.as_str()) {
        ("member", "org.ownership_transferred") => {
            // `{"owner": id}` before and after: the new owner was an admin, the old one
            // becomes an admin.
            let id = |v: &Option<Value>| {
                v.as_ref()
                    .and_then(|v| v.get("owner"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            for (who, role, previous) in [
                (id(&after), "owner", "admin"),
                (id(&before), "admin", "owner"),
            ] {
                if let Some(who) = who {
                    out.push(event(
                        "member.role_changed",
                        "member",
                        Some(who.clone()),
                        json!({
                            "member": { "id": who, "role": role },
                            "previous": { "role": previous },
                            "actor": actor(row),
                            "audit_id": row.id,
                        }),
                    ));
                }
            }
        }
        ("member", action) => {
            let b = before.as_ref().and_then(member_in);
            let a = after.as_ref().and_then(member_in);
            let subject = row.subject_id.clone();
            let data = |m: &Value| {
                let mut d = json!({
                    "member": member_view(m),
                    "actor": actor(row),
                    "audit_id": row.id,
                });
                if let Some(b) = b {
                    d["previous"] = json!({ "access": b.get("access"), "role": b.get("role") });
                }
                d
            };
            if action == "member.erased" {
                if let Some(a) = a {
                    out.push(event("member.erased", "member", subject, data(a)));
                }
                return out;
            }
            let Some(a) = a else {
                return out;
            };
            let (from, to) = (b.and_then(access), access(a));
            let access_changed = to.is_some() && from != to;
            if access_changed {
                let t = match to {
                    Some(Access::Invited) => "member.invited",
                    Some(Access::Enrolled) if from == Some(Access::Disabled) => "member.enabled",
                    Some(Access::Enrolled) => "member.enrolled",
                    Some(Access::Disabled) => "member.disabled",
                    Some(Access::Removed) => "member.removed",
                    Some(Access::Cancelled) | None => "member.cancelled",
                };
                out.push(event(t, "member", subject.clone(), data(a)));
            }
            if let Some(b) = b {
                let role_changed = b.get("role") != a.get("role");
                if role_changed {
                    out.push(event(
                        "member.role_changed",
                        "member",
                        subject.clone(),
                        data(a),
                    ));
                }
                // A change of access or role already carries the member as they are now.
                if !access_changed
                    && !role_changed
                    && PROFILE_FIELDS.iter().any(|f| b.get(*f) != a.get(*f))
                {
                    out.push(event("member.updated", "member", subject, data(a)));
                }
            }
        }
        _ => {}
    }
    out
}

/// Writes the events the audit entries make, numbered per org, and queues their webhook
/// deliveries — in the caller's transaction, right after the entries themselves.
pub(crate) async fn publish(tx: &mut Tx, rows: &[AuditRow]) -> store::Result<()> {
    let mut pending = Vec::new();
    for row in rows {
        let Some(org_id) = row.org_id else { continue };
        for d in derive(row) {
            pending.push((org_id, row.at, Some(row.id), d));
        }
    }
    write(tx, pending).await
}

/// Numbers and writes events `(org, at, audit entry, event)` and queues their deliveries.
async fn write(
    tx: &mut Tx,
    pending: Vec<(Uuid, chrono::DateTime<chrono::Utc>, Option<Uuid>, Derived)>,
) -> store::Result<()> {
    let mut by_org: Vec<(Uuid, Vec<_>)> = Vec::new();
    for (org_id, at, audit_id, d) in pending {
        match by_org.iter_mut().find(|(o, _)| *o == org_id) {
            Some((_, list)) => list.push((at, audit_id, d)),
            None => by_org.push((org_id, vec![(at, audit_id, d)])),
        }
    }
    for (org_id, list) in by_org {
        let first = store::events::next_seqs(tx, org_id, list.len() as i64).await?;
        let events: Vec<EventRow> = list
            .into_iter()
            .zip(first..)
            .map(|((at, audit_id, d), seq)| EventRow {
                org_id,
                seq,
                id: Uuid::now_v7(),
                event_type: d.event_type.to_owned(),
                at,
                subject_kind: d.subject_kind.to_owned(),
                subject_id: d.subject_id,
                audit_id,
                data: d.data.to_string(),
            })
            .collect();
        store::events::insert_many(tx, &events).await?;
        let hooks = store::webhooks::enabled_of_org(tx, org_id).await?;
        if hooks.is_empty() {
            continue;
        }
        let mut deliveries = Vec::new();
        for (hook, types) in &hooks {
            let patterns: Vec<String> = serde_json::from_str(types).unwrap_or_default();
            for e in &events {
                if patterns.iter().any(|p| pattern_matches(p, &e.event_type)) {
                    deliveries.push(NewDelivery {
                        id: Uuid::now_v7(),
                        org_id,
                        webhook_id: *hook,
                        event_id: e.id,
                        event_seq: e.seq,
                        event_type: e.event_type.clone(),
                        at: e.at,
                    });
                }
            }
        }
        store::webhooks::insert_deliveries(tx, &deliveries).await?;
    }
    Ok(())
}

/// The events of how a run ended (`run.succeeded`, `run.held`, `run.failed`) and, for a
/// source's sync, of a change of its health (`source.failing` on the first failure in a row,
/// `source.recovered` on the first success after failures). Written in the transaction that
/// records the run's status and the source's outcome (`sync_runs` and `sync_sources` are their
/// record; runs are not audit entries); `failures_before` is the source's failure count before
/// that outcome.
pub(crate) async fn record_run(
    tx: &mut Tx,
    at: chrono::DateTime<chrono::Utc>,
    run_id: Uuid,
    failures_before: i64,
) -> store::Result<()> {
    let Some(run) = store::sync::run(tx, run_id).await? else {
        return Ok(());
    };
    let event_type = match run.status.as_str() {
        "succeeded" => "run.succeeded",
        "held" => "run.held",
        "failed" => "run.failed",
        _ => return Ok(()),
    };
    let actor = super::Actor::Sync {
        source: run.source.clone(),
        run_id: run.id,
    };
    let (kind, actor_id, label) = actor.parts();
    let actor = json!({ "kind": kind, "id": actor_id, "label": label });
    let mut pending = vec![(
        run.org_id,
        at,
        None,
        Derived {
            event_type,
            subject_kind: "run",
            subject_id: Some(run.id.to_string()),
            data: json!({ "run": run, "actor": actor }),
        },
    )];
    if run.kind == "sync"
        && let Some(source) = store::sync::source(tx, &run.source).await?
    {
        let change = match (failures_before, source.consecutive_failures) {
            (0, n) if n > 0 => Some("source.failing"),
            (b, 0) if b > 0 => Some("source.recovered"),
            _ => None,
        };
        if let Some(event_type) = change {
            pending.push((
                run.org_id,
                at,
                None,
                Derived {
                    event_type,
                    subject_kind: "source",
                    subject_id: Some(source.name.clone()),
                    data: json!({
                        "source": {
                            "name": source.name,
                            "consecutive_failures": source.consecutive_failures,
                            "last_error": source.last_error,
                            "retry_after": source.retry_after,
                            "run_id": run.id,
                        },
                        "actor": actor,
                    }),
                },
            ));
        }
    }
    write(tx, pending).await
}

/// The JSON of an event, as the feed lists it and webhooks send it.
pub fn event_json(e: &EventRow) -> Value {
    json!({
        "id": e.id,
        "type": e.event_type,
        "timestamp": e.at,
        "org_id": e.org_id,
        "sequence": e.seq,
        "cursor": e.seq.to_string(),
        "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "run.held"));
        assert!(pattern_matches("member.*", "member.enrolled"));
        assert!(!pattern_matches("member.*", "run.held"));
        assert!(pattern_matches("run.held", "run.held"));
        assert!(!pattern_matches("run.hel", "run.held"));
        assert!(pattern_is_known("member.*"));
        assert!(pattern_is_known("source.failing"));
        assert!(!pattern_is_known("member.exploded"));
        assert!(!pattern_is_known("mem*"));
        assert!(!pattern_is_known("nothing.*"));
    }
}
