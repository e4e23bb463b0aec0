//! The real-time tagging service. Models run on their own OS thread, never on the async
//! workers; requests arrive through a bounded channel and are batched: whatever queued while
//! the model was busy, up to a text budget. Each project's model in service
//! sits behind an `ArcSwap`: promotion loads and smoke-tests the new version beside the old
//! one and swaps the pointer, so a batch in flight finishes on the model it started with and
//! no request is dropped. A version kept in object storage is fetched into the local
//! models directory first (hash-checked, see `artifact_store`). A version that fails to
//! fetch or load is reported and the old one keeps serving.

use crate::ModelError;
use crate::artifact_store::{ArtifactStore, ArtifactStoreError};
use crate::decision::{Decider, Decision};
use crate::explain::Explanation;
use crate::metrics::{BATCH_BOUNDS, Histogram, LATENCY_BOUNDS, describe};
use crate::model::TaggingModel;
use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use datasets::store::prelude::*;
use datasets::{
    AnyStore, ModelKind, ModelVersion, ModelVersionId, ProjectId, Tag, TagGroup, TagName,
};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the model thread groups requests.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most texts in one batch.
    pub max_texts: usize,
    /// Longest wait for more requests once one has arrived.
    pub max_wait: Duration,
    /// Requests waiting beyond this many are refused at once (503) rather than queued for ever.
    pub queue_depth: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_texts: 64,
            // No waiting: batches form from the requests that queued while the model was busy,
            // so an idle server answers at once and a busy one still batches (measured: the
            // 2 ms wait was most of the p50 at low load).
            max_wait: Duration::ZERO,
            queue_depth: 1024,
        }
    }
}

/// A model in service for one project.
pub struct ServingModel {
    pub version: ModelVersionId,
    pub kind: ModelKind,
    pub model: Arc<TaggingModel>,
    pub decider: Decider,
    pub loaded_at: DateTime<Utc>,
}

impl ServingModel {
    /// The same model, deciding for a project that serves `languages` (see
    /// [`Decider::with_languages`]).
    pub fn with_languages(&self, languages: &[datasets::Language]) -> ServingModel {
        ServingModel {
            version: self.version,
            kind: self.kind,
            model: Arc::clone(&self.model),
            decider: self.decider.clone().with_languages(languages),
            loaded_at: self.loaded_at,
        }
    }
}

/// The verdict on one text, with the version that gave it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tagged {
    pub version: ModelVersionId,
    #[serde(flatten)]
    pub decision: Decision,
    /// The words behind the tags, when asked for (`TaggingService::tag_explained`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explained>,
}

/// What to explain along with a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainRequest {
    /// Words listed per tag.
    pub top_k: usize,
    /// The tags to explain; `None` for the applied ones, or the best-scored one when none is
    /// applied. Tags the model does not know are left out.
    pub tags: Option<Vec<TagName>>,
}

/// The words behind a verdict's tags.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Explained {
    /// The text the model read (the ticket normalised); word offsets count its characters.
    pub text: String,
    pub tags: Vec<TagExplanation>,
}

/// The words behind one tag.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TagExplanation {
    pub tag: TagName,
    #[serde(flatten)]
    pub explanation: Explanation,
}

/// Why a text could not be tagged.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("project {0} has no promoted model yet: train one and promote it")]
    NoModel(ProjectId),
    #[error("the tagging queue is full; retry shortly")]
    Overloaded,
    #[error("the tagging service has stopped")]
    Stopped,
    #[error("model version {version} could not be fetched: {source}")]
    Fetch {
        version: ModelVersionId,
        source: ArtifactStoreError,
    },
    #[error("model version {version} could not be loaded: {source}")]
    Load {
        version: ModelVersionId,
        source: ModelError,
    },
    #[error("model version {version} failed its smoke test: {reason}")]
    SmokeTest {
        version: ModelVersionId,
        reason: String,
    },
    #[error("the model failed to score: {0}")]
    Scoring(String),
    #[error(transparent)]
    Store(#[from] datasets::StoreError),
}

type Slot = Arc<ArcSwapOption<ServingModel>>;

