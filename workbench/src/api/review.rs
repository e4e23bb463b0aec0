//! The review queue over HTTP: lease the next ranked tickets to a labeller (each with its
//! score, strategy and reason), give one back, and rescore the queue now; label quality:
//! the double-labelling share, agreement, and the disagreements an adjudicator settles.

use super::auth::{Authorized, refuse_user_field, scope};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, from_json_value};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use datasets::store::prelude::*;
use datasets::{
    AnswerKind, LabelledTicket, QueueEntry, ReviewQueueStats, ReviewSettings,
    SECOND_OPINION_STRATEGY, TagName, TicketId,
};
use serde::{Deserialize, Serialize};
use trainer::active::{ScoreError, ScoreOptions, ScoreSummary, Strategy};
use utoipa::{IntoParams, ToSchema};

/// Most tickets one request may lease: one screen of work, not the whole queue.
pub const MAX_LEASE_BATCH: u32 = 100;
/// How long a lease lasts when the request does not say: long enough to label a batch.
pub const DEFAULT_LEASE_SECONDS: u32 = 15 * 60;

/// How many tickets to lease, and for how long.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    #[serde(default = "default_count")]
    #[schema(minimum = 1, maximum = 100, default = 10)]
    count: u32,
    #[serde(default = "default_lease_seconds")]
    #[schema(minimum = 1, maximum = 86400, default = 900)]
    lease_seconds: u32,
    /// Refused when present: the labeller is the key.
    #[serde(default)]
    #[schema(ignore)]
    user: Option<serde::de::IgnoredAny>,
}

impl Default for LeaseRequest {
    fn default() -> Self {
        Self {
            count: default_count(),
            lease_seconds: default_lease_seconds(),
            user: None,
        }
    }
}

/// A JSON body that may be left out: an empty one means the defaults.
fn optional_body<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ApiError::invalid(e.to_string()))?;
        from_json_value(value)
    }
}

fn default_count() -> u32 {
    10
}

fn default_lease_seconds() -> u32 {
    DEFAULT_LEASE_SECONDS
}

/// A leased ticket: why it was chosen, and the ticket with its current labels (the model's
/// suggestions among them).
#[derive(Serialize, ToSchema)]
pub struct LeasedTicket {
    #[serde(flatten)]
    entry: QueueEntry,
    ticket: LabelledTicket,
}

/// The leased tickets, to whom, and the queue's state.
#[derive(Serialize, ToSchema)]
pub struct LeasedBatch {
    user: String,
    tickets: Vec<LeasedTicket>,
    stats: ReviewQueueStats,
}

/// Leases the next tickets to the key's holder: a POST, since it changes what others get.
pub async fn lease(
    State(state): State<AppState>,
    authorized: Authorized<scope::Label>,
    body: axum::body::Bytes,
) -> Result<ApiJson<LeasedBatch>, ApiError> {
    let request: LeaseRequest = optional_body(&body)?;
    refuse_user_field(&request.user)?;
    if request.count == 0 || request.count > MAX_LEASE_BATCH {
        return Err(ApiError::invalid(format!(
            "count must be 1 to {MAX_LEASE_BATCH}, got {}",
            request.count
        )));
    }
    let project = &authorized.project;
    let user = authorized.actor();
    let entries = state
        .store
        .lease_review_tickets(project.id, &user, request.count, request.lease_seconds)
        .await?;
    let mut tickets = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut ticket = state.store.ticket(project.id, entry.ticket_id).await?;
        if entry.strategy == SECOND_OPINION_STRATEGY {
            // A second answer must not be led by the first.
            ticket = ticket.without_human_labels();
        }
        tickets.push(LeasedTicket { entry, ticket });
    }
    Ok(ApiJson(LeasedBatch {
        user,
        tickets,
        stats: state.store.review_queue_stats(project.id).await?,
    }))
}

/// Nothing: only the key's own lease can be given back (`{}` or no body).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Refused when present: only the key's own lease can be given back.
    #[serde(default)]
    #[schema(ignore)]
    user: Option<serde::de::IgnoredAny>,
}

