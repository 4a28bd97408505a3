//! Org tokens: created (shown once), listed, revoked, and checked on each request.

use serde::Serialize;
use uuid::Uuid;

use super::audit::{Actor, record};
use super::{Result, Roster, RosterError};
use crate::store::tokens::TokenRow;
use crate::store::{self};
use crate::token;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Org admin API.
    Admin,
    /// SCIM client (an identity provider).
    Scim,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Scim => "scim",
        }
    }
}

/// A new token: `text` is shown once and never stored.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    pub id: Uuid,
    pub org_id: Uuid,
    pub kind: TokenKind,
    pub name: String,
    pub token: String,
}

impl Roster {
    pub async fn create_token(
        &self,
        actor: &Actor,
        org_id: Uuid,
        kind: TokenKind,
        name: Option<&str>,
    ) -> Result<CreatedToken> {
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => super::error::check_label("name", n, 200)?,
            None => kind.as_str().to_owned(),
        };
        let now = self.clock.now();
        let new = token::generate();
        let row = TokenRow {
            id: new.id,
            org_id: Some(org_id),
            kind: kind.as_str().to_owned(),
            name,
            secret_hash: new.secret_hash,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        let mut tx = self.store.write().await?;
        let org = super::members::lock_org(&mut tx, org_id).await?;
        store::tokens::insert(&mut tx, &row).await?;
        // A SCIM client is an integration: from its first token on it manages membership.
        if kind == TokenKind::Scim && org.managed_by.is_none() {
            let mut after = org.clone();
            after.managed_by = Some(if row.name == "scim" {
                "your identity provider (SCIM)".to_owned()
            } else {
                row.name.clone()
            });
            after.updated_at = now;
            store::orgs::update(&mut tx, &after).await?;
            record(
                &mut tx,
                now,
                Some(org_id),
                actor,
                "org.updated",
                ("org", Some(org_id.to_string())),
                Some(&org),
                Some(&after),
            )
            .await?;
        }
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "token.created",
            ("token", Some(row.id.to_string())),
            None::<&TokenRow>,
            Some(&row),
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedToken {
            id: row.id,
            org_id,
            kind,
            name: row.name,
            token: new.text,
        })
    }

    /// Revokes a token; `org_id` limits which tokens the caller may revoke.
    pub async fn revoke_token(&self, actor: &Actor, id: Uuid, org_id: Option<Uuid>) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        let row = store::tokens::by_id(&mut tx, id)
            .await?
            .filter(|t| org_id.is_none() || t.org_id == org_id)
            .ok_or_else(|| RosterError::NotFound("token".into()))?;
        if !store::tokens::revoke(&mut tx, id, now).await? {
            return Err(RosterError::conflict(
                "already_revoked",
                "this token is already revoked",
            ));
        }
        record(
            &mut tx,
            now,
            row.org_id,
            actor,
            "token.revoked",
            ("token", Some(id.to_string())),
            Some(&row),
            None::<&TokenRow>,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Finds the live token a presented bearer token stands for (constant-time check).
    pub async fn authenticate(&self, presented: &str) -> Result<Option<TokenRow>> {
        let Some((id, secret)) = token::parse(presented) else {
            return Ok(None);
        };
        let mut tx = self.store.read().await?;
        let row = store::tokens::by_id(&mut tx, id).await?;
        tx.rollback().await?;
        let row = row.filter(|r| r.revoked_at.is_none() && token::verify(secret, &r.secret_hash));
        if let Some(r) = &row {
            // Note the use, at most once a minute per token, without delaying the request.
            let now = self.clock.now();
            if r.last_used_at
                .is_none_or(|t| now - t >= chrono::Duration::minutes(1))
            {
                let (store, id) = (self.store.clone(), r.id);
                tokio::spawn(async move {
                    let touched = async {
                        let mut tx = store.write().await?;
                        store::tokens::touch(&mut tx, id, now).await?;
                        tx.commit().await
                    };
                    if let Err(e) = touched.await {
                        tracing::debug!(error = %e, "could not record token use");
                    }
                });
            }
        }
        Ok(row)
    }
}
