//! The invitee's public pages, without admin chrome: accepting an invitation from the emailed
//! link (`/invite/{token}`), an invite link's unlock-code page (`/invite-links/{token}`), an
//! org's join page (`/join/{slug}`) and the landing page of its verification email
//! (`/join/verify/{token}`). Each one checks the client's failed-authentication budget first;
//! unknown tokens and pages count against it, as on the JSON API. An unknown token's page says
//! nothing about any org.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::form::FormData;
use super::session::{csrf_refused, public_csrf, public_csrf_ok, with_cookie};
use super::{Refusal, message, render};
use crate::roster::RosterError;
use crate::roster::console::{InvitationPreview, InvitationState};
use crate::roster::join::{JoinAsk, Question, QuestionKind};
use crate::web::AppState;
use crate::web::ratelimit::ClientIp;

/// A token from a URL, as the operations take it (`None`: cannot be one).
fn plain_token(t: &str) -> Option<&str> {
    let t = t.trim();
    (!t.is_empty() && t.len() <= 200).then_some(t)
}

/// Over budget: the page that says so (nothing was looked up).
fn over_budget(state: &AppState, ip: Option<std::net::IpAddr>) -> Option<Response> {
    state
        .auth_failures
        .check(ip)
        .err()
        .map(|e| super::refusal_page("Too many attempts", &Refusal::from_api(e)))
}

/// Counts a failed lookup; the page to show if that put the client over budget.
fn count_failure(state: &AppState, ip: Option<std::net::IpAddr>) -> Option<Response> {
    state
        .auth_failures
        .record(ip)
        .err()
        .map(|e| super::refusal_page("Too many attempts", &Refusal::from_api(e)))
}

fn unknown(what: &str) -> Response {
    message(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        &format!(
            "This {what} link is not valid. Check that you copied the whole link from the email, \
             or ask the organization for a new one."
        ),
    )
}

#[derive(Template)]
#[template(path = "console/invite.html")]
struct InvitePage {
    csrf: String,
    token: String,
    preview: InvitationPreview,
    login_email: String,
    refusal: Option<Refusal>,
}

impl InvitePage {
    fn error(&self, field: &str) -> Option<&str> {
        self.refusal.as_ref().and_then(|r| r.field(field))
    }

    fn form_error(&self) -> Option<&str> {
        self.refusal
            .as_ref()
            .filter(|r| r.fields.is_empty())
            .map(|r| r.message.as_str())
    }

    /// Why the invitation cannot be accepted, in words (none while it is open).
    fn closed(&self) -> Option<&'static str> {
        match self.preview.state {
            InvitationState::Open => None,
            InvitationState::Accepted => Some(
                "This invitation has already been accepted: you are a member. There is nothing \
                 more to do.",
            ),
            InvitationState::Expired => {
                Some("This invitation link has expired. Ask an admin to resend the invitation.")
            }
            InvitationState::Used => Some(
                "This invitation link is no longer valid: a newer invitation replaced it. Use \
                 the link in the latest email.",
            ),
            InvitationState::Cancelled => {
                Some("This invitation was cancelled. Ask an admin to invite you again.")
            }
            InvitationState::Removed => {
                Some("This invitation is no longer valid: the membership was removed.")
            }
            InvitationState::Suspended => Some(
                "This invitation has been accepted and access is currently suspended. Ask an \
                 admin.",
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "console/welcome.html")]
struct WelcomePage {
    org_name: String,
    email: String,
    /// An application waits for an admin instead.
    pending: bool,
}

pub(crate) async fn invitation(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    if let Some(r) = over_budget(&state, ip) {
        return r;
    }
    let Some(token) = plain_token(&token) else {
        return count_failure(&state, ip).unwrap_or_else(|| unknown("invitation"));
    };
    let preview = match state.roster.invitation_preview(token).await {
        Ok(p) => p,
        Err(RosterError::NotFound(_)) => {
            return count_failure(&state, ip).unwrap_or_else(|| unknown("invitation"));
        }
        Err(e) => return super::refusal_page("Error", &e.into()),
    };
    let (csrf, cookie) = public_csrf(&state, &headers);
    let page = InvitePage {
        csrf,
        token: token.to_owned(),
        preview,
        login_email: String::new(),
        refusal: None,
    };
    let status = if page.closed().is_some() && page.preview.state != InvitationState::Accepted {
        StatusCode::GONE
    } else {
        StatusCode::OK
    };
    with_cookie(render(status, &page), cookie)
}

pub(crate) async fn accept(
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
    if let Some(r) = over_budget(&state, ip) {
        return r;
    }
    let Some(token) = plain_token(&token) else {
        return count_failure(&state, ip).unwrap_or_else(|| unknown("invitation"));
    };
    let login = form.text("login_email");
    match state.roster.accept_invitation(token, login).await {
        Ok(member) => {
            let org_name = match state.roster.invitation_preview(token).await {
                Ok(p) => p.org_name,
                Err(_) => String::new(),
            };
            render(
                StatusCode::OK,
                &WelcomePage {
                    org_name,
                    email: member.member_email,
                    pending: false,
                },
            )
        }
        Err(RosterError::NotFound(_)) => {
            count_failure(&state, ip).unwrap_or_else(|| unknown("invitation"))
        }
        Err(e) => {
            let refusal = Refusal::from(e);
            let preview = match state.roster.invitation_preview(token).await {
                Ok(p) => p,
                Err(_) => return super::refusal_page("Cannot accept", &refusal),
            };
            let (csrf, cookie) = public_csrf(&state, &headers);
            let status = refusal.status();
            let page = InvitePage {
                csrf,
                token: token.to_owned(),
                preview,
                login_email: login.unwrap_or_default().to_owned(),
                refusal: Some(refusal),
            };
            with_cookie(render(status, &page), cookie)
        }
    }
}

#[derive(Template)]
#[template(path = "console/invite_link.html")]
struct LinkPage {
    csrf: String,
    token: String,
    org_name: String,
    description: String,
    code: String,
    email: String,
    refusal: Option<Refusal>,
}

impl LinkPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.refusal.as_ref().and_then(|r| r.field(field))
    }

    fn form_error(&self) -> Option<&str> {
        self.refusal
            .as_ref()
            .filter(|r| r.fields.is_empty())
            .map(|r| r.message.as_str())
    }
}

