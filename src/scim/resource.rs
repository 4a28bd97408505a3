//! SCIM resources ⇄ rosterd's members and groups: rendering a member as a User (and a group as
//! a Group), reading what a client sent (with the tolerance real clients need), and the
//! `attributes` / `excludedAttributes` projection.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::ScimError;
use super::filter::get_ci;
use super::schema::{ENTERPRISE, GROUP, ORG_USER, USER};
use crate::domain::attribute;
use crate::domain::{Email, Member, Phone};
use crate::roster::attributes::Typed;
use crate::store::groups::Group;
use std::collections::BTreeMap;

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Finds a key ignoring case and returns the key as stored.
fn key_ci(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned()
}

/// Sets `key` in `obj`, replacing an existing key that differs only in case.
pub fn set_ci(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if let Some(k) = key_ci(obj, key) {
        obj.remove(&k);
    }
    obj.insert(key.to_owned(), value);
}

pub fn remove_ci(obj: &mut Map<String, Value>, key: &str) -> Option<Value> {
    key_ci(obj, key).and_then(|k| obj.remove(&k))
}

/// Renders a member as a SCIM User. `phones` are the member's numbers (`store::phones`):
/// they are the User's `phoneNumbers`.
/// `attrs` are the member's values of the org's own attributes: the org extension
/// ([`ORG_USER`]).
pub fn render_user(
    m: &Member,
    groups: &[(Uuid, String)],
    phones: &[Phone],
    attrs: &Typed,
    base: &str,
) -> Value {
    let mut doc: Map<String, Value> = m
        .scim_data
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    // `"active": null` in the stored document: the client left `active` unassigned.
    let active_assigned = !matches!(
        get_ci(&Value::Object(doc.clone()), "active"),
        Some(Value::Null)
    );
    for k in [
        "id",
        "meta",
        "schemas",
        "password",
        "groups",
        "active",
        "userName",
        "externalId",
    ] {
        remove_ci(&mut doc, k);
    }
    let mut schemas = vec![json!(USER)];
    if key_ci(&doc, ENTERPRISE).is_some() {
        schemas.push(json!(ENTERPRISE));
    }
    // An extension without values a client wrote is kept in the document and shown as written.
    let stated_empty = remove_ci(&mut doc, ORG_USER);
    if let (true, Some(ext)) = (attrs.is_empty(), stated_empty) {
        schemas.push(json!(ORG_USER));
        doc.insert(ORG_USER.into(), ext);
    } else if !attrs.is_empty() {
        schemas.push(json!(ORG_USER));
        let ext: Map<String, Value> = attrs
            .iter()
            .map(|(d, v)| (d.name.clone(), attribute::to_scim_json(d.kind, v)))
            .collect();
        doc.insert(ORG_USER.into(), Value::Object(ext));
    }
    // What rosterd knows for certain wins over the stored document.
    let mut name = match remove_ci(&mut doc, "name") {
        Some(Value::Object(n)) => n,
        _ => Map::new(),
    };
    match &m.given_name {
        Some(g) => set_ci(&mut name, "givenName", json!(g)),
        None => {
            remove_ci(&mut name, "givenName");
        }
    }
    match &m.family_name {
        Some(f) => set_ci(&mut name, "familyName", json!(f)),
        None => {
            remove_ci(&mut name, "familyName");
        }
    }
    if !name.is_empty() {
        doc.insert("name".into(), Value::Object(name));
    }
    match &m.display_name {
        Some(d) => set_ci(&mut doc, "displayName", json!(d)),
        None => {
            remove_ci(&mut doc, "displayName");
        }
    }
    let has_member_email = match get_ci(&Value::Object(doc.clone()), "emails") {
        Some(Value::Array(list)) => list.iter().any(|e| {
            get_ci(e, "value")
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(&m.member_email))
        }),
        _ => false,
    };
    if !has_member_email {
        set_ci(
            &mut doc,
            "emails",
            json!([{"value": m.member_email, "type": "work", "primary": true}]),
        );
    }
    doc.insert("schemas".into(), Value::Array(schemas));
    doc.insert("id".into(), json!(m.id.to_string()));
    doc.insert("userName".into(), json!(m.user_name));
    if let Some(x) = &m.external_id {
        doc.insert("externalId".into(), json!(x));
    }
    if active_assigned {
        doc.insert("active".into(), json!(m.access.has_access()));
    }
    // A document stored before numbers had their own table keeps its `phoneNumbers` until the
    // member's numbers are first written (which takes them out of the document).
    if !phones.is_empty() {
        set_ci(&mut doc, "phoneNumbers", render_phones(phones));
    }
    if !groups.is_empty() {
        doc.insert(
            "groups".into(),
            Value::Array(
                groups
                    .iter()
                    .map(|(id, name)| {
                        json!({"value": id.to_string(), "display": name, "$ref": format!("{base}/Groups/{id}"), "type": "direct"})
                    })
                    .collect(),
            ),
        );
    }
    doc.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": time(m.added_at),
            "lastModified": time(m.updated_at),
            "location": format!("{base}/Users/{}", m.id),
            "version": etag(m.version),
        }),
    );
    Value::Object(doc)
}

