//! The command line (DESIGN §7). Scripts rely on it: commands and flags are only ever added.
//! Exit codes: 0 success, 1 failure (one line on stderr), 2 usage error.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use uuid::Uuid;

use crate::api::members::MemberView;
use crate::app::{App, AppOptions, shutdown_signal};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::domain::AccessView;
use crate::roster::{Actor, InviteSettings, RemoveOutcome, Roster, TokenKind, export};
use crate::store::members::{MemberQuery, MemberSort};
use crate::store::sync::RunRow;
use crate::store::{self, Store, redact_url};
use crate::sync::{Engine, Progress, ProgressFn, Trigger};

mod attributes;
mod detail;

const DEFAULT_CONFIG: &str = "config/rosterd.toml";

/// `println!` that returns the write error instead of panicking (a closed pipe ends the command
/// quietly: see [`main`]).
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

#[derive(Debug, Parser)]
#[command(
    name = "rosterd",
    version,
    about = "Keeps organizations' member rosters in sync"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "ROSTERD_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Database URL (sqlite:// or postgres://); overrides the config file.
    #[arg(long, global = true, env = "ROSTERD_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: HTTP API and background workers.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// The URL people and identity providers reach rosterd at (links in emails, SCIM
        /// locations); overrides `server.public_url`. Default: http:// and the bound address.
        #[arg(long)]
        public_url: Option<String>,
    },
    /// Create or update the database schema, then exit.
    Migrate,
    /// Write a consistent copy of the SQLite database to FILE while the daemon runs (restore:
    /// stop the daemon, put FILE in place of the database file, start it). PostgreSQL: use
    /// pg_dump.
    Backup {
        /// Where the copy goes; must not exist yet.
        file: PathBuf,
    },
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List an org's members (`members --org ORG`), show one in full (`members show ORG ID`)
    /// or set their phone numbers (`members phones ORG ID`).
    Members(MembersArgs),
    /// Export an org's current and past members as CSV (or a .zip holding the CSV).
    Export {
        #[arg(long)]
        org: String,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Column groups, comma separated: basics, emails, phones, groups, balances, payments
        /// (default: today's columns).
        #[arg(long)]
        columns: Option<String>,
        /// csv (default) or zip.
        #[arg(long, default_value = "csv")]
        format: String,
    },
    /// Drop all member data of an org: every member but the owner is erased (as `erase`) and
    /// leaves their groups. Runs as a job and waits for it; prints the job as JSON.
    DropMembers {
        #[arg(long)]
        org: String,
        /// Type the org's slug again to confirm.
        #[arg(long)]
        confirm: String,
    },
    /// Show a background job (JSON).
    Job {
        #[arg(long)]
        org: String,
        job_id: Uuid,
    },
    /// Remove one member (their history stays), optionally recording where they can still be
    /// reached. Prints the member as JSON.
    Remove {
        #[arg(long)]
        org: String,
        member_id: Uuid,
        /// Where the former member can still be reached (shown among past members).
        #[arg(long)]
        contact_email: Option<String>,
    },
    /// Erase one member's personal data everywhere it is stored (the member stays as a removed
    /// tombstone). Prints the tombstone as JSON.
    Erase {
        #[arg(long)]
        org: String,
        member_id: Uuid,
    },
    /// Run a configured source now (fetch, plan, check, apply), or show its plan.
    Sync {
        source: String,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the source's normalized records (JSON lines) and change nothing.
        #[arg(long, conflicts_with = "dry_run")]
        dump: bool,
        #[arg(long)]
        json: bool,
    },
    /// List sync runs and import jobs, newest first.
    Runs {
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// An org's points: show the pool, or move points (as `POST …/points/moves`).
    Points {
        #[command(subcommand)]
        command: PointsCommand,
    },
    /// Record a member's payment (amount in minor units: 2500 is 25.00 EUR).
    Pay {
        #[arg(long)]
        org: String,
        #[arg(long)]
        member: Uuid,
        #[arg(long)]
        amount: i64,
        /// ISO 4217 code, e.g. EUR.
        #[arg(long)]
        currency: String,
        /// The day it was paid, e.g. 2026-03-01.
        #[arg(long)]
        paid_on: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Approve a held run (or confirm an import preview) and apply its plan.
    Approve {
        run_id: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// List, approve or decline an org's applications (verified join requests awaiting an
    /// admin).
    Applications {
        #[command(subcommand)]
        command: ApplicationCommand,
    },
    /// An org's own member attributes (list, add, update, remove) and a member's values (show,
    /// set).
    Attributes {
        #[command(subcommand)]
        command: attributes::AttributeCommand,
    },
    /// List, add or remove the entitlements a group grants its members.
    Entitlements {
        #[command(subcommand)]
        command: detail::EntitlementCommand,
    },
    /// Import a roster CSV (or a .zip holding one) into an org: validate every row, then apply.
    Import {
        #[arg(long)]
        org: String,
        file: PathBuf,
        /// Validate and show what would change; apply nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PointsCommand {
    /// Print the pool and the points members hold (JSON).
    Show {
        #[arg(long)]
        org: String,
    },
    /// Move points and print the ledger entry (JSON). Running it again with the same key and
    /// values prints the same entry; other values with that key are refused.
    Move {
        #[arg(long)]
        org: String,
        /// `pool_add`, `give` (pool → member) or `take` (member → pool).
        #[arg(long)]
        kind: String,
        /// The member, for `give` and `take`.
        #[arg(long)]
        member: Option<Uuid>,
        #[arg(long)]
        amount: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        idempotency_key: String,
    },
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create an organization.
    Create {
        slug: String,
        #[arg(long)]
        name: String,
        /// Invite this person as the org's owner.
        #[arg(long)]
        owner_email: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List organizations.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change an org's settings; prints the org as JSON.
    Set {
        slug: String,
        /// What a SCIM `active: false` does: remove (default) or disable (reversible).
        #[arg(long)]
        scim_deactivate: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ApplicationCommand {
    /// List applications, oldest first: id, email, name, status.
    List {
        #[arg(long)]
        org: String,
        /// pending, approved, declined, joined, unverified or void.
        #[arg(long, default_value = "pending")]
        status: String,
        /// One JSON object per line (with the answers) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approve an application: the applicant becomes an enrolled member and is emailed.
    Approve {
        #[arg(long)]
        org: String,
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Decline an application: the applicant is emailed, with the reason when given.
    Decline {
        #[arg(long)]
        org: String,
        id: Uuid,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; prints the token alone on stdout (shown only this once).
    Create {
        #[arg(long)]
        org: String,
        #[arg(long, value_enum)]
        kind: TokenKind,
        /// A label to recognise the token by.
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a token by its id.
    Revoke { token_id: Uuid },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct MembersArgs {
    #[command(subcommand)]
    command: Option<detail::MembersCommand>,
    #[arg(long, required = true)]
    org: Option<String>,
    /// all (invited + enrolled), invited, enrolled or removed.
    #[arg(long, default_value = "all", value_parser = parse_access)]
    access: AccessView,
    /// Case-insensitive search in names and emails.
    #[arg(long)]
    search: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_access(s: &str) -> Result<AccessView, String> {
    s.parse::<AccessView>().map_err(|e| e.to_string())
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "rosterd: cannot start the async runtime: {e}"
            );
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read the output stopped reading (`| head`): nothing more to say.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "rosterd: {msg}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let explicit = cli.config != Path::new(DEFAULT_CONFIG);
    let mut config = if cli.config.exists() || explicit {
        Config::load(&cli.config)?
    } else {
        Config::default()
    };
    if let Some(url) = &cli.database_url {
        config.database.url = url.clone();
    }
    config
        .validate()
        .map_err(|m| anyhow!("{}: {m}", cli.config.display()))?;
    Ok(config)
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database.url, config.database.max_connections)
        .await
        .with_context(|| format!("cannot open database {}", redact_url(&config.database.url)))?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    Ok(store)
}

async fn roster(config: &Config) -> anyhow::Result<Roster> {
    let store = open_store(config).await?;
    Ok(Roster::new(
        store,
        std::sync::Arc::new(SystemClock),
        InviteSettings::from_config(config),
    ))
}

async fn engine(config: &Config) -> anyhow::Result<Engine> {
    let roster = roster(config).await?;
    roster.ensure_orgs(&config.orgs).await?;
    let engine = Engine::new(config, roster)?;
    engine.prepare().await?;
    Ok(engine)
}

fn progress_bar() -> (indicatif::ProgressBar, ProgressFn) {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} {msg} [{elapsed_precise}] {wide_bar} {pos}/{len}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    let b = bar.clone();
    let f: ProgressFn = std::sync::Arc::new(move |p| match p {
        Progress::Fetched(n) => {
            b.set_message(format!("fetched {n} records"));
            b.tick();
        }
        Progress::Planned { items } => {
            b.set_message("applying".to_owned());
            b.set_length(items);
            b.set_position(0);
        }
        Progress::Applied { done, total } => {
            b.set_length(total.max(done));
            b.set_position(done);
        }
    });
    (bar, f)
}

fn print_run(r: &RunRow, json: bool) -> anyhow::Result<()> {
    if json {
        out!(
            "{}",
            serde_json::to_string(&crate::api::sync::RunView::from(r))?
        );
        return Ok(());
    }
    out!("run {} of {} ({}): {}", r.id, r.source, r.kind, r.status);
    out!(
        "  fetched {}  created {}  updated {}  removed {}  reactivated {}  unchanged {}  errors {}",
        r.fetched,
        r.created,
        r.updated,
        r.removed,
        r.reactivated,
        r.unchanged,
        r.errors
    );
    if r.status == "held" || r.status == "preview" {
        out!(
            "  plan: {} to create, {} to update, {} to remove, {} to reactivate",
            r.planned_creates,
            r.planned_updates,
            r.planned_removals,
            r.planned_reactivations
        );
    }
    if let Some(m) = &r.message {
        out!("  {m}");
    }
    for w in r.warnings() {
        out!("  warning: {w}");
    }
    if r.status == "held" {
        out!("  approve with: rosterd approve {}", r.id);
    }
    Ok(())
}

async fn print_run_errors(engine: &Engine, id: Uuid, limit: i64) -> anyhow::Result<()> {
    let mut tx = engine.roster().store.read().await?;
    let errors = store::sync::errors(&mut tx, id, 0, limit).await?;
    tx.rollback().await?;
    for e in errors {
        out!(
            "  line {}{}{}: {}",
            e.line,
            e.field.map(|f| format!(", {f}")).unwrap_or_default(),
            e.value.map(|v| format!(" {v:?}")).unwrap_or_default(),
            e.message
        );
    }
    Ok(())
}

async fn org_id(roster: &Roster, slug: &str) -> anyhow::Result<Uuid> {
    roster
        .org_by_slug(slug)
        .await?
        .map(|o| o.id)
        .ok_or_else(|| anyhow!("organization `{slug}` not found"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = load_config(&cli)?;
    // Commands that talk to sources log their warnings (a held run, a failed fetch) to stderr;
    // only warnings by default, so the output stays for people; RUST_LOG raises it.
    if matches!(
        cli.command,
        Command::Sync { .. } | Command::Approve { .. } | Command::Import { .. }
    ) {
        let mut logging = config.logging.clone();
        logging.level = "warn".into();
        crate::telemetry::init(&logging);
    }
    match cli.command {
        Command::Serve { listen, public_url } => {
            if let Some(addr) = listen {
                config.server.listen = addr;
            }
            if let Some(url) = public_url {
                config.server.public_url = url;
                config
                    .validate()
                    .map_err(|m| anyhow!("--public-url: {m}"))?;
            }
            crate::telemetry::init(&config.logging);
            let db = redact_url(&config.database.url);
            let demo = config.orgs.first().map(|o| o.slug.clone());
            let app = App::build(config, AppOptions::default()).await?;
            let addr = app.local_addr();
            // Nobody reading stdout is no reason to stop serving.
            let mut out = std::io::stdout();
            writeln!(out, "rosterd listening on http://{addr} (database {db})").ok();
            if let Some(slug) = demo {
                writeln!(
                    out,
                    "create an admin token with: rosterd token create --org {slug} --kind admin"
                )
                .ok();
            }
            out.flush().ok();
            tracing::info!(%addr, "listening");
            app.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Migrate => {
            open_store(&config).await?;
            out!(
                "database {} is up to date",
                redact_url(&config.database.url)
            );
        }
        Command::Backup { file } => {
            if file.exists() {
                anyhow::bail!("{} already exists; choose a new file", file.display());
            }
            let Some(dest) = file.to_str() else {
                anyhow::bail!("the backup path must be valid UTF-8");
            };
            let store = open_store(&config).await?;
            let written = store
                .backup_to(dest)
                .await
                .with_context(|| format!("cannot write the backup to {}", file.display()))?;
            store.close().await;
            if !written {
                anyhow::bail!(
                    "rosterd backup copies SQLite databases; back up PostgreSQL with pg_dump \
                     (see docs/deploy.md)"
                );
            }
            // The copy holds members' personal data: readable by its owner only.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("cannot restrict {}", file.display()))?;
            }
            out!(
                "backed up {} to {}",
                redact_url(&config.database.url),
                file.display()
            );
        }
        Command::Org { command } => {
            let roster = roster(&config).await?;
            match command {
                OrgCommand::Create {
                    slug,
                    name,
                    owner_email,
                    json,
                } => {
                    let org = roster
                        .create_org(&Actor::Cli, &slug, &name, owner_email.as_deref())
                        .await?;
                    if json {
                        out!("{}", serde_json::to_string(&org)?);
                    } else {
                        out!("created organization {} ({})", org.slug, org.id);
                    }
                }
                OrgCommand::Set {
                    slug,
                    scim_deactivate,
                } => {
                    let id = org_id(&roster, &slug).await?;
                    let changes = crate::roster::OrgChanges {
                        scim_deactivate,
                        ..Default::default()
                    };
                    let org = roster.update_org(&Actor::Cli, id, &changes).await?;
                    out!("{}", serde_json::to_string_pretty(&org)?);
                }
                OrgCommand::List { json } => {
                    for org in roster.orgs().await? {
                        if json {
                            out!("{}", serde_json::to_string(&org)?);
                        } else {
                            let managed = org.integration().unwrap_or_else(|| "manual".into());
                            out!("{}\t{}\t{}", org.slug, org.name, managed);
                        }
                    }
                }
            }
        }
        Command::Token { command } => {
            let roster = roster(&config).await?;
            match command {
                TokenCommand::Create { org, kind, name } => {
                    let org_id = org_id(&roster, &org).await?;
                    let t = roster
                        .create_token(&Actor::Cli, org_id, kind, name.as_deref())
                        .await?;
                    let _ = writeln!(
                        std::io::stderr(),
                        "token id {} ({} token for {org}); it is shown only once:",
                        t.id,
                        kind.as_str()
                    );
                    out!("{}", t.token);
                }
                TokenCommand::Revoke { token_id } => {
                    roster.revoke_token(&Actor::Cli, token_id, None).await?;
                    out!("revoked token {token_id}");
                }
            }
        }
        Command::Applications { command } => {
            let roster = roster(&config).await?;
            let print =
                |a: &crate::roster::join::ApplicationView, json: bool| -> anyhow::Result<()> {
                    if json {
                        out!("{}", serde_json::to_string(a)?);
                    } else {
                        let name = [a.given_name.as_deref(), a.family_name.as_deref()]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(" ");
                        out!("{}\t{}\t{}\t{}", a.id, a.email, name, a.status);
                    }
                    Ok(())
                };
            match command {
                ApplicationCommand::List { org, status, json } => {
                    let org_id = org_id(&roster, &org).await?;
                    for a in roster.applications(org_id, &status).await? {
                        print(&a, json)?;
                    }
                }
                ApplicationCommand::Approve { org, id, json } => {
                    let org_id = org_id(&roster, &org).await?;
                    let a = roster.approve_application(org_id, &Actor::Cli, id).await?;
                    print(&a, json)?;
                }
                ApplicationCommand::Decline {
                    org,
                    id,
                    reason,
                    json,
                } => {
                    let org_id = org_id(&roster, &org).await?;
                    let a = roster
                        .decline_application(org_id, &Actor::Cli, id, reason.as_deref())
                        .await?;
                    print(&a, json)?;
                }
            }
        }
        Command::Members(args) => {
            let roster = roster(&config).await?;
            match (&args.command, &args.org) {
                (Some(command), _) => detail::members(&roster, command).await?,
                (None, Some(org)) => {
                    let org_id = org_id(&roster, org).await?;
                    list_members(&roster, org_id, &args).await?;
                }
                (None, None) => bail!("--org is required"),
            }
        }
        Command::Attributes { command } => {
            let roster = roster(&config).await?;
            attributes::run(&roster, command).await?;
        }
        Command::Entitlements { command } => {
            let roster = roster(&config).await?;
            detail::entitlements(&roster, &command).await?;
        }
        Command::Points { command } => {
            let roster = roster(&config).await?;
            match command {
                PointsCommand::Show { org } => {
                    let org_id = org_id(&roster, &org).await?;
                    let totals = roster.points_totals(org_id).await?;
                    out!("{}", serde_json::to_string(&totals)?);
                }
                PointsCommand::Move {
                    org,
                    kind,
                    member,
                    amount,
                    reason,
                    idempotency_key,
                } => {
                    let org_id = org_id(&roster, &org).await?;
                    let kind = serde_json::from_value(serde_json::Value::String(kind.clone()))
                        .map_err(|_| anyhow!("--kind `{kind}`: expected pool_add, give or take"))?;
                    let done = roster
                        .move_points(
                            org_id,
                            &Actor::Cli,
                            crate::roster::ledger::PointsMove {
                                kind,
                                member_id: member,
                                amount,
                                reason,
                                idempotency_key,
                            },
                        )
                        .await?;
                    out!("{}", serde_json::to_string(&done.row)?);
                }
            }
        }
        Command::Pay {
            org,
            member,
            amount,
            currency,
            paid_on,
            note,
        } => {
            let roster = roster(&config).await?;
            let org_id = org_id(&roster, &org).await?;
            let row = roster
                .record_payment(
                    org_id,
                    &Actor::Cli,
                    member,
                    crate::roster::ledger::NewPayment {
                        amount,
                        currency,
                        paid_on,
                        note,
                    },
                )
                .await?;
            out!("{}", serde_json::to_string(&row)?);
        }
        Command::Export {
            org,
            output,
            columns,
            format,
        } => {
            let roster = roster(&config).await?;
            let org_id = org_id(&roster, &org).await?;
            let options = export::ExportOptions {
                columns: columns
                    .as_deref()
                    .map(export::parse_columns)
                    .transpose()
                    .map_err(|e| anyhow!("--columns: {e}"))?,
                format: export::ExportFormat::parse(&format)
                    .map_err(|e| anyhow!("--format: {e}"))?,
            };
            let csv_name = format!("{org}-members.csv");
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut s = export::stream(roster.store.clone(), org_id, &options, &csv_name);
            while let Some(chunk) = s.next().await {
                out.write_all(&chunk?)?;
            }
            out.flush()?;
        }
        Command::Remove {
            org,
            member_id,
            contact_email,
        } => {
            let roster = roster(&config).await?;
            let org_id = org_id(&roster, &org).await?;
            let results = roster
                .remove_members_reachable(
                    org_id,
                    &Actor::Cli,
                    &[member_id],
                    contact_email.as_deref(),
                )
                .await?;
            if let Some(r) = results.first()
                && !matches!(
                    r.outcome,
                    RemoveOutcome::Removed | RemoveOutcome::SkippedAlreadyRemoved
                )
            {
                bail!(
                    "{}",
                    r.reason.as_deref().unwrap_or("the member was not removed")
                );
            }
            let m = roster.member(org_id, member_id).await?;
            out!("{}", serde_json::to_string_pretty(&MemberView::from(&m))?);
        }
        Command::DropMembers { org, confirm } => {
            let roster = roster(&config).await?;
            let org_id = org_id(&roster, &org).await?;
            let job = roster
                .request_drop_members(org_id, &Actor::Cli, &confirm, None)
                .await?;
            let settings = crate::roster::jobs::JobSettings::from_config(&config);
            let job = roster.run_job_here(org_id, job.id, &settings).await?;
            out!(
                "{}",
                serde_json::to_string_pretty(&crate::roster::jobs::JobView::from(&job))?
            );
            if job.status != "succeeded" {
                return Err(anyhow!(
                    "the job {} {}: {}",
                    job.id,
                    job.status,
                    job.error.as_deref().unwrap_or("")
                ));
            }
        }
        Command::Job { org, job_id } => {
            let roster = roster(&config).await?;
            let org_id = org_id(&roster, &org).await?;
            let job = roster.job(org_id, job_id).await?;
            out!(
                "{}",
                serde_json::to_string_pretty(&crate::roster::jobs::JobView::from(&job))?
            );
        }
        Command::Erase { org, member_id } => {
            let roster = roster(&config).await?;
            let org_id = org_id(&roster, &org).await?;
            let m = roster.erase_member(org_id, &Actor::Cli, member_id).await?;
            out!("{}", serde_json::to_string_pretty(&MemberView::from(&m))?);
        }
        Command::Sync {
            source,
            dry_run,
            dump,
            json,
        } => {
            let engine = engine(&config).await?;
            if dump {
                let mut snap = engine.open_snapshot(&source).await?;
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                while let Some(row) = snap.next().await {
                    let (line, row) = row.map_err(|e| anyhow!("the fetch failed: {e}"))?;
                    let v = match row {
                        Ok(r) => serde_json::json!({"line": line, "record": {
                            "external_id": r.external_id, "member_email": r.member_email,
                            "login_email": r.login_email, "given_name": r.given_name,
                            "family_name": r.family_name, "display_name": r.display_name,
                            "active": r.active, "role": r.role, "groups": r.groups, "raw": r.raw}}),
                        Err(e) => serde_json::json!({"line": line, "error": e.to_string()}),
                    };
                    writeln!(out, "{v}")?;
                }
                out.flush()?;
                return Ok(());
            }
            if dry_run {
                let plan = engine.dry_run(&source).await?;
                if json {
                    let v = serde_json::json!({
                        "source": source,
                        "failed": plan.failed,
                        "held": plan.held,
                        "counts": {
                            "fetched": plan.counts.fetched, "create": plan.counts.creates,
                            "update": plan.counts.updates, "remove": plan.counts.removals,
                            "reactivate": plan.counts.reactivations,
                            "unchanged": plan.counts.unchanged, "errors": plan.counts.errors,
                        },
                        "items": plan.items,
                        "warnings": plan.warnings,
                        "errors": plan.errors,
                    });
                    out!("{v}");
                } else {
                    out!("dry run of {source}: nothing is changed");
                    for item in &plan.items {
                        out!("  {}", item.describe());
                    }
                    for w in &plan.warnings {
                        out!("  warning: {w}");
                    }
                    for e in &plan.errors {
                        out!(
                            "  error: line {}{}: {}",
                            e.line,
                            e.field
                                .as_ref()
                                .map(|f| format!(", {f}"))
                                .unwrap_or_default(),
                            e.message
                        );
                    }
                    let c = &plan.counts;
                    out!(
                        "fetched {}: {} to create, {} to update, {} to remove, {} to reactivate, {} unchanged, {} errors",
                        c.fetched,
                        c.creates,
                        c.updates,
                        c.removals,
                        c.reactivations,
                        c.unchanged,
                        c.errors
                    );
                    if let Some(h) = &plan.held {
                        out!("a real run would be held: {h}");
                    }
                }
                if let Some(f) = plan.failed {
                    return Err(anyhow!("the fetch failed: {f}"));
                }
                return Ok(());
            }
            let (bar, progress) = progress_bar();
            let run = engine
                .run(&source, Trigger::Cli, "command line", Some(progress))
                .await;
            bar.finish_and_clear();
            let run = run?;
            print_run(&run, json)?;
            if !json && run.errors > 0 {
                print_run_errors(&engine, run.id, 20).await?;
            }
            if run.status == "failed" || run.status == "interrupted" {
                return Err(anyhow!(
                    "run {} {}: {}",
                    run.id,
                    run.status,
                    run.message.unwrap_or_default()
                ));
            }
        }
        Command::Runs {
            source,
            org,
            limit,
            json,
        } => {
            let roster = roster(&config).await?;
            let org_id = match &org {
                Some(slug) => Some(org_id(&roster, slug).await?),
                None => None,
            };
            let q = store::sync::RunQuery {
                org_id,
                source,
                kind: None,
                before: None,
                limit: limit.clamp(1, 1000),
            };
            let mut tx = roster.store.read().await?;
            let runs = store::sync::runs(&mut tx, &q).await?;
            tx.rollback().await?;
            if !json {
                out!(
                    "RUN	SOURCE	STATUS	STARTED	SECONDS	FETCHED	CREATED	UPDATED	REMOVED	REACTIVATED	ERRORS"
                );
            }
            for r in &runs {
                if json {
                    out!(
                        "{}",
                        serde_json::to_string(&crate::api::sync::RunView::from(r))?
                    );
                } else {
                    let secs = r
                        .finished_at
                        .map(|f| {
                            format!(
                                "{:.1}",
                                (f - r.started_at).num_milliseconds() as f64 / 1000.0
                            )
                        })
                        .unwrap_or_else(|| "-".into());
                    out!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        r.id,
                        r.source,
                        r.status,
                        r.started_at.format("%Y-%m-%d %H:%M:%S"),
                        secs,
                        r.fetched,
                        r.created,
                        r.updated,
                        r.removed,
                        r.reactivated,
                        r.errors
                    );
                }
            }
        }
        Command::Approve { run_id, json } => {
            let engine = engine(&config).await?;
            let run = engine.approve(run_id, "command line", false).await?;
            print_run(&run, json)?;
            if run.status != "succeeded" {
                return Err(anyhow!("run {} {}", run.id, run.status));
            }
        }
        Command::Import {
            org,
            file,
            dry_run,
            json,
        } => {
            let engine = engine(&config).await?;
            let org_id = org_id(engine.roster(), &org).await?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let job = engine.import(org_id, &name, bytes, "command line").await?;
            if job.status == "invalid" {
                print_run(&job, json)?;
                if !json {
                    print_run_errors(&engine, job.id, 50).await?;
                }
                return Err(anyhow!(
                    "{} row(s) have errors; nothing was imported",
                    job.errors
                ));
            }
            if dry_run {
                print_run(&job, json)?;
                engine.cancel_import(job.id).await?;
                return Ok(());
            }
            let done = engine.approve(job.id, "command line", false).await?;
            print_run(&done, json)?;
            if done.status != "succeeded" {
                return Err(anyhow!("import {} {}", done.id, done.status));
            }
        }
    }
    Ok(())
}

async fn list_members(roster: &Roster, org_id: Uuid, args: &MembersArgs) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !args.json {
        writeln!(
            out,
            "NAME\tMEMBER EMAIL\tLOGIN EMAIL\tACCESS\tROLE\tACTIVITY\tADDED"
        )?;
    }
    let mut after = None;
    loop {
        let q = MemberQuery {
            org_id,
            view: args.access,
            role: None,
            joined_from: None,
            joined_before: None,
            search: args.search.clone(),
            email: None,
            attrs: Vec::new(),
            sort: MemberSort::Added,
            descending: false,
            after: after.take(),
            limit: 500,
        };
        let mut tx = roster.store.read().await?;
        let rows = store::members::list(&mut tx, &q).await?;
        tx.rollback().await?;
        for m in &rows {
            if args.json {
                let v = crate::api::members::MemberView::from(m);
                writeln!(out, "{}", serde_json::to_string(&v)?)?;
            } else {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    m.name(),
                    m.member_email,
                    m.distinct_login_email().unwrap_or("-"),
                    m.access,
                    m.role,
                    m.activity_at.format("%Y-%m-%d %H:%M"),
                    m.added_at.format("%Y-%m-%d"),
                )?;
            }
        }
        match rows.last() {
            Some(last) if rows.len() == 500 => {
                after = Some((MemberSort::Added.key_of(last), last.id));
            }
            _ => break,
        }
    }
    out.flush()?;
    Ok(())
}
