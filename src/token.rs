//! Bearer tokens: 256 random bits, shown once, stored as a SHA-256 hash, compared in constant
//! time.
//!
//! A token reads `rst_<id>_<secret>`: the id (32 hex digits) finds the row without revealing
//! anything, the secret (43 base64url characters) is what is hashed and checked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

const PREFIX: &str = "rst_";

/// A freshly made token: the text to hand out once, and what to store.
pub struct NewToken {
    pub id: Uuid,
    pub text: String,
    pub secret_hash: Vec<u8>,
}

pub fn generate() -> NewToken {
    let id = Uuid::now_v7();
    let secret = random_secret();
    let text = format!("{PREFIX}{}_{secret}", id.simple());
    NewToken {
        id,
        text,
        secret_hash: hash(&secret),
    }
}

/// 256 random bits, base64url.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Splits a presented token into its id and secret; `None` if it is not shaped like one.
pub fn parse(text: &str) -> Option<(Uuid, &str)> {
    let rest = text.strip_prefix(PREFIX)?;
    let id = rest.get(..32)?;
    let secret = rest.get(32..)?.strip_prefix('_')?;
    if secret.len() != 43 {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// Whether `secret` hashes to `stored`, in time independent of where they differ.
pub fn verify(secret: &str, stored: &[u8]) -> bool {
    hash(secret).ct_eq(stored).into()
}

/// Constant-time comparison of two arbitrary strings (by their hashes, so lengths leak nothing).
pub fn equal(a: &str, b: &str) -> bool {
    hash(a).ct_eq(&hash(b)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_verify() {
        let t = generate();
        let (id, secret) = parse(&t.text).unwrap();
        assert_eq!(id, t.id);
        assert!(verify(secret, &t.secret_hash));
        assert!(!verify("x", &t.secret_hash));
        assert_ne!(generate().text, t.text);
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for bad in [
            "",
            "rst_",
            "rst_abc_def",
            "Bearer x",
            "rst_00000000000000000000000000000000_short",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
