//! Phone numbers: a lenient syntax that real directories and people type (`+1 (555) 010-0199
//! ext. 12`, `020 7946 0018`, `tel:+1-201-555-0123`), a type (the SCIM canonical ones, or a
//! short label of the org's own) and a primary mark. Parsed once; no I/O.

use std::fmt;

use serde::Serialize;

/// Longest phone value kept, in characters.
pub const MAX_VALUE_CHARS: usize = 40;
/// Longest type label, in characters.
pub const MAX_TYPE_CHARS: usize = 40;
/// Most numbers one member has.
pub const MAX_PHONES: usize = 50;
/// Digits a number (without its extension) has at least and at most.
const MIN_DIGITS: usize = 3;
const MAX_DIGITS: usize = 20;
/// Digits an extension has at most.
const MAX_EXT_DIGITS: usize = 8;

/// The SCIM canonical types (RFC 7643 §4.1.2), kept lowercase.
pub const KNOWN_TYPES: [&str; 6] = ["work", "home", "mobile", "fax", "pager", "other"];

/// One of a member's phone numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Phone {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    pub primary: bool,
    /// Whether `primary` was stated (a SCIM client that sent `"primary": false` reads it back;
    /// one that sent nothing reads nothing).
    #[serde(skip)]
    pub primary_stated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PhoneError(String);

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(m: impl Into<String>) -> PhoneError {
    PhoneError(m.into())
}

/// Checks a phone number and answers it trimmed. Accepted: an optional `tel:` prefix, an
/// optional leading `+`, then digits with spaces, dashes, dots and (unnested, balanced)
/// parentheses between them — 3 to 20 digits — and optionally an extension: `x`, `ext`,
/// `ext.`, `extension`, `#` or `;ext=` followed by up to 8 digits.
pub fn parse_value(text: &str) -> Result<String, PhoneError> {
    let v = text.trim();
    if v.is_empty() {
        return Err(err("must not be empty"));
    }
    if v.chars().count() > MAX_VALUE_CHARS {
        return Err(err(format!("at most {MAX_VALUE_CHARS} characters")));
    }
    let body = match v.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("tel:") => &v[4..],
        _ => v,
    };
    let body = body.strip_prefix('+').unwrap_or(body);
    // Where the number ends and an extension may begin.
    let cut = body
        .find(|c: char| c.is_ascii_alphabetic() || c == '#' || c == ';')
        .unwrap_or(body.len());
    let (number, ext) = body.split_at(cut);
    let mut digits = 0;
    let mut open = false;
    for c in number.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '-' | '.' => {}
            '(' if !open => open = true,
            ')' if open => open = false,
            '(' | ')' => return Err(err("has unbalanced or nested parentheses")),
            '+' => return Err(err("`+` may only start the number")),
            c => {
                return Err(err(format!(
                    "`{}` is not allowed: use digits, spaces, `-`, `.`, `(`, `)` and a leading `+`",
                    c.escape_debug()
                )));
            }
        }
    }
    if open {
        return Err(err("has unbalanced or nested parentheses"));
    }
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
        return Err(err(format!(
            "must have {MIN_DIGITS} to {MAX_DIGITS} digits (it has {digits})"
        )));
    }
    if !ext.is_empty() {
        check_extension(ext)?;
    }
    Ok(v.to_owned())
}

fn check_extension(ext: &str) -> Result<(), PhoneError> {
    let lower = ext.to_ascii_lowercase();
    let rest = ["extension", ";ext=", "ext.", "ext", "x", "#"]
        .iter()
        .find_map(|m| lower.strip_prefix(m))
        .ok_or_else(|| {
            err("only an extension may follow the number (`x 12`, `ext. 12`, `;ext=12`)")
        })?;
    let rest = rest.trim_start_matches([' ', '.', ':']);
    let n = rest.len();
    if n == 0 || n > MAX_EXT_DIGITS || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!("an extension is 1 to {MAX_EXT_DIGITS} digits")));
    }
    Ok(())
}

/// Checks a type: a canonical one (answered lowercase) or a label of letters, digits, spaces,
/// `-` and `_`, at most 40 characters.
pub fn parse_type(text: &str) -> Result<String, PhoneError> {
    let t = text.trim();
    if let Some(k) = KNOWN_TYPES.iter().find(|k| k.eq_ignore_ascii_case(t)) {
        return Ok((*k).to_owned());
    }
    if t.is_empty() || t.chars().count() > MAX_TYPE_CHARS {
        return Err(err(format!(
            "must be 1 to {MAX_TYPE_CHARS} characters (work, home, mobile, fax, pager, other, or a label of your own)"
        )));
    }
    if !t
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
    {
        return Err(err(
            "a label of letters, digits, spaces, `-` and `_` (or work, home, mobile, fax, pager, other)",
        ));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_people_and_directories_type() {
        for ok in [
            "+1 555 0100",
            "+1 (555) 010-0199",
            "020 7946 0018",
            "+44.20.7946.0018",
            "tel:+1-201-555-0123",
            "TEL:+1-201-555-0123;ext=42",
            "+1 555 0100 x12",
            "+1 555 0100 ext. 12",
            "+1 555 0100 extension 1234",
            "5550100#77",
            "112",
            "0123456789",
        ] {
            assert_eq!(parse_value(ok).as_deref(), Ok(ok), "{ok}");
        }
        assert_eq!(parse_value("  +1 555 0100 ").unwrap(), "+1 555 0100");
    }

    #[test]
    fn refuses_what_is_no_phone_number() {
        for bad in [
            "",
            "   ",
            "12",
            "call me",
            "+1 555 0100 please",
            "555-0100 x",
            "555-0100 x123456789",
            "1+555 0100",
            "++1 555",
            "(555 0100",
            "555) 0100",
            "((555)) 0100",
            "+1 555\u{7}0100",
            "+1/555/0100",
            "123456789012345678901",
            "+1 555 0100 0100 0100 0100 0100 0100 0100 01",
        ] {
            assert!(parse_value(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn types_are_canonical_or_a_short_label() {
        assert_eq!(parse_type("Work").unwrap(), "work");
        assert_eq!(parse_type(" MOBILE ").unwrap(), "mobile");
        assert_eq!(parse_type("Front desk").unwrap(), "Front desk");
        assert_eq!(parse_type("after_hours-2").unwrap(), "after_hours-2");
        assert!(parse_type("").is_err());
        assert!(parse_type("a\u{0}b").is_err());
        assert!(parse_type("<script>").is_err());
        assert!(parse_type(&"x".repeat(41)).is_err());
    }
}
