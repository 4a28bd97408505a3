//! Workday: the REST `workers` collection (limit/offset paging with `total`, OAuth2
//! refresh-token grant of an "API Client for Integrations") or a Reports-as-a-Service custom
//! report in JSON (`Report_Entry`, no paging, basic auth of an Integration System User or the
//! same OAuth2 client). Both read through the HTTP JSON machinery; this module only knows
//! Workday's URLs and shapes.
//!
//! The REST list holds only non-terminated workers, so a termination is a disappearance (the
//! engine's full-snapshot diff removes the person); a RaaS report can carry an explicit status
//! (`Active_Status` "1"/"0") that the mapping turns into `active`.
//!
//! ```toml
//! [[sources]]
//! name = "workday"
//! org = "acme"
//! kind = "workday"
//! host = "wd2-impl-services1.workday.com"
//! tenant = "acme"
//! auth = { type = "oauth2_refresh_token", client_id = "…", client_secret = "env:WD_SECRET",
//!          refresh_token = "env:WD_REFRESH" }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::http_json::{Auth, ClientAuth, HttpJsonConfig, HttpJsonSource, Pagination};
use crate::mapping::Mapping;
use crate::secret::SecretRef;
use crate::source::{Context, FetchError, Snapshot, Source};

/// A Workday tenant and what to read from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkdayConfig {
    /// The data centre's services host, e.g. `wd2-impl-services1.workday.com`.
    pub host: String,
    /// The tenant name (in every path).
    pub tenant: String,
    /// `workers` (the REST API, default) or `raas` (a custom report).
    #[serde(default)]
    pub mode: Mode,
    /// The REST base URL when it is not `https://{host}/ccx/api/v1/{tenant}` (other service
    /// versions, e.g. `…/ccx/api/staffing/v6/{tenant}`).
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// RaaS: the report's owner (often the integration system user) and name (underscores for
    /// spaces).
    #[serde(default)]
    pub report_owner: Option<String>,
    #[serde(default)]
    pub report_name: Option<String>,
    /// RaaS: report prompts, by alias (a reference prompt ends in `!WID`).
    #[serde(default)]
    pub prompts: BTreeMap<String, String>,
    /// How to authenticate.
    pub auth: WorkdayAuth,
    /// Use `http://` instead of `https://`: only for a test server on this host (127.0.0.1 or
    /// localhost).
    #[serde(default)]
    pub insecure_http: bool,
    /// At most this many requests per second to the tenant (absent: no limit beyond Workday's
    /// own 429s).
    #[serde(default)]
    pub max_requests_per_second: Option<f64>,
    /// A value of the mapping's `groups` field (a supervisory organization, a cost centre) →
    /// the rosterd group this source keeps for it.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Workers,
    Raas,
}

/// Workday credentials; secrets are `env:`/`file:` references.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkdayAuth {
    /// The API client's refresh token (token endpoint `https://{host}/ccx/oauth2/{tenant}/token`).
    Oauth2RefreshToken {
        client_id: String,
        client_secret: SecretRef,
        refresh_token: SecretRef,
        /// `basic` (default) or `post`.
        #[serde(default)]
        client_auth: ClientAuth,
        /// When the token endpoint differs from the usual one.
        #[serde(default)]
        token_url: Option<String>,
    },
    /// HTTP basic with the integration system user (RaaS).
    Basic {
        username: String,
        password: SecretRef,
    },
}

