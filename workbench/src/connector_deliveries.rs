//! Receiving help desks' webhook deliveries, before any HTTP concern: verify the signature,
//! read the payload, deduplicate, keep deliveries in the vendor's order, store the ticket
//! through the one ingest path with the vendor's labels that match project tags, queue the
//! job that tags it and writes the tags back, and log the delivery. The vendor is answered
//! once the ticket and its job are stored; no model runs while it waits.

use crate::config::Config;
use crate::credentials::{CredentialError, CredentialKey};
use crate::ingest::{self, IngestError};
use crate::state::AppState;
use connectors::{Delivery, IncomingTicket, ParseError};
use datasets::connector::{
    ClaimedTicket, Connector, ConnectorName, ConnectorTicket, ConnectorTicketStored,
    ConnectorTicketWrite, DeliveryClaim, DeliveryRecord, DeliveryStatus,
};
use datasets::limits::{MAX_BODY_BYTES, MAX_SUBJECT_CHARS};
use datasets::store::prelude::*;
use datasets::{AnyStore, ConnectorId, ConnectorStore, DeliveryId, StoreError, TagId, TicketId};
use inference::service::{ServiceError, TaggingService};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The largest webhook body accepted. Zendesk caps its payloads at 256 KB; a Jira issue with
/// a long description and many custom fields stays well under this.
pub const MAX_WEBHOOK_BYTES: usize = 2 * 1024 * 1024;

/// Per (connector, vendor ticket id), the lock its deliveries take; entries of finished
/// deliveries are dropped as the map is next written.
type TicketLocks = HashMap<(ConnectorId, String), Weak<tokio::sync::Mutex<()>>>;

/// A claimed delivery not finished after this long was abandoned by a process that died
/// (processing one takes milliseconds); the vendor's next retry processes it again.
const ABANDONED_AFTER: chrono::Duration = chrono::Duration::seconds(60);

/// How many of the vendor's labels a ticket's metadata keeps, and how long each may be.
const MAX_METADATA_LABELS: usize = 100;
const MAX_LABEL_CHARS: usize = 255;

/// What the server keeps for connectors between deliveries.
#[derive(Default)]
pub struct ConnectorRuntime {
    key: OnceLock<CredentialKey>,
    /// One lock per (connector, vendor ticket): two deliveries about the same ticket are
    /// processed one after the other, so the order check and the write cannot interleave.
    ticket_locks: Mutex<TicketLocks>,
}

impl ConnectorRuntime {
    /// The credentials key, loaded on first use (a server without connectors never needs one).
    pub fn key(&self, config: &Config) -> Result<CredentialKey, CredentialError> {
        if let Some(key) = self.key.get() {
            return Ok(key.clone());
        }
        let key = CredentialKey::load(config)?;
        Ok(self.key.get_or_init(|| key).clone())
    }

    fn ticket_lock(
        &self,
        connector: ConnectorId,
        external_id: &str,
    ) -> Arc<tokio::sync::Mutex<()>> {
        // A poisoned map only means another delivery panicked; the map itself is still sound.
        let mut locks = self
            .ticket_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (connector, external_id.to_string());
        if let Some(lock) = locks.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        locks.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key, Arc::downgrade(&lock));
        lock
    }
}

/// What became of a delivery that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// The ticket was stored untagged; a job tags it and writes the tags back (queued when
    /// `tag_queued`: a process without a job queue only stores).
    Stored {
        ticket: TicketId,
        created: bool,
        tag_queued: bool,
        imported_labels: usize,
    },
    /// Delivered before (a vendor's retry): nothing new stored.
    Duplicate {
        status: DeliveryStatus,
        ticket: Option<TicketId>,
    },
    /// Older than the version already stored: nothing changed.
    Stale { ticket: TicketId },
    /// Not about a ticket.
    Ignored { event: String },
    /// Names a ticket to fetch from the help desk, which this version does not do yet.
    AwaitingFetch { external_id: String },
}

