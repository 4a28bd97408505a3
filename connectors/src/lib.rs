//! rosterd connectors: readers of outside systems (Workday, Microsoft Graph, LDAP, HTTP JSON,
//! CSV) that turn what those systems say into a stream of normalized [`Record`]s.
//!
//! This crate must never depend on the store (sqlx) or the HTTP server (axum): a connector only
//! reads the outside world; the sync engine in the daemon decides what to do with it.
//!
//! A connector is one module plus one line in [`SourceKind`]: its settings struct and a
//! [`Source`] implementation. Every source reads through the same [`Mapping`] and reports a
//! [`Snapshot`] that is complete only when it read everything.

pub mod csv_roster;
pub mod csv_source;
pub mod graph;
pub mod http;
pub mod http_json;
pub mod ldap;
pub mod mapping;
pub mod record;
pub mod secret;
pub mod source;
pub mod workday;

pub use mapping::{FieldSpec, Mapping, MappingError, Transform};
pub use record::{Record, RecordError};
pub use source::{Context, Coverage, FetchError, Finish, Groups, Row, Snapshot, Source};

use serde::Deserialize;

/// The distinct rosterd group names of a `groups` map, sorted.
fn names(map: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = map.values().cloned().collect();
    names.sort();
    names.dedup();
    names
}

/// The kind-specific settings of a source: the only registry of connectors.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceKind {
    /// A CSV roster file or URL.
    Csv(csv_source::CsvConfig),
    /// A REST roster answering JSON (LMS platforms; a Moodle preset).
    HttpJson(Box<http_json::HttpJsonConfig>),
    /// Workday: the REST `workers` API or a RaaS custom report.
    Workday(Box<workday::WorkdayConfig>),
    /// Microsoft Entra ID through Microsoft Graph (delta queries).
    Graph(Box<graph::GraphConfig>),
    /// Active Directory or OpenLDAP over LDAP (paged search).
    Ldap(Box<ldap::LdapConfig>),
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Csv(_) => "csv",
            SourceKind::HttpJson(_) => "http_json",
            SourceKind::Workday(_) => "workday",
            SourceKind::Graph(_) => "graph",
            SourceKind::Ldap(_) => "ldap",
        }
    }

    /// Checks the kind's settings (with the source's mapping); the message names the key.
    pub fn check(&self, mapping: &Mapping) -> Result<(), String> {
        match self {
            SourceKind::Csv(c) => c.check(),
            SourceKind::HttpJson(c) => c.check(),
            SourceKind::Workday(c) => c.check(),
            SourceKind::Graph(c) => c.check(mapping),
            SourceKind::Ldap(c) => c.check(),
        }?;
        if let Some(values) = self.group_values() {
            if !values.is_empty() && mapping.groups.is_none() {
                return Err(
                    "groups: needs `mapping.groups`, the field naming each person's \
                     groups (values separated by `;` or `,`)"
                        .into(),
                );
            }
            // Records split the field on `;` and `,` and trim each part, and values match
            // ignoring case: a key that could never match, or two that match alike, is a mistake.
            let mut seen = std::collections::HashSet::new();
            for (v, n) in values {
                if v.trim().is_empty() || n.trim().is_empty() {
                    return Err(format!(
                        "groups: `{v}` must be a value of the groups field mapped to a rosterd \
                         group name"
                    ));
                }
                if v.contains([';', ',']) || v.trim() != v {
                    return Err(format!(
                        "groups: `{v}` can never match: values are split on `;` and `,` and \
                         trimmed"
                    ));
                }
                if !seen.insert(v.to_lowercase()) {
                    return Err(format!(
                        "groups: `{v}` appears twice (values match ignoring case)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// For a source whose records name groups by the mapping's `groups` field: that field's
    /// values → rosterd group names (LDAP and Graph records already carry rosterd names).
    pub fn group_values(&self) -> Option<&std::collections::BTreeMap<String, String>> {
        match self {
            SourceKind::Csv(c) => Some(&c.groups),
            SourceKind::HttpJson(c) => Some(&c.groups),
            SourceKind::Workday(c) => Some(&c.groups),
            SourceKind::Graph(_) | SourceKind::Ldap(_) => None,
        }
    }

    /// For a source that reads only changes after its first run: how often a full read comes
    /// round anyway (the engine then opens it without a checkpoint).
    pub fn full_every(&self) -> Option<std::time::Duration> {
        match self {
            SourceKind::Graph(c) => c.full_every(),
            _ => None,
        }
    }

    /// Whether the engine hands the source its last applied checkpoint on every run (not only
    /// between full reads): a CSV URL's validators, so an unchanged file answers 304.
    pub fn reads_validators(&self) -> bool {
        matches!(self, SourceKind::Csv(c) if c.url.is_some())
    }

    /// The rosterd groups this source keeps (every kind's `groups`): after a run is applied,
    /// each holds the members the source puts in it.
    pub fn managed_groups(&self) -> Vec<String> {
        match self {
            SourceKind::Ldap(c) => names(&c.groups),
            SourceKind::Graph(c) => names(&c.groups),
            SourceKind::Csv(c) => names(&c.groups),
            SourceKind::HttpJson(c) => names(&c.groups),
            SourceKind::Workday(c) => names(&c.groups),
        }
    }

    /// Opens a snapshot of the source through `mapping`. `checkpoint` is where the last
    /// applied run of a change-reading source left off (`None`: read everyone). The whole read,
    /// opening included, must end within `ctx.max_fetch_time`.
    pub async fn open(
        &self,
        mapping: &Mapping,
        ctx: &Context,
        checkpoint: Option<&str>,
    ) -> Result<Snapshot, FetchError> {
        let started = tokio::time::Instant::now();
        let limit = ctx.max_fetch_time;
        let mut snapshot = tokio::time::timeout(limit, self.open_now(mapping, ctx, checkpoint))
            .await
            .map_err(|_| {
                FetchError::transient(format!(
                    "the read took longer than sync.max_fetch_secs ({} s); stopped",
                    limit.as_secs()
                ))
            })??;
        snapshot.limit_time(started, limit);
        Ok(snapshot)
    }

    async fn open_now(
        &self,
        mapping: &Mapping,
        ctx: &Context,
        checkpoint: Option<&str>,
    ) -> Result<Snapshot, FetchError> {
        match self {
            SourceKind::Csv(c) => {
                csv_source::CsvSource {
                    config: c.clone(),
                    mapping: mapping.clone(),
                    checkpoint: checkpoint.map(str::to_owned),
                }
                .open(ctx)
                .await
            }
            SourceKind::HttpJson(c) => {
                http_json::HttpJsonSource {
                    config: (**c).clone(),
                    mapping: mapping.clone(),
                }
                .open(ctx)
                .await
            }
            SourceKind::Workday(c) => {
                workday::WorkdaySource {
                    config: (**c).clone(),
                    mapping: mapping.clone(),
                }
                .open(ctx)
                .await
            }
            SourceKind::Graph(c) => {
                graph::GraphSource {
                    config: (**c).clone(),
                    mapping: mapping.clone(),
                    checkpoint: checkpoint.map(str::to_owned),
                }
                .open(ctx)
                .await
            }
            SourceKind::Ldap(c) => {
                ldap::LdapSource {
                    config: (**c).clone(),
                    mapping: mapping.clone(),
                }
                .open(ctx)
                .await
            }
        }
    }
}
