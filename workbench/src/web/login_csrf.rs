//! The login form's CSRF token. No session exists before a login, so the token is one the
//! server signed: `ISSUED.NONCE.MAC`, an HMAC-SHA256 over the issue time and a random nonce
//! with a key kept in the database (`server_secrets`), valid for `TOKEN_LIFETIME`. The form
//! must carry the same token as the browser's cookie, and the token must verify: a pair an
//! attacker makes up (two empty values included) carries no valid MAC.

use super::{WebError, WebResult, hex_decode, hex_encode};
use chrono::Utc;
use datasets::store::ServerSecrets;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

/// The name of the signing key in `server_secrets`.
const KEY_NAME: &str = "login_csrf";
/// How long a login form may stay open, in seconds (also the cookie's lifetime).
pub const TOKEN_LIFETIME_SECONDS: i64 = 3600;
/// Tolerated clock difference between replicas, in seconds.
const CLOCK_SKEW_SECONDS: i64 = 60;

/// Issues and checks login CSRF tokens; the key is read from the database once.
#[derive(Default)]
pub struct LoginCsrf {
    key: OnceCell<Vec<u8>>,
}

impl LoginCsrf {
    async fn key(&self, store: &impl ServerSecrets) -> WebResult<&[u8]> {
        let key = self
            .key
            .get_or_try_init(|| store.server_secret(KEY_NAME))
            .await?;
        Ok(key)
    }

    /// A new token for a login form.
    pub async fn issue(&self, store: &impl ServerSecrets) -> WebResult<String> {
        let key = self.key(store).await?;
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce)
            .map_err(|e| WebError::Internal(format!("no randomness: {e}")))?;
        Ok(sign(key, Utc::now().timestamp(), &hex_encode(&nonce)))
    }

    /// Whether `token` is one this server issued less than `TOKEN_LIFETIME_SECONDS` ago.
    pub async fn verify(&self, store: &impl ServerSecrets, token: &str) -> WebResult<bool> {
        let key = self.key(store).await?;
        Ok(verify_at(key, token, Utc::now().timestamp()))
    }
}

fn sign(key: &[u8], issued: i64, nonce: &str) -> String {
    let mac = hmac_sha256(key, format!("login-csrf:{issued}:{nonce}").as_bytes());
    format!("{issued}.{nonce}.{}", hex_encode(&mac))
}

fn verify_at(key: &[u8], token: &str, now: i64) -> bool {
    let mut parts = token.split('.');
    let (Some(issued), Some(nonce), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(issued) = issued.parse::<i64>() else {
        return false;
    };
    let fresh = issued <= now + CLOCK_SKEW_SECONDS && now - issued <= TOKEN_LIFETIME_SECONDS;
    let well_formed = nonce.len() == 32 && hex_decode(nonce).is_some() && mac.len() == 64;
    fresh && well_formed && datasets::api_key::hashes_match(&sign(key, issued, nonce), token)
}

/// HMAC-SHA256 (RFC 2104) over `message`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_cases() {
        assert_eq!(
            hex_encode(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex_encode(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn only_fresh_tokens_signed_with_the_key_verify() {
        let key = [7u8; 32];
        let nonce = "0123456789abcdef0123456789abcdef";
        let token = sign(&key, 1_000_000, nonce);
        assert!(verify_at(&key, &token, 1_000_000));
        assert!(verify_at(&key, &token, 1_000_000 + TOKEN_LIFETIME_SECONDS));
        assert!(!verify_at(&key, &token, 1_000_001 + TOKEN_LIFETIME_SECONDS));
        assert!(!verify_at(&key, &token, 1_000_000 - 2 * CLOCK_SKEW_SECONDS));
        assert!(!verify_at(&[8u8; 32], &token, 1_000_000));
        let forged = format!("1000000.{nonce}.{}", "0".repeat(64));
        assert!(!verify_at(&key, &forged, 1_000_000));
        assert!(!verify_at(&key, "", 1_000_000));
        assert!(!verify_at(&key, "..", 1_000_000));
    }
}
