//! One HTTP request with the retries every connector shares: transient failures (network
//! errors, timeouts, 5xx, 429) are retried with exponential backoff and jitter, a `Retry-After`
//! header on 429/503 is honoured, and anything else fails at once with the status and a short
//! piece of the body.
//!
//! Also the rules every connector's HTTP follows: plain `http://` only to this host
//! ([`check_url`]), redirects followed only within the origin of the request (token requests
//! never follow one, [`clients`]), and every body read under a byte limit ([`read_body`]).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Response, StatusCode, Url};

use crate::source::{Context, FetchError};

/// Longest `Retry-After` wait honoured; a server asking for more fails the fetch instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Most bytes of an error response read (its first 200 characters go into the message).
pub const MAX_ERROR_BODY: usize = 8 * 1024;

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

/// Whether `host` (a host name or IP literal, IPv6 with or without brackets) is this machine:
/// a loopback IP address or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    host.eq_ignore_ascii_case("localhost")
}

/// Whether a parsed URL's host is this machine (see [`is_loopback_host`]).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // A non-special scheme (ldap://) leaves IP literals unparsed.
        Some(url::Host::Domain(d)) => is_loopback_host(d),
        None => false,
    }
}

/// Parses a connector URL setting: `https://`, or `http://` only to this host (a local test
/// server or relay) — credentials and rosters never cross the network in clear. The message
/// names `key` and shows the URL without secrets.
pub fn check_url(key: &str, url: &str) -> Result<Url, String> {
    let shown = redact(url);
    let u = Url::parse(url).map_err(|e| format!("{key}: `{shown}` is not a URL: {e}"))?;
    match u.scheme() {
        "https" => {}
        "http" if is_loopback(&u) => {}
        "http" => {
            return Err(format!(
                "{key}: `{shown}` is plain http to another host; use https:// (http:// is \
                 allowed only to this host: 127.0.0.1, ::1 or localhost)"
            ));
        }
        _ => return Err(format!("{key}: `{shown}` is not an https:// URL")),
    }
    if u.host().is_none() {
        return Err(format!("{key}: `{shown}` has no host"));
    }
    Ok(u)
}

/// Whether two URLs share scheme, host and port (the origin credentials are meant for).
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// A URL for messages: without its query string, fragment, or user name and password (they
/// may carry a key). Text the `url` crate cannot parse, or where an `@` was not taken as the end
/// of user info (a password holding `?`, `/` or `#` cuts it short: `u:12?x@h` parses as host
/// `u`, port 12), shows only its scheme: any part of it may be a secret.
pub fn redact(url: &str) -> String {
    let parsed = Url::parse(url)
        .ok()
        .filter(|u| !url.contains('@') || !u.username().is_empty() || u.password().is_some());
    match parsed {
        Some(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            // Fails only for URLs that cannot have credentials (no host), which have none.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        None => {
            let scheme = url
                .split_once("://")
                .map(|(s, _)| s)
                .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()))
                .unwrap_or("?");
            format!("{scheme}://… (hidden: not a valid URL)")
        }
    }
}

