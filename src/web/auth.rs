//! Who is calling: the operator token (every org) or an org admin token (its own org only).
//!
//! An admin token asking for another org gets the same 404 as for an org that does not exist,
//! so tokens cannot probe which orgs exist. SCIM tokens are refused here: they only work on the
//! SCIM endpoints.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::AppState;
use super::problem::ApiError;
use crate::roster::Actor;
use crate::store::orgs::Org;
use crate::token;

#[derive(Debug, Clone)]
pub enum Principal {
    Operator,
    OrgAdmin {
        token_id: Uuid,
        org_id: Uuid,
        name: String,
    },
}

impl Principal {
    pub fn actor(&self) -> Actor {
        match self {
            Principal::Operator => Actor::Operator,
            Principal::OrgAdmin { token_id, name, .. } => Actor::AdminToken {
                id: *token_id,
                name: name.clone(),
            },
        }
    }

    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::OrgAdmin { .. } => Err(ApiError::forbidden(
                "this needs the operator token; org admin tokens cannot do it",
            )),
        }
    }

    /// The org named by `slug`, if this principal may see it.
    pub async fn org(&self, state: &AppState, slug: &str) -> Result<Org, ApiError> {
        let not_found = || ApiError::not_found(&format!("organization `{}`", slug.escape_debug()));
        // A string that cannot be a slug names no org: no need to ask the database.
        if crate::domain::Slug::parse(slug).is_err() {
            return Err(not_found());
        }
        let org = state
            .roster
            .org_by_slug(slug)
            .await?
            .ok_or_else(not_found)?;
        match self {
            Principal::Operator => Ok(org),
            Principal::OrgAdmin { org_id, .. } if *org_id == org.id => Ok(org),
            Principal::OrgAdmin { .. } => Err(not_found()),
        }
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>` header"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "expected `Authorization: Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = match bearer(parts) {
            Ok(p) => p,
            Err(e) => {
                state
                    .auth_failures
                    .record(super::ratelimit::client_ip(parts, state))?;
                return Err(e);
            }
        };
        if let Some(op) = &state.operator_token {
            use secrecy::ExposeSecret;
            if token::equal(presented, op.expose_secret()) {
                return Ok(Principal::Operator);
            }
        }
        let row = state.roster.authenticate(presented).await?;
        match row {
            Some(row) if row.kind == "admin" => match row.org_id {
                Some(org_id) => Ok(Principal::OrgAdmin {
                    token_id: row.id,
                    org_id,
                    name: row.name,
                }),
                None => {
                    state
                        .auth_failures
                        .record(super::ratelimit::client_ip(parts, state))?;
                    Err(ApiError::unauthorized("invalid or revoked token"))
                }
            },
            Some(_) => Err(ApiError::forbidden(
                "SCIM tokens only work on the SCIM endpoints (/scim/v2)",
            )),
            None => {
                tracing::info!("rejected bearer token");
                state
                    .auth_failures
                    .record(super::ratelimit::client_ip(parts, state))?;
                Err(ApiError::unauthorized("invalid or revoked token"))
            }
        }
    }
}
