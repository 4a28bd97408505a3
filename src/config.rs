//! Configuration: one TOML file (`config/rosterd.toml` by default), every key documented where it
//! is defined here and in the shipped file. Unknown keys are refused with the key and file named,
//! so a typo never silently falls back to a default. Secrets are [`SecretRef`]s, never literals.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{Email, Slug};
use crate::secret::SecretRef;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP listener and request limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where the member store lives.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// The operator token (all orgs).
    #[serde(default)]
    pub auth: AuthConfig,
    /// How invitation emails leave rosterd.
    #[serde(default)]
    pub mail: MailConfig,
    /// Invitation links, reminders and expiry.
    #[serde(default)]
    pub invitations: InvitationConfig,
    /// Log format and level.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Organizations that must exist; created at start when missing, never deleted.
    #[serde(default)]
    pub orgs: Vec<OrgSeed>,
    /// How sync runs behave on every source.
    #[serde(default)]
    pub sync: SyncConfig,
    /// Outside systems polled on schedules, one entry per source (see `SourceConfig`).
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// Settings shared by every sync run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Whether this replica runs scheduled syncs (every replica may; each tick runs once).
    #[serde(default = "default_true")]
    pub scheduler: bool,
    /// A replica holds a source for this long and renews it while running; a replica that dies
    /// loses it after this long, and another takes over.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// Members changed per transaction when applying a plan.
    #[serde(default = "default_apply_batch")]
    pub apply_batch: usize,
    /// Retries of one request on a transient failure (network, 5xx, 429) within a run.
    #[serde(default = "default_fetch_retries")]
    pub fetch_retries: usize,
    /// The first retry of a request waits this long (then exponential backoff with jitter).
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Most time one request to a source may take.
    #[serde(default = "default_fetch_timeout_secs")]
    pub request_timeout_secs: u64,
    /// After a failed run, the source waits at least this long before its next scheduled run,
    /// doubling with each further failure.
    #[serde(default = "default_failure_backoff_secs")]
    pub failure_backoff_secs: u64,
    /// The longest wait between runs of a failing source.
    #[serde(default = "default_max_failure_backoff_secs")]
    pub max_failure_backoff_secs: u64,
    /// Plans and error rows of runs that ended more than this many days ago are deleted (the
    /// run rows, with their counts, stay).
    #[serde(default = "default_keep_run_details_days")]
    pub keep_run_details_days: u32,
}

/// Most removals a run may make before it is held for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxRemovals {
    Count(u64),
    Percent(u8),
}

impl MaxRemovals {
    /// The limit for a source that currently claims `members` people.
    pub fn limit(self, members: u64) -> u64 {
        match self {
            MaxRemovals::Count(n) => n,
            // Rounded up: 10% of 5 members allows 1 removal.
            MaxRemovals::Percent(p) => (members * u64::from(p)).div_ceil(100),
        }
    }
}

impl std::fmt::Display for MaxRemovals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxRemovals::Count(n) => write!(f, "{n}"),
            MaxRemovals::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl<'de> Deserialize<'de> for MaxRemovals {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(i64),
            Text(String),
        }
        let bad = || {
            serde::de::Error::custom(
                "expected a count such as 50 or a percentage such as \"10%\" (0 to 100%)",
            )
        };
        match Raw::deserialize(d)? {
            Raw::Count(n) => u64::try_from(n).map(MaxRemovals::Count).map_err(|_| bad()),
            Raw::Text(t) => {
                let t = t.trim();
                match t.strip_suffix('%') {
                    Some(p) => match p.trim().parse::<u8>() {
                        Ok(p) if p <= 100 => Ok(MaxRemovals::Percent(p)),
                        _ => Err(bad()),
                    },
                    None => t.parse::<u64>().map(MaxRemovals::Count).map_err(|_| bad()),
                }
            }
        }
    }
}

