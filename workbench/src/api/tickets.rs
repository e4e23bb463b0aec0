//! Tickets: ingest (one or a batch), search, look at one, and label it.

use super::auth::{Authorized, refuse_user_field, scope};
use super::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use datasets::{
    LabelEvent, LabelledTicket, NewTicket, Split, Store, TagName, TicketId, TicketQuery,
    UpsertedTicket,
};
use serde::{Deserialize, Serialize};

/// A ticket as a client sends it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestTicket {
    /// The system it comes from; `api` when absent.
    source: Option<String>,
    /// Its id in that system: sending the same id again updates the ticket.
    external_id: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
    metadata: Option<serde_json::Value>,
    created_at: Option<DateTime<Utc>>,
}

impl IngestTicket {
    /// The ticket to store; its split is fixed by its key, so it never changes.
    pub(super) fn into_new_ticket(self) -> NewTicket {
        crate::ingest::new_ticket(
            self.source.unwrap_or_else(|| "api".into()),
            self.external_id,
            self.subject,
            self.body,
            self.metadata.unwrap_or_else(|| serde_json::json!({})),
            self.created_at,
        )
    }
}

#[derive(Serialize)]
pub struct Ingested {
    #[serde(flatten)]
    stored: UpsertedTicket,
    split: Split,
}

pub async fn ingest_one(
    State(state): State<AppState>,
    authorized: Authorized<scope::Tag>,
    ApiJson(ticket): ApiJson<IngestTicket>,
) -> Result<(StatusCode, ApiJson<Ingested>), ApiError> {
    let project = authorized.project;
    let ticket = ticket.into_new_ticket();
    let split = ticket.split;
    let stored = state.store.upsert_tickets(project.id, &[ticket]).await?;
    let stored = stored
        .first()
        .copied()
        .ok_or_else(|| ApiError::invalid("the ticket was not stored"))?;
    let status = if stored.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, ApiJson(Ingested { stored, split })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    tickets: Vec<IngestTicket>,
}

pub async fn ingest_batch(
    State(state): State<AppState>,
    authorized: Authorized<scope::Tag>,
    ApiJson(batch): ApiJson<IngestBatch>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let limit = state.config.max_batch;
    if batch.tickets.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "{} tickets in one batch; the limit is {limit}",
                batch.tickets.len()
            ),
        ));
    }
    let project = authorized.project;
    let tickets: Vec<NewTicket> = batch
        .tickets
        .into_iter()
        .map(IngestTicket::into_new_ticket)
        .collect();
    let stored = state.store.upsert_tickets(project.id, &tickets).await?;
    Ok(ApiJson(serde_json::json!({ "results": stored })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    q: Option<String>,
    tag: Option<String>,
    split: Option<Split>,
    source: Option<String>,
    #[serde(default)]
    unlabelled: bool,
    limit: Option<u32>,
    offset: Option<u32>,
}

pub async fn search(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let project = authorized.project;
    let tag = params
        .tag
        .as_deref()
        .map(TagName::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let query = TicketQuery {
        text: params.q,
        tag,
        split: params.split,
        source: params.source,
        unlabelled: params.unlabelled,
        limit: params.limit,
        offset: params.offset,
    };
    let tickets = state.store.search_tickets(project.id, &query).await?;
    Ok(ApiJson(serde_json::json!({ "tickets": tickets })))
}

pub async fn show(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
    ApiPath((_, ticket)): ApiPath<(String, i64)>,
) -> Result<ApiJson<LabelledTicket>, ApiError> {
    let project = authorized.project;
    Ok(ApiJson(
        state.store.ticket(project.id, TicketId(ticket)).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLabels {
    tags: Vec<TagName>,
    /// Refused when present: the labeller is the key.
    #[serde(default)]
    user: Option<serde::de::IgnoredAny>,
}

pub async fn set_labels(
    State(state): State<AppState>,
    authorized: Authorized<scope::Label>,
    ApiPath((_, ticket)): ApiPath<(String, i64)>,
    ApiJson(request): ApiJson<SetLabels>,
) -> Result<ApiJson<LabelledTicket>, ApiError> {
    refuse_user_field(&request.user)?;
    let project = &authorized.project;
    let labelled = state
        .store
        .set_human_labels(
            project.id,
            TicketId(ticket),
            &request.tags,
            &authorized.actor(),
        )
        .await?;
    state.labels_changed(project.id, TicketId(ticket), authorized.actor());
    Ok(ApiJson(labelled))
}

pub async fn history(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
    ApiPath((_, ticket)): ApiPath<(String, i64)>,
) -> Result<ApiJson<Vec<LabelEvent>>, ApiError> {
    let project = authorized.project;
    Ok(ApiJson(
        state
            .store
            .label_history(project.id, TicketId(ticket))
            .await?,
    ))
}
