//! Microsoft Entra ID through Microsoft Graph: the tenant's users (or one group's members),
//! read with an app registration's client credentials.
//!
//! With delta queries (the default), the first run reads `/users/delta` to its end: everyone,
//! plus the `@odata.deltaLink` the engine keeps once the run is applied. Later runs GET that
//! link and see only what changed: a user whose `accountEnabled` turned false becomes inactive,
//! a `@removed` entry (soft-deleted or gone) becomes inactive, and a change that does not say
//! whether the account is enabled leaves the person's access alone. Every
//! `full_sync_every_hours` (and whenever Graph answers that the link expired: 410 Gone,
//! `syncStateNotFound`) the run reads everyone again, which heals any drift: someone absent
//! from a full read is gone.
//!
//! Without delta queries (or for `group_id`, whose transitive members have no delta query),
//! every run lists everyone with `$select` and follows `@odata.nextLink`.
//!
//! ```toml
//! [[sources]]
//! name = "entra"
//! org = "acme"
//! kind = "graph"
//! tenant = "contoso.onmicrosoft.com"
//! client_id = "7f3c…"
//! client_secret = "env:GRAPH_CLIENT_SECRET"
//! [sources.mapping]
//! external_id = "id"
//! member_email = "mail"
//! active = "accountEnabled"
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use crate::http_json::{ClientAuth, OAuth2Client, Requester, Resolved, at, text};
use crate::mapping::Mapping;
use crate::record::Record;
use crate::secret::SecretRef;
use crate::source::{Context, Coverage, FetchError, Finish, Groups, Row, Sender, Snapshot, Source};

/// An Entra ID tenant and what to read from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// The tenant: its id (a GUID) or a domain such as `contoso.onmicrosoft.com`.
    pub tenant: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The app's client secret, as an `env:`/`file:` reference.
    pub client_secret: SecretRef,
    /// Only the (transitive) members of this group, by object id; absent: every user.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Read only changes after the first run (default: on, unless `group_id` is set).
    #[serde(default)]
    pub delta: Option<bool>,
    /// With delta queries, a full read this often heals drift (default 24; at most 144, since
    /// Graph's delta links last about 7 days).
    #[serde(default = "default_full_sync_every_hours")]
    pub full_sync_every_hours: u32,
    /// More user properties to `$select` (the mapping's fields are selected anyway).
    #[serde(default)]
    pub select: Vec<String>,
    /// Graph's address (another cloud: `https://graph.microsoft.us`; a local test server).
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// The identity platform's address (`https://login.microsoftonline.us` for US Gov).
    #[serde(default = "default_login_url")]
    pub login_url: String,
    /// At most this many requests per second (absent: no limit beyond Graph's own 429s).
    #[serde(default)]
    pub max_requests_per_second: Option<f64>,
    /// Most pages one run reads; more fails the run rather than loop forever.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// Entra group object id → rosterd group name: every run reads each group's (transitive)
    /// members, and the rosterd group holds exactly those this source brought.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
}

const fn default_full_sync_every_hours() -> u32 {
    24
}
fn default_graph_url() -> String {
    "https://graph.microsoft.com".into()
}
fn default_login_url() -> String {
    "https://login.microsoftonline.com".into()
}
const fn default_max_pages() -> usize {
    100_000
}

impl GraphConfig {
    /// Whether runs read only changes after the first.
    pub fn uses_delta(&self) -> bool {
        self.delta.unwrap_or(self.group_id.is_none())
    }

    /// How often a full read comes round, when runs read changes.
    pub fn full_every(&self) -> Option<std::time::Duration> {
        self.uses_delta()
            .then(|| std::time::Duration::from_secs(u64::from(self.full_sync_every_hours) * 3600))
    }

