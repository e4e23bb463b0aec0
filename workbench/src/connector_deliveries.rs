//! Receiving help desks' webhook deliveries, before any HTTP concern: verify the signature,
//! read the payload, deduplicate, keep deliveries in the vendor's order, store the ticket
//! through the one ingest path (tagged inline when a model is in service), import the
//! vendor's labels that match project tags, and log the delivery.

use crate::config::Config;
use crate::credentials::{CredentialError, CredentialKey};
use crate::ingest::{self, IngestError, WithoutModel};
use crate::state::AppState;
use connectors::{Delivery, IncomingTicket, ParseError};
use datasets::connector::{
    Connector, ConnectorName, ConnectorTicket, DeliveryClaim, DeliveryStatus,
};
use datasets::limits::{MAX_BODY_BYTES, MAX_SUBJECT_CHARS};
use datasets::{
    AnyStore, ConnectorId, ConnectorStore, DeliveryId, Store, StoreError, TagId, TicketId,
};
use inference::service::TaggingService;
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
    /// The ticket was stored (and tagged when `tagged`).
    Stored {
        ticket: TicketId,
        created: bool,
        tagged: bool,
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
    let claimed = match state
        .store
        .claim_delivery(connector.id, &dedupe_key, &event, ABANDONED_AFTER)
        .await?
    {
        DeliveryClaim::New(claimed) => claimed,
        DeliveryClaim::Duplicate(earlier) => {
            tracing::info!(status = earlier.status.as_str(), "redelivery acknowledged");
            return Ok(Received::Duplicate {
                status: earlier.status,
                ticket: earlier.ticket_id,
            });
        }
    };
    let outcome = process(state, &connector, claimed, delivery).await;
    if outcome.is_err() {
        // Forget the claim, so the vendor's retry of this delivery is processed in full.
        if let Err(error) = state.store.release_delivery(claimed).await {
            tracing::warn!(%error, "could not release a failed delivery");
        }
    }
    outcome
}

async fn process(
    state: &AppState,
    connector: &Connector,
    claimed: DeliveryId,
    delivery: Delivery,
) -> Result<Received, DeliveryError> {
    let incoming = match delivery {
        Delivery::Ignored { event } => {
            state
                .store
                .finish_delivery(claimed, DeliveryStatus::Ignored, None)
                .await?;
            return Ok(Received::Ignored { event });
        }
        Delivery::TicketReference { external_id, .. } => {
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
            return Ok(Received::AwaitingFetch { external_id });
        }
        Delivery::Ticket(incoming) => incoming,
    };
    let lock = state
        .connectors
        .ticket_lock(connector.id, &incoming.external_id);
    let _one_at_a_time = lock.lock().await;
    let stored = store_incoming(
        &state.store,
        &state.tagging,
        connector,
        &incoming,
        WriteBack::Queue,
    )
    .await?;
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
    state
        .store
        .finish_delivery(claimed, DeliveryStatus::Stored, Some(stored.ticket))
        .await?;
    if let Some(queue) = &state.jobs {
        crate::outgoing_webhooks::push_all(queue, &stored.webhook_deliveries).await;
    }
    // Queued after the delivery is settled: the vendor's answer never waits on the queue.
    if let Some(writeback) = stored.writeback {
        match &state.jobs {
            Some(queue) => {
                crate::connector_jobs::push(queue, writeback, std::time::Duration::ZERO).await
            }
            None => {
                tracing::warn!(%writeback, "no job queue in this process: the write-back waits for a worker")
            }
        }
    }
    Ok(Received::Stored {
        ticket: stored.ticket,
        created: stored.created,
        tagged: stored.tagged,
        imported_labels: stored.imported_labels,
    })
}

/// Whether storing a help desk's ticket queues the write-back of the model's tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteBack {
    /// A live ticket (a webhook, a fetch): the connector's write-back setting decides.
    Queue,
    /// History read by a backfill: its tickets were handled by people long ago; the model's
    /// tags are kept here but never written to them.
    Never,
}

/// A help desk's ticket as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIncoming {
    pub ticket: TicketId,
    pub created: bool,
    pub tagged: bool,
    pub imported_labels: usize,
    /// A write-back queued for the model's tags; its job is the caller's to push.
    pub writeback: Option<datasets::WriteBackId>,
    /// Events queued for the project's webhooks; their jobs are the caller's to push.
    pub webhook_deliveries: Vec<datasets::WebhookDeliveryId>,
}

/// Stores a help desk's ticket through the one ingest path, wherever it came from (a
/// webhook, a fetch after a trigger, a backfill): tagged when a model is in service, the
/// vendor's labels that match project tags imported (our own echoes left out), the vendor's
/// change time kept, and the model's tags queued for write-back when the connector writes
/// back. `None` when the stored version is newer (nothing changed).
pub async fn store_incoming(
    store: &AnyStore,
    tagging: &TaggingService,
    connector: &Connector,
    incoming: &IncomingTicket,
    write_back: WriteBack,
) -> Result<Option<StoredIncoming>, DeliveryError> {
    let known = store
        .connector_ticket(connector.id, &incoming.external_id)
        .await?;
    if let Some(known) = &known
        && is_older(incoming, known)
    {
        return Ok(None);
    }
    let ticket = ticket_to_store(connector, incoming);
    let stored = ingest::ingest_and_tag(
        store,
        tagging,
        connector.project_id,
        &ticket,
        WithoutModel::StoreUntagged,
    )
    .await?;
    let imported = imported_tags(store, connector, incoming, known.as_ref()).await?;
    store
        .record_connector_ticket(
            connector,
            &incoming.external_id,
            stored.id,
            incoming.updated_at,
            &imported,
        )
        .await?;
    let writeback = match &stored.tagged {
        Some(tagged) if write_back == WriteBack::Queue => {
            let applied: Vec<String> = tagged
                .decision
                .applied
                .iter()
                .map(|tag| tag.as_str().to_string())
                .collect();
            crate::connector_jobs::queue_for_ticket(
                store,
                connector,
                &incoming.external_id,
                stored.id,
                &applied,
            )
            .await?
        }
        _ => None,
    };
    Ok(Some(StoredIncoming {
        ticket: stored.id,
        created: stored.created,
        tagged: stored.tagged.is_some(),
        imported_labels: imported.len(),
        writeback,
        webhook_deliveries: stored.webhook_deliveries,
    }))
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
/// our own write-back put there are left out: they are the model's tags coming back, not a
/// person's judgement, and must not become imported labels (the echo-loop guard).
async fn imported_tags(
    store: &AnyStore,
    connector: &Connector,
    incoming: &IncomingTicket,
    known: Option<&ConnectorTicket>,
) -> Result<Vec<TagId>, StoreError> {
    let taxonomy: Vec<datasets::Tag> = store
        .list_tags(connector.project_id)
        .await?
        .into_iter()
        .filter(|tag| !tag.archived)
        .collect();
    let names: Vec<&str> = taxonomy.iter().map(|tag| tag.name.as_str()).collect();
    let written: Vec<String> = known
        .map(|known| {
            known
                .written_labels
                .iter()
                .map(|l| l.to_lowercase())
                .collect()
        })
        .unwrap_or_default();
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
    Ok(tags)
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