/// A member's numbers as SCIM `phoneNumbers` (`primary` when true or stated).
fn render_phones(phones: &[Phone]) -> Value {
    Value::Array(
        phones
            .iter()
            .map(|p| {
                let mut o = Map::new();
                o.insert("value".into(), json!(p.value));
                if let Some(k) = &p.kind {
                    o.insert("type".into(), json!(k));
                }
                if let Some(d) = &p.display {
                    o.insert("display".into(), json!(d));
                }
                if p.primary || p.primary_stated {
                    o.insert("primary".into(), json!(p.primary));
                }
                Value::Object(o)
            })
            .collect(),
    )
}

/// Reads `phoneNumbers` (taken out of the document: they are kept in their own table) and
/// checks them as the admin API does.
fn read_phones(doc: &mut Map<String, Value>) -> Result<Vec<Phone>, ScimError> {
    let list = match remove_ci(doc, "phoneNumbers") {
        None => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ScimError::invalid_value("phoneNumbers must be a list")),
    };
    let mut raw = Vec::with_capacity(list.len());
    for p in &list {
        if !p.is_object() {
            return Err(ScimError::invalid_value(
                "phoneNumbers must be a list of objects",
            ));
        }
        let value = match get_ci(p, "value") {
            Some(Value::String(s)) => s.clone(),
            None => {
                return Err(ScimError::invalid_value(
                    "phoneNumbers: each number needs a value",
                ));
            }
            Some(_) => {
                return Err(ScimError::invalid_value(
                    "phoneNumbers.value must be a string",
                ));
            }
        };
        let primary = match get_ci(p, "primary") {
            None => None,
            Some(v) => Some(as_bool(v).ok_or_else(|| {
                ScimError::invalid_value("phoneNumbers.primary must be a boolean")
            })?),
        };
        raw.push(Phone {
            kind: opt_string(p, "type", "phoneNumbers.type")?,
            value,
            display: opt_string(p, "display", "phoneNumbers.display")?,
            primary: primary.unwrap_or(false),
            primary_stated: primary.is_some(),
        });
    }
    crate::roster::phones::check_list("phoneNumbers", raw).map_err(|errs| {
        ScimError::invalid_value(
            errs.iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Renders a group as a SCIM Group (`members` only when given).
/// Members are rendered as RFC 7643 §8.7.1 defines them: `value`, `$ref` and `type`.
pub fn render_group(g: &Group, members: Option<&[(Uuid, String)]>, base: &str) -> Value {
    let mut doc: Map<String, Value> = g
        .scim_data
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    for k in [
        "id",
        "meta",
        "schemas",
        "members",
        "displayName",
        "externalId",
    ] {
        remove_ci(&mut doc, k);
    }
    doc.insert("schemas".into(), json!([GROUP]));
    doc.insert("id".into(), json!(g.id.to_string()));
    doc.insert("displayName".into(), json!(g.name));
    if let Some(x) = &g.external_id {
        doc.insert("externalId".into(), json!(x));
    }
    if let Some(members) = members {
        doc.insert("members".into(), render_group_members(members, base));
    }
    doc.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "created": time(g.created_at),
            "lastModified": time(g.updated_at),
            "location": format!("{base}/Groups/{}", g.id),
            "version": etag(g.version),
        }),
    );
    Value::Object(doc)
}

/// RFC 7643 §7: `id` and `meta` are readOnly. A PATCH result that changed either (an operation
/// on `id`, `meta` or `meta.*`, or a path-less value carrying different ones) is refused.
pub fn check_patch_read_only(before: &Value, after: &Value) -> Result<(), ScimError> {
    for k in ["id", "meta"] {
        if get_ci(before, k) != get_ci(after, k) {
            return Err(ScimError::mutability(format!(
                "`{k}` is read-only: a PATCH cannot change it"
            )));
        }
    }
    Ok(())
}

