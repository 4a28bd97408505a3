//! One HTTP request with the retries every connector shares: transient failures (network
//! errors, timeouts, 5xx, 429) are retried with exponential backoff and jitter, a `Retry-After`
//! header on 429/503 is honoured, and anything else fails at once with the status and a short
//! piece of the body.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Response, StatusCode};

use crate::source::{Context, FetchError};

/// Longest `Retry-After` wait honoured; a server asking for more fails the fetch instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

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

/// Sends the request `build` makes (again on each attempt) and returns a 2xx response.
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
        if status.is_success() {
            return Ok(resp);
        }
        let wait = retry_after(&resp);
        let transient = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        let body = resp.text().await.unwrap_or_default();
        let snippet: String = body.chars().take(200).collect();
        let message = format!("{what}: HTTP {status}: {}", snippet.trim());
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
fn describe(e: &reqwest::Error) -> String {
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
