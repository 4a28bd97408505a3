//! PATCH (RFC 7644 §3.5.2) applied to a resource document: `add`, `replace` and `remove`, with
//! attribute paths, sub-attributes, value-path filters and path-less value objects — including
//! the shapes real clients send (Entra ID's capitalised op names, dotted and URN-qualified keys
//! in path-less values, booleans as strings).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::filter::{self, AttrPath, PatchPath};
use super::resource::{remove_ci, set_ci};
use super::schema::{PATCH_OP, Rules};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Most operations in one PATCH request.
pub const MAX_OPS: usize = 1000;

/// Reads a PatchOp request body.
pub fn parse(body: &Value) -> Result<Vec<PatchOp>, ScimError> {
    let Some(obj) = body.as_object() else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body must be a JSON object",
        ));
    };
    if let Some(schemas) = filter::get_ci(body, "schemas") {
        let ok = schemas.as_array().is_some_and(|a| {
            a.iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP)))
        });
        if !ok {
            return Err(ScimError::invalid_syntax(format!(
                "schemas must contain {PATCH_OP}"
            )));
        }
    }
    let ops = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .map(|(_, v)| v)
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be a list"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("Operations is empty"));
    }
    if ops.len() > MAX_OPS {
        return Err(ScimError::invalid_value(format!(
            "at most {MAX_OPS} operations per PATCH"
        )));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let kind = match filter::get_ci(op, "op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("add") => OpKind::Add,
                Some("replace") => OpKind::Replace,
                Some("remove") => OpKind::Remove,
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "Operations[{i}].op must be add, replace or remove"
                    )));
                }
            };
            let path =
                match filter::get_ci(op, "path") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(p)) if p.trim().is_empty() => None,
                    Some(Value::String(p)) => Some(filter::parse_patch_path(p).map_err(|e| {
                        ScimError::invalid_path(format!("Operations[{i}].path: {e}"))
                    })?),
                    Some(_) => {
                        return Err(ScimError::invalid_path(format!(
                            "Operations[{i}].path must be a string"
                        )));
                    }
                };
            let value = filter::get_ci(op, "value").cloned();
            if kind != OpKind::Remove && value.is_none() {
                return Err(ScimError::invalid_value(format!(
                    "Operations[{i}] needs a value"
                )));
            }
            if kind == OpKind::Remove && path.is_none() {
                return Err(ScimError::no_target(format!(
                    "Operations[{i}]: remove needs a path"
                )));
            }
            Ok(PatchOp {
                op: kind,
                path,
                value,
            })
        })
        .collect()
}

/// Resolves a path-less value key: `name.givenName`, `urn:…:User:manager`, or a plain name.
fn key_to_path(key: &str) -> Result<AttrPath, ScimError> {
    filter::parse_attr_path(key).map_err(ScimError::invalid_path)
}

/// The object holding a path's attribute: the resource, or its extension object.
fn container<'a>(
    doc: &'a mut Map<String, Value>,
    path: &AttrPath,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    match &path.urn {
        Some(urn) if !filter::is_core_urn(urn) => {
            let key = doc.keys().find(|k| k.eq_ignore_ascii_case(urn)).cloned();
            let key = match key {
                Some(k) => k,
                None if create => {
                    doc.insert(urn.clone(), json!({}));
                    urn.clone()
                }
                None => return None,
            };
            doc.get_mut(&key).and_then(Value::as_object_mut)
        }
        _ => Some(doc),
    }
}

fn get_mut_ci<'a>(obj: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Value> {
    let k = obj.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned()?;
    obj.get_mut(&k)
}

/// Whether an attribute is multi-valued: it holds a list now, or the value given is a list.
fn is_multi(existing: Option<&Value>, value: &Value) -> bool {
    matches!(existing, Some(Value::Array(_))) || matches!(value, Value::Array(_))
}

