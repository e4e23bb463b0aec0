//! Our own outgoing webhooks: a project's registered URLs receive a signed JSON event when a
//! ticket is tagged. The ingest path queues one delivery per subscribed webhook (after the
//! ticket is stored); the worker's connector queue sends it, retrying faults and `429` with
//! backoff, and logs each attempt. The signature lets a receiver check the event is ours and
//! recent: `X-Tagger-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.

use crate::connector_jobs::{
    ConnectorRunner, FIRST_BACKOFF, MAX_ANSWER_BYTES, MAX_WRITE_ATTEMPTS, read_limited, without_url,
};
use crate::credentials::Credentials;
use datasets::store::prelude::*;
use datasets::webhook::{WebhookAttempt, WebhookDeliveryStatus};
use datasets::{AnyStore, StoreError, WebhookDeliveryId, WebhookStore};
use std::time::Duration;
use trainer::jobs::{ConnectorJob, JobQueue};

/// The name a webhook's secret is sealed under (the associated data of its box): a box
/// copied onto another project's or URL's row does not open.
pub fn sealing_name(project: datasets::ProjectId, url: &str) -> String {
    format!("webhook:{project}:{url}")
}

/// The secret in the sealed form connector credentials use.
pub fn secret_box(secret: &str) -> Credentials {
    Credentials {
        webhook_secret: secret.to_string(),
        user: None,
        token: None,
    }
}

/// Queues the `ticket.labels_changed` event of a ticket a person just labelled (its labels
/// as they are now, and who set them) for the project's subscribed webhooks; the deliveries
/// to push. A failure is logged: the person's labels are saved whatever becomes of it.
pub async fn queue_labels_changed(
    store: &AnyStore,
    project: datasets::ProjectId,
    ticket: datasets::TicketId,
    actor: &str,
) -> Vec<WebhookDeliveryId> {
    let queued = async {
        let labelled = store.ticket(project, ticket).await?;
        let tags = |present: bool| -> Vec<&str> {
            labelled
                .labels
                .iter()
                .filter(|l| l.source == datasets::LabelSource::Human && l.present == present)
                .map(|l| l.tag.as_str())
                .collect()
        };
        let payload = serde_json::json!({
            "project_id": project,
            "ticket": {
                "id": labelled.ticket.id,
                "source": labelled.ticket.source,
                "external_id": labelled.ticket.external_id,
            },
            "labels": tags(true),
            "not": tags(false),
            "by": actor,
        });
        store
            .queue_webhook_event(project, datasets::webhook::TICKET_LABELS_CHANGED, &payload)
            .await
    };
    match queued.await {
        Ok(deliveries) => deliveries,
        Err(error) => {
            tracing::warn!(%ticket, %error, "could not queue the labels_changed event");
            Vec::new()
        }
    }
}

/// Pushes the jobs of queued deliveries; a failed push is logged (the delivery stays
/// pending, and the next worker to start queues it again).
pub async fn push_all(queue: &JobQueue, deliveries: &[WebhookDeliveryId]) {
    for &delivery in deliveries {
        push(queue, delivery, Duration::ZERO).await;
    }
}

