//! HTTP JSON sources: LMS platforms and other systems with a REST roster. One config-driven
//! connector: the URL, the credentials, how the system pages (offset/limit, page number, a
//! cursor field, a next-URL field, or an RFC 8288 `Link` header), where the records sit in each
//! page, and the field mapping (dot paths into each record). A `preset` fills these in for a
//! known system (Moodle web services).
//!
//! ```toml
//! [[sources]]
//! name = "lms"
//! org = "acme"
//! kind = "http_json"
//! url = "https://lms.example.com/api/v1/users"
//! records_path = "data"
//! auth = { type = "bearer", token = "env:LMS_TOKEN" }
//! pagination = { style = "cursor", cursor_param = "after", cursor_path = "meta.next_cursor" }
//! ```
//!
//! The fetch pages to the end; it fails (and the engine removes nobody) on an HTTP error that
//! retries did not cure, a page that is not JSON or has no records array, an error object in a
//! 200 answer (`error_path`), or more than `max_pages` pages.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Url;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use crate::http::redact;
use crate::mapping::Mapping;
use crate::secret::SecretRef;
use crate::source::{Context, Coverage, FetchError, Sender, Snapshot, Source};

/// Where and how to read the roster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpJsonConfig {
    /// The first page's URL (not needed with a preset, which builds it from `base_url`).
    #[serde(default)]
    pub url: Option<String>,
    /// Ready settings for a known system: `"moodle"` (web services, `core_user_get_users`).
    #[serde(default)]
    pub preset: Option<Preset>,
    /// For a preset: the site's address, e.g. `https://lms.example.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Credentials; every secret is an `env:` or `file:` reference.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// Where the records sit in each page, as a dot path (`data.users`); absent: the page is
    /// the array.
    #[serde(default)]
    pub records_path: Option<String>,
    /// How the system pages.
    #[serde(default)]
    pub pagination: Pagination,
    /// Extra query parameters on every request.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// A page that holds this path is an error, for systems that answer errors with HTTP 200
    /// (Moodle: `exception`); its `message` (or the value itself) becomes the fetch's error.
    #[serde(default)]
    pub error_path: Option<String>,
    /// Most pages one fetch reads; more fails the fetch rather than loop forever.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// At most this many requests per second to the system (absent: no limit).
    #[serde(default)]
    pub max_requests_per_second: Option<f64>,
    /// A value of the mapping's `groups` field → the rosterd group this source keeps for it.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
}

const fn default_max_pages() -> usize {
    10_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    Moodle,
}

/// How an OAuth2 client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    Basic,
    Post,
}

/// How requests prove who they are.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// `Authorization: Bearer TOKEN`.
    Bearer { token: SecretRef },
    /// HTTP basic authentication.
    Basic {
        username: String,
        password: SecretRef,
    },
    /// An API key in a header, e.g. `X-Api-Key`.
    Header { name: String, value: SecretRef },
    /// An API key as a query parameter, e.g. Moodle's `wstoken`.
    Query { name: String, value: SecretRef },
    /// OAuth2 refresh-token grant (Workday "API Client for Integrations"): a token from
    /// `token_url` for the stored refresh token, renewed like client credentials.
    #[serde(rename = "oauth2_refresh_token")]
    OAuth2Refresh {
        token_url: String,
        client_id: String,
        client_secret: SecretRef,
        refresh_token: SecretRef,
        /// How the client authenticates to the token endpoint: `basic` (default) or `post`
        /// (id and secret in the form body; one Workday host variant needs it).
        #[serde(default)]
        client_auth: ClientAuth,
    },
    /// OAuth2 client credentials: a token from `token_url`, renewed before it expires and
    /// whenever the API answers 401.
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: SecretRef,
        #[serde(default)]
        scopes: Vec<String>,
    },
}

