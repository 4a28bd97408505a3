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
    /// The SCIM service provider.
    #[serde(default)]
    pub scim: ScimConfig,
    /// Prometheus metrics at `/metrics`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The background job worker (dropping an org's members, export jobs).
    #[serde(default)]
    pub jobs: JobsConfig,
    /// How webhook deliveries are sent, retried and given up.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
}

/// The background job worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// How often the worker looks for queued jobs (and expired exports), in milliseconds.
    #[serde(default = "default_jobs_poll_ms")]
    pub poll_interval_ms: u64,
    /// Seconds a running job's lease lasts; it is renewed with every batch. A job whose lease
    /// ran out died with its process and is marked failed.
    #[serde(default = "default_jobs_lease_secs")]
    pub lease_secs: u64,
    /// Seconds an export job's file may be downloaded before it expires (410) and is purged.
    #[serde(default = "default_export_expiry_secs")]
    pub export_expiry_secs: u64,
}

const fn default_jobs_poll_ms() -> u64 {
    1000
}
const fn default_jobs_lease_secs() -> u64 {
    60
}
const fn default_export_expiry_secs() -> u64 {
    24 * 3600
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: default_jobs_poll_ms(),
            lease_secs: default_jobs_lease_secs(),
            export_expiry_secs: default_export_expiry_secs(),
        }
    }
}

/// Webhook delivery: every event a subscription wants is POSTed to its URL, signed, and
/// retried with exponential backoff until it is accepted or `max_attempts` is reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Whether this replica delivers webhooks (every replica may; each delivery is claimed by
    /// one).
    #[serde(default = "default_true")]
    pub deliver: bool,
    /// How often the delivery worker looks for due deliveries, in milliseconds (default 1000).
    #[serde(default = "default_webhook_poll_ms")]
    pub poll_interval_ms: u64,
    /// Time one attempt may take — connecting, sending and reading the answer — in
    /// milliseconds (default 10000, at most 60000).
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts per delivery before it is given up (default 8).
    #[serde(default = "default_webhook_max_attempts")]
    pub max_attempts: u32,
    /// The wait before the first retry, in seconds; it doubles with each further attempt, plus
    /// up to a quarter of it at random (default 30).
    #[serde(default = "default_webhook_retry_base_secs")]
    pub retry_base_secs: u64,
    /// The longest wait between two attempts, in seconds (default 21600: six hours).
    #[serde(default = "default_webhook_max_retry_secs")]
    pub max_retry_secs: u64,
    /// A subscription is disabled after this many failed attempts in a row, across its
    /// deliveries (default 20); an admin enables it again with `PATCH {"enabled": true}`.
    #[serde(default = "default_webhook_disable_after")]
    pub disable_after_failures: u32,
    /// Days a finished delivery (delivered or given up) stays in the delivery log (default 30).
    #[serde(default = "default_webhook_keep_log_days")]
    pub keep_log_days: u32,
}

const fn default_webhook_poll_ms() -> u64 {
    1000
}
const fn default_webhook_timeout_ms() -> u64 {
    10_000
}
const fn default_webhook_max_attempts() -> u32 {
    8
}
const fn default_webhook_retry_base_secs() -> u64 {
    30
}
const fn default_webhook_max_retry_secs() -> u64 {
    21_600
}
const fn default_webhook_disable_after() -> u32 {
    20
}
const fn default_webhook_keep_log_days() -> u32 {
    30
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            deliver: true,
            poll_interval_ms: default_webhook_poll_ms(),
            timeout_ms: default_webhook_timeout_ms(),
            max_attempts: default_webhook_max_attempts(),
            retry_base_secs: default_webhook_retry_base_secs(),
            max_retry_secs: default_webhook_max_retry_secs(),
            disable_after_failures: default_webhook_disable_after(),
            keep_log_days: default_webhook_keep_log_days(),
        }
    }
}

/// Where `/metrics` is served. With neither key set, it is not served.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A bearer token (`env:NAME` or `file:PATH`) that may read `/metrics` on the main
    /// listener (the operator token may too).
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// A second address serving only `/metrics`, without a token: bind it where only the
    /// scraper reaches (loopback, a private network).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