    /// Checks the settings with the source's mapping; the message names the key.
    pub fn check(&self, mapping: &Mapping) -> Result<(), String> {
        if self.tenant.trim().is_empty() || self.tenant.contains(['/', '?', '#']) {
            return Err("tenant: the tenant id or domain alone".into());
        }
        if self.client_id.trim().is_empty() {
            return Err("client_id: the app registration's application id".into());
        }
        crate::http::check_url("graph_url", &self.graph_url)?;
        crate::http::check_url("login_url", &self.login_url)?;
        if !(1..=144).contains(&self.full_sync_every_hours) {
            return Err(
                "full_sync_every_hours: between 1 and 144 (delta links last 7 days)".into(),
            );
        }
        if let Some(g) = &self.group_id
            && !object_id(g)
        {
            return Err("group_id: the group's object id".into());
        }
        if let Some((id, _)) = self
            .groups
            .iter()
            .find(|(id, name)| !object_id(id) || name.trim().is_empty())
        {
            return Err(format!(
                "groups: `{id}` must be a group's object id mapped to a rosterd group name"
            ));
        }
        if self.group_id.is_some() && self.delta == Some(true) {
            return Err(
                "delta: Graph has no delta query for a group's transitive members; leave it out"
                    .into(),
            );
        }
        crate::http_json::check_rate(self.max_requests_per_second)?;
        if self.max_pages == 0 {
            return Err("max_pages: must be at least 1".into());
        }
        // A removed user comes back from a delta query as its `id` alone.
        if self.uses_delta() && mapping.external_id.field() != Some("id") {
            return Err(
                "mapping.external_id: with delta queries it must read `id` (removed users \
                 come back as their id alone); or set `delta = false`"
                    .into(),
            );
        }
        Ok(())
    }

    fn base(&self) -> String {
        self.graph_url.trim_end_matches('/').to_owned()
    }