/// Why a delivery was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// One answer for an unknown connector and a bad signature, so names cannot be probed.
    #[error("the delivery's signature does not verify, or no connector has this name")]
    Unauthenticated,
    #[error(transparent)]
    BadPayload(#[from] ParseError),
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the tagging job could not be queued: {0}")]
    Queue(String),
}

/// Handles one delivery to the connector called `name`; `header` looks a request header up
/// by its lower-case name, `body` is the raw body exactly as received.
#[tracing::instrument(skip_all, fields(connector = %name))]
pub async fn receive<'h>(
    state: &AppState,
    name: &str,
    header: impl Fn(&'static str) -> Option<&'h str>,
    body: &[u8],
) -> Result<Received, DeliveryError> {
    let name = ConnectorName::parse(name).map_err(|_| DeliveryError::Unauthenticated)?;
    let Some(connector) = state.store.connector_by_name(&name).await? else {
        tracing::info!("delivery to an unknown connector refused");
        return Err(DeliveryError::Unauthenticated);
    };
    let key = state.connectors.key(&state.config)?;
    let credentials = key.open(connector.name.as_str(), &connector.sealed_credentials)?;
    if let Err(error) = connectors::verify_signature(
        connector.system,
        credentials.webhook_secret.as_bytes(),
        &header,
        body,
    ) {
        tracing::info!(%error, "delivery with a bad signature refused");
        return Err(DeliveryError::Unauthenticated);
    }
    let delivery = connectors::parse_delivery(connector.system, body)?;
    let dedupe_key = connectors::dedupe_key(connector.system, &header, body);
    let event = match &delivery {
        Delivery::Ticket(ticket) => ticket.event.as_str().to_string(),
        Delivery::TicketReference { event, .. } => event.as_str().to_string(),
        Delivery::Ignored { event } => event.clone(),
    };
    let without_ticket = match delivery {
        Delivery::Ticket(incoming) => {
            return receive_ticket(state, &connector, &dedupe_key, &event, &incoming).await;
        }
        Delivery::Ignored { event } => WithoutTicket::Ignored { event },
        Delivery::TicketReference { external_id, .. } => WithoutTicket::Reference { external_id },
    };
    let claimed = match state
        .store
        .claim_delivery(connector.id, &dedupe_key, &event, ABANDONED_AFTER)
        .await?
    {
        DeliveryClaim::New(claimed) => claimed,
        DeliveryClaim::Duplicate(earlier) => return Ok(duplicate(earlier)),
    };
    let outcome = settle_without_ticket(state, &connector, claimed, without_ticket).await;
    if outcome.is_err() {
        release(state, claimed).await;
    }
    outcome
}

fn duplicate(earlier: DeliveryRecord) -> Received {
    tracing::info!(status = earlier.status.as_str(), "redelivery acknowledged");
    Received::Duplicate {
        status: earlier.status,
        ticket: earlier.ticket_id,
    }
}

/// Forgets a claim, so the vendor's retry of this delivery is processed in full.
async fn release(state: &AppState, claimed: DeliveryId) {
    if let Err(error) = state.store.release_delivery(claimed).await {
        tracing::warn!(%error, "could not release a failed delivery");
    }
}

/// A delivery that carries no ticket.
enum WithoutTicket {
    /// Not about a ticket.
    Ignored { event: String },
    /// Names its ticket only; the worker fetches it.
    Reference { external_id: String },
}

async fn settle_without_ticket(
    state: &AppState,
    connector: &Connector,
    claimed: DeliveryId,
    delivery: WithoutTicket,
) -> Result<Received, DeliveryError> {
    match delivery {
        WithoutTicket::Ignored { event } => {
            state
                .store
                .finish_delivery(claimed, DeliveryStatus::Ignored, None)
                .await?;
            Ok(Received::Ignored { event })
        }
        WithoutTicket::Reference { external_id } => {
            // The body names the ticket only (a Zendesk trigger): the worker fetches it over
            // REST, so the help desk's request is answered at once.
            state
                .store
                .finish_delivery(claimed, DeliveryStatus::AwaitingFetch, None)
                .await?;
            match &state.jobs {
                Some(queue) => {
                    crate::connector_jobs::push_fetch(
                        queue,
                        connector.id,
                        &external_id,
                        claimed,
                        0,
                        std::time::Duration::ZERO,
                    )
                    .await
                }
                None => tracing::warn!(
                    ticket = %external_id,
                    "no job queue in this process: the ticket named by the delivery is not fetched"
                ),
            }
            Ok(Received::AwaitingFetch { external_id })
        }
    }
}