/// How the system pages.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One response holds everyone.
    #[default]
    None,
    /// `?offset=0&limit=100`, then `offset=100`, … until a short page.
    Offset {
        #[serde(default = "offset_param")]
        offset_param: String,
        #[serde(default = "limit_param")]
        limit_param: String,
        #[serde(default = "page_size")]
        limit: usize,
        /// Where the page says how many records there are in all (Workday: `total`); with it,
        /// paging ends once that many were read, not only at a short page.
        #[serde(default)]
        total_path: Option<String>,
    },
    /// `?page=1&per_page=100`, then `page=2`, … until a short page.
    Page {
        #[serde(default = "page_param")]
        page_param: String,
        #[serde(default = "size_param")]
        size_param: String,
        #[serde(default = "page_size")]
        size: usize,
        #[serde(default = "first_page")]
        first: u64,
    },
    /// The page names the next cursor (`cursor_path`), sent back as `cursor_param`; no cursor:
    /// the end.
    Cursor {
        #[serde(default = "cursor_param")]
        cursor_param: String,
        #[serde(default = "cursor_path")]
        cursor_path: String,
    },
    /// The page holds the next page's URL at `next_path`; none: the end.
    NextUrl {
        #[serde(default = "next_path")]
        next_path: String,
    },
    /// The response's `Link: <…>; rel="next"` header (RFC 8288); none: the end.
    LinkHeader,
}

fn offset_param() -> String {
    "offset".into()
}
fn limit_param() -> String {
    "limit".into()
}
fn page_param() -> String {
    "page".into()
}
fn size_param() -> String {
    "per_page".into()
}
fn cursor_param() -> String {
    "cursor".into()
}
fn cursor_path() -> String {
    "next_cursor".into()
}
fn next_path() -> String {
    "next".into()
}
const fn page_size() -> usize {
    100
}
const fn first_page() -> u64 {
    1
}

impl HttpJsonConfig {
    /// The settings with the preset applied (explicit keys win).
    pub fn resolved(&self) -> Result<HttpJsonConfig, String> {
        let mut c = self.clone();
        if let Some(Preset::Moodle) = self.preset {
            let base = self
                .base_url
                .as_deref()
                .ok_or("base_url: the moodle preset needs the site's address")?;
            if c.url.is_none() {
                c.url = Some(format!(
                    "{}/webservice/rest/server.php",
                    base.trim_end_matches('/')
                ));
            }
            for (k, v) in [
                ("wsfunction", "core_user_get_users"),
                ("moodlewsrestformat", "json"),
                // Every user: an email LIKE '%'.
                ("criteria[0][key]", "email"),
                ("criteria[0][value]", "%"),
            ] {
                c.query.entry(k.into()).or_insert_with(|| v.into());
            }
            c.records_path.get_or_insert_with(|| "users".into());
            c.error_path.get_or_insert_with(|| "exception".into());
        }
        Ok(c)
    }

    /// Checks the settings; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        let c = self.resolved()?;
        let url = c
            .url
            .as_deref()
            .ok_or("url: missing (or set a preset and base_url)")?;
        crate::http::check_url("url", url)?;
        if let Some(Auth::OAuth2 { token_url, .. } | Auth::OAuth2Refresh { token_url, .. }) =
            &c.auth
        {
            crate::http::check_url("auth.token_url", token_url)?;
        }
        if c.max_pages == 0 {
            return Err("max_pages: must be at least 1".into());
        }
        check_rate(c.max_requests_per_second)?;
        match &c.pagination {
            Pagination::Offset { limit: 0, .. } => {
                Err("pagination.limit: must be at least 1".into())
            }
            Pagination::Page { size: 0, .. } => Err("pagination.size: must be at least 1".into()),
            _ => Ok(()),
        }
    }
}

/// The value at a dot path (`a.b.0.c`) in a JSON document.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    path.split('.').try_fold(v, |cur, key| match cur {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A JSON value as the text a mapping reads (`null` and containers: none).
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn set_param(url: &mut Url, key: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != key)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut q = url.query_pairs_mut();
    q.clear();
    for (k, v) in &kept {
        q.append_pair(k, v);
    }
    q.append_pair(key, value);
}

/// The `rel="next"` target of an RFC 8288 `Link` header.
pub fn link_next(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=")
                .map(|r| r.trim_matches('"').split_whitespace().any(|r| r == "next"))
                .unwrap_or(false)
        });
        is_next.then(|| target.to_owned())
    })
}

