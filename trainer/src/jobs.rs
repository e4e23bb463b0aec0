//! Training as a queued job. The queue is apalis on the product's own database
//! (`apalis-sqlite` for the embedded default, `apalis-postgres` in production, chosen by the
//! store's URL); what a person sees of a run — state, progress, outcome — is the
//! `training_runs` row the worker keeps up to date.
//!
//! Who handles what when things go wrong:
//! - bad data or bad parameters: the run fails once with the reason, and the job is aborted
//!   (never retried);
//! - a cancel request: the worker sees it with its next progress report and stops at the
//!   next epoch boundary; nothing is recorded;
//! - SIGTERM: the worker stops at the next epoch boundary, puts the run back in the queue
//!   and fails the job so apalis hands it to another worker;
//! - SIGKILL: apalis notices the missed heartbeats and re-enqueues the job; the next worker
//!   claims the `running` row again (one more attempt).
//!
//! No model files are written before the last step of a run, so every one of these ends
//! either with a complete version or with none.

use crate::active::{ScoreError, ScoreOptions, Strategy, score_project};
use crate::ngram::NgramSolver;
use crate::run::{Progress, TrainError, TrainRequest, train_until};
use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use datasets::store::prelude::*;
use datasets::{
    AnyStore, ConnectorStore, NewTrainingRun, ProjectId, RunOutcome, StoreError, TrainingRun,
    TrainingRunId,
};
use inference::Decider;
use inference::ModelKind;
use inference::artifact_store::{ArtifactStore, ArtifactStoreError};
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A training job as the queue carries it: just which run; everything else is in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainJob {
    pub project_id: ProjectId,
    pub run_id: TrainingRunId,
}

/// The short jobs that keep a project current, on their own queue so a long training run
/// never holds them up. Each is idempotent: a retry or a duplicate only does it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "kebab-case")]
pub enum MaintenanceJob {
    /// Rank the review queue again with the model in service (after a run or a promotion).
    Score {
        project_id: ProjectId,
        /// An active-learning strategy name (`margin`, `diverse`, …).
        strategy: String,
    },
    /// Evaluate a version again on today's held-out tickets and labels, and store it.
    Evaluate {
        project_id: ProjectId,
        version_id: datasets::ModelVersionId,
    },
    /// Tag the newest unlabelled tickets again with the model in service (after a
    /// promotion), at most `limit` of them.
    Retag { project_id: ProjectId, limit: u32 },
}

impl MaintenanceJob {
    fn project(&self) -> ProjectId {
        match self {
            Self::Score { project_id, .. }
            | Self::Evaluate { project_id, .. }
            | Self::Retag { project_id, .. } => *project_id,
        }
    }
}

/// A help-desk job (writing tags back to Zendesk, Jira or ServiceNow), on its own queue so
/// a vendor's rate limit never holds up scoring. The trainer knows no vendor: the binary
/// hands the worker a [`ConnectorJobs`] that runs these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "kebab-case")]
pub enum ConnectorJob {
    /// Send one queued write-back (the row says what), or settle it.
    WriteBack { writeback_id: datasets::WriteBackId },
    /// Read the ticket a delivery only named (a Zendesk trigger) over the help desk's REST
    /// API, and store it as that delivery. `attempt` counts earlier tries (rate limits, faults).
    Fetch {
        connector_id: datasets::ConnectorId,
        external_id: String,
        delivery_id: datasets::DeliveryId,
        attempt: u32,
    },
    /// Tag a help desk's ticket that a webhook (or a fetch) stored untagged, then queue the
    /// write-back of the model's tags: the vendor's request was answered before any tagging.
    TagTicket {
        ticket_id: datasets::TicketId,
        /// Whether the delivery created the ticket (told to the project's webhooks).
        created: bool,
    },
    /// Write a ticket's tags as they are now to the help desk it came from, if it came from
    /// one whose write-back is on: after a person's correction, or a re-tag by a newly
    /// promoted version. Labels already written are not written again.
    WriteBackTicket {
        ticket_id: datasets::TicketId,
        /// A person's labels (written only where the connector writes corrections), or the
        /// model's.
        correction: bool,
    },
    /// Send one event to a project's webhook (the delivery row says what and where).
    DeliverWebhook {
        delivery_id: datasets::WebhookDeliveryId,
    },
    /// Read the help desk's history created since `since` (resuming a stopped backfill).
    Backfill {
        connector_id: datasets::ConnectorId,
        since: chrono::DateTime<chrono::Utc>,
    },
}

/// Runs help-desk jobs for the worker. An `Err` is a fault worth a retry by the queue;
/// a job that settles its own fate (written, failed, rescheduled) returns `Ok`.
pub trait ConnectorJobs: Send + Sync + 'static {
    fn run(
        &self,
        job: ConnectorJob,
        queue: JobQueue,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// How many help-desk jobs one worker runs at once: they wait on the network, not the CPU.
const CONNECTOR_CONCURRENCY: usize = 4;

/// The strategy the queue is scored with unless a job says otherwise: uncertain tickets
/// that are unlike each other.
pub const DEFAULT_SCORE_STRATEGY: Strategy = Strategy::Diverse;

/// How many times a job is started before the queue gives up (crashes and shutdowns
/// count; bad data never retries).
pub const MAX_ATTEMPTS: usize = 5;
/// Progress is written at most this often (and always at the end of a stage).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Errors of the queue itself.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the job queue's tables could not be set up: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the job could not be queued: {0}")]
    Push(String),
    #[error("the worker stopped with an error: {0}")]
    Worker(String),
    #[error("invalid training parameters: {0}")]
    Params(String),
}