/// One source: an outside system polled for one org.
///
/// ```toml
/// [[sources]]
/// name = "hr-roster"          # unique; used in the CLI, the API and run history
/// org = "acme"                # the org it feeds
/// kind = "csv"                # which connector; its own keys sit beside these
/// path = "rosters/hr.csv"
/// schedule = "*/15 * * * *"   # cron, 5 fields (or 6 with seconds); absent: on demand only
/// timezone = "Europe/Paris"   # the schedule's time zone; default UTC
/// authoritative = true        # may remove members absent from a complete snapshot
/// priority = 10               # lower wins when several sources describe one member
/// max_removals = "10%"        # or a count; a run removing more is held for approval
/// [sources.mapping]
/// external_id = "ID"
/// member_email = "Email"
/// ```
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub org: String,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub authoritative: bool,
    pub priority: i32,
    pub max_removals: MaxRemovals,
    pub mapping: rosterd_connectors::Mapping,
    pub kind: rosterd_connectors::SourceKind,
}

/// The keys every source has; everything else belongs to its kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceCommon {
    name: String,
    org: String,
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    authoritative: bool,
    #[serde(default = "default_priority")]
    priority: i32,
    #[serde(default = "default_max_removals")]
    max_removals: MaxRemovals,
    mapping: rosterd_connectors::Mapping,
}

