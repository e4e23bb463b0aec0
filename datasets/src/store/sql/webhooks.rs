use super::*;
use crate::ids::{ProjectId, WebhookDeliveryId, WebhookId};
use crate::store::webhook_store::*;
use crate::webhook::{NewWebhook, Webhook, WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus};

impl WebhookStore for Backend {
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
}