    /// Whether a link Graph gave (next page, delta) points into the configured Graph.
    fn owns(&self, url: &Url) -> bool {
        let Ok(base) = Url::parse(&self.graph_url) else {
            return false;
        };
        let prefix = base.path().trim_end_matches('/');
        url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
            && url
                .path()
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// `$select`: `id`, the mapping's fields (their first path segment) and `select`.
    fn select(&self, mapping: &Mapping) -> String {
        let mut fields = vec!["id".to_owned()];
        let extra = self.select.iter().map(String::as_str);
        for f in mapping.fields().into_iter().chain(extra) {
            let top = f.split('.').next().unwrap_or(f).to_owned();
            if !fields.contains(&top) {
                fields.push(top);
            }
        }
        fields.join(",")
    }

    /// The first page of a group's (transitive) user members.
    fn members_url(&self, group: &str, select: &str) -> Result<Url, String> {
        let mut url = Url::parse(&format!(
            "{}/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user",
            self.base()
        ))
        .map_err(|e| format!("graph_url: {e}"))?;
        url.query_pairs_mut()
            .append_pair("$select", select)
            .append_pair("$top", "999");
        Ok(url)
    }

    /// The first page of a full read.
    fn full_url(&self, mapping: &Mapping) -> Result<Url, String> {
        if let Some(g) = &self.group_id {
            return self.members_url(g, &self.select(mapping));
        }
        let path = match self.uses_delta() {
            true => "/v1.0/users/delta",
            false => "/v1.0/users",
        };
        let mut url =
            Url::parse(&format!("{}{path}", self.base())).map_err(|e| format!("graph_url: {e}"))?;
        url.query_pairs_mut()
            .append_pair("$select", &self.select(mapping));
        if !self.uses_delta() {
            // Delta queries page by themselves; `$top` is not allowed there.
            url.query_pairs_mut().append_pair("$top", "999");
        }
        Ok(url)
    }
}

/// A Graph source; `checkpoint` is the deltaLink of the last applied run, when the engine
/// wants changes only.
pub struct GraphSource {
    pub config: GraphConfig,
    pub mapping: Mapping,
    pub checkpoint: Option<String>,
}

/// What a run leaves for the next: the deltaLink, and the tenant, app and `$select` it was made
/// with (a link is followed only for the same).
#[derive(Debug, serde::Deserialize)]
struct Checkpoint {
    select: String,
    delta_link: String,
    tenant: String,
    client_id: String,
}

/// Whether an error on a stored deltaLink means "start over with a full read".
fn delta_expired(e: &FetchError) -> bool {
    e.status == Some(410)
        || (matches!(e.status, Some(400 | 404))
            && ["syncStateNotFound", "syncStateInvalid", "resyncRequired"]
                .iter()
                .any(|c| e.message.contains(c)))
}

impl Source for GraphSource {
    async fn open(&self, ctx: &Context) -> Result<Snapshot, FetchError> {
        let c = &self.config;
        c.check(&self.mapping).map_err(FetchError::permanent)?;
        let secret = c
            .client_secret
            .resolve()
            .map_err(|e| FetchError::permanent(format!("client_secret: {e}")))?;
        let auth = Resolved::OAuth2(OAuth2Client::client_credentials(
            format!(
                "{}/{}/oauth2/v2.0/token",
                c.login_url.trim_end_matches('/'),
                c.tenant
            ),
            c.client_id.clone(),
            secret,
            // Client credentials take the resource's `.default` scope, nothing finer.
            vec![format!("{}/.default", c.base())],
            ClientAuth::Post,
        ));
        let full = c.full_url(&self.mapping).map_err(FetchError::permanent)?;
        let select = c.select(&self.mapping);
        // A stored link is followed only to the Graph this source is configured for, and only
        // for the same `$select` (a link keeps the query it started with).
        let stored = self
            .checkpoint
            .as_deref()
            .filter(|_| c.uses_delta())
            .and_then(|cp| serde_json::from_str::<Checkpoint>(cp).ok())
            .filter(|cp| {
                cp.select == select && cp.tenant == c.tenant && cp.client_id == c.client_id
            })
            .and_then(|cp| Url::parse(&cp.delta_link).ok())
            .filter(|u| c.owns(u));
        // One requester for the whole run: its rate limit spans every request.
        let mut requester = Requester::new(Some(auth), c.max_requests_per_second);
        // The first page decides what this run covers: changes since the stored link, or (no
        // link, or Graph says it expired) everyone.
        let (coverage, first_url, first) = {
            match stored {
                Some(link) => match get_page(&mut requester, ctx, &link).await {
                    Ok(page) => (Coverage::Changes, link, page),
                    Err(e) if delta_expired(&e) => {
                        tracing::warn!(error = %e, "the delta link expired; reading everyone");
                        let page = get_page(&mut requester, ctx, &full).await?;
                        (Coverage::Full, full, page)
                    }
                    Err(e) => return Err(e),
                },
                None => {
                    let page = get_page(&mut requester, ctx, &full).await?;
                    (Coverage::Full, full, page)
                }
            }
        };
        let (tx, snapshot) = Snapshot::channel(coverage);
        let ctx = ctx.clone();
        let mapping = self.mapping.clone();
        let config = c.clone();
        tokio::spawn(async move {
            let read = Read {
                config: &config,
                mapping: &mapping,
                coverage,
            };
            let read_all = async {
                let (rows, link) = read.pages(&mut requester, &ctx, first_url, first).await?;
                let mut warnings = Vec::new();
                let groups = read.groups(&mut requester, &ctx, &mut warnings).await?;
                let checkpoint = link.map(|delta_link| {
                    serde_json::json!({"select": select, "delta_link": delta_link,
                        "tenant": config.tenant, "client_id": config.client_id})
                    .to_string()
                });
                Ok::<_, FetchError>((
                    rows,
                    Finish {
                        checkpoint,
                        groups,
                        warnings,
                    },
                ))
            };
            let stopped = tx.closed();
            let read = tokio::select! {
                r = read_all => r,
                () = stopped => return, // the engine stopped reading (or the time ran out)
            };
            match read {
                Ok((rows, finish)) => send_all(tx, rows, finish).await,
                Err(e) => tx.fail(e).await,
            }
        });
        Ok(snapshot)
    }
}

async fn send_all(mut tx: Sender, rows: Vec<Option<Row>>, finish: Finish) {
    for row in rows.into_iter().flatten() {
        if !tx.row(row).await {
            return;
        }
    }
    tx.done_with(finish).await
}

/// The mapping's fields of one Graph object, as text (dot paths reach into objects).
fn fields_of<'m>(mapping: &'m Mapping, object: &Value) -> Vec<(&'m str, Option<String>)> {
    mapping
        .fields()
        .into_iter()
        .map(|f| (f, at(object, f).and_then(text)))
        .collect()
}