/// Knobs of the queue, the same for every process that shares it.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// How often a worker says it is alive; a worker silent for `missed_heartbeats` of these
    /// is taken for dead and its job handed to another.
    pub heartbeat: Duration,
    pub missed_heartbeats: usize,
    /// How often an idle worker looks for new jobs.
    pub poll_interval: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(10),
            missed_heartbeats: 3,
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// The queue of training jobs on the store's database.
#[derive(Clone)]
pub enum JobQueue {
    Sqlite {
        training: SqliteStorage<TrainJob>,
        scoring: SqliteStorage<MaintenanceJob>,
        connectors: SqliteStorage<ConnectorJob>,
        poll: Duration,
    },
    Postgres {
        training: PostgresStorage<TrainJob>,
        scoring: PostgresStorage<MaintenanceJob>,
        connectors: PostgresStorage<ConnectorJob>,
        poll: Duration,
    },
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { .. } => f.write_str("JobQueue(sqlite)"),
            Self::Postgres { .. } => f.write_str("JobQueue(postgres)"),
        }
    }
}

impl JobQueue {
    /// The queue in the store's database; creates apalis's tables when missing.
    pub async fn open(store: &AnyStore, settings: &QueueSettings) -> Result<Self, JobError> {
        Ok(match store {
            AnyStore::Sqlite(sqlite) => {
                // The store's write connection: the queue's polls, locks and acknowledgements
                // are writes, and take their turn with the store's (see `SqliteStore::writer`).
                let pool = sqlite.writer();
                // apalis keeps its migration history in the same `_sqlx_migrations` table as
                // ours on SQLite: each migrator must ignore the other's entries.
                let mut migrator = SqliteStorage::<()>::migrations();
                migrator.set_ignore_missing(true);
                migrator.run(pool).await?;
                let config = |queue: &str| {
                    apalis_sqlite::Config::default()
                        .queue(queue)
                        .batch_size(1)
                        .heartbeat_interval(settings.heartbeat)
                        .missed_heartbeats(settings.missed_heartbeats)
                };
                Self::Sqlite {
                    training: SqliteStorage::new(pool).with_config(config("training")),
                    scoring: SqliteStorage::new(pool).with_config(config("maintenance")),
                    connectors: SqliteStorage::new(pool).with_config(config("connectors")),
                    poll: settings.poll_interval,
                }
            }
            AnyStore::Postgres(postgres) => {
                let pool = postgres.pool();
                // apalis-postgres keeps everything, its migration history included, in its
                // own `apalis` schema.
                PostgresStorage::<()>::migrations().run(pool).await?;
                let config = |queue: &str| {
                    apalis_postgres::Config::default()
                        .queue(queue)
                        .batch_size(1)
                        .heartbeat_interval(settings.heartbeat)
                        .missed_heartbeats(settings.missed_heartbeats)
                };
                Self::Postgres {
                    training: PostgresStorage::new(pool).with_config(config("training")),
                    scoring: PostgresStorage::new(pool).with_config(config("maintenance")),
                    connectors: PostgresStorage::new(pool).with_config(config("connectors")),
                    poll: settings.poll_interval,
                }
            }
        })
    }

    async fn push_training(&self, job: TrainJob) -> Result<(), JobError> {
        let task = TaskBuilder::new(job).max_attempts(MAX_ATTEMPTS).build();
        let pushed = match self {
            Self::Sqlite { training, .. } => training
                .clone()
                .push_task(task)
                .await
                .map_err(|e| e.to_string()),
            Self::Postgres { training, .. } => training
                .clone()
                .push_task(task)
                .await
                .map_err(|e| e.to_string()),
        };
        pushed.map_err(JobError::Push)
    }

    /// Queues a short job (scoring, evaluation, re-tagging).
    pub async fn push_maintenance(&self, job: MaintenanceJob) -> Result<(), JobError> {
        let task = TaskBuilder::new(job).max_attempts(3).build();
        let pushed = match self {
            Self::Sqlite { scoring, .. } => scoring
                .clone()
                .push_task(task)
                .await
                .map_err(|e| e.to_string()),
            Self::Postgres { scoring, .. } => scoring
                .clone()
                .push_task(task)
                .await
                .map_err(|e| e.to_string()),
        };
        pushed.map_err(JobError::Push)
    }

    /// Queues a help-desk job, to start after `delay` (a vendor's `Retry-After`, a backoff).
    pub async fn push_connector(&self, job: ConnectorJob, delay: Duration) -> Result<(), JobError> {
        let task = TaskBuilder::new(job)
            .max_attempts(3)
            .run_after(delay)
            .build();
        let pushed = match self {
            Self::Sqlite { connectors, .. } => connectors
                .clone()
                .push_task(task)
                .await
                .map_err(|e| e.to_string()),
            Self::Postgres { connectors, .. } => connectors
                .clone()
                .push_task(task)
                .await
                .map_err(|e| e.to_string()),
        };
        pushed.map_err(JobError::Push)
    }

