use super::*;
use crate::ids::ProjectId;
use crate::store::training_runs::*;

impl TrainingRunStore for Backend {
    #[tracing::instrument(skip_all, fields(project = %project))]
    async fn create_training_run(
        &self,
        project: ProjectId,
        run: &crate::training_run::NewTrainingRun,
    ) -> StoreResult<crate::training_run::TrainingRun> {
        use crate::training_run::{TRAINING_RUN_COLUMNS, TrainingRunRow};
        self.project(project).await?;
        let now = Utc::now();
        let row: TrainingRunRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO training_runs (project_id, kind, params, requested_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {TRAINING_RUN_COLUMNS}"
        )))
        .bind(project)
        .bind(run.kind.as_str())
        .bind(Json(&run.params))
        .bind(&run.requested_by)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(project = %project, run = %run))]
    async fn training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
    ) -> StoreResult<crate::training_run::TrainingRun> {
        use crate::training_run::{TRAINING_RUN_COLUMNS, TrainingRunRow};
        let row: Option<TrainingRunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {TRAINING_RUN_COLUMNS} FROM training_runs WHERE project_id = $1 AND id = $2"
        )))
        .bind(project)
        .bind(run)
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| crate::store::training_runs::run_not_found(project, run))?
            .try_into()
    }

    async fn training_runs(
        &self,
        project: ProjectId,
        limit: u32,
    ) -> StoreResult<Vec<crate::training_run::TrainingRun>> {
        use crate::training_run::{TRAINING_RUN_COLUMNS, TrainingRunRow};
        let rows: Vec<TrainingRunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {TRAINING_RUN_COLUMNS} FROM training_runs WHERE project_id = $1 \
             ORDER BY id DESC LIMIT $2"
        )))
        .bind(project)
        .bind(i64::from(limit.min(MAX_PAGE)))
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }

    #[tracing::instrument(skip_all, fields(project = %project, run = %run))]
    async fn claim_training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
        worker: &str,
    ) -> StoreResult<crate::training_run::TrainingRun> {
        use crate::training_run::{TRAINING_RUN_COLUMNS, TrainingRunRow};
        let now = Utc::now();
        // `running` is claimable too: that is a run whose worker died, handed on by the queue.
        let row: Option<TrainingRunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE training_runs SET status = 'running', attempts = attempts + 1, worker = $3, \
             started_at = COALESCE(started_at, $4), updated_at = $4 \
             WHERE project_id = $1 AND id = $2 AND status IN ('queued', 'running') \
             RETURNING {TRAINING_RUN_COLUMNS}"
        )))
        .bind(project)
        .bind(run)
        .bind(worker)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => row.try_into(),
            None => {
                let current = self.training_run(project, run).await?;
                Err(StoreError::Conflict(format!(
                    "training run {run} is {} and cannot be started again",
                    current.status
                )))
            }
        }
    }

    async fn record_training_progress(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
        progress: &serde_json::Value,
    ) -> StoreResult<bool> {
        let cancel: Option<bool> = sqlx::query_scalar(
            "UPDATE training_runs SET progress = $3, updated_at = $4 \
             WHERE project_id = $1 AND id = $2 RETURNING cancel_requested",
        )
        .bind(project)
        .bind(run)
        .bind(Json(progress))
        .bind(Utc::now())
        .fetch_optional(self.writer())
        .await?;
        cancel.ok_or_else(|| crate::store::training_runs::run_not_found(project, run))
    }

    #[tracing::instrument(skip_all, fields(project = %project, run = %run))]
    async fn finish_training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
        outcome: &crate::training_run::RunOutcome,
    ) -> StoreResult<crate::training_run::TrainingRun> {
        use crate::training_run::{RunOutcome, TRAINING_RUN_COLUMNS, TrainingRunRow};
        let now = Utc::now();
        let (status, error, version, finished) = match outcome {
            RunOutcome::Succeeded(version) => ("succeeded", None, Some(*version), Some(now)),
            RunOutcome::Failed(reason) => ("failed", Some(reason.as_str()), None, Some(now)),
            RunOutcome::Cancelled => ("cancelled", None, None, Some(now)),
            RunOutcome::Requeued(reason) => ("queued", Some(reason.as_str()), None, None),
        };
        let row: Option<TrainingRunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE training_runs SET status = $3, error = COALESCE($4, error), \
             version_id = COALESCE($5, version_id), finished_at = $6, updated_at = $7 \
             WHERE project_id = $1 AND id = $2 AND status = 'running' \
             RETURNING {TRAINING_RUN_COLUMNS}"
        )))
        .bind(project)
        .bind(run)
        .bind(status)
        .bind(error)
        .bind(version)
        .bind(finished)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => row.try_into(),
            None => {
                let current = self.training_run(project, run).await?;
                Err(StoreError::Conflict(format!(
                    "training run {run} is {}, not running",
                    current.status
                )))
            }
        }
    }

    #[tracing::instrument(skip_all, fields(project = %project, run = %run))]
    async fn cancel_training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
    ) -> StoreResult<crate::training_run::TrainingRun> {
        use crate::training_run::{TRAINING_RUN_COLUMNS, TrainingRunRow};
        let now = Utc::now();
        // A queued run is cancelled at once; a running one is asked to stop, and its worker
        // stops at the next epoch and records the cancellation.
        let row: Option<TrainingRunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE training_runs SET \
             status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, \
             finished_at = CASE WHEN status = 'queued' THEN $3 ELSE finished_at END, \
             cancel_requested = TRUE, updated_at = $3 \
             WHERE project_id = $1 AND id = $2 AND status IN ('queued', 'running') \
             RETURNING {TRAINING_RUN_COLUMNS}"
        )))
        .bind(project)
        .bind(run)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => row.try_into(),
            None => {
                let current = self.training_run(project, run).await?;
                Err(StoreError::Conflict(format!(
                    "training run {run} has already ended ({})",
                    current.status
                )))
            }
        }
    }
}