fn lookup<'v>(values: &'v [(&str, Option<String>)], field: &str) -> Option<&'v str> {
    values
        .iter()
        .find(|(k, _)| *k == field)
        .and_then(|(_, v)| v.as_deref())
}

/// A Graph object id: no path or query characters.
fn object_id(id: &str) -> bool {
    !id.trim().is_empty() && !id.contains(['/', '?', '#', '&', ' '])
}

/// GETs one page and parses it.
async fn get_page(
    requester: &mut Requester,
    ctx: &Context,
    url: &Url,
) -> Result<Value, FetchError> {
    // Links carry skip/delta tokens: name the path only.
    let what = format!("Graph {}", url.path());
    let resp = requester.get(ctx, url, &what).await?;
    let body = crate::http::read_body(resp, ctx.max_response_bytes, &what).await?;
    serde_json::from_slice(&body)
        .map_err(|e| FetchError::permanent(format!("{what}: not JSON: {e}")))
}

struct Read<'a> {
    config: &'a GraphConfig,
    mapping: &'a Mapping,
    coverage: Coverage,
}

impl Read<'_> {
    /// Reads every page from `first` on. Users are merged by id (a delta round may repeat one,
    /// each time with what changed), so rows go out only at the end of the round, in the order
    /// each id first appeared. Returns the rows and the new deltaLink.
    async fn pages(
        &self,
        requester: &mut Requester,
        ctx: &Context,
        first_url: Url,
        first: Value,
    ) -> Result<(Vec<Option<Row>>, Option<String>), FetchError> {
        let mut rows: Vec<Option<Row>> = Vec::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut url = first_url;
        let mut page = first;
        let mut entry = 0u64;
        for pages in 1.. {
            if pages > self.config.max_pages {
                return Err(FetchError::permanent(format!(
                    "more than max_pages ({}) pages; the directory was not read to the end",
                    self.config.max_pages
                )));
            }
            let Some(Value::Array(users)) = page.get("value") else {
                return Err(FetchError::permanent(format!(
                    "Graph {}: page {pages} has no `value` array",
                    url.path()
                )));
            };
            for user in users {
                entry += 1;
                self.take(entry, user, &mut rows, &mut by_id);
            }
            if let Some(next) = page.get("@odata.nextLink").and_then(Value::as_str) {
                url = self.link(next)?;
                page = get_page(requester, ctx, &url).await?;
                continue;
            }
            let delta = page
                .get("@odata.deltaLink")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if self.config.uses_delta() && delta.is_none() {
                return Err(FetchError::permanent(format!(
                    "Graph {}: the last page has neither @odata.nextLink nor @odata.deltaLink",
                    url.path()
                )));
            }
            if self.coverage == Coverage::Full {
                self.require_status(&mut rows);
            }
            return Ok((rows, delta));
        }
        unreachable!("the page loop ends by returning")
    }

    /// Each mapped group's (transitive) members, by the mapping's external id; `None` when the
    /// source maps no groups. A group Graph no longer knows (404) is left out, with a warning,
    /// so its rosterd group stays as it is.
    async fn groups(
        &self,
        requester: &mut Requester,
        ctx: &Context,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Groups>, FetchError> {
        if self.config.groups.is_empty() {
            return Ok(None);
        }
        let mut out: Groups = BTreeMap::new();
        let mut missing: HashSet<&str> = HashSet::new();
        let select = self.config.select(self.mapping);
        for (group, name) in &self.config.groups {
            let ids: &mut HashSet<String> = out.entry(name.clone()).or_default();
            let mut url = self
                .config
                .members_url(group, &select)
                .map_err(FetchError::permanent)?;
            for pages in 1.. {
                if pages > self.config.max_pages {
                    return Err(FetchError::permanent(format!(
                        "group {group}: more than max_pages ({}) pages",
                        self.config.max_pages
                    )));
                }
                let page = match get_page(requester, ctx, &url).await {
                    Ok(page) => page,
                    Err(e) if e.status == Some(404) && pages == 1 => {
                        warnings.push(format!(
                            "group {group} (`{name}`) was not found in Entra ID; `{name}` is left \
                             as it is"
                        ));
                        missing.insert(name);
                        break;
                    }
                    Err(e) => return Err(e),
                };
                let Some(Value::Array(users)) = page.get("value") else {
                    return Err(FetchError::permanent(format!(
                        "Graph {}: no `value` array",
                        url.path()
                    )));
                };
                for u in users {
                    let values = fields_of(self.mapping, u);
                    if let Some(id) = self.mapping.external_id_of(|f| lookup(&values, f)) {
                        ids.insert(id);
                    }
                }
                match page.get("@odata.nextLink").and_then(Value::as_str) {
                    Some(next) => url = self.link(next)?,
                    None => break,
                }
            }
        }
        // A name is known only if every group mapped to it was read.
        out.retain(|name, _| !missing.contains(name.as_str()));
        Ok(Some(out))
    }

    /// In a full read every user must say whether the account is enabled: one that never did
    /// is an error row (as it would be from any full roster), not "access unchanged".
    fn require_status(&self, rows: &mut [Option<Row>]) {
        for (line, row) in rows.iter_mut().flatten() {
            if let Ok(r) = row
                && r.status_unknown
            {
                *row = Err(crate::record::RecordError {
                    line: *line,
                    external_id: Some(r.external_id.clone()),
                    column: self
                        .mapping
                        .active
                        .as_ref()
                        .and_then(|a| a.field())
                        .map(str::to_owned),
                    value: None,
                    message: "the active flag is empty".into(),
                });
            }
        }
    }

    /// A next link, only to the configured Graph.
    fn link(&self, next: &str) -> Result<Url, FetchError> {
        let url = Url::parse(next)
            .map_err(|e| FetchError::permanent(format!("Graph: bad @odata.nextLink: {e}")))?;
        if !self.config.owns(&url) {
            return Err(FetchError::permanent(format!(
                "Graph: @odata.nextLink leads away from {}",
                self.config.base()
            )));
        }
        Ok(url)
    }

    /// Maps one entry of `value` into `rows`, merged with an earlier entry for the same id.
    /// A slot emptied by a later `@removed` in a full read is absent from it.
    fn take(
        &self,
        entry: u64,
        user: &Value,
        rows: &mut Vec<Option<Row>>,
        by_id: &mut HashMap<String, usize>,
    ) {
        let id = user.get("id").and_then(text);
        let slot = id.as_ref().and_then(|id| by_id.get(id).copied());
        let removed = user.get("@removed").is_some();
        if removed && self.coverage == Coverage::Full {
            // Deleted before this full read ended: absent, which a full read already says.
            if let Some(i) = slot {
                rows[i] = None;
            }
            return;
        }
        let mapped = if removed {
            // Gone from the directory (soft-deleted or for good): no longer has access.
            let only_id = |f: &str| (f == "id").then_some(id.as_deref()).flatten();
            self.mapping.apply_change(entry, only_id).map(|mut r| {
                r.active = false;
                r.status_unknown = false;
                r
            })
        } else {
            // A repeated entry may carry only what changed, so it maps as a change; a full read
            // checks at the end that every user's access was stated.
            let values = fields_of(self.mapping, user);
            let get = |f: &str| lookup(&values, f);
            if self.coverage == Coverage::Full && slot.is_none() {
                // A user's first entry in a full read is the whole user: defaults apply.
                self.mapping.apply(entry, get)
            } else {
                self.mapping.apply_change(entry, get)
            }
        };
        match slot {
            Some(i) => match (rows[i].take(), mapped) {
                (Some((line, Ok(old))), Ok(new)) => rows[i] = Some((line, Ok(merge(old, new)))),
                // What was known stays; the bad entry is an error row of its own.
                (Some(kept @ (_, Ok(_))), Err(e)) => {
                    rows[i] = Some(kept);
                    rows.push(Some((entry, Err(e))));
                }
                (_, mapped) => rows[i] = Some((entry, mapped)),
            },
            None => {
                if let Some(id) = id {
                    by_id.insert(id, rows.len());
                }
                rows.push(Some((entry, mapped)));
            }
        }
    }
}

