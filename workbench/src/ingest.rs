//! The one ingest path: a ticket from any source (the `/v1` API, the connectors' webhooks)
//! is tagged with the project's promoted model and stored together with the model's labels
//! in one transaction. No other module stores a ticket with its verdict.

use chrono::{DateTime, Utc};
use datasets::split::{DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, split_by_key};
use datasets::ticket::replace_nul_characters;
use datasets::{AnyStore, NewTicket, ProjectId, Store, StoreError, TagId, TicketId, WebhookStore};
use inference::service::{ServiceError, Tagged, TaggingService};

/// A ticket as any source hands it in, made ready to store: NUL characters (which neither
/// database stores) replaced, and its split fixed by its key so it never changes.
pub fn new_ticket(
    source: String,
    external_id: String,
    subject: String,
    body: String,
    metadata: serde_json::Value,
    created_at: Option<DateTime<Utc>>,
) -> NewTicket {
    let split = split_by_key(
        DEFAULT_SPLIT_SEED,
        DEFAULT_TEST_FRACTION,
        &format!("{source}:{external_id}"),
    );
    NewTicket {
        source,
        external_id,
        subject: replace_nul_characters(subject),
        body: replace_nul_characters(body),
        metadata,
        created_at,
        split,
    }
}

/// What to do when the project has no model in service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutModel {
    /// Refuse the ticket: the caller asked for a verdict (the API's ingest-and-tag).
    Refuse,
    /// Store it untagged: a help desk keeps sending tickets before the first model exists,
    /// and they are the training data that model will be built from.
    StoreUntagged,
}

/// A stored ticket and, when a model was in service, its verdict.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub id: TicketId,
    /// False when the (source, external id) was already stored and has been updated.
    pub created: bool,
    pub tagged: Option<Tagged>,
    /// The `ticket.tagged` events queued for the project's webhooks; their jobs are the
    /// caller's to push (a worker also finds them when it starts).
    pub webhook_deliveries: Vec<datasets::WebhookDeliveryId>,
}

/// Why a ticket was not ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Invalid(#[from] datasets::ValidationError),
    #[error(transparent)]
    Tagging(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the model returned no verdict")]
    NothingTagged,
}

/// Tags texts with the project's model in service. A project this process has not loaded yet
/// (promoted elsewhere since start-up, before the watcher's next look) is loaded on demand.
pub async fn tag(
    store: &AnyStore,
    tagging: &TaggingService,
    project: ProjectId,
    texts: Vec<String>,
    rules: bool,
) -> Result<Vec<Tagged>, ServiceError> {
    if tagging.serving(project).is_none() {
        tagging.sync_project(store, project).await?;
    }
    tagging.tag(project, texts, rules).await
}

/// Validates, tags and stores one ticket (idempotent on its source and external id).
#[tracing::instrument(skip_all, fields(project = %project))]
pub async fn ingest_and_tag(
    store: &AnyStore,
    tagging: &TaggingService,
    project: ProjectId,
    ticket: &NewTicket,
    without_model: WithoutModel,
) -> Result<Ingested, IngestError> {
    ticket.validate()?;
    // Tag first: a ticket is stored only with the verdict, so the two never disagree.
    let tagged = match tag(store, tagging, project, vec![ticket.text()], true).await {
        Ok(mut tagged) => Some(tagged.pop().ok_or(IngestError::NothingTagged)?),
        Err(ServiceError::NoModel(_)) if without_model == WithoutModel::StoreUntagged => None,
        Err(error) => return Err(error.into()),
    };
    let Some(tagged) = tagged else {
        let stored = store
            .upsert_tickets(project, std::slice::from_ref(ticket))
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound("the ticket just stored".into()))?;
        return Ok(Ingested {
            id: stored.id,
            created: stored.created,
            tagged: None,
            webhook_deliveries: Vec::new(),
        });
    };
    let taxonomy = store.list_tags(project).await?;
    let applied: Vec<(TagId, f32)> = tagged
        .decision
        .scores
        .iter()
        .filter(|score| score.applied)
        .filter_map(|score| {
            let tag = taxonomy.iter().find(|t| t.name == score.tag)?;
            Some((tag.id, score.probability))
        })
        .collect();
    // One transaction: a crash never leaves the ticket stored without its model labels.
    let stored = store
        .upsert_ticket_with_model_labels(project, ticket, tagged.version, &applied)
        .await?;
    let payload = serde_json::json!({
        "project_id": project,
        "ticket": {
            "id": stored.id,
            "source": ticket.source,
            "external_id": ticket.external_id,
            "created": stored.created,
        },
        "model_version": tagged.version,
        "applied": tagged.decision.applied,
        "needs_review": tagged.decision.needs_review,
        "review_reason": tagged.decision.review_reason,
        "scores": tagged.decision.scores,
    });
    // After the commit: a subscriber never hears of a ticket that is not stored.
    let webhook_deliveries = store
        .queue_webhook_event(project, datasets::webhook::TICKET_TAGGED, &payload)
        .await?;
    Ok(Ingested {
        id: stored.id,
        created: stored.created,
        tagged: Some(tagged),
        webhook_deliveries,
    })
}
