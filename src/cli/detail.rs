//! `rosterd members show|phones` and `rosterd entitlements …`: a member's full detail printed
//! for people (or as the API's JSON), their phone numbers, and what groups grant. Every command
//! goes through the same `Roster` operation as the API, acting as the command line.

use std::io::Write;

use anyhow::anyhow;
use clap::Subcommand;
use uuid::Uuid;

use crate::api::detail::MemberDetailView;
use crate::roster::detail::MemberDetail;
use crate::roster::entitlements::NewEntitlement;
use crate::roster::phones::NewPhone;
use crate::roster::{Actor, Roster};
use crate::store;

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Everything about one member: phones, groups and entitlements, the status trail, who
    /// claims them, application answers, points and payments, recent audit entries.
    Show {
        org: String,
        id: Uuid,
        /// The API's JSON (`GET …/members/{id}`) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a member's phone numbers, or replace them with the `--phone`s given (or none,
    /// with `--clear`).
    Phones {
        org: String,
        id: Uuid,
        /// `TYPE=NUMBER` (e.g. `work=+1 555 0100`) or just `NUMBER`; repeat for more.
        #[arg(long = "phone", conflicts_with = "clear")]
        phones: Vec<String>,
        /// Mark the first `--phone` as the primary number.
        #[arg(long, requires = "phones")]
        primary: bool,
        /// Remove every number.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EntitlementCommand {
    /// A group's entitlements: id, name, external reference.
    List {
        org: String,
        /// The group's name or id.
        group: String,
    },
    /// Attach an entitlement to a group; prints it as JSON.
    Add {
        org: String,
        /// The group's name or id.
        group: String,
        name: String,
        /// Where it lives elsewhere (a course id, a licence SKU).
        #[arg(long)]
        external_ref: Option<String>,
    },
    /// Detach an entitlement from its group.
    Remove {
        org: String,
        /// The group's name or id.
        group: String,
        id: Uuid,
    },
}

async fn org_id(roster: &Roster, slug: &str) -> anyhow::Result<Uuid> {
    roster
        .org_by_slug(slug)
        .await?
        .map(|o| o.id)
        .ok_or_else(|| anyhow!("organization `{slug}` not found"))
}

async fn group_id(roster: &Roster, org_id: Uuid, group: &str) -> anyhow::Result<Uuid> {
    if let Ok(id) = Uuid::try_parse(group) {
        return Ok(id);
    }
    let mut tx = roster.store.read().await?;
    let g = store::groups::by_name(&mut tx, org_id, group).await?;
    tx.rollback().await?;
    g.map(|g| g.id)
        .ok_or_else(|| anyhow!("group `{group}` not found"))
}

fn parse_phone(text: &str) -> NewPhone {
    match text.split_once('=') {
        // A type has no digits (`tel:+1-201-555-0123;ext=5` is a number alone).
        Some((kind, value)) if !kind.chars().any(|c| c.is_ascii_digit()) => NewPhone {
            kind: Some(kind.to_owned()),
            value: value.to_owned(),
            primary: None,
        },
        _ => NewPhone {
            kind: None,
            value: text.to_owned(),
            primary: None,
        },
    }
}

pub async fn members(roster: &Roster, command: &MembersCommand) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match command {
        MembersCommand::Show { org, id, json } => {
            let org_id = org_id(roster, org).await?;
            let d = roster.member_detail(org_id, *id).await?;
            if *json {
                let view = MemberDetailView::from(d);
                writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
            } else {
                print_detail(&mut out, &d)?;
            }
        }
        MembersCommand::Phones {
            org,
            id,
            phones,
            primary,
            clear,
        } => {
            let org_id = org_id(roster, org).await?;
            let list = if phones.is_empty() && !clear {
                roster.phones(org_id, *id).await?
            } else {
                let mut given: Vec<NewPhone> = phones.iter().map(|p| parse_phone(p)).collect();
                if let Some(first) = given.first_mut() {
                    first.primary = Some(*primary);
                }
                roster.set_phones(org_id, &Actor::Cli, *id, given).await?
            };
            for p in &list {
                writeln!(
                    out,
                    "{}\t{}{}",
                    p.kind.as_deref().unwrap_or("-"),
                    p.value,
                    if p.primary { "\tprimary" } else { "" }
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

pub async fn entitlements(roster: &Roster, command: &EntitlementCommand) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match command {
        EntitlementCommand::List { org, group } => {
            let org_id = org_id(roster, org).await?;
            let group_id = group_id(roster, org_id, group).await?;
            for e in roster.entitlements(org_id, group_id).await? {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    e.id,
                    e.name,
                    e.external_ref.as_deref().unwrap_or("-")
                )?;
            }
        }
        EntitlementCommand::Add {
            org,
            group,
            name,
            external_ref,
        } => {
            let org_id = org_id(roster, org).await?;
            let group_id = group_id(roster, org_id, group).await?;
            let e = roster
                .add_entitlement(
                    org_id,
                    &Actor::Cli,
                    group_id,
                    NewEntitlement {
                        name: name.clone(),
                        external_ref: external_ref.clone(),
                    },
                )
                .await?;
            writeln!(out, "{}", serde_json::to_string(&e)?)?;
        }
        EntitlementCommand::Remove { org, group, id } => {
            let org_id = org_id(roster, org).await?;
            let group_id = group_id(roster, org_id, group).await?;
            roster
                .remove_entitlement(org_id, &Actor::Cli, group_id, *id)
                .await?;
        }
    }
    out.flush()?;
    Ok(())
}

const TIME: &str = "%Y-%m-%d %H:%M";

fn money(minor: i64, currency: Option<&str>) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!(
        "{sign}{}.{:02} {}",
        m / 100,
        m % 100,
        currency.unwrap_or("")
    )
    .trim_end()
    .to_owned()
}

fn print_detail(out: &mut impl Write, d: &MemberDetail) -> anyhow::Result<()> {
    let m = &d.member;
    writeln!(out, "{} <{}>", m.name(), m.member_email)?;
    writeln!(out, "  id       {}", m.id)?;
    writeln!(out, "  role     {}", m.role)?;
    writeln!(
        out,
        "  access   {} (since {})",
        m.access,
        m.activity_at.format(TIME)
    )?;
    if let Some(l) = m.distinct_login_email() {
        writeln!(out, "  login    {l}")?;
    }
    writeln!(out, "  added    {}", m.added_at.format(TIME))?;
    for (name, value) in &d.attributes {
        let value = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        writeln!(out, "  attr     {name} = {value}")?;
    }

    writeln!(out, "\nPhones")?;
    if d.phones.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for p in &d.phones {
        writeln!(
            out,
            "  {:<8} {}{}",
            p.kind.as_deref().unwrap_or("-"),
            p.value,
            if p.primary { " (primary)" } else { "" }
        )?;
    }

    writeln!(out, "\nGroups and entitlements")?;
    if d.groups.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for g in &d.groups {
        match &g.kept_by {
            Some(k) => writeln!(out, "  {} (kept by {k})", g.name)?,
            None => writeln!(out, "  {}", g.name)?,
        }
        for e in &g.entitlements {
            match &e.external_ref {
                Some(r) => writeln!(out, "    - {} [{r}]", e.name)?,
                None => writeln!(out, "    - {}", e.name)?,
            }
        }
    }

    writeln!(out, "\nStatus trail")?;
    if !d.trail_complete {
        writeln!(out, "  (older steps left out: see the audit log)")?;
    }
    for s in &d.trail {
        let event = serde_json::to_value(s.event)?;
        writeln!(
            out,
            "  {}  {:<18} by {}",
            s.at.format(TIME),
            event.as_str().unwrap_or("?"),
            s.by.label
        )?;
    }

    writeln!(out, "\nClaimed by")?;
    if d.claims.sources.is_empty() && d.claims.scim.is_none() {
        writeln!(out, "  (nobody: the org's admins)")?;
    }
    for c in &d.claims.sources {
        writeln!(
            out,
            "  source {} as {}{}",
            c.source,
            c.external_id,
            if c.claiming { "" } else { " (not claiming)" }
        )?;
    }
    if let Some(s) = &d.claims.scim {
        let clients: Vec<&str> = s.clients.iter().map(|c| c.label.as_str()).collect();
        writeln!(
            out,
            "  SCIM user {}{} (written by {})",
            s.user_name,
            s.external_id
                .as_deref()
                .map(|x| format!(", externalId {x}"))
                .unwrap_or_default(),
            if clients.is_empty() {
                "-".to_owned()
            } else {
                clients.join(", ")
            }
        )?;
    }

    if !d.applications.is_empty() {
        writeln!(out, "\nApplications")?;
        for a in &d.applications {
            writeln!(
                out,
                "  {}  {}  {}",
                a.created_at.format(TIME),
                a.status,
                a.answers
            )?;
        }
    }

    let l = &d.ledger;
    let cur = l.currency.as_deref();
    writeln!(out, "\nPoints and money")?;
    writeln!(out, "  points      {}", l.points)?;
    if let Some(fee) = l.monthly_fee {
        writeln!(out, "  fee         {} a month", money(fee, cur))?;
    }
    writeln!(out, "  total paid  {}", money(l.total_paid, cur))?;
    for p in &l.payments {
        writeln!(
            out,
            "    {}  {}{}",
            p.paid_on,
            money(p.amount, Some(&p.currency)),
            p.note
                .as_deref()
                .map(|n| format!("  {n}"))
                .unwrap_or_default()
        )?;
    }

    writeln!(out, "\nRecent audit entries (newest first)")?;
    for r in &d.recent_audit {
        writeln!(
            out,
            "  {}  {:<26} by {}",
            r.at.format(TIME),
            r.action,
            r.actor_label
        )?;
    }
    if d.audit_next_cursor.is_some() {
        writeln!(out, "  … more: GET /api/v1/orgs/ORG/audit?member={}", m.id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_read_as_type_and_number() {
        let p = parse_phone("work=+1 555 0100");
        assert_eq!(
            (p.kind.as_deref(), p.value.as_str()),
            (Some("work"), "+1 555 0100")
        );
        let p = parse_phone("+1 555 0100");
        assert_eq!((p.kind, p.value.as_str()), (None, "+1 555 0100"));
        let p = parse_phone("tel:+1-201-555-0123;ext=5");
        assert_eq!(p.kind, None);
        assert_eq!(money(2500, Some("EUR")), "25.00 EUR");
        assert_eq!(money(-5, None), "-0.05");
    }
}