/// A PUT may repeat `id` and `meta` as read (clients echo them); a different `id`, or a
/// different `meta.created`, `meta.resourceType` or `meta.location`, is refused.
/// `meta.version` and `meta.lastModified` describe the read the client made: an older one is
/// not an attempt to change them (`If-Match` is how a client guards against newer writes).
pub fn check_put_read_only(current: &Value, body: &Value) -> Result<(), ScimError> {
    let refuse = |what: &str| {
        Err(ScimError::mutability(format!(
            "`{what}` is read-only: it cannot be changed by a PUT"
        )))
    };
    if let Some(id) = get_ci(body, "id").filter(|v| !v.is_null()) {
        let same = match (id.as_str(), get_ci(current, "id").and_then(Value::as_str)) {
            (Some(a), Some(b)) => {
                a == b || Uuid::try_parse(a).is_ok_and(|a| Uuid::try_parse(b).is_ok_and(|b| a == b))
            }
            _ => false,
        };
        if !same {
            return refuse("id");
        }
    }
    let Some(meta) = get_ci(body, "meta").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    if !meta.is_object() {
        return refuse("meta");
    }
    let now = get_ci(current, "meta");
    let cur = |k: &str| now.and_then(|m| get_ci(m, k)).and_then(Value::as_str);
    for k in ["created", "resourceType", "location"] {
        let Some(sent) = get_ci(meta, k).filter(|v| !v.is_null()) else {
            continue;
        };
        let same = match (sent.as_str(), cur(k)) {
            (Some(a), Some(b)) if k == "created" => {
                match (
                    DateTime::parse_from_rfc3339(a),
                    DateTime::parse_from_rfc3339(b),
                ) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => a == b,
                }
            }
            (Some(a), Some(b)) if k == "resourceType" => a.eq_ignore_ascii_case(b),
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
        if !same {
            return refuse(&format!("meta.{k}"));
        }
    }
    Ok(())
}

/// A group's `members`: `value`, `$ref` and `type` of each.
pub fn render_group_members(members: &[(Uuid, String)], base: &str) -> Value {
    Value::Array(
        members
            .iter()
            .map(|(id, _display)| {
                json!({"value": id.to_string(), "$ref": format!("{base}/Users/{id}"), "type": "User"})
            })
            .collect(),
    )
}

/// What a client asked a User to be, after the tolerance rules.
#[derive(Debug, Clone)]
pub struct UserWrite {
    pub user_name: String,
    pub email: Email,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    /// `None` when the document does not say: `active` is unassigned (a create then means
    /// active; a replace or PATCH keeps the member's access as it is, and the User is rendered
    /// without `active` until a client assigns it again).
    pub active: Option<bool>,
    pub external_id: Option<String>,
    /// `phoneNumbers`, checked (not kept in `data`).
    pub phones: Vec<Phone>,
    /// The cleaned document to keep.
    pub data: Value,
    /// The org extension's values as text, by name; `None` when the document has none.
    pub attributes: Option<BTreeMap<String, String>>,
}

/// Drops `null` values (clients send them for "absent") recursively.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|_, v| !v.is_null());
            for v in o.values_mut() {
                drop_nulls(v);
            }
        }
        Value::Array(a) => {
            a.retain(|v| !v.is_null());
            for v in a.iter_mut() {
                drop_nulls(v);
            }
        }
        _ => {}
    }
}

/// A boolean as clients send it: `true`, or the strings "True"/"False" (Entra ID).
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn opt_string(obj: &Value, key: &str, field: &str) -> Result<Option<String>, ScimError> {
    match get_ci(obj, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            if s.chars().any(char::is_control) || s.chars().count() > 1024 {
                return Err(ScimError::invalid_value(format!(
                    "{field}: control characters or too long"
                )));
            }
            Ok(Some(s.trim().to_owned()))
        }
        Some(_) => Err(ScimError::invalid_value(format!(
            "{field} must be a string"
        ))),
    }
}

