//! Webhook signatures, as each system makes them; every comparison is constant-time (hmac's
//! `verify_slice`). No delivery is accepted without a valid signature, and an empty secret
//! verifies nothing.
//!
//! - Zendesk: `X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(secret, timestamp + body)),
//!   the timestamp being the `X-Zendesk-Webhook-Signature-Timestamp` header as sent.
//! - Jira: `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
//! - ServiceNow (our design, sent by the Business Rule in docs/connectors.md):
//!   `X-Tagger-Signature` = base64(HMAC-SHA256(secret, timestamp + "." + body)) with the
//!   Unix time in `X-Tagger-Timestamp`.
//!
//! Deliveries are not refused for their age: vendors retry late (Jira for about 30 minutes)
//! with the same signed bytes, and a replay is caught by the delivery's dedupe key instead.

use crate::System;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2_hmac::Sha256;

pub const ZENDESK_SIGNATURE_HEADER: &str = "x-zendesk-webhook-signature";
pub const ZENDESK_TIMESTAMP_HEADER: &str = "x-zendesk-webhook-signature-timestamp";
pub const JIRA_SIGNATURE_HEADER: &str = "x-hub-signature";
pub const SERVICENOW_SIGNATURE_HEADER: &str = "x-tagger-signature";
pub const SERVICENOW_TIMESTAMP_HEADER: &str = "x-tagger-timestamp";

/// Why a delivery's signature was refused. The messages name headers, never secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("signature method {0:?} is not supported (expected sha256)")]
    UnsupportedMethod(String),
    #[error("the signature does not match")]
    Mismatch,
    #[error("the connector has no webhook secret")]
    NoSecret,
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> Result<Hmac<Sha256>, SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| SignatureError::NoSecret)?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac)
}

