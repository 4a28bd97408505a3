//! The public join page and applications.
//!
//! An org may open a join page under its own slug (a namespace of its own, unique across
//! orgs). Anyone may ask to join there with an email address the page allows (a domain of
//! `allowed_domains` or an address of `allowed_emails`; both empty: any address) and answers to
//! the org's questions. Nobody joins as an address they cannot read: the request only queues a
//! verification email whose link carries a random token (stored hashed; the outbox keeps it in
//! clear in `link_token` only until delivery, like invitation links). Verifying, within
//! `VERIFY_HOURS`, either makes the person an enrolled member at once or, when the org requires
//! approval, leaves an application (`pending`) that an admin approves (the person becomes an
//! enrolled member) or declines (with an optional reason); the applicant is emailed the
//! outcome.
//!
//! Whether the address already belongs to a member is never told to the requester: every
//! accepted request gets the same answer and the same email. Turning the page off voids every
//! unverified request and cancels its unsent email at once; verification also checks that the
//! page is still on. Applications already verified stay for admins to decide.
//!
//! In an org whose membership an integration manages, the page cannot be turned on and nobody
//! is admitted (verification and approval answer `integration_managed`), like manual adds.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::audit::{Actor, record};
use super::error::check_label;
use super::members::lock_org;
use super::{FieldError, Result, Roster, RosterError};
use crate::domain::{Access, Email, Member, Role, Slug};
use crate::store::join::{JoinPage, JoinRequest};
use crate::store::orgs::Org;
use crate::store::outbox::{LINK_TOKEN, OutboxRow};
use crate::store::{self, StoreError, Tx};
use crate::token;

/// Hours a verification link works.
pub const VERIFY_HOURS: i64 = 24;
const MAX_QUESTIONS: usize = 50;
const MAX_OPTIONS: usize = 50;
const MAX_LIST: usize = 1000;
const SHORT_TEXT: usize = 200;
const LONG_TEXT: usize = 5000;
const MAX_REASON: usize = 1000;

/// What a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// One line, at most 200 characters.
    ShortText,
    /// Several lines, at most 5000 characters.
    LongText,
    /// One of `options`.
    SingleChoice,
    /// `true` or `false`.
    YesNo,
}

/// One onboarding question. Its `id` is stable: answers are keyed by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub id: String,
    pub label: String,
    pub kind: QuestionKind,
    #[serde(default)]
    pub required: bool,
    /// The choices of a `single_choice` question (none for other kinds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// An org's join page settings, read and written whole (`GET/PUT …/join`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinSettings {
    pub enabled: bool,
    /// The page's address (`/join/{slug}`); required while enabled.
    #[serde(default)]
    pub slug: Option<String>,
    /// Email domains that may ask to join (exact domain, case-insensitive).
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Exact addresses that may ask to join.
    #[serde(default)]
    pub allowed_emails: Vec<String>,
    /// Verified requests wait for an admin instead of joining at once.
    #[serde(default)]
    pub require_approval: bool,
    #[serde(default)]
    pub questions: Vec<Question>,
}

/// A request to join, as the public sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinAsk {
    pub email: String,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub family_name: Option<String>,
    #[serde(default)]
    pub answers: Option<Map<String, Value>>,
}

/// What verifying a request led to.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    /// `joined` (a member now) or `pending` (an application waiting for an admin).
    pub status: &'static str,
}

/// A request as admins see it (never its token).
#[derive(Debug, Clone, Serialize)]
pub struct ApplicationView {
    pub id: Uuid,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    pub answers: Value,
    /// `pending`, `approved`, `declined` (or `joined`, `unverified`, `void`).
    pub status: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<Uuid>,
}