fn add_or_replace(
    doc: &mut Map<String, Value>,
    path: &PatchPath,
    value: Value,
    replace: bool,
) -> Result<(), ScimError> {
    let attr = &path.attr;
    // The path may name a whole extension: its value holds the extension's attributes.
    if path.filter.is_none() && attr.sub.is_none() && is_extension_urn(&attr.to_string()) {
        let Value::Object(values) = value else {
            return Err(ScimError::invalid_value(format!("{attr} takes an object")));
        };
        // The extension is there afterwards, even when the value holds no attribute.
        let full = attr.to_string();
        if !doc.keys().any(|k| k.eq_ignore_ascii_case(&full)) {
            doc.insert(full, json!({}));
        }
        for (k, v) in values {
            if k.eq_ignore_ascii_case("schemas") {
                continue;
            }
            let p = key_to_path(&format!("{attr}:{k}"))?;
            let sub = PatchPath {
                attr: p,
                filter: None,
                sub_after_filter: None,
            };
            add_or_replace(doc, &sub, v, replace)?;
        }
        return Ok(());
    }
    let Some(target) = container(doc, attr, true) else {
        return Err(ScimError::no_target(format!("no attribute {attr}")));
    };
    if let Some(f) = &path.filter {
        // attr[filter] or attr[filter].sub: change the matching values.
        let scoped = ScopedRules(attr.attr.clone());
        let mut matched = 0;
        if let Some(Value::Array(items)) = get_mut_ci(target, &attr.attr) {
            for item in items.iter_mut() {
                if !filter::matches(f, item, &scoped) {
                    continue;
                }
                matched += 1;
                match (&path.sub_after_filter, item) {
                    (Some(sub), Value::Object(o)) => set_ci(o, sub, value.clone()),
                    (None, item @ Value::Object(_)) => match (&value, item) {
                        (Value::Object(v), Value::Object(o)) if !replace => {
                            for (k, v) in v {
                                set_ci(o, k, v.clone());
                            }
                        }
                        (v, item) => *item = v.clone(),
                    },
                    _ => {}
                }
            }
        }
        if matched == 0 {
            // Nothing matches a filter of plain equalities (`phoneNumbers[type eq "work"]`):
            // the value is added as a new one carrying them (what Entra ID expects).
            let Some(mut item) = equalities(f).map(|pairs| {
                let mut o = Map::new();
                for (k, v) in pairs {
                    o.insert(k, v);
                }
                o
            }) else {
                return Err(ScimError::no_target(format!(
                    "no value of {} matches the filter",
                    attr.attr
                )));
            };
            match (&path.sub_after_filter, value) {
                (Some(sub), v) => set_ci(&mut item, sub, v),
                (None, Value::Object(v)) => {
                    for (k, v) in v {
                        set_ci(&mut item, &k, v);
                    }
                }
                (None, _) => {
                    return Err(ScimError::invalid_value(format!(
                        "{} takes objects",
                        attr.attr
                    )));
                }
            }
            let item = Value::Object(item);
            clear_other_primaries(target, &attr.attr, &item);
            match get_mut_ci(target, &attr.attr) {
                Some(Value::Array(items)) => items.push(item),
                _ => set_ci(target, &attr.attr, Value::Array(vec![item])),
            }
        }
        return Ok(());
    }
    match &attr.sub {
        Some(sub) => {
            let parent = get_mut_ci(target, &attr.attr);
            match parent {
                Some(Value::Object(o)) => set_ci(o, sub, value),
                Some(Value::Array(items)) => {
                    for item in items.iter_mut() {
                        if let Value::Object(o) = item {
                            set_ci(o, sub, value.clone());
                        }
                    }
                }
                _ => set_ci(target, &attr.attr, json!({ sub.clone(): value })),
            }
        }
        None => {
            if !replace {
                clear_other_primaries_of(
                    target,
                    &attr.attr,
                    value
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(std::slice::from_ref(&value)),
                );
            }
            let existing = get_mut_ci(target, &attr.attr);
            let multi = is_multi(existing.as_deref(), &value);
            match (existing, value) {
                (Some(Value::Array(list)), Value::Array(add)) if !replace => {
                    // One pass with a set of what is there: linear in the values, not quadratic.
                    let mut seen: HashSet<String> = list.iter().map(canonical).collect();
                    for v in add {
                        if seen.insert(canonical(&v)) {
                            list.push(v);
                        }
                    }
                }
                (None, Value::Array(add)) if !replace => {
                    // A value listed twice is added once, as to an existing list.
                    let mut seen: HashSet<String> = HashSet::with_capacity(add.len());
                    let add: Vec<Value> = add
                        .into_iter()
                        .filter(|v| seen.insert(canonical(v)))
                        .collect();
                    set_ci(target, &attr.attr, Value::Array(add));
                }
                (Some(Value::Array(list)), v) if !replace && !v.is_array() => {
                    if !list.contains(&v) {
                        list.push(v);
                    }
                }
                (Some(Value::Object(o)), Value::Object(add)) if !multi => {
                    // Complex single-valued: merge sub-attributes (add and replace alike).
                    for (k, v) in add {
                        set_ci(o, &k, v);
                    }
                }
                (_, v) => set_ci(target, &attr.attr, v),
            }
        }
    }
    Ok(())
}

