//! Form bodies and query strings read leniently: every field as text, repeated names kept, so a
//! malformed form never becomes a framework rejection the page cannot explain.

use axum::body::Bytes;

#[derive(Debug, Default, Clone)]
pub(crate) struct FormData(Vec<(String, String)>);

impl FormData {
    /// Parses a urlencoded body. A NUL (never typed into a form) becomes U+FFFD, so a refused
    /// value echoed back into the page carries no raw control byte; the operation still
    /// refuses it.
    pub fn parse(bytes: &[u8]) -> Self {
        let clean = |s: std::borrow::Cow<'_, str>| {
            if s.contains('\0') {
                s.replace('\0', "\u{fffd}")
            } else {
                s.into_owned()
            }
        };
        FormData(
            url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (clean(k), clean(v)))
                .collect(),
        )
    }

    pub fn from_body(body: &Bytes) -> Self {
        Self::parse(body)
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed; none when absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::FormData;

    #[test]
    fn a_nul_never_reaches_a_page() {
        let f = FormData::parse(b"login_email=a%00@b.example&x%00y=1");
        assert_eq!(f.get("login_email"), Some("a\u{fffd}@b.example"));
        assert_eq!(f.get("x\u{fffd}y"), Some("1"));
        assert_eq!(FormData::parse(b"q=plain").get("q"), Some("plain"));
    }
}
