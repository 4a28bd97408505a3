//! A member's phone numbers: checking a list (each type and number, at most one primary, no
//! number twice, at most [`MAX_PHONES`]) and setting a member's whole list, audited as
//! `member.phones_set` with the lists before and after. The admin API, adding members and SCIM
//! writes all check through [`check_list`]; the numbers live in their own table
//! (`store::phones`), never on the member row.

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::audit::{Actor, record};
use super::members::lock_org;
use super::{FieldError, Result, Roster, RosterError};
use crate::domain::phone::{self, MAX_PHONES};
use crate::domain::{Member, Phone};
use crate::store::{self, Tx};

const MAX_DISPLAY: usize = 200;

/// A phone number as an admin gives it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPhone {
    /// work, home, mobile, fax, pager, other, or a short label of the org's own.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub value: String,
    #[serde(default)]
    pub primary: Option<bool>,
}

impl From<NewPhone> for Phone {
    fn from(p: NewPhone) -> Phone {
        Phone {
            kind: p.kind,
            value: p.value,
            display: None,
            primary: p.primary.unwrap_or(false),
            primary_stated: p.primary.is_some(),
        }
    }
}

/// The digits (and a leading `+`) of a number: two spellings of one number share it.
fn number_key(value: &str) -> String {
    let v = value.trim();
    let v = match v.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("tel:") => &v[4..],
        _ => v,
    };
    let mut key: String = v.chars().take_while(|c| *c == '+').take(1).collect();
    key.extend(v.chars().filter(char::is_ascii_digit));
    key
}

/// Checks a whole list as given (`field` names it, e.g. `phones` or `members[2].phones`):
/// answers it normalized, or every problem found, each naming `field[i].value` or the like.
pub fn check_list(field: &str, list: Vec<Phone>) -> Result<Vec<Phone>, Vec<FieldError>> {
    let mut errors = Vec::new();
    if list.len() > MAX_PHONES {
        errors.push(FieldError::new(
            field,
            format!("at most {MAX_PHONES} phone numbers (got {})", list.len()),
        ));
        return Err(errors);
    }
    let mut out = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashSet::new();
    let mut primary: Option<usize> = None;
    for (i, p) in list.into_iter().enumerate() {
        let value = match phone::parse_value(&p.value) {
            Ok(v) => v,
            Err(e) => {
                errors.push(FieldError::new(
                    format!("{field}[{i}].value"),
                    e.to_string(),
                ));
                continue;
            }
        };
        if !seen.insert(number_key(&value)) {
            errors.push(FieldError::new(
                format!("{field}[{i}].value"),
                format!("`{value}` is listed more than once"),
            ));
        }
        let kind = match p.kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            None => None,
            Some(k) => match phone::parse_type(k) {
                Ok(k) => Some(k),
                Err(e) => {
                    errors.push(FieldError::new(format!("{field}[{i}].type"), e.to_string()));
                    None
                }
            },
        };
        let display = p
            .display
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        if let Some(d) = &display
            && (d.chars().count() > MAX_DISPLAY || d.chars().any(char::is_control))
        {
            errors.push(FieldError::new(
                format!("{field}[{i}].display"),
                format!("at most {MAX_DISPLAY} characters, no control characters"),
            ));
        }
        if p.primary {
            if let Some(first) = primary {
                errors.push(FieldError::new(
                    format!("{field}[{i}].primary"),
                    format!("only one number may be primary ({field}[{first}] already is)"),
                ));
            }
            primary.get_or_insert(i);
        }
        out.push(Phone {
            kind,
            value,
            display,
            primary: p.primary,
            primary_stated: p.primary_stated,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Whether the stored SCIM document still holds `phoneNumbers` (written before they moved to
/// their own table); the first write of the member's numbers takes them out.
pub(crate) fn legacy_scim_phones(m: &Member) -> bool {
    m.scim_data
        .as_deref()
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|v| {
            v.as_object()
                .map(|o| o.keys().any(|k| k.eq_ignore_ascii_case("phoneNumbers")))
        })
        .unwrap_or(false)
}

/// Removes `phoneNumbers` (any case) from the member's stored SCIM document.
pub(crate) fn strip_legacy_scim_phones(m: &mut Member) {
    let Some(mut doc) = m
        .scim_data
        .as_deref()
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
    else {
        return;
    };
    if let Some(o) = doc.as_object_mut() {
        o.retain(|k, _| !k.eq_ignore_ascii_case("phoneNumbers"));
        m.scim_data = Some(doc.to_string());
    }
}

/// Writes a member's new list and its audit entry inside the caller's transaction. The caller
/// writes the member row (its version moves: `phoneNumbers` are part of the SCIM User).
pub(crate) async fn write_list(
    tx: &mut Tx,
    now: chrono::DateTime<chrono::Utc>,
    actor: &Actor,
    m: &Member,
    before: &[Phone],
    after: &[Phone],
) -> Result<()> {
    store::phones::replace(tx, m.org_id, m.id, after).await?;
    record(
        tx,
        now,
        Some(m.org_id),
        actor,
        "member.phones_set",
        ("member", Some(m.id.to_string())),
        Some(&json!({ "phones": before })),
        Some(&json!({ "phones": after })),
    )
    .await?;
    Ok(())
}

impl Roster {
    /// A member's phone numbers, in order.
    pub async fn phones(&self, org_id: Uuid, member_id: Uuid) -> Result<Vec<Phone>> {
        let mut tx = self.store.read().await?;
        if store::members::by_id(&mut tx, org_id, member_id, false)
            .await?
            .is_none()
        {
            tx.rollback().await?;
            return Err(RosterError::NotFound("member".into()));
        }
        let phones = store::phones::of_member(&mut tx, org_id, member_id).await?;
        tx.rollback().await?;
        Ok(phones)
    }

    /// Replaces a member's phone numbers with `phones` (an empty list clears them). The whole
    /// list is checked first; nothing changes if any entry is bad.
    pub async fn set_phones(
        &self,
        org_id: Uuid,
        actor: &Actor,
        member_id: Uuid,
        phones: Vec<NewPhone>,
    ) -> Result<Vec<Phone>> {
        let phones = check_list("phones", phones.into_iter().map(Phone::from).collect())
            .map_err(RosterError::Invalid)?;
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let mut m = store::members::by_id(&mut tx, org_id, member_id, true)
            .await?
            .ok_or_else(|| RosterError::NotFound("member".into()))?;
        let before = store::phones::of_member(&mut tx, org_id, member_id).await?;
        let legacy = legacy_scim_phones(&m);
        if before == phones && !legacy {
            tx.rollback().await?;
            return Ok(before);
        }
        write_list(&mut tx, now, actor, &m, &before, &phones).await?;
        strip_legacy_scim_phones(&mut m);
        m.updated_at = now;
        store::members::update(&mut tx, &mut m).await?;
        tx.commit().await?;
        Ok(phones)
    }
}

impl Roster {
    /// Sets the numbers given when a member is added (or re-added), if any were given.
    pub(crate) async fn add_phones(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        m: &Member,
        phones: &[Phone],
    ) -> Result<()> {
        if phones.is_empty() {
            return Ok(());
        }
        let before = store::phones::of_member(tx, m.org_id, m.id).await?;
        if before == phones {
            return Ok(());
        }
        write_list(tx, self.clock.now(), actor, m, &before, phones).await
    }
}
