//! Signing in and out: `/console/` (the sign-in page when signed out), the emailed one-time
//! link, the operator token, sign-out. Every sign-in attempt spends the client's
//! failed-authentication budget (`web::ratelimit`), so the forms can neither guess tokens nor
//! flood an inbox.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::form::FormData;
use super::session::{
    MaybeSignedIn, SignedIn, clear_session_cookie, csrf_refused, public_csrf, public_csrf_ok,
    session_cookie, with_cookie,
};
use super::{Refusal, render};
use crate::roster::RosterError;
use crate::token;
use crate::web::AppState;
use crate::web::ratelimit::ClientIp;

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    csrf: String,
    slug: String,
    email: String,
    /// Which form the refusal is about: `email` or `operator`.
    form: &'static str,
    refusal: Option<Refusal>,
    /// The link request was taken.
    sent: bool,
}

impl SignInPage {
    fn error(&self, form: &str, field: &str) -> Option<&str> {
        self.refusal
            .as_ref()
            .filter(|_| self.form == form)
            .and_then(|r| r.field(field))
    }

    fn form_error(&self, form: &str) -> Option<&str> {
        self.refusal
            .as_ref()
            .filter(|r| self.form == form && r.fields.is_empty())
            .map(|r| r.message.as_str())
    }
}

#[derive(Template)]
#[template(path = "console/sign_in_confirm.html")]
struct ConfirmPage {
    csrf: String,
    token: String,
}

/// Where a session lands after signing in.
fn landing(org_slug: Option<&str>) -> String {
    match org_slug {
        Some(slug) => format!("/console/orgs/{slug}/members"),
        None => "/console/orgs".to_owned(),
    }
}

pub(crate) async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    MaybeSignedIn(session): MaybeSignedIn,
) -> Response {
    if let Some(s) = session {
        return Redirect::to(&landing(s.org.as_ref().map(|o| o.slug.as_str()))).into_response();
    }
    let (csrf, cookie) = public_csrf(&state, &headers);
    let page = SignInPage {
        csrf,
        slug: String::new(),
        email: String::new(),
        form: "email",
        refusal: None,
        sent: false,
    };
    with_cookie(render(StatusCode::OK, &page), cookie)
}

pub(crate) async fn request_link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = FormData::from_body(&body);
    if !public_csrf_ok(&headers, &form) {
        return csrf_refused();
    }
    let (csrf, cookie) = public_csrf(&state, &headers);
    let mut page = SignInPage {
        csrf,
        slug: form.get("org").unwrap_or_default().trim().to_owned(),
        email: form.get("email").unwrap_or_default().trim().to_owned(),
        form: "email",
        refusal: None,
        sent: false,
    };
    // Every request spends budget before an email can leave.
    let spent = state
        .auth_failures
        .check(ip)
        .and_then(|()| state.auth_failures.record(ip));
    let result = match spent {
        Err(e) => Err(Refusal::from_api(e)),
        Ok(()) if page.slug.is_empty() => Err(Refusal::on("org", "enter your organization")),
        Ok(()) => state
            .roster
            .request_console_link(&page.slug, &page.email)
            .await
            .map_err(Refusal::from),
    };
    let res = match result {
        Ok(()) => {
            state.wake_delivery();
            page.sent = true;
            render(StatusCode::OK, &page)
        }
        Err(r) => {
            let status = r.status();
            page.refusal = Some(r);
            render(status, &page)
        }
    };
    with_cookie(res, cookie)
}

pub(crate) async fn operator(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = FormData::from_body(&body);
    if !public_csrf_ok(&headers, &form) {
        return csrf_refused();
    }
    let (csrf, cookie) = public_csrf(&state, &headers);
    let mut page = SignInPage {
        csrf,
        slug: String::new(),
        email: String::new(),
        form: "operator",
        refusal: None,
        sent: false,
    };
    let refused = |page: &mut SignInPage, r: Refusal| {
        let status = r.status();
        page.refusal = Some(r);
        with_cookie(render(status, page), cookie.clone())
    };
    if let Err(e) = state.auth_failures.check(ip) {
        return refused(&mut page, Refusal::from_api(e));
    }
    let presented = form.get("token").unwrap_or_default().trim();
    let good = match &state.operator_token {
        Some(op) if !presented.is_empty() => {
            use secrecy::ExposeSecret;
            token::equal(presented, op.expose_secret())
        }
        _ => false,
    };
    if !good {
        if let Err(e) = state.auth_failures.record(ip) {
            return refused(&mut page, Refusal::from_api(e));
        }
        let mut r = Refusal::on("token", "this is not the operator token");
        r.status = 401;
        return refused(&mut page, r);
    }
    match state.roster.operator_console_session().await {
        Ok(s) => signed_in(&state, &s.secret, None),
        Err(e) => refused(&mut page, e.into()),
    }
}

/// The redirect that hands the browser its new session.
fn signed_in(state: &AppState, secret: &str, org_slug: Option<&str>) -> Response {
    let mut res = Redirect::to(&landing(org_slug)).into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, session_cookie(state, secret));
    res
}

/// The emailed link's page: a button, so that a mail scanner following the link does not spend
/// it.
pub(crate) async fn confirm_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let (csrf, cookie) = public_csrf(&state, &headers);
    let page = ConfirmPage {
        csrf,
        token: token.chars().take(200).collect(),
    };
    with_cookie(render(StatusCode::OK, &page), cookie)
}

pub(crate) async fn spend_link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let form = FormData::from_body(&body);
    if !public_csrf_ok(&headers, &form) {
        return csrf_refused();
    }
    if let Err(e) = state.auth_failures.check(ip) {
        return super::refusal_page("Too many attempts", &Refusal::from_api(e));
    }
    let token = token.trim();
    let result = if token.is_empty() || token.len() > 200 {
        Err(RosterError::NotFound("sign-in link".into()))
    } else {
        state.roster.console_sign_in(token).await
    };
    match result {
        Ok(s) => signed_in(&state, &s.secret, s.org_slug.as_deref()),
        Err(e) => {
            if matches!(e, RosterError::NotFound(_))
                && let Err(e) = state.auth_failures.record(ip)
            {
                return super::refusal_page("Too many attempts", &Refusal::from_api(e));
            }
            let r = Refusal::from(e);
            let text = if r.status == 404 {
                "This sign-in link is not valid. Ask for a new one on the sign-in page.".to_owned()
            } else {
                r.message.clone()
            };
            super::message(r.status(), "Cannot sign in", &text)
        }
    }
}

pub(crate) async fn sign_out(
    State(state): State<AppState>,
    session: SignedIn,
    body: Bytes,
) -> Response {
    let form = FormData::from_body(&body);
    if !session.csrf_ok(&form) {
        return csrf_refused();
    }
    if let Err(e) = state.roster.console_sign_out(&session.0).await {
        return super::refusal_page("Error", &e.into());
    }
    let mut res = Redirect::to("/console/").into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, clear_session_cookie(&state));
    res
}
