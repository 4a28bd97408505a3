//! Email addresses as rosterd keeps them: trimmed, validated once, compared case-insensitively.

use std::fmt;

/// A syntactically valid email address (`local@domain`), as written (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email address is empty")]
    Empty,
    #[error("`{0}` is not an email address: it needs exactly one `@` with text on both sides")]
    Shape(String),
    #[error("`{0}` is not an email address: it contains spaces or control characters")]
    Whitespace(String),
    #[error("`{0}` is too long for an email address (at most 254 characters)")]
    TooLong(String),
    #[error("`{0}` is not an email address: the domain `{1}` is not a valid host name")]
    Domain(String, String),
}

impl Email {
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.chars().count() > 254 {
            let head: String = s.chars().take(40).collect();
            return Err(EmailError::TooLong(format!("{head}…")));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::Whitespace(s.to_owned()));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(EmailError::Shape(s.to_owned()));
        };
        if local.is_empty() || local.contains('@') || local.len() > 64 || domain.is_empty() {
            return Err(EmailError::Shape(s.to_owned()));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(EmailError::Shape(s.to_owned()));
        }
        let labels_ok = domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if !labels_ok || !domain.contains('.') && domain != "localhost" {
            return Err(EmailError::Domain(s.to_owned(), domain.to_owned()));
        }
        Ok(Email(s.to_owned()))
    }

    /// Accepts `Name <addr>` or a bare address (for the From header).
    pub fn parse_mailbox(raw: &str) -> Result<Email, EmailError> {
        match (raw.rfind('<'), raw.rfind('>')) {
            (Some(a), Some(b)) if a < b => Email::parse(&raw[a + 1..b]),
            _ => Email::parse(raw),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The comparison key: emails match case-insensitively.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "a@b.co",
            " Ada.Lovelace+x@Example.ORG ",
            "x@localhost",
            "o'neil@dept.uni.edu",
        ] {
            Email::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        assert_eq!(Email::parse("A@B.CO").unwrap().key(), "a@b.co");
    }

    #[test]
    fn refuses_non_addresses() {
        for bad in [
            "",
            "plain",
            "@b.co",
            "a@",
            "a@@b.co",
            "a b@c.co",
            "a@b",
            "a@-b.co",
            "a..b@c.co",
            "a@b..co",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(s in "\\PC{0,80}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e.clone());
                prop_assert!(e.as_str().contains('@'));
            }
        }
    }
}
