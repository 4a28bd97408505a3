//! `rosterd attributes …`: the org's own member attributes (list, add, update, remove) and a
//! member's values (show, set). Every command goes through the same `Roster` operation as the
//! admin API, acting as the command line.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{anyhow, bail};
use clap::Subcommand;
use uuid::Uuid;

use crate::domain::attribute::AttrKind;
use crate::roster::attributes::{AttributePatch, NewAttribute, Values};
use crate::roster::{Actor, Roster};

#[derive(Debug, Subcommand)]
pub enum AttributeCommand {
    /// The org's attributes: name, type, required, unique, options.
    List {
        org: String,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Define an attribute; prints it as JSON.
    Add {
        org: String,
        /// A letter, then letters, digits, `_` or `-`.
        name: String,
        /// string, integer, decimal, boolean, date or choice.
        #[arg(long = "type")]
        kind: String,
        /// An option of a `choice` attribute; repeat for more.
        #[arg(long = "option")]
        options: Vec<String>,
        #[arg(long)]
        required: bool,
        #[arg(long)]
        unique: bool,
        #[arg(long)]
        description: Option<String>,
    },
    /// Change a definition (refused when it would strand members' values); prints it as JSON.
    Update {
        org: String,
        name: String,
        #[arg(long)]
        rename: Option<String>,
        #[arg(long = "type")]
        kind: Option<String>,
        /// The options of a `choice` attribute (all of them); repeat for more.
        #[arg(long = "option")]
        options: Vec<String>,
        #[arg(long)]
        required: Option<bool>,
        #[arg(long)]
        unique: Option<bool>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a definition no member holds a value of.
    Remove { org: String, name: String },
    /// Print a member's values as JSON.
    Show { org: String, member_id: Uuid },
    /// Set a member's values (`NAME=VALUE`; `NAME=` clears one); prints them all as JSON.
    Set {
        org: String,
        member_id: Uuid,
        #[arg(required = true)]
        values: Vec<String>,
    },
}

async fn org_id(roster: &Roster, slug: &str) -> anyhow::Result<Uuid> {
    roster
        .org_by_slug(slug)
        .await?
        .map(|o| o.id)
        .ok_or_else(|| anyhow!("organization `{slug}` not found"))
}

fn kind(text: &str) -> anyhow::Result<AttrKind> {
    text.parse::<AttrKind>().map_err(|e| anyhow!("--type: {e}"))
}

pub async fn run(roster: &Roster, command: AttributeCommand) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match command {
        AttributeCommand::List { org, json } => {
            let org_id = org_id(roster, &org).await?;
            for a in roster.attributes(org_id).await? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&a)?)?;
                } else {
                    let mut marks = Vec::new();
                    if a.required {
                        marks.push("required");
                    }
                    if a.unique {
                        marks.push("unique");
                    }
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}",
                        a.name,
                        a.kind.as_str(),
                        marks.join(","),
                        a.options.join("|")
                    )?;
                }
            }
        }
        AttributeCommand::Add {
            org,
            name,
            kind: k,
            options,
            required,
            unique,
            description,
        } => {
            let org_id = org_id(roster, &org).await?;
            let new = NewAttribute {
                name,
                kind: kind(&k)?,
                options,
                required,
                unique,
                description,
            };
            let a = roster.create_attribute(org_id, &Actor::Cli, new).await?;
            writeln!(out, "{}", serde_json::to_string(&a)?)?;
        }
        AttributeCommand::Update {
            org,
            name,
            rename,
            kind: k,
            options,
            required,
            unique,
            description,
        } => {
            let org_id = org_id(roster, &org).await?;
            let patch = AttributePatch {
                name: rename,
                kind: k.as_deref().map(kind).transpose()?,
                options: (!options.is_empty()).then_some(options),
                required,
                unique,
                description,
            };
            let a = roster
                .update_attribute(org_id, &Actor::Cli, &name, patch)
                .await?;
            writeln!(out, "{}", serde_json::to_string(&a)?)?;
        }
        AttributeCommand::Remove { org, name } => {
            let org_id = org_id(roster, &org).await?;
            roster.delete_attribute(org_id, &Actor::Cli, &name).await?;
        }
        AttributeCommand::Show { org, member_id } => {
            let org_id = org_id(roster, &org).await?;
            let values = roster.member_attributes(org_id, member_id).await?;
            writeln!(out, "{}", serde_json::to_string(&values)?)?;
        }
        AttributeCommand::Set {
            org,
            member_id,
            values,
        } => {
            let org_id = org_id(roster, &org).await?;
            let mut map = BTreeMap::new();
            for v in values {
                let Some((name, value)) = v.split_once('=') else {
                    bail!("`{v}` is not NAME=VALUE");
                };
                map.insert(name.trim().to_owned(), value.to_owned());
            }
            let values = roster
                .set_member_attributes(org_id, &Actor::Cli, member_id, Values::Text(map))
                .await?;
            writeln!(out, "{}", serde_json::to_string(&values)?)?;
        }
    }
    out.flush()?;
    Ok(())
}