/// An HTTP JSON source.
pub struct HttpJsonSource {
    pub config: HttpJsonConfig,
    pub mapping: Mapping,
}

impl Source for HttpJsonSource {
    async fn open(&self, ctx: &Context) -> Result<Snapshot, FetchError> {
        let config = self.config.resolved().map_err(FetchError::permanent)?;
        // Secrets are read now, so a missing one fails the run before any request.
        let auth = match &config.auth {
            None => None,
            Some(a) => Some(resolve(a)?),
        };
        let (tx, snapshot) = Snapshot::channel(Coverage::Full);
        let ctx = ctx.clone();
        let mapping = self.mapping.clone();
        tokio::spawn(async move {
            let mut tx = tx;
            let stopped = tx.closed();
            let read = tokio::select! {
                r = fetch(&config, auth, &mapping, &ctx, &mut tx) => r,
                () = stopped => return, // the engine stopped reading (or the time ran out)
            };
            match read {
                Ok(()) => tx.done().await,
                Err(e) => tx.fail(e).await,
            }
        });
        Ok(snapshot)
    }
}

/// Credentials with their secrets read.
pub(crate) enum Resolved {
    Bearer(String),
    Basic(String, String),
    Header(String, String),
    Query(String, String),
    OAuth2(OAuth2Client),
}

/// An OAuth2 client-credentials client and its current token.
pub(crate) struct OAuth2Client {
    token_url: String,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
    /// Set for the refresh-token grant (replaced when the server rotates it).
    refresh_token: Option<String>,
    /// Where the refresh token came from: a rotated one is written back there when it can be.
    refresh_ref: Option<SecretRef>,
    client_auth: ClientAuth,
    /// The current access token, when it expires, and how long it was issued for.
    token: Option<(String, Instant, Duration)>,
}

/// Whether a token issued for `lifetime` with `left` to go is renewed before the next request:
/// once less than a quarter of its lifetime, or 30 s if that is less, remains (or it has run
/// out). A token of an hour lasts 59½ minutes; one of 20 s lasts 15 s, not one request.
pub(crate) fn renewal_due(lifetime: Duration, left: Duration) -> bool {
    left.is_zero() || left < (lifetime / 4).min(Duration::from_secs(30))
}

/// The most of a token endpoint's answer that is read.
const TOKEN_RESPONSE_MAX: u64 = 64 * 1024;

/// An upstream's own words (an OAuth2 error code) made safe for a log line and a run record:
/// control characters become spaces, and at most 120 characters are kept.
fn scrub(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    if text.chars().count() > 120 {
        out.push('…');
    }
    out
}

/// The oauth2 crate's requests, sent through our reqwest client (one HTTP stack, rustls) that
/// follows no redirect (the request carries the client secret), reading at most `max` bytes.
async fn oauth2_http(
    http: reqwest::Client,
    max: u64,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, std::io::Error> {
    let (parts, body) = req.into_parts();
    let resp = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| std::io::Error::other(crate::http::describe(&e)))?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(std::io::Error::other(format!(
            "it answered HTTP {status} (a redirect); token requests never follow redirects, \
             configure the token endpoint's own address"
        )));
    }
    let mut out = http::Response::builder().status(status);
    for (k, v) in resp.headers() {
        out = out.header(k, v);
    }
    let bytes = crate::http::read_body(resp, max, "the token response")
        .await
        .map_err(|e| std::io::Error::other(e.message))?;
    out.body(bytes).map_err(std::io::Error::other)
}

impl OAuth2Client {
    /// A client-credentials client (the token endpoint, the app's id and secret, its scopes).
    pub(crate) fn client_credentials(
        token_url: String,
        client_id: String,
        client_secret: secrecy::SecretString,
        scopes: Vec<String>,
        client_auth: ClientAuth,
    ) -> Self {
        Self {
            token_url,
            client_id,
            client_secret: client_secret.expose_secret().to_owned(),
            scopes,
            refresh_token: None,
            refresh_ref: None,
            client_auth,
            token: None,
        }
    }

