//! Webhook subscriptions: created (the signing secret shown once), listed, changed (URL, event
//! types, enabled), deleted, and their delivery log; and what the delivery worker records after
//! each attempt, including disabling a subscription after too many failures in a row.
//!
//! The secret is a signing key, `whsec_` + base64 of 32 random bytes. It must be stored in a
//! form that can sign (unlike tokens, which are stored hashed), so it sits in the database like
//! other upstream credentials; it is never logged and never returned after creation.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{Actor, record};
use super::events::pattern_is_known;
use super::members::lock_org;
use super::{FieldError, Result, Roster, RosterError};
use crate::store::webhooks::{AttemptRow, ClaimedDelivery, WebhookRow};
use crate::store::{self};

/// The most subscriptions one org may have.
pub const MAX_PER_ORG: usize = 20;
/// The most event types (or patterns) one subscription may list.
const MAX_TYPES: usize = 50;
const MAX_URL: usize = 2000;
/// How long the old secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

/// A new subscription, as the API takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `https://…`, or `http://` to this host only.
    pub url: String,
    /// Event types, `family.*`, or `*` for every event.
    pub event_types: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Whether it starts enabled (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A change to a subscription; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// An empty string clears it.
    #[serde(default)]
    pub description: Option<String>,
    /// Enabling clears the failure count and the reason it was disabled.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A subscription as the API shows it (never with its secret).
#[derive(Debug, Clone, Serialize)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Failed attempts in a row (reset by a success).
    pub consecutive_failures: i64,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why rosterd disabled it (absent when an admin did, or when enabled).
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&WebhookRow> for WebhookView {
    fn from(w: &WebhookRow) -> Self {
        WebhookView {
            id: w.id,
            url: w.url.clone(),
            event_types: serde_json::from_str(&w.event_types).unwrap_or_default(),
            description: w.description.clone(),
            enabled: w.enabled,
            consecutive_failures: w.consecutive_failures,
            disabled_at: w.disabled_at,
            disabled_reason: w.disabled_reason.clone(),
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A new subscription: `secret` is shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The signing secret (`whsec_…`): keep it to verify signatures; it is not shown again.
    pub secret: String,
}

/// A fresh signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn check_url(url: &str) -> Result<String, FieldError> {
    let url = url.trim();
    if url.is_empty() || url.len() > MAX_URL {
        return Err(FieldError::new(
            "url",
            format!("must be 1 to {MAX_URL} characters"),
        ));
    }
    let parsed = rosterd_connectors::http::check_url("url", url)
        .map_err(|e| FieldError::new("url", e.trim_start_matches("url: ").to_owned()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(FieldError::new(
            "url",
            "must not hold a user name or password (deliveries are signed instead)",
        ));
    }
    Ok(parsed.to_string())
}

fn check_types(types: &[String]) -> Result<Vec<String>, Vec<FieldError>> {
    if types.is_empty() || types.len() > MAX_TYPES {
        return Err(vec![FieldError::new(
            "event_types",
            format!(
                "must list 1 to {MAX_TYPES} event types (or `*` for all); known types: {}",
                super::events::EVENT_TYPES.join(", ")
            ),
        )]);
    }
    let mut errors = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for (i, t) in types.iter().enumerate() {
        let t = t.trim();
        if !pattern_is_known(t) {
            errors.push(FieldError::new(
                format!("event_types[{i}]"),
                format!(
                    "`{}` is not an event type; known types: {} (or `*`, or `member.*` and the like)",
                    t.escape_debug(),
                    super::events::EVENT_TYPES.join(", ")
                ),
            ));
        } else if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn check_description(d: Option<&str>) -> Result<Option<String>, FieldError> {
    match d.map(str::trim).filter(|d| !d.is_empty()) {
        None => Ok(None),
        Some(d) => super::error::check_label("description", d, 200)
            .map(Some)
            .map_err(|e| match e {
                RosterError::Invalid(mut v) if !v.is_empty() => v.remove(0),
                other => FieldError::new("description", other.to_string()),
            }),
    }
}

fn types_json(types: &[String]) -> String {
    serde_json::to_string(types).unwrap_or_else(|_| "[]".into())
}

impl Roster {
    pub async fn create_webhook(
        &self,
        org_id: Uuid,
        actor: &Actor,
        new: NewWebhook,
    ) -> Result<CreatedWebhook> {
        let mut errors = Vec::new();
        let url = check_url(&new.url).map_err(|e| errors.push(e)).ok();
        let types = check_types(&new.event_types)
            .map_err(|e| errors.extend(e))
            .ok();
        let description = check_description(new.description.as_deref())
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        let (Some(url), Some(types), true) = (url, types, errors.is_empty()) else {
            return Err(RosterError::Invalid(errors));
        };
        let now = self.clock.now();
        let enabled = new.enabled.unwrap_or(true);
        let row = WebhookRow {
            id: Uuid::now_v7(),
            org_id,
            url,
            event_types: types_json(&types),
            description,
            secret: new_secret(),
            previous_secret: None,
            previous_secret_until: None,
            enabled,
            consecutive_failures: 0,
            disabled_at: (!enabled).then_some(now),
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        if store::webhooks::of_org(&mut tx, org_id).await?.len() >= MAX_PER_ORG {
            return Err(RosterError::conflict(
                "too_many_webhooks",
                format!(
                    "an organization has at most {MAX_PER_ORG} webhook subscriptions; delete one first"
                ),
            ));
        }
        store::webhooks::insert(&mut tx, &row).await?;
        let view = WebhookView::from(&row);
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "webhook.created",
            ("webhook", Some(row.id.to_string())),
            None::<&WebhookView>,
            Some(&view),
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedWebhook {
            webhook: view,
            secret: row.secret,
        })
    }

    pub async fn webhooks(&self, org_id: Uuid) -> Result<Vec<WebhookView>> {
        let mut tx = self.store.read().await?;
        let rows = store::webhooks::of_org(&mut tx, org_id).await?;
        tx.rollback().await?;
        Ok(rows.iter().map(WebhookView::from).collect())
    }

    pub async fn webhook(&self, org_id: Uuid, id: Uuid) -> Result<WebhookView> {
        let mut tx = self.store.read().await?;
        let row = store::webhooks::by_id(&mut tx, org_id, id, false).await?;
        tx.rollback().await?;
        row.as_ref()
            .map(WebhookView::from)
            .ok_or_else(|| RosterError::NotFound("webhook".into()))
    }

    pub async fn update_webhook(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
        patch: WebhookPatch,
    ) -> Result<WebhookView> {
        let mut errors = Vec::new();
        let url = match patch.url.as_deref().map(check_url) {
            Some(Ok(u)) => Some(u),
            Some(Err(e)) => {
                errors.push(e);
                None
            }
            None => None,
        };
        let types = match patch.event_types.as_deref().map(check_types) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                errors.extend(e);
                None
            }
            None => None,
        };
        let description = match patch
            .description
            .as_deref()
            .map(|d| check_description(Some(d)))
        {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                errors.push(e);
                None
            }
            None => None,
        };
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
        }
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let Some(before) = store::webhooks::by_id(&mut tx, org_id, id, true).await? else {
            return Err(RosterError::NotFound("webhook".into()));
        };
        let mut after = before.clone();
        if let Some(u) = url {
            after.url = u;
        }
        if let Some(t) = types {
            after.event_types = types_json(&t);
        }
        if let Some(d) = description {
            after.description = d;
        }
        match patch.enabled {
            Some(true) if !before.enabled => {
                after.enabled = true;
                after.consecutive_failures = 0;
                after.disabled_at = None;
                after.disabled_reason = None;
            }
            Some(false) if before.enabled => {
                after.enabled = false;
                after.disabled_at = Some(now);
                after.disabled_reason = None;
            }
            _ => {}
        }
        if after == before {
            tx.rollback().await?;
            return Ok(WebhookView::from(&before));
        }
        after.updated_at = now;
        store::webhooks::update(&mut tx, &after).await?;
        let view = WebhookView::from(&after);
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "webhook.updated",
            ("webhook", Some(id.to_string())),
            Some(&WebhookView::from(&before)),
            Some(&view),
        )
        .await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Gives a subscription a new signing secret, shown in this answer only. For
    /// [`ROTATION_OVERLAP`] deliveries carry signatures with both secrets, so a receiver can
    /// switch without losing any.
    pub async fn rotate_webhook_secret(
        &self,
        org_id: Uuid,
        actor: &Actor,
        id: Uuid,
    ) -> Result<CreatedWebhook> {
        let now = self.clock.now();
        let secret = new_secret();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        if store::webhooks::by_id(&mut tx, org_id, id, true)
            .await?
            .is_none()
        {
            return Err(RosterError::NotFound("webhook".into()));
        }
        store::webhooks::rotate_secret(&mut tx, org_id, id, &secret, now + ROTATION_OVERLAP, now)
            .await?;
        let after = store::webhooks::by_id(&mut tx, org_id, id, false)
            .await?
            .ok_or_else(|| RosterError::NotFound("webhook".into()))?;
        let view = WebhookView::from(&after);
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "webhook.secret_rotated",
            ("webhook", Some(id.to_string())),
            None::<&WebhookView>,
            Some(&view),
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedWebhook {
            webhook: view,
            secret,
        })
    }

    /// Deletes a subscription, its pending deliveries and its delivery log.
    pub async fn delete_webhook(&self, org_id: Uuid, actor: &Actor, id: Uuid) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        // Not locked here: the delete takes the delivery rows before the subscription's row,
        // in the order the delivery worker takes them.
        let Some(before) = store::webhooks::by_id(&mut tx, org_id, id, false).await? else {
            return Err(RosterError::NotFound("webhook".into()));
        };
        store::webhooks::delete(&mut tx, org_id, id).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "webhook.deleted",
            ("webhook", Some(id.to_string())),
            Some(&WebhookView::from(&before)),
            None::<&WebhookView>,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A subscription's delivery log, newest first (`before`: the last attempt id of the
    /// previous page).
    pub async fn webhook_attempts(
        &self,
        org_id: Uuid,
        id: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<(Vec<AttemptRow>, i64)> {
        let mut tx = self.store.read().await?;
        if store::webhooks::by_id(&mut tx, org_id, id, false)
            .await?
            .is_none()
        {
            tx.rollback().await?;
            return Err(RosterError::NotFound("webhook".into()));
        }
        let rows = store::webhooks::attempts(&mut tx, org_id, id, before, limit).await?;
        let pending = store::webhooks::pending(&mut tx, org_id, id).await?;
        tx.rollback().await?;
        Ok((rows, pending))
    }

    /// Records one delivery attempt: the log row, the delivery's next state, and the
    /// subscription's run of failures — disabling it (audited, by rosterd) once the run
    /// reaches `disable_after`. False when the worker's claim was lost meanwhile (nothing
    /// recorded: the new claimant reports).
    pub async fn record_webhook_attempt(
        &self,
        delivery: &ClaimedDelivery,
        lease: DateTime<Utc>,
        attempt: &AttemptRow,
        disable_after: i64,
    ) -> Result<bool> {
        let mut tx = self.store.write().await?;
        if !store::webhooks::record_attempt(&mut tx, attempt, lease).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let (org_id, id) = (delivery.org_id, delivery.webhook_id);
        let failures =
            store::webhooks::count_outcome(&mut tx, org_id, id, attempt.succeeded).await?;
        if !attempt.succeeded
            && failures >= disable_after
            && let Some(before) = store::webhooks::by_id(&mut tx, org_id, id, true).await?
            && before.enabled
        {
            let mut after = before.clone();
            after.enabled = false;
            after.disabled_at = Some(attempt.at);
            after.disabled_reason = Some(format!(
                "{failures} delivery attempts in a row failed; the last: {}",
                attempt.error.as_deref().unwrap_or("unknown error")
            ));
            after.updated_at = attempt.at;
            store::webhooks::update(&mut tx, &after).await?;
            record(
                &mut tx,
                attempt.at,
                Some(org_id),
                &Actor::System,
                "webhook.disabled",
                ("webhook", Some(id.to_string())),
                Some(&WebhookView::from(&before)),
                Some(&WebhookView::from(&after)),
            )
            .await?;
            tracing::warn!(webhook = %id, failures, "webhook subscription disabled after repeated failures");
        }
        tx.commit().await?;
        Ok(true)
    }
}