/// Normalizes the enterprise manager: a bare id string, `[{"value": id, "$ref": …}]` or an
/// object all become `{"value": id}` (plus `$ref` when given).
fn normalize_manager(doc: &mut Map<String, Value>) -> Result<(), ScimError> {
    let Some(ext_key) = key_ci(doc, ENTERPRISE) else {
        return Ok(());
    };
    let Some(Value::Object(ext)) = doc.get_mut(&ext_key) else {
        return Err(ScimError::invalid_value(format!(
            "{ENTERPRISE} must be an object"
        )));
    };
    let Some(mk) = key_ci(ext, "manager") else {
        return Ok(());
    };
    let m = ext.remove(&mk).unwrap_or(Value::Null);
    let normalized = match m {
        Value::String(id) if id.is_empty() => None,
        Value::String(id) => Some(json!({"value": id})),
        Value::Array(mut items) if !items.is_empty() => {
            let first = items.swap_remove(0);
            match first {
                Value::Object(_) => Some(first),
                Value::String(id) => Some(json!({"value": id})),
                _ => return Err(ScimError::invalid_value("manager must name a user")),
            }
        }
        Value::Array(_) | Value::Null => None,
        Value::Object(o) => Some(Value::Object(o)),
        _ => {
            return Err(ScimError::invalid_value(
                "manager must be a user id or an object",
            ));
        }
    };
    if let Some(mut n) = normalized {
        if let Value::Object(o) = &mut n {
            o.retain(|k, v| !(k == "$ref" && v.is_null()));
        }
        ext.insert("manager".into(), n);
    }
    Ok(())
}

/// Reads a User document sent by a client (POST, PUT, or the result of a PATCH).
pub fn read_user(body: &Value) -> Result<UserWrite, ScimError> {
    let mut body = body.clone();
    drop_nulls(&mut body);
    let Value::Object(mut doc) = body else {
        return Err(ScimError::invalid_syntax("a User must be a JSON object"));
    };
    // Read-only and never-stored attributes are ignored on write.
    for k in ["id", "meta", "groups", "password", "schemas"] {
        remove_ci(&mut doc, k);
    }
    normalize_manager(&mut doc)?;
    let phones = read_phones(&mut doc)?;
    let attributes = match remove_ci(&mut doc, ORG_USER) {
        None => None,
        Some(Value::Object(ext)) => {
            let mut out = BTreeMap::new();
            let values: Vec<(&String, &Value)> = ext
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("schemas"))
                .collect();
            if values.is_empty() {
                doc.insert(ORG_USER.into(), Value::Object(ext.clone()));
            }
            for (k, v) in values {
                let text = attribute::json_as_text(v).ok_or_else(|| {
                    ScimError::invalid_value(format!("{ORG_USER}:{k} must be a single value"))
                })?;
                out.insert(k.clone(), text);
            }
            Some(out)
        }
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "{ORG_USER} must be an object"
            )));
        }
    };
    let v = Value::Object(doc.clone());
    let user_name = opt_string(&v, "userName", "userName")?
        .ok_or_else(|| ScimError::invalid_value("userName is required"))?;
    if user_name.chars().count() > 320 {
        return Err(ScimError::invalid_value("userName is too long"));
    }
    let active = match get_ci(&v, "active") {
        None => None,
        Some(a) => {
            Some(as_bool(a).ok_or_else(|| ScimError::invalid_value("active must be a boolean"))?)
        }
    };
    remove_ci(&mut doc, "active");
    if active.is_none() {
        // Remembered with the document, so the User is rendered without `active`.
        doc.insert("active".into(), Value::Null);
    }
    let external_id = opt_string(&v, "externalId", "externalId")?;
    let display_name = opt_string(&v, "displayName", "displayName")?;
    let (given_name, family_name) = match get_ci(&v, "name") {
        None => (None, None),
        Some(n @ Value::Object(_)) => (
            opt_string(n, "givenName", "name.givenName")?,
            opt_string(n, "familyName", "name.familyName")?,
        ),
        Some(_) => return Err(ScimError::invalid_value("name must be an object")),
    };
    // The invitation address: the primary email, else a work email, else the first, else the
    // userName when it is an address.
    let mut candidates: Vec<(u8, String)> = Vec::new();
    match get_ci(&v, "emails") {
        None => {}
        Some(Value::Array(list)) => {
            for e in list {
                let Value::Object(_) = e else {
                    return Err(ScimError::invalid_value("emails must be a list of objects"));
                };
                let Some(value) = opt_string(e, "value", "emails.value")? else {
                    continue;
                };
                let primary = get_ci(e, "primary").and_then(as_bool).unwrap_or(false);
                let work = get_ci(e, "type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("work"));
                let rank = if primary {
                    0
                } else if work {
                    1
                } else {
                    2
                };
                candidates.push((rank, value));
            }
        }
        Some(_) => return Err(ScimError::invalid_value("emails must be a list")),
    }
    candidates.sort_by_key(|(r, _)| *r);
    let email = match candidates.first() {
        Some((_, e)) => {
            Email::parse(e).map_err(|err| ScimError::invalid_value(format!("emails: {err}")))?
        }
        None => Email::parse(&user_name).map_err(|_| {
            ScimError::invalid_value(
                "a User needs an email address (emails) or a userName that is one",
            )
        })?,
    };
    Ok(UserWrite {
        user_name,
        email,
        given_name,
        family_name,
        display_name,
        active,
        external_id,
        phones,
        data: Value::Object(doc),
        attributes,
    })
}