const COMMON_KEYS: [&str; 8] = [
    "name",
    "org",
    "schedule",
    "timezone",
    "authoritative",
    "priority",
    "max_removals",
    "mapping",
];

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let table = toml::Table::deserialize(d)?;
        let label = match table.get("name").and_then(|v| v.as_str()) {
            Some(n) => format!("source `{n}`"),
            None => "a source".to_owned(),
        };
        let (common, kind): (toml::Table, toml::Table) = table
            .into_iter()
            .partition(|(k, _)| COMMON_KEYS.contains(&k.as_str()));
        if !kind.contains_key("kind") {
            return Err(D::Error::custom(format!(
                "{label}: missing key `kind` (one of: csv, http_json, workday)"
            )));
        }
        let c = SourceCommon::deserialize(toml::Value::Table(common))
            .map_err(|e| D::Error::custom(format!("{label}: {}", e.message())))?;
        let kind = rosterd_connectors::SourceKind::deserialize(toml::Value::Table(kind))
            .map_err(|e| D::Error::custom(format!("{label}: {}", e.message())))?;
        Ok(SourceConfig {
            name: c.name,
            org: c.org,
            schedule: c.schedule,
            timezone: c.timezone,
            authoritative: c.authoritative,
            priority: c.priority,
            max_removals: c.max_removals,
            mapping: c.mapping,
            kind,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (`--listen` overrides it).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The address people reach rosterd at; used in links inside emails.
    #[serde(default = "default_public_url")]
    pub public_url: String,
    /// Largest accepted request body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest CSV (or .zip) an admin may upload as an import job.
    #[serde(default = "default_max_import_bytes")]
    pub max_import_bytes: usize,
    /// A request that takes longer than this many seconds is answered 408.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// On SIGTERM / Ctrl-C, in-flight requests get this many seconds to finish.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Failed authentications (bad tokens, unknown invitation links) allowed per client address
    /// per minute; beyond it the client gets 429 until the budget refills.
    #[serde(default = "default_auth_failures_per_minute")]
    pub auth_failures_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created when missing) or `postgres://USER@HOST/DB`.
    #[serde(default = "default_database_url")]
    pub url: String,
    /// Most connections kept open (PostgreSQL; SQLite readers).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The operator token, which may act on every org: `env:NAME` or `file:PATH`.
    #[serde(default)]
    pub operator_token: Option<SecretRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailSink {
    /// Write each email as an `.eml` file under `mail.dir`.
    File,
    /// Deliver over SMTP (`[mail.smtp]`).
    Smtp,
    /// Only log that an email would be sent (recipient and subject).
    Log,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The From header of every email.
    #[serde(default = "default_mail_from")]
    pub from: String,
    /// `file` (default), `smtp` or `log`.
    #[serde(default = "default_mail_sink")]
    pub sink: MailSink,
    /// Folder for the `file` sink.
    #[serde(default = "default_mail_dir")]
    pub dir: PathBuf,
    /// How often the delivery worker looks for due emails, in milliseconds.
    #[serde(default = "default_mail_poll_ms")]
    pub poll_interval_ms: u64,
    /// After this many failed attempts an email is marked failed and no longer retried.
    #[serde(default = "default_mail_max_attempts")]
    pub max_attempts: u32,
    /// SMTP server, required when `sink = "smtp"`.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (only for a relay on the same host or a test server).
    None,
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `none`, `starttls` (default) or `tls`.
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    /// Login user name, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Login password: `env:NAME` or `file:PATH`.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// Seconds before a connection or command times out.
    #[serde(default = "default_smtp_timeout_secs")]
    pub timeout_secs: u64,
    /// A PEM file of CA certificates to trust for the server's certificate besides the public
    /// web PKI (a corporate CA), with `tls = "starttls"` or `"tls"`. None by default.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationConfig {
    /// Link prefix in invitation emails; the invitation token is appended.
    /// Defaults to `{server.public_url}/invite/`.
    #[serde(default)]
    pub accept_url: Option<String>,
    /// Days between the invitation and each automatic reminder.
    #[serde(default = "default_reminder_interval_days")]
    pub reminder_interval_days: i64,
    /// How many automatic reminders follow an invitation while the member stays invited.
    #[serde(default = "default_reminders")]
    pub reminders: i64,
    /// Days an invitation link stays valid.
    #[serde(default = "default_expiry_days")]
    pub expiry_days: i64,
    /// How often the reminder worker looks for invitations due a reminder, in milliseconds.
    #[serde(default = "default_reminder_poll_ms")]
    pub poll_interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `text` (default) or `json`.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `rosterd=debug,info`; `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSeed {
    /// URL name of the org: lowercase letters, digits and `-`.
    pub slug: String,
    /// Name shown to people.
    pub name: String,
    /// The org's owner, invited when the org is created.
    #[serde(default)]
    pub owner_email: Option<String>,
}

const fn default_true() -> bool {
    true
}
const fn default_lease_secs() -> u64 {
    30
}
const fn default_apply_batch() -> usize {
    500
}
const fn default_fetch_retries() -> usize {
    4
}
const fn default_retry_base_ms() -> u64 {
    500
}
const fn default_fetch_timeout_secs() -> u64 {
    60
}
const fn default_failure_backoff_secs() -> u64 {
    60
}
const fn default_max_failure_backoff_secs() -> u64 {
    3600
}
const fn default_keep_run_details_days() -> u32 {
    30
}
const fn default_priority() -> i32 {
    100
}
/// On by default: a run that would remove more than a tenth of a source's members waits for an
/// admin.
const fn default_max_removals() -> MaxRemovals {
    MaxRemovals::Percent(10)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_public_url() -> String {
    "http://127.0.0.1:8080".into()
}
const fn default_max_body_bytes() -> usize {
    1024 * 1024
}
const fn default_max_import_bytes() -> usize {
    32 * 1024 * 1024
}
const fn default_request_timeout_secs() -> u64 {
    30
}
const fn default_shutdown_grace_secs() -> u64 {
    30
}
const fn default_auth_failures_per_minute() -> u32 {
    20
}
fn default_database_url() -> String {
    "sqlite://data/rosterd.db".into()
}
const fn default_max_connections() -> u32 {
    8
}
fn default_mail_from() -> String {
    "rosterd <no-reply@localhost>".into()
}
const fn default_mail_sink() -> MailSink {
    MailSink::File
}
fn default_mail_dir() -> PathBuf {
    PathBuf::from("data/mail")
}
const fn default_mail_poll_ms() -> u64 {
    1000
}
const fn default_mail_max_attempts() -> u32 {
    10
}
const fn default_smtp_port() -> u16 {
    587
}
const fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}
const fn default_smtp_timeout_secs() -> u64 {
    30
}
const fn default_reminder_interval_days() -> i64 {
    7
}
const fn default_reminders() -> i64 {
    2
}
const fn default_expiry_days() -> i64 {
    30
}
const fn default_reminder_poll_ms() -> u64 {
    60_000
}
const fn default_log_format() -> LogFormat {
    LogFormat::Text
}
fn default_log_level() -> String {
    "info".into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            public_url: default_public_url(),
            max_body_bytes: default_max_body_bytes(),
            max_import_bytes: default_max_import_bytes(),
            request_timeout_secs: default_request_timeout_secs(),
            shutdown_grace_secs: default_shutdown_grace_secs(),
            auth_failures_per_minute: default_auth_failures_per_minute(),
        }
    }
}
impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: default_database_url(),
            max_connections: default_max_connections(),
        }
    }
}
impl Default for MailConfig {
    fn default() -> Self {
        Self {
            from: default_mail_from(),
            sink: default_mail_sink(),
            dir: default_mail_dir(),
            poll_interval_ms: default_mail_poll_ms(),
            max_attempts: default_mail_max_attempts(),
            smtp: None,
        }
    }
}
impl Default for InvitationConfig {
    fn default() -> Self {
        Self {
            accept_url: None,
            reminder_interval_days: default_reminder_interval_days(),
            reminders: default_reminders(),
            expiry_days: default_expiry_days(),
            poll_interval_ms: default_reminder_poll_ms(),
        }
    }
}
impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            scheduler: true,
            lease_secs: default_lease_secs(),
            apply_batch: default_apply_batch(),
            fetch_retries: default_fetch_retries(),
            retry_base_ms: default_retry_base_ms(),
            request_timeout_secs: default_fetch_timeout_secs(),
            failure_backoff_secs: default_failure_backoff_secs(),
            max_failure_backoff_secs: default_max_failure_backoff_secs(),
            keep_run_details_days: default_keep_run_details_days(),
        }
    }
}
impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

/// Why a configuration could not be used. The message always names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses config text; `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: origin.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// Checks what types alone cannot say.
    pub fn validate(&self) -> Result<(), String> {
        if self.mail.sink == MailSink::Smtp && self.mail.smtp.is_none() {
            return Err("mail.sink is \"smtp\" but there is no [mail.smtp] section".into());
        }
        if let Err(e) = Email::parse_mailbox(&self.mail.from) {
            return Err(format!("mail.from: {e}"));
        }
        if !(self.server.public_url.starts_with("http://")
            || self.server.public_url.starts_with("https://"))
        {
            return Err("server.public_url must start with http:// or https://".into());
        }
        if self.server.auth_failures_per_minute == 0 {
            return Err("server.auth_failures_per_minute must be at least 1".into());
        }
        if self.server.max_body_bytes < 1024 {
            return Err("server.max_body_bytes must be at least 1024".into());
        }
        let inv = &self.invitations;
        if inv.reminder_interval_days < 1 || inv.expiry_days < 1 || inv.reminders < 0 {
            return Err("invitations: reminder_interval_days and expiry_days must be at least 1, reminders at least 0".into());
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres"))
        {
            return Err("database.url must be a sqlite:// or postgres:// URL".into());
        }
        let s = &self.sync;
        if !(2..=3600).contains(&s.lease_secs)
            || !(1..=10_000).contains(&s.apply_batch)
            || !(1..=3600).contains(&s.request_timeout_secs)
            || s.fetch_retries > 20
            || s.retry_base_ms > 60_000
            || !(1..=604_800).contains(&s.failure_backoff_secs)
            || !(s.failure_backoff_secs..=604_800).contains(&s.max_failure_backoff_secs)
            || !(1..=3650).contains(&s.keep_run_details_days)
        {
            return Err(
                "sync: lease_secs must be 2..=3600, apply_batch 1..=10000, request_timeout_secs \
                 1..=3600, fetch_retries at most 20, retry_base_ms at most 60000, \
                 failure_backoff_secs 1..=604800, max_failure_backoff_secs between it and 604800, \
                 keep_run_details_days 1..=3650"
                    .into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        // Each (org, group name) has at most one source keeping it: two would undo each other.
        let mut group_owner: std::collections::HashMap<(String, String), &str> =
            std::collections::HashMap::new();
        for src in &self.sources {
            let at = |key: &str, msg: String| format!("source `{}`: {key}: {msg}", src.name);
            crate::domain::Slug::parse(&src.name).map_err(|e| at("name", e.to_string()))?;
            if !names.insert(src.name.as_str()) {
                return Err(at("name", "two sources have this name".into()));
            }
            if src.name == crate::sync::IMPORT_SOURCE || src.name == crate::roster::SCIM_SOURCE {
                return Err(at("name", "this name is reserved".into()));
            }
            Slug::parse(&src.org).map_err(|e| at("org", e.to_string()))?;
            crate::sync::Schedule::parse(src.schedule.as_deref(), src.timezone.as_deref())
                .map_err(|(key, e)| at(key, e))?;
            src.mapping
                .check()
                .map_err(|e| format!("source `{}`: {e}", src.name))?;
            src.kind
                .check(&src.mapping)
                .map_err(|e| format!("source `{}`: {e}", src.name))?;
            for g in src.kind.managed_groups() {
                let key = (src.org.clone(), g.to_lowercase());
                if let Some(other) = group_owner.insert(key, &src.name) {
                    return Err(at(
                        "groups",
                        format!(
                            "group `{g}` of org `{}` is already kept by source `{other}`",
                            src.org
                        ),
                    ));
                }
            }
        }
        for (i, org) in self.orgs.iter().enumerate() {
            Slug::parse(&org.slug).map_err(|e| format!("orgs[{i}].slug: {e}"))?;
            if org.name.trim().is_empty() {
                return Err(format!("orgs[{i}].name: must not be empty"));
            }
            if let Some(owner) = &org.owner_email {
                Email::parse(owner).map_err(|e| format!("orgs[{i}].owner_email: {e}"))?;
            }
        }
        Ok(())
    }

    /// The link prefix invitation tokens are appended to.
    pub fn accept_url(&self) -> String {
        match &self.invitations.accept_url {
            Some(u) => u.clone(),
            None => format!("{}/invite/", self.server.public_url.trim_end_matches('/')),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_the_key_and_file() {
        let err = Config::parse("[server]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml:"), "{err}");
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn literal_secrets_are_refused() {
        let err = Config::parse("[auth]\noperator_token = \"abc123\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("env:NAME"), "{err}");
    }

    #[test]
    fn smtp_sink_needs_smtp_section() {
        let err = Config::parse("[mail]\nsink = \"smtp\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[mail.smtp]"), "{err}");
    }

    #[test]
    fn a_bad_source_fails_at_start_naming_the_source_and_key() {
        let source = |extra: &str, mapping: &str| {
            format!(
                "[[sources]]\nname = \"hr\"\norg = \"acme\"\n{extra}\n[sources.mapping]\n{mapping}\n"
            )
        };
        let ok_mapping = "external_id = \"ID\"";
        let csv = "kind = \"csv\"\npath = \"r.csv\"";
        let cases = [
            (
                source(&format!("{csv}\nschedule = \"61 * * * *\""), ok_mapping),
                "source `hr`: schedule",
            ),
            (
                source(&format!("{csv}\nschedule = \"* * *\""), ok_mapping),
                "5 (minute hour",
            ),
            (
                source(&format!("{csv}\ntimezone = \"Mars/Base\""), ok_mapping),
                "source `hr`: timezone",
            ),
            (
                source("kind = \"ftp\"", ok_mapping),
                "source `hr`: unknown variant `ftp`",
            ),
            (
                source(&format!("{csv}\npth = \"x\""), ok_mapping),
                "source `hr`: unknown field `pth`",
            ),
            (
                source("path = \"r.csv\"", ok_mapping),
                "source `hr`: missing key `kind`",
            ),
            (
                source(&format!("{csv}\nmax_removals = \"150%\""), ok_mapping),
                "source `hr`: expected a count",
            ),
            (
                source(
                    "kind = \"csv\"\npath = \"a\"\nurl = \"https://x\"",
                    ok_mapping,
                ),
                "source `hr`: give exactly one of `path` or `url`",
            ),
            (
                source("kind = \"csv\"\nurl = \"ftp://x\"", ok_mapping),
                "source `hr`: url",
            ),
            (
                source(csv, "external_id = \"\""),
                "source `hr`: mapping.external_id",
            ),
            (
                source(csv, "member_email = \"E\""),
                "source `hr`: missing field `external_id`",
            ),
            (
                source(
                    &format!("{csv}\ngroups = {{ \"Finance\" = \"Finance\" }}"),
                    ok_mapping,
                ),
                "source `hr`: groups: needs `mapping.groups`",
            ),
            (
                source(
                    &format!("{csv}\ngroups = {{ \"Sales, EMEA\" = \"Sales\" }}"),
                    "external_id = \"ID\"\ngroups = \"Dept\"",
                ),
                "source `hr`: groups: `Sales, EMEA` can never match",
            ),
            (
                source(
                    &format!("{csv}\ngroups = {{ \"Sales\" = \"A\", \"SALES\" = \"B\" }}"),
                    "external_id = \"ID\"\ngroups = \"Dept\"",
                ),
                "appears twice",
            ),
        ];
        for (text, want) in cases {
            let err = Config::parse(&text, "r.toml").unwrap_err().to_string();
            assert!(err.starts_with("r.toml:"), "{err}");
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
        let two = format!("{}{}", source(csv, ok_mapping), source(csv, ok_mapping));
        let err = Config::parse(&two, "r.toml").unwrap_err().to_string();
        assert!(err.contains("two sources have this name"), "{err}");
        // Two sources of one org may not keep the same group.
        let ldap = |name: &str, group: &str| {
            format!(
                "[[sources]]\nname = \"{name}\"\norg = \"acme\"\nkind = \"ldap\"\n\
                 url = \"ldaps://dc\"\nbind_dn = \"cn=s\"\nbind_password = \"env:P\"\n\
                 base_dn = \"dc=x\"\ngroups = {{ \"cn=g,dc=x\" = \"{group}\" }}\n\
                 [sources.mapping]\nexternal_id = \"objectGUID\"\n"
            )
        };
        let both = format!("{}{}", ldap("a", "Staff"), ldap("b", "staff"));
        let err = Config::parse(&both, "r.toml").unwrap_err().to_string();
        assert!(
            err.contains(
                "source `b`: groups: group `staff` of org `acme` is already kept by source `a`"
            ),
            "{err}"
        );
        Config::parse(
            &format!("{}{}", ldap("a", "Staff"), ldap("b", "Faculty")),
            "r.toml",
        )
        .unwrap();
        let err = Config::parse("[sync]\nlease_secs = 0\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lease_secs"), "{err}");
    }

    #[test]
    fn max_removals_is_a_count_or_a_percentage_rounded_up() {
        assert_eq!(MaxRemovals::Count(3).limit(1000), 3);
        assert_eq!(MaxRemovals::Percent(10).limit(1000), 100);
        assert_eq!(MaxRemovals::Percent(10).limit(5), 1);
        assert_eq!(MaxRemovals::Percent(0).limit(5), 0);
    }

    #[test]
    fn every_shipped_config_file_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 1, "no config files found in {}", dir.display());
    }
}