    /// After a promotion or a finished training run: score the queue again.
    pub async fn rescore(&self, project: ProjectId) -> Result<(), JobError> {
        self.push_maintenance(MaintenanceJob::Score {
            project_id: project,
            strategy: DEFAULT_SCORE_STRATEGY.as_str().to_string(),
        })
        .await
    }
}

/// The token budgets a tuned encoder may be given: below 8 a ticket is hardly read; 512 is
/// BERT-style encoders' own position limit (a smaller limit of the encoder still caps it).
pub const MIN_TUNED_TOKENS: usize = 8;
pub const MAX_TUNED_TOKENS: usize = 512;

/// Hyper-parameters a training job may set; everything left out takes the kind's default.
/// Unknown keys are refused so a typo is not silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000)]
    pub epochs: Option<usize>,
    /// Stop after this many epochs without a better validation loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000)]
    pub patience: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 10)]
    pub learning_rate: Option<f64>,
    /// `ngram`: width of the hidden layer (0: linear).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 4096)]
    pub hidden: Option<usize>,
    /// `ngram`: an n-gram must occur in at least this many training tickets.
    #[serde(skip_serializing_if = "Option::is_none")]
    // Stated as int64: `u32`'s own schema says int32, whose bounds generators enforce.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub min_df: Option<u32>,
    /// `ngram`: model selection's budget in millions of weight updates (the n-gram
    /// families, L2 and epochs are chosen by cross-validation on the training tickets within
    /// it); 0 trains with the given parameters as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1000000000)]
    pub selection_budget: Option<u64>,
    /// `ngram`: how the linear model is fitted: `lbfgs` (the regularised loss minimised
    /// to convergence, its strength chosen on the validation tickets), `adagrad` (epochs
    /// with early stopping; `epochs`, `patience`, `learning_rate`) or `auto` (the default:
    /// `lbfgs` for one tag per ticket, `adagrad` for multi-label and grouped projects).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(auto|lbfgs|adagrad)$")]
    pub solver: Option<NgramSolver>,
    /// `ngram` with `lbfgs`: the loss weight C (the summed loss against ½‖W‖², as
    /// scikit-learn's `C`); absent, it is chosen on the validation tickets.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 1000000)]
    pub loss_weight: Option<f64>,
    /// `encoder-head`: L2 penalty on the head.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub l2: Option<f64>,
    /// `encoder-head`: Hugging Face id of the encoder, read from the local cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
    /// `encoder-head`: encoder threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 256)]
    pub threads: Option<usize>,
    /// `encoder-head`: how many windows of 128 tokens a long ticket is read in, their
    /// embeddings averaged (the default 1 cuts it at 128 tokens; 4 reads 512).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 8)]
    pub windows: Option<usize>,
    /// `finetune` and `setfit`: the word pieces of a ticket the encoder is tuned and served
    /// on, special tokens included (default 64); a longer ticket is cut there. Time and
    /// memory per step grow with it; the encoder's own position limit caps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 8, maximum = 512)]
    pub max_tokens: Option<usize>,
    /// `setfit`: most sentence pairs of the contrastive phase (its time grows with them).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub pairs: Option<usize>,
    /// Precision auto-applied tags should reach (0 < p ≤ 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub target_precision: Option<f64>,
    /// Promote the new version when the promotion guard allows it (the retraining policy's
    /// runs); otherwise it stays a candidate for a person to promote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_promote: Option<bool>,
}