struct Job {
    slot: Slot,
    project: ProjectId,
    texts: Vec<String>,
    with_rules: bool,
    explain: Option<ExplainRequest>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Tagged>, ServiceError>>,
}

/// Counters the service exposes at `/metrics`.
#[derive(Debug)]
pub struct ServiceMetrics {
    pub texts: AtomicU64,
    pub auto_tagged: AtomicU64,
    pub sent_to_review: AtomicU64,
    pub swaps: AtomicU64,
    pub swap_failures: AtomicU64,
    pub batch_texts: Histogram,
    pub model_seconds: Histogram,
    pub queue_seconds: Histogram,
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        Self {
            texts: AtomicU64::new(0),
            auto_tagged: AtomicU64::new(0),
            sent_to_review: AtomicU64::new(0),
            swaps: AtomicU64::new(0),
            swap_failures: AtomicU64::new(0),
            batch_texts: Histogram::new(BATCH_BOUNDS),
            model_seconds: Histogram::new(LATENCY_BOUNDS),
            queue_seconds: Histogram::new(LATENCY_BOUNDS),
        }
    }
}

/// What `/readyz` and the status page show per project.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProjectStatus {
    pub project: ProjectId,
    pub version: Option<ModelVersionId>,
    pub kind: Option<ModelKind>,
    pub loaded_at: Option<DateTime<Utc>>,
    /// The last failed swap, if the newest promotion could not be served.
    pub last_error: Option<String>,
}

/// The tagging service of one process.
pub struct TaggingService {
    slots: Mutex<HashMap<ProjectId, Slot>>,
    /// Held while reading the promoted version and swapping, so a watcher's stale read can
    /// never put back a version that a promotion has just replaced.
    syncing: tokio::sync::Mutex<()>,
    errors: Mutex<HashMap<ProjectId, String>>,
    queue: SyncSender<(Job, Instant)>,
    /// Where promoted versions' files are found (and fetched from, when kept in a bucket).
    artifacts: ArtifactStore,
    pub metrics: Arc<ServiceMetrics>,
}

impl TaggingService {
    /// Starts the model thread; versions' files are found through `artifacts`.
    pub fn start(config: BatchConfig, artifacts: ArtifactStore) -> Arc<Self> {
        let (queue, receiver) = std::sync::mpsc::sync_channel(config.queue_depth);
        let metrics = Arc::new(ServiceMetrics::default());
        let thread_metrics = Arc::clone(&metrics);
        // If the thread cannot start, every request answers `Stopped`: the process still
        // serves everything else.
        let _ = std::thread::Builder::new()
            .name("tagging-model".into())
            .spawn(move || run_model_thread(receiver, config, &thread_metrics));
        Arc::new(Self {
            slots: Mutex::new(HashMap::new()),
            syncing: tokio::sync::Mutex::new(()),
            errors: Mutex::new(HashMap::new()),
            queue,
            artifacts,
            metrics,
        })
    }

