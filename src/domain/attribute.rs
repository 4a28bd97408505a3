//! Org-defined member attributes: the value types, the attribute-name syntax, and parsing a
//! value (from JSON or from text such as a CSV cell or a query string) into its canonical text
//! form. The canonical form is what the store keeps and compares: equal values have equal text
//! (`12.50` and `12.5` are one decimal, `TRUE` and `true` one boolean), so a filter compares
//! by type. No I/O.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest attribute name.
pub const MAX_NAME: usize = 64;
/// Longest string value (and choice option).
pub const MAX_TEXT: usize = 500;
/// Most options a choice attribute has.
pub const MAX_OPTIONS: usize = 200;

/// The type of an attribute's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrKind {
    String,
    Integer,
    Decimal,
    Boolean,
    Date,
    /// One of the attribute's options.
    Choice,
}

impl AttrKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrKind::String => "string",
            AttrKind::Integer => "integer",
            AttrKind::Decimal => "decimal",
            AttrKind::Boolean => "boolean",
            AttrKind::Date => "date",
            AttrKind::Choice => "choice",
        }
    }

    /// What a value must look like, for error messages.
    pub fn expects(self) -> &'static str {
        match self {
            AttrKind::String => "text",
            AttrKind::Integer => "a whole number",
            AttrKind::Decimal => "a decimal number like 12.50",
            AttrKind::Boolean => "true or false",
            AttrKind::Date => "a date like 2026-01-31",
            AttrKind::Choice => "one of the attribute's options",
        }
    }
}

impl FromStr for AttrKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "string" => AttrKind::String,
            "integer" => AttrKind::Integer,
            "decimal" => AttrKind::Decimal,
            "boolean" => AttrKind::Boolean,
            "date" => AttrKind::Date,
            "choice" => AttrKind::Choice,
            other => {
                return Err(format!(
                    "`{other}` is not a type: string, integer, decimal, boolean, date or choice"
                ));
            }
        })
    }
}

/// Checks an attribute name: a letter, then letters, digits, `_` or `-` (SCIM's attribute-name
/// syntax), at most [`MAX_NAME`] characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok
        || name.len() > MAX_NAME
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "`{}` is not an attribute name: a letter, then letters, digits, `_` or `-`, at most \
             {MAX_NAME} characters",
            name.chars().take(80).collect::<String>()
        ));
    }
    Ok(())
}

/// Checks a choice option (or a string value): no control characters, at most [`MAX_TEXT`].
fn check_text(v: &str) -> Result<(), String> {
    if v.chars().count() > MAX_TEXT {
        return Err(format!("at most {MAX_TEXT} characters"));
    }
    if v.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Checks and cleans a choice attribute's options: trimmed, non-empty, distinct ignoring case.
pub fn check_options(options: &[String]) -> Result<Vec<String>, String> {
    if options.is_empty() {
        return Err("a choice attribute needs at least one option".into());
    }
    if options.len() > MAX_OPTIONS {
        return Err(format!("at most {MAX_OPTIONS} options"));
    }
    let mut out: Vec<String> = Vec::with_capacity(options.len());
    for o in options {
        let o = o.trim();
        if o.is_empty() {
            return Err("options must not be empty".into());
        }
        check_text(o).map_err(|e| format!("option `{o}`: {e}"))?;
        if out.iter().any(|x| x.to_lowercase() == o.to_lowercase()) {
            return Err(format!("option `{o}` is listed more than once"));
        }
        out.push(o.to_owned());
    }
    Ok(out)
}

/// Parses a value given as text (a CSV cell, a query string, a source's field). `None` for a
/// blank cell (no value).
pub fn parse_text(
    kind: AttrKind,
    options: &[String],
    text: &str,
) -> Result<Option<String>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let bad = || {
        format!(
            "`{}` is not {}",
            t.chars().take(80).collect::<String>(),
            kind.expects()
        )
    };
    let v = match kind {
        AttrKind::String => {
            check_text(t)?;
            t.to_owned()
        }
        AttrKind::Integer => t.parse::<i64>().map_err(|_| bad())?.to_string(),
        AttrKind::Decimal => {
            let d = Decimal::from_str(t)
                .or_else(|_| Decimal::from_scientific(t))
                .map_err(|_| bad())?;
            d.normalize().to_string()
        }
        AttrKind::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => "true".to_owned(),
            "false" | "no" | "0" => "false".to_owned(),
            _ => return Err(bad()),
        },
        AttrKind::Date => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()
            .filter(|d| (1..=9999).contains(&chrono::Datelike::year(d)))
            .ok_or_else(bad)?
            .format("%Y-%m-%d")
            .to_string(),
        AttrKind::Choice => match options
            .iter()
            .find(|o| o.to_lowercase() == t.to_lowercase())
        {
            Some(o) => o.clone(),
            None => {
                return Err(format!(
                    "`{}` is not one of the options: {}",
                    t.chars().take(80).collect::<String>(),
                    options.join(", ")
                ));
            }
        },
    };
    Ok(Some(v))
}