impl From<JoinRequest> for ApplicationView {
    fn from(r: JoinRequest) -> Self {
        ApplicationView {
            answers: serde_json::from_str(&r.answers).unwrap_or(Value::Null),
            id: r.id,
            email: r.email,
            given_name: r.given_name,
            family_name: r.family_name,
            status: r.status,
            created_at: r.created_at,
            verified_at: r.verified_at,
            decided_at: r.decided_at,
            decided_by: r.decided_by,
            reason: r.reason,
            member_id: r.member_id,
        }
    }
}

fn corrupt(what: &str) -> RosterError {
    RosterError::Store(StoreError::Corrupt(format!("join page {what}")))
}

fn settings_of(p: &JoinPage) -> Result<JoinSettings> {
    Ok(JoinSettings {
        enabled: p.enabled,
        slug: p.slug.clone(),
        allowed_domains: serde_json::from_str(&p.allowed_domains)
            .map_err(|_| corrupt("domains"))?,
        allowed_emails: serde_json::from_str(&p.allowed_emails).map_err(|_| corrupt("emails"))?,
        require_approval: p.require_approval,
        questions: serde_json::from_str(&p.questions).map_err(|_| corrupt("questions"))?,
    })
}

fn check_domain(d: &str) -> bool {
    let labels: Vec<&str> = d.split('.').collect();
    d.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

fn check_question_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 40
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Validates settings in full; answers them normalized (trimmed, domains and addresses
/// lowercased, duplicates dropped).
fn check_settings(s: JoinSettings) -> Result<JoinSettings> {
    let mut errors = Vec::new();
    let slug = match s.slug.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => match Slug::parse(v) {
            Ok(v) if v.as_str() == "verify" => {
                errors.push(FieldError::new(
                    "slug",
                    "`verify` is reserved (it is the verification address)",
                ));
                None
            }
            Ok(v) => Some(v.as_str().to_owned()),
            Err(e) => {
                errors.push(FieldError::new("slug", e.to_string()));
                None
            }
        },
        None => {
            if s.enabled {
                errors.push(FieldError::new("slug", "an enabled join page needs a slug"));
            }
            None
        }
    };
    if s.allowed_domains.len() > MAX_LIST {
        errors.push(FieldError::new(
            "allowed_domains",
            format!("at most {MAX_LIST} domains"),
        ));
    }
    let mut domains: Vec<String> = Vec::new();
    for (i, d) in s.allowed_domains.iter().enumerate() {
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        if !check_domain(&d) {
            errors.push(FieldError::new(
                format!("allowed_domains[{i}]"),
                "not a domain name (such as `example.org`)",
            ));
        } else if !domains.contains(&d) {
            domains.push(d);
        }
    }
    if s.allowed_emails.len() > MAX_LIST {
        errors.push(FieldError::new(
            "allowed_emails",
            format!("at most {MAX_LIST} addresses"),
        ));
    }
    let mut emails: Vec<String> = Vec::new();
    for (i, e) in s.allowed_emails.iter().enumerate() {
        match Email::parse(e.trim()) {
            Ok(e) if !emails.contains(&e.key()) => emails.push(e.key()),
            Ok(_) => {}
            Err(err) => errors.push(FieldError::new(
                format!("allowed_emails[{i}]"),
                err.to_string(),
            )),
        }
    }
    if s.questions.len() > MAX_QUESTIONS {
        errors.push(FieldError::new(
            "questions",
            format!("at most {MAX_QUESTIONS} questions"),
        ));
    }
    let mut questions: Vec<Question> = Vec::new();
    for (i, q) in s.questions.into_iter().enumerate() {
        let at = |f: &str| format!("questions[{i}].{f}");
        let id = q.id.trim().to_owned();
        if !check_question_id(&id) {
            errors.push(FieldError::new(
                at("id"),
                "use 1 to 40 lowercase letters, digits, `_` and `-`",
            ));
        } else if questions.iter().any(|o| o.id == id) {
            errors.push(FieldError::new(
                at("id"),
                format!("`{id}` is used by another question"),
            ));
        }
        let label = match check_label(&at("label"), &q.label, 500) {
            Ok(l) => l,
            Err(RosterError::Invalid(e)) => {
                errors.extend(e);
                String::new()
            }
            Err(e) => return Err(e),
        };
        let mut options: Vec<String> = Vec::new();
        if q.kind == QuestionKind::SingleChoice {
            if q.options.is_empty() || q.options.len() > MAX_OPTIONS {
                errors.push(FieldError::new(
                    at("options"),
                    format!("a single choice needs 1 to {MAX_OPTIONS} options"),
                ));
            }
            for (j, o) in q.options.iter().enumerate() {
                match check_label(&format!("questions[{i}].options[{j}]"), o, SHORT_TEXT) {
                    Ok(o) if options.contains(&o) => errors.push(FieldError::new(
                        format!("questions[{i}].options[{j}]"),
                        format!("`{o}` is listed twice"),
                    )),
                    Ok(o) => options.push(o),
                    Err(RosterError::Invalid(e)) => errors.extend(e),
                    Err(e) => return Err(e),
                }
            }
        } else if !q.options.is_empty() {
            errors.push(FieldError::new(
                at("options"),
                "only a single_choice question has options",
            ));
        }
        questions.push(Question {
            id,
            label,
            kind: q.kind,
            required: q.required,
            options,
        });
    }
    if !errors.is_empty() {
        return Err(RosterError::Invalid(errors));
    }
    Ok(JoinSettings {
        enabled: s.enabled,
        slug,
        allowed_domains: domains,
        allowed_emails: emails,
        require_approval: s.require_approval,
        questions,
    })
}

/// Checks answers against the questions; answers them keyed by question id. Problems name
/// `answers.<id>`.
fn check_answers(
    questions: &[Question],
    answers: Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for id in answers.keys() {
        if !questions.iter().any(|q| &q.id == id) {
            errors.push(FieldError::new(
                format!("answers.{}", id.chars().take(60).collect::<String>()),
                "there is no such question",
            ));
        }
    }
    for q in questions {
        let field = format!("answers.{}", q.id);
        let value = answers.get(&q.id).filter(|v| !v.is_null());
        let value = match (q.kind, value) {
            (_, None) => None,
            (QuestionKind::YesNo, Some(Value::Bool(b))) => Some(Value::Bool(*b)),
            (QuestionKind::YesNo, Some(_)) => {
                errors.push(FieldError::new(field, "answer true or false"));
                continue;
            }
            (_, Some(Value::String(s))) => {
                let s = s.trim();
                match q.kind {
                    _ if s.is_empty() => None,
                    QuestionKind::ShortText => {
                        if s.chars().count() > SHORT_TEXT {
                            errors.push(FieldError::new(
                                field,
                                format!("at most {SHORT_TEXT} characters"),
                            ));
                            continue;
                        }
                        if s.chars().any(char::is_control) {
                            errors.push(FieldError::new(field, "one line of text, please"));
                            continue;
                        }
                        Some(Value::String(s.to_owned()))
                    }
                    QuestionKind::LongText => {
                        if s.chars().count() > LONG_TEXT {
                            errors.push(FieldError::new(
                                field,
                                format!("at most {LONG_TEXT} characters"),
                            ));
                            continue;
                        }
                        if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                            errors.push(FieldError::new(
                                field,
                                "must not contain control characters",
                            ));
                            continue;
                        }
                        Some(Value::String(s.to_owned()))
                    }
                    _ => match q.options.iter().find(|o| o.as_str() == s) {
                        Some(o) => Some(Value::String(o.clone())),
                        None => {
                            errors.push(FieldError::new(
                                field,
                                format!("choose one of: {}", q.options.join(", ")),
                            ));
                            continue;
                        }
                    },
                }
            }
            (_, Some(_)) => {
                errors.push(FieldError::new(field, "answer with text"));
                continue;
            }
        };
        match value {
            Some(v) => {
                out.insert(q.id.clone(), v);
            }
            None if q.required => errors.push(FieldError::new(field, "this question is required")),
            None => {}
        }
    }
    out
}