impl TrainingParams {
    /// The full request for `kind`, or why these parameters cannot be used.
    pub fn request(&self, kind: ModelKind) -> Result<TrainRequest, String> {
        let mut request = TrainRequest {
            kind,
            ..TrainRequest::default()
        };
        if let Some(epochs) = self.epochs {
            if !(1..=10_000).contains(&epochs) {
                return Err(format!("epochs must be between 1 and 10000, not {epochs}"));
            }
            request.ngram.epochs = epochs;
            request.encoder_head.epochs = epochs;
            request.finetune.epochs = epochs;
            request.setfit.head_epochs = epochs;
        }
        if let Some(patience) = self.patience {
            if !(1..=10_000).contains(&patience) {
                return Err("patience must be 1 to 10000".into());
            }
            request.ngram.patience = patience;
            request.encoder_head.patience = patience;
            request.finetune.patience = patience;
            request.setfit.head_patience = patience;
        }
        if let Some(rate) = self.learning_rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= 10.0) {
                return Err(format!("learning_rate must be in (0, 10], not {rate}"));
            }
            request.ngram.learning_rate = rate as f32;
            request.encoder_head.learning_rate = rate;
            request.finetune.learning_rate = rate;
            // The encoder's rate, as for `finetune`; the head keeps encoder-head's.
            request.setfit.learning_rate = rate;
        }
        if let Some(hidden) = self.hidden {
            if hidden > 4096 {
                return Err(format!("hidden must be at most 4096, not {hidden}"));
            }
            request.ngram.hidden = hidden;
        }
        if let Some(min_df) = self.min_df {
            request.ngram.min_df = min_df;
        }
        if let Some(budget) = self.selection_budget {
            if budget > 1_000_000_000 {
                return Err(format!(
                    "selection_budget must be at most 1000000000 (million weight updates), not {budget}"
                ));
            }
            request.ngram.selection_budget = budget;
        }
        if let Some(solver) = self.solver {
            request.ngram.solver = solver;
        }
        if let Some(weight) = self.loss_weight {
            if !(weight.is_finite() && weight > 0.0 && weight <= 1e6) {
                return Err(format!("loss_weight must be in (0, 1000000], not {weight}"));
            }
            request.ngram.loss_weight = Some(weight as f32);
        }
        if let Some(l2) = self.l2 {
            if !(l2.is_finite() && l2 >= 0.0) {
                return Err(format!("l2 must be zero or more, not {l2}"));
            }
            request.encoder_head.l2 = l2;
        }
        if let Some(encoder) = &self.encoder {
            request.encoder_head.encoder = encoder.clone();
            request.finetune.encoder = encoder.clone();
            request.setfit.encoder = encoder.clone();
        }
        if let Some(threads) = self.threads {
            if !(1..=256).contains(&threads) {
                return Err(format!("threads must be between 1 and 256, not {threads}"));
            }
            request.encoder_head.threads = threads;
            request.finetune.threads = threads;
            request.setfit.threads = threads;
        }
        if let Some(windows) = self.windows {
            let most = inference::encoder::tokenize::MAX_WINDOWS;
            if !(1..=most).contains(&windows) {
                return Err(format!(
                    "windows must be between 1 and {most}, not {windows}"
                ));
            }
            request.encoder_head.windows = windows;
        }
        if let Some(tokens) = self.max_tokens {
            if !(MIN_TUNED_TOKENS..=MAX_TUNED_TOKENS).contains(&tokens) {
                return Err(format!(
                    "max_tokens must be between {MIN_TUNED_TOKENS} and {MAX_TUNED_TOKENS}, not {tokens}"
                ));
            }
            request.finetune.max_tokens = tokens;
            request.setfit.max_tokens = tokens;
        }
        if let Some(pairs) = self.pairs {
            if !(1..=1_000_000).contains(&pairs) {
                return Err(format!("pairs must be between 1 and 1000000, not {pairs}"));
            }
            request.setfit.max_pairs = pairs;
        }
        if let Some(precision) = self.target_precision {
            if !(precision > 0.0 && precision <= 1.0) {
                return Err(format!(
                    "target_precision must be in (0, 1], not {precision}"
                ));
            }
            request.target_precision = precision;
        }
        Ok(request)
    }
}

/// When to retrain by itself while people label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrainPolicy {
    /// Queue a run after this many tickets were labelled since the queue was last scored;
    /// 0 turns the policy off.
    pub after_labels: u64,
    /// A fast kind, so the queue improves within seconds.
    pub kind: ModelKind,
}

/// Called after people label: queues an auto-promoting run of the policy's kind when enough
/// labels arrived and no run of the project is queued or running. Returns the queued run.
pub async fn retrain_if_due(
    store: &AnyStore,
    queue: &JobQueue,
    project: ProjectId,
    policy: &RetrainPolicy,
) -> Result<Option<TrainingRun>, JobError> {
    if policy.after_labels == 0 {
        return Ok(None);
    }
    let stats = store.review_queue_stats(project).await?;
    if stats.labelled_since_scoring < policy.after_labels {
        return Ok(None);
    }
    let busy = store
        .training_runs(project, 20)
        .await?
        .iter()
        .any(|run| !run.status.is_final());
    if busy {
        return Ok(None);
    }
    let params = TrainingParams {
        auto_promote: Some(true),
        ..TrainingParams::default()
    };
    let run = submit_training(store, queue, project, policy.kind, &params, "policy").await?;
    tracing::info!(project = %project, run = %run.id, labels = stats.labelled_since_scoring, "retraining after new labels");
    Ok(Some(run))
}

/// Queues a training run: the row first (so it can be shown and cancelled at once), then
/// the job. Parameters are checked here so a bad request is refused, not queued.
pub async fn submit_training(
    store: &AnyStore,
    queue: &JobQueue,
    project: ProjectId,
    kind: ModelKind,
    params: &TrainingParams,
    requested_by: &str,
) -> Result<TrainingRun, JobError> {
    params.request(kind).map_err(JobError::Params)?;
    let run = store
        .create_training_run(
            project,
            &NewTrainingRun {
                kind,
                params: serde_json::to_value(params)
                    .map_err(|e| JobError::Params(e.to_string()))?,
                requested_by: requested_by.to_string(),
            },
        )
        .await?;
    let job = TrainJob {
        project_id: project,
        run_id: run.id,
    };
    if let Err(error) = queue.push_training(job).await {
        // Never leave a queued row that no job will ever run.
        let _ = store.cancel_training_run(project, run.id).await;
        return Err(error);
    }
    Ok(run)
}