/// What a client asked a Group to be.
#[derive(Debug, Clone)]
pub struct GroupWrite {
    pub display_name: String,
    pub external_id: Option<String>,
    /// `None` when the document has no `members` (PATCH results keep membership as is).
    pub members: Option<Vec<String>>,
    pub data: Value,
}

pub fn read_group(body: &Value) -> Result<GroupWrite, ScimError> {
    let mut body = body.clone();
    drop_nulls(&mut body);
    let Value::Object(mut doc) = body else {
        return Err(ScimError::invalid_syntax("a Group must be a JSON object"));
    };
    for k in ["id", "meta", "schemas"] {
        remove_ci(&mut doc, k);
    }
    let v = Value::Object(doc.clone());
    let display_name = opt_string(&v, "displayName", "displayName")?
        .ok_or_else(|| ScimError::invalid_value("displayName is required"))?;
    let external_id = opt_string(&v, "externalId", "externalId")?;
    let members = match remove_ci(&mut doc, "members") {
        None => None,
        Some(Value::Array(list)) => Some(member_values(&list)?),
        Some(_) => return Err(ScimError::invalid_value("members must be a list")),
    };
    Ok(GroupWrite {
        display_name,
        external_id,
        members,
        data: Value::Object(doc),
    })
}

/// The `value`s of a list of member objects (`$ref` and `display` are ignored, even null).
pub fn member_values(list: &[Value]) -> Result<Vec<String>, ScimError> {
    list.iter()
        .map(|m| match get_ci(m, "value") {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(ScimError::invalid_value(
                "each member needs a string value (a User id)",
            )),
        })
        .collect()
}

