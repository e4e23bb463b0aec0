//! `POST /v1/connectors/{name}/webhook`: a help desk's deliveries. The raw body is read (with
//! its own size limit) before anything else, because the signature covers those exact bytes;
//! the work is `connector_deliveries::receive`.

use super::{ApiError, ApiJson, ApiPath};
use crate::connector_deliveries::{self, DeliveryError, MAX_WEBHOOK_BYTES, Received};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

impl From<DeliveryError> for ApiError {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::Unauthenticated => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", error.to_string())
            }
            DeliveryError::BadPayload(parse) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_payload", parse.to_string())
            }
            DeliveryError::Credentials(credentials) => {
                // The detail is for the operator's log, not for whoever posted.
                tracing::error!(error = %credentials, "connector credentials unusable");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the connector's credentials cannot be read on this server",
                )
            }
            DeliveryError::Ingest(ingest) => ingest.into(),
            DeliveryError::Store(store) => store.into(),
            DeliveryError::Queue(reason) => {
                tracing::error!(%reason, "a delivery's tagging job could not be queued");
                // 503: the vendor retries, and the retry stores and queues it again.
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the delivery could not be queued; try again",
                )
            }
        }
    }
}

/// Receives one delivery. Every accepted delivery is answered 2xx, duplicates and events
/// that are not about tickets included, so the vendor does not retry them.
pub async fn webhook(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let body = axum::body::to_bytes(body, MAX_WEBHOOK_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("a webhook body is at most {MAX_WEBHOOK_BYTES} bytes"),
            )
        })?;
    let header = |name: &'static str| headers.get(name).and_then(|value| value.to_str().ok());
    let received = connector_deliveries::receive(&state, &name, header, &body).await?;
    let (status, answer) = match received {
        Received::Stored {
            ticket,
            created,
            tag_queued,
            imported_labels,
        } => (
            StatusCode::OK,
            json!({"status": "stored", "ticket_id": ticket, "created": created,
                   "tagging": if tag_queued { "queued" } else { "not_queued" },
                   "imported_labels": imported_labels}),
        ),
        Received::Duplicate { status, ticket } => (
            StatusCode::OK,
            json!({"status": "duplicate", "first_delivery": status.as_str(), "ticket_id": ticket}),
        ),
        Received::Stale { ticket } => (
            StatusCode::OK,
            json!({"status": "stale", "ticket_id": ticket}),
        ),
        Received::Ignored { event } => {
            (StatusCode::OK, json!({"status": "ignored", "event": event}))
        }
        Received::AwaitingFetch { external_id } => (
            StatusCode::ACCEPTED,
            json!({"status": "awaiting_fetch", "external_id": external_id}),
        ),
    };
    Ok((status, ApiJson(answer)))
}