/// The SCIM service provider's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimConfig {
    /// Most users (or groups) one SCIM list or search may examine in memory, for the part of a
    /// filter or a `sortBy` that SQL cannot answer on its own (default 10000). A request that
    /// would examine more answers `400 tooMany`; a filter on `userName`, `externalId` or `id`
    /// narrows it.
    #[serde(default = "default_scim_filter_budget")]
    pub filter_budget: usize,
}

const fn default_scim_filter_budget() -> usize {
    10_000
}

impl Default for ScimConfig {
    fn default() -> Self {
        ScimConfig {
            filter_budget: default_scim_filter_budget(),
        }
    }
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
    /// Most time one run may spend reading its source, in seconds (default 21600, 6 hours); a
    /// slower read (a server that drips bytes, say) fails the run.
    #[serde(default = "default_max_fetch_secs")]
    pub max_fetch_secs: u64,
    /// Most bytes of one response from a source (a page, a RaaS report, a token answer;
    /// default 268435456, 256 MiB); a larger one fails the run.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Most bytes of one CSV record (default 1048576, 1 MiB); a longer one fails the run.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u64,
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
    /// The address people and identity providers reach rosterd at (`--public-url` overrides
    /// it): the start of invitation links and of SCIM `Location` / `meta.location`. Absent or
    /// empty: `http://` and the address actually bound (so `--listen` moves it too).
    #[serde(default)]
    pub public_url: String,
    /// Most connections served at once; beyond it a new connection evicts the oldest one that
    /// is between requests (idle or still sending its request head), or is closed at once, so
    /// slow clients cannot exhaust file descriptors nor keep `/healthz` from answering.
    #[serde(default = "default_max_connections_served")]
    pub max_connections: usize,
    /// A client must send a whole request head within this many seconds (also when a kept-alive
    /// connection sits idle), or the connection is closed.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Load balancers and reverse proxies (IP addresses or CIDR ranges such as `10.0.0.0/8`)
    /// whose `X-Forwarded-For` names the client for the failed-authentication limit: the
    /// right-most address not itself trusted is used. Empty (default): the TCP peer.
    #[serde(default)]
    pub trusted_proxies: Vec<TrustedProxy>,
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

/// An address or range in `server.trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(pub ipnet::IpNet);

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        if let Ok(net) = text.parse::<ipnet::IpNet>() {
            return Ok(TrustedProxy(net.trunc()));
        }
        match text.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(TrustedProxy(ipnet::IpNet::from(ip))),
            Err(_) => Err(serde::de::Error::custom(format!(
                "`{}` is not an IP address or CIDR range (such as 10.0.0.0/8)",
                text.escape_debug()
            ))),
        }
    }
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
    /// Plain SMTP: only to a relay on this host (`host` a loopback address or `localhost`).
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
const fn default_max_fetch_secs() -> u64 {
    rosterd_connectors::source::DEFAULT_MAX_FETCH_TIME.as_secs()
}
const fn default_max_response_bytes() -> u64 {
    rosterd_connectors::source::DEFAULT_MAX_RESPONSE_BYTES
}
const fn default_max_record_bytes() -> u64 {
    rosterd_connectors::source::DEFAULT_MAX_RECORD_BYTES
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
const fn default_max_connections_served() -> usize {
    1024
}
const fn default_header_read_timeout_secs() -> u64 {
    10
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
            public_url: String::new(),
            max_connections: default_max_connections_served(),
            header_read_timeout_secs: default_header_read_timeout_secs(),
            trusted_proxies: Vec::new(),
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
            max_fetch_secs: default_max_fetch_secs(),
            max_response_bytes: default_max_response_bytes(),
            max_record_bytes: default_max_record_bytes(),
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

/// The longest invitation expiry or reminder interval, in days (ten years).
pub const MAX_INVITATION_DAYS: i64 = 3650;

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
        let config: Config = parse_toml(text).map_err(|message| ConfigError::Invalid {
            path: origin.to_owned(),
            message,
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
        // Plain text only to this host, as for every source URL.
        if let Some(smtp) = &self.mail.smtp
            && smtp.tls == SmtpTls::None
            && !rosterd_connectors::http::is_loopback_host(&smtp.host)
        {
            return Err(format!(
                "mail.smtp.tls: `none` sends mail and the password in clear; it is allowed only \
                 for a relay on this host (127.0.0.1, ::1 or localhost), not `{}`; use \
                 starttls or tls",
                smtp.host
            ));
        }
        if let Err(e) = Email::parse_mailbox(&self.mail.from) {
            return Err(format!("mail.from: {e}"));
        }
        if !(self.server.public_url.is_empty()
            || self.server.public_url.starts_with("http://")
            || self.server.public_url.starts_with("https://"))
        {
            return Err("server.public_url must start with http:// or https://".into());
        }
        if !(1..=1_000_000).contains(&self.server.max_connections) {
            return Err("server.max_connections must be 1..=1000000".into());
        }
        if !(1..=3600).contains(&self.server.header_read_timeout_secs) {
            return Err("server.header_read_timeout_secs must be 1..=3600".into());
        }
        if self.server.auth_failures_per_minute == 0 {
            return Err("server.auth_failures_per_minute must be at least 1".into());
        }
        if self.server.max_body_bytes < 1024 {
            return Err("server.max_body_bytes must be at least 1024".into());
        }
        let inv = &self.invitations;
        if !(1..=MAX_INVITATION_DAYS).contains(&inv.reminder_interval_days)
            || !(1..=MAX_INVITATION_DAYS).contains(&inv.expiry_days)
            || !(0..=100).contains(&inv.reminders)
        {
            return Err(format!(
                "invitations: reminder_interval_days and expiry_days must be 1..={MAX_INVITATION_DAYS}, reminders 0..=100"
            ));
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
            || !(1..=604_800).contains(&s.max_fetch_secs)
            || s.max_response_bytes < 1024
            || s.max_record_bytes < 1024
        {
            return Err(
                "sync: lease_secs must be 2..=3600, apply_batch 1..=10000, request_timeout_secs \
                 1..=3600, fetch_retries at most 20, retry_base_ms at most 60000, \
                 failure_backoff_secs 1..=604800, max_failure_backoff_secs between it and 604800, \
                 keep_run_details_days 1..=3650, max_fetch_secs 1..=604800, max_response_bytes \
                 and max_record_bytes at least 1024"
                    .into(),
            );
        }
        let w = &self.webhooks;
        if !(100..=60_000).contains(&w.timeout_ms)
            || !(1..=100).contains(&w.max_attempts)
            || !(1..=86_400).contains(&w.retry_base_secs)
            || !(w.retry_base_secs..=604_800).contains(&w.max_retry_secs)
            || !(1..=10_000).contains(&w.disable_after_failures)
            || !(1..=3650).contains(&w.keep_log_days)
        {
            return Err(
                "webhooks: timeout_ms must be 100..=60000, max_attempts 1..=100, retry_base_secs \
                 1..=86400, max_retry_secs between it and 604800, disable_after_failures \
                 1..=10000, keep_log_days 1..=3650"
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

    /// The public URL when set, else `http://` and `bound` (what `App::build` fills in).
    pub fn public_url_or(&self, bound: SocketAddr) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.server.public_url.clone()
        }
    }

    /// The link prefix invitation tokens are appended to.
    pub fn accept_url(&self) -> String {
        match &self.invitations.accept_url {
            Some(u) => u.clone(),
            None => format!("{}/invite/", self.server.public_url.trim_end_matches('/')),
        }
    }
}

/// Deserializes the config text. A failure names the line, column and key path but never
/// quotes the text of the line: it may hold a secret written where it does not belong.
fn parse_toml(text: &str) -> Result<Config, String> {
    let position = |span: Option<std::ops::Range<usize>>| match span {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
            format!("line {line}, column {column}: ")
        }
        None => String::new(),
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| format!("{}{}", position(e.span()), redact(e.message())))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let at = if path.is_empty() || path == "." {
            String::new()
        } else {
            format!("key `{path}`: ")
        };
        format!("{}{at}{}", position(inner.span()), redact(inner.message()))
    })
}

/// A deserializer's message without the value it quotes (`invalid type: string "…"`).
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message.trim_end();
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i]);
        out.push_str("a string");
        let after = &rest[i + "string \"".len()..];
        rest = match after.find("\", ") {
            Some(end) => &after[end + 1..],
            None => match after.rfind('"') {
                Some(end) => &after[end + 1..],
                None => "",
            },
        };
    }
    out.push_str(rest);
    out
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
    fn a_parse_error_names_line_column_and_key_but_never_quotes_the_line() {
        let secret = "s3cr3t-hunter2-value";
        // A syntax error on the line holding a secret.
        let text =
            format!("[server]\nlisten = \"127.0.0.1:1\"\n[auth]\noperator_token = {secret}\n");
        let err = Config::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.starts_with("x.toml: line 4, column "), "{err}");
        assert!(!err.contains(secret), "{err}");
        // A value of the wrong type, which serde would quote: the key path instead.
        let text =
            format!("[mail]\nsink = \"smtp\"\n[mail.smtp]\nhost = \"h\"\nport = \"{secret}\"\n");
        let err = Config::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("line 5, column 8"), "{err}");
        assert!(err.contains("key `mail.smtp.port`"), "{err}");
        assert!(
            err.contains("invalid type: a string, expected u16"),
            "{err}"
        );
        assert!(!err.contains(secret), "{err}");
        // A secret written as a literal where a reference belongs.
        let text = format!("[auth]\noperator_token = \"{secret}\"\n");
        let err = Config::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("key `auth.operator_token`"), "{err}");
        assert!(!err.contains(secret), "{err}");
        // An unknown key is named.
        let err = Config::parse("[server]\nlistn = 3\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2, column 1") && err.contains("listn"),
            "{err}"
        );
    }

    #[test]
    fn invitation_days_are_bounded_at_load() {
        for line in [
            "expiry_days = 100000000000000",
            "reminder_interval_days = 9223372036854775807",
            "expiry_days = 3651",
            "expiry_days = 0",
            "reminders = 1000000",
        ] {
            let err = Config::parse(&format!("[invitations]\n{line}\n"), "x.toml")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("invitations:") && err.contains("1..=3650"),
                "{line}: {err}"
            );
        }
        let c = Config::parse(
            "[invitations]\nexpiry_days = 3650\nreminder_interval_days = 3650\n",
            "x.toml",
        )
        .unwrap();
        let s = crate::roster::InviteSettings::from_config(&c);
        assert_eq!(s.expiry.num_days(), 3650);
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let c = Config::parse(
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"::1\"]\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.server.trusted_proxies.len(), 3);
        let err = Config::parse("[server]\ntrusted_proxies = [\"lb.example\"]\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `server.trusted_proxies[0]`"), "{err}");
        assert!(err.contains("not an IP address or CIDR range"), "{err}");
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

    /// One rule for every address rosterd talks to in clear: `http://` (and SMTP without TLS)
    /// only to this host, judged on the parsed host, so user info cannot fake it.
    #[test]
    fn plain_text_goes_only_to_this_host() {
        let source = |kind: &str, mapping: &str| {
            format!(
                "[[sources]]\nname = \"s\"\norg = \"acme\"\n{kind}\n[sources.mapping]\n{mapping}\n"
            )
        };
        let id = "external_id = \"id\"";
        let json = |url: &str| source(&format!("kind = \"http_json\"\nurl = \"{url}\""), id);
        let json_token = |token_url: &str| {
            source(
                &format!(
                    "kind = \"http_json\"\nurl = \"https://lms.example/u\"\n\
                     auth = {{ type = \"oauth2_client_credentials\", token_url = \"{token_url}\", \
                     client_id = \"c\", client_secret = \"env:S\" }}"
                ),
                id,
            )
        };
        let csv = |url: &str| source(&format!("kind = \"csv\"\nurl = \"{url}\""), id);
        let workday = |extra: &str| {
            source(
                &format!(
                    "kind = \"workday\"\ntenant = \"acme\"\n\
                     auth = {{ type = \"basic\", username = \"u\", password = \"env:P\" }}\n{extra}"
                ),
                id,
            )
        };
        let workday_token = |token_url: &str| {
            source(
                &format!(
                    "kind = \"workday\"\ntenant = \"acme\"\nhost = \"wd.example\"\n\
                     auth = {{ type = \"oauth2_refresh_token\", client_id = \"c\", \
                     client_secret = \"env:S\", refresh_token = \"env:R\", token_url = \"{token_url}\" }}"
                ),
                id,
            )
        };
        let graph = |key: &str, url: &str| {
            source(
                &format!(
                    "kind = \"graph\"\ntenant = \"t\"\nclient_id = \"c\"\n\
                     client_secret = \"env:S\"\n{key} = \"{url}\""
                ),
                id,
            )
        };
        let smtp = |host: &str| {
            format!(
                "[mail]\nsink = \"smtp\"\n[mail.smtp]\nhost = \"{host}\"\nport = 25\ntls = \"none\"\n"
            )
        };
        let ldap = |url: &str| {
            source(
                &format!(
                    "kind = \"ldap\"\nurl = \"{url}\"\ntls = \"none\"\nbind_dn = \"cn=s\"\n\
                     bind_password = \"env:P\"\nbase_dn = \"dc=x\""
                ),
                "external_id = \"entryUUID\"",
            )
        };
        let evil = "http://localhost:1@evil.example/";
        let refused = [
            (
                json("http://lms.example/u"),
                "url: `http://lms.example/u` is plain http",
            ),
            (json(evil), "url: `http://evil.example/` is plain http"),
            (json("http://127.0.0.1@evil.example/u"), "url:"),
            (json_token("http://lms.example/token"), "auth.token_url:"),
            (json_token(evil), "auth.token_url:"),
            (
                csv("http://hr.example/r.csv"),
                "url: `http://hr.example/r.csv`",
            ),
            (csv(evil), "url:"),
            (
                workday("host = \"localhost:1@evil.example\"\ninsecure_http = true"),
                "host: the host name alone",
            ),
            (
                workday("host = \"wd.example\"\ninsecure_http = true"),
                "insecure_http",
            ),
            (
                workday(
                    "host = \"wd.example\"\napi_base_url = \"http://wd.example/ccx/api/v1/acme\"",
                ),
                "api_base_url:",
            ),
            (
                workday(&format!("host = \"wd.example\"\napi_base_url = \"{evil}\"")),
                "api_base_url:",
            ),
            (workday_token("http://wd.example/token"), "auth.token_url:"),
            (workday_token(evil), "auth.token_url:"),
            (graph("graph_url", "http://graph.example"), "graph_url:"),
            (graph("login_url", evil), "login_url:"),
            (
                ldap("ldap://localhost:1@evil.example"),
                "tls: `none` sends the password",
            ),
            (ldap("ldap://dc.example"), "tls: `none` sends the password"),
            (smtp("mail.example"), "mail.smtp.tls: `none`"),
            (smtp("localhost:1@evil.example"), "mail.smtp.tls: `none`"),
            (smtp("10.0.0.1"), "mail.smtp.tls: `none`"),
        ];
        for (text, want) in &refused {
            let err = Config::parse(text, "r.toml").unwrap_err().to_string();
            assert!(err.contains(want), "{want:?} not in {err:?}");
            assert!(!err.contains("evil.example/ccx"), "{err}");
        }
        let allowed = [
            json("http://127.0.0.1:8080/u"),
            json("http://[::1]:8080/u"),
            json("https://lms.example/u"),
            json_token("https://lms.example/token"),
            csv("http://localhost:9/r.csv"),
            workday("host = \"127.0.0.1:9\"\ninsecure_http = true"),
            workday("host = \"wd.example\""),
            workday_token("https://wd.example/token"),
            graph("graph_url", "http://127.0.0.1:9"),
            ldap("ldap://127.0.0.1:3890"),
            ldap("ldap://[::1]:3890"),
            smtp("127.0.0.1"),
            smtp("localhost"),
            smtp("::1"),
        ];
        for text in &allowed {
            Config::parse(text, "r.toml").unwrap_or_else(|e| panic!("{e}"));
        }
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
