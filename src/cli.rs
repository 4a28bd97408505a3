//! The command line (DESIGN §7). Scripts rely on it: commands and flags are only ever added.
//! Exit codes: 0 success, 1 failure (one line on stderr), 2 usage error.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use uuid::Uuid;

use crate::app::{App, AppOptions, shutdown_signal};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::domain::AccessView;
use crate::roster::{Actor, InviteSettings, Roster, TokenKind, export};
use crate::store::members::{MemberQuery, MemberSort};
use crate::store::{self, Store, redact_url};

const DEFAULT_CONFIG: &str = "config/rosterd.toml";

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
    },
    /// Create or update the database schema, then exit.
    Migrate,
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
    /// List an org's members.
    Members(MembersArgs),
    /// Export an org's current and past members as CSV.
    Export {
        #[arg(long)]
        org: String,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
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
struct MembersArgs {
    #[arg(long)]
    org: String,
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
            eprintln!("rosterd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("rosterd: {msg}");
            ExitCode::from(1)
        }
    }
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

async fn org_id(roster: &Roster, slug: &str) -> anyhow::Result<Uuid> {
    roster
        .org_by_slug(slug)
        .await?
        .map(|o| o.id)
        .ok_or_else(|| anyhow!("organization `{slug}` not found"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = load_config(&cli)?;
    match cli.command {
        Command::Serve { listen } => {
            if let Some(addr) = listen {
                config.server.listen = addr;
            }
            crate::telemetry::init(&config.logging);
            let db = redact_url(&config.database.url);
            let demo = config.orgs.first().map(|o| o.slug.clone());
            let app = App::build(config, AppOptions::default()).await?;
            let addr = app.local_addr();
            println!("rosterd listening on http://{addr} (database {db})");
            if let Some(slug) = demo {
                println!(
                    "create an admin token with: rosterd token create --org {slug} --kind admin"
                );
            }
            std::io::stdout().flush().ok();
            tracing::info!(%addr, "listening");
            app.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Migrate => {
            open_store(&config).await?;
            println!(
                "database {} is up to date",
                redact_url(&config.database.url)
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
                        println!("{}", serde_json::to_string(&org)?);
                    } else {
                        println!("created organization {} ({})", org.slug, org.id);
                    }
                }
                OrgCommand::List { json } => {
                    for org in roster.orgs().await? {
                        if json {
                            println!("{}", serde_json::to_string(&org)?);
                        } else {
                            let managed = org.managed_by.as_deref().unwrap_or("manual");
                            println!("{}\t{}\t{}", org.slug, org.name, managed);
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
                    eprintln!(
                        "token id {} ({} token for {org}); it is shown only once:",
                        t.id,
                        kind.as_str()
                    );
                    println!("{}", t.token);
                }
                TokenCommand::Revoke { token_id } => {
                    roster.revoke_token(&Actor::Cli, token_id, None).await?;
                    println!("revoked token {token_id}");
                }
            }
        }
        Command::Members(args) => {
            let roster = roster(&config).await?;
            let org_id = org_id(&roster, &args.org).await?;
            list_members(&roster, org_id, &args).await?;
        }
        Command::Export { org, output } => {
            let roster = roster(&config).await?;
            let org_id = org_id(&roster, &org).await?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut s = std::pin::pin!(export::stream(roster.store.clone(), org_id));
            while let Some(chunk) = s.next().await {
                out.write_all(&chunk?)?;
            }
            out.flush()?;
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