/// Pushes a job for every pending delivery due before `before` (its job was lost: a push
/// that failed, a queue wiped). A duplicate job is harmless: a settled delivery is skipped.
pub async fn requeue_overdue(
    store: &AnyStore,
    queue: &JobQueue,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<usize, StoreError> {
    let overdue = store.overdue_webhook_deliveries(before, 500).await?;
    for delivery in &overdue {
        push(queue, delivery.id, Duration::ZERO).await;
    }
    if !overdue.is_empty() {
        tracing::info!(
            count = overdue.len(),
            "overdue webhook deliveries queued again"
        );
    }
    Ok(overdue.len())
}

async fn push(queue: &JobQueue, delivery: WebhookDeliveryId, delay: Duration) {
    if let Err(error) = queue
        .push_connector(
            ConnectorJob::DeliverWebhook {
                delivery_id: delivery,
            },
            delay,
        )
        .await
    {
        tracing::warn!(%delivery, %error, "could not queue a webhook delivery; it stays pending");
    }
}

/// Sends one event and records the attempt; `Err` only for store faults (the queue retries).
#[tracing::instrument(skip_all, fields(delivery = %id))]
pub async fn deliver(
    runner: &ConnectorRunner,
    id: WebhookDeliveryId,
    queue: JobQueue,
) -> Result<(), String> {
    let store: &AnyStore = &runner.store;
    let Some(delivery) = store
        .webhook_delivery(id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    if delivery.status != WebhookDeliveryStatus::Pending {
        return Ok(());
    }
    let Some(webhook) = store
        .webhook(delivery.webhook_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let early = (delivery.next_attempt_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    if early > Duration::from_secs(5) {
        push(&queue, id, early).await;
        return Ok(());
    }
    tokio::time::sleep(early).await;
    let secret = match runner.key().and_then(|key| {
        key.open(
            &sealing_name(webhook.project_id, &webhook.url),
            &webhook.sealed_secret,
        )
        .map_err(|error| format!("cannot open the webhook's secret: {error}"))
    }) {
        Ok(secret) => secret.webhook_secret,
        Err(reason) => {
            return record(
                store,
                id,
                WebhookAttempt::Failed {
                    status: None,
                    reason,
                },
            )
            .await;
        }
    };
    let body = serde_json::json!({
        "id": delivery.id,
        "event": delivery.event,
        "created_at": delivery.created_at,
        "data": delivery.payload,
    })
    .to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let sent = runner
        .client
        .post(&webhook.url)
        .header("content-type", "application/json")
        .header("x-tagger-event", &delivery.event)
        .header("x-tagger-delivery", delivery.id.to_string())
        .header(
            "x-tagger-signature",
            connectors::sign_outgoing(secret.as_bytes(), timestamp, body.as_bytes()),
        )
        .body(body)
        .send()
        .await;
    let attempts = delivery.attempts + 1;
    let backoff = FIRST_BACKOFF * 2u32.pow((attempts - 1).min(10));
    let (status, retry_after, reason) = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            if response.status().is_success() {
                return record(store, id, WebhookAttempt::Delivered { status }).await;
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|seconds| Duration::from_secs(seconds.min(900)));
            let text = read_limited(response, MAX_ANSWER_BYTES).await;
            let excerpt: String = text.chars().take(200).collect();
            (
                Some(status),
                retry_after,
                format!("the receiver answered HTTP {status}: {excerpt}"),
            )
        }
        Err(error) => (
            None,
            None,
            format!("the receiver could not be reached: {}", without_url(&error)),
        ),
    };
    // A 4xx other than a timeout or a rate limit is the receiver refusing the event.
    let will_not_heal = status.is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429);
    if will_not_heal || attempts >= MAX_WRITE_ATTEMPTS {
        let reason = if will_not_heal {
            reason
        } else {
            format!("gave up after {attempts} attempts: {reason}")
        };
        return record(store, id, WebhookAttempt::Failed { status, reason }).await;
    }
    let wait = retry_after.unwrap_or(backoff);
    let at = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
    record(store, id, WebhookAttempt::Retry { at, status, reason }).await?;
    push(&queue, id, wait).await;
    Ok(())
}

async fn record(
    store: &AnyStore,
    id: WebhookDeliveryId,
    attempt: WebhookAttempt,
) -> Result<(), String> {
    match &attempt {
        WebhookAttempt::Delivered { .. } => tracing::info!("webhook event delivered"),
        WebhookAttempt::Retry { reason, .. } => {
            tracing::info!(%reason, "webhook event to be sent again")
        }
        WebhookAttempt::Failed { reason, .. } => {
            tracing::warn!(%reason, "webhook event not delivered")
        }
    }
    store
        .record_webhook_attempt(id, &attempt)
        .await
        .map_err(|error: StoreError| error.to_string())
}
