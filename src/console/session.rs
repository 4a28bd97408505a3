//! The session cookie, CSRF tokens and the signed-in extractor.
//!
//! The cookie `rosterd_session` holds the session's secret (HttpOnly, SameSite=Lax, Path
//! `/console`, Secure when `public_url` is https); the store keeps its hash. Signed in, every
//! form carries the session's CSRF token. Signed out (sign-in and the invitee's pages), forms
//! carry a random token that must match the `rosterd_csrf` cookie set with the page (a double
//! submit): a form posted from another site has neither.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::form::FormData;
use crate::roster::console::ConsoleSession;
use crate::store::orgs::Org;
use crate::token;
use crate::web::AppState;

pub(crate) const SESSION_COOKIE: &str = "rosterd_session";
pub(crate) const CSRF_COOKIE: &str = "rosterd_csrf";

/// The value of cookie `name` in a request, if sent (and plain: letters, digits, `-_`).
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn secure(state: &AppState) -> &'static str {
    if state.config.server.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// The `Set-Cookie` value that gives a browser its session.
pub(crate) fn session_cookie(state: &AppState, secret: &str) -> HeaderValue {
    let v = format!(
        "{SESSION_COOKIE}={secret}; Path=/console; HttpOnly; SameSite=Lax{}",
        secure(state)
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that takes the session cookie away.
pub(crate) fn clear_session_cookie(state: &AppState) -> HeaderValue {
    let v = format!(
        "{SESSION_COOKIE}=; Path=/console; HttpOnly; SameSite=Lax; Max-Age=0{}",
        secure(state)
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The CSRF token of a signed-out form: the browser's `rosterd_csrf` cookie, or a new one with
/// the `Set-Cookie` that gives it.
pub(crate) fn public_csrf(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(t) = cookie(headers, CSRF_COOKIE) {
        return (t.to_owned(), None);
    }
    let t = token::random_secret();
    let v = format!(
        "{CSRF_COOKIE}={t}; Path=/; HttpOnly; SameSite=Lax{}",
        secure(state)
    );
    (t, HeaderValue::from_str(&v).ok())
}

/// Whether a signed-out form's token matches the browser's cookie.
pub(crate) fn public_csrf_ok(headers: &HeaderMap, form: &FormData) -> bool {
    match (cookie(headers, CSRF_COOKIE), form.get("csrf")) {
        (Some(c), Some(f)) => token::equal(c, f),
        _ => false,
    }
}

/// Adds a `Set-Cookie` to a response, if any.
pub(crate) fn with_cookie(mut res: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// The page a refused form post gets.
pub(crate) fn csrf_refused() -> Response {
    super::message(
        StatusCode::FORBIDDEN,
        "This form cannot be accepted",
        "The form expired or did not come from this page. Go back, reload the page and try \
         again.",
    )
}

/// A signed-in browser. Extracting it from a request without a live session redirects to the
/// sign-in page (for a form post, the post is refused).
pub(crate) struct SignedIn(pub ConsoleSession);

impl SignedIn {
    /// Whether a posted form carries this session's CSRF token.
    pub fn csrf_ok(&self, form: &FormData) -> bool {
        form.get("csrf")
            .is_some_and(|f| token::equal(f, &self.0.csrf))
    }

    /// The org at `slug` if this session may see it: the operator every org, an admin only
    /// their own. Any other slug is "not found", as if no such org existed.
    pub async fn org(&self, state: &AppState, slug: &str) -> Result<Org, Response> {
        let not_found = || {
            super::message(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such organization.",
            )
        };
        match &self.0.org {
            Some(own) if own.slug == slug => Ok(own.clone()),
            Some(_) => Err(not_found()),
            None => {
                if crate::domain::Slug::parse(slug).is_err() {
                    return Err(not_found());
                }
                match state.roster.org_by_slug(slug).await {
                    Ok(Some(org)) => Ok(org),
                    Ok(None) => Err(not_found()),
                    Err(e) => Err(super::refusal_page("Error", &e.into())),
                }
            }
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let refuse = |parts: &Parts| {
            if parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD {
                Redirect::to("/console/").into_response()
            } else {
                super::message(
                    StatusCode::UNAUTHORIZED,
                    "Signed out",
                    "Your session has ended. Sign in again to continue.",
                )
            }
        };
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(refuse(parts));
        };
        match state.roster.console_session(secret).await {
            Ok(Some(s)) => Ok(SignedIn(s)),
            Ok(None) => {
                let mut res = refuse(parts);
                res.headers_mut()
                    .append(header::SET_COOKIE, clear_session_cookie(state));
                Err(res)
            }
            Err(e) => Err(super::refusal_page("Error", &e.into())),
        }
    }
}

/// The signed-in session, if any (never refuses).
pub(crate) struct MaybeSignedIn(pub Option<ConsoleSession>);

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(MaybeSignedIn(None));
        };
        Ok(MaybeSignedIn(
            state.roster.console_session(secret).await.ok().flatten(),
        ))
    }
}