/// Gives back a ticket this key leased (a skip): someone else gets it, the same holder not
/// at once. Another holder's lease is left alone.
pub async fn release(
    State(state): State<AppState>,
    authorized: Authorized<scope::Label>,
    ApiPath((_, ticket)): ApiPath<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let request: ReleaseRequest = optional_body(&body)?;
    refuse_user_field(&request.user)?;
    state
        .store
        .release_review_lease(authorized.project.id, TicketId(ticket), &authorized.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How to rank the queue; every field optional.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// `margin` unless given.
    #[schema(value_type = Option<Strategy>)]
    strategy: Option<String>,
    /// Tickets to keep in the queue.
    #[schema(minimum = 1, maximum = 10000)]
    queue_size: Option<usize>,
    /// The seed of the strategies that draw at random (0 to 2^63 − 1: the document's
    /// integers are 64-bit signed, and clients in most languages hold no more).
    #[schema(minimum = 0)]
    seed: Option<i64>,
}

impl From<ScoreError> for ApiError {
    fn from(error: ScoreError) -> Self {
        match error {
            ScoreError::Store(error) => error.into(),
            ScoreError::Select(_) | ScoreError::QueueSize { .. } => {
                ApiError::invalid(error.to_string())
            }
            ScoreError::Model(_)
            | ScoreError::Artifacts(_)
            | ScoreError::Encoder(_)
            | ScoreError::Worker(_) => {
                tracing::error!(error = %error, "scoring the review queue failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "scoring_failed",
                    error.to_string(),
                )
            }
        }
    }
}

/// Recomputes the queue now, synchronously (the score job does the same after training).
pub async fn score(
    State(state): State<AppState>,
    authorized: Authorized<scope::Train>,
    body: axum::body::Bytes,
) -> Result<ApiJson<ScoreSummary>, ApiError> {
    let request: ScoreRequest = optional_body(&body)?;
    let strategy: Strategy = request
        .strategy
        .as_deref()
        .unwrap_or("margin")
        .parse()
        .map_err(|e: trainer::active::select::UnknownStrategy| ApiError::invalid(e.to_string()))?;
    let defaults = ScoreOptions::default();
    let options = ScoreOptions {
        queue_size: request.queue_size.unwrap_or(defaults.queue_size),
        seed: match request.seed {
            None => defaults.seed,
            Some(seed) => u64::try_from(seed)
                .map_err(|_| ApiError::invalid(format!("seed: {seed} is negative")))?,
        },
        artifacts: state.tagging.artifacts().clone(),
        ..defaults
    };
    Ok(ApiJson(
        trainer::active::score_project(&state.store, authorized.project.id, strategy, &options)
            .await?,
    ))
}

/// Which tickets to compare.
#[derive(Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgreementQuery {
    /// Compare tickets labelled by exactly this many people (2: Cohen's kappa; more: Fleiss').
    #[serde(default = "default_raters")]
    #[param(minimum = 2, maximum = 20, default = 2)]
    raters: usize,
}

fn default_raters() -> usize {
    2
}

/// Per-tag agreement between the people who answered the same tickets.
#[derive(Serialize, ToSchema)]
pub struct Agreement {
    raters: usize,
    /// Per tag: kappa, how many tickets it rests on, and the tickets where people disagreed
    /// (the adjudication list).
    tags: Vec<trainer::active::kappa::TagAgreement>,
}

/// Label quality: per-tag agreement between the people who labelled the same tickets, from
/// each person's latest whole answer.
pub async fn agreement(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
    ApiQuery(query): ApiQuery<AgreementQuery>,
) -> Result<ApiJson<Agreement>, ApiError> {
    if !(2..=20).contains(&query.raters) {
        return Err(ApiError::invalid("raters must be between 2 and 20"));
    }
    let project = authorized.project.id;
    let submissions = state.store.multi_rater_submissions(project).await?;
    let answers = trainer::active::kappa::answers_by_ticket(&submissions);
    let tags: Vec<String> = state
        .store
        .list_tags(project)
        .await?
        .into_iter()
        .filter(|t| !t.archived)
        .map(|t| t.name.as_str().to_string())
        .collect();
    Ok(ApiJson(Agreement {
        raters: query.raters,
        tags: trainer::active::kappa::agreement_per_tag(&answers, &tags, query.raters),
    }))
}

/// The project's review settings (the double-labelling share).
pub async fn settings(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
) -> Result<ApiJson<ReviewSettings>, ApiError> {
    Ok(ApiJson(
        state.store.review_settings(authorized.project.id).await?,
    ))
}

/// Changes the review settings; tickets already drawn for a second opinion stay drawn.
pub async fn update_settings(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiJson(settings): ApiJson<ReviewSettings>,
) -> Result<ApiJson<ReviewSettings>, ApiError> {
    Ok(ApiJson(
        state
            .store
            .set_review_settings(authorized.project.id, &settings)
            .await?,
    ))
}

/// The adjudication list: tickets people answered differently, not yet settled.
pub async fn disagreements(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
) -> Result<ApiJson<Vec<trainer::active::kappa::Disagreement>>, ApiError> {
    let submissions = state
        .store
        .multi_rater_submissions(authorized.project.id)
        .await?;
    Ok(ApiJson(trainer::active::kappa::open_disagreements(
        &submissions,
    )))
}

/// The final labels of a disputed ticket.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Adjudication {
    /// The final tags.
    #[schema(max_items = 100)]
    tags: Vec<TagName>,
    /// Refused when present: the adjudicator is the key.
    #[serde(default)]
    #[schema(ignore)]
    user: Option<serde::de::IgnoredAny>,
}

/// Settles a ticket: the adjudicator's tags become its labels, and the answer is kept out of
/// agreement figures.
pub async fn adjudicate(
    State(state): State<AppState>,
    authorized: Authorized<scope::Label>,
    ApiPath((_, ticket)): ApiPath<(String, i64)>,
    ApiJson(request): ApiJson<Adjudication>,
) -> Result<ApiJson<LabelledTicket>, ApiError> {
    refuse_user_field(&request.user)?;
    let project = authorized.project.id;
    let labelled = state
        .store
        .record_human_answer(
            project,
            TicketId(ticket),
            &request.tags,
            &authorized.actor(),
            AnswerKind::Adjudication,
        )
        .await?;
    state.labels_changed(project, TicketId(ticket), authorized.actor());
    Ok(ApiJson(labelled))
}
