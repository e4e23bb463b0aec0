//! What every request handler can reach.

use crate::config::Config;
use crate::http_metrics::HttpMetrics;
use crate::web::PasswordHashing;
use datasets::AnyStore;
use inference::artifact_store::ArtifactStore;
use inference::service::TaggingService;
use std::sync::Arc;

/// Shared state of the server; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: AnyStore,
    pub config: Arc<Config>,
    pub tagging: Arc<TaggingService>,
    pub http_metrics: Arc<HttpMetrics>,
    /// The training job queue; `None` in tests that never queue anything.
    pub jobs: Option<trainer::jobs::JobQueue>,
    /// The cap on argon2 hashes running at once (logins, passwords set on the admin page).
    pub password_hashing: PasswordHashing,
    /// The connectors' credentials key and per-ticket delivery order.
    pub connectors: Arc<crate::connector_deliveries::ConnectorRuntime>,
    /// Key phrases counted for the pages, kept a few minutes.
    pub phrases: Arc<crate::web::key_phrases::PhraseCache>,
}

impl AppState {
    /// State with a fresh tagging service (its model thread started) and no models loaded,
    /// finding model files in `<data_dir>/models` only (tests, benchmarks). A server opens
    /// the configured artifact store and passes it to [`AppState::with_artifacts`].
    pub fn new(store: AnyStore, config: Config) -> Self {
        let models_dir = config.data_dir.join("models");
        Self::with_artifacts(store, config, ArtifactStore::local(models_dir))
    }

    /// State whose tagging service finds model files through `artifacts`.
    pub fn with_artifacts(store: AnyStore, config: Config, artifacts: ArtifactStore) -> Self {
        Self {
            store,
            password_hashing: PasswordHashing::new(config.max_concurrent_password_hashes),
            config: Arc::new(config),
            tagging: TaggingService::start(inference::service::BatchConfig::default(), artifacts),
            http_metrics: Arc::new(HttpMetrics::default()),
            jobs: None,
            connectors: Arc::default(),
            phrases: Arc::default(),
        }
    }

    /// After a person labelled a ticket of the project: the `ticket.labels_changed` event
    /// for the project's webhooks, a retraining run when the policy says one is due, and the
    /// correction's write-back when the ticket came from a help desk that takes them. In the
    /// background: the labeller never waits on any of it, and a failure is logged, not
    /// theirs to handle.
    pub fn labels_changed(
        &self,
        project: datasets::ProjectId,
        ticket: datasets::TicketId,
        actor: String,
    ) {
        let store = self.store.clone();
        let queue = self.jobs.clone();
        let policy = trainer::jobs::RetrainPolicy {
            after_labels: self.config.retrain_after_labels,
            kind: inference::ModelKind::Ngram,
        };
        tokio::spawn(async move {
            let deliveries =
                crate::outgoing_webhooks::queue_labels_changed(&store, project, ticket, &actor)
                    .await;
            let Some(queue) = queue else {
                // Without a queue here, a worker that starts later sends the events.
                return;
            };
            crate::outgoing_webhooks::push_all(&queue, &deliveries).await;
            crate::connector_jobs::queue_correction(&store, &queue, ticket).await;
            if let Err(error) =
                trainer::jobs::retrain_if_due(&store, &queue, project, &policy).await
            {
                tracing::warn!(%error, %project, "could not check the retraining policy");
            }
        });
    }

    /// After a promotion or rollback: rank the review queue again with the model in service,
    /// and tag the newest tickets again when the configuration asks for it.
    pub fn model_changed(&self, project: datasets::ProjectId) {
        let Some(queue) = self.jobs.clone() else {
            return;
        };
        let retag = self.config.retag_after_promotion;
        tokio::spawn(async move {
            if let Err(error) = crate::worker::queue_model_follow_ups(&queue, project, retag).await
            {
                tracing::warn!(%error, %project, "could not queue the rescoring and re-tagging");
            }
        });
    }

    /// The same state, able to queue training jobs.
    pub fn with_jobs(mut self, queue: trainer::jobs::JobQueue) -> Self {
        self.jobs = Some(queue);
        self
    }
}
