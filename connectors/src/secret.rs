//! Secret references in configuration.
//!
//! A secret is never written into a config file: the file holds `env:NAME` (read the
//! environment variable NAME) or `file:PATH` (read the file, trailing newline dropped). The value
//! is held in a [`SecretString`] so it is never printed by `Debug` or logged.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

/// Where a secret comes from, as written in the config file.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(String),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{p}"),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "a secret must be a reference `env:NAME` or `file:PATH`, not a literal value (got a value starting {0:?})"
    )]
    NotAReference(String),
    #[error("secret reference `{0}` is empty")]
    Empty(String),
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    #[error("cannot read secret file `{path}`: {reason}")]
    File { path: String, reason: String },
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        if let Some(name) = s.strip_prefix("env:") {
            if name.trim().is_empty() {
                return Err(SecretError::Empty(s.to_owned()));
            }
            Ok(SecretRef::Env(name.trim().to_owned()))
        } else if let Some(path) = s.strip_prefix("file:") {
            if path.trim().is_empty() {
                return Err(SecretError::Empty(s.to_owned()));
            }
            Ok(SecretRef::File(path.trim().to_owned()))
        } else {
            // Show only a hint of what was written: it may be a real secret.
            let hint: String = s.chars().take(4).collect();
            Err(SecretError::NotAReference(hint))
        }
    }

    /// Reads the secret's value now.
    pub fn resolve(&self) -> Result<SecretString, SecretError> {
        match self {
            SecretRef::Env(name) => std::env::var(name)
                .map(SecretString::from)
                .map_err(|_| SecretError::MissingEnv(name.clone())),
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|v| SecretString::from(v.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|e| SecretError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                }),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SecretRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn literals_are_refused_without_echoing_them() {
        let err = SecretRef::parse("hunter2-very-secret").unwrap_err();
        assert_eq!(err, SecretError::NotAReference("hunt".into()));
        assert!(!err.to_string().contains("very-secret"));
    }

    #[test]
    fn env_and_file_references_resolve() {
        let dir = std::env::temp_dir().join(format!(
            "rosterd-secret-{}",
            std::process::id() as u128 * 1_000_000
                + std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        std::fs::write(&path, "from-file\n").unwrap();
        let r = SecretRef::parse(&format!("file:{}", path.display())).unwrap();
        assert_eq!(r.resolve().unwrap().expose_secret(), "from-file");
        let missing = SecretRef::parse("env:ROSTERD_SURELY_UNSET_VARIABLE").unwrap();
        assert_eq!(
            missing.resolve().unwrap_err(),
            SecretError::MissingEnv("ROSTERD_SURELY_UNSET_VARIABLE".into())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