    /// The access token, fetched again when missing, near its end ([`renewal_due`]), or
    /// `stale`.
    async fn token(&mut self, ctx: &Context, stale: bool) -> Result<String, FetchError> {
        use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
        if !stale
            && let Some((t, until, lifetime)) = &self.token
            && !renewal_due(*lifetime, until.saturating_duration_since(Instant::now()))
        {
            return Ok(t.clone());
        }
        let url = TokenUrl::new(self.token_url.clone())
            .map_err(|e| FetchError::permanent(format!("auth.token_url: {e}")))?;
        // A refresh token kept in a file may be rotated by another process using it (the CLI
        // beside the daemon): take the file's lock for the whole exchange, and read the token
        // again under it.
        let _lock = match (&self.refresh_ref, &mut self.refresh_token) {
            (Some(secret @ SecretRef::File(path)), Some(current)) => {
                let lock = lock_file(path, ctx.request_timeout).await?;
                if let Ok(v) = secret.resolve() {
                    *current = v.expose_secret().to_owned();
                }
                lock
            }
            _ => None,
        };
        let client = oauth2::basic::BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.client_secret.clone()))
            .set_auth_type(match self.client_auth {
                ClientAuth::Basic => oauth2::AuthType::BasicAuth,
                ClientAuth::Post => oauth2::AuthType::RequestBody,
            })
            .set_token_uri(url);
        // A token answer is a few hundred bytes: a token endpoint gets no more than 64 KiB.
        let (http, max) = (
            ctx.token_http.clone(),
            ctx.max_response_bytes.min(TOKEN_RESPONSE_MAX),
        );
        let call = move |req: oauth2::HttpRequest| oauth2_http(http.clone(), max, req);
        let result = match &self.refresh_token {
            Some(r) => {
                let refresh = oauth2::RefreshToken::new(r.clone());
                client
                    .exchange_refresh_token(&refresh)
                    .request_async(&call)
                    .await
            }
            None => {
                let mut request = client.exchange_client_credentials();
                for s in &self.scopes {
                    request = request.add_scope(Scope::new(s.clone()));
                }
                request.request_async(&call).await
            }
        };
        let response = result.map_err(|e| {
            let detail = match &e {
                oauth2::RequestTokenError::ServerResponse(r) => scrub(r.error().as_ref()),
                oauth2::RequestTokenError::Request(e) => {
                    format!("the token endpoint cannot be read: {e}")
                }
                oauth2::RequestTokenError::Parse(_, _) => {
                    "the token endpoint answered something else than a token".into()
                }
                oauth2::RequestTokenError::Other(m) => m.clone(),
            };
            FetchError::transient(format!(
                "OAuth2 token request to {}: {detail}",
                redact(&self.token_url)
            ))
        })?;
        let token = response.access_token().secret().clone();
        // A rotated refresh token replaces the old one for the rest of the run, and in its
        // `file:` secret for the runs after (the old one may no longer work).
        if let (Some(r), Some(new)) = (&mut self.refresh_token, response.refresh_token())
            && new.secret() != r
        {
            *r = new.secret().clone();
            match self.refresh_ref.as_ref().map(|s| s.store(r)) {
                Some(Ok(true)) => tracing::info!(
                    secret = %self.refresh_ref.as_ref().map(ToString::to_string).unwrap_or_default(),
                    "stored the rotated OAuth2 refresh token"
                ),
                Some(Ok(false)) | None => tracing::warn!(
                    "the token endpoint rotated the refresh token, but it comes from an env: \
                     reference and cannot be stored; use a file: reference (or a non-expiring \
                     token)"
                ),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cannot store the rotated refresh token")
                }
            }
        }
        let lifetime = response.expires_in().unwrap_or(Duration::from_secs(3600));
        self.token = Some((token.clone(), Instant::now() + lifetime, lifetime));
        Ok(token)
    }
}