fn remove(
    doc: &mut Map<String, Value>,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let attr = &path.attr;
    // The path may name a whole extension: remove all of its attributes.
    if path.filter.is_none() && attr.sub.is_none() {
        let full = attr.to_string();
        if is_extension_urn(&full) {
            remove_ci(doc, &full);
            return Ok(());
        }
    }
    let Some(target) = container(doc, attr, false) else {
        return Ok(());
    };
    if let Some(f) = &path.filter {
        let Some(Value::Array(items)) = get_mut_ci(target, &attr.attr) else {
            return Ok(());
        };
        let scoped = ScopedRules(attr.attr.clone());
        match &path.sub_after_filter {
            Some(sub) => {
                for item in items.iter_mut() {
                    if filter::matches(f, item, &scoped)
                        && let Value::Object(o) = item
                    {
                        remove_ci(o, sub);
                    }
                }
            }
            None => items.retain(|item| !filter::matches(f, item, &scoped)),
        }
        return Ok(());
    }
    match &attr.sub {
        Some(sub) => match get_mut_ci(target, &attr.attr) {
            Some(Value::Object(o)) => {
                remove_ci(o, sub);
            }
            Some(Value::Array(items)) => {
                for item in items.iter_mut() {
                    if let Value::Object(o) = item {
                        remove_ci(o, sub);
                    }
                }
            }
            _ => {}
        },
        None => match (get_mut_ci(target, &attr.attr), value) {
            // A remove with a value list removes only the listed values (Entra ID's member
            // removal); never the whole attribute.
            (Some(Value::Array(items)), Some(Value::Array(listed))) => {
                let listed: HashSet<String> = listed.iter().map(value_key).collect();
                items.retain(|item| !listed.contains(&value_key(item)));
            }
            _ => {
                remove_ci(target, &attr.attr);
            }
        },
    }
    Ok(())
}

/// The `attr eq "value"` pairs of a filter made only of such equalities joined by `and`.
fn equalities(f: &filter::Filter) -> Option<Vec<(String, Value)>> {
    match f {
        filter::Filter::Compare(p, filter::Op::Eq, v) if p.sub.is_none() && p.urn.is_none() => {
            let v = match v {
                filter::CompValue::Str(s) => Value::String(s.clone()),
                filter::CompValue::Bool(b) => Value::Bool(*b),
                filter::CompValue::Num(n) => json!(n),
                filter::CompValue::Null => return None,
            };
            Some(vec![(p.attr.clone(), v)])
        }
        filter::Filter::And(a, b) => {
            let mut x = equalities(a)?;
            x.extend(equalities(b)?);
            Some(x)
        }
        _ => None,
    }
}