/// A delivery that carries its ticket: claimed and stored in one transaction (a retry of a
/// delivery whose transaction failed finds nothing claimed), then its tagging job queued and
/// the delivery settled.
async fn receive_ticket(
    state: &AppState,
    connector: &Connector,
    dedupe_key: &str,
    event: &str,
    incoming: &IncomingTicket,
) -> Result<Received, DeliveryError> {
    let lock = state
        .connectors
        .ticket_lock(connector.id, &incoming.external_id);
    let _one_at_a_time = lock.lock().await;
    let (claimed, stored) = match incoming_write(&state.store, connector, incoming).await? {
        Some(write) => {
            match state
                .store
                .claim_and_store_delivery(connector, dedupe_key, event, ABANDONED_AFTER, &write)
                .await?
            {
                ClaimedTicket::Duplicate(earlier) => return Ok(duplicate(earlier)),
                ClaimedTicket::New { delivery, stored } => {
                    (delivery, stored_incoming(stored, write.imported.len()))
                }
            }
        }
        // Older than the version stored: claimed, so a retry is known as one, and settled.
        None => match state
            .store
            .claim_delivery(connector.id, dedupe_key, event, ABANDONED_AFTER)
            .await?
        {
            DeliveryClaim::Duplicate(earlier) => return Ok(duplicate(earlier)),
            DeliveryClaim::New(claimed) => (claimed, None),
        },
    };
    let outcome = settle_ticket(state, connector, claimed, incoming, stored).await;
    if outcome.is_err() {
        release(state, claimed).await;
    }
    outcome
}

async fn settle_ticket(
    state: &AppState,
    connector: &Connector,
    claimed: DeliveryId,
    incoming: &IncomingTicket,
    stored: Option<StoredIncoming>,
) -> Result<Received, DeliveryError> {
    let Some(stored) = stored else {
        let known = state
            .store
            .connector_ticket(connector.id, &incoming.external_id)
            .await?
            .ok_or_else(|| StoreError::NotFound("the connector ticket just read".into()))?;
        state
            .store
            .finish_delivery(claimed, DeliveryStatus::Stale, Some(known.ticket_id))
            .await?;
        return Ok(Received::Stale {
            ticket: known.ticket_id,
        });
    };
    // Queued before the delivery is settled: a process killed in between leaves the delivery
    // claimed but unfinished, so the vendor's retry stores and queues it again (the stored
    // ticket is the same; a second tag job finds the tags already written).
    let tag_queued = match &state.jobs {
        Some(queue) => push_tag_job(queue, stored.ticket, stored.created).await?,
        None => {
            tracing::warn!(ticket = %stored.ticket, "no job queue in this process: the ticket waits untagged");
            false
        }
    };
    state
        .store
        .finish_delivery(claimed, DeliveryStatus::Stored, Some(stored.ticket))
        .await?;
    Ok(Received::Stored {
        ticket: stored.ticket,
        created: stored.created,
        tag_queued,
        imported_labels: stored.imported_labels,
    })
}

/// Queues the job that tags a stored ticket and writes its tags back. A failed push fails
/// the delivery (released, so the vendor's retry queues it again): a ticket must never be
/// left stored with nothing to tag it.
pub async fn push_tag_job(
    queue: &trainer::jobs::JobQueue,
    ticket: TicketId,
    created: bool,
) -> Result<bool, DeliveryError> {
    queue
        .push_connector(
            trainer::jobs::ConnectorJob::TagTicket {
                ticket_id: ticket,
                created,
            },
            std::time::Duration::ZERO,
        )
        .await
        .map_err(|error| DeliveryError::Queue(error.to_string()))?;
    Ok(true)
}