fn digest(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    mac(secret, parts)
        .map(|mac| mac.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

/// The Zendesk signature of a body sent at `timestamp` (what a fake Zendesk sends).
pub fn sign_zendesk(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    BASE64.encode(digest(secret, &[timestamp.as_bytes(), body]))
}

/// The Jira `X-Hub-Signature` value of a body.
pub fn sign_jira(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(digest(secret, &[body])))
}

/// The ServiceNow `X-Tagger-Signature` value of a body sent at `timestamp` (Unix seconds).
pub fn sign_servicenow(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    BASE64.encode(digest(secret, &[timestamp.as_bytes(), b".", body]))
}

/// The `X-Tagger-Signature` of an event we send to a project's webhook at `timestamp` (Unix
/// seconds): `t=<timestamp>,v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. The
/// receiver recomputes it and refuses old timestamps (docs/webhooks.md).
pub fn sign_outgoing(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mac = digest(secret, &[timestamp.to_string().as_bytes(), b".", body]);
    format!("t={timestamp},v1={}", hex::encode(mac))
}

fn required<'a>(
    header: &impl Fn(&'static str) -> Option<&'a str>,
    name: &'static str,
) -> Result<&'a str, SignatureError> {
    header(name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(SignatureError::Missing(name))
}

/// Checks a delivery's signature with the connector's webhook secret; `header` looks a
/// request header up by its lower-case name.
pub fn verify_signature<'a>(
    system: System,
    secret: &[u8],
    header: impl Fn(&'static str) -> Option<&'a str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let (claimed, signed): (Vec<u8>, Vec<&[u8]>) = match system {
        System::Zendesk => {
            let signature = required(&header, ZENDESK_SIGNATURE_HEADER)?;
            let timestamp = header(ZENDESK_TIMESTAMP_HEADER)
                .ok_or(SignatureError::Missing(ZENDESK_TIMESTAMP_HEADER))?;
            let claimed = BASE64
                .decode(signature)
                .map_err(|_| SignatureError::Malformed(ZENDESK_SIGNATURE_HEADER))?;
            (claimed, vec![timestamp.as_bytes(), body])
        }
        System::Jira => {
            let signature = required(&header, JIRA_SIGNATURE_HEADER)?;
            let (method, hex_digest) = signature
                .split_once('=')
                .ok_or(SignatureError::Malformed(JIRA_SIGNATURE_HEADER))?;
            // Atlassian says other methods may come; only sha256 exists today.
            if !method.eq_ignore_ascii_case("sha256") {
                return Err(SignatureError::UnsupportedMethod(method.to_string()));
            }
            let claimed = hex::decode(hex_digest.trim())
                .map_err(|_| SignatureError::Malformed(JIRA_SIGNATURE_HEADER))?;
            (claimed, vec![body])
        }
        System::ServiceNow => {
            let signature = required(&header, SERVICENOW_SIGNATURE_HEADER)?;
            let timestamp = required(&header, SERVICENOW_TIMESTAMP_HEADER)?;
            let claimed = BASE64
                .decode(signature)
                .map_err(|_| SignatureError::Malformed(SERVICENOW_SIGNATURE_HEADER))?;
            (claimed, vec![timestamp.as_bytes(), b".", body])
        }
    };
    mac(secret, &signed)?
        .verify_slice(&claimed)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zendesk's fixed secret for test deliveries from the webhook builder.
    const ZENDESK_TEST_SECRET: &[u8] = b"dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==";

    fn headers<'a>(
        pairs: &'a [(&'static str, &'a str)],
    ) -> impl Fn(&'static str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    #[test]
    fn the_published_test_vectors_verify() {
        let body = br#"{"ticket_id":"42","subject":"Refund please"}"#;
        let timestamp = "2021-03-25T05:09:27Z";
        assert_eq!(
            sign_zendesk(ZENDESK_TEST_SECRET, timestamp, body),
            "pk6Dts4Zy8V4E8HjdHvJ48A46DBLp2huJUuMVazIwXY="
        );
        assert_eq!(
            sign_zendesk(ZENDESK_TEST_SECRET, timestamp, b""),
            "wCdBvXaHttn0wRVIYctzZ9O6O0bnqWakJMEKZ9VoRWw="
        );
        let zendesk = [
            (
                ZENDESK_SIGNATURE_HEADER,
                "pk6Dts4Zy8V4E8HjdHvJ48A46DBLp2huJUuMVazIwXY=",
            ),
            (ZENDESK_TIMESTAMP_HEADER, timestamp),
        ];
        assert_eq!(
            verify_signature(
                System::Zendesk,
                ZENDESK_TEST_SECRET,
                headers(&zendesk),
                body
            ),
            Ok(())
        );

        let jira_body = br#"{"timestamp":1735732800000,"webhookEvent":"jira:issue_created"}"#;
        let jira_signature =
            "sha256=09e1d24cad2f21b0b09187da67c563e9459523c088e35d96d3ebcfa1d373ab6d";
        assert_eq!(
            sign_jira(b"It's a Secret to Everybody", jira_body),
            jira_signature
        );
        assert_eq!(
            verify_signature(
                System::Jira,
                b"It's a Secret to Everybody",
                headers(&[(JIRA_SIGNATURE_HEADER, jira_signature)]),
                jira_body
            ),
            Ok(())
        );

        let snow_body = br#"{"event":"incident.created","sys_id":"a1b2"}"#;
        assert_eq!(
            sign_servicenow(b"snow-shared-secret", "1735732800", snow_body),
            "H6oY38aESnBqV1fW2BQrkxJu/5AM/Wbll5dOmJYpAyI="
        );
        let snow = [
            (
                SERVICENOW_SIGNATURE_HEADER,
                "H6oY38aESnBqV1fW2BQrkxJu/5AM/Wbll5dOmJYpAyI=",
            ),
            (SERVICENOW_TIMESTAMP_HEADER, "1735732800"),
        ];
        assert_eq!(
            verify_signature(
                System::ServiceNow,
                b"snow-shared-secret",
                headers(&snow),
                snow_body
            ),
            Ok(())
        );
    }

    #[test]
    fn wrong_or_missing_signatures_are_refused() {
        let body = b"{}";
        let good = sign_jira(b"secret", body);
        let verify = |secret: &[u8], pairs: &[(&'static str, &str)], body: &[u8]| {
            verify_signature(System::Jira, secret, headers(pairs), body)
        };
        assert_eq!(
            verify(b"secret", &[(JIRA_SIGNATURE_HEADER, &good)], body),
            Ok(())
        );
        assert_eq!(
            verify(b"other", &[(JIRA_SIGNATURE_HEADER, &good)], body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"secret", &[(JIRA_SIGNATURE_HEADER, &good)], b"{ }"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"secret", &[], body),
            Err(SignatureError::Missing(JIRA_SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(b"secret", &[(JIRA_SIGNATURE_HEADER, "sha1=abcd")], body),
            Err(SignatureError::UnsupportedMethod("sha1".into()))
        );
        assert_eq!(
            verify(b"secret", &[(JIRA_SIGNATURE_HEADER, "sha256=zz")], body),
            Err(SignatureError::Malformed(JIRA_SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(b"", &[(JIRA_SIGNATURE_HEADER, &good)], body),
            Err(SignatureError::NoSecret)
        );

        // Zendesk: the timestamp is signed, so changing it breaks the signature.
        let signature = sign_zendesk(b"secret", "2026-01-05T10:00:00Z", body);
        let moved = [
            (ZENDESK_SIGNATURE_HEADER, signature.as_str()),
            (ZENDESK_TIMESTAMP_HEADER, "2026-01-05T10:00:01Z"),
        ];
        assert_eq!(
            verify_signature(System::Zendesk, b"secret", headers(&moved), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(
                System::Zendesk,
                b"secret",
                headers(&[(ZENDESK_SIGNATURE_HEADER, signature.as_str())]),
                body
            ),
            Err(SignatureError::Missing(ZENDESK_TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify_signature(System::ServiceNow, b"secret", headers(&[]), body),
            Err(SignatureError::Missing(SERVICENOW_SIGNATURE_HEADER))
        );
    }
}
