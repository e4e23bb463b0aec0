//! Connector credentials sealed at rest: the webhook secret, user and API token are one
//! XChaCha20-Poly1305 box (a random 24-byte nonce per box, the connector's name as associated
//! data so a box cannot be moved to another connector). The key comes from the configuration
//! (`TAGGER_ENCRYPTION_KEY`) or, when unset, from `<data_dir>/encryption.key`, generated on
//! first use. Neither the key nor a credential is ever logged or printed in full.

use crate::config::Config;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The file that holds a generated key when the configuration gives none.
pub const KEY_FILE: &str = "encryption.key";
/// The first byte of a sealed box: the format, so a later one can be told apart.
const FORMAT_VERSION: u8 = 1;
const NONCE_BYTES: usize = 24;

/// Why credentials could not be sealed or opened, or the key not loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "the encryption key must be 32 bytes written as 64 hex digits or in base64 (TAGGER_ENCRYPTION_KEY)"
    )]
    BadKey,
    #[error("cannot read or create the key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no randomness for a nonce or key: {0}")]
    Randomness(String),
    #[error(
        "the connector's credentials do not open with this server's encryption key (was the key changed?)"
    )]
    WrongKey,
}

/// A connector's secrets, in clear only in memory.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub webhook_secret: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("webhook_secret", &"<redacted>")
            .field("user", &self.user)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A secret as a person may see it again: its length class and last two characters at most.
pub fn masked(secret: &str) -> String {
    let count = secret.chars().count();
    if count < 12 {
        return "set (hidden)".into();
    }
    let tail: String = secret.chars().skip(count - 2).collect();
    format!("…{tail}")
}

/// The server's key for sealing credentials.
#[derive(Clone)]
pub struct CredentialKey([u8; 32]);

impl fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialKey(<redacted>)")
    }
}

fn decode_key(text: &str) -> Result<[u8; 32], CredentialError> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|_| CredentialError::BadKey)?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| CredentialError::BadKey)?
    };
    bytes.try_into().map_err(|_| CredentialError::BadKey)
}

fn random<const N: usize>() -> Result<[u8; N], CredentialError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| CredentialError::Randomness(e.to_string()))?;
    Ok(bytes)
}

impl CredentialKey {
    /// A key given as 64 hex digits or base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, CredentialError> {
        decode_key(text).map(Self)
    }

    /// The configured key, or the one kept in the data directory (created when missing).
    pub fn load(config: &Config) -> Result<Self, CredentialError> {
        match &config.encryption_key {
            Some(text) => Self::parse(text),
            None => Self::from_file(&config.data_dir.join(KEY_FILE)),
        }
    }

    fn from_file(path: &Path) -> Result<Self, CredentialError> {
        let file_error = |source| CredentialError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::parse(&text),
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(file_error(error));
            }
            Err(_) => {}
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(file_error)?;
        }
        let key: [u8; 32] = random()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                std::io::Write::write_all(&mut file, format!("{}\n", hex::encode(key)).as_bytes())
                    .map_err(file_error)?;
                tracing::warn!(
                    path = %path.display(),
                    "generated an encryption key for connector credentials; servers should set TAGGER_ENCRYPTION_KEY"
                );
                Ok(Self(key))
            }
            // Another process created it first: use that one.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).map_err(file_error)?;
                Self::parse(&text)
            }
            Err(error) => Err(file_error(error)),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// Seals credentials for the connector called `connector`.
    pub fn seal(
        &self,
        connector: &str,
        credentials: &Credentials,
    ) -> Result<Vec<u8>, CredentialError> {
        let plain = serde_json::to_vec(credentials).map_err(|_| CredentialError::WrongKey)?;
        let nonce: [u8; NONCE_BYTES] = random()?;
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: connector.as_bytes(),
                },
            )
            .map_err(|_| CredentialError::WrongKey)?;
        let mut boxed = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        boxed.push(FORMAT_VERSION);
        boxed.extend_from_slice(&nonce);
        boxed.extend_from_slice(&sealed);
        Ok(boxed)
    }

    /// Opens credentials sealed for the connector called `connector`.
    pub fn open(&self, connector: &str, sealed: &[u8]) -> Result<Credentials, CredentialError> {
        let (&version, rest) = sealed.split_first().ok_or(CredentialError::WrongKey)?;
        if version != FORMAT_VERSION || rest.len() < NONCE_BYTES {
            return Err(CredentialError::WrongKey);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| CredentialError::WrongKey)?;
        let plain = self
            .cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: connector.as_bytes(),
                },
            )
            .map_err(|_| CredentialError::WrongKey)?;
        serde_json::from_slice(&plain).map_err(|_| CredentialError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials {
            webhook_secret: "whsec-0123456789".into(),
            user: Some("agent@example.com".into()),
            token: Some("api-token-abcdef".into()),
        }
    }

    #[test]
    fn sealed_credentials_open_only_with_the_same_key_and_connector() {
        let key = CredentialKey::parse(&"11".repeat(32)).unwrap();
        let sealed = key.seal("acme", &credentials()).unwrap();
        assert!(
            !sealed.windows(8).any(|w| w == b"whsec-01"),
            "no clear text"
        );
        assert_eq!(key.open("acme", &sealed).unwrap(), credentials());
        assert!(
            key.open("other", &sealed).is_err(),
            "bound to its connector"
        );
        let other = CredentialKey::parse(&"22".repeat(32)).unwrap();
        assert!(other.open("acme", &sealed).is_err());
        assert_ne!(
            sealed,
            key.seal("acme", &credentials()).unwrap(),
            "fresh nonce"
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open("acme", &tampered).is_err());
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_nothing_else() {
        assert!(CredentialKey::parse(&"ab".repeat(32)).is_ok());
        let base64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(CredentialKey::parse(&base64).is_ok());
        assert!(CredentialKey::parse("short").is_err());
        assert!(CredentialKey::parse(&"ab".repeat(16)).is_err());
    }

    #[test]
    fn a_missing_key_file_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let first = CredentialKey::load(&config).unwrap();
        let sealed = first.seal("acme", &credentials()).unwrap();
        let again = CredentialKey::load(&config).unwrap();
        assert_eq!(again.open("acme", &sealed).unwrap(), credentials());
        assert_eq!(format!("{again:?}"), "CredentialKey(<redacted>)");
        assert!(!format!("{:?}", credentials()).contains("whsec"));
        assert_eq!(masked("short"), "set (hidden)");
        assert_eq!(masked("a-long-secret-xy"), "…xy");
    }
}