/// The HTTP clients of a [`Context`]: one for reading, which follows redirects only within the
/// origin it was sent to (so a credential never follows a redirect elsewhere), and one for
/// token requests, which follows none (a token request carries the client secret). Each wait
/// for the server (connect, headers, every read of a body) is bounded by `timeout`.
pub fn clients(timeout: Duration) -> Result<(reqwest::Client, reqwest::Client), FetchError> {
    let same_origin_only = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let follow = attempt
            .previous()
            .first()
            .is_some_and(|first| same_origin(first, attempt.url()));
        if follow {
            attempt.follow()
        } else {
            let to = redact(attempt.url().as_str());
            attempt.error(format!(
                "redirected to another origin ({to}); not followed (configure that address \
                 if it is the right one)"
            ))
        }
    });
    let build = |policy| {
        reqwest::Client::builder()
            .user_agent(concat!("rosterd/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .read_timeout(timeout)
            .redirect(policy)
            .build()
            .map_err(|e| FetchError::permanent(format!("HTTP client: {e}")))
    };
    Ok((
        build(same_origin_only)?,
        build(reqwest::redirect::Policy::none())?,
    ))
}

/// The error for a response over the limit.
pub(crate) fn too_large(what: &str, max: u64) -> FetchError {
    FetchError::permanent(format!(
        "{what}: the response is larger than sync.max_response_bytes ({max} bytes); not read"
    ))
}

/// Values of a request that may be credentials: every header value but a few plain ones (with
/// the token after an auth scheme, and a basic pair decoded), and every query value, each also
/// percent-encoded. Short values (under 6 characters) are left: they are page numbers and the
/// like, and scrubbing them would garble the message.
fn request_secrets(req: &reqwest::Request) -> Vec<String> {
    use base64::Engine;
    const PLAIN: [&str; 4] = ["accept", "content-type", "user-agent", "accept-encoding"];
    let mut out: Vec<String> = Vec::new();
    let mut add = |v: &str| {
        if v.chars().count() >= 6 {
            out.push(v.to_owned());
            let enc: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            if enc != v {
                out.push(enc);
            }
        }
    };
    for (name, value) in req.headers() {
        if PLAIN.contains(&name.as_str()) {
            continue;
        }
        let Ok(v) = value.to_str() else { continue };
        add(v);
        if let Some((scheme, rest)) = v.split_once(' ') {
            add(rest.trim());
            if scheme.eq_ignore_ascii_case("basic")
                && let Ok(pair) = base64::engine::general_purpose::STANDARD.decode(rest.trim())
                && let Ok(pair) = String::from_utf8(pair)
            {
                add(&pair);
                if let Some((_, password)) = pair.split_once(':') {
                    add(password);
                }
            }
        }
    }
    for (_, v) in req.url().query_pairs() {
        add(&v);
    }
    // Longest first, so a value containing another is replaced whole.
    out.sort_by_key(|v| std::cmp::Reverse(v.len()));
    out
}

/// `text` with every one of `secrets` replaced by `***`.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for s in secrets {
        if text.contains(s.as_str()) {
            text = text.replace(s.as_str(), "***");
        }
    }
    text
}

