//! The training worker as this binary runs it: `tagger worker` on its own, or beside the
//! server (`serve --with-worker`, `demo`).

use crate::config::Config;
use anyhow::Context;
use datasets::AnyStore;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use trainer::jobs::{JobQueue, MaintenanceJob, QueueSettings, WorkerState};

/// The queue settings the configuration asks for.
pub fn queue_settings(config: &Config) -> QueueSettings {
    QueueSettings {
        heartbeat: config.worker_heartbeat(),
        ..QueueSettings::default()
    }
}

/// Opens the job queue in the store's database (creating its tables when missing).
pub async fn open_queue(store: &AnyStore, config: &Config) -> anyhow::Result<JobQueue> {
    JobQueue::open(store, &queue_settings(config))
        .await
        .context("cannot open the job queue")
}

/// A worker's state: its name is the host and process, so runs show who took them. Beside a
/// server, `tagging` is the server's service, so help-desk tickets are tagged by the models
/// it already holds, and its artifact store is shared; on its own, the worker opens the
/// configured one.
pub fn worker_state(
    store: AnyStore,
    config: &Config,
    tagging: Option<Arc<inference::service::TaggingService>>,
) -> anyhow::Result<WorkerState> {
    let artifacts = match &tagging {
        Some(tagging) => tagging.artifacts().clone(),
        None => config
            .artifact_store()
            .context("cannot open the artifact store (artifact_store)")?,
    };
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let mut runner = crate::connector_jobs::ConnectorRunner::new(store.clone(), config.clone())
        .context("cannot set up the help-desk HTTP client")?
        .with_artifacts(artifacts.clone());
    if let Some(tagging) = tagging {
        runner = runner.with_tagging(tagging);
    }
    Ok(WorkerState {
        store,
        artifacts,
        name: format!("{host}-{}", std::process::id()),
        stopping: Arc::new(AtomicBool::new(false)),
        guard_margin: config.promotion_guard_margin,
        retag_after_promotion: config.retag_after_promotion,
        connector_jobs: Some(Arc::new(runner)),
    })
}

/// Before a worker starts: write-backs whose job was lost are queued again. A fault here is
/// reported and does not stop the worker (the next start tries again).
pub async fn requeue_lost_jobs(store: &AnyStore, queue: &JobQueue) {
    if let Err(error) = crate::connector_jobs::requeue_overdue(store, queue).await {
        tracing::warn!(%error, "could not look for overdue write-backs");
    }
    let lost_before = chrono::Utc::now() - chrono::Duration::minutes(5);
    if let Err(error) = crate::outgoing_webhooks::requeue_overdue(store, queue, lost_before).await {
        tracing::warn!(%error, "could not look for overdue webhook deliveries");
    }
}

/// After a promotion or rollback, from any process: rank the review queue again with the
/// model in service, and tag the newest tickets no person labelled with it (at most
/// `retag` of them; 0: none). A worker runs both.
pub async fn queue_model_follow_ups(
    queue: &JobQueue,
    project: datasets::ProjectId,
    retag: u32,
) -> Result<(), trainer::jobs::JobError> {
    queue.rescore(project).await?;
    if retag > 0 {
        queue
            .push_maintenance(MaintenanceJob::Retag {
                project_id: project,
                limit: retag,
            })
            .await?;
    }
    Ok(())
}