/// An exclusive lock on `{path}.lock`, held until dropped; `None` (and no lock) when the file
/// cannot be created, e.g. a read-only secrets directory, where nothing can rotate anyway.
/// Waiting longer than `wait` for another process fails the fetch (transient).
async fn lock_file(path: &str, wait: Duration) -> Result<Option<std::fs::File>, FetchError> {
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("{path}.lock"))
    else {
        return Ok(None);
    };
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(FetchError::transient(format!(
                    "another process held the lock on {path}.lock for over {} ms",
                    wait.as_millis()
                )));
            }
            Err(std::fs::TryLockError::Error(_)) => return Ok(None),
        }
    }
}

pub(crate) fn resolve(a: &Auth) -> Result<Resolved, FetchError> {
    let read = |r: &SecretRef| {
        r.resolve()
            .map(|s| s.expose_secret().to_owned())
            .map_err(|e| FetchError::permanent(format!("auth: {e}")))
    };
    Ok(match a {
        Auth::Bearer { token } => Resolved::Bearer(read(token)?),
        Auth::Basic { username, password } => Resolved::Basic(username.clone(), read(password)?),
        Auth::Header { name, value } => Resolved::Header(name.clone(), read(value)?),
        Auth::Query { name, value } => Resolved::Query(name.clone(), read(value)?),
        Auth::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scopes,
        } => Resolved::OAuth2(OAuth2Client {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: read(client_secret)?,
            scopes: scopes.clone(),
            refresh_token: None,
            refresh_ref: None,
            client_auth: ClientAuth::Basic,
            token: None,
        }),
        Auth::OAuth2Refresh {
            token_url,
            client_id,
            client_secret,
            refresh_token,
            client_auth,
        } => Resolved::OAuth2(OAuth2Client {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: read(client_secret)?,
            scopes: Vec::new(),
            refresh_token: Some(read(refresh_token)?),
            refresh_ref: Some(refresh_token.clone()),
            client_auth: *client_auth,
            token: None,
        }),
    })
}

/// Checks a `max_requests_per_second` setting: a finite number, at least one request in
/// 1000 seconds.
pub(crate) fn check_rate(rate: Option<f64>) -> Result<(), String> {
    match rate {
        Some(r) if !(r.is_finite() && (0.001..=100_000.0).contains(&r)) => {
            Err("max_requests_per_second: a number between 0.001 and 100000".into())
        }
        _ => Ok(()),
    }
}

/// Sends a source's GET requests: its credentials (an OAuth2 token renewed once on a 401), its
/// request rate limit, and the shared retries of [`crate::http::send`].
pub(crate) struct Requester {
    auth: Option<Resolved>,
    gap: Option<Duration>,
    last: Option<Instant>,
}

impl Requester {
    pub(crate) fn new(auth: Option<Resolved>, per_second: Option<f64>) -> Self {
        Self {
            auth,
            gap: per_second.and_then(|r| Duration::try_from_secs_f64(1.0 / r).ok()),
            last: None,
        }
    }

    /// GETs `url` (`what` names it in errors, without secrets) and returns a 2xx response.
    pub(crate) async fn get(
        &mut self,
        ctx: &Context,
        url: &Url,
        what: &str,
    ) -> Result<reqwest::Response, FetchError> {
        if let (Some(gap), Some(last)) = (self.gap, self.last) {
            let since = last.elapsed();
            if since < gap {
                tokio::time::sleep(gap - since).await;
            }
        }
        self.last = Some(Instant::now());
        let mut request_url = url.clone();
        if let Some(Resolved::Query(name, value)) = self.auth.as_ref() {
            set_param(&mut request_url, name, value);
        }
        // A 401 with an OAuth2 token: the token may have been revoked or expired early; one
        // fresh token and one more try.
        for attempt in 0..2 {
            let bearer = match self.auth.as_mut() {
                Some(Resolved::OAuth2(o)) => Some(o.token(ctx, attempt > 0).await?),
                Some(Resolved::Bearer(t)) => Some(t.clone()),
                _ => None,
            };
            let auth = self.auth.as_ref();
            let sent = crate::http::send(ctx, what, || {
                let r = ctx.http.get(request_url.clone());
                if let Some(t) = &bearer {
                    return r.bearer_auth(t);
                }
                match auth {
                    Some(Resolved::Basic(u, p)) => r.basic_auth(u, Some(p)),
                    Some(Resolved::Header(n, v)) => r.header(n.as_str(), v.as_str()),
                    _ => r,
                }
            })
            .await;
            match sent {
                Err(e)
                    if e.status == Some(401)
                        && attempt == 0
                        && matches!(auth, Some(Resolved::OAuth2(_))) => {}
                other => return other,
            }
        }
        Err(FetchError::permanent(format!(
            "{what}: refused the OAuth2 token"
        )))
    }
}