fn optional_name(field: &str, v: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = v.map(str::trim).filter(|v| !v.is_empty())?;
    match check_label(field, v, 200) {
        Ok(v) => Some(v),
        Err(RosterError::Invalid(e)) => {
            errors.extend(e);
            None
        }
        Err(_) => None,
    }
}

fn allows(s: &JoinSettings, email: &Email) -> bool {
    if s.allowed_domains.is_empty() && s.allowed_emails.is_empty() {
        return true;
    }
    let key = email.key();
    let domain = key.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    s.allowed_emails.contains(&key) || s.allowed_domains.iter().any(|d| d == domain)
}

impl Roster {
    /// An org's join page settings (off, with nothing set, until first written).
    pub async fn join_settings(&self, org_id: Uuid) -> Result<JoinSettings> {
        let mut tx = self.store.read().await?;
        let page = store::join::page(&mut tx, org_id).await?;
        tx.rollback().await?;
        match page {
            Some(p) => settings_of(&p),
            None => Ok(JoinSettings::default()),
        }
    }

    /// Replaces an org's join page settings. Turning the page off voids every unverified
    /// request at once.
    pub async fn put_join_settings(
        &self,
        org_id: Uuid,
        actor: &Actor,
        new: JoinSettings,
    ) -> Result<JoinSettings> {
        let new = check_settings(new)?;
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        if new.enabled
            && let Some(integration) = org.integration()
        {
            return Err(RosterError::Locked { integration });
        }
        let before = store::join::page(&mut tx, org_id).await?;
        let before = before.as_ref().map(settings_of).transpose()?;
        let page = JoinPage {
            org_id,
            enabled: new.enabled,
            slug: new.slug.clone(),
            allowed_domains: json_text(&new.allowed_domains)?,
            allowed_emails: json_text(&new.allowed_emails)?,
            require_approval: new.require_approval,
            questions: json_text(&new.questions)?,
            updated_at: now,
        };
        match store::join::put_page(&mut tx, &page).await {
            Err(StoreError::Unique(_)) => {
                return Err(RosterError::conflict(
                    "slug_taken",
                    format!(
                        "another organization's join page uses the slug `{}`",
                        new.slug.as_deref().unwrap_or_default()
                    ),
                ));
            }
            r => r?,
        }
        let was_on = before.as_ref().is_some_and(|b| b.enabled);
        if was_on && (!new.enabled || before.as_ref().map(|b| &b.slug) != Some(&new.slug)) {
            store::join::void_unverified(&mut tx, org_id, now).await?;
        }
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "join.settings_updated",
            ("join_page", Some(org_id.to_string())),
            before.as_ref(),
            Some(&new),
        )
        .await?;
        tx.commit().await?;
        Ok(new)
    }

    /// The public's request to join through the page at `slug`: validated in full, then stored
    /// unverified with its verification email queued. The same for an address that is already
    /// a member. An unknown or closed page is "not found".
    pub async fn request_to_join(&self, slug: &str, ask: JoinAsk) -> Result<()> {
        let not_found = || RosterError::NotFound("join page".into());
        let page = {
            let mut tx = self.store.read().await?;
            let p = store::join::page_by_slug(&mut tx, slug).await?;
            tx.rollback().await?;
            p.filter(|p| p.enabled).ok_or_else(not_found)?
        };
        let settings = settings_of(&page)?;
        let mut errors = Vec::new();
        let email = match Email::parse(ask.email.trim()) {
            Ok(e) => {
                if !allows(&settings, &e) {
                    errors.push(FieldError::new(
                        "email",
                        "this organization does not accept join requests from this address",
                    ));
                }
                Some(e)
            }
            Err(e) => {
                errors.push(FieldError::new("email", e.to_string()));
                None
            }
        };
        let given_name = optional_name("given_name", ask.given_name.as_deref(), &mut errors);
        let family_name = optional_name("family_name", ask.family_name.as_deref(), &mut errors);
        let answers = check_answers(
            &settings.questions,
            ask.answers.unwrap_or_default(),
            &mut errors,
        );
        let Some(email) = email.filter(|_| errors.is_empty()) else {
            return Err(RosterError::Invalid(errors));
        };
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, page.org_id).await?;
        // An org an integration manages admits nobody through its page: no email goes out for
        // a request no admin could act on.
        if let Some(integration) = org.integration() {
            return Err(RosterError::Locked { integration });
        }
        // The page may have closed while the request was read.
        store::join::page(&mut tx, org.id)
            .await?
            .filter(|p| p.enabled && p.slug.as_deref() == Some(slug))
            .ok_or_else(not_found)?;
        let secret = token::random_secret();
        let request = JoinRequest {
            id: Uuid::now_v7(),
            org_id: org.id,
            email: email.as_str().to_owned(),
            given_name,
            family_name,
            answers: Value::Object(answers).to_string(),
            token_hash: Some(token::hash(&secret)),
            status: "unverified".into(),
            created_at: now,
            expires_at: now + Duration::hours(VERIFY_HOURS),
            verified_at: None,
            decided_at: None,
            decided_by: None,
            reason: None,
            member_id: None,
        };
        store::join::insert_request(&mut tx, &request).await?;
        let greeting = greeting(&request);
        let body = format!(
            "{greeting}\n\nSomeone asked to join {org} with this email address. If it was you, \
             confirm the address here:\n{url}{LINK_TOKEN}\n\nThe link works for {VERIFY_HOURS} \
             hours. If it was not you, ignore this email: nothing happens without the link.\n",
            org = org.name,
            url = self.invites.join_verify_url,
        );
        let mut mail = self.join_email(
            &org,
            &request,
            "join_verify",
            format!("Confirm your email to join {}", org.name),
            body,
            now,
        );
        mail.link_token = Some(secret);
        mail.expires_at = Some(request.expires_at);
        store::outbox::insert(&mut tx, &mail).await?;
        record(
            &mut tx,
            now,
            Some(org.id),
            &Actor::Applicant {
                request_id: request.id,
            },
            "join.requested",
            ("join_request", Some(request.id.to_string())),
            None::<&JoinRequest>,
            Some(&request),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The applicant follows the verification link: a member now, or an application waiting
    /// for an admin. An unknown token is "not found" and never takes the writer.
    pub async fn verify_join(&self, secret: &str) -> Result<Verified> {
        let now = self.clock.now();
        let hash = token::hash(secret);
        let known = {
            let mut tx = self.store.read().await?;
            let r = store::join::request_by_token_hash(&mut tx, &hash).await?;
            tx.rollback().await?;
            r.ok_or_else(|| RosterError::NotFound("verification link".into()))?
        };
        verifiable(&known, now)?;
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, known.org_id).await?;
        let before = store::join::request_by_id(&mut tx, org.id, known.id, true)
            .await?
            .ok_or_else(|| RosterError::NotFound("verification link".into()))?;
        verifiable(&before, now)?;
        let page = store::join::page(&mut tx, org.id)
            .await?
            .filter(|p| p.enabled)
            .ok_or_else(closed)?;
        let actor = Actor::Applicant {
            request_id: before.id,
        };
        let mut after = before.clone();
        after.verified_at = Some(now);
        let status = if page.require_approval {
            after.status = "pending".into();
            "pending"
        } else {
            let member = self.admit(&mut tx, &org, &before, &actor, now).await?;
            after.status = "joined".into();
            after.member_id = Some(member.id);
            "joined"
        };
        store::join::update_request(&mut tx, &after).await?;
        record(
            &mut tx,
            now,
            Some(org.id),
            &actor,
            if status == "pending" {
                "application.submitted"
            } else {
                "join.verified"
            },
            ("join_request", Some(after.id.to_string())),
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(Verified { status })
    }

    /// An org's requests in `status` (`pending` applications by default), oldest first (at
    /// most 1000).
    pub async fn applications(&self, org_id: Uuid, status: &str) -> Result<Vec<ApplicationView>> {
        const STATUSES: [&str; 6] = [
            "pending",
            "approved",
            "declined",
            "joined",
            "unverified",
            "void",
        ];
        if !STATUSES.contains(&status) {
            return Err(RosterError::invalid(
                "status",
                format!("one of: {}", STATUSES.join(", ")),
            ));
        }
        let mut tx = self.store.read().await?;
        let rows = store::join::requests(&mut tx, org_id, status, 1000).await?;
        tx.rollback().await?;
        Ok(rows.into_iter().map(ApplicationView::from).collect())
    }

    /// Approves a pending application: the applicant becomes an enrolled member and is told.
    pub async fn approve_application(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
    ) -> Result<ApplicationView> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        let before = pending_application(&mut tx, org_id, id).await?;
        let member = self.admit(&mut tx, &org, &before, actor, now).await?;
        let mut after = before.clone();
        after.status = "approved".into();
        after.decided_at = Some(now);
        after.decided_by = Some(actor.label());
        after.member_id = Some(member.id);
        store::join::update_request(&mut tx, &after).await?;
        let body = format!(
            "{}\n\nYour application to join {} has been approved: you are a member now.\n",
            greeting(&after),
            org.name
        );
        let mail = self.join_email(
            &org,
            &after,
            "join_approved",
            format!("Welcome to {}", org.name),
            body,
            now,
        );
        store::outbox::insert(&mut tx, &mail).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "application.approved",
            ("join_request", Some(id.to_string())),
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after.into())
    }

    /// Declines a pending application, with an optional reason the applicant is emailed.
    pub async fn decline_application(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        reason: Option<&str>,
    ) -> Result<ApplicationView> {
        let reason = match reason.map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) if r.chars().count() > MAX_REASON => {
                return Err(RosterError::invalid(
                    "reason",
                    format!("at most {MAX_REASON} characters"),
                ));
            }
            Some(r) if r.chars().any(|c| c.is_control() && c != '\n') => {
                return Err(RosterError::invalid(
                    "reason",
                    "must not contain control characters",
                ));
            }
            r => r.map(str::to_owned),
        };
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let org = lock_org(&mut tx, org_id).await?;
        let before = pending_application(&mut tx, org_id, id).await?;
        let mut after = before.clone();
        after.status = "declined".into();
        after.decided_at = Some(now);
        after.decided_by = Some(actor.label());
        after.reason = reason;
        store::join::update_request(&mut tx, &after).await?;
        let why = after
            .reason
            .as_deref()
            .map(|r| format!("\n\nThe reason given:\n{r}\n"))
            .unwrap_or_else(|| "\n".to_owned());
        let body = format!(
            "{}\n\nYour application to join {} has been declined.{why}",
            greeting(&after),
            org.name
        );
        let mail = self.join_email(
            &org,
            &after,
            "join_declined",
            format!("Your application to join {}", org.name),
            body,
            now,
        );
        store::outbox::insert(&mut tx, &mail).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "application.declined",
            ("join_request", Some(id.to_string())),
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after.into())
    }

    /// Makes the requester an enrolled member: a new member, or the existing invited (or past)
    /// member of that address enrolled. An enrolled or disabled member is a conflict.
    async fn admit(
        &self,
        tx: &mut Tx,
        org: &Org,
        request: &JoinRequest,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Member> {
        if let Some(integration) = org.integration() {
            return Err(RosterError::Locked { integration });
        }
        let email = Email::parse(&request.email).map_err(|_| corrupt("request email"))?;
        let existing = store::members::by_email(tx, org.id, email.as_str(), true).await?;
        let (before, mut after) = match existing {
            Some(m) if m.access == Access::Enrolled => {
                return Err(RosterError::conflict(
                    "already_member",
                    "this address is already a member of the organization",
                ));
            }
            Some(m) if m.access == Access::Disabled => {
                return Err(RosterError::conflict(
                    "member_disabled",
                    "this address is a member whose access is suspended; ask an admin",
                ));
            }
            Some(before) => {
                let mut after = before.clone();
                after.access = Access::Enrolled;
                after.enrolled_at = Some(now);
                after.ever_enrolled = true;
                after.removed_at = None;
                after.cancelled_at = None;
                // Whoever was gone comes back through the public page as a plain member: an
                // old admin role is not restored without an admin deciding.
                if before.access.is_gone() && after.role != Role::Owner {
                    after.role = Role::Member;
                }
                after.login_email = Some(before.member_email.clone());
                if after.given_name.is_none() {
                    after.given_name = request.given_name.clone();
                }
                if after.family_name.is_none() {
                    after.family_name = request.family_name.clone();
                }
                after.updated_at = now;
                store::members::update(tx, &mut after).await?;
                store::invitations::close_for_member(tx, after.id, now).await?;
                store::outbox::cancel_for_member(tx, after.id, now, "cancelled: joined").await?;
                (Some(before), after)
            }
            None => {
                let mut m = Member::joined(org.id, email.as_str(), Role::Member, now);
                m.given_name = request.given_name.clone();
                m.family_name = request.family_name.clone();
                store::members::insert(tx, &mut m).await?;
                (None, m)
            }
        };
        self.join_invitation_groups(tx, org.id, actor, after.id)
            .await?;
        after.updated_at = now;
        record(
            tx,
            now,
            Some(org.id),
            actor,
            "member.joined",
            ("member", Some(after.id.to_string())),
            before.as_ref(),
            Some(&serde_json::json!({"member": &after, "join_request": request.id})),
        )
        .await?;
        Ok(after)
    }

    fn join_email(
        &self,
        org: &Org,
        request: &JoinRequest,
        kind: &str,
        subject: String,
        body: String,
        now: DateTime<Utc>,
    ) -> OutboxRow {
        OutboxRow {
            id: Uuid::now_v7(),
            org_id: Some(org.id),
            member_id: None,
            kind: kind.to_owned(),
            idempotency_key: format!("{kind}-{}", request.id),
            to_address: request.email.clone(),
            subject,
            body,
            created_at: now,
            available_at: now,
            attempts: 0,
            claimed_until: None,
            last_error: None,
            sent_at: None,
            failed_at: None,
            cancelled_at: None,
            link_token: None,
            expires_at: None,
        }
    }
}