    /// Where this service finds versions' files; jobs of the same process load through it.
    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
    }

    fn slot(&self, project: ProjectId) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(slots.entry(project).or_default())
    }

    /// The version in service for a project, if any.
    pub fn serving(&self, project: ProjectId) -> Option<Arc<ServingModel>> {
        self.slot(project).load_full()
    }

    /// Tags texts with the project's model in service.
    pub async fn tag(
        &self,
        project: ProjectId,
        texts: Vec<String>,
        with_rules: bool,
    ) -> Result<Vec<Tagged>, ServiceError> {
        self.submit(project, texts, with_rules, None).await
    }

    /// Tags texts and explains each verdict (see `crate::explain`): on the model thread like
    /// any tagging, so an encoder's occlusion passes never run on the async workers.
    pub async fn tag_explained(
        &self,
        project: ProjectId,
        texts: Vec<String>,
        with_rules: bool,
        explain: ExplainRequest,
    ) -> Result<Vec<Tagged>, ServiceError> {
        self.submit(project, texts, with_rules, Some(explain)).await
    }

    async fn submit(
        &self,
        project: ProjectId,
        texts: Vec<String>,
        with_rules: bool,
        explain: Option<ExplainRequest>,
    ) -> Result<Vec<Tagged>, ServiceError> {
        let slot = self.slot(project);
        if slot.load().is_none() {
            return Err(ServiceError::NoModel(project));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            slot,
            project,
            texts,
            with_rules,
            explain,
            reply,
        };
        match self.queue.try_send((job, Instant::now())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ServiceError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(ServiceError::Stopped),
        }
        answer.await.map_err(|_| ServiceError::Stopped)?
    }

    /// Brings a project's slot up to its promoted version: loads and smoke-tests a new one
    /// beside the old, then swaps. Returns the version in service afterwards.
    pub async fn sync_project(
        &self,
        store: &AnyStore,
        project: ProjectId,
    ) -> Result<Option<ModelVersionId>, ServiceError> {
        let _syncing = self.syncing.lock().await;
        let slot = self.slot(project);
        let promoted = store.promoted_model_version(project).await?;
        let current = slot.load().as_ref().map(|serving| serving.version);
        let Some(version) = promoted else {
            // Nothing promoted (never, or the store was reset): keep serving what we have.
            return Ok(current);
        };
        let languages = store.project(project).await?.languages;
        if current == Some(version.id) {
            // The same model; the project's languages may have changed since it was loaded.
            if let Some(serving) = slot.load_full()
                && serving.decider.languages() != languages.as_slice()
            {
                slot.store(Some(Arc::new(serving.with_languages(&languages))));
                tracing::info!(%project, "served languages updated");
            }
            return Ok(current);
        }
        let taxonomy = store.list_tags(project).await?;
        let groups = store.list_tag_groups(project).await?;
        let loaded = match self.artifacts.fetch(&version).await {
            Ok(local) => tokio::task::spawn_blocking(move || {
                load_and_check(&local, &taxonomy, &groups)
                    .map(|serving| serving.with_languages(&languages))
            })
            .await
            .map_err(|_| ServiceError::Stopped)?,
            Err(source) => Err(ServiceError::Fetch {
                version: version.id,
                source,
            }),
        };
        match loaded {
            Ok(serving) => {
                let id = serving.version;
                slot.store(Some(Arc::new(serving)));
                self.metrics.swaps.fetch_add(1, Ordering::Relaxed);
                self.errors
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&project);
                tracing::info!(%project, version = %id, "model swapped in");
                Ok(Some(id))
            }
            Err(error) => {
                self.metrics.swap_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%project, %error, "model swap failed; the previous version keeps serving");
                self.errors
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(project, error.to_string());
                Err(error)
            }
        }
    }

    /// Rebuilds the project's decisions after a taxonomy change (renamed or archived tags,
    /// keyword rules, tag groups), keeping the loaded model.
    pub fn refresh_taxonomy(&self, project: ProjectId, taxonomy: &[Tag], groups: &[TagGroup]) {
        let slot = self.slot(project);
        if let Some(serving) = slot.load_full() {
            let card = &serving.model.card;
            let decider = Decider::new(card.label_mode, &card.tags, &card.thresholds, taxonomy)
                .with_groups(groups)
                .with_realised_precision(card.realised_precision())
                .with_languages(serving.decider.languages());
            slot.store(Some(Arc::new(ServingModel {
                version: serving.version,
                kind: serving.kind,
                model: Arc::clone(&serving.model),
                decider,
                loaded_at: serving.loaded_at,
            })));
        }
    }

    /// Checks every project's promoted version; used at start-up and by the watcher.
    pub async fn sync_all(&self, store: &AnyStore) -> Result<(), ServiceError> {
        for summary in store.list_projects().await? {
            // One project's broken model must not keep the others from updating.
            let _ = self.sync_project(store, summary.project.id).await;
        }
        Ok(())
    }

    /// Follows promotions made by any process: on PostgreSQL it listens for the store's
    /// notifications and swaps at once; on both databases it also polls every `interval`, which
    /// catches anything a dropped listener connection missed.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        store: AnyStore,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut listener = match &store {
                AnyStore::Postgres(pg) => match pg.listen_for_promotions().await {
                    Ok(listener) => Some(listener),
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for promotions; polling only");
                        None
                    }
                },
                AnyStore::Sqlite(_) => None,
            };
            loop {
                let notified = async {
                    match listener.as_mut() {
                        Some(listener) => listener
                            .recv()
                            .await
                            .ok()
                            .and_then(|n| n.payload().parse::<i64>().ok()),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = ticker.tick() => {
                        if let Err(error) = service.sync_all(&store).await {
                            tracing::warn!(%error, "could not check for promoted models");
                        }
                    }
                    Some(project) = notified => {
                        let _ = service.sync_project(&store, ProjectId(project)).await;
                    }
                }
            }
        })
    }

    pub fn statuses(&self) -> Vec<ProjectStatus> {
        let slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut statuses: Vec<ProjectStatus> = slots
            .iter()
            .map(|(project, slot)| {
                let serving = slot.load();
                ProjectStatus {
                    project: *project,
                    version: serving.as_ref().map(|s| s.version),
                    kind: serving.as_ref().map(|s| s.kind),
                    loaded_at: serving.as_ref().map(|s| s.loaded_at),
                    last_error: errors.get(project).cloned(),
                }
            })
            .collect();
        statuses.sort_by_key(|s| s.project);
        statuses
    }

    /// The service's metrics in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let m = &self.metrics;
        for (name, help, value) in [
            (
                "tagger_texts_tagged_total",
                "Texts tagged by the model thread.",
                &m.texts,
            ),
            (
                "tagger_auto_tagged_total",
                "Texts with at least one tag applied without a person.",
                &m.auto_tagged,
            ),
            (
                "tagger_sent_to_review_total",
                "Texts sent to a person because no tag was confident enough.",
                &m.sent_to_review,
            ),
            (
                "tagger_model_swaps_total",
                "Model versions swapped into service.",
                &m.swaps,
            ),
            (
                "tagger_model_swap_failures_total",
                "Promoted versions that failed to load or pass the smoke test.",
                &m.swap_failures,
            ),
        ] {
            describe(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        describe(
            out,
            "tagger_batch_texts",
            "histogram",
            "Texts per model batch.",
        );
        m.batch_texts.render(out, "tagger_batch_texts", "");
        describe(
            out,
            "tagger_model_seconds",
            "histogram",
            "Model time per batch.",
        );
        m.model_seconds.render(out, "tagger_model_seconds", "");
        describe(
            out,
            "tagger_queue_seconds",
            "histogram",
            "Time a request waited for the model thread.",
        );
        m.queue_seconds.render(out, "tagger_queue_seconds", "");
        describe(
            out,
            "tagger_model_version",
            "gauge",
            "The model version in service per project.",
        );
        for status in self.statuses() {
            if let Some(version) = status.version {
                let _ = writeln!(
                    out,
                    "tagger_model_version{{project=\"{}\"}} {}",
                    status.project, version
                );
            }
        }
    }
}