/// A help desk's ticket as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIncoming {
    pub ticket: TicketId,
    pub created: bool,
    pub imported_labels: usize,
}

/// Stores a live help desk's ticket (a webhook's, a fetch's) untagged, in one transaction with
/// the vendor's labels that match project tags (our own echoes left out) and the vendor's
/// change time; the caller queues the job that tags it (`push_tag_job`). `None` when the
/// stored version is newer (nothing changed).
pub async fn store_incoming(
    store: &AnyStore,
    connector: &Connector,
    incoming: &IncomingTicket,
) -> Result<Option<StoredIncoming>, DeliveryError> {
    let Some(write) = incoming_write(store, connector, incoming).await? else {
        return Ok(None);
    };
    let stored = store
        .store_connector_tickets(connector, std::slice::from_ref(&write))
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound("the ticket just stored".into()))?;
    Ok(stored_incoming(stored, write.imported.len()))
}

/// The write that stores a live help desk's ticket with the vendor's labels that match
/// project tags (our own echoes left out); `None` when the stored version is newer.
async fn incoming_write(
    store: &AnyStore,
    connector: &Connector,
    incoming: &IncomingTicket,
) -> Result<Option<ConnectorTicketWrite>, DeliveryError> {
    // A delivery without labels (most tickets as they are created) has nothing to map: no
    // taxonomy or echo read for it; its order is checked in the write's transaction.
    let imported = if carries_labels(connector, incoming) {
        let known = store
            .connector_ticket(connector.id, &incoming.external_id)
            .await?;
        if let Some(known) = &known
            && is_older(incoming, known)
        {
            return Ok(None);
        }
        let taxonomy = live_tags(store, connector).await?;
        let written = known.map(|known| known.written_labels).unwrap_or_default();
        imported_tags(connector, &taxonomy, incoming, &written)
    } else {
        Vec::new()
    };
    let write = ConnectorTicketWrite {
        ticket: ticket_to_store(connector, incoming),
        vendor_updated_at: incoming.updated_at,
        imported,
        model_labels: None,
    };
    write.ticket.validate().map_err(IngestError::from)?;
    Ok(Some(write))
}

fn stored_incoming(
    stored: ConnectorTicketStored,
    imported_labels: usize,
) -> Option<StoredIncoming> {
    match stored {
        ConnectorTicketStored::Stored(stored) => Some(StoredIncoming {
            ticket: stored.id,
            created: stored.created,
            imported_labels,
        }),
        // A newer delivery was stored between the look and the write.
        ConnectorTicketStored::Stale(_) => None,
    }
}

/// What a page of history did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageStored {
    pub stored: u64,
    /// Tickets left out: a newer version stored already, or not storable.
    pub skipped: u64,
}

