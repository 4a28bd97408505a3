//! The web console: server-rendered HTML pages (askama templates, checked at compile time) with
//! htmx for partial updates, vendored into the binary. The third HTTP surface beside the admin
//! API and SCIM: it depends on `web` (state, rate limiter) and the core (`roster`, `store`
//! reads, `domain`), never on `api` or `scim`.
//!
//! - `signin.rs`: the sign-in page (`/console/`), emailed one-time links, the operator token,
//!   sign-out; `session.rs`: the session cookie, CSRF tokens, the signed-in extractor.
//! - `members.rs`: the operator's org list and an org's members page (views, filters, sort,
//!   keyset paging, resend, remove, CSV export).
//! - `invitee.rs`: the public pages an invitee reaches from an email or a link: accept an
//!   invitation (`/invite/{token}`), an invite link's unlock-code page (`/invite-links/{token}`),
//!   the join page (`/join/{slug}`) and its verification landing page.
//!
//! Every action calls the same `Roster` operation as the API; a refusal shows the operation's
//! own message next to the field (or form) it is about.

mod assets;
mod form;
mod invitee;
mod members;
mod session;
mod signin;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::roster::{FieldError, RosterError};
use crate::web::AppState;
use crate::web::problem::ApiError;

/// The console's routes: `/console/…` and the invitee's public pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(signin::home))
        .route("/console/static/{file}", get(assets::serve))
        .route(
            "/console/sign-in/email",
            axum::routing::post(signin::request_link),
        )
        .route(
            "/console/sign-in/operator",
            axum::routing::post(signin::operator),
        )
        .route(
            "/console/sign-in/{token}",
            get(signin::confirm_page).post(signin::spend_link),
        )
        .route("/console/sign-out", axum::routing::post(signin::sign_out))
        .route("/console/orgs", get(members::orgs))
        .route("/console/orgs/{org}/members", get(members::list))
        .route(
            "/console/orgs/{org}/members/resend",
            axum::routing::post(members::resend),
        )
        .route(
            "/console/orgs/{org}/members/remove",
            axum::routing::post(members::remove),
        )
        .route("/console/orgs/{org}/members.csv", get(members::export))
        .route("/console/orgs/{org}/members/{id}", get(members::detail))
        .route(
            "/invite/{token}",
            get(invitee::invitation).post(invitee::accept),
        )
        .route(
            "/invite-links/{token}",
            get(invitee::link).post(invitee::accept_link),
        )
        .route("/join/{slug}", get(invitee::join_page).post(invitee::ask))
        .route(
            "/join/verify/{token}",
            get(invitee::verify_page).post(invitee::verify),
        )
}

/// The headers every console page carries: never cached, never framed, no referrer (invitation
/// and sign-in tokens are in page URLs), scripts and styles from the console itself only.
fn page_headers(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
             form-action 'self'; base-uri 'none'; object-src 'none'",
        ),
    );
}

/// Renders a template as a page with `status`.
pub(crate) fn render<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => {
            let mut res = (status, html).into_response();
            page_headers(&mut res);
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "An internal error occurred; it has been logged.",
            )
        }
    }
}

/// A page that only says something (a refusal, a result), without admin chrome.
#[derive(Template)]
#[template(path = "console/message.html")]
pub(crate) struct MessagePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let page = MessagePage {
        title,
        message: text,
    };
    match page.render() {
        Ok(html) => {
            let mut res = (status, html).into_response();
            page_headers(&mut res);
            res
        }
        Err(_) => (status, text.to_owned()).into_response(),
    }
}

/// A refusal as a page shows it: the status, the operation's words, and its field errors.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refusal {
    pub status: u16,
    pub message: String,
    pub fields: Vec<FieldError>,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The message about `field`, if the refusal names it.
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.field == field)
            .map(|f| f.message.as_str())
    }

    /// A refusal about one field.
    pub fn on(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Refusal {
            status: 400,
            message: format!("{field}: {message}"),
            fields: vec![FieldError::new(field, message)],
        }
    }

    /// A whole-form refusal with the status and words of an API error (rate limits, CSRF).
    pub fn from_api(e: ApiError) -> Self {
        Refusal {
            status: e.0.status,
            message: e.0.detail.clone(),
            fields: e.0.errors.clone(),
        }
    }
}

impl From<RosterError> for Refusal {
    fn from(e: RosterError) -> Self {
        // The same status and words the admin API answers with.
        let wrong_code = matches!(e, RosterError::WrongCode { .. });
        let api = ApiError::from(e);
        let mut r = Refusal::from_api(api);
        if wrong_code {
            r.fields.push(FieldError::new("code", r.message.clone()));
        }
        r
    }
}

/// The page for an error outside any form.
pub(crate) fn refusal_page(title: &str, r: &Refusal) -> Response {
    message(r.status(), title, &r.message)
}
