//! Per-project API keys. A key is shown once when created; the store keeps its prefix (to
//! find it) and a SHA-256 of the whole key (to check it). Keys carry 192 random bits, so a
//! fast hash is enough: there is nothing to brute-force that a slow hash would protect.

use crate::ids::ProjectId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every key starts with this, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "tt_";

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: i64,
    pub project_id: ProjectId,
    pub name: String,
    /// The public part, shown in listings: `tt_<prefix>_…`.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time its full text exists outside the client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub secret: String,
}

/// A fresh key's text and its lookup prefix.
pub fn generate() -> Result<(String, String), getrandom::Error> {
    let mut prefix = [0u8; 4];
    let mut secret = [0u8; 24];
    getrandom::fill(&mut prefix)?;
    getrandom::fill(&mut secret)?;
    let prefix = hex(&prefix);
    Ok((format!("{KEY_PREFIX}{prefix}_{}", hex(&secret)), prefix))
}

/// The prefix of a key as a client sends it, if it has our shape.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 8 && secret.len() == 48).then_some(prefix)
}

pub fn hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Compares two hashes in time that does not depend on where they differ.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_our_shape_and_differ() {
        let (a, prefix) = generate().unwrap();
        let (b, _) = generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(prefix_of(&a), Some(prefix.as_str()));
        assert!(a.starts_with("tt_"));
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        for key in [
            "",
            "tt_",
            "tt_abc_def",
            "xx_12345678_000000000000000000000000000000000000000000000000",
            "Bearer tt_1",
        ] {
            assert_eq!(prefix_of(key), None, "{key}");
        }
    }

    #[test]
    fn hashes_compare_exactly() {
        assert!(hashes_match(&hash("tt_a"), &hash("tt_a")));
        assert!(!hashes_match(&hash("tt_a"), &hash("tt_b")));
        assert!(!hashes_match("ab", "abc"));
    }
}
