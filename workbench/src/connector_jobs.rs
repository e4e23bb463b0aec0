//! The worker's help-desk jobs: tagging a ticket a webhook stored, fetching a ticket a
//! webhook only named, and writing the model's tags back.
//!
//! Write-back: a delivery's tagging job queues a write
//! (`queue_for_ticket`); the worker's connector queue sends it (`ConnectorRunner`), honouring
//! the vendor's `429`/`Retry-After`, a per-connector request rate, and backoff on faults that
//! may heal; answers that will not heal (bad credentials, no such ticket, a refused field)
//! fail at once with the vendor's reason, which the CLI and the pages show.
//!
//! Nothing is written twice: the labels of a write are recorded as ours when it is queued
//! (so a second verdict with the same tags queues nothing, and the webhook our own write
//! causes is recognised as an echo, never as people's labels); every vendor call adds
//! labels rather than replacing them, so a retried send changes nothing either.

use crate::config::Config;
use crate::credentials::CredentialKey;
use connectors::{ServiceNowTarget, TokenBucket, WriteOutcome};
use datasets::connector::DeliveryStatus;
use datasets::connector::{Connector, WriteBack, WriteBackAttempt, WriteBackQueued};
use datasets::store::prelude::*;
use datasets::{
    AnyStore, ConnectorId, ConnectorStore, DeliveryId, StoreError, TicketId, WriteBackId,
    WriteBackStore,
};
use inference::artifact_store::ArtifactStore;
use inference::service::TaggingService;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use trainer::jobs::{ConnectorJob, ConnectorJobs, JobQueue};

/// Attempts before a write that keeps meeting faults or rate limits is given up.
pub const MAX_WRITE_ATTEMPTS: u32 = 8;
/// Requests a minute to a help desk unless the connector says otherwise.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 100;
/// The wait after the first fault; it doubles with each further one.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The largest vendor answer read, for its error message.
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The largest history page read in a backfill (a Zendesk export page holds up to 1000 tickets).
pub const MAX_PAGE_BYTES: usize = 64 * 1024 * 1024;
/// The largest ticket read when fetching one (a ticket's text is cut to our own limits later).
const MAX_TICKET_BYTES: usize = 8 * 1024 * 1024;

/// Queues the write-back of a tagged connector ticket's applied tags, when the connector
/// writes back. Returns the write to send, if a new one was queued (a job must be pushed).
pub async fn queue_for_ticket(
    store: &AnyStore,
    connector: &Connector,
    external_id: &str,
    ticket: TicketId,
    applied_tags: &[String],
) -> Result<Option<WriteBackId>, StoreError> {
    if !connector.settings.write_back || applied_tags.is_empty() {
        return Ok(None);
    }
    let labels: Vec<String> = applied_tags
        .iter()
        .map(|tag| connector.settings.mapping.to_vendor(connector.system, tag))
        .filter(|label| !label.is_empty())
        .collect();
    match store
        .queue_writeback(connector.id, external_id, ticket, &labels)
        .await?
    {
        WriteBackQueued::New(id) => Ok(Some(id)),
        WriteBackQueued::Joined(id) => {
            tracing::debug!(writeback = %id, "new tags joined a pending write-back");
            Ok(None)
        }
        WriteBackQueued::Nothing => Ok(None),
    }
}

/// The tags a ticket carries now, by the labels that decide it: a person's where one
/// labelled it, else the model's applied tags (imported labels came from the help desk).
fn current_tags(ticket: &datasets::LabelledTicket) -> Vec<String> {
    let by_person = ticket
        .labels
        .iter()
        .any(|label| label.source == datasets::LabelSource::Human);
    let source = if by_person {
        datasets::LabelSource::Human
    } else {
        datasets::LabelSource::Model
    };
    ticket
        .labels
        .iter()
        .filter(|label| label.source == source && label.present)
        .map(|label| label.tag.as_str().to_string())
        .collect()
}

