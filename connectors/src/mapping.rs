//! Field mapping from config: which source field becomes which record field, with simple
//! transforms (trim, lowercase, uppercase), a value map (`IsActive` "True" → "true") and
//! constants. Every connector maps through this.
//!
//! ```toml
//! [sources.mapping]
//! external_id = "ID"
//! member_email = { field = "Email", transforms = ["trim", "lowercase"] }
//! active = { field = "IsActive", map = { "True" = "true", "False" = "false" } }
//! role = { field = "IsAuthRep", map = { "Y" = "admin", "N" = "member" } }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::record::{Record, RecordError};

/// How each record field is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The source's stable id for the person (required).
    pub external_id: FieldSpec,
    /// Where invitations go.
    #[serde(default)]
    pub member_email: Option<FieldSpec>,
    /// The address the person signs in with, when it differs.
    #[serde(default)]
    pub login_email: Option<FieldSpec>,
    #[serde(default)]
    pub given_name: Option<FieldSpec>,
    #[serde(default)]
    pub family_name: Option<FieldSpec>,
    #[serde(default)]
    pub display_name: Option<FieldSpec>,
    /// Whether the person has access: true/false, 1/0, yes/no, active/inactive. Absent: every
    /// record is active.
    #[serde(default)]
    pub active: Option<FieldSpec>,
    /// A role hint: `admin` or `member` (after the value map).
    #[serde(default)]
    pub role: Option<FieldSpec>,
    /// Group names, separated by `;` or `,`.
    #[serde(default)]
    pub groups: Option<FieldSpec>,
    /// Whether records carry every field as read (`Record::raw`), for inspecting a mapping;
    /// off for syncs, where it would only cost time.
    #[serde(skip)]
    pub keep_raw: bool,
}

/// A field name, or a rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FieldSpec {
    Field(String),
    Rule(FieldRule),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// The source field to read.
    #[serde(default)]
    pub field: Option<String>,
    /// A fixed value instead of a field.
    #[serde(default)]
    pub constant: Option<String>,
    /// Applied in order.
    #[serde(default)]
    pub transforms: Vec<Transform>,
    /// Replaces a value by another (after transforms; exact match first, then ignoring case;
    /// a `"*"` key stands for any other non-empty value, e.g. a termination date → `false`).
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Used when the field is empty or missing.
    #[serde(default)]
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    Trim,
    Lowercase,
    Uppercase,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping.{key}: {message}")]
pub struct MappingError {
    pub key: &'static str,
    pub message: String,
}

impl FieldSpec {
    /// The source field this reads, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            FieldSpec::Field(f) => Some(f),
            FieldSpec::Rule(r) => r.field.as_deref(),
        }
    }

    fn check(&self, key: &'static str) -> Result<(), MappingError> {
        match self {
            FieldSpec::Field(f) if f.trim().is_empty() => Err(MappingError {
                key,
                message: "the field name is empty".into(),
            }),
            FieldSpec::Rule(r) if r.field.is_some() == r.constant.is_some() => Err(MappingError {
                key,
                message: "give exactly one of `field` or `constant`".into(),
            }),
            _ => Ok(()),
        }
    }

    /// The value for one record, or `None` when empty.
    fn value<'a>(&self, get: &impl Fn(&str) -> Option<&'a str>) -> Option<String> {
        let rule = match self {
            FieldSpec::Field(f) => {
                return get(f)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty());
            }
            FieldSpec::Rule(r) => r,
        };
        let mut v = match (&rule.constant, &rule.field) {
            (Some(c), _) => c.clone(),
            (None, Some(f)) => get(f).unwrap_or_default().to_owned(),
            (None, None) => String::new(),
        };
        for t in &rule.transforms {
            v = match t {
                Transform::Trim => v.trim().to_owned(),
                Transform::Lowercase => v.to_lowercase(),
                Transform::Uppercase => v.to_uppercase(),
            };
        }
        if let Some(m) = rule.map.get(&v).or_else(|| {
            rule.map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&v))
                .map(|(_, m)| m)
        }) {
            v = m.clone();
        } else if let Some(any) = rule.map.get("*")
            && !v.trim().is_empty()
        {
            v = any.clone();
        }
        if v.trim().is_empty() {
            return rule.default.clone();
        }
        Some(v)
    }
}

fn parse_active(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "active" | "enabled" => Some(true),
        "false" | "0" | "no" | "n" | "inactive" | "disabled" | "terminated" => Some(false),
        _ => None,
    }
}

impl Mapping {
    /// Checks the mapping itself (at start, so a bad config fails early).
    pub fn check(&self) -> Result<(), MappingError> {
        self.external_id.check("external_id")?;
        for (key, spec) in [
            ("member_email", &self.member_email),
            ("login_email", &self.login_email),
            ("given_name", &self.given_name),
            ("family_name", &self.family_name),
            ("display_name", &self.display_name),
            ("active", &self.active),
            ("role", &self.role),
            ("groups", &self.groups),
        ] {
            if let Some(s) = spec {
                s.check(key)?;
            }
        }
        Ok(())
    }

    /// The source fields the mapping reads.
    pub fn fields(&self) -> Vec<&str> {
        [
            Some(&self.external_id),
            self.member_email.as_ref(),
            self.login_email.as_ref(),
            self.given_name.as_ref(),
            self.family_name.as_ref(),
            self.display_name.as_ref(),
            self.active.as_ref(),
            self.role.as_ref(),
            self.groups.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(FieldSpec::field)
        .collect()
    }

    /// The external id alone of one source record (`None` when empty).
    pub fn external_id_of<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
        self.external_id.value(&get)
    }

