//! Secrets the server keeps for itself (`server_secrets`), such as the key that signs
//! login-form CSRF tokens: 256 random bits, created on first use and shared by every process
//! on the database. The SQL is the same on both backends.

use super::capability::store_capability;
use crate::error::{StoreError, StoreResult};

/// Bytes in a newly created secret.
pub const SECRET_BYTES: usize = 32;

store_capability! {
    /// The capability to read (and on first use create) a named server secret.
    pub trait ServerSecrets {
        /// The secret called `name`: created at random if none exists yet. Two processes racing
        /// to create it both end up with the one stored first.
        async fn server_secret(&self, name: &str) -> StoreResult<Vec<u8>>;
    }
}

pub(crate) const INSERT_SECRET: &str = "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (name) DO NOTHING";
pub(crate) const SELECT_SECRET: &str = "SELECT value FROM server_secrets WHERE name = $1";

pub(crate) fn new_secret() -> StoreResult<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Secret(format!("no randomness for a new secret: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn decode(name: &str, hex: &str) -> StoreResult<Vec<u8>> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    match bytes {
        Some(bytes) if bytes.len() >= 16 => Ok(bytes),
        _ => Err(StoreError::Secret(format!(
            "{name:?} is not hex of at least 16 bytes"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_decode_from_hex_and_short_ones_are_refused() {
        assert_eq!(decode("k", &"ab".repeat(16)).unwrap(), vec![0xab; 16]);
        assert!(decode("k", "abcd").is_err());
        assert!(decode("k", &"zz".repeat(16)).is_err());
        assert_eq!(new_secret().unwrap().len(), SECRET_BYTES * 2);
    }
}