async fn fetch(
    c: &HttpJsonConfig,
    auth: Option<Resolved>,
    mapping: &Mapping,
    ctx: &Context,
    tx: &mut Sender,
) -> Result<(), FetchError> {
    let first = c.url.as_deref().unwrap_or_default();
    // Checked again here: a source opened without its config's check still never reads in
    // clear from another host.
    let origin = crate::http::check_url("url", first).map_err(FetchError::permanent)?;
    let mut url = origin.clone();
    for (k, v) in &c.query {
        set_param(&mut url, k, v);
    }
    let (mut offset, mut page) = (0usize, 0u64);
    match &c.pagination {
        Pagination::Offset {
            offset_param,
            limit_param,
            limit,
            ..
        } => {
            set_param(&mut url, offset_param, "0");
            set_param(&mut url, limit_param, &limit.to_string());
        }
        Pagination::Page {
            page_param,
            size_param,
            size,
            first,
        } => {
            page = *first;
            set_param(&mut url, page_param, &page.to_string());
            set_param(&mut url, size_param, &size.to_string());
        }
        _ => {}
    }
    let fields: Vec<String> = mapping.fields().into_iter().map(str::to_owned).collect();
    let mut client = Requester::new(auth, c.max_requests_per_second);
    let mut record_no = 0u64;
    for pages in 1.. {
        if pages > c.max_pages {
            return Err(FetchError::permanent(format!(
                "more than max_pages ({}) pages; the roster was not read to the end",
                c.max_pages
            )));
        }
        let what = redact(url.as_str());
        let resp = client.get(ctx, &url, &what).await?;
        let link = resp
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(link_next);
        let body = crate::http::read_body(resp, ctx.max_response_bytes, &what).await?;
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| FetchError::permanent(format!("{what}: page {pages} is not JSON: {e}")))?;
        if let Some(p) = &c.error_path
            && let Some(err) = at(&doc, p)
        {
            let message = doc
                .get("message")
                .and_then(text)
                .or_else(|| text(err))
                .unwrap_or_else(|| err.to_string());
            return Err(FetchError::permanent(format!(
                "{what}: the system answered with an error: {message}"
            )));
        }
        let path = c.records_path.as_deref().unwrap_or("");
        let Some(Value::Array(records)) = at(&doc, path) else {
            return Err(FetchError::permanent(format!(
                "{what}: page {pages} has no records array at `{path}`"
            )));
        };
        let n = records.len();
        for r in records {
            record_no += 1;
            let values: Vec<(&str, Option<String>)> = fields
                .iter()
                .map(|f| (f.as_str(), at(r, f).and_then(text)))
                .collect();
            let get = |name: &str| -> Option<&str> {
                values
                    .iter()
                    .find(|(f, _)| *f == name)
                    .and_then(|(_, v)| v.as_deref())
            };
            let row = mapping.apply(record_no, get);
            if !tx.row((record_no, row)).await {
                return Ok(()); // the engine stopped reading
            }
        }
        // The next page, or the end.
        match &c.pagination {
            Pagination::None => return Ok(()),
            Pagination::Offset {
                offset_param,
                limit,
                total_path,
                ..
            } => {
                offset += n;
                let total = total_path
                    .as_deref()
                    .and_then(|p| at(&doc, p))
                    .and_then(Value::as_u64);
                match total {
                    // The upstream said how many there are: fewer is a read cut short.
                    Some(t) if (offset as u64) < t && n == 0 => {
                        return Err(FetchError::permanent(format!(
                            "{what}: the system said there are {t} records but gave {offset} \
                             (an empty page at offset {offset}); the roster was not read to \
                             the end"
                        )));
                    }
                    Some(t) if offset as u64 >= t => return Ok(()),
                    Some(_) => {}
                    None if n < *limit => return Ok(()),
                    None => {}
                }
                set_param(&mut url, offset_param, &offset.to_string());
            }
            Pagination::Page {
                page_param, size, ..
            } => {
                if n < *size {
                    return Ok(());
                }
                page += 1;
                set_param(&mut url, page_param, &page.to_string());
            }
            Pagination::Cursor {
                cursor_param,
                cursor_path,
            } => match at(&doc, cursor_path)
                .and_then(text)
                .filter(|s| !s.is_empty())
            {
                Some(cursor) => set_param(&mut url, cursor_param, &cursor),
                None => return Ok(()),
            },
            Pagination::NextUrl { next_path } => {
                match at(&doc, next_path).and_then(text).filter(|s| !s.is_empty()) {
                    Some(next) => url = follow(&origin, &url, &next, &what)?,
                    None => return Ok(()),
                }
            }
            Pagination::LinkHeader => match link {
                Some(next) => url = follow(&origin, &url, &next, &what)?,
                None => return Ok(()),
            },
        }
    }
    Ok(())
}