    /// Maps one source record. `get` reads a source field; `line` locates errors.
    pub fn apply<'a>(
        &self,
        line: u64,
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Record, RecordError> {
        self.map(line, get, false)
    }

    /// Maps one change from a delta query: a field it lacks is unchanged, not empty, so a
    /// missing active flag leaves the person's access as it is (`Record::status_unknown`).
    pub fn apply_change<'a>(
        &self,
        line: u64,
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Record, RecordError> {
        self.map(line, get, true)
    }

    /// Maps one record; an error names the record's id when that much could be read.
    fn map<'a>(
        &self,
        line: u64,
        get: impl Fn(&str) -> Option<&'a str>,
        change: bool,
    ) -> Result<Record, RecordError> {
        self.map_fields(line, &get, change).map_err(|mut e| {
            e.external_id = self.external_id.value(&get);
            e
        })
    }

    fn map_fields<'a>(
        &self,
        line: u64,
        get: impl Fn(&str) -> Option<&'a str>,
        change: bool,
    ) -> Result<Record, RecordError> {
        let err = |spec: &FieldSpec, value: Option<String>, message: String| RecordError {
            line,
            external_id: None,
            column: spec.field().map(str::to_owned),
            value,
            message,
        };
        let external_id = self
            .external_id
            .value(&get)
            .ok_or_else(|| err(&self.external_id, None, "the id is empty".into()))?;
        // In a change, a field the change leaves out is unknown: no default stands in for it
        // (a default would overwrite what the member has, or state an access never stated).
        let absent = |s: &FieldSpec| change && s.field().is_some_and(|f| get(f).is_none());
        let opt = |s: &Option<FieldSpec>| {
            s.as_ref()
                .filter(|s| !absent(s))
                .and_then(|s| s.value(&get))
        };
        let email = |key: &Option<FieldSpec>| -> Result<Option<String>, RecordError> {
            match (key, opt(key)) {
                (Some(spec), Some(v)) => {
                    let at = v.find('@');
                    let ok = at.is_some_and(|i| i > 0 && i < v.len() - 1)
                        && !v.contains(char::is_whitespace);
                    if ok {
                        Ok(Some(v))
                    } else {
                        Err(err(spec, Some(v), "not an email address".into()))
                    }
                }
                _ => Ok(None),
            }
        };
        let member_email = email(&self.member_email)?;
        let login_email = email(&self.login_email)?;
        let mut status_unknown = false;
        let active = match (&self.active, opt(&self.active)) {
            (Some(spec), Some(v)) => parse_active(&v).ok_or_else(|| {
                err(
                    spec,
                    Some(v),
                    "expected true/false, yes/no, 1/0 or active/inactive (add a `map`)".into(),
                )
            })?,
            (Some(spec), _) if absent(spec) => {
                status_unknown = true;
                true
            }
            (Some(_), None) if change => {
                status_unknown = true;
                true
            }
            (Some(spec), None) => return Err(err(spec, None, "the active flag is empty".into())),
            (None, _) => true,
        };
        let role = match (&self.role, opt(&self.role)) {
            (Some(spec), Some(v)) => {
                let r = v.to_ascii_lowercase();
                if r != "admin" && r != "member" {
                    return Err(err(
                        spec,
                        Some(v),
                        "a role must map to admin or member".into(),
                    ));
                }
                Some(r)
            }
            _ => None,
        };
        let groups = opt(&self.groups)
            .map(|g| {
                g.split([';', ','])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut raw = BTreeMap::new();
        if self.keep_raw {
            for f in self.fields() {
                if let Some(v) = get(f) {
                    raw.insert(f.to_owned(), v.to_owned());
                }
            }
        }
        Ok(Record {
            external_id,
            member_email,
            login_email,
            given_name: opt(&self.given_name),
            family_name: opt(&self.family_name),
            display_name: opt(&self.display_name),
            active,
            status_unknown,
            role,
            groups,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_leaves_out_what_it_does_not_carry_even_with_defaults() {
        let m: Mapping = toml::from_str(
            r#"
external_id = "id"
given_name = { field = "givenName", default = "?" }
role = { field = "isAdmin", map = { "true" = "admin", "false" = "member" }, default = "member" }
active = { field = "accountEnabled", default = "false" }
"#,
        )
        .unwrap();
        let rename = [("id", "a"), ("givenName", "Ann")];
        let get = |f: &str| rename.iter().find(|(k, _)| *k == f).map(|(_, v)| *v);
        let r = m.apply_change(1, get).unwrap();
        assert_eq!(r.given_name.as_deref(), Some("Ann"));
        assert_eq!(
            r.role, None,
            "no default role for a change that says nothing of it"
        );
        assert!(r.status_unknown, "no default access either");
        // The same record read in full takes the defaults.
        let r = m.apply(1, get).unwrap();
        assert_eq!(r.role.as_deref(), Some("member"));
        assert!(!r.active && !r.status_unknown);
    }

    #[test]
    fn a_star_maps_any_other_value_and_an_empty_one_takes_the_default() {
        // A RaaS report's termination date: any date means inactive, none means active.
        let m: Mapping = toml::from_str(
            r#"
external_id = "id"
active = { field = "Termination_Date", map = { "*" = "false" }, default = "true" }
"#,
        )
        .unwrap();
        let active = |date: &str| {
            let row = [("id", "1"), ("Termination_Date", date)];
            m.apply(1, |f| row.iter().find(|(k, _)| *k == f).map(|(_, v)| *v))
                .unwrap()
                .active
        };
        assert!(!active("2026-10-31"));
        assert!(active(""));
    }
}
