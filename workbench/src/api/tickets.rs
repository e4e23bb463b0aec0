//! Tickets: ingest (one or a batch), search, look at one, and label it.

use super::auth::{Authorized, refuse_user_field, scope};
use super::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use datasets::store::prelude::*;
use datasets::{
    LabelEvent, LabelledTicket, NewTicket, Split, TagName, TicketId, TicketQuery, UpsertedTicket,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Tickets per search page when the request does not say.
const DEFAULT_PAGE: u32 = 50;

/// A ticket as a client sends it (its schema is written out in `api::schemas`, since one
/// rule spans two fields: subject and body may not both be blank).
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

/// A stored ticket: its id, whether it is new, and the split its key put it in.
#[derive(Serialize, ToSchema)]
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

/// Tickets stored together: all or none.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    tickets: Vec<IngestTicket>,
}

/// What a batch stored, in the order sent.
#[derive(Serialize, ToSchema)]
pub struct BatchIngested {
    results: Vec<UpsertedTicket>,
}

pub async fn ingest_batch(
    State(state): State<AppState>,
    authorized: Authorized<scope::Tag>,
    ApiJson(batch): ApiJson<IngestBatch>,
) -> Result<ApiJson<BatchIngested>, ApiError> {
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
    let results = state.store.upsert_tickets(project.id, &tickets).await?;
    Ok(ApiJson(BatchIngested { results }))
}

/// The search's filters and its page.
#[derive(Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Text the subject or body contains (any case).
    #[param(max_length = 500)]
    q: Option<String>,
    /// Tickets carrying this tag, from any source.
    #[param(value_type = Option<TagName>)]
    tag: Option<String>,
    split: Option<Split>,
    /// The system the tickets came from.
    #[param(max_length = 256)]
    source: Option<String>,
    /// Only tickets with no label at all.
    #[serde(default)]
    unlabelled: bool,
    /// Tickets with this entity: `KIND` (any value) or `KIND:VALUE` (the value in any case),
    /// e.g. `error_code:E1234`, `product:Acme Sync`, `browser`. Kinds: product (the
    /// project's glossary), exception, error_code, version, operating_system, browser, url,
    /// email, phone.
    #[param(schema_with = datasets::api_schema::entity_filter_schema)]
    entity: Option<String>,
    /// Tickets per page, newest first (50 unless given).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Where the page starts: the `next_cursor` of the page before; the first page without.
    #[param(pattern = "^p[0-9]{1,9}$")]
    cursor: Option<String>,
    /// Superseded by `cursor` (ignored when one is given): the number of tickets to skip.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    offset: Option<u32>,
}

/// One page of a search.
#[derive(Serialize, ToSchema)]
pub struct TicketPage {
    /// Newest first (`created_at`, then `id`).
    tickets: Vec<LabelledTicket>,
    /// The `cursor` of the next page; absent (null) after the last one.
    next_cursor: Option<String>,
}

/// A page cursor: `p` and the offset of the page's first ticket. Clients treat it as opaque
/// (docs/api.md), so the paging scheme can change without breaking them; its pattern is in
/// the document so that generated clients send only cursors of this form.
fn encode_cursor(offset: u64) -> String {
    format!("p{offset}")
}

fn decode_cursor(cursor: &str) -> Result<u32, ApiError> {
    cursor
        .strip_prefix('p')
        .filter(|digits| {
            (1..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
        })
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| {
            ApiError::invalid("cursor: not a cursor this server gave (use `next_cursor` as is)")
        })
}

pub async fn search(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<ApiJson<TicketPage>, ApiError> {
    let project = authorized.project;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=TicketQuery::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be 1 to {}, got {limit}",
            TicketQuery::MAX_LIMIT
        )));
    }
    // The cursor supersedes `offset`, which old clients may still send alongside.
    let offset = match &params.cursor {
        Some(cursor) => decode_cursor(cursor)?,
        None => params.offset.unwrap_or(0),
    };
    let tag = params
        .tag
        .as_deref()
        .map(TagName::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let entity = params
        .entity
        .as_deref()
        .map(str::parse::<datasets::text::entities::EntityFilter>)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let query = TicketQuery {
        text: params.q,
        tag,
        split: params.split,
        source: params.source,
        unlabelled: params.unlabelled,
        entity,
        limit: Some(limit),
        offset: Some(offset),
    };
    let tickets = state.store.search_tickets(project.id, &query).await?;
    // A full page may have a next one; a short page is the last.
    let next_cursor = (tickets.len() == limit as usize)
        .then(|| encode_cursor(u64::from(offset) + u64::from(limit)));
    Ok(ApiJson(TicketPage {
        tickets,
        next_cursor,
    }))
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

/// The complete set of tags the key's holder gives the ticket.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLabels {
    #[schema(max_items = 100)]
    tags: Vec<TagName>,
    /// Refused when present: the labeller is the key.
    #[serde(default)]
    #[schema(ignore)]
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
