//! Training runs: the capability and its helpers; the SQL is in `sql/training_runs.rs`. Every
//! state change is one conditional
//! `UPDATE … RETURNING`, so two processes racing on a run (a cancel and a worker finishing,
//! two workers after a retry) cannot both win.

use super::capability::store_capability;
use crate::error::{StoreError, StoreResult};
use crate::ids::{ProjectId, TrainingRunId};

pub(crate) fn run_not_found(project: ProjectId, run: TrainingRunId) -> StoreError {
    StoreError::NotFound(format!("training run {run} of project {project}"))
}

store_capability! {
    /// Training runs: queued, claimed by a worker, reported on, finished or cancelled.
    pub trait TrainingRunStore {
        /// Queues a training run (the job that runs it is the queue's).
        async fn create_training_run(
            &self,
            project: ProjectId,
            run: &crate::training_run::NewTrainingRun,
        ) -> StoreResult<crate::training_run::TrainingRun>;
        async fn training_run(
            &self,
            project: ProjectId,
            run: crate::ids::TrainingRunId,
        ) -> StoreResult<crate::training_run::TrainingRun>;
        /// The project's runs, newest first.
        async fn training_runs(
            &self,
            project: ProjectId,
            limit: u32,
        ) -> StoreResult<Vec<crate::training_run::TrainingRun>>;
        /// A worker takes a queued run (or one whose worker died): `running`, one more attempt.
        /// A run that has ended is a conflict.
        async fn claim_training_run(
            &self,
            project: ProjectId,
            run: crate::ids::TrainingRunId,
            worker: &str,
        ) -> StoreResult<crate::training_run::TrainingRun>;
        /// Stores the latest progress; answers whether someone asked to cancel the run.
        async fn record_training_progress(
            &self,
            project: ProjectId,
            run: crate::ids::TrainingRunId,
            progress: &serde_json::Value,
        ) -> StoreResult<bool>;
        /// Ends a running run's attempt: succeeded, failed, cancelled, or back to the queue.
        async fn finish_training_run(
            &self,
            project: ProjectId,
            run: crate::ids::TrainingRunId,
            outcome: &crate::training_run::RunOutcome,
        ) -> StoreResult<crate::training_run::TrainingRun>;
        /// Cancels a queued run at once, or asks a running one to stop at its next epoch.
        async fn cancel_training_run(
            &self,
            project: ProjectId,
            run: crate::ids::TrainingRunId,
        ) -> StoreResult<crate::training_run::TrainingRun>;
    }
}
