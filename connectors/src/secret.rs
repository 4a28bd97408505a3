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

    /// Replaces the secret's value where that is possible: a `file:` secret is rewritten
    /// atomically (a new owner-only file with an unpredictable name, created exclusively in the
    /// same directory so that nothing planted there is followed, then renamed over the old);
    /// an `env:` secret cannot be, and `Ok(false)` says so. For credentials the other side
    /// rotates (OAuth2 refresh tokens).
    pub fn store(&self, value: &str) -> Result<bool, SecretError> {
        use std::io::Write;
        let SecretRef::File(path) = self else {
            return Ok(false);
        };
        let fail = |e: std::io::Error| SecretError::File {
            path: path.clone(),
            reason: e.to_string(),
        };
        let target = std::path::Path::new(path);
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        // O_CREAT|O_EXCL with a random name, mode 0600 (tempfile's defaults).
        let mut tmp = tempfile::Builder::new()
            .prefix(".rosterd-secret-")
            .tempfile_in(dir)
            .map_err(fail)?;
        tmp.write_all(value.as_bytes()).map_err(fail)?;
        tmp.write_all(b"\n").map_err(fail)?;
        tmp.as_file().sync_all().map_err(fail)?;
        // A failed rename drops (deletes) the temp file.
        tmp.persist(target).map_err(|e| fail(e.error))?;
        Ok(true)
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
        // A rotated secret replaces the file's value; an env secret cannot be replaced.
        assert!(r.store("rotated").unwrap());
        assert_eq!(r.resolve().unwrap().expose_secret(), "rotated");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temp file left"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner-only: {mode:o}");
        }
        let missing = SecretRef::parse("env:ROSTERD_SURELY_UNSET_VARIABLE").unwrap();
        assert!(!missing.store("x").unwrap());
        assert_eq!(
            missing.resolve().unwrap_err(),
            SecretError::MissingEnv("ROSTERD_SURELY_UNSET_VARIABLE".into())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The temp file a rotated secret is written through used to be `{path}.{pid}.new`,
    /// opened without `O_EXCL`: a symlink planted there sent the secret wherever it pointed.
    #[cfg(unix)]
    #[test]
    fn a_symlink_planted_where_the_temp_file_was_predictable_is_not_followed() {
        let dir = std::env::temp_dir().join(format!(
            "rosterd-secret-link-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("refresh");
        std::fs::write(&path, "old\n").unwrap();
        let elsewhere = dir.join("elsewhere");
        std::fs::write(&elsewhere, "untouched\n").unwrap();
        let planted = dir.join(format!("refresh.{}.new", std::process::id()));
        std::os::unix::fs::symlink(&elsewhere, &planted).unwrap();
        let r = SecretRef::File(path.display().to_string());
        assert!(r.store("rotated").unwrap());
        assert_eq!(r.resolve().unwrap().expose_secret(), "rotated");
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "untouched\n");
        assert!(
            !std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink(),
            "the secret is a file of its own"
        );
        assert_eq!(
            std::fs::read_link(&planted).unwrap(),
            elsewhere,
            "the planted link was left alone"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