/// What every job of a worker can reach.
#[derive(Clone)]
pub struct WorkerState {
    pub store: AnyStore,
    /// Where model files go and are found (its local directory absolute: versions record it).
    pub artifacts: ArtifactStore,
    /// The worker's name, recorded on the runs it takes.
    pub name: String,
    /// Set when the worker has been asked to shut down: training stops at the next epoch.
    pub stopping: Arc<AtomicBool>,
    /// The promotion guard's margin, for runs that promote themselves.
    pub guard_margin: f64,
    /// After a run promotes itself, tag this many of the newest tickets no person labelled
    /// with the new version (0: none).
    pub retag_after_promotion: u32,
    /// Runs help-desk jobs; without it this worker takes none.
    pub connector_jobs: Option<Arc<dyn ConnectorJobs>>,
}

/// Runs training jobs one at a time until `shutdown` completes; then stops the job in
/// progress at its next epoch boundary, puts it back in the queue, and returns.
pub async fn run_worker(
    queue: JobQueue,
    state: WorkerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), JobError> {
    let name = state.name.clone();
    let stopping = state.stopping.clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stopping.store(true, Ordering::SeqCst);
        tracing::info!("worker shutting down: the job in progress stops at its next epoch");
        let _ = stop.send(true);
    });
    // One signal per apalis worker: both stop together.
    let signal = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
            Ok::<(), std::io::Error>(())
        }
    };
    let scorer_name = format!("{name}-maintenance");
    tracing::info!(worker = %name, "training worker started");
    // Training and scoring are separate apalis workers so a long training run never holds
    // up the review queue; each runs one job at a time. Each runs in a task of its own: an
    // apalis worker fetches whenever its task is woken, so two sharing a task (`join!`)
    // woke each other with every fetch, hundreds of times a second, however long the poll
    // interval (issue 14, finding 11). On its own, an idle worker fetches once per interval.
    let connector_jobs = state.connector_jobs.clone();
    let connectors_name = format!("{name}-connectors");
    let (training, scoring, connectors) = match queue.clone() {
        JobQueue::Sqlite {
            training,
            scoring,
            connectors,
            poll,
        } => (
            tokio::spawn(
                WorkerBuilder::new(name.as_str())
                    .backend(training.poll_with_interval(poll))
                    .data(state.clone())
                    .data(queue.clone())
                    .concurrency(1)
                    .build(train_job)
                    .run_until(signal()),
            ),
            tokio::spawn(
                WorkerBuilder::new(scorer_name.as_str())
                    .backend(scoring.poll_with_interval(poll))
                    .data(state)
                    .data(queue.clone())
                    .concurrency(1)
                    .build(maintenance_job)
                    .run_until(signal()),
            ),
            connector_jobs.map(|jobs| {
                tokio::spawn(
                    WorkerBuilder::new(connectors_name.as_str())
                        .backend(connectors.poll_with_interval(poll))
                        .data(jobs)
                        .data(queue.clone())
                        .concurrency(CONNECTOR_CONCURRENCY)
                        .build(connector_job)
                        .run_until(signal()),
                )
            }),
        ),
        JobQueue::Postgres {
            training,
            scoring,
            connectors,
            poll,
        } => (
            tokio::spawn(
                WorkerBuilder::new(name.as_str())
                    .backend(training.poll_with_interval(poll))
                    .data(state.clone())
                    .data(queue.clone())
                    .concurrency(1)
                    .build(train_job)
                    .run_until(signal()),
            ),
            tokio::spawn(
                WorkerBuilder::new(scorer_name.as_str())
                    .backend(scoring.poll_with_interval(poll))
                    .data(state)
                    .data(queue.clone())
                    .concurrency(1)
                    .build(maintenance_job)
                    .run_until(signal()),
            ),
            connector_jobs.map(|jobs| {
                tokio::spawn(
                    WorkerBuilder::new(connectors_name.as_str())
                        .backend(connectors.poll_with_interval(poll))
                        .data(jobs)
                        .data(queue.clone())
                        .concurrency(CONNECTOR_CONCURRENCY)
                        .build(connector_job)
                        .run_until(signal()),
                )
            }),
        ),
    };
    let connectors = async move {
        match connectors {
            Some(handle) => handle.await,
            None => Ok(Ok(())),
        }
    };
    let (training, scoring, connectors) = tokio::join!(training, scoring, connectors);
    let ended = |joined: Result<Result<(), WorkerError>, tokio::task::JoinError>| match joined {
        Ok(result) => result.map_err(|e| JobError::Worker(e.to_string())),
        Err(error) => Err(JobError::Worker(error.to_string())),
    };
    ended(training).and(ended(scoring)).and(ended(connectors))
}

/// One help-desk job, run by the binary's handler.
#[tracing::instrument(name = "connector_job", skip_all)]
async fn connector_job(
    job: ConnectorJob,
    jobs: Data<Arc<dyn ConnectorJobs>>,
    queue: Data<JobQueue>,
) -> Result<(), BoxDynError> {
    jobs.run(job, (*queue).clone())
        .await
        .map_err(|reason| Box::new(std::io::Error::other(reason)) as BoxDynError)
}