pub(crate) async fn link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    if let Some(r) = over_budget(&state, ip) {
        return r;
    }
    let Some(token) = plain_token(&token) else {
        return count_failure(&state, ip).unwrap_or_else(|| unknown("invite"));
    };
    let (org_name, description) = match state.roster.open_invite_link(token).await {
        Ok(x) => x,
        Err(RosterError::NotFound(_)) => {
            return count_failure(&state, ip).unwrap_or_else(|| unknown("invite"));
        }
        Err(e) => return super::refusal_page("This link cannot be used", &e.into()),
    };
    let (csrf, cookie) = public_csrf(&state, &headers);
    let page = LinkPage {
        csrf,
        token: token.to_owned(),
        org_name,
        description,
        code: String::new(),
        email: String::new(),
        refusal: None,
    };
    with_cookie(render(StatusCode::OK, &page), cookie)
}

pub(crate) async fn accept_link(
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
    if let Some(r) = over_budget(&state, ip) {
        return r;
    }
    let Some(token) = plain_token(&token) else {
        return count_failure(&state, ip).unwrap_or_else(|| unknown("invite"));
    };
    let code = form.get("code").unwrap_or_default().trim().to_owned();
    let email = form.get("email").unwrap_or_default().trim().to_owned();
    let result = if code.len() > 200 {
        Err(Refusal::on("code", "too long"))
    } else {
        match state.roster.accept_invite_link(token, &code, &email).await {
            Ok(m) => Ok(m),
            Err(e @ (RosterError::NotFound(_) | RosterError::WrongCode { .. })) => {
                if let Some(r) = count_failure(&state, ip) {
                    return r;
                }
                if matches!(e, RosterError::NotFound(_)) {
                    return unknown("invite");
                }
                Err(Refusal::from(e))
            }
            Err(e) => Err(Refusal::from(e)),
        }
    };
    match result {
        Ok(member) => {
            let org_name = state
                .roster
                .open_invite_link(token)
                .await
                .map(|(n, _)| n)
                .unwrap_or_default();
            render(
                StatusCode::CREATED,
                &WelcomePage {
                    org_name,
                    email: member.member_email,
                    pending: false,
                },
            )
        }
        Err(refusal) => {
            let (org_name, description) = match state.roster.open_invite_link(token).await {
                Ok(x) => x,
                Err(e) => return super::refusal_page("This link cannot be used", &e.into()),
            };
            let (csrf, cookie) = public_csrf(&state, &headers);
            let status = refusal.status();
            let page = LinkPage {
                csrf,
                token: token.to_owned(),
                org_name,
                description,
                code: String::new(),
                email,
                refusal: Some(refusal),
            };
            with_cookie(render(status, &page), cookie)
        }
    }
}

/// One question of the join form, with what was typed.
struct Field {
    q: Question,
    value: String,
}

impl Field {
    fn name(&self) -> String {
        format!("answers.{}", self.q.id)
    }

    fn is_long(&self) -> bool {
        self.q.kind == QuestionKind::LongText
    }

    fn is_choice(&self) -> bool {
        self.q.kind == QuestionKind::SingleChoice
    }

    fn is_yes_no(&self) -> bool {
        self.q.kind == QuestionKind::YesNo
    }
}