/// Parses a value given as JSON. `null` (or an empty string) is no value.
pub fn parse_json(kind: AttrKind, options: &[String], v: &Value) -> Result<Option<String>, String> {
    let wrong = || format!("must be {} (got {})", kind.expects(), json_kind(v));
    match (kind, v) {
        (_, Value::Null) => Ok(None),
        (AttrKind::Boolean, Value::Bool(b)) => Ok(Some(b.to_string())),
        (AttrKind::Boolean, _) => Err(wrong()),
        (AttrKind::Integer, Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i.to_string())),
            None => Err(wrong()),
        },
        (AttrKind::Decimal, Value::Number(n)) => parse_text(kind, options, &n.to_string()),
        // Text forms of numbers are accepted too: decimals keep their exact digits that way.
        (AttrKind::Integer | AttrKind::Decimal, Value::String(s)) => parse_text(kind, options, s),
        (AttrKind::String | AttrKind::Date | AttrKind::Choice, Value::String(s)) => {
            parse_text(kind, options, s)
        }
        _ => Err(wrong()),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A stored canonical value as JSON: booleans and integers as JSON values, decimals as a string
/// (exact digits), the rest as strings.
pub fn to_json(kind: AttrKind, text: &str) -> Value {
    match kind {
        AttrKind::Boolean => Value::Bool(text == "true"),
        AttrKind::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.to_owned())),
        _ => Value::String(text.to_owned()),
    }
}

/// A stored canonical value as SCIM renders it: integers and decimals as JSON numbers,
/// booleans as JSON booleans, the rest as strings.
pub fn to_scim_json(kind: AttrKind, text: &str) -> Value {
    match kind {
        AttrKind::Decimal => serde_json::from_str::<serde_json::Number>(text)
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(text.to_owned())),
        _ => to_json(kind, text),
    }
}

/// A JSON value as the text a value is parsed from (SCIM clients send booleans and numbers as
/// strings as often as not); `null` is the empty text (no value). Lists and objects are not
/// values.
pub fn json_as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_become_canonical() {
        let none: &[String] = &[];
        assert_eq!(
            parse_text(AttrKind::Decimal, none, "12.50").unwrap(),
            Some("12.5".into())
        );
        assert_eq!(
            parse_text(AttrKind::Decimal, none, "12").unwrap(),
            Some("12".into())
        );
        assert!(parse_text(AttrKind::Decimal, none, "12,5").is_err());
        assert_eq!(
            parse_text(AttrKind::Boolean, none, "TRUE").unwrap(),
            Some("true".into())
        );
        assert_eq!(
            parse_text(AttrKind::Integer, none, "007").unwrap(),
            Some("7".into())
        );
        assert!(parse_text(AttrKind::Date, none, "2026-02-30").is_err());
        assert_eq!(parse_text(AttrKind::String, none, "  ").unwrap(), None);
        let opts = vec!["Gold".to_owned(), "Silver".to_owned()];
        assert_eq!(
            parse_text(AttrKind::Choice, &opts, "gold").unwrap(),
            Some("Gold".into())
        );
        assert!(parse_text(AttrKind::Choice, &opts, "Bronze").is_err());
        assert!(parse_json(AttrKind::Boolean, none, &json!("yes")).is_err());
        assert!(parse_json(AttrKind::Integer, none, &json!(1.5)).is_err());
        assert_eq!(
            parse_json(AttrKind::Decimal, none, &json!(9.9)).unwrap(),
            Some("9.9".into())
        );
        assert_eq!(
            parse_json(AttrKind::String, none, &json!(null)).unwrap(),
            None
        );
    }

    #[test]
    fn names_follow_scim_syntax() {
        assert!(check_name("MemberID").is_ok());
        assert!(check_name("is_auth-rep2").is_ok());
        assert!(check_name("1abc").is_err());
        assert!(check_name("a.b").is_err());
        assert!(check_name("").is_err());
    }
}