impl WorkdayConfig {
    fn scheme(&self) -> &'static str {
        if self.insecure_http { "http" } else { "https" }
    }

    /// The HTTP JSON settings that read this Workday source.
    pub fn http_json(&self) -> Result<HttpJsonConfig, String> {
        let host = self.host.trim_end_matches('/');
        let base = format!("{}://{host}", self.scheme());
        let auth = match &self.auth {
            WorkdayAuth::Oauth2RefreshToken {
                client_id,
                client_secret,
                refresh_token,
                client_auth,
                token_url,
            } => Auth::OAuth2Refresh {
                token_url: token_url
                    .clone()
                    .unwrap_or_else(|| format!("{base}/ccx/oauth2/{}/token", self.tenant)),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                refresh_token: refresh_token.clone(),
                client_auth: *client_auth,
            },
            WorkdayAuth::Basic { username, password } => Auth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
        };
        let (url, records_path, pagination, mut query) = match self.mode {
            Mode::Workers => (
                format!(
                    "{}/workers",
                    self.api_base_url
                        .clone()
                        .unwrap_or_else(|| format!("{base}/ccx/api/v1/{}", self.tenant))
                        .trim_end_matches('/')
                ),
                "data",
                // Workday caps `limit` at 100; `total` says when the list ends.
                Pagination::Offset {
                    offset_param: "offset".into(),
                    limit_param: "limit".into(),
                    limit: 100,
                    total_path: Some("total".into()),
                },
                BTreeMap::new(),
            ),
            Mode::Raas => {
                let owner = self
                    .report_owner
                    .as_deref()
                    .ok_or("report_owner: raas mode needs the report's owner")?;
                let name = self
                    .report_name
                    .as_deref()
                    .ok_or("report_name: raas mode needs the report's name")?;
                (
                    format!(
                        "{base}/ccx/service/customreport2/{}/{owner}/{name}",
                        self.tenant
                    ),
                    "Report_Entry",
                    Pagination::None,
                    self.prompts.clone(),
                )
            }
        };
        if self.mode == Mode::Raas {
            query.insert("format".into(), "json".into());
        }
        Ok(HttpJsonConfig {
            url: Some(url),
            preset: None,
            base_url: None,
            auth: Some(auth),
            records_path: Some(records_path.into()),
            pagination,
            query,
            // Workday's REST errors: `{"error": "…", "errors": [...]}`.
            error_path: Some("error".into()),
            max_pages: 100_000,
            max_requests_per_second: self.max_requests_per_second,
            groups: BTreeMap::new(),
        })
    }

    /// Checks the settings; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        if self.host.trim().is_empty() || self.host.contains("://") {
            return Err("host: the host name alone, e.g. wd2-impl-services1.workday.com".into());
        }
        if self.tenant.trim().is_empty() || self.tenant.contains('/') {
            return Err("tenant: the tenant name alone".into());
        }
        // The host alone (a port may follow): no user info, path, query or spaces, so that
        // `localhost:1@evil.example` cannot pass for this host.
        let parsed = reqwest::Url::parse(&format!("https://{}", self.host))
            .ok()
            .filter(|u| {
                u.username().is_empty()
                    && u.password().is_none()
                    && u.path() == "/"
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && !self.host.contains(['@', '/', '?', '#', '\\', ' '])
            })
            .ok_or("host: the host name alone, e.g. wd2-impl-services1.workday.com")?;
        if self.insecure_http && !crate::http::is_loopback(&parsed) {
            return Err("insecure_http: only for a test server on this host (127.0.0.1)".into());
        }
        // Every URL the source reads (the API base, the token endpoint) under the shared rule:
        // plain http only to this host.
        if let Some(u) = &self.api_base_url {
            crate::http::check_url("api_base_url", u)?;
        }
        if let WorkdayAuth::Oauth2RefreshToken {
            token_url: Some(u), ..
        } = &self.auth
        {
            crate::http::check_url("auth.token_url", u)?;
        }
        self.http_json()?.check()
    }
}

/// A Workday source.
pub struct WorkdaySource {
    pub config: WorkdayConfig,
    pub mapping: Mapping,
}

impl Source for WorkdaySource {
    async fn open(&self, ctx: &Context) -> Result<Snapshot, FetchError> {
        let config = self.config.http_json().map_err(FetchError::permanent)?;
        HttpJsonSource {
            config,
            mapping: self.mapping.clone(),
        }
        .open(ctx)
        .await
    }
}
