//! Org-defined member attributes: the org's typed roster schema (definitions an admin manages)
//! and members' values, validated the same way on every write path.
//!
//! A definition has a name (unique in the org ignoring case; SCIM's attribute-name syntax), a
//! type, options for a `choice`, and the `required` and `unique` marks. Changes that would
//! strand values are refused with `409`: renaming, deleting or retyping an attribute members
//! hold values of, dropping an option in use, `unique` while two members share a value (the
//! database's unique index decides), `required` while a current member has no value.
//!
//! Values are written through [`write_values`], which every path (admin API, CLI, SCIM, import
//! and sync) calls inside its own transaction: a value another member holds for a unique
//! attribute, or a required attribute left empty, is refused naming the attribute and the
//! field. A change of values is audited on the member as `member.attributes_set`, with the
//! member's values before and after under `attributes` (erasure blots that key out).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::audit::{Actor, record};
use super::members::lock_org;
use super::{FieldError, Result, Roster, RosterError};
use crate::domain::attribute::{self, AttrKind};
use crate::store::attributes::AttributeDef;
use crate::store::{self, StoreError, Tx};

/// Most attributes an org defines.
pub const MAX_PER_ORG: usize = 100;
const MAX_DESCRIPTION: usize = 500;

/// An attribute as an admin defines it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAttribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: AttrKind,
    /// The choices of a `choice` attribute.
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// Changes to a definition; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<AttrKind>,
    #[serde(default)]
    pub options: Option<Vec<String>>,
    #[serde(default)]
    pub required: Option<bool>,
    #[serde(default)]
    pub unique: Option<bool>,
    /// An empty string clears it.
    #[serde(default)]
    pub description: Option<String>,
}

/// Values as JSON, by attribute name (`null` clears).
pub type ValueMap = BTreeMap<String, Value>;

/// Values to write, by attribute name: as JSON (the API, SCIM) or as text (CSV cells, the
/// command line, source fields).
#[derive(Debug, Clone)]
pub enum Values {
    Json(ValueMap),
    Text(BTreeMap<String, String>),
}

/// The org's schema, for checking input before any write.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub defs: Vec<AttributeDef>,
}

/// One checked value change: which attribute, the canonical value (`None` clears) and where in
/// the input it came from.
#[derive(Debug, Clone)]
pub struct ValueChange {
    pub attribute: AttributeDef,
    pub value: Option<String>,
    pub field: String,
}

impl Schema {
    pub async fn load(tx: &mut Tx, org_id: Uuid) -> store::Result<Schema> {
        Ok(Schema {
            defs: store::attributes::list(tx, org_id).await?,
        })
    }

    /// The attribute of a name, ignoring case.
    pub fn find(&self, name: &str) -> Option<&AttributeDef> {
        let key = name.to_lowercase();
        self.defs.iter().find(|d| d.name.to_lowercase() == key)
    }

    fn unknown(&self, name: &str) -> String {
        let known: Vec<&str> = self.defs.iter().map(|d| d.name.as_str()).collect();
        format!(
            "`{}` is not an attribute of this organization (its attributes: {})",
            name.chars().take(80).collect::<String>(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )
    }

    /// Checks values given as JSON (`field` is where the map sits, e.g. `members[2].attributes`).
    pub fn check_json(
        &self,
        field: &str,
        values: &ValueMap,
        errors: &mut Vec<FieldError>,
    ) -> Vec<ValueChange> {
        let mut out = Vec::with_capacity(values.len());
        for (name, v) in values {
            let at = format!("{field}.{name}");
            let Some(def) = self.find(name) else {
                errors.push(FieldError::new(at, self.unknown(name)));
                continue;
            };
            match attribute::parse_json(def.kind, &def.options, v) {
                Ok(value) => out.push(ValueChange {
                    attribute: def.clone(),
                    value,
                    field: at,
                }),
                Err(e) => errors.push(FieldError::new(at, format!("{}: {e}", def.name))),
            }
        }
        check_repeats(&mut out, errors);
        out
    }

    /// Checks values given as text (CSV cells, source fields): a blank clears.
    pub fn check_text(
        &self,
        field: &str,
        values: &BTreeMap<String, String>,
        errors: &mut Vec<FieldError>,
    ) -> Vec<ValueChange> {
        let mut out = Vec::with_capacity(values.len());
        for (name, v) in values {
            let at = format!("{field}.{name}");
            let Some(def) = self.find(name) else {
                errors.push(FieldError::new(at, self.unknown(name)));
                continue;
            };
            match attribute::parse_text(def.kind, &def.options, v) {
                Ok(value) => out.push(ValueChange {
                    attribute: def.clone(),
                    value,
                    field: at,
                }),
                Err(e) => errors.push(FieldError::new(at, format!("{}: {e}", def.name))),
            }
        }
        check_repeats(&mut out, errors);
        out
    }

    /// The value of a filter `attr.NAME=VALUE`, canonical, or a message naming the problem.
    pub fn filter_value(&self, name: &str, text: &str) -> Result<(Uuid, String), String> {
        let def = self.find(name).ok_or_else(|| self.unknown(name))?;
        match attribute::parse_text(def.kind, &def.options, text)? {
            Some(v) => Ok((def.id, v)),
            None => Err(format!("give a value to compare `{}` with", def.name)),
        }
    }

    /// A member's stored values as JSON, by attribute name.
    pub fn to_map(&self, values: &[(Uuid, String)]) -> ValueMap {
        values
            .iter()
            .filter_map(|(id, v)| {
                let d = self.defs.iter().find(|d| d.id == *id)?;
                Some((d.name.clone(), attribute::to_json(d.kind, v)))
            })
            .collect()
    }
}

/// A member's values with their definitions.
pub type Typed = Vec<(AttributeDef, String)>;

impl Schema {
    /// Pairs stored values with their definitions, in name order.
    pub fn typed(&self, values: &[(Uuid, String)]) -> Typed {
        self.defs
            .iter()
            .filter_map(|d| {
                let (_, v) = values.iter().find(|(id, _)| *id == d.id)?;
                Some((d.clone(), v.clone()))
            })
            .collect()
    }