/// Applies `attributes` / `excludedAttributes` to a rendered resource. `id`, `schemas` and
/// `meta` are always returned; `password` never is.
pub fn project(doc: Value, attributes: &[String], excluded: &[String]) -> Value {
    let Value::Object(mut obj) = doc else {
        return doc;
    };
    let always = |k: &str| {
        ["id", "schemas", "meta"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(k))
    };
    let split = |a: &str| -> (Option<String>, String, Option<String>) {
        match super::filter::parse_attr_path(a) {
            Ok(p) => (p.urn, p.attr, p.sub),
            Err(_) => (None, a.to_owned(), None),
        }
    };
    if !attributes.is_empty() {
        let mut out = Map::new();
        for (k, v) in &obj {
            if always(k) {
                out.insert(k.clone(), v.clone());
            }
        }
        for a in attributes {
            let (urn, attr, sub) = split(a);
            // A bare extension URN selects the whole extension.
            if a.to_ascii_lowercase().starts_with("urn:")
                && super::filter::parse_attr_path(a).is_err()
            {
                if let Some(k) = key_ci(&obj, a) {
                    out.insert(k.clone(), obj[&k].clone());
                }
                continue;
            }
            let (container_key, source): (Option<String>, &Map<String, Value>) = match &urn {
                Some(u) if !super::filter::is_core_urn(u) => match key_ci(&obj, u) {
                    Some(k) => match obj.get(&k) {
                        Some(Value::Object(ext)) => (Some(k), ext),
                        _ => continue,
                    },
                    None => {
                        // The URN itself may be the extension and `attr` the last segment.
                        let full = a.to_owned();
                        if let Some(k) = key_ci(&obj, &full) {
                            out.insert(k.clone(), obj[&k].clone());
                        }
                        continue;
                    }
                },
                _ => (None, &obj),
            };
            let Some(k) = key_ci(source, &attr) else {
                continue;
            };
            let mut value = source[&k].clone();
            if let Some(sub) = &sub {
                value = match value {
                    Value::Object(o) => match key_ci(&o, sub) {
                        Some(sk) => json!({ sk.clone(): o[&sk].clone() }),
                        None => continue,
                    },
                    Value::Array(items) => Value::Array(
                        items
                            .into_iter()
                            .filter_map(|i| match i {
                                Value::Object(o) => {
                                    key_ci(&o, sub).map(|sk| json!({ sk.clone(): o[&sk].clone() }))
                                }
                                _ => None,
                            })
                            .collect(),
                    ),
                    _ => continue,
                };
            }
            match container_key {
                Some(ck) => {
                    let entry = out.entry(ck).or_insert_with(|| json!({}));
                    if let Value::Object(e) = entry {
                        merge_into(e, &k, value);
                    }
                }
                None => merge_into(&mut out, &k, value),
            }
        }
        obj = out;
    }
    for a in excluded {
        let (urn, attr, sub) = split(a);
        if always(&attr) && urn.is_none() && sub.is_none() {
            continue;
        }
        let target: Option<&mut Map<String, Value>> = match &urn {
            Some(u) if !super::filter::is_core_urn(u) => match key_ci(&obj, u) {
                Some(k) => obj.get_mut(&k).and_then(Value::as_object_mut),
                None => {
                    if let Some(k) = key_ci(&obj, a) {
                        obj.remove(&k);
                    }
                    None
                }
            },
            _ => Some(&mut obj),
        };
        let Some(target) = target else { continue };
        match sub {
            None => {
                remove_ci(target, &attr);
            }
            Some(sub) => {
                if let Some(k) = key_ci(target, &attr) {
                    match target.get_mut(&k) {
                        Some(Value::Object(o)) => {
                            remove_ci(o, &sub);
                        }
                        Some(Value::Array(items)) => {
                            for i in items.iter_mut() {
                                if let Value::Object(o) = i {
                                    remove_ci(o, &sub);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Value::Object(obj)
}

fn merge_into(out: &mut Map<String, Value>, key: &str, value: Value) {
    match (out.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(add)) => {
            for (k, v) in add {
                existing.insert(k, v);
            }
        }
        (Some(Value::Array(existing)), Value::Array(add)) => {
            // Sub-attribute projections of the same list: merge element-wise.
            for (i, v) in add.into_iter().enumerate() {
                match (existing.get_mut(i), v) {
                    (Some(Value::Object(e)), Value::Object(a)) => e.extend(a),
                    (None, v) => existing.push(v),
                    _ => {}
                }
            }
        }
        (_, v) => {
            out.insert(key.to_owned(), v);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    /// Arbitrary JSON, biased towards the keys SCIM handlers look at.
    pub fn arb_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("userName".to_owned()),
            Just("emails".to_owned()),
            Just("value".to_owned()),
            Just("primary".to_owned()),
            Just("active".to_owned()),
            Just("name".to_owned()),
            Just("members".to_owned()),
            Just("displayName".to_owned()),
            Just("Operations".to_owned()),
            Just("op".to_owned()),
            Just("path".to_owned()),
            Just("schemas".to_owned()),
            Just(ENTERPRISE.to_owned()),
            Just("manager".to_owned()),
            "\\PC{0,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "\\PC{0,20}".prop_map(Value::String),
            Just(json!("a@b.co")),
            Just(json!("True")),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn reading_arbitrary_json_never_panics(v in arb_json()) {
            let _ = read_user(&v);
            let _ = read_group(&v);
            let _ = project(v.clone(), &["userName".into(), "name.givenName".into()], &["emails".into()]);
            if let Ok(ops) = crate::scim::patch::parse(&v) {
                let mut doc = json!({"userName": "u", "emails": [{"value": "a@b.co"}]});
                let _ = crate::scim::patch::apply(&mut doc, &ops);
            }
        }
    }

    #[test]
    fn user_documents_are_read_tolerantly() {
        let u = read_user(&json!({
            "userName": "u@x.io", "active": "False", "nickName": null,
            "emails": [{"value": "home@x.io", "type": "home"}, {"value": "w@x.io", "type": "work"}],
            ENTERPRISE: {"manager": "abc"}
        }))
        .unwrap();
        assert_eq!(u.active, Some(false));
        assert_eq!(
            u.email.as_str(),
            "w@x.io",
            "work email preferred when none is primary"
        );
        assert_eq!(u.data[ENTERPRISE]["manager"], json!({"value": "abc"}));
        assert!(u.data.get("nickName").is_none());
        assert!(read_user(&json!({"userName": 5})).is_err());
        assert!(
            read_user(&json!({"userName": "nobody"})).is_err(),
            "no address at all"
        );
    }
}
