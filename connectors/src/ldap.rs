//! Active Directory and OpenLDAP over LDAP (the `ldap3` crate, rustls): a simple bind with a
//! service account, then one paged subtree search (RFC 2696, so directories of any size read in
//! pages under the server's size limit) of the configured base DN and filter. Every run reads
//! everyone in scope: the engine's full-snapshot diff turns a user who left the scope (deleted,
//! moved out of the OU, filtered out) into a removal, which needs no special rights, no
//! domain-controller affinity and works the same on AD and OpenLDAP.
//!
//! Besides the attributes as read (first value), the mapping can read:
//! - `objectGUID` — AD's 16 binary bytes as the canonical GUID string (first three fields
//!   little-endian, as Windows shows it);
//! - `dn` — the entry's DN;
//! - `enabled` — `false` when `userAccountControl` has the ACCOUNTDISABLE bit (0x2) or the entry
//!   matches `disabled_filter` (OpenLDAP has no standard flag), else `true`.
//!
//! `memberOf` values (AD, or OpenLDAP's `memberof` overlay) are matched against `groups`, a map
//! from group DN to a rosterd group name, and become the record's groups.
//!
//! ```toml
//! [[sources]]
//! name = "ad"
//! org = "acme"
//! kind = "ldap"
//! url = "ldaps://dc1.corp.example"
//! bind_dn = "CN=svc-rosterd,OU=Service Accounts,DC=corp,DC=example"
//! bind_password = "env:LDAP_PASSWORD"
//! base_dn = "OU=Staff,DC=corp,DC=example"
//! [sources.mapping]
//! external_id = "objectGUID"
//! member_email = "mail"
//! active = "enabled"
//! ```

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use backon::{ExponentialBuilder, Retryable};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::mapping::Mapping;
use crate::secret::SecretRef;
use crate::source::{Context, Coverage, FetchError, Sender, Snapshot, Source};

/// A directory and what to read from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldaps://host[:636]`, or `ldap://host[:389]` (StartTLS unless `tls = "none"`).
    pub url: String,
    /// For `ldap://` URLs: `starttls` (default) or `none` (plain text: credentials and data
    /// cross the network readable; only for a directory on the same host).
    #[serde(default)]
    pub tls: Tls,
    /// A PEM file of CA certificates to trust besides the public web PKI (a corporate CA).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The service account's DN (or, for AD, its UPN).
    pub bind_dn: String,
    /// Its password, as an `env:`/`file:` reference.
    pub bind_password: SecretRef,
    /// Where to search.
    pub base_dn: String,
    /// Which entries are people (default: AD `(&(objectCategory=person)(objectClass=user))`,
    /// OpenLDAP `(objectClass=inetOrgPerson)`).
    #[serde(default)]
    pub filter: Option<String>,
    /// `active_directory` (default) or `openldap`: the default filter.
    #[serde(default)]
    pub flavor: Flavor,
    /// `subtree` (default) or `one` (the base DN's children only).
    #[serde(default)]
    pub scope: SearchScope,
    /// Entries per page (1–1000; AD's MaxPageSize is 1000). Default 500.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Entries matching this filter (ANDed with `filter`) are `enabled = false`, e.g. OpenLDAP
    /// `(pwdAccountLockedTime=*)`.
    #[serde(default)]
    pub disabled_filter: Option<String>,
    /// Group DN → rosterd group name: members of these groups (by `memberOf`) carry the names.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
    /// More attributes to read (for `rosterd sync --dump`); the mapping's are read anyway.
    #[serde(default)]
    pub attributes: Vec<String>,
}

