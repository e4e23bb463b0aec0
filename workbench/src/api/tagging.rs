//! Tagging: one text, a batch, or "ingest and tag" — a ticket from any system is stored,
//! tagged with the promoted model in the same request, and its auto-applied tags recorded.
//! Each takes `?explain=true` for the words behind the tags (`inference::explain`).

use super::auth::{Authorized, scope};
use super::tickets::IngestTicket;
use super::{ApiError, ApiJson, ApiQuery};
use crate::ingest::{self, IngestError, WithoutModel};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use datasets::TicketId;
use inference::explain::DEFAULT_TOP_WORDS;
use inference::service::{ExplainRequest, ServiceError, Tagged};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The most texts one batch request may carry.
pub const MAX_TAG_BATCH: usize = 64;

/// The most words `explain_words` may ask for per tag.
pub const MAX_EXPLAIN_WORDS: u32 = 20;

/// Whether to explain the verdicts (off unless asked: an encoder model's explanation costs a
/// forward pass per word).
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExplainParams {
    /// Add `explanation`: the words of the model text behind each applied tag (the
    /// best-scored tag when none is applied).
    explain: Option<bool>,
    /// Words listed per tag, 1 to 20 (5 unless given).
    #[param(minimum = 1, maximum = 20)]
    explain_words: Option<u32>,
}

impl ExplainParams {
    /// What to explain, if anything.
    fn request(&self) -> Result<Option<ExplainRequest>, ApiError> {
        let top_k = match self.explain_words {
            Some(words) if (1..=MAX_EXPLAIN_WORDS).contains(&words) => words as usize,
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "explain_words: must be 1 to {MAX_EXPLAIN_WORDS}"
                )));
            }
            None => DEFAULT_TOP_WORDS,
        };
        Ok(self
            .explain
            .unwrap_or(false)
            .then_some(ExplainRequest { top_k, tags: None }))
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NoModel(_) => {
                Self::new(StatusCode::CONFLICT, "no_model", error.to_string())
            }
            ServiceError::Store(store) => store.into(),
            other => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                other.to_string(),
            ),
        }
    }
}

/// Tags with the project's model in service (see [`crate::ingest::tag`]).
async fn tag(
    state: &AppState,
    project: datasets::ProjectId,
    texts: Vec<String>,
    rules: bool,
    explain: Option<ExplainRequest>,
) -> Result<Vec<Tagged>, ApiError> {
    Ok(crate::ingest::tag(&state.store, &state.tagging, project, texts, rules, explain).await?)
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Invalid(invalid) => ApiError::invalid(invalid.to_string()),
            IngestError::Tagging(tagging) => tagging.into(),
            IngestError::Store(store) => store.into(),
            IngestError::NothingTagged => ApiError::invalid("nothing was tagged"),
        }
    }
}

/// Text to tag: a subject and body, as tickets have (its schema is written out in
/// `api::schemas`: subject and body may not both be blank).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextToTag {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
}

impl TextToTag {
    fn text(&self) -> Result<String, ApiError> {
        if self.subject.trim().is_empty() && self.body.trim().is_empty() {
            return Err(ApiError::invalid("subject and body are both empty"));
        }
        datasets::limits::check_chars(
            "subject",
            &self.subject,
            datasets::limits::MAX_SUBJECT_CHARS,
        )
        .map_err(|e| ApiError::invalid(e.to_string()))?;
        if self.body.len() > datasets::ticket::MAX_BODY_BYTES {
            return Err(ApiError::invalid(format!(
                "body: {} bytes is over the limit of {} KiB",
                self.body.len(),
                datasets::ticket::MAX_BODY_BYTES / 1024
            )));
        }
        Ok(datasets::ticket::model_text(&self.subject, &self.body))
    }
}

/// One text to tag.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    #[serde(flatten)]
    text: TextToTag,
    /// Apply the taxonomy's keyword rules (default true).
    rules: Option<bool>,
}

pub async fn tag_one(
    State(state): State<AppState>,
    authorized: Authorized<scope::Tag>,
    ApiQuery(params): ApiQuery<ExplainParams>,
    ApiJson(request): ApiJson<TagRequest>,
) -> Result<ApiJson<Tagged>, ApiError> {
    let explain = params.request()?;
    let text = request.text.text()?;
    let mut tagged = tag(
        &state,
        authorized.project.id,
        vec![text],
        request.rules.unwrap_or(true),
        explain,
    )
    .await?;
    tagged
        .pop()
        .map(ApiJson)
        .ok_or_else(|| ApiError::invalid("nothing was tagged"))
}

/// Texts to tag together.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagBatchRequest {
    #[schema(max_items = 64)]
    tickets: Vec<TextToTag>,
    /// Apply the taxonomy's keyword rules (default true).
    rules: Option<bool>,
}

/// The verdicts of a batch, in the order sent.
#[derive(Serialize, ToSchema)]
pub struct TaggedBatch {
    results: Vec<Tagged>,
}

pub async fn tag_batch(
    State(state): State<AppState>,
    authorized: Authorized<scope::Tag>,
    ApiQuery(params): ApiQuery<ExplainParams>,
    ApiJson(request): ApiJson<TagBatchRequest>,
) -> Result<ApiJson<TaggedBatch>, ApiError> {
    let explain = params.request()?;
    if request.tickets.len() > MAX_TAG_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "{} texts in one batch; the limit is {MAX_TAG_BATCH}",
                request.tickets.len()
            ),
        ));
    }
    let texts = request
        .tickets
        .iter()
        .map(TextToTag::text)
        .collect::<Result<Vec<_>, _>>()?;
    let tagged = tag(
        &state,
        authorized.project.id,
        texts,
        request.rules.unwrap_or(true),
        explain,
    )
    .await?;
    Ok(ApiJson(TaggedBatch { results: tagged }))
}

/// A stored ticket and the verdict on it.
#[derive(Serialize, ToSchema)]
pub struct IngestedAndTagged {
    id: TicketId,
    created: bool,
    #[serde(flatten)]
    tagged: Tagged,
}

pub async fn ingest_and_tag(
    State(state): State<AppState>,
    authorized: Authorized<scope::Tag>,
    ApiQuery(params): ApiQuery<ExplainParams>,
    ApiJson(request): ApiJson<IngestTicket>,
) -> Result<(StatusCode, ApiJson<IngestedAndTagged>), ApiError> {
    let explain = params.request()?;
    let ticket = request.into_new_ticket();
    let stored = ingest::ingest_and_tag(
        &state.store,
        &state.tagging,
        authorized.project.id,
        &ticket,
        WithoutModel::Refuse,
        explain,
    )
    .await?;
    if let Some(queue) = &state.jobs {
        crate::outgoing_webhooks::push_all(queue, &stored.webhook_deliveries).await;
    }
    let tagged = stored
        .tagged
        .ok_or_else(|| ApiError::invalid("nothing was tagged"))?;
    let status = if stored.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        ApiJson(IngestedAndTagged {
            id: stored.id,
            created: stored.created,
            tagged,
        }),
    ))
}