    /// A whole set of values that replaces the member's (a SCIM PUT or PATCH result): every
    /// attribute the set leaves out is cleared.
    pub fn check_whole_text(
        &self,
        field: &str,
        values: &BTreeMap<String, String>,
        errors: &mut Vec<FieldError>,
    ) -> Vec<ValueChange> {
        let mut all = values.clone();
        for d in &self.defs {
            if !values.keys().any(|k| k.eq_ignore_ascii_case(&d.name)) {
                all.insert(d.name.clone(), String::new());
            }
        }
        self.check_text(field, &all, errors)
    }
}

/// The typed values of many members (SCIM lists).
pub async fn typed_for(
    tx: &mut Tx,
    org_id: Uuid,
    ids: &[Uuid],
) -> store::Result<HashMap<Uuid, Typed>> {
    let schema = Schema::load(tx, org_id).await?;
    if schema.defs.is_empty() || ids.is_empty() {
        return Ok(HashMap::new());
    }
    let values = store::attributes::values_for(tx, org_id, ids).await?;
    Ok(values
        .into_iter()
        .map(|(id, v)| (id, schema.typed(&v)))
        .collect())
}

/// The same attribute named twice in one map (`MemberID` and `memberid`).
fn check_repeats(out: &mut [ValueChange], errors: &mut Vec<FieldError>) {
    for i in 1..out.len() {
        if out[..i]
            .iter()
            .any(|c| c.attribute.id == out[i].attribute.id)
        {
            errors.push(FieldError::new(
                out[i].field.clone(),
                format!("`{}` is given more than once", out[i].attribute.name),
            ));
        }
    }
}

/// The values of many members by attribute name, for views (list pages, export, SCIM).
pub async fn maps_for(
    tx: &mut Tx,
    org_id: Uuid,
    ids: &[Uuid],
) -> store::Result<HashMap<Uuid, ValueMap>> {
    let schema = Schema::load(tx, org_id).await?;
    if schema.defs.is_empty() || ids.is_empty() {
        return Ok(HashMap::new());
    }
    let values = store::attributes::values_for(tx, org_id, ids).await?;
    Ok(values
        .into_iter()
        .map(|(id, v)| (id, schema.to_map(&v)))
        .collect())
}

/// One member's values by attribute name.
pub async fn map_of(tx: &mut Tx, org_id: Uuid, member_id: Uuid) -> store::Result<ValueMap> {
    let schema = Schema::load(tx, org_id).await?;
    if schema.defs.is_empty() {
        return Ok(ValueMap::new());
    }
    let values = store::attributes::values_of(tx, org_id, member_id).await?;
    Ok(schema.to_map(&values))
}

/// Writes checked value changes of one member inside the caller's transaction and audits them.
///
/// `new_member`: the member was just added (or re-added), so every required attribute must
/// have a value afterwards; otherwise only clearing a required attribute is refused. A value
/// another member holds for a unique attribute is refused naming `field`. Returns whether
/// anything changed.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_values(
    tx: &mut Tx,
    now: DateTime<Utc>,
    org_id: Uuid,
    actor: &Actor,
    member_id: Uuid,
    schema: &Schema,
    changes: &[ValueChange],
    new_member: bool,
    field: &str,
) -> Result<bool> {
    if changes.is_empty() && !(new_member && schema.defs.iter().any(|d| d.required)) {
        return Ok(false);
    }
    let current = store::attributes::values_of(tx, org_id, member_id).await?;
    let mut after: HashMap<Uuid, String> = current.iter().cloned().collect();
    let mut errors = Vec::new();
    for c in changes {
        match &c.value {
            Some(v) => {
                after.insert(c.attribute.id, v.clone());
            }
            None => {
                after.remove(&c.attribute.id);
            }
        }
    }
    for d in schema.defs.iter().filter(|d| d.required) {
        let cleared = changes
            .iter()
            .any(|c| c.attribute.id == d.id && c.value.is_none());
        if !after.contains_key(&d.id) && (new_member || cleared) {
            errors.push(FieldError::new(
                format!("{field}.{}", d.name),
                format!("`{}` is required in this organization", d.name),
            ));
        }
    }
    for c in changes {
        if let (true, Some(v)) = (c.attribute.unique, &c.value)
            && let Some(other) = store::attributes::holder(tx, org_id, c.attribute.id, v).await?
            && other != member_id
        {
            errors.push(taken(c, v));
        }
    }
    if !errors.is_empty() {
        return Err(RosterError::Invalid(errors));
    }
    let before_map: HashMap<Uuid, String> = current.into_iter().collect();
    if before_map == after {
        return Ok(false);
    }
    for c in changes {
        let was = before_map.get(&c.attribute.id);
        match &c.value {
            Some(v) if was != Some(v) => {
                match store::attributes::set_value(
                    tx,
                    org_id,
                    c.attribute.id,
                    member_id,
                    v,
                    c.attribute.unique,
                )
                .await
                {
                    // Another writer took the value meanwhile: the index is the last word.
                    Err(StoreError::Unique(_)) => {
                        return Err(RosterError::Invalid(vec![taken(c, v)]));
                    }
                    other => other?,
                }
            }
            None if was.is_some() => {
                store::attributes::clear_value(tx, org_id, c.attribute.id, member_id).await?;
            }
            _ => {}
        }
    }
    let as_map = |m: &HashMap<Uuid, String>| {
        let list: Vec<(Uuid, String)> = m.iter().map(|(k, v)| (*k, v.clone())).collect();
        serde_json::json!({ "attributes": schema.to_map(&list) })
    };
    record(
        tx,
        now,
        Some(org_id),
        actor,
        "member.attributes_set",
        ("member", Some(member_id.to_string())),
        Some(&as_map(&before_map)),
        Some(&as_map(&after)),
    )
    .await?;
    Ok(true)
}