/// Reads a response's body, failing (without reading on) once it passes `max` bytes.
pub async fn read_body(mut resp: Response, max: u64, what: &str) -> Result<Vec<u8>, FetchError> {
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(too_large(what, max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| body_error(what, &e))? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(too_large(what, max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of an error response's body (at most [`MAX_ERROR_BODY`] bytes are read), and
/// whether there was more.
async fn error_body(mut resp: Response) -> (String, bool) {
    let mut body = Vec::new();
    let mut more = false;
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ERROR_BODY - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            more = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    (String::from_utf8_lossy(&body).into_owned(), more)
}

#[derive(Debug)]
struct Attempt {
    error: FetchError,
    retry_after: Option<Duration>,
}

fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Sends the request `build` makes (again on each attempt) and returns a 2xx response, or a
/// `304 Not Modified` (only a conditional request, which the caller made, gets one).
pub async fn send(
    ctx: &Context,
    what: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Response, FetchError> {
    let attempt = || async {
        // Waiting for the response headers is bounded here; the body's reads are bounded by
        // the client's read timeout, so a large download is not cut off.
        let resp = tokio::time::timeout(ctx.request_timeout, build().send())
            .await
            .map_err(|_| Attempt {
                error: FetchError::transient(format!("{what}: timed out waiting for the response")),
                retry_after: None,
            })?
            .map_err(|e| Attempt {
                error: FetchError::transient(format!("{what}: {}", describe(&e))),
                retry_after: None,
            })?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let wait = retry_after(&resp);
        let transient = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        let (body, more) = error_body(resp).await;
        // An upstream that echoes the request must not put our credentials into run
        // messages and logs.
        let body = match build().build() {
            Ok(req) => scrub(&body, &request_secrets(&req)),
            Err(_) => body,
        };
        let snippet: String = body.chars().take(200).collect();
        let mut message = format!("{what}: HTTP {status}: {}", snippet.trim());
        if more {
            message.push_str(&format!(
                " (the body passed {MAX_ERROR_BODY} bytes; the rest was not read)"
            ));
        }
        let mut error = if transient {
            FetchError::transient(message)
        } else {
            FetchError::permanent(message)
        };
        error.status = Some(status.as_u16());
        Err(Attempt {
            error,
            retry_after: wait,
        })
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(ctx.retry_base)
        .with_max_delay(Duration::from_secs(60))
        .with_max_times(ctx.retries)
        .with_jitter();
    attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|a: &Attempt| a.error.transient && a.retry_after.is_none_or(|d| d <= MAX_RETRY_AFTER))
        .adjust(|a: &Attempt, d| a.retry_after.or(d))
        .await
        .map_err(|a| a.error)
}

/// A reqwest error in words, without the URL's query string (it may carry a key).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the response broke off"
    } else {
        "request failed"
    };
    let mut msg = kind.to_owned();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// A streamed body chunk error, in words.
pub fn body_error(what: &str, e: &reqwest::Error) -> FetchError {
    FetchError::transient(format!("{what}: {}", describe(e)))
}

#[cfg(test)]
mod scrub_tests {
    use super::*;

    #[test]
    fn echoed_credentials_are_scrubbed_in_every_form() {
        let client = reqwest::Client::new();
        let req = client
            .get("https://h.example/users?wstoken=SUPERSECRET-abc&page=2")
            .bearer_auth("BEARER-SECRET-123")
            .header("x-api-key", "KEY/with+chars")
            .build()
            .unwrap();
        let basic = client
            .get("https://h.example/u")
            .basic_auth("svc", Some("PASS-WORD-xyz"))
            .build()
            .unwrap();
        let mut secrets = request_secrets(&req);
        secrets.extend(request_secrets(&basic));
        let echo = "auth=Bearer BEARER-SECRET-123 path=/users?wstoken=SUPERSECRET-abc&page=2 \
                    key=KEY%2Fwith%2Bchars basic=Basic c3ZjOlBBU1MtV09SRC14eXo= pw=PASS-WORD-xyz";
        let clean = scrub(echo, &secrets);
        for leaked in [
            "BEARER-SECRET-123",
            "SUPERSECRET-abc",
            "KEY%2Fwith%2Bchars",
            "c3ZjOlBBU1MtV09SRC14eXo=",
            "PASS-WORD-xyz",
        ] {
            assert!(!clean.contains(leaked), "{leaked} in {clean}");
        }
        assert!(clean.contains("page=2"), "short values stay: {clean}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords_holding_url_delimiters() {
        assert_eq!(
            redact("https://u:secret@lms.example/users?wstoken=k#frag"),
            "https://lms.example/users"
        );
        assert_eq!(
            redact("https://u:p%3Fa%2F%40ss@h.example/x"),
            "https://h.example/x"
        );
        for leaky in [
            "https://u:pa?ss@h.example/x",
            "https://u:pa/ss@h.example/x",
            "https://u:pa@ss@h.example/x?k=pa?ss",
            "https://u:pa#ss@h.example/x",
            "https://u:12?pass@h.example/x",
            "https://u:12/pass@h.example/x",
        ] {
            let shown = redact(leaky);
            assert!(
                !shown.contains("pa") && !shown.contains("ss"),
                "{leaky} → {shown}"
            );
        }
    }

    #[test]
    fn plain_http_only_to_this_host() {
        for ok in [
            "https://lms.example/x",
            "http://127.0.0.1:8080/x",
            "http://127.8.9.1/x",
            "http://[::1]:9/x",
            "http://localhost/x",
            "http://LOCALHOST:1/x",
        ] {
            assert!(check_url("url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://lms.example/x",
            "http://localhost:1@evil.example/",
            "http://127.0.0.1@evil.example/",
            "http://localhost.evil.example/",
            "http://10.0.0.1/x",
            "ftp://localhost/x",
            "file:///etc/passwd",
        ] {
            let e = check_url("url", bad).unwrap_err();
            assert!(e.starts_with("url: "), "{bad}: {e}");
        }
        assert!(is_loopback_host("127.0.0.1") && is_loopback_host("::1"));
        assert!(is_loopback_host("[::1]") && is_loopback_host("localhost"));
        assert!(!is_loopback_host("localhost:1@evil.example") && !is_loopback_host("mail.example"));
        let ldap = |u: &str| is_loopback(&Url::parse(u).unwrap());
        assert!(ldap("ldap://127.0.0.1:389") && ldap("ldap://[::1]") && ldap("ldap://localhost"));
        assert!(!ldap("ldap://localhost:1@evil.example") && !ldap("ldap://dc.example"));
    }
}