/// Adding a value marked primary takes the mark from the others (RFC 7643 §2.4: at most one).
fn clear_other_primaries(target: &mut Map<String, Value>, attr: &str, new: &Value) {
    clear_other_primaries_of(target, attr, std::slice::from_ref(new));
}

/// [`clear_other_primaries`] for several added values at once, in one pass over the list.
fn clear_other_primaries_of(target: &mut Map<String, Value>, attr: &str, added: &[Value]) {
    let primaries: HashSet<String> = added
        .iter()
        .filter(|v| filter::get_ci(v, "primary").and_then(super::resource::as_bool) == Some(true))
        .map(value_key)
        .collect();
    if primaries.is_empty() {
        return;
    }
    if let Some(Value::Array(items)) = get_mut_ci(target, attr) {
        for item in items.iter_mut() {
            if !primaries.contains(&value_key(item))
                && let Value::Object(o) = item
                && o.keys().any(|k| k.eq_ignore_ascii_case("primary"))
            {
                set_ci(o, "primary", Value::Bool(false));
            }
        }
    }
}

/// Two values of a multi-valued attribute are the same when their `value`s are (or, lacking
/// one, when they are equal).
pub fn same_value(a: &Value, b: &Value) -> bool {
    value_key(a) == value_key(b)
}

/// What [`same_value`] compares, as a key for sets: the `value` sub-attribute, or the whole.
fn value_key(v: &Value) -> String {
    match filter::get_ci(v, "value") {
        Some(x) => format!("v{}", canonical(x)),
        None => format!("w{}", canonical(v)),
    }
}

