//! Numbers kept exactly as sent. `serde_json` holds numbers as `i64`, `u64` or `f64`, so
//! `123456789012345678901234567890` or `0.1000000000000000055511151231257827` would come back
//! changed, although a User's extra attributes are kept as sent. A SCIM body is therefore read
//! with every number whose text would not survive a round trip carried as a marked string
//! (`"\u0000n:<number>"`); the marked string is stored like any other value and written back
//! as the bare number in every SCIM answer. A client cannot forge the mark: strings with NUL
//! are refused in SCIM bodies (and filters).

use serde_json::Value;

use super::error::ScimError;

/// The mark's prefix, as it appears in a string value.
const MARK: &str = "\0n:";
/// The mark as it appears in serialized JSON.
const MARK_JSON: &str = "\"\\u0000n:";

/// The number text a marked string carries.
pub fn marked(s: &str) -> Option<&str> {
    s.strip_prefix(MARK)
}

/// Whether a number's text survives parsing into a `Value` and writing it back.
fn round_trips(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .is_ok_and(|v| serde_json::to_string(&v).is_ok_and(|t| t == text))
}

/// Parses a JSON body, carrying numbers that would change as marked strings.
pub fn parse(body: &[u8]) -> Result<Value, ScimError> {
    let bad = |e: serde_json::Error| {
        ScimError::invalid_syntax(format!("the body is not valid JSON: {e}"))
    };
    let Ok(text) = std::str::from_utf8(body) else {
        // serde_json says where the bytes stop being UTF-8.
        return serde_json::from_slice(body).map_err(bad);
    };
    let mut out: Option<String> = None;
    let bytes = text.as_bytes();
    let (mut i, mut copied) = (0, 0);
    // Where a value may stand: a number is only marked there (never where a key belongs, so
    // invalid JSON stays invalid).
    let mut in_object: Vec<bool> = Vec::new();
    let mut prev: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if !b.is_ascii_whitespace() && !matches!(b, b'-' | b'0'..=b'9') {
            match b {
                b'{' => in_object.push(true),
                b'[' => in_object.push(false),
                b'}' | b']' => {
                    in_object.pop();
                }
                _ => {}
            }
        }
        match b {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        if bytes.get(i + 1) == Some(&b'u')
                            && bytes
                                .get(i + 2..i + 6)
                                .is_some_and(|h| h.iter().all(|b| *b == b'0'))
                        {
                            return Err(ScimError::invalid_value(format!(
                                "a string contains NUL (U+0000) at byte {i}: it cannot be stored"
                            )));
                        }
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let number = &text[start..i];
                let value_place = match prev {
                    None => in_object.is_empty(),
                    Some(b':') => in_object.last() == Some(&true),
                    Some(b'[' | b',') => in_object.last() == Some(&false),
                    _ => false,
                };
                if value_place
                    && !round_trips(number)
                    && serde_json::from_str::<Value>(number).is_ok()
                {
                    let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
                    o.push_str(&text[copied..start]);
                    o.push_str(MARK_JSON);
                    o.push_str(number);
                    o.push('"');
                    copied = i;
                }
                prev = Some(b'0');
                continue;
            }
            _ => i += 1,
        }
        if !b.is_ascii_whitespace() {
            prev = Some(b);
        }
    }
    match out {
        None => serde_json::from_str(text).map_err(bad),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            serde_json::from_str(&o).map_err(bad)
        }
    }
}

/// Serializes a SCIM answer, writing marked strings back as the numbers they carry.
pub fn to_string(v: &Value) -> String {
    let text = v.to_string();
    if !text.contains(MARK_JSON) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(MARK_JSON) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK_JSON.len()..];
        // The number is digits, signs, `.` and exponents: the string ends at the next quote.
        match after.find('"') {
            Some(end) => {
                out.push_str(&after[..end]);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[at..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_round_trip_exactly() {
        let body = br#"{"a": 123456789012345678901234567890, "b": [0.1000000000000000055511151231257827, 1, -2, 1.5, 1e3, -0], "c": "x \"1e3\" 0.10", "d": {"e": 18446744073709551616}}"#;
        let v = parse(body).unwrap();
        assert_eq!(v["b"][1], json!(1));
        assert_eq!(v["b"][3], json!(1.5));
        assert_eq!(v["c"], json!("x \"1e3\" 0.10"));
        assert_eq!(
            to_string(&v),
            r#"{"a":123456789012345678901234567890,"b":[0.1000000000000000055511151231257827,1,-2,1.5,1e3,-0],"c":"x \"1e3\" 0.10","d":{"e":18446744073709551616}}"#
        );
    }

    #[test]
    fn nul_in_a_string_is_refused() {
        assert!(parse(br#"{"a": "x\u0000"}"#).is_err());
        assert!(parse(br#"{"a\u0000n:1": 1}"#).is_err());
        // An escaped backslash followed by `u0000` is text, not NUL.
        assert_eq!(
            parse(br#"{"a": "\\u0000"}"#).unwrap(),
            json!({"a": "\\u0000"})
        );
    }

    proptest! {
        #[test]
        fn parsing_matches_serde_json_up_to_marks(s in "\\PC{0,64}") {
            // Same verdict as serde_json; same value wherever no number was marked.
            let ours = parse(s.as_bytes());
            let theirs = serde_json::from_str::<Value>(&s);
            if !s.contains("\\u0000") {
                prop_assert_eq!(ours.is_ok(), theirs.is_ok());
            }
            if let (Ok(o), Ok(t)) = (ours, theirs) && !has_mark(&o) {
                prop_assert_eq!(o, t);
            }
        }

        #[test]
        fn any_number_comes_back_as_sent(
            n in "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,40})?([eE][-+]?[0-9]{1,2})?"
        ) {
            let doc = format!("{{\"x\":[{n},{{\"y\":{n}}}]}}");
            prop_assert_eq!(to_string(&parse(doc.as_bytes()).unwrap()), doc);
        }
    }

    fn has_mark(v: &Value) -> bool {
        match v {
            Value::String(s) => marked(s).is_some(),
            Value::Array(a) => a.iter().any(has_mark),
            Value::Object(o) => o.values().any(has_mark),
            _ => false,
        }
    }
}
