//! The one ingest path: a ticket from any source is built by `new_ticket` and tagged here.
//! The `/v1` API's ticket is tagged with the project's promoted model and stored together
//! with the model's labels in one transaction; a help desk's ticket, stored at once by its
//! connector, is tagged by a job (`tag_stored`) with the same verdict, labels and events;
//! batches (a file import, the browser's upload, the demo) go through
//! `datasets::ingest::write_batch`, which stores each ticket with the verdict
//! `ServiceVerdicts` gives, in the batch's transaction.

use chrono::{DateTime, Utc};
use datasets::split::{DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, split_by_key};
use datasets::store::prelude::*;
use datasets::ticket::replace_nul_characters;
use datasets::{AnyStore, NewTicket, ProjectId, StoreError, TagId, TicketId, WebhookStore};
use inference::service::{ExplainRequest, ServiceError, Tagged, TaggingService};

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

/// The verdicts of the project's model in service for a batch of tickets, for
/// `datasets::ingest::write_batch`: the same tagging, rules and applied tags as a ticket from
/// the API.
pub struct ServiceVerdicts<'a> {
    pub store: &'a AnyStore,
    pub tagging: &'a TaggingService,
}

impl datasets::ingest::Verdicts for ServiceVerdicts<'_> {
    async fn verdicts(
        &self,
        project: &datasets::Project,
        tickets: &[NewTicket],
    ) -> Result<Option<Vec<datasets::ingest::ModelVerdict>>, datasets::ingest::VerdictError> {
        let failed =
            |error: &dyn std::fmt::Display| datasets::ingest::VerdictError(error.to_string());
        let texts = tickets.iter().map(NewTicket::text).collect();
        let tagged = match tag(self.store, self.tagging, project.id, texts, true, None).await {
            Ok(tagged) => tagged,
            Err(ServiceError::NoModel(_)) => return Ok(None),
            Err(error) => return Err(failed(&error)),
        };
        let taxonomy = self
            .store
            .list_tags(project.id)
            .await
            .map_err(|error| failed(&error))?;
        Ok(Some(
            tagged
                .iter()
                .map(|tagged| datasets::ingest::ModelVerdict {
                    version: tagged.version,
                    tags: applied_tags(&taxonomy, tagged),
                })
                .collect(),
        ))
    }
}

/// Tags texts with the project's model in service, explaining the verdicts when `explain`
/// asks. A project this process has not loaded yet (promoted elsewhere since start-up, before
/// the watcher's next look) is loaded on demand.
pub async fn tag(
    store: &AnyStore,
    tagging: &TaggingService,
    project: ProjectId,
    texts: Vec<String>,
    rules: bool,
    explain: Option<ExplainRequest>,
) -> Result<Vec<Tagged>, ServiceError> {
    if tagging.serving(project).is_none() {
        tagging.sync_project(store, project).await?;
    }
    match explain {
        Some(explain) => tagging.tag_explained(project, texts, rules, explain).await,
        None => tagging.tag(project, texts, rules).await,
    }
}

/// Validates, tags and stores one ticket (idempotent on its source and external id); the
/// verdict is explained when `explain` asks.
#[tracing::instrument(skip_all, fields(project = %project))]
pub async fn ingest_and_tag(
    store: &AnyStore,
    tagging: &TaggingService,
    project: ProjectId,
    ticket: &NewTicket,
    without_model: WithoutModel,
    explain: Option<ExplainRequest>,
) -> Result<Ingested, IngestError> {
    ticket.validate()?;
    // Tag first: a ticket is stored only with the verdict, so the two never disagree.
    let tagged = match tag(store, tagging, project, vec![ticket.text()], true, explain).await {
        Ok(mut tagged) => Some(tagged.pop().ok_or(IngestError::NothingTagged)?),
        Err(ServiceError::NoModel(_)) if without_model == WithoutModel::StoreUntagged => None,
        Err(error) => return Err(error.into()),
    };
    let Some(tagged) = tagged else {
        let stored = store_untagged(store, project, ticket).await?;
        return Ok(Ingested {
            id: stored.id,
            created: stored.created,
            tagged: None,
            webhook_deliveries: Vec::new(),
        });
    };
    let applied = applied_tag_ids(store, project, &tagged).await?;
    // One transaction: a crash never leaves the ticket stored without its model labels.
    let stored = store
        .upsert_ticket_with_model_labels(project, ticket, tagged.version, &applied)
        .await?;
    let webhook_deliveries = queue_tagged_event(
        store,
        project,
        stored.id,
        &ticket.source,
        &ticket.external_id,
        stored.created,
        &tagged,
    )
    .await?;
    Ok(Ingested {
        id: stored.id,
        created: stored.created,
        tagged: Some(tagged),
        webhook_deliveries,
    })
}