/// One short job (see `MaintenanceJob`).
#[tracing::instrument(name = "maintenance_job", skip_all, fields(project = %job.project()))]
async fn maintenance_job(
    job: MaintenanceJob,
    state: Data<WorkerState>,
    queue: Data<JobQueue>,
) -> Result<(), BoxDynError> {
    let project = job.project();
    match job {
        MaintenanceJob::Score { strategy, .. } => score_job(&state, project, &strategy).await,
        MaintenanceJob::Evaluate { version_id, .. } => {
            evaluate_job(&state.store, &state.artifacts, project, version_id).await
        }
        MaintenanceJob::Retag { limit, .. } => {
            retag_job(&state.store, &state.artifacts, &queue, project, limit).await
        }
    }
}

/// Evaluates a version on today's held-out tickets and stores the result.
#[tracing::instrument(skip_all, fields(version = %version))]
async fn evaluate_job(
    store: &AnyStore,
    artifacts: &ArtifactStore,
    project: ProjectId,
    version: datasets::ModelVersionId,
) -> Result<(), BoxDynError> {
    let project = match store.project(project).await {
        Ok(project) => project,
        Err(StoreError::NotFound(what)) => return Err(abort(format!("{what} not found"))),
        Err(error) => return Err(Box::new(error)),
    };
    let version = match store.model_version(project.id, version).await {
        Ok(version) => version,
        Err(StoreError::NotFound(what)) => return Err(abort(format!("{what} not found"))),
        Err(error) => return Err(Box::new(error)),
    };
    let version = artifacts.fetch(&version).await.map_err(fetch_failed)?;
    let (evaluation, _) = crate::run::evaluate_version(store, &project, &version)
        .await
        .map_err(|error| match error {
            TrainError::Store(error) => Box::new(error) as BoxDynError,
            other => abort(other.to_string()),
        })?;
    let metrics = serde_json::to_value(&evaluation).map_err(|e| abort(e.to_string()))?;
    store
        .set_model_metrics(project.id, version.id, &metrics)
        .await?;
    tracing::info!(version = %version.id, "version evaluated again");
    Ok(())
}

/// Tags the newest tickets nobody labelled with the model in service, replacing the model
/// labels an older version gave them; at most `limit` tickets.
#[tracing::instrument(skip_all, fields(limit = limit))]
async fn retag_job(
    store: &AnyStore,
    artifacts: &ArtifactStore,
    queue: &JobQueue,
    project: ProjectId,
    limit: u32,
) -> Result<(), BoxDynError> {
    let Some(version) = store.promoted_model_version(project).await? else {
        return Ok(());
    };
    let version = artifacts.fetch(&version).await.map_err(fetch_failed)?;
    let model = crate::run::load_version(&version).map_err(|e| abort(e.to_string()))?;
    let taxonomy = store.list_tags(project).await?;
    let groups = store.list_tag_groups(project).await?;
    let languages = store.project(project).await?.languages;
    // The newest `limit` tickets without a person's labels: one pass over the ids, keeping
    // the tail, so the work is bounded by the limit, not by the backlog.
    let mut newest: std::collections::VecDeque<datasets::LabelledTicket> =
        std::collections::VecDeque::new();
    let mut after = None;
    loop {
        let page = store
            .tickets_after(project, after, datasets::store::MAX_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.ticket.id);
        for ticket in page {
            let labelled_by_person = ticket
                .labels
                .iter()
                .any(|l| l.source == datasets::LabelSource::Human);
            if !labelled_by_person {
                newest.push_back(ticket);
                if newest.len() > limit as usize {
                    newest.pop_front();
                }
            }
        }
    }
    let tickets: Vec<datasets::LabelledTicket> = newest.into_iter().collect();
    let texts: Vec<String> = tickets.iter().map(|t| t.ticket.text()).collect();
    let card = model.card.clone();
    let heads = card.heads();
    let decider = Decider::new(card.label_mode, &card.tags, &card.thresholds, &taxonomy)
        .with_groups(&groups)
        .with_languages(&languages);
    let decisions = tokio::task::spawn_blocking(move || {
        texts
            .chunks(64)
            .map(|chunk| {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                let scores = model.score_batch(&refs)?;
                Ok(refs
                    .iter()
                    .zip(scores)
                    .map(|(text, scored)| {
                        let probabilities = heads.probabilities(&scored.logits, card.temperature);
                        let unfamiliarity = model.unfamiliarity(&scored);
                        decider.decide_scored(text, &probabilities, unfamiliarity, true)
                    })
                    .collect::<Vec<_>>())
            })
            .collect::<Result<Vec<_>, inference::ModelError>>()
    })
    .await
    .map_err(|e| Box::new(e) as BoxDynError)?
    .map_err(|e| abort(e.to_string()))?;
    let ids: std::collections::HashMap<&str, datasets::TagId> =
        taxonomy.iter().map(|t| (t.name.as_str(), t.id)).collect();
    // Tickets from a help desk that takes our tags get the new version's tags written back
    // (only those not written before: the write-back remembers them).
    let connectors = store.connectors().await?;
    let writes_back: std::collections::HashSet<&str> = connectors
        .iter()
        .filter(|c| c.project_id == project && c.settings.write_back)
        .map(|c| c.name.ticket_source())
        .collect();
    for (ticket, decision) in tickets.iter().zip(decisions.into_iter().flatten()) {
        let applied: Vec<(datasets::TagId, f32)> = decision
            .scores
            .iter()
            .filter(|score| score.applied)
            .filter_map(|score| Some((*ids.get(score.tag.as_str())?, score.probability)))
            .collect();
        store
            .set_model_labels(project, ticket.ticket.id, version.id, &applied)
            .await?;
        if writes_back.contains(ticket.ticket.source.as_str()) {
            let job = ConnectorJob::WriteBackTicket {
                ticket_id: ticket.ticket.id,
                correction: false,
            };
            queue.push_connector(job, Duration::ZERO).await?;
        }
    }
    tracing::info!(project = %project, version = %version.id, tickets = tickets.len(), "tickets tagged again");
    Ok(())
}