const fn default_page_size() -> u32 {
    500
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tls {
    #[default]
    Starttls,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    #[default]
    ActiveDirectory,
    Openldap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchScope {
    #[default]
    Subtree,
    One,
}

const ACCOUNTDISABLE: i64 = 0x2;

/// A GUID from AD's 16 bytes: the first three fields are little-endian.
pub fn guid_string(bytes: &[u8]) -> Option<String> {
    let b: [u8; 16] = bytes.try_into().ok()?;
    Some(uuid::Uuid::from_bytes_le(b).hyphenated().to_string())
}

/// A DN compared loosely: case and spaces after separators do not matter.
fn dn_key(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            let (t, v) = rdn.split_once('=').unwrap_or((rdn, ""));
            format!("{}={}", t.trim().to_lowercase(), v.trim().to_lowercase())
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn balanced(filter: &str) -> bool {
    let mut depth = 0i32;
    for c in filter.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0 && filter.starts_with('(') && filter.ends_with(')')
}

impl LdapConfig {
    fn filter(&self) -> String {
        self.filter.clone().unwrap_or_else(|| {
            match self.flavor {
                Flavor::ActiveDirectory => "(&(objectCategory=person)(objectClass=user))",
                Flavor::Openldap => "(objectClass=inetOrgPerson)",
            }
            .into()
        })
    }

    /// Checks the settings; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        match url.scheme() {
            "ldaps" => {
                if self.tls == Tls::None {
                    return Err("tls: `none` makes no sense with ldaps://".into());
                }
            }
            "ldap" => {
                let loopback = crate::http::is_loopback(&url);
                if self.tls == Tls::None && !loopback {
                    return Err(
                        "tls: `none` sends the password in clear; it is allowed only \
                         for a directory on this host (127.0.0.1 or localhost)"
                            .into(),
                    );
                }
            }
            other => {
                return Err(format!(
                    "url: the scheme must be ldap:// or ldaps://, not {other}://"
                ));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("url: no host".into());
        }
        if self.bind_dn.trim().is_empty() {
            return Err("bind_dn: the service account's DN".into());
        }
        if self.base_dn.trim().is_empty() {
            return Err("base_dn: where to search".into());
        }
        if !balanced(&self.filter()) {
            return Err("filter: an LDAP filter in parentheses, e.g. (objectClass=user)".into());
        }
        if let Some(d) = &self.disabled_filter
            && !balanced(d)
        {
            return Err("disabled_filter: an LDAP filter in parentheses".into());
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err("page_size: between 1 and 1000".into());
        }
        if let Some((dn, _)) = self
            .groups
            .iter()
            .find(|(dn, n)| !dn.contains('=') || n.trim().is_empty())
        {
            return Err(format!(
                "groups: `{dn}` must be a group DN mapped to a rosterd group name"
            ));
        }
        Ok(())
    }

    fn attributes(&self, mapping: &Mapping) -> Vec<String> {
        let mut attrs: Vec<String> = Vec::new();
        let mut add = |a: &str| {
            if !attrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                attrs.push(a.to_owned());
            }
        };
        for f in mapping
            .fields()
            .into_iter()
            .chain(self.attributes.iter().map(String::as_str))
        {
            if f == "dn" || f == "enabled" {
                continue;
            }
            add(f);
        }
        add("userAccountControl");
        if !self.groups.is_empty() {
            add("memberOf");
        }
        attrs
    }

    /// TLS settings: certificates always verified, against the web PKI roots and `ca_file`.
    fn tls_config(&self, ctx: &Context) -> Result<Arc<rustls::ClientConfig>, FetchError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &self.ca_file {
            let full = ctx.base_dir.join(path);
            let certs = CertificateDer::pem_file_iter(&full)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| FetchError::permanent(format!("ca_file `{path}`: {e}")))?;
            if certs.is_empty() {
                return Err(FetchError::permanent(format!(
                    "ca_file `{path}`: no certificate in it"
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| FetchError::permanent(format!("ca_file `{path}`: {e}")))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::permanent(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// An LDAP source.
pub struct LdapSource {
    pub config: LdapConfig,
    pub mapping: Mapping,
}

impl Source for LdapSource {
    async fn open(&self, ctx: &Context) -> Result<Snapshot, FetchError> {
        self.config.check().map_err(FetchError::permanent)?;
        let password = self
            .config
            .bind_password
            .resolve()
            .map_err(|e| FetchError::permanent(format!("bind_password: {e}")))?;
        let tls = self.config.tls_config(ctx)?;
        let (tx, snapshot) = Snapshot::channel(Coverage::Full);
        let config = self.config.clone();
        let mapping = self.mapping.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut tx = tx;
            let read = Read {
                config: &config,
                mapping: &mapping,
                ctx: &ctx,
                tls,
            };
            match read.run(password.expose_secret(), &mut tx).await {
                Ok(()) => tx.done().await,
                Err(e) => tx.fail(e).await,
            }
        });
        Ok(snapshot)
    }
}

struct Read<'a> {
    config: &'a LdapConfig,
    mapping: &'a Mapping,
    ctx: &'a Context,
    tls: Arc<rustls::ClientConfig>,
}

/// One search result entry. ldap3 parses it with `expect`s: an entry that is not valid LDAP
/// (a DN that is not UTF-8, say) fails the read with a message instead of a panic.
fn parse_entry(entry: ldap3::ResultEntry) -> Result<SearchEntry, FetchError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        SearchEntry::construct(entry)
    }))
    .map_err(|_| {
        FetchError::permanent("search: the directory sent an entry that is not valid LDAP")
    })
}