/// Stores a page of a help desk's history (a backfill, already a job): the page's texts
/// tagged in one batch when a model is in service, and every ticket stored with its model
/// labels and imported labels in one transaction. History is never written back: its
/// tickets were handled by people long ago.
#[tracing::instrument(skip_all, fields(connector = %connector.name, tickets = page.len()))]
pub async fn store_page(
    store: &AnyStore,
    tagging: &TaggingService,
    connector: &Connector,
    page: &[IncomingTicket],
) -> Result<PageStored, DeliveryError> {
    let mut counts = PageStored::default();
    let taxonomy = live_tags(store, connector).await?;
    let mut writes = Vec::with_capacity(page.len());
    for incoming in page {
        let ticket = ticket_to_store(connector, incoming);
        if let Err(error) = ticket.validate() {
            tracing::warn!(ticket = %incoming.external_id, %error, "a backfilled ticket was not stored");
            counts.skipped += 1;
            continue;
        }
        let imported = if carries_labels(connector, incoming) {
            // Labels our write-back put on a ticket a webhook brought are not imported.
            let written = store
                .connector_ticket(connector.id, &incoming.external_id)
                .await?
                .map(|known| known.written_labels)
                .unwrap_or_default();
            imported_tags(connector, &taxonomy, incoming, &written)
        } else {
            Vec::new()
        };
        writes.push(ConnectorTicketWrite {
            ticket,
            vendor_updated_at: incoming.updated_at,
            imported,
            model_labels: None,
        });
    }
    let texts: Vec<String> = writes.iter().map(|write| write.ticket.text()).collect();
    let verdicts = if texts.is_empty() {
        Vec::new()
    } else {
        match ingest::tag(store, tagging, connector.project_id, texts, true, None).await {
            Ok(verdicts) => verdicts,
            Err(ServiceError::NoModel(_)) => Vec::new(),
            Err(error) => return Err(IngestError::from(error).into()),
        }
    };
    let all_tags = store.list_tags(connector.project_id).await?;
    for (write, verdict) in writes.iter_mut().zip(&verdicts) {
        write.model_labels = Some((verdict.version, ingest::applied_tags(&all_tags, verdict)));
    }
    let stored = store.store_connector_tickets(connector, &writes).await?;
    let notify = ingest::notifies_tagged(store, connector.project_id).await?;
    for (index, outcome) in stored.iter().enumerate() {
        match outcome {
            ConnectorTicketStored::Stored(ticket) => {
                counts.stored += 1;
                if let (true, Some(verdict)) = (notify, verdicts.get(index)) {
                    let write = &writes[index];
                    // Their jobs are pushed by the next worker that starts (`requeue_lost_jobs`).
                    ingest::queue_tagged_event(
                        store,
                        connector.project_id,
                        ticket.id,
                        &write.ticket.source,
                        &write.ticket.external_id,
                        ticket.created,
                        verdict,
                    )
                    .await?;
                }
            }
            ConnectorTicketStored::Stale(_) => counts.skipped += 1,
        }
    }
    Ok(counts)
}

/// Whether the delivery carries labels or imported fields that may map to project tags.
fn carries_labels(connector: &Connector, incoming: &IncomingTicket) -> bool {
    !incoming.labels.is_empty()
        || incoming.fields.iter().any(|(field, _)| {
            connector
                .settings
                .import_fields
                .iter()
                .any(|wanted| wanted == field)
        })
}

/// The project's tags that are not archived: the ones a vendor's label may stand for.
async fn live_tags(
    store: &AnyStore,
    connector: &Connector,
) -> Result<Vec<datasets::Tag>, StoreError> {
    Ok(store
        .list_tags(connector.project_id)
        .await?
        .into_iter()
        .filter(|tag| !tag.archived)
        .collect())
}

/// Whether the delivery describes an older state of the ticket than the one stored. A
/// delivery without a time cannot be ordered and is taken as news.
fn is_older(incoming: &IncomingTicket, known: &ConnectorTicket) -> bool {
    matches!(
        (incoming.updated_at, known.vendor_updated_at),
        (Some(incoming), Some(stored)) if incoming < stored
    )
}