/// JSON text equal for equal values (object keys sorted), for sets of values.
fn canonical(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&o[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// Applies operations to a resource document.
pub fn apply(doc: &mut Value, ops: &[PatchOp]) -> Result<(), ScimError> {
    let Value::Object(obj) = doc else {
        return Err(ScimError::internal());
    };
    for op in ops {
        match (&op.path, op.op) {
            (Some(path), OpKind::Remove) => remove(obj, path, op.value.as_ref())?,
            (Some(path), kind) => add_or_replace(
                obj,
                path,
                op.value.clone().unwrap_or(Value::Null),
                kind == OpKind::Replace,
            )?,
            (None, OpKind::Remove) => return Err(ScimError::no_target("remove needs a path")),
            (None, kind) => {
                let Some(Value::Object(values)) = &op.value else {
                    return Err(ScimError::invalid_value(
                        "a PATCH without a path needs an object value",
                    ));
                };
                for (key, v) in values {
                    // A key naming an extension URN carries that extension's attributes.
                    if is_extension_urn(key)
                        && let Value::Object(inner) = v
                    {
                        for (ik, iv) in inner {
                            let p = key_to_path(&format!("{key}:{ik}"))?;
                            let path = PatchPath {
                                attr: p,
                                filter: None,
                                sub_after_filter: None,
                            };
                            add_or_replace(obj, &path, iv.clone(), kind == OpKind::Replace)?;
                        }
                        continue;
                    }
                    let p = key_to_path(key)?;
                    let path = PatchPath {
                        attr: p,
                        filter: None,
                        sub_after_filter: None,
                    };
                    add_or_replace(obj, &path, v.clone(), kind == OpKind::Replace)?;
                }
            }
        }
    }
    Ok(())
}

fn is_extension_urn(key: &str) -> bool {
    key.eq_ignore_ascii_case(super::schema::ENTERPRISE)
        || key.eq_ignore_ascii_case(super::schema::ORG_USER)
}

struct ScopedRules(String);

impl filter::AttrInfo for ScopedRules {
    fn case_exact(&self, p: &AttrPath) -> bool {
        filter::AttrInfo::case_exact(
            &Rules,
            &AttrPath {
                urn: None,
                attr: self.0.clone(),
                sub: Some(p.attr.clone()),
            },
        )
    }
    fn is_datetime(&self, _: &AttrPath) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn run(doc: Value, body: Value) -> Value {
        let mut doc = doc;
        let ops = parse(&body).unwrap();
        apply(&mut doc, &ops).unwrap();
        doc
    }

    #[test]
    fn entra_style_operations() {
        let doc = json!({"userName": "a", "active": true, "emails": [{"type": "work", "value": "a@x.io", "primary": true}]});
        let out = run(
            doc.clone(),
            json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "b@x.io"},
                {"op": "replace", "value": {"name.givenName": "Bo", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7"}}
            ]}),
        );
        assert_eq!(out["active"], "False");
        assert_eq!(out["emails"][0]["value"], "b@x.io");
        assert_eq!(out["name"]["givenName"], "Bo");
        assert_eq!(
            out["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"],
            "7"
        );
    }

    #[test]
    fn remove_with_values_removes_only_those() {
        let doc = json!({"members": [{"value": "1"}, {"value": "2"}, {"value": "3"}]});
        let out = run(
            doc,
            json!({"Operations": [{"op": "Remove", "path": "members", "value": [{"value": "2"}]}]}),
        );
        assert_eq!(out["members"], json!([{"value": "1"}, {"value": "3"}]));
    }

    #[test]
    fn remove_by_filter_and_whole_attribute() {
        let doc = json!({"emails": [{"type": "work", "value": "a"}, {"type": "home", "value": "b"}], "title": "x"});
        let out = run(
            doc,
            json!({"Operations": [
                {"op": "remove", "path": "emails[type eq \"home\"]"},
                {"op": "remove", "path": "title"}
            ]}),
        );
        assert_eq!(out, json!({"emails": [{"type": "work", "value": "a"}]}));
    }

    #[test]
    fn add_appends_to_lists_without_duplicates() {
        let doc = json!({"phoneNumbers": [{"value": "1"}]});
        let out = run(
            doc,
            json!({"Operations": [{"op": "add", "path": "phoneNumbers", "value": [{"value": "1"}, {"value": "2"}]}]}),
        );
        assert_eq!(out["phoneNumbers"], json!([{"value": "1"}, {"value": "2"}]));
    }

    #[test]
    fn bad_operations_are_refused() {
        for body in [
            json!([]),
            json!({"Operations": []}),
            json!({"Operations": [{"op": "move", "path": "a", "value": 1}]}),
            json!({"Operations": [{"op": "add", "path": "a"}]}),
            json!({"Operations": [{"op": "remove"}]}),
            json!({"Operations": [{"op": "add", "path": "emails[type eq", "value": 1}]}),
            json!({"schemas": ["urn:wrong"], "Operations": [{"op": "add", "path": "a", "value": 1}]}),
        ] {
            assert!(parse(&body).is_err(), "{body}");
        }
        let mut doc = json!({"emails": [{"type": "work", "value": "a"}]});
        let ops = parse(&json!({"Operations": [{"op": "replace", "path": "emails[value co \"zzz\"].value", "value": "x"}]})).unwrap();
        assert_eq!(
            apply(&mut doc, &ops).unwrap_err().scim_type,
            Some("noTarget")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_patch_bodies_never_panic(ops in proptest::collection::vec(("(?i)(add|replace|remove|x)", "\\PC{0,30}", any::<bool>()), 0..5)) {
            let ops: Vec<Value> = ops.into_iter().map(|(op, path, with_value)| {
                if with_value { json!({"op": op, "path": path, "value": {"a": [1, {"value": "x"}]}}) } else { json!({"op": op, "path": path}) }
            }).collect();
            let body = json!({"Operations": ops});
            if let Ok(ops) = parse(&body) {
                let mut doc = json!({"userName": "u", "emails": [{"value": "e", "type": "work"}], "name": {"givenName": "g"}});
                let _ = apply(&mut doc, &ops);
            }
        }
    }
}
