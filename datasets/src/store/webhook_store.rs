//! Outgoing webhooks and the log of their deliveries (which is also their queue). A narrow
//! capability: the ingest path queues events, the delivery job settles them, the CLI lists
//! them. The SQL is the same on both backends.

use super::capability::store_capability;
use crate::error::{StoreError, StoreResult};
use crate::ids::{ProjectId, WebhookDeliveryId, WebhookId};
use crate::webhook::{NewWebhook, Webhook, WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

/// The most deliveries one listing returns.
pub const MAX_WEBHOOK_DELIVERIES_PAGE: u32 = 500;

store_capability! {
    /// Outgoing webhooks.
    pub trait WebhookStore {
        async fn create_webhook(&self, webhook: &NewWebhook) -> StoreResult<Webhook>;
        /// The project's webhooks (every project's with `None`), oldest first.
        async fn webhooks(&self, project: Option<ProjectId>) -> StoreResult<Vec<Webhook>>;
        async fn webhook(&self, id: WebhookId) -> StoreResult<Option<Webhook>>;
        /// Deletes a webhook with its delivery log.
        async fn remove_webhook(&self, id: WebhookId) -> StoreResult<Webhook>;
        /// One pending delivery per webhook of the project that receives `event`.
        async fn queue_webhook_event(
            &self,
            project: ProjectId,
            event: &str,
            payload: &serde_json::Value,
        ) -> StoreResult<Vec<WebhookDeliveryId>>;
        async fn webhook_delivery(
            &self,
            id: WebhookDeliveryId,
        ) -> StoreResult<Option<WebhookDelivery>>;
        /// Records an attempt at a pending delivery (a settled one is left as it is).
        async fn record_webhook_attempt(
            &self,
            id: WebhookDeliveryId,
            attempt: &WebhookAttempt,
        ) -> StoreResult<()>;
        /// Pending deliveries due before `before`, oldest first: those whose job was lost (a
        /// queue push that failed) are found here and queued again.
        async fn overdue_webhook_deliveries(
            &self,
            before: DateTime<Utc>,
            limit: u32,
        ) -> StoreResult<Vec<WebhookDelivery>>;
        /// The webhook's deliveries, newest first.
        async fn webhook_deliveries(
            &self,
            webhook: WebhookId,
            limit: u32,
        ) -> StoreResult<Vec<WebhookDelivery>>;
    }
}

pub(crate) const SELECT_WEBHOOKS: &str =
    "SELECT id, project_id, url, secret, events, created_at FROM webhooks ";
pub(crate) const SELECT_DELIVERIES: &str = "SELECT id, webhook_id, event, payload, status, attempts, last_status, \
     last_error, next_attempt_at, created_at, updated_at FROM webhook_deliveries ";
pub(crate) const INSERT_WEBHOOK: &str = "INSERT INTO webhooks (project_id, url, secret, events, created_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";
pub(crate) const SELECT_WEBHOOK: &str = const_str::concat!(SELECT_WEBHOOKS, "WHERE id = $1");
pub(crate) const SELECT_ALL_WEBHOOKS: &str = const_str::concat!(SELECT_WEBHOOKS, "ORDER BY id");
pub(crate) const SELECT_PROJECT_WEBHOOKS: &str =
    const_str::concat!(SELECT_WEBHOOKS, "WHERE project_id = $1 ORDER BY id");
pub(crate) const DELETE_WEBHOOK: &str = "DELETE FROM webhooks WHERE id = $1";
pub(crate) const PROJECT_EXISTS: &str = "SELECT id FROM projects WHERE id = $1";
pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries \
     (webhook_id, event, payload, status, attempts, last_status, last_error, next_attempt_at, \
     created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, NULL, NULL, $4, $4, $4) RETURNING id";
pub(crate) const SELECT_DELIVERY: &str = const_str::concat!(SELECT_DELIVERIES, "WHERE id = $1");
pub(crate) const SELECT_RECENT_DELIVERIES: &str = const_str::concat!(
    SELECT_DELIVERIES,
    "WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2"
);
pub(crate) const SELECT_OVERDUE_DELIVERIES: &str = const_str::concat!(
    SELECT_DELIVERIES,
    "WHERE status = 'pending' AND next_attempt_at < $1 ORDER BY next_attempt_at, id LIMIT $2"
);
pub(crate) const SETTLE_DELIVERY: &str = "UPDATE webhook_deliveries SET status = $1, \
     attempts = attempts + 1, last_status = $2, last_error = $3, next_attempt_at = $4, \
     updated_at = $5 WHERE id = $6 AND status = 'pending'";

#[derive(sqlx::FromRow)]
pub(crate) struct WebhookRow {
    pub(crate) id: i64,
    pub(crate) project_id: i64,
    pub(crate) url: String,
    pub(crate) secret: Vec<u8>,
    pub(crate) events: Json<Vec<String>>,
    pub(crate) created_at: DateTime<Utc>,
}

impl From<WebhookRow> for Webhook {
    fn from(row: WebhookRow) -> Self {
        Webhook {
            id: WebhookId(row.id),
            project_id: ProjectId(row.project_id),
            url: row.url,
            sealed_secret: row.secret,
            events: row.events.0,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    pub(crate) id: i64,
    pub(crate) webhook_id: i64,
    pub(crate) event: String,
    pub(crate) payload: Json<serde_json::Value>,
    pub(crate) status: String,
    pub(crate) attempts: i32,
    pub(crate) last_status: Option<i32>,
    pub(crate) last_error: Option<String>,
    pub(crate) next_attempt_at: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl TryFrom<DeliveryRow> for WebhookDelivery {
    type Error = StoreError;
    fn try_from(row: DeliveryRow) -> Result<Self, StoreError> {
        Ok(WebhookDelivery {
            id: WebhookDeliveryId(row.id),
            webhook_id: WebhookId(row.webhook_id),
            event: row.event,
            payload: row.payload.0,
            status: row.status.parse::<WebhookDeliveryStatus>().map_err(|e| {
                StoreError::Database(sqlx::Error::Decode(
                    format!("stored webhook delivery status is invalid: {e}").into(),
                ))
            })?,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            last_status: row.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: row.last_error,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}