fn greeting(r: &JoinRequest) -> String {
    r.given_name
        .as_deref()
        .map(|n| format!("Hello {n},"))
        .unwrap_or_else(|| "Hello,".to_owned())
}

fn closed() -> RosterError {
    RosterError::Gone("this organization's join page is closed".into())
}

/// Refuses a request whose link can no longer be used, saying why.
fn verifiable(r: &JoinRequest, now: DateTime<Utc>) -> Result<()> {
    match r.status.as_str() {
        "unverified" if r.expires_at <= now => Err(RosterError::Gone(format!(
            "this verification link has expired (links work for {VERIFY_HOURS} hours); ask to \
             join again"
        ))),
        "unverified" => Ok(()),
        "void" => Err(closed()),
        _ => Err(RosterError::Gone(
            "this verification link has already been used".into(),
        )),
    }
}

async fn pending_application(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<JoinRequest> {
    let r = store::join::request_by_id(tx, org_id, id, true)
        .await?
        .filter(|r| r.status != "unverified" && r.status != "void")
        .ok_or_else(|| RosterError::NotFound("application".into()))?;
    if r.status != "pending" {
        return Err(RosterError::conflict(
            "application_decided",
            format!("this application is already {}", r.status),
        ));
    }
    Ok(r)
}

/// JSON text of a setting, for the page's JSON columns.
fn json_text<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|_| corrupt("settings"))
}