/// An LDAP error in words (never the password: ldap3 errors carry none).
fn ldap_error(what: &str, e: ldap3::LdapError) -> FetchError {
    use ldap3::LdapError as E;
    let transient = matches!(
        e,
        E::Io { .. } | E::OpSend { .. } | E::ResultRecv { .. } | E::Timeout { .. } | E::EndOfStream
    ) || matches!(&e, E::LdapResult { result } if matches!(result.rc, 51..=53 | 80));
    let message = match &e {
        E::LdapResult { result } => {
            let hint = match result.rc {
                4 => {
                    " (size limit exceeded: does the server allow paged results for this account?)"
                }
                32 => " (no such object: check base_dn)",
                49 => " (invalid credentials: check bind_dn and bind_password)",
                50 => " (insufficient access rights)",
                _ => "",
            };
            format!(
                "{what}: LDAP result {} {}{hint}",
                result.rc,
                result.text.trim()
            )
        }
        other => format!("{what}: {other}"),
    };
    if transient {
        FetchError::transient(message)
    } else {
        FetchError::permanent(message)
    }
}

impl Read<'_> {
    async fn connect(&self, password: &str) -> Result<ldap3::Ldap, FetchError> {
        let c = self.config;
        // The scheme as parsed (`LDAP://` is `ldap://`): StartTLS unless the URL is ldaps.
        let scheme = reqwest::Url::parse(&c.url)
            .map(|u| u.scheme().to_owned())
            .unwrap_or_default();
        let starttls = scheme == "ldap" && c.tls == Tls::Starttls;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.ctx.request_timeout)
            .set_starttls(starttls)
            .set_config(self.tls.clone());
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &c.url)
            .await
            .map_err(|e| ldap_error(&format!("connecting to {}", c.url), e))?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.ctx.request_timeout)
            .simple_bind(&c.bind_dn, password)
            .await
            .and_then(|r| r.success())
            .map_err(|e| ldap_error("bind", e))?;
        Ok(ldap)
    }

    /// Starts one paged search.
    async fn search(
        &self,
        ldap: &mut ldap3::Ldap,
        filter: &str,
        attrs: Vec<String>,
    ) -> Result<ldap3::SearchStream<'static, String, Vec<String>>, FetchError> {
        let c = self.config;
        let scope = match c.scope {
            SearchScope::Subtree => Scope::Subtree,
            SearchScope::One => Scope::OneLevel,
        };
        let adapters: Vec<Box<dyn Adapter<'static, String, Vec<String>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(c.page_size as i32)),
        ];
        ldap.streaming_search_with(adapters, &c.base_dn, scope, filter, attrs)
            .await
            .map_err(|e| ldap_error("search", e))
    }

    /// The next entry of a search; `None` at its successful end.
    async fn next(
        &self,
        search: &mut ldap3::SearchStream<'static, String, Vec<String>>,
    ) -> Result<Option<SearchEntry>, FetchError> {
        let next = tokio::time::timeout(self.ctx.request_timeout, search.next())
            .await
            .map_err(|_| FetchError::transient("search: timed out waiting for the server"))?
            .map_err(|e| ldap_error("search", e))?;
        match next {
            Some(entry) => parse_entry(entry).map(Some),
            None => {
                search
                    .finish()
                    .await
                    .success()
                    .map_err(|e| ldap_error("search", e))?;
                Ok(None)
            }
        }
    }

    async fn run(&self, password: &str, tx: &mut Sender) -> Result<(), FetchError> {
        let c = self.config;
        // A directory that refuses or drops the connection (restarting, failing over) is tried
        // again with backoff and jitter, like an HTTP source; a refused bind is not.
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.ctx.retry_base)
            .with_max_delay(std::time::Duration::from_secs(60))
            .with_max_times(self.ctx.retries)
            .with_jitter();
        let mut ldap = (|| self.connect(password))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &FetchError| e.transient)
            .await?;
        let filter = c.filter();
        // Entries the disabled filter matches, by DN (usually few).
        let mut disabled = HashSet::new();
        if let Some(d) = &c.disabled_filter {
            let both = format!("(&{filter}{d})");
            let mut search = self.search(&mut ldap, &both, vec!["1.1".into()]).await?;
            while let Some(e) = self.next(&mut search).await? {
                disabled.insert(dn_key(&e.dn));
            }
        }
        let groups: Vec<(String, String)> = c
            .groups
            .iter()
            .map(|(dn, name)| (dn_key(dn), name.clone()))
            .collect();
        let mut search = self
            .search(&mut ldap, &filter, c.attributes(self.mapping))
            .await?;
        let mut no = 0u64;
        while let Some(e) = self.next(&mut search).await? {
            no += 1;
            let row = self.record(no, &e, &disabled, &groups);
            if !tx.row((no, row)).await {
                // The engine stopped reading: leave the rest unread.
                let _ = search.finish().await;
                break;
            }
        }
        let _ = ldap.unbind().await;
        Ok(())
    }

    /// Maps one entry, with the computed attributes.
    fn record(
        &self,
        no: u64,
        e: &SearchEntry,
        disabled: &HashSet<String>,
        groups: &[(String, String)],
    ) -> Result<crate::Record, crate::RecordError> {
        let first = |name: &str| -> Option<&str> {
            e.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first())
                .map(String::as_str)
        };
        // A GUID's bytes land in `bin_attrs`, or in `attrs` when they happen to be UTF-8.
        let guid = e
            .bin_attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("objectGUID"))
            .and_then(|(_, v)| v.first())
            .map(Vec::as_slice)
            .or_else(|| first("objectGUID").map(str::as_bytes))
            .and_then(guid_string);
        let uac_disabled = first("userAccountControl")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .is_some_and(|v| v & ACCOUNTDISABLE != 0);
        let enabled = if uac_disabled || disabled.contains(&dn_key(&e.dn)) {
            "false"
        } else {
            "true"
        };
        let get = |name: &str| -> Option<&str> {
            match name {
                "dn" => Some(e.dn.as_str()),
                "enabled" => Some(enabled),
                n if n.eq_ignore_ascii_case("objectGUID") => guid.as_deref(),
                n => first(n),
            }
        };
        let mut record = self.mapping.apply(no, get)?;
        if !groups.is_empty() {
            let member_of: HashSet<String> = e
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("memberOf"))
                .map(|(_, v)| v.iter().map(|dn| dn_key(dn)).collect())
                .unwrap_or_default();
            record.groups = groups
                .iter()
                .filter(|(dn, _)| member_of.contains(dn))
                .map(|(_, name)| name.clone())
                .collect();
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_render_in_windows_byte_order() {
        let bytes = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0x01,
        ];
        assert_eq!(
            guid_string(&bytes).unwrap(),
            "33221100-5544-7766-8899-aabbccddee01"
        );
        assert_eq!(guid_string(&bytes[..15]), None);
    }

    #[test]
    fn entries_map_with_computed_attributes_and_groups() {
        let config: LdapConfig = toml::from_str(
            r#"
url = "ldaps://dc.example.org"
bind_dn = "cn=svc"
bind_password = "env:X"
base_dn = "dc=example,dc=org"
groups = { "CN=Staff,OU=Groups,DC=example,DC=org" = "Staff" }
"#,
        )
        .unwrap();
        let mapping: Mapping = toml::from_str(
            "external_id = \"objectGUID\"\nmember_email = \"mail\"\nactive = \"enabled\"\n",
        )
        .unwrap();
        let read = Read {
            config: &config,
            mapping: &mapping,
            ctx: &Context::new(".".into(), std::time::Duration::from_secs(60)).unwrap(),
            tls: config
                .tls_config(&Context::new(".".into(), std::time::Duration::from_secs(60)).unwrap())
                .unwrap(),
        };
        // Sixteen GUID bytes that happen to be ASCII arrive as text, not in `bin_attrs`.
        let ascii = "0123456789abcdef";
        let entry = |uac: &str| SearchEntry {
            dn: "uid=a,ou=people,dc=example,dc=org".into(),
            attrs: [
                ("objectGUID".to_owned(), vec![ascii.to_owned()]),
                ("mail".to_owned(), vec!["a@example.org".to_owned()]),
                ("userAccountControl".to_owned(), vec![uac.to_owned()]),
                (
                    "memberOf".to_owned(),
                    vec![
                        "cn=staff, ou=groups, dc=example, dc=org".to_owned(),
                        "cn=other".to_owned(),
                    ],
                ),
            ]
            .into_iter()
            .collect(),
            bin_attrs: Default::default(),
        };
        let groups = vec![(
            dn_key("CN=Staff,OU=Groups,DC=example,DC=org"),
            "Staff".to_owned(),
        )];
        let r = read
            .record(1, &entry("512"), &HashSet::new(), &groups)
            .unwrap();
        assert_eq!(r.external_id, guid_string(ascii.as_bytes()).unwrap());
        assert!(r.active);
        assert_eq!(r.groups, ["Staff"]);
        let r = read
            .record(1, &entry("514"), &HashSet::new(), &groups)
            .unwrap();
        assert!(!r.active, "ACCOUNTDISABLE");
        let disabled: HashSet<String> = [dn_key("uid=a,ou=people,dc=example,dc=org")].into();
        assert!(
            !read
                .record(1, &entry("512"), &disabled, &groups)
                .unwrap()
                .active
        );
    }

    #[tokio::test]
    async fn a_dropped_connection_is_retried_with_backoff_then_fails_the_read() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        // A "directory" that accepts and hangs up at once, counting connections.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let a = accepted.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        let config: LdapConfig = toml::from_str(&format!(
            "url = \"ldap://127.0.0.1:{port}\"\ntls = \"none\"\nbind_dn = \"cn=svc\"\n\
             bind_password = \"env:PATH\"\nbase_dn = \"dc=example,dc=org\"\n"
        ))
        .unwrap();
        let mapping: Mapping = toml::from_str("external_id = \"entryUUID\"\n").unwrap();
        let mut ctx = Context::new(".".into(), std::time::Duration::from_secs(60)).unwrap();
        ctx.retries = 2;
        ctx.retry_base = std::time::Duration::from_millis(1);
        let mut snap = LdapSource { config, mapping }.open(&ctx).await.unwrap();
        let err = snap.next().await.unwrap().unwrap_err();
        assert!(err.transient, "{err}");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "one try and two retries"
        );
    }

    #[test]
    fn an_entry_that_is_not_valid_ldap_is_an_error_not_a_panic() {
        use ldap3::asn1::{PL, StructureTag, TagClass};
        let octets = |b: &[u8]| StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(b.to_vec()),
        };
        // A SearchResultEntry whose DN is not UTF-8.
        let entry = ldap3::ResultEntry::new(StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![
                octets(&[0xff, 0xfe]),
                StructureTag {
                    class: TagClass::Universal,
                    id: 16,
                    payload: PL::C(vec![]),
                },
            ]),
        });
        let err = parse_entry(entry).unwrap_err();
        assert!(err.message.contains("not valid LDAP"), "{err}");
        // A valid one parses.
        let ok = ldap3::ResultEntry::new(StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![
                octets(b"uid=a,dc=x"),
                StructureTag {
                    class: TagClass::Universal,
                    id: 16,
                    payload: PL::C(vec![]),
                },
            ]),
        });
        assert_eq!(parse_entry(ok).unwrap().dn, "uid=a,dc=x");
    }

    #[tokio::test]
    async fn a_directory_that_never_answers_times_out() {
        // Accepts the connection and then says nothing.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let config: LdapConfig = toml::from_str(&format!(
            "url = \"ldap://127.0.0.1:{port}\"\ntls = \"none\"\nbind_dn = \"cn=svc\"\n\
             bind_password = \"env:PATH\"\nbase_dn = \"dc=example,dc=org\"\n"
        ))
        .unwrap();
        let mapping: Mapping = toml::from_str("external_id = \"entryUUID\"\n").unwrap();
        let mut ctx = Context::new(".".into(), std::time::Duration::from_secs(60)).unwrap();
        ctx.retries = 0;
        ctx.request_timeout = std::time::Duration::from_millis(300);
        let mut snap = LdapSource { config, mapping }.open(&ctx).await.unwrap();
        let err = snap.next().await.unwrap().unwrap_err();
        assert!(err.message.starts_with("bind:"), "{err}");
        assert!(err.message.to_lowercase().contains("timeout"), "{err}");
    }

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert_eq!(
            dn_key("CN=Staff, OU=Groups,DC=Example, DC=org"),
            dn_key("cn=staff,ou=groups,dc=example,dc=org")
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        let base: LdapConfig = toml::from_str(
            r#"
url = "ldaps://dc.example.org"
bind_dn = "cn=svc,dc=example,dc=org"
bind_password = "env:X"
base_dn = "dc=example,dc=org"
"#,
        )
        .unwrap();
        base.check().unwrap();
        let bad = |f: &dyn Fn(&mut LdapConfig)| {
            let mut c = base.clone();
            f(&mut c);
            c.check().unwrap_err()
        };
        assert!(bad(&|c| c.url = "http://dc".into()).starts_with("url"));
        assert!(bad(&|c| c.tls = Tls::None).starts_with("tls"));
        assert!(
            bad(&|c| {
                c.url = "LDAP://dc.example.org".into();
                c.tls = Tls::None;
            })
            .starts_with("tls"),
            "plain text only to this host, whatever the scheme's case"
        );
        assert!(bad(&|c| c.filter = Some("objectClass=user".into())).starts_with("filter"));
        assert!(bad(&|c| c.page_size = 5000).starts_with("page_size"));
        assert!(
            bad(&|c| {
                c.groups.insert("staff".into(), "Staff".into());
            })
            .starts_with("groups")
        );
    }
}