/// The next page's URL (`next`, relative to the current page `url`), only when it is on the
/// configured `origin`: the source's credentials are never sent anywhere else.
fn follow(origin: &Url, url: &Url, next: &str, what: &str) -> Result<Url, FetchError> {
    let shown = redact(next);
    let u = url
        .join(next)
        .map_err(|e| FetchError::permanent(format!("{what}: bad next page URL `{shown}`: {e}")))?;
    if !crate::http::same_origin(origin, &u) {
        return Err(FetchError::permanent(format!(
            "{what}: the next page is on another origin (`{}`); not followed, so the \
             credentials stay with the configured one",
            redact(u.as_str())
        )));
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clients_sharing_a_rotating_refresh_token_file_take_turns() {
        use std::sync::{Arc, Mutex};
        // A token endpoint that accepts only the current refresh token and rotates it.
        let current = Arc::new(Mutex::new((String::from("r1"), 0usize)));
        let c = current.clone();
        let router = axum::Router::new().route(
            "/token",
            axum::routing::post(move |body: String| {
                let c = c.clone();
                async move {
                    let mut st = c.lock().unwrap();
                    if !body.contains(&format!("refresh_token={}", st.0)) {
                        return (
                            axum::http::StatusCode::BAD_REQUEST,
                            axum::Json(serde_json::json!({"error": "invalid_grant"})),
                        );
                    }
                    st.1 += 1;
                    st.0 = format!("r{}", st.1 + 1);
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(serde_json::json!({"access_token": format!("a{}", st.1),
                            "token_type": "bearer", "expires_in": 3600, "refresh_token": st.0})),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let dir = std::env::temp_dir().join(format!("rosterd-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rt");
        std::fs::write(&file, "r1\n").unwrap();
        let auth: Auth = toml::from_str(&format!(
            "type = \"oauth2_refresh_token\"\ntoken_url = \"{url}\"\nclient_id = \"c\"\n\
             client_secret = \"file:{f}\"\nrefresh_token = \"file:{f}\"\n",
            f = file.display()
        ))
        .unwrap();
        // Two users of one token file (the daemon and the CLI, say), both started with r1.
        let (Resolved::OAuth2(mut a), Resolved::OAuth2(mut b)) =
            (resolve(&auth).unwrap(), resolve(&auth).unwrap())
        else {
            panic!("an OAuth2 client");
        };
        let ctx = Context::new(".".into(), std::time::Duration::from_secs(60)).unwrap();
        let (ta, tb) = tokio::join!(a.token(&ctx, false), b.token(&ctx, false));
        let mut tokens = [ta.unwrap(), tb.unwrap()];
        tokens.sort();
        assert_eq!(tokens, ["a1", "a2"], "both exchanged, one after the other");
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "r3");
        // A lock someone else never lets go of: the exchange gives up after the request
        // timeout instead of hanging the run.
        let holder = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(format!("{}.lock", file.display()))
            .unwrap();
        holder.lock().unwrap();
        let mut impatient = ctx.clone();
        impatient.request_timeout = Duration::from_millis(200);
        let err = a.token(&impatient, true).await.unwrap_err();
        assert!(
            err.transient && err.message.contains("held the lock"),
            "{err}"
        );
        drop(holder);
        assert!(a.token(&impatient, true).await.is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn token_endpoint_answers_are_bounded_and_their_words_scrubbed() {
        // One endpoint answers an error whose code is long and full of control characters,
        // the other a token answer far larger than any token.
        let router = axum::Router::new()
            .route(
                "/loud",
                axum::routing::post(|| async {
                    let code = format!("bad\n\u{1b}[31m{}", "x".repeat(5000));
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(serde_json::json!({ "error": code })),
                    )
                }),
            )
            .route(
                "/huge",
                axum::routing::post(|| async {
                    axum::Json(
                        serde_json::json!({"access_token": "t", "token_type": "bearer",
                        "padding": "p".repeat(200 * 1024)}),
                    )
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let ctx = Context::new(".".into(), std::time::Duration::from_secs(60)).unwrap();
        for (path, expect) in [("loud", "bad  [31mxxx"), ("huge", "larger than")] {
            let auth: Auth = toml::from_str(&format!(
                "type = \"oauth2_client_credentials\"\ntoken_url = \"{base}/{path}\"\n\
                 client_id = \"c\"\nclient_secret = \"env:PATH\"\n"
            ))
            .unwrap();
            let Resolved::OAuth2(mut client) = resolve(&auth).unwrap() else {
                panic!("an OAuth2 client");
            };
            let err = client.token(&ctx, false).await.unwrap_err();
            assert!(err.message.contains(expect), "{path}: {}", err.message);
            assert!(
                err.message.len() < 600,
                "{path}: {} bytes",
                err.message.len()
            );
            assert!(!err.message.contains('\u{1b}') && !err.message.contains('\n'));
        }
    }

    #[test]
    fn renewal_is_due_at_a_quarter_of_the_lifetime() {
        let s = Duration::from_secs;
        // An hour's token: renewed in its last 30 s, as before.
        assert!(!renewal_due(s(3600), s(31)));
        assert!(renewal_due(s(3600), s(29)));
        // Short tokens last three quarters of their life, not one request: 20 s → 15 s.
        assert!(!renewal_due(s(20), s(6)));
        assert!(renewal_due(s(20), s(4)));
        assert!(!renewal_due(s(3), Duration::from_millis(800)));
        assert!(renewal_due(s(3), Duration::from_millis(700)));
        // Expired (or expiring now) is always renewed.
        assert!(renewal_due(s(3600), Duration::ZERO));
        assert!(renewal_due(Duration::ZERO, Duration::ZERO));
    }

    #[test]
    fn link_headers_and_dot_paths() {
        assert_eq!(
            link_next(r#"<https://x/u?page=1>; rel="prev", <https://x/u?page=3>; rel="next""#),
            Some("https://x/u?page=3".into())
        );
        assert_eq!(link_next(r#"<https://x/u?page=1>; rel="last""#), None);
        let v: Value = serde_json::json!({"a": {"b": [{"c": 7}]}});
        assert_eq!(at(&v, "a.b.0.c"), Some(&serde_json::json!(7)));
        assert_eq!(at(&v, "a.x"), None);
    }

    #[test]
    fn the_moodle_preset_fills_in_the_web_service_call() {
        let c: HttpJsonConfig =
            toml::from_str("preset = \"moodle\"\nbase_url = \"https://lms.example.com/\"\nauth = { type = \"query\", name = \"wstoken\", value = \"env:T\" }").unwrap();
        let r = c.resolved().unwrap();
        assert_eq!(
            r.url.as_deref(),
            Some("https://lms.example.com/webservice/rest/server.php")
        );
        assert_eq!(r.query["wsfunction"], "core_user_get_users");
        assert_eq!(r.records_path.as_deref(), Some("users"));
        assert!(c.check().is_ok());
        let bad: HttpJsonConfig = toml::from_str("preset = \"moodle\"").unwrap();
        assert!(bad.check().unwrap_err().contains("base_url"));
    }
}
