//! What every request handler can reach.

use crate::config::Config;
use crate::http_metrics::HttpMetrics;
use datasets::AnyStore;
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
}

impl AppState {
    /// State with a fresh tagging service (its model thread started) and no models loaded.
    pub fn new(store: AnyStore, config: Config) -> Self {
        Self {
            store,
            config: Arc::new(config),
            tagging: TaggingService::start(inference::service::BatchConfig::default()),
            http_metrics: Arc::new(HttpMetrics::default()),
            jobs: None,
        }
    }

    /// The same state, able to queue training jobs.
    pub fn with_jobs(mut self, queue: trainer::jobs::JobQueue) -> Self {
        self.jobs = Some(queue);
        self
    }
}