/// The review queue ranked again with the model in service.
#[tracing::instrument(skip_all, fields(strategy = strategy))]
async fn score_job(
    state: &WorkerState,
    project: ProjectId,
    strategy: &str,
) -> Result<(), BoxDynError> {
    let strategy: Strategy = strategy.parse().map_err(|e| abort(format!("{e}")))?;
    let options = ScoreOptions {
        artifacts: state.artifacts.clone(),
        ..ScoreOptions::default()
    };
    match score_project(&state.store, project, strategy, &options).await {
        Ok(summary) => {
            tracing::info!(%project, queued = summary.queued, strategy = %summary.strategy.as_str(), "review queue scored");
            Ok(())
        }
        Err(ScoreError::Store(StoreError::NotFound(what))) => {
            Err(abort(format!("{what} not found")))
        }
        // A broken model file or bad options will not mend by retrying.
        Err(
            error @ (ScoreError::Model(_) | ScoreError::QueueSize { .. } | ScoreError::Select(_)),
        ) => {
            tracing::warn!(%project, %error, "scoring failed");
            Err(abort(error.to_string()))
        }
        Err(ScoreError::Artifacts(error)) if error.is_lasting() => {
            tracing::warn!(%project, %error, "scoring failed");
            Err(abort(error.to_string()))
        }
        Err(error) => Err(Box::new(error)),
    }
}

/// Why a job ended without success, as apalis should treat it.
fn abort(reason: impl Into<String>) -> BoxDynError {
    Box::new(AbortError::new(reason.into()))
}

/// Whether a failed run may succeed when tried again.
fn worth_retrying(error: &TrainError) -> bool {
    match error {
        TrainError::Store(_) | TrainError::Worker(_) => true,
        TrainError::Artifacts(error) => !error.is_lasting(),
        _ => false,
    }
}

/// A refused or missing model file ends the job; a network fault is tried again.
fn fetch_failed(error: ArtifactStoreError) -> BoxDynError {
    if error.is_lasting() {
        abort(error.to_string())
    } else {
        Box::new(error)
    }
}

