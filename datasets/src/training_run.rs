//! Training runs: a queued training job as the product shows it — state, live progress,
//! outcome — kept in the store so the API, the web pages and every worker see the same.

use crate::error::StoreError;
use crate::ids::{ModelVersionId, ProjectId, TrainingRunId};
use crate::model_kind::ModelKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use std::fmt;
use std::str::FromStr;

/// Where a run is in its life. `queued` → `running` → one of the three final states; a
/// worker that stops mid-run (shutdown) puts it back to `queued` for another worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Nothing more will happen to a run in this state.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(format!("unknown run status {other:?}")),
        })
    }
}

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrainingRun {
    pub id: TrainingRunId,
    pub project_id: ProjectId,
    pub kind: ModelKind,
    /// Hyper-parameters as asked for.
    pub params: serde_json::Value,
    pub status: RunStatus,
    /// The latest progress report (stage, epoch, losses, ETA), as the worker wrote it.
    pub progress: serde_json::Value,
    pub cancel_requested: bool,
    /// How many times a worker has started it (more than one after a retry).
    pub attempts: i32,
    /// The worker running it, or that ran it last.
    pub worker: Option<String>,
    /// Why it failed, or why it was last put back in the queue.
    pub error: Option<String>,
    /// The candidate version it produced.
    pub version_id: Option<ModelVersionId>,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What is needed to queue a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTrainingRun {
    pub kind: ModelKind,
    pub params: serde_json::Value,
    pub requested_by: String,
}

/// How a worker ends its hold on a run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Succeeded(ModelVersionId),
    /// Will not succeed if tried again (bad data, bad parameters, a broken model file).
    Failed(String),
    /// Stopped because someone asked.
    Cancelled,
    /// The worker is going away; another one will run it again.
    Requeued(String),
}

pub(crate) const TRAINING_RUN_COLUMNS: &str = "id, project_id, kind, params, status, progress, \
    cancel_requested, attempts, worker, error, version_id, requested_by, created_at, started_at, \
    updated_at, finished_at";

#[derive(sqlx::FromRow)]
pub(crate) struct TrainingRunRow {
    id: i64,
    project_id: i64,
    kind: String,
    params: Json<serde_json::Value>,
    status: String,
    progress: Json<serde_json::Value>,
    cancel_requested: bool,
    attempts: i32,
    worker: Option<String>,
    error: Option<String>,
    version_id: Option<i64>,
    requested_by: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<TrainingRunRow> for TrainingRun {
    type Error = StoreError;

    fn try_from(row: TrainingRunRow) -> Result<Self, Self::Error> {
        let status = row.status.parse().map_err(|detail: String| {
            StoreError::Database(sqlx::Error::Decode(
                format!("stored training run status is invalid: {detail}").into(),
            ))
        })?;
        let kind = row.kind.parse().map_err(|error: crate::UnknownModelKind| {
            StoreError::Database(sqlx::Error::Decode(
                format!("stored training run kind is invalid: {error}").into(),
            ))
        })?;
        Ok(TrainingRun {
            id: TrainingRunId(row.id),
            project_id: ProjectId(row.project_id),
            kind,
            params: row.params.0,
            status,
            progress: row.progress.0,
            cancel_requested: row.cancel_requested,
            attempts: row.attempts,
            worker: row.worker,
            error: row.error,
            version_id: row.version_id.map(ModelVersionId),
            requested_by: row.requested_by,
            created_at: row.created_at,
            started_at: row.started_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        })
    }
}