fn taken(c: &ValueChange, v: &str) -> FieldError {
    FieldError::new(
        c.field.clone(),
        format!(
            "{}: `{v}` belongs to another member; `{}` is unique in this organization",
            c.attribute.name, c.attribute.name
        ),
    )
}

fn clean_description(d: Option<&str>) -> Result<Option<String>> {
    match d.map(str::trim) {
        None | Some("") => Ok(None),
        Some(d) => Ok(Some(super::error::check_label(
            "description",
            d,
            MAX_DESCRIPTION,
        )?)),
    }
}

fn in_use(def: &AttributeDef, n: i64, what: &str) -> RosterError {
    RosterError::conflict(
        "attribute_in_use",
        format!(
            "{n} member(s) hold a value of `{}`; {what} would strand them — clear those values first",
            def.name
        ),
    )
}

impl Roster {
    /// The org's attributes, by name.
    pub async fn attributes(&self, org_id: Uuid) -> Result<Vec<AttributeDef>> {
        let mut tx = self.store.read().await?;
        let list = store::attributes::list(&mut tx, org_id).await?;
        tx.rollback().await?;
        Ok(list)
    }

    /// One attribute by name.
    pub async fn attribute(&self, org_id: Uuid, name: &str) -> Result<AttributeDef> {
        let mut tx = self.store.read().await?;
        let d = store::attributes::by_name(&mut tx, org_id, name).await?;
        tx.rollback().await?;
        d.ok_or_else(|| RosterError::NotFound("attribute".into()))
    }