/// Writes a ticket's tags as they are now to the help desk it came from (the
/// `WriteBackTicket` job): nothing for a ticket from elsewhere, a connector with write-back
/// off, or a correction where the connector does not write corrections. Tags are added,
/// never removed: the help desk's own tags may have been set by its people.
pub async fn write_ticket_tags(
    store: &AnyStore,
    queue: &JobQueue,
    ticket: TicketId,
    correction: bool,
) -> Result<(), StoreError> {
    let Some((connector, external_id)) = store.ticket_connector(ticket).await? else {
        return Ok(());
    };
    let writes = if correction {
        connector.settings.writes_corrections()
    } else {
        connector.settings.write_back
    };
    if !writes {
        return Ok(());
    }
    let labelled = match store.ticket(connector.project_id, ticket).await {
        Ok(labelled) => labelled,
        // Deleted since the job was queued: nothing to write.
        Err(StoreError::NotFound(_)) => return Ok(()),
        Err(error) => return Err(error),
    };
    let tags = current_tags(&labelled);
    if let Some(id) = queue_for_ticket(store, &connector, &external_id, ticket, &tags).await? {
        push(queue, id, Duration::ZERO).await;
    }
    Ok(())
}

/// Queues `write_ticket_tags` for a ticket a person just labelled, when it came from a
/// connector that writes corrections; the person's request never waits on the help desk.
pub async fn queue_correction(store: &AnyStore, queue: &JobQueue, ticket: TicketId) {
    match store.ticket_connector(ticket).await {
        Ok(Some((connector, _))) if connector.settings.writes_corrections() => {
            let job = ConnectorJob::WriteBackTicket {
                ticket_id: ticket,
                correction: true,
            };
            if let Err(error) = queue.push_connector(job, Duration::ZERO).await {
                tracing::warn!(%ticket, %error, "could not queue the correction's write-back");
            }
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%ticket, %error, "could not look up the ticket's connector");
        }
    }
}

/// Pushes the job that sends a queued write-back. A write whose push fails stays pending
/// in the store and is pushed again by the next worker that starts (`requeue_overdue`).
pub async fn push(queue: &JobQueue, id: WriteBackId, delay: Duration) {
    if let Err(error) = queue
        .push_connector(ConnectorJob::WriteBack { writeback_id: id }, delay)
        .await
    {
        tracing::warn!(writeback = %id, %error, "could not queue a write-back job; it stays pending");
    }
}

/// Pushes the job that fetches the ticket a delivery named; a failed push is logged (the
/// delivery stays `awaiting_fetch`, and the help desk's next delivery about the ticket
/// brings it).
pub async fn push_fetch(
    queue: &JobQueue,
    connector: ConnectorId,
    external_id: &str,
    delivery: DeliveryId,
    attempt: u32,
    delay: Duration,
) {
    let job = ConnectorJob::Fetch {
        connector_id: connector,
        external_id: external_id.to_string(),
        delivery_id: delivery,
        attempt,
    };
    if let Err(error) = queue.push_connector(job, delay).await {
        tracing::warn!(%delivery, %error, "could not queue the fetch of a named ticket");
    }
}

/// Pushes a job for every pending write-back long overdue (its job was lost: a push that
/// failed, a queue wiped). A duplicate job is harmless: writes add labels, and a settled
/// write is skipped.
pub async fn requeue_overdue(store: &AnyStore, queue: &JobQueue) -> Result<usize, StoreError> {
    let overdue = store
        .overdue_writebacks(chrono::Utc::now() - chrono::Duration::minutes(5), 500)
        .await?;
    for writeback in &overdue {
        push(queue, writeback.id, Duration::ZERO).await;
    }
    if !overdue.is_empty() {
        tracing::info!(count = overdue.len(), "overdue write-backs queued again");
    }
    Ok(overdue.len())
}

/// Sends write-backs for the worker's connector queue.
pub struct ConnectorRunner {
    pub(crate) store: AnyStore,
    config: Config,
    key: OnceLock<CredentialKey>,
    pub(crate) client: vendor_http::Client,
    buckets: Mutex<HashMap<ConnectorId, TokenBucket>>,
    /// Tags fetched tickets; started on first use (a worker that never fetches loads no model).
    tagging: OnceLock<Arc<TaggingService>>,
    /// Where that tagging service finds model files.
    artifacts: ArtifactStore,
}