/// A later change of one user over an earlier one: what the later says wins, what it leaves
/// out stays.
fn merge(old: Record, new: Record) -> Record {
    let (active, status_unknown) = if new.status_unknown {
        (old.active, old.status_unknown)
    } else {
        (new.active, false)
    };
    Record {
        external_id: new.external_id,
        member_email: new.member_email.or(old.member_email),
        login_email: new.login_email.or(old.login_email),
        given_name: new.given_name.or(old.given_name),
        family_name: new.family_name.or(old.family_name),
        display_name: new.display_name.or(old.display_name),
        active,
        status_unknown,
        role: new.role.or(old.role),
        groups: if new.groups.is_empty() {
            old.groups
        } else {
            new.groups
        },
        raw: if new.raw.is_empty() { old.raw } else { new.raw },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::FieldSpec;

    fn spec(f: &str) -> FieldSpec {
        FieldSpec::Field(f.into())
    }

    fn mapping() -> Mapping {
        Mapping {
            external_id: spec("id"),
            member_email: Some(spec("mail")),
            login_email: Some(spec("userPrincipalName")),
            given_name: Some(spec("givenName")),
            family_name: Some(spec("surname")),
            display_name: None,
            active: Some(spec("accountEnabled")),
            role: None,
            groups: None,
            keep_raw: false,
        }
    }

    fn config() -> GraphConfig {
        toml::from_str(
            r#"
tenant = "contoso.onmicrosoft.com"
client_id = "app"
client_secret = "env:X"
"#,
        )
        .unwrap()
    }

    #[test]
    fn select_covers_the_mapping_and_urls_follow_the_mode() {
        let c = config();
        assert!(c.uses_delta());
        c.check(&mapping()).unwrap();
        let url = c.full_url(&mapping()).unwrap();
        assert_eq!(url.path(), "/v1.0/users/delta");
        let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(
            q["$select"],
            "id,mail,userPrincipalName,givenName,surname,accountEnabled"
        );
        assert!(!q.contains_key("$top"), "delta queries take no $top");
        let mut g = config();
        g.group_id = Some("g1".into());
        assert!(!g.uses_delta());
        let url = g.full_url(&mapping()).unwrap();
        assert_eq!(
            url.path(),
            "/v1.0/groups/g1/transitiveMembers/microsoft.graph.user"
        );
        assert!(url.query().unwrap().contains("%24top=999"));
    }

    #[test]
    fn bad_settings_name_their_key() {
        let mut c = config();
        c.graph_url = "http://graph.example.com".into();
        assert!(c.check(&mapping()).unwrap_err().starts_with("graph_url"));
        c.graph_url = "http://127.0.0.1:9".into();
        c.check(&mapping()).unwrap();
        assert!(c.owns(&Url::parse("http://127.0.0.1:9/v1.0/users/delta?$skiptoken=x").unwrap()));
        assert!(!c.owns(&Url::parse("http://127.0.0.1:99/v1.0/users").unwrap()));
        let mut m = mapping();
        m.external_id = spec("employeeId");
        assert!(c.check(&m).unwrap_err().starts_with("mapping.external_id"));
        c.delta = Some(false);
        c.check(&m).unwrap();
        c.group_id = Some("g".into());
        c.delta = Some(true);
        assert!(c.check(&mapping()).unwrap_err().starts_with("delta"));
        let mut c = config();
        c.full_sync_every_hours = 200;
        assert!(c.check(&mapping()).unwrap_err().starts_with("full_sync"));
    }

    #[test]
    fn repeated_changes_merge_and_removals_are_inactive() {
        let c = config();
        let m = mapping();
        let read = Read {
            config: &c,
            mapping: &m,
            coverage: Coverage::Changes,
        };
        let (mut rows, mut ids) = (Vec::new(), HashMap::new());
        let changes = [
            serde_json::json!({"id": "a", "givenName": "Ann", "accountEnabled": true, "mail": "a@x.io"}),
            serde_json::json!({"id": "a", "surname": "Lee"}),
            serde_json::json!({"id": "b", "surname": "Bo"}),
            serde_json::json!({"id": "c", "@removed": {"reason": "deleted"}}),
            serde_json::json!({"id": "d", "accountEnabled": false}),
        ];
        for (i, u) in changes.iter().enumerate() {
            read.take(i as u64 + 1, u, &mut rows, &mut ids);
        }
        let recs: Vec<&Record> = rows
            .iter()
            .map(|r| r.as_ref().unwrap().1.as_ref().unwrap())
            .collect();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0].given_name.as_deref(), Some("Ann"));
        assert_eq!(recs[0].family_name.as_deref(), Some("Lee"));
        assert!(recs[0].active && !recs[0].status_unknown);
        assert!(recs[1].status_unknown, "b's change says nothing of access");
        assert!(!recs[2].active && !recs[2].status_unknown, "c was removed");
        assert!(!recs[3].active && !recs[3].status_unknown, "d was disabled");
        // In a full read, a user removed later in the round is simply absent.
        let full = Read {
            coverage: Coverage::Full,
            ..read
        };
        let (mut rows, mut ids) = (Vec::new(), HashMap::new());
        full.take(1, &changes[0], &mut rows, &mut ids);
        full.take(
            2,
            &serde_json::json!({"id": "a", "@removed": {"reason": "changed"}}),
            &mut rows,
            &mut ids,
        );
        assert_eq!(rows.into_iter().flatten().count(), 0);

        // In a full read a repeated partial entry merges; a user whose access was never
        // stated becomes an error row.
        let (mut rows, mut ids) = (Vec::new(), HashMap::new());
        full.take(1, &changes[0], &mut rows, &mut ids);
        full.take(2, &changes[1], &mut rows, &mut ids);
        full.take(3, &changes[2], &mut rows, &mut ids);
        full.require_status(&mut rows);
        let a = rows[0].as_ref().unwrap().1.as_ref().unwrap();
        assert_eq!(a.family_name.as_deref(), Some("Lee"));
        assert!(a.active && !a.status_unknown);
        let b = rows[1].as_ref().unwrap().1.as_ref().unwrap_err();
        assert_eq!(b.column.as_deref(), Some("accountEnabled"));

        // A later entry that cannot be mapped keeps what was known and adds an error row.
        let (mut rows, mut ids) = (Vec::new(), HashMap::new());
        let disabled = serde_json::json!({"id": "d", "accountEnabled": false});
        read.take(1, &disabled, &mut rows, &mut ids);
        read.take(
            2,
            &serde_json::json!({"id": "d", "mail": "not-an-email"}),
            &mut rows,
            &mut ids,
        );
        assert_eq!(rows.len(), 2);
        let kept = rows[0].as_ref().unwrap().1.as_ref().unwrap();
        assert!(!kept.active && !kept.status_unknown, "still disabled");
        assert!(rows[1].as_ref().unwrap().1.is_err());
    }

    #[test]
    fn links_belong_to_the_configured_graph_by_scheme_host_port_and_path() {
        let mut c = config();
        c.graph_url = "https://Graph.Microsoft.com:443".into();
        let owns = |u: &str| c.owns(&Url::parse(u).unwrap());
        assert!(owns(
            "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x"
        ));
        assert!(!owns("https://graph.microsoft.com.evil.example/v1.0/users"));
        assert!(!owns("http://graph.microsoft.com/v1.0/users"));
        assert!(!owns("https://graph.microsoft.com:8443/v1.0/users"));
        let mut c = config();
        c.graph_url = "http://127.0.0.1:9/graph/".into();
        let owns = |u: &str| c.owns(&Url::parse(u).unwrap());
        assert!(owns("http://127.0.0.1:9/graph/v1.0/users"));
        assert!(!owns("http://127.0.0.1:9/graphx/v1.0/users"));
    }
}