/// Validates and stores one ticket without a verdict (idempotent on its source and external
/// id): a project without a model keeps the ticket as training data.
async fn store_untagged(
    store: &AnyStore,
    project: ProjectId,
    ticket: &NewTicket,
) -> Result<datasets::UpsertedTicket, IngestError> {
    ticket.validate()?;
    Ok(store
        .upsert_tickets(project, std::slice::from_ref(ticket))
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound("the ticket just stored".into()))?)
}

/// Tags a stored ticket with the project's model in service and replaces its model labels
/// (the job that follows a help desk's delivery); `None` when no model is in service.
#[tracing::instrument(skip_all, fields(project = %project, ticket = %ticket.id))]
pub async fn tag_stored(
    store: &AnyStore,
    tagging: &TaggingService,
    project: ProjectId,
    ticket: &datasets::Ticket,
    created: bool,
) -> Result<Option<Ingested>, IngestError> {
    let tagged = match tag(store, tagging, project, vec![ticket.text()], true, None).await {
        Ok(mut tagged) => tagged.pop().ok_or(IngestError::NothingTagged)?,
        Err(ServiceError::NoModel(_)) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let applied = applied_tag_ids(store, project, &tagged).await?;
    store
        .set_model_labels(project, ticket.id, tagged.version, &applied)
        .await?;
    let webhook_deliveries = queue_tagged_event(
        store,
        project,
        ticket.id,
        &ticket.source,
        &ticket.external_id,
        created,
        &tagged,
    )
    .await?;
    Ok(Some(Ingested {
        id: ticket.id,
        created,
        tagged: Some(tagged),
        webhook_deliveries,
    }))
}

/// The project tags a verdict applies, with their probabilities.
async fn applied_tag_ids(
    store: &AnyStore,
    project: ProjectId,
    tagged: &Tagged,
) -> Result<Vec<(TagId, f32)>, StoreError> {
    Ok(applied_tags(&store.list_tags(project).await?, tagged))
}

/// The tags of `taxonomy` (the project's) a verdict applies, with their probabilities.
pub fn applied_tags(taxonomy: &[datasets::Tag], tagged: &Tagged) -> Vec<(TagId, f32)> {
    tagged
        .decision
        .scores
        .iter()
        .filter(|score| score.applied)
        .filter_map(|score| {
            let tag = taxonomy.iter().find(|t| t.name == score.tag)?;
            Some((tag.id, score.probability))
        })
        .collect()
}

/// Whether any of the project's webhooks listens for `ticket.tagged` (a batch asks once).
pub async fn notifies_tagged(store: &AnyStore, project: ProjectId) -> Result<bool, StoreError> {
    Ok(store.webhooks(Some(project)).await?.iter().any(|webhook| {
        webhook
            .events
            .iter()
            .any(|e| e == datasets::webhook::TICKET_TAGGED)
    }))
}

/// Queues the `ticket.tagged` event for the project's webhooks, after the verdict is
/// committed: a subscriber never hears of a ticket that is not stored.
pub async fn queue_tagged_event(
    store: &AnyStore,
    project: ProjectId,
    ticket: TicketId,
    source: &str,
    external_id: &str,
    created: bool,
    tagged: &Tagged,
) -> Result<Vec<datasets::WebhookDeliveryId>, StoreError> {
    let payload = serde_json::json!({
        "project_id": project,
        "ticket": {
            "id": ticket,
            "source": source,
            "external_id": external_id,
            "created": created,
        },
        "model_version": tagged.version,
        "applied": tagged.decision.applied,
        "needs_review": tagged.decision.needs_review,
        "review_reason": tagged.decision.review_reason,
        "scores": tagged.decision.scores,
    });
    store
        .queue_webhook_event(project, datasets::webhook::TICKET_TAGGED, &payload)
        .await
}