/// The text the smoke test scores: any well-formed model gives finite probabilities for it.
const SMOKE_TEXT: &str = "Smoke test: I cannot log in and was charged twice.";

/// Loads a version's files (hash-checked) and makes sure it scores before it may serve. The
/// files must be local: see [`ArtifactStore::fetch`].
pub fn load_and_check(
    version: &ModelVersion,
    taxonomy: &[Tag],
    groups: &[TagGroup],
) -> Result<ServingModel, ServiceError> {
    let model = TaggingModel::load(Path::new(&version.artifact_path), &version.files).map_err(
        |source| ServiceError::Load {
            version: version.id,
            source,
        },
    )?;
    let p = model.probabilities(SMOKE_TEXT);
    if p.len() != model.card.tags.len() || p.iter().any(|x| !x.is_finite()) {
        return Err(ServiceError::SmokeTest {
            version: version.id,
            reason: format!(
                "{} scores for {} tags, finite: {}",
                p.len(),
                model.card.tags.len(),
                p.iter().all(|x| x.is_finite())
            ),
        });
    }
    let card = &model.card;
    let decider = Decider::new(card.label_mode, &card.tags, &card.thresholds, taxonomy)
        .with_groups(groups)
        .with_realised_precision(card.realised_precision());
    Ok(ServingModel {
        version: version.id,
        kind: version.kind,
        model: Arc::new(model),
        decider,
        loaded_at: Utc::now(),
    })
}