    /// Defines a new attribute.
    pub async fn create_attribute(
        &self,
        org_id: Uuid,
        actor: &Actor,
        new: NewAttribute,
    ) -> Result<AttributeDef> {
        let name = new.name.trim().to_owned();
        attribute::check_name(&name).map_err(|e| RosterError::invalid("name", e))?;
        let options = match new.kind {
            AttrKind::Choice => attribute::check_options(&new.options)
                .map_err(|e| RosterError::invalid("options", e))?,
            _ if !new.options.is_empty() => {
                return Err(RosterError::invalid(
                    "options",
                    "only a `choice` attribute has options",
                ));
            }
            _ => Vec::new(),
        };
        let description = clean_description(new.description.as_deref())?;
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let existing = store::attributes::list(&mut tx, org_id).await?;
        if let Some(d) = existing
            .iter()
            .find(|d| d.name.to_lowercase() == name.to_lowercase())
        {
            return Err(RosterError::conflict(
                "attribute_exists",
                format!("this organization already has an attribute `{}`", d.name),
            ));
        }
        if existing.len() >= MAX_PER_ORG {
            return Err(RosterError::LimitExceeded {
                field: "name".into(),
                setting: "attributes per organization",
                limit: MAX_PER_ORG as i64,
                message: format!(
                    "this organization has {MAX_PER_ORG} attributes, the most an organization has"
                ),
            });
        }
        let d = AttributeDef {
            id: Uuid::now_v7(),
            org_id,
            name,
            kind: new.kind,
            options,
            required: new.required,
            unique: new.unique,
            description,
            created_at: now,
            updated_at: now,
        };
        match store::attributes::insert(&mut tx, &d).await {
            Err(StoreError::Unique(_)) => {
                return Err(RosterError::conflict(
                    "attribute_exists",
                    format!("this organization already has an attribute `{}`", d.name),
                ));
            }
            other => other?,
        }
        if d.required {
            let missing = store::attributes::missing_count(&mut tx, org_id, d.id).await?;
            if missing > 0 {
                return Err(RosterError::conflict(
                    "attribute_missing_values",
                    format!(
                        "`{}` cannot be required: {missing} current member(s) would have no value; \
                         create it optional, set their values, then make it required",
                        d.name
                    ),
                ));
            }
        }
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "attribute.created",
            ("attribute", Some(d.id.to_string())),
            None::<&AttributeDef>,
            Some(&d),
        )
        .await?;
        tx.commit().await?;
        Ok(d)
    }

    /// Changes a definition (see the module documentation for what is refused).
    pub async fn update_attribute(
        &self,
        org_id: Uuid,
        actor: &Actor,
        name: &str,
        patch: AttributePatch,
    ) -> Result<AttributeDef> {
        let new_name = match patch.name.as_deref().map(str::trim) {
            Some(n) => {
                attribute::check_name(n).map_err(|e| RosterError::invalid("name", e))?;
                Some(n.to_owned())
            }
            None => None,
        };
        let description = match patch.description.as_deref() {
            Some(d) => Some(clean_description(Some(d))?),
            None => None,
        };
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let before = store::attributes::by_name(&mut tx, org_id, name)
            .await?
            .ok_or_else(|| RosterError::NotFound("attribute".into()))?;
        let used = store::attributes::value_count(&mut tx, org_id, before.id).await?;
        let mut after = before.clone();
        if let Some(n) = new_name
            && n != before.name
        {
            if used > 0 {
                return Err(in_use(
                    &before,
                    used,
                    "renaming it (sources and SCIM clients map onto the name)",
                ));
            }
            if n.to_lowercase() != before.name.to_lowercase()
                && store::attributes::by_name(&mut tx, org_id, &n)
                    .await?
                    .is_some()
            {
                return Err(RosterError::conflict(
                    "attribute_exists",
                    format!("this organization already has an attribute `{n}`"),
                ));
            }
            after.name = n;
        }
        if let Some(kind) = patch.kind
            && kind != before.kind
        {
            if used > 0 {
                return Err(in_use(&before, used, "changing its type"));
            }
            after.kind = kind;
            if kind != AttrKind::Choice {
                after.options.clear();
            }
        }
        match (after.kind, patch.options) {
            (AttrKind::Choice, Some(options)) => {
                after.options = attribute::check_options(&options)
                    .map_err(|e| RosterError::invalid("options", e))?;
            }
            (AttrKind::Choice, None) if after.options.is_empty() => {
                return Err(RosterError::invalid(
                    "options",
                    "a `choice` attribute needs its options",
                ));
            }
            (_, Some(o)) if !o.is_empty() => {
                return Err(RosterError::invalid(
                    "options",
                    "only a `choice` attribute has options",
                ));
            }
            _ => {}
        }
        if after.kind == AttrKind::Choice && before.kind == AttrKind::Choice {
            for (value, n) in store::attributes::values_in_use(&mut tx, org_id, before.id).await? {
                if !after.options.contains(&value) {
                    return Err(RosterError::conflict(
                        "attribute_in_use",
                        format!(
                            "option `{value}` of `{}` is held by {n} member(s); change their \
                             values before dropping or renaming it",
                            before.name
                        ),
                    ));
                }
            }
        }
        if let Some(d) = description {
            after.description = d;
        }
        if let Some(r) = patch.required {
            after.required = r;
        }
        if let Some(u) = patch.unique {
            after.unique = u;
        }
        if after == before {
            tx.rollback().await?;
            return Ok(before);
        }
        after.updated_at = now;
        store::attributes::update(&mut tx, &after).await?;
        if after.unique != before.unique {
            let duplicates = |dup: &str| {
                RosterError::conflict(
                    "attribute_duplicates",
                    format!(
                        "`{}` cannot be unique: several members hold `{dup}`; give them \
                         distinct values first",
                        after.name
                    ),
                )
            };
            if after.unique
                && let Some(dup) = store::attributes::a_duplicate(&mut tx, org_id, after.id).await?
            {
                return Err(duplicates(&dup));
            }
            // The index has the last word (a value written meanwhile on another replica).
            match store::attributes::set_unique(&mut tx, org_id, after.id, after.unique).await {
                Err(StoreError::Unique(_)) => return Err(duplicates("one value")),
                other => other?,
            }
        }
        if after.required && !before.required {
            let missing = store::attributes::missing_count(&mut tx, org_id, after.id).await?;
            if missing > 0 {
                return Err(RosterError::conflict(
                    "attribute_missing_values",
                    format!(
                        "`{}` cannot be required: {missing} current member(s) have no value; \
                         set their values first",
                        after.name
                    ),
                ));
            }
        }
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "attribute.updated",
            ("attribute", Some(after.id.to_string())),
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a definition no member holds a value of.
    pub async fn delete_attribute(
        &self,
        org_id: Uuid,
        actor: &Actor,
        name: &str,
    ) -> Result<AttributeDef> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let d = store::attributes::by_name(&mut tx, org_id, name)
            .await?
            .ok_or_else(|| RosterError::NotFound("attribute".into()))?;
        let used = store::attributes::value_count(&mut tx, org_id, d.id).await?;
        if used > 0 {
            return Err(in_use(&d, used, "deleting it"));
        }
        store::attributes::delete(&mut tx, org_id, d.id).await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "attribute.deleted",
            ("attribute", Some(d.id.to_string())),
            Some(&d),
            None::<&AttributeDef>,
        )
        .await?;
        tx.commit().await?;
        Ok(d)
    }

    /// Sets (or, with `null` or an empty text, clears) some of a member's values; the others
    /// stay.
    pub async fn set_member_attributes(
        &self,
        org_id: Uuid,
        actor: &Actor,
        member_id: Uuid,
        values: Values,
    ) -> Result<ValueMap> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        if store::members::by_id(&mut tx, org_id, member_id, true)
            .await?
            .is_none()
        {
            return Err(RosterError::NotFound("member".into()));
        }
        let schema = Schema::load(&mut tx, org_id).await?;
        let mut errors = Vec::new();
        let changes = match &values {
            Values::Json(map) => schema.check_json("attributes", map, &mut errors),
            Values::Text(map) => schema.check_text("attributes", map, &mut errors),
        };
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
        }
        write_values(
            &mut tx,
            now,
            org_id,
            actor,
            member_id,
            &schema,
            &changes,
            false,
            "attributes",
        )
        .await?;
        let map = map_of(&mut tx, org_id, member_id).await?;
        tx.commit().await?;
        Ok(map)
    }

    /// One member's values by attribute name.
    pub async fn member_attributes(&self, org_id: Uuid, member_id: Uuid) -> Result<ValueMap> {
        let mut tx = self.store.read().await?;
        if store::members::by_id(&mut tx, org_id, member_id, false)
            .await?
            .is_none()
        {
            tx.rollback().await?;
            return Err(RosterError::NotFound("member".into()));
        }
        let map = map_of(&mut tx, org_id, member_id).await?;
        tx.rollback().await?;
        Ok(map)
    }
}
