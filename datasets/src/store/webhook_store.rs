//! Outgoing webhooks and the log of their deliveries (which is also their queue). A narrow
//! capability: the ingest path queues events, the delivery job settles them, the CLI lists
//! them. The SQL is the same on both backends.

use super::any::AnyStore;
use super::{PgStore, SqliteStore};
use crate::error::{StoreError, StoreResult};
use crate::ids::{ProjectId, WebhookDeliveryId, WebhookId};
use crate::webhook::{NewWebhook, Webhook, WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use std::future::Future;

/// The most deliveries one listing returns.
pub const MAX_WEBHOOK_DELIVERIES_PAGE: u32 = 500;

/// Outgoing webhooks.
pub trait WebhookStore {
    fn create_webhook(
        &self,
        webhook: &NewWebhook,
    ) -> impl Future<Output = StoreResult<Webhook>> + Send;
    /// The project's webhooks (every project's with `None`), oldest first.
    fn webhooks(
        &self,
        project: Option<ProjectId>,
    ) -> impl Future<Output = StoreResult<Vec<Webhook>>> + Send;
    fn webhook(&self, id: WebhookId) -> impl Future<Output = StoreResult<Option<Webhook>>> + Send;
    /// Deletes a webhook with its delivery log.
    fn remove_webhook(&self, id: WebhookId) -> impl Future<Output = StoreResult<Webhook>> + Send;
    /// One pending delivery per webhook of the project that receives `event`.
    fn queue_webhook_event(
        &self,
        project: ProjectId,
        event: &str,
        payload: &serde_json::Value,
    ) -> impl Future<Output = StoreResult<Vec<WebhookDeliveryId>>> + Send;
    fn webhook_delivery(
        &self,
        id: WebhookDeliveryId,
    ) -> impl Future<Output = StoreResult<Option<WebhookDelivery>>> + Send;
    /// Records an attempt at a pending delivery (a settled one is left as it is).
    fn record_webhook_attempt(
        &self,
        id: WebhookDeliveryId,
        attempt: &WebhookAttempt,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Pending deliveries due before `before`, oldest first: those whose job was lost (a
    /// queue push that failed) are found here and queued again.
    fn overdue_webhook_deliveries(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<WebhookDelivery>>> + Send;
    /// The webhook's deliveries, newest first.
    fn webhook_deliveries(
        &self,
        webhook: WebhookId,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<WebhookDelivery>>> + Send;
}

macro_rules! select_webhooks {
    ($rest:literal) => {
        concat!(
            "SELECT id, project_id, url, secret, events, created_at FROM webhooks ",
            $rest
        )
    };
}
macro_rules! select_deliveries {
    ($rest:literal) => {
        concat!(
            "SELECT id, webhook_id, event, payload, status, attempts, last_status, last_error, \
             next_attempt_at, created_at, updated_at FROM webhook_deliveries ",
            $rest
        )
    };
}
const INSERT_WEBHOOK: &str = "INSERT INTO webhooks (project_id, url, secret, events, created_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";
const SELECT_WEBHOOK: &str = select_webhooks!("WHERE id = $1");
const SELECT_ALL_WEBHOOKS: &str = select_webhooks!("ORDER BY id");
const SELECT_PROJECT_WEBHOOKS: &str = select_webhooks!("WHERE project_id = $1 ORDER BY id");
const DELETE_WEBHOOK: &str = "DELETE FROM webhooks WHERE id = $1";
const PROJECT_EXISTS: &str = "SELECT id FROM projects WHERE id = $1";
const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries \
     (webhook_id, event, payload, status, attempts, last_status, last_error, next_attempt_at, \
     created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, NULL, NULL, $4, $4, $4) RETURNING id";
const SELECT_DELIVERY: &str = select_deliveries!("WHERE id = $1");
const SELECT_RECENT_DELIVERIES: &str =
    select_deliveries!("WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2");
const SELECT_OVERDUE_DELIVERIES: &str = select_deliveries!(
    "WHERE status = 'pending' AND next_attempt_at < $1 ORDER BY next_attempt_at, id LIMIT $2"
);
const SETTLE_DELIVERY: &str = "UPDATE webhook_deliveries SET status = $1, \
     attempts = attempts + 1, last_status = $2, last_error = $3, next_attempt_at = $4, \
     updated_at = $5 WHERE id = $6 AND status = 'pending'";

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: i64,
    project_id: i64,
    url: String,
    secret: Vec<u8>,
    events: Json<Vec<String>>,
    created_at: DateTime<Utc>,
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
struct DeliveryRow {
    id: i64,
    webhook_id: i64,
    event: String,
    payload: Json<serde_json::Value>,
    status: String,
    attempts: i32,
    last_status: Option<i32>,
    last_error: Option<String>,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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

macro_rules! webhook_store_methods {
    () => {
        #[tracing::instrument(skip_all, fields(project = %webhook.project_id))]
        async fn create_webhook(&self, webhook: &NewWebhook) -> StoreResult<Webhook> {
            webhook.validate()?;
            let project: Option<i64> = sqlx::query_scalar(PROJECT_EXISTS)
                .bind(webhook.project_id)
                .fetch_optional(self.pool())
                .await?;
            if project.is_none() {
                return Err(StoreError::NotFound(format!(
                    "project {}",
                    webhook.project_id
                )));
            }
            let id: i64 = sqlx::query_scalar(INSERT_WEBHOOK)
                .bind(webhook.project_id)
                .bind(webhook.url.trim())
                .bind(webhook.sealed_secret.as_slice())
                .bind(Json(&webhook.events))
                .bind(Utc::now())
                .fetch_one(self.writer())
                .await?;
            self.webhook(WebhookId(id))
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("webhook {id}")))
        }

        #[tracing::instrument(skip_all)]
        async fn webhooks(&self, project: Option<ProjectId>) -> StoreResult<Vec<Webhook>> {
            let rows: Vec<WebhookRow> = match project {
                Some(project) => {
                    sqlx::query_as(SELECT_PROJECT_WEBHOOKS)
                        .bind(project)
                        .fetch_all(self.pool())
                        .await?
                }
                None => {
                    sqlx::query_as(SELECT_ALL_WEBHOOKS)
                        .fetch_all(self.pool())
                        .await?
                }
            };
            Ok(rows.into_iter().map(Webhook::from).collect())
        }

        #[tracing::instrument(skip_all, fields(webhook = %id))]
        async fn webhook(&self, id: WebhookId) -> StoreResult<Option<Webhook>> {
            let row: Option<WebhookRow> = sqlx::query_as(SELECT_WEBHOOK)
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
            Ok(row.map(Webhook::from))
        }

        #[tracing::instrument(skip_all, fields(webhook = %id))]
        async fn remove_webhook(&self, id: WebhookId) -> StoreResult<Webhook> {
            let webhook = self
                .webhook(id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("webhook {id}")))?;
            sqlx::query(DELETE_WEBHOOK)
                .bind(id)
                .execute(self.writer())
                .await?;
            Ok(webhook)
        }

        #[tracing::instrument(skip_all, fields(project = %project, event))]
        async fn queue_webhook_event(
            &self,
            project: ProjectId,
            event: &str,
            payload: &serde_json::Value,
        ) -> StoreResult<Vec<WebhookDeliveryId>> {
            let now = Utc::now();
            let mut queued = Vec::new();
            for webhook in self.webhooks(Some(project)).await? {
                if !webhook.events.iter().any(|e| e == event) {
                    continue;
                }
                let id: i64 = sqlx::query_scalar(INSERT_DELIVERY)
                    .bind(webhook.id)
                    .bind(event)
                    .bind(Json(payload))
                    .bind(now)
                    .fetch_one(self.writer())
                    .await?;
                queued.push(WebhookDeliveryId(id));
            }
            Ok(queued)
        }

        #[tracing::instrument(skip_all, fields(delivery = %id))]
        async fn webhook_delivery(
            &self,
            id: WebhookDeliveryId,
        ) -> StoreResult<Option<WebhookDelivery>> {
            let row: Option<DeliveryRow> = sqlx::query_as(SELECT_DELIVERY)
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
            row.map(WebhookDelivery::try_from).transpose()
        }

        #[tracing::instrument(skip_all, fields(delivery = %id))]
        async fn record_webhook_attempt(
            &self,
            id: WebhookDeliveryId,
            attempt: &WebhookAttempt,
        ) -> StoreResult<()> {
            let now = Utc::now();
            let (status, http, error, next) = match attempt {
                WebhookAttempt::Delivered { status } => {
                    (WebhookDeliveryStatus::Delivered, Some(*status), None, now)
                }
                WebhookAttempt::Retry { at, status, reason } => (
                    WebhookDeliveryStatus::Pending,
                    *status,
                    Some(reason.as_str()),
                    *at,
                ),
                WebhookAttempt::Failed { status, reason } => (
                    WebhookDeliveryStatus::Failed,
                    *status,
                    Some(reason.as_str()),
                    now,
                ),
            };
            sqlx::query(SETTLE_DELIVERY)
                .bind(status.as_str())
                .bind(http.map(i32::from))
                .bind(error)
                .bind(next)
                .bind(now)
                .bind(id)
                .execute(self.writer())
                .await?;
            Ok(())
        }

        #[tracing::instrument(skip_all)]
        async fn overdue_webhook_deliveries(
            &self,
            before: DateTime<Utc>,
            limit: u32,
        ) -> StoreResult<Vec<WebhookDelivery>> {
            let rows: Vec<DeliveryRow> = sqlx::query_as(SELECT_OVERDUE_DELIVERIES)
                .bind(before)
                .bind(i64::from(limit.min(MAX_WEBHOOK_DELIVERIES_PAGE)))
                .fetch_all(self.pool())
                .await?;
            rows.into_iter().map(WebhookDelivery::try_from).collect()
        }

        #[tracing::instrument(skip_all, fields(webhook = %webhook))]
        async fn webhook_deliveries(
            &self,
            webhook: WebhookId,
            limit: u32,
        ) -> StoreResult<Vec<WebhookDelivery>> {
            let rows: Vec<DeliveryRow> = sqlx::query_as(SELECT_RECENT_DELIVERIES)
                .bind(webhook)
                .bind(i64::from(limit.min(MAX_WEBHOOK_DELIVERIES_PAGE)))
                .fetch_all(self.pool())
                .await?;
            rows.into_iter().map(WebhookDelivery::try_from).collect()
        }
    };
}

impl WebhookStore for SqliteStore {
    webhook_store_methods!();
}

impl WebhookStore for PgStore {
    webhook_store_methods!();
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call.await,
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

impl WebhookStore for AnyStore {
    async fn create_webhook(&self, webhook: &NewWebhook) -> StoreResult<Webhook> {
        dispatch!(self, store => store.create_webhook(webhook))
    }
    async fn webhooks(&self, project: Option<ProjectId>) -> StoreResult<Vec<Webhook>> {
        dispatch!(self, store => store.webhooks(project))
    }
    async fn webhook(&self, id: WebhookId) -> StoreResult<Option<Webhook>> {
        dispatch!(self, store => store.webhook(id))
    }
    async fn remove_webhook(&self, id: WebhookId) -> StoreResult<Webhook> {
        dispatch!(self, store => store.remove_webhook(id))
    }
    async fn queue_webhook_event(
        &self,
        project: ProjectId,
        event: &str,
        payload: &serde_json::Value,
    ) -> StoreResult<Vec<WebhookDeliveryId>> {
        dispatch!(self, store => store.queue_webhook_event(project, event, payload))
    }
    async fn webhook_delivery(
        &self,
        id: WebhookDeliveryId,
    ) -> StoreResult<Option<WebhookDelivery>> {
        dispatch!(self, store => store.webhook_delivery(id))
    }
    async fn record_webhook_attempt(
        &self,
        id: WebhookDeliveryId,
        attempt: &WebhookAttempt,
    ) -> StoreResult<()> {
        dispatch!(self, store => store.record_webhook_attempt(id, attempt))
    }
    async fn webhook_deliveries(
        &self,
        webhook: WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        dispatch!(self, store => store.webhook_deliveries(webhook, limit))
    }
    async fn overdue_webhook_deliveries(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        dispatch!(self, store => store.overdue_webhook_deliveries(before, limit))
    }
}