#[derive(Template)]
#[template(path = "console/join.html")]
struct JoinPage {
    csrf: String,
    slug: String,
    org_name: String,
    require_approval: bool,
    managed_by: Option<String>,
    email: String,
    given_name: String,
    family_name: String,
    fields: Vec<Field>,
    refusal: Option<Refusal>,
}

impl JoinPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.refusal.as_ref().and_then(|r| r.field(field))
    }

    fn form_error(&self) -> Option<&str> {
        self.refusal.as_ref().map(|r| {
            if r.fields.is_empty() {
                r.message.as_str()
            } else {
                "Some answers need another look: see the messages next to them."
            }
        })
    }
}

async fn join_form(state: &AppState, slug: &str, form: Option<&FormData>) -> Result<JoinPage, ()> {
    let view = state.roster.join_page_view(slug).await.map_err(|_| ())?;
    let get = |n: &str| {
        form.and_then(|f| f.get(n))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    Ok(JoinPage {
        csrf: String::new(),
        slug: slug.to_owned(),
        org_name: view.org_name,
        require_approval: view.require_approval,
        managed_by: view.managed_by,
        email: get("email"),
        given_name: get("given_name"),
        family_name: get("family_name"),
        fields: view
            .questions
            .into_iter()
            .map(|q| {
                let value = get(&format!("answers.{}", q.id));
                Field { q, value }
            })
            .collect(),
        refusal: None,
    })
}

pub(crate) async fn join_page(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    if let Some(r) = over_budget(&state, ip) {
        return r;
    }
    let Ok(mut page) = join_form(&state, &slug, None).await else {
        return count_failure(&state, ip).unwrap_or_else(|| {
            message(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no open join page here.",
            )
        });
    };
    let (csrf, cookie) = public_csrf(&state, &headers);
    page.csrf = csrf;
    with_cookie(render(StatusCode::OK, &page), cookie)
}

pub(crate) async fn ask(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: Bytes,
) -> Response {
    let form = FormData::from_body(&body);
    if !public_csrf_ok(&headers, &form) {
        return csrf_refused();
    }
    if let Some(r) = over_budget(&state, ip) {
        return r;
    }
    // Every request spends budget before anything is sent (as `POST /api/v1/join/{slug}`).
    if let Some(r) = count_failure(&state, ip) {
        return r;
    }
    let Ok(mut page) = join_form(&state, &slug, Some(&form)).await else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no open join page here.",
        );
    };
    let mut answers = Map::new();
    for f in &page.fields {
        let v = f.value.as_str();
        if v.is_empty() {
            continue;
        }
        let value = match (f.q.kind, v) {
            (QuestionKind::YesNo, "yes") => Value::Bool(true),
            (QuestionKind::YesNo, "no") => Value::Bool(false),
            _ => Value::String(v.to_owned()),
        };
        answers.insert(f.q.id.clone(), value);
    }
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let ask = JoinAsk {
        email: page.email.clone(),
        given_name: opt(&page.given_name),
        family_name: opt(&page.family_name),
        answers: Some(answers),
    };
    match state.roster.request_to_join(&slug, ask).await {
        Ok(()) => {
            state.wake_delivery();
            message(
                StatusCode::ACCEPTED,
                "Check your inbox",
                "We sent you an email. The link in it confirms your request to join.",
            )
        }
        Err(e) => {
            let (csrf, cookie) = public_csrf(&state, &headers);
            let refusal = Refusal::from(e);
            let status = refusal.status();
            page.csrf = csrf;
            page.refusal = Some(refusal);
            with_cookie(render(status, &page), cookie)
        }
    }
}

#[derive(Template)]
#[template(path = "console/join_verify.html")]
struct VerifyPage {
    csrf: String,
    token: String,
}

pub(crate) async fn verify_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let (csrf, cookie) = public_csrf(&state, &headers);
    let page = VerifyPage {
        csrf,
        token: token.chars().take(200).collect(),
    };
    with_cookie(render(StatusCode::OK, &page), cookie)
}

pub(crate) async fn verify(
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
    if let Some(r) = over_budget(&state, ip) {
        return r;
    }
    let Some(token) = plain_token(&token) else {
        return count_failure(&state, ip).unwrap_or_else(|| unknown("verification"));
    };
    match state.roster.verify_join(token).await {
        Ok(v) if v.status == "pending" => message(
            StatusCode::OK,
            "Request received",
            "Your email address is confirmed. An admin of the organization will look at your \
             request; you will get an email when they decide.",
        ),
        Ok(_) => message(
            StatusCode::OK,
            "You are a member",
            "Your email address is confirmed and you are now a member of the organization.",
        ),
        Err(RosterError::NotFound(_)) => {
            count_failure(&state, ip).unwrap_or_else(|| unknown("verification"))
        }
        Err(e) => super::refusal_page("Cannot confirm", &e.into()),
    }
}
