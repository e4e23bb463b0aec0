//! What one webhook delivery means, whichever system sent it: a ticket, a reference to a
//! ticket that must be fetched, or an event that is not about tickets.

use crate::System;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2_hmac::{Digest, Sha256};

/// Whether the vendor reports a new ticket or a change to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Created,
    Updated,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
        }
    }
}

/// A ticket as a help desk describes it, in our terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingTicket {
    /// The vendor's stable id: Zendesk ticket id, Jira issue id (not the key, which changes
    /// when an issue moves), ServiceNow `sys_id`.
    pub external_id: String,
    /// What people call it, when it differs from the id: Jira's `SUP-17`, ServiceNow's
    /// `INC0010042`.
    pub reference: Option<String>,
    pub subject: String,
    pub body: String,
    /// Tags (Zendesk), labels (Jira) or the category (ServiceNow) the ticket carries there.
    pub labels: Vec<String>,
    /// Other classifying fields a connector may be set to import as labels too (see
    /// `IMPORTABLE_FIELDS`): `(field, value)`, one pair per value (Jira components are many).
    pub fields: Vec<(String, String)>,
    /// When the vendor last changed it; orders deliveries that arrive out of order.
    pub updated_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub event: EventKind,
}

/// The fields each system's tickets carry that a connector may import as labels, beside the
/// tags/labels/category it always reads: Jira's issue type, priority and components, and
/// ServiceNow's subcategory and priority.
pub fn importable_fields(system: System) -> &'static [&'static str] {
    match system {
        System::Zendesk => &[],
        System::Jira => &["issuetype", "priority", "components"],
        System::ServiceNow => &["subcategory", "priority"],
    }
}

/// What a delivery asks of us.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// A ticket with its text.
    Ticket(IncomingTicket),
    /// A Zendesk trigger webhook whose body carries only the ticket id: the ticket itself has
    /// to be fetched over the REST API.
    TicketReference {
        external_id: String,
        event: EventKind,
    },
    /// An event that is not about a ticket's content (a user deleted, an issue deleted, a
    /// comment): answered 2xx so the vendor does not retry it, and otherwise ignored.
    Ignored { event: String },
}

/// Why a delivery could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a {system} delivery we know: {reason}")]
    Unrecognised { system: System, reason: String },
    #[error("{system} error body: {message}")]
    VendorError { system: System, message: String },
}

/// Reads one webhook body from `system`.
pub fn parse_delivery(system: System, body: &[u8]) -> Result<Delivery, ParseError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    match system {
        System::Zendesk => crate::zendesk::parse_webhook(&value),
        System::Jira => crate::jira::parse_webhook(&value),
        System::ServiceNow => crate::servicenow::parse_webhook(&value),
    }
}

/// The key that identifies one delivery across the vendor's retries: the id the vendor gives
/// the event or delivery when it sends one (Zendesk's event id or invocation id, Jira's
/// `X-Atlassian-Webhook-Identifier`, which stays the same on every retry), otherwise the
/// SHA-256 of the body (a retry resends the same bytes). `header` looks a request header up.
pub fn dedupe_key<'a>(
    system: System,
    header: impl Fn(&'static str) -> Option<&'a str>,
    body: &[u8],
) -> String {
    let vendor_id = match system {
        System::Zendesk => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|value| {
                // Event webhooks carry a unique event id; trigger bodies do not.
                let is_event = value.get("type").and_then(|t| t.as_str()).is_some();
                if is_event {
                    crate::lenient::id(value.get("id"))
                } else {
                    None
                }
            })
            .map(|id| format!("event:{id}"))
            .or_else(|| {
                header("x-zendesk-webhook-invocation-id")
                    .filter(|id| !id.trim().is_empty())
                    .map(|id| format!("invocation:{}", id.trim()))
            }),
        System::Jira => header("x-atlassian-webhook-identifier")
            .filter(|id| !id.trim().is_empty())
            .map(|id| format!("identifier:{}", id.trim())),
        System::ServiceNow => None,
    };
    vendor_id.unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(body))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendors_delivery_id_is_the_key_and_the_body_hash_the_fallback() {
        let jira = dedupe_key(
            System::Jira,
            |name| (name == "x-atlassian-webhook-identifier").then_some("abc-1"),
            b"{}",
        );
        assert_eq!(jira, "identifier:abc-1");
        let bare = dedupe_key(System::Jira, |_| None, b"{}");
        assert!(bare.starts_with("sha256:44136fa3"), "{bare}");
        assert_eq!(bare, dedupe_key(System::ServiceNow, |_| None, b"{}"));
        let event = dedupe_key(
            System::Zendesk,
            |_| Some("invocation-9"),
            br#"{"type":"zen:event-type:ticket.created","id":"01J"}"#,
        );
        assert_eq!(event, "event:01J");
        let trigger = dedupe_key(
            System::Zendesk,
            |_| Some("invocation-9"),
            br#"{"ticket_id":"4"}"#,
        );
        assert_eq!(trigger, "invocation:invocation-9");
    }

    #[test]
    fn a_body_that_is_not_json_is_a_parse_error() {
        for system in System::ALL {
            assert!(matches!(
                parse_delivery(system, b"<xml/>"),
                Err(ParseError::NotJson(_))
            ));
        }
    }
}