/// One training job. `Ok` and aborts end the job; any other error makes apalis run it again
/// (up to `MAX_ATTEMPTS`).
#[tracing::instrument(name = "training_job", skip_all, fields(run = %job.run_id, project = %job.project_id))]
async fn train_job(
    job: TrainJob,
    state: Data<WorkerState>,
    queue: Data<JobQueue>,
) -> Result<(), BoxDynError> {
    let store = &state.store;
    let run = match store
        .claim_training_run(job.project_id, job.run_id, &state.name)
        .await
    {
        Ok(run) => run,
        // Cancelled while queued, or already finished by a worker that was thought dead.
        Err(StoreError::Conflict(reason)) => {
            tracing::info!(run = %job.run_id, %reason, "skipping a job whose run has ended");
            return Ok(());
        }
        Err(StoreError::NotFound(what)) => return Err(abort(format!("{what} not found"))),
        Err(other) => return Err(Box::new(other)),
    };
    let finish = |outcome: RunOutcome| async move {
        if let Err(error) = store
            .finish_training_run(job.project_id, job.run_id, &outcome)
            .await
        {
            tracing::warn!(run = %job.run_id, %error, "could not record how the run ended");
        }
    };
    if run.cancel_requested {
        finish(RunOutcome::Cancelled).await;
        return Ok(());
    }
    // Each claim counts an attempt, also the claims of workers that were killed before they
    // could report (out of memory, a node lost): the queue hands such a job on without
    // counting it, so the run's own count is what stops a job that kills its workers.
    if run.attempts as usize > MAX_ATTEMPTS {
        let reason = format!(
            "started {} times without finishing: its workers stopped each time (out of memory?); \
             not tried again",
            run.attempts - 1
        );
        tracing::warn!(run = %run.id, %reason, "giving up on a training run");
        finish(RunOutcome::Failed(reason.clone())).await;
        return Err(abort(reason));
    }
    let kind = run.kind;
    let params = serde_json::from_value::<TrainingParams>(run.params.clone())
        .map_err(|e| format!("invalid training parameters: {e}"));
    let auto_promote = params.as_ref().is_ok_and(|p| p.auto_promote == Some(true));
    let request = match params.and_then(|params| params.request(kind)) {
        Ok(request) => request,
        Err(reason) => {
            finish(RunOutcome::Failed(reason.clone())).await;
            return Err(abort(reason));
        }
    };
    let project = match store.project(job.project_id).await {
        Ok(project) => project,
        Err(error) => return Err(Box::new(error)),
    };
    tracing::info!(run = %run.id, project = %project.name, %kind, attempt = run.attempts, "training");

    let cancelled = Arc::new(AtomicBool::new(false));
    let (reports, mut incoming) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let writer = {
        let store = store.clone();
        let cancelled = cancelled.clone();
        tokio::spawn(async move {
            let mut last_write: Option<Instant> = None;
            let mut pending: Option<serde_json::Value> = None;
            loop {
                let next = match pending.take() {
                    // Hold a report back at most until the next write is due.
                    Some(held) => {
                        let wait = last_write.map_or(Duration::ZERO, |at| {
                            PROGRESS_EVERY.saturating_sub(at.elapsed())
                        });
                        match tokio::time::timeout(wait, incoming.recv()).await {
                            Ok(Some(newer)) => {
                                pending = Some(newer);
                                continue;
                            }
                            Ok(None) => Some((held, true)),
                            Err(_) => Some((held, false)),
                        }
                    }
                    None => incoming.recv().await.map(|report| (report, false)),
                };
                let Some((report, last)) = next else { break };
                let due = last_write.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY);
                if !due && !last {
                    pending = Some(report);
                    continue;
                }
                match store
                    .record_training_progress(job.project_id, job.run_id, &report)
                    .await
                {
                    Ok(true) => cancelled.store(true, Ordering::SeqCst),
                    Ok(false) => {}
                    Err(error) => tracing::warn!(%error, "could not record training progress"),
                }
                last_write = Some(Instant::now());
                if last {
                    break;
                }
            }
        })
    };
    let mut tracker = crate::progress::ProgressTracker::default();
    let stopping = state.stopping.clone();
    let stop_flag = cancelled.clone();
    let progress = move |event: Progress| {
        let _ = reports.send(tracker.report(&event, Instant::now()));
        if stop_flag.load(Ordering::SeqCst) || stopping.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let result = train_until(store, &project, &request, &state.artifacts, progress).await;
    let _ = writer.await;

    match result {
        Ok(outcome) => {
            tracing::info!(run = %run.id, version = %outcome.version.id, seconds = outcome.train_seconds, "trained");
            // Promote first, so a run seen as succeeded has had its policy applied.
            if auto_promote
                && promote_if_allowed(store, &outcome.version, state.guard_margin).await
                && state.retag_after_promotion > 0
            {
                // The new version's suggestions reach the pages only through stored tags.
                let retag = MaintenanceJob::Retag {
                    project_id: job.project_id,
                    limit: state.retag_after_promotion,
                };
                if let Err(error) = queue.push_maintenance(retag).await {
                    tracing::warn!(%error, "could not queue a re-tagging after the promotion");
                }
            }
            finish(RunOutcome::Succeeded(outcome.version.id)).await;
            // The queue follows the model in service; the retraining policy counts labels
            // since the last scoring, so this also restarts its count.
            if let Err(error) = queue.rescore(job.project_id).await {
                tracing::warn!(%error, "could not queue a rescoring of the review queue");
            }
            Ok(())
        }
        Err(TrainError::Stopped) if cancelled.load(Ordering::SeqCst) => {
            tracing::info!(run = %run.id, "training cancelled");
            finish(RunOutcome::Cancelled).await;
            Ok(())
        }
        Err(TrainError::Stopped) => {
            let reason = format!(
                "worker {} shut down during the run; queued again",
                state.name
            );
            tracing::info!(run = %run.id, "{reason}");
            finish(RunOutcome::Requeued(reason.clone())).await;
            Err(reason.into())
        }
        // The database, the training thread or an upload's network: worth another attempt
        // while any are left.
        Err(error) if worth_retrying(&error) && (run.attempts as usize) < MAX_ATTEMPTS => {
            let reason = error.to_string();
            finish(RunOutcome::Requeued(reason.clone())).await;
            Err(reason.into())
        }
        Err(error) => {
            let reason = error.to_string();
            tracing::warn!(run = %run.id, %reason, "training failed");
            finish(RunOutcome::Failed(reason.clone())).await;
            Err(abort(reason))
        }
    }
}

/// Promotes a policy run's version when the guard allows it, recorded as done by `policy`.
/// Returns whether it is now in service.
async fn promote_if_allowed(
    store: &AnyStore,
    version: &datasets::ModelVersion,
    margin: f64,
) -> bool {
    let project = version.project_id;
    let promoted = match store.promoted_model_version(project).await {
        Ok(promoted) => promoted,
        Err(error) => {
            tracing::warn!(%error, "cannot read the version in service; not promoting");
            return false;
        }
    };
    if let Err(refusal) = datasets::registry::check_guard(version, promoted.as_ref(), margin) {
        tracing::info!(version = %version.id, %refusal, "retrained version left as a candidate");
        return false;
    }
    match store
        .promote_model_version(project, version.id, "policy")
        .await
    {
        Ok(_) => {
            tracing::info!(version = %version.id, "retrained version promoted");
            true
        }
        Err(error) => {
            tracing::warn!(%error, "could not promote the retrained version");
            false
        }
    }
}