fn run_model_thread(
    receiver: Receiver<(Job, Instant)>,
    config: BatchConfig,
    metrics: &ServiceMetrics,
) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        let mut texts = batch[0].0.texts.len();
        let deadline = Instant::now() + config.max_wait;
        while texts < config.max_texts {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(job) => {
                    texts += job.0.texts.len();
                    batch.push(job);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        metrics.batch_texts.observe(texts as f64);
        let started = Instant::now();
        for (_, enqueued) in &batch {
            metrics
                .queue_seconds
                .observe(started.duration_since(*enqueued).as_secs_f64());
        }
        let mut remaining = batch;
        while let Some((first, _)) = remaining.first() {
            let slot = Arc::clone(&first.slot);
            let (group, rest): (Vec<_>, Vec<_>) = remaining
                .into_iter()
                .partition(|(job, _)| Arc::ptr_eq(&job.slot, &slot));
            remaining = rest;
            tag_group(&slot, group, metrics);
        }
        metrics
            .model_seconds
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Tags every job of one project's slot together: encoder models embed all their texts in
/// one sorted, padded batch, several times faster than one by one.
fn tag_group(slot: &Slot, group: Vec<(Job, Instant)>, metrics: &ServiceMetrics) {
    // The snapshot taken here serves the whole group even if a swap happens meanwhile.
    let Some(serving) = slot.load_full() else {
        for (job, _) in group {
            let _ = job.reply.send(Err(ServiceError::NoModel(job.project)));
        }
        return;
    };
    let texts: Vec<&str> = group
        .iter()
        .flat_map(|(job, _)| job.texts.iter().map(String::as_str))
        .collect();
    let scored = match serving.model.score_batch(&texts) {
        Ok(scored) => scored,
        Err(error) => {
            let reason = error.to_string();
            for (job, _) in group {
                let _ = job.reply.send(Err(ServiceError::Scoring(reason.clone())));
            }
            return;
        }
    };
    let card = &serving.model.card;
    let heads = card.heads();
    let mut rows = scored.into_iter();
    for (job, _) in group {
        let tagged = job
            .texts
            .iter()
            .zip(rows.by_ref())
            .map(|(text, scored)| {
                let p = heads.probabilities(&scored.logits, card.temperature);
                let unfamiliarity = serving.model.unfamiliarity(&scored);
                let decision =
                    serving
                        .decider
                        .decide_scored(text, &p, unfamiliarity, job.with_rules);
                metrics.texts.fetch_add(1, Ordering::Relaxed);
                let counter = if decision.needs_review {
                    &metrics.sent_to_review
                } else {
                    &metrics.auto_tagged
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let explanation = match &job.explain {
                    Some(request) => Some(explain(&serving, text, &decision, request)?),
                    None => None,
                };
                Ok(Tagged {
                    version: serving.version,
                    decision,
                    explanation,
                })
            })
            .collect();
        let _ = job.reply.send(tagged);
    }
}

/// The words behind a verdict's tags (the ones `request` names, or the applied ones).
fn explain(
    serving: &ServingModel,
    text: &str,
    decision: &Decision,
    request: &ExplainRequest,
) -> Result<Explained, ServiceError> {
    let _span = tracing::debug_span!("explain", kind = %serving.kind).entered();
    let names = match &request.tags {
        Some(tags) => tags.clone(),
        None if !decision.applied.is_empty() => decision.applied.clone(),
        None => decision
            .scores
            .first()
            .map(|score| vec![score.tag.clone()])
            .unwrap_or_default(),
    };
    let known: Vec<(TagName, usize)> = names
        .into_iter()
        .filter_map(|name| Some((name.clone(), serving.decider.output_of(&name)?)))
        .collect();
    let outputs: Vec<usize> = known.iter().map(|(_, output)| *output).collect();
    let explanations = serving
        .model
        .explain(text, &outputs, request.top_k)
        .map_err(|error| ServiceError::Scoring(error.to_string()))?;
    Ok(Explained {
        text: text.to_string(),
        tags: known
            .into_iter()
            .zip(explanations)
            .map(|((tag, _), explanation)| TagExplanation { tag, explanation })
            .collect(),
    })
}