/// `text` cut to at most `max_bytes` bytes, at a character boundary.
fn truncated(mut text: String, max_bytes: usize) -> String {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The vendor's ticket as one of ours: its source is the connector's name, so (project,
/// connector, vendor id) is the ticket's key. Over-long texts are cut rather than refused: a
/// refusal would make the vendor retry a delivery that can never succeed.
fn ticket_to_store(connector: &Connector, incoming: &IncomingTicket) -> datasets::NewTicket {
    let mut subject: String = incoming.subject.chars().take(MAX_SUBJECT_CHARS).collect();
    let body = truncated(incoming.body.clone(), MAX_BODY_BYTES);
    if subject.trim().is_empty() && body.trim().is_empty() {
        subject = incoming
            .reference
            .clone()
            .unwrap_or_else(|| format!("{} ticket {}", connector.system, incoming.external_id));
    }
    // Kept well inside the metadata limits (64 KiB, no NUL), whatever the vendor sent.
    let clean = |text: &str| -> String {
        datasets::ticket::replace_nul_characters(text.chars().take(MAX_LABEL_CHARS).collect())
    };
    let metadata = serde_json::json!({
        "connector": connector.name.as_str(),
        "system": connector.system.as_str(),
        "reference": incoming.reference.as_deref().map(clean),
        "vendor_labels": incoming.labels.iter().take(MAX_METADATA_LABELS).map(|l| clean(l)).collect::<Vec<_>>(),
    });
    ingest::new_ticket(
        connector.name.ticket_source().to_string(),
        incoming.external_id.clone(),
        subject,
        body,
        metadata,
        incoming.created_at,
    )
}

/// The project tags the vendor's labels stand for, through the connector's mapping. Labels
/// our own write-back put there (`written`) are left out: they are the model's tags coming
/// back, not a person's judgement, and must not become imported labels (the echo-loop guard).
fn imported_tags(
    connector: &Connector,
    taxonomy: &[datasets::Tag],
    incoming: &IncomingTicket,
    written: &[String],
) -> Vec<TagId> {
    let names: Vec<&str> = taxonomy.iter().map(|tag| tag.name.as_str()).collect();
    let written: Vec<String> = written.iter().map(|l| l.to_lowercase()).collect();
    let mut tags: Vec<TagId> = Vec::new();
    // The fields the connector was set to import count as labels (a Jira issue type "Bug"
    // is the project's tag "Bug" as much as a label "bug" is).
    let wanted = &connector.settings.import_fields;
    let field_values = incoming
        .fields
        .iter()
        .filter(|(field, _)| wanted.iter().any(|w| w == field))
        .map(|(_, value)| value);
    for label in incoming.labels.iter().chain(field_values) {
        if written.contains(&label.to_lowercase()) {
            continue;
        }
        let Some(name) =
            connector
                .settings
                .mapping
                .to_project(connector.system, label, names.as_slice())
        else {
            continue;
        };
        if let Some(tag) = taxonomy.iter().find(|tag| tag.name.as_str() == name)
            && !tags.contains(&tag.id)
        {
            tags.push(tag.id);
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use connectors::{EventKind, System};
    use datasets::ProjectId;
    use datasets::connector::ConnectorSettings;

    #[test]
    fn whatever_the_vendor_sends_is_made_storable() {
        let connector = Connector {
            id: ConnectorId(1),
            project_id: ProjectId(1),
            name: ConnectorName::parse("acme-zendesk").unwrap(),
            system: System::Zendesk,
            base_url: "https://acme.zendesk.com".into(),
            settings: ConnectorSettings::default(),
            sealed_credentials: vec![1],
            created_at: chrono::Utc::now(),
        };
        let incoming = IncomingTicket {
            external_id: "7".into(),
            reference: Some("ref\0".into()),
            subject: String::new(),
            body: "é".repeat(MAX_BODY_BYTES),
            labels: vec!["nul\0".into(), "y".repeat(300)],
            fields: Vec::new(),
            updated_at: None,
            created_at: None,
            event: EventKind::Created,
        };
        let ticket = ticket_to_store(&connector, &incoming);
        assert_eq!(ticket.validate(), Ok(()));
        assert_eq!(ticket.source, "acme-zendesk");
        assert!(ticket.body.len() <= MAX_BODY_BYTES && ticket.body.starts_with('é'));
        assert_eq!(ticket.metadata["vendor_labels"][0], "nul\u{fffd}");
        assert_eq!(
            ticket.metadata["vendor_labels"][1].as_str().map(str::len),
            Some(MAX_LABEL_CHARS)
        );

        let empty = IncomingTicket {
            body: String::new(),
            reference: None,
            ..incoming
        };
        assert_eq!(
            ticket_to_store(&connector, &empty).subject,
            "zendesk ticket 7"
        );
    }

    #[test]
    fn texts_are_cut_at_character_boundaries() {
        assert_eq!(truncated("héllo".into(), 2), "h");
        assert_eq!(truncated("héllo".into(), 3), "hé");
        assert_eq!(truncated("short".into(), 100), "short");
    }
}
