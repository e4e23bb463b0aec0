//! Our own outgoing webhooks: a project's subscriptions and the deliveries of its events.

use crate::ids::{ProjectId, WebhookDeliveryId, WebhookId};
use crate::{ValidationError, limits};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The events a webhook can receive.
pub const EVENTS: [&str; 2] = [TICKET_TAGGED, TICKET_LABELS_CHANGED];
/// A ticket was ingested (by the API or a connector) and the model in service decided on it.
pub const TICKET_TAGGED: &str = "ticket.tagged";
/// A person set a ticket's labels (its page, the review queue, the API, adjudication).
pub const TICKET_LABELS_CHANGED: &str = "ticket.labels_changed";

/// The longest URL a webhook may have.
const MAX_URL_CHARS: usize = 2048;

/// A URL a project's events are sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: WebhookId,
    pub project_id: ProjectId,
    pub url: String,
    /// The signing secret, sealed with the server's key.
    pub sealed_secret: Vec<u8>,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A webhook to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub project_id: ProjectId,
    pub url: String,
    pub sealed_secret: Vec<u8>,
    pub events: Vec<String>,
}

impl NewWebhook {
    pub fn validate(&self) -> Result<(), ValidationError> {
        let url = self.url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ValidationError::field(
                "url",
                "must be an http:// or https:// URL without spaces",
            ));
        }
        limits::check_chars("url", url, MAX_URL_CHARS)?;
        if self.events.is_empty() {
            return Err(ValidationError::field("events", "name at least one event"));
        }
        if let Some(unknown) = self.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return Err(ValidationError::field(
                "events",
                format!("unknown event {unknown:?} (known: {})", EVENTS.join(", ")),
            ));
        }
        Ok(())
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookDeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

stored_enum!(WebhookDeliveryStatus, "webhook delivery status", {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
});

/// One event sent (or to send) to a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: WebhookDeliveryId,
    pub webhook_id: WebhookId,
    pub event: String,
    pub payload: serde_json::Value,
    pub status: WebhookDeliveryStatus,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAttempt {
    Delivered {
        status: u16,
    },
    Retry {
        at: DateTime<Utc>,
        status: Option<u16>,
        reason: String,
    },
    Failed {
        status: Option<u16>,
        reason: String,
    },
}