impl ConnectorRunner {
    pub fn new(store: AnyStore, config: Config) -> Result<Self, vendor_http::Error> {
        let client = vendor_http::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("smart-ticket-tagger/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            store,
            key: OnceLock::new(),
            client,
            buckets: Mutex::new(HashMap::new()),
            tagging: OnceLock::new(),
            artifacts: ArtifactStore::local(config.data_dir.join("models")),
            config,
        })
    }

    /// Where this runner's own tagging service finds model files (by default
    /// `<data_dir>/models` only); a server's shared service (`with_tagging`) has its own.
    pub fn with_artifacts(mut self, artifacts: ArtifactStore) -> Self {
        self.artifacts = artifacts;
        self
    }

    pub(crate) fn key(&self) -> Result<CredentialKey, String> {
        if let Some(key) = self.key.get() {
            return Ok(key.clone());
        }
        let key = CredentialKey::load(&self.config)
            .map_err(|error| format!("cannot load the encryption key: {error}"))?;
        Ok(self.key.get_or_init(|| key).clone())
    }

    /// Waits for the connector's next request slot.
    async fn rate_limit(&self, connector: &Connector) {
        let per_minute = connector
            .settings
            .requests_per_minute
            .unwrap_or(DEFAULT_REQUESTS_PER_MINUTE);
        loop {
            let wait = {
                let mut buckets = self
                    .buckets
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                let bucket = buckets
                    .entry(connector.id)
                    .or_insert_with(|| TokenBucket::new(per_minute, burst(per_minute), now));
                bucket.take(now)
            };
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Sends one write-back and settles it; `Err` only for store faults (the queue retries).
    #[tracing::instrument(skip_all, fields(writeback = %id))]
    async fn write_back(&self, id: WriteBackId, queue: JobQueue) -> Result<(), String> {
        let Some(writeback) = self.store.writeback(id).await.map_err(|e| e.to_string())? else {
            // Its connector was removed since.
            return Ok(());
        };
        if writeback.status != datasets::connector::WriteBackStatus::Pending {
            return Ok(());
        }
        // The queue schedules in whole seconds and may start a job up to a second early; a
        // vendor's `Retry-After` is a promise kept to the end. A job far too early (a
        // duplicate) hands over to a job at the right time.
        let early = (writeback.next_attempt_at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        if early > Duration::from_secs(5) {
            push(&queue, id, early).await;
            return Ok(());
        }
        tokio::time::sleep(early).await;
        let Some(connector) = self.connector(writeback.connector_id).await? else {
            return Ok(());
        };
        let attempt = match self.send(&connector, &writeback).await {
            Ok(outcome) => settle(&writeback, outcome),
            Err(reason) => WriteBackAttempt::Failed { reason },
        };
        let settled = self
            .store
            .record_writeback_attempt(id, &attempt)
            .await
            .map_err(|e| e.to_string())?;
        match &attempt {
            WriteBackAttempt::Written => {
                tracing::info!(connector = %connector.name, ticket = %writeback.external_id, labels = ?writeback.labels, "tags written back");
            }
            WriteBackAttempt::Retry { at, reason } => {
                tracing::info!(connector = %connector.name, %reason, attempts = settled.attempts, "write-back to be tried again");
                let delay = (*at - chrono::Utc::now()).to_std().unwrap_or_default();
                push(&queue, id, delay).await;
            }
            WriteBackAttempt::Failed { reason } => {
                tracing::warn!(connector = %connector.name, ticket = %writeback.external_id, %reason, "write-back failed");
            }
        }
        Ok(())
    }

    /// Shares a running tagging service (the server's, beside which this worker runs), so
    /// the process loads each model once and follows promotions through its watcher.
    pub fn with_tagging(self, tagging: Arc<TaggingService>) -> Self {
        let _ = self.tagging.set(tagging);
        self
    }

    /// The tagging service: the one shared with `with_tagging`, else one of this worker's own,
    /// started on first use (a worker that never tags loads no model) with a watcher that
    /// follows promotions made elsewhere.
    pub fn tagging(&self) -> &TaggingService {
        self.tagging.get_or_init(|| {
            let service = TaggingService::start(
                inference::service::BatchConfig::default(),
                self.artifacts.clone(),
            );
            let watch = Duration::from_secs_f64(self.config.model_watch_seconds.max(0.1));
            // Called from a job, so inside the worker's runtime.
            if tokio::runtime::Handle::try_current().is_ok() {
                service.spawn_watcher(self.store.clone(), watch);
            }
            service
        })
    }

    /// Tags a ticket a delivery stored (the `TagTicket` job), tells the project's webhooks,
    /// and queues the write-back of the applied tags. A redelivered ticket tagged before
    /// queues nothing new: its labels are already written (or pending).
    #[tracing::instrument(skip_all, fields(ticket = %ticket))]
    async fn tag_ticket(
        &self,
        ticket: TicketId,
        created: bool,
        queue: JobQueue,
    ) -> Result<(), String> {
        let Some((connector, external_id)) = self
            .store
            .ticket_connector(ticket)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let stored = match self.store.ticket(connector.project_id, ticket).await {
            Ok(stored) => stored.ticket,
            // Deleted since the job was queued: nothing to tag.
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(error) => return Err(error.to_string()),
        };
        let tagged = crate::ingest::tag_stored(
            &self.store,
            self.tagging(),
            connector.project_id,
            &stored,
            created,
        )
        .await
        .map_err(|error| error.to_string())?;
        let Some(tagged) = tagged else {
            tracing::debug!("no model in service: the ticket stays untagged");
            return Ok(());
        };
        crate::outgoing_webhooks::push_all(&queue, &tagged.webhook_deliveries).await;
        let applied: Vec<String> = tagged
            .tagged
            .iter()
            .flat_map(|tagged| tagged.decision.applied.iter())
            .map(|tag| tag.as_str().to_string())
            .collect();
        if let Some(id) = queue_for_ticket(&self.store, &connector, &external_id, ticket, &applied)
            .await
            .map_err(|e| e.to_string())?
        {
            // Sent from this job at once rather than through a job of its own: one queue hop
            // less per delivery. A retry it needs is queued by `write_back` itself; a store
            // fault leaves the write pending, so a job of its own is queued for it.
            if let Err(error) = self.write_back(id, queue.clone()).await {
                tracing::warn!(writeback = %id, %error, "the write-back is queued to be tried again");
                push(&queue, id, Duration::ZERO).await;
            }
        }
        Ok(())
    }

    async fn connector(&self, id: ConnectorId) -> Result<Option<Connector>, String> {
        let connectors = self.store.connectors().await.map_err(|e| e.to_string())?;
        Ok(connectors.into_iter().find(|c| c.id == id))
    }

    /// Fetches a ticket a delivery named and stores it as that delivery; `Err` only for
    /// store faults (the queue retries).
    #[tracing::instrument(skip_all, fields(delivery = %delivery, ticket = %external_id))]
    async fn fetch(
        &self,
        connector: ConnectorId,
        external_id: &str,
        delivery: DeliveryId,
        attempt: u32,
        queue: JobQueue,
    ) -> Result<(), String> {
        let Some(connector) = self.connector(connector).await? else {
            return Ok(());
        };
        let Some(path) = connectors::fetch_ticket_path(connector.system, external_id) else {
            tracing::warn!(system = %connector.system, "this system's tickets are not fetched by id");
            return Ok(());
        };
        let request = connectors::WriteRequest {
            method: connectors::Method::Get,
            path,
            body: serde_json::Value::Null,
        };
        let answer = match self.call(&connector, &request, MAX_TICKET_BYTES).await {
            Ok(answer) => answer,
            Err(reason) => {
                tracing::warn!(connector = %connector.name, %reason, "the named ticket cannot be fetched");
                return Ok(());
            }
        };
        let (outcome, body) = (answer.outcome, answer.body);
        let wait = match outcome {
            WriteOutcome::Written => None,
            WriteOutcome::RetryAfter(wait, reason) => Some((wait, reason)),
            WriteOutcome::Transient(reason) => {
                Some((FIRST_BACKOFF * 2u32.pow(attempt.min(10)), reason))
            }
            WriteOutcome::Permanent(reason) => {
                tracing::warn!(%reason, "the named ticket cannot be fetched");
                return Ok(());
            }
        };
        if let Some((wait, reason)) = wait {
            if attempt + 1 >= MAX_WRITE_ATTEMPTS {
                tracing::warn!(%reason, "gave up fetching the named ticket");
            } else {
                tracing::info!(%reason, "the named ticket is fetched again later");
                push_fetch(
                    &queue,
                    connector.id,
                    external_id,
                    delivery,
                    attempt + 1,
                    wait,
                )
                .await;
            }
            return Ok(());
        }
        let incoming = serde_json::from_str::<serde_json::Value>(&body)
            .map_err(|error| format!("not JSON: {error}"))
            .and_then(|json| {
                connectors::parse_zendesk_rest_ticket(&json).map_err(|error| error.to_string())
            });
        let incoming = match incoming {
            Ok(incoming) => incoming,
            Err(reason) => {
                tracing::warn!(%reason, "the fetched ticket could not be read");
                return Ok(());
            }
        };
        let stored =
            crate::connector_deliveries::store_incoming(&self.store, &connector, &incoming)
                .await
                .map_err(|error| error.to_string())?;
        let (status, ticket) = match stored {
            Some(stored) => {
                // Before the delivery is settled, as for a webhook: a failed push makes the
                // queue run this fetch again.
                crate::connector_deliveries::push_tag_job(&queue, stored.ticket, stored.created)
                    .await
                    .map_err(|error| error.to_string())?;
                (DeliveryStatus::Stored, Some(stored.ticket))
            }
            None => (DeliveryStatus::Stale, None),
        };
        self.store
            .finish_delivery(delivery, status, ticket)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(connector = %connector.name, status = status.as_str(), "named ticket fetched");
        Ok(())
    }

    /// One request to the help desk. `Err` is a reason that no retry can change (the
    /// connector's own set-up).
    async fn send(
        &self,
        connector: &Connector,
        writeback: &WriteBack,
    ) -> Result<WriteOutcome, String> {
        if !connector.settings.write_back {
            return Err("write-back is switched off for this connector".into());
        }
        let all_labels = self
            .store
            .connector_ticket(connector.id, &writeback.external_id)
            .await
            .map_err(|e| e.to_string())?
            .map(|ticket| ticket.written_labels)
            .unwrap_or_else(|| writeback.labels.clone());
        let target = match connector.settings.field.as_deref() {
            Some("work_notes") => ServiceNowTarget::WorkNote,
            Some(field) => ServiceNowTarget::Field(field.to_string()),
            None => ServiceNowTarget::Field(connectors::DEFAULT_SERVICENOW_FIELD.into()),
        };
        let request = connectors::write_request(
            connector.system,
            &writeback.external_id,
            &writeback.labels,
            &all_labels,
            connector.settings.table.as_deref().unwrap_or("incident"),
            &target,
        );
        Ok(self
            .call(connector, &request, MAX_ANSWER_BYTES)
            .await?
            .outcome)
    }

    /// One request to the connector's help desk, signed in with its credentials and within
    /// its request rate; the answer classified. `Err` is a reason no retry can change (the
    /// connector's own set-up: no token, credentials that do not open).
    pub async fn call(
        &self,
        connector: &Connector,
        request: &connectors::WriteRequest,
        max_bytes: usize,
    ) -> Result<Answer, String> {
        let credentials = self
            .key()?
            .open(connector.name.as_str(), &connector.sealed_credentials)
            .map_err(|error| format!("cannot open the connector's credentials: {error}"))?;
        let Some(token) = credentials.token.as_deref().filter(|t| !t.is_empty()) else {
            return Err(
                "the connector has no API token; add it again with --user and --token".into(),
            );
        };
        let url = format!(
            "{}{}",
            connector.base_url.trim_end_matches('/'),
            request.path
        );
        let method = match request.method {
            connectors::Method::Get => vendor_http::Method::GET,
            connectors::Method::Post => vendor_http::Method::POST,
            connectors::Method::Put => vendor_http::Method::PUT,
            connectors::Method::Patch => vendor_http::Method::PATCH,
        };
        self.rate_limit(connector).await;
        let mut builder = self
            .client
            .request(method, &url)
            .header(
                "authorization",
                connectors::authorization(connector.system, credentials.user.as_deref(), token),
            )
            .header("accept", "application/json");
        if !request.body.is_null() {
            builder = builder.json(&request.body);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(error) => {
                // The error names the URL, never the credentials (they travel in a header).
                return Ok(Answer {
                    outcome: WriteOutcome::Transient(format!(
                        "{} could not be reached: {}",
                        connector.system,
                        without_url(&error)
                    )),
                    body: String::new(),
                    headers: vendor_http::header::HeaderMap::new(),
                });
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_limited(response, max_bytes).await;
        let outcome = connectors::classify_response(
            connector.system,
            status,
            |name| headers.get(name).and_then(|v| v.to_str().ok()),
            &body,
            chrono::Utc::now(),
        );
        Ok(Answer {
            outcome,
            body,
            headers,
        })
    }
}

/// A help desk's answer to one request.
pub struct Answer {
    pub outcome: WriteOutcome,
    /// The body, cut at the size the caller allowed.
    pub body: String,
    pub headers: vendor_http::header::HeaderMap,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A short burst allowance: a tenth of a minute's budget, at least one.
fn burst(per_minute: u32) -> u32 {
    (per_minute / 10).max(1)
}

/// What one answer means for the write, counting this attempt.
fn settle(writeback: &WriteBack, outcome: WriteOutcome) -> WriteBackAttempt {
    let attempts = writeback.attempts + 1;
    let retry = |wait: Duration, reason: String| {
        if attempts >= MAX_WRITE_ATTEMPTS {
            WriteBackAttempt::Failed {
                reason: format!("gave up after {attempts} attempts: {reason}"),
            }
        } else {
            WriteBackAttempt::Retry {
                at: chrono::Utc::now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::minutes(15)),
                reason,
            }
        }
    };
    match outcome {
        WriteOutcome::Written => WriteBackAttempt::Written,
        WriteOutcome::RetryAfter(wait, reason) => retry(wait, reason),
        WriteOutcome::Transient(reason) => {
            let doublings = (attempts - 1).min(10);
            retry(FIRST_BACKOFF * 2u32.pow(doublings), reason)
        }
        WriteOutcome::Permanent(reason) => WriteBackAttempt::Failed { reason },
    }
}

/// The text of a vendor's answer, cut at `limit` bytes.
pub(crate) async fn read_limited(mut response: vendor_http::Response, limit: usize) -> String {
    let mut bytes: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if bytes.len() >= limit {
            break;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A transport error's message without the URL (which may carry a tenant's name).
pub(crate) fn without_url(error: &vendor_http::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection refused or failed"
    } else {
        "the request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}

impl ConnectorJobs for ConnectorRunner {
    fn run(
        &self,
        job: ConnectorJob,
        queue: JobQueue,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            match job {
                ConnectorJob::WriteBack { writeback_id } => {
                    self.write_back(writeback_id, queue).await
                }
                ConnectorJob::Fetch {
                    connector_id,
                    external_id,
                    delivery_id,
                    attempt,
                } => {
                    self.fetch(connector_id, &external_id, delivery_id, attempt, queue)
                        .await
                }
                ConnectorJob::TagTicket { ticket_id, created } => {
                    self.tag_ticket(ticket_id, created, queue).await
                }
                ConnectorJob::DeliverWebhook { delivery_id } => {
                    crate::outgoing_webhooks::deliver(self, delivery_id, queue).await
                }
                ConnectorJob::WriteBackTicket {
                    ticket_id,
                    correction,
                } => write_ticket_tags(&self.store, &queue, ticket_id, correction)
                    .await
                    .map_err(|e| e.to_string()),
                ConnectorJob::Backfill {
                    connector_id,
                    since,
                } => {
                    let Some(connector) = self.connector(connector_id).await? else {
                        return Ok(());
                    };
                    match crate::connector_backfill::run(
                        self,
                        &self.store,
                        self.tagging(),
                        &connector,
                        since,
                        |_| {},
                    )
                    .await
                    {
                        Ok(_) => Ok(()),
                        // Recorded with the backfill; running it again resumes.
                        Err(crate::connector_backfill::BackfillError::HelpDesk(reason)) => {
                            tracing::warn!(connector = %connector.name, %reason, "backfill stopped");
                            Ok(())
                        }
                        Err(error) => Err(error.to_string()),
                    }
                }
            }
        })
    }
}

/// Each tag beside the label it is written as to the connector's help desk (Zendesk tags
/// and Jira labels take no spaces), for the settings to show.
pub fn mapped_labels(connector: &Connector, tags: &[String]) -> Vec<(String, String)> {
    tags.iter()
        .map(|tag| {
            (
                tag.clone(),
                connector.settings.mapping.to_vendor(connector.system, tag),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use connectors::System;
    use datasets::connector::WriteBackStatus;

    fn pending(attempts: u32) -> WriteBack {
        let now = chrono::Utc::now();
        WriteBack {
            id: WriteBackId(1),
            connector_id: ConnectorId(1),
            external_id: "7".into(),
            ticket_id: TicketId(1),
            labels: vec!["billing".into()],
            status: WriteBackStatus::Pending,
            attempts,
            last_error: None,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn faults_back_off_and_are_given_up_at_the_limit() {
        let at = |attempt: WriteBackAttempt| match attempt {
            WriteBackAttempt::Retry { at, .. } => (at - chrono::Utc::now()).num_milliseconds(),
            other => panic!("{other:?}"),
        };
        let first = at(settle(&pending(0), WriteOutcome::Transient("503".into())));
        let third = at(settle(&pending(2), WriteOutcome::Transient("503".into())));
        assert!((900..=1000).contains(&first), "{first}");
        assert!((3900..=4000).contains(&third), "{third}");
        let waited = at(settle(
            &pending(0),
            WriteOutcome::RetryAfter(Duration::from_secs(7), "429".into()),
        ));
        assert!((6900..=7000).contains(&waited), "{waited}");
        match settle(
            &pending(MAX_WRITE_ATTEMPTS - 1),
            WriteOutcome::Transient("zendesk answered HTTP 503".into()),
        ) {
            WriteBackAttempt::Failed { reason } => {
                assert_eq!(
                    reason,
                    format!(
                        "gave up after {MAX_WRITE_ATTEMPTS} attempts: zendesk answered HTTP 503"
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            settle(&pending(0), WriteOutcome::Permanent("401".into())),
            WriteBackAttempt::Failed {
                reason: "401".into()
            }
        );
        assert_eq!(
            settle(&pending(3), WriteOutcome::Written),
            WriteBackAttempt::Written
        );
    }

    #[test]
    fn the_burst_is_a_tenth_of_a_minute() {
        assert_eq!(burst(100), 10);
        assert_eq!(burst(5), 1);
    }

    #[test]
    fn systems_label_tags_their_own_way() {
        let connector = |system: System| Connector {
            id: ConnectorId(1),
            project_id: datasets::ProjectId(1),
            name: datasets::connector::ConnectorName::parse("c").unwrap(),
            system,
            base_url: "https://x".into(),
            settings: Default::default(),
            sealed_credentials: vec![],
            created_at: chrono::Utc::now(),
        };
        let tags = vec!["Feature Request".to_string()];
        assert_eq!(
            mapped_labels(&connector(System::Zendesk), &tags)[0].1,
            "feature_request"
        );
        assert_eq!(
            mapped_labels(&connector(System::ServiceNow), &tags)[0].1,
            "Feature Request"
        );
    }
}
