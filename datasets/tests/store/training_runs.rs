//! Training runs in the store, on SQLite and on PostgreSQL (when `TEST_DATABASE_URL` is set):
//! the states a run moves through, and the conflicts that keep two processes from both
//! deciding its fate.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
use datasets::*;

async fn project(store: &AnyStore) -> Project {
    store
        .create_project(&ProjectName::parse("Runs").unwrap(), LabelMode::Single)
        .await
        .unwrap()
}

fn new_run() -> NewTrainingRun {
    NewTrainingRun {
        kind: datasets::ModelKind::Ngram,
        params: serde_json::json!({"epochs": 3}),
        requested_by: "ana".into(),
    }
}

async fn a_run_goes_from_queued_to_running_to_succeeded(store: AnyStore) {
    let project = project(&store).await;
    let run = store
        .create_training_run(project.id, &new_run())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(run.attempts, 0);
    assert_eq!(run.params["epochs"], 3);

    let running = store
        .claim_training_run(project.id, run.id, "worker-a")
        .await
        .unwrap();
    assert_eq!(running.status, RunStatus::Running);
    assert_eq!(running.attempts, 1);
    assert_eq!(running.worker.as_deref(), Some("worker-a"));
    assert!(running.started_at.is_some());

    let cancel = store
        .record_training_progress(project.id, run.id, &serde_json::json!({"epoch": 2}))
        .await
        .unwrap();
    assert!(!cancel);
    assert_eq!(
        store
            .training_run(project.id, run.id)
            .await
            .unwrap()
            .progress["epoch"],
        2
    );

    let version = store
        .create_model_version(project.id, &NewModelVersion::default())
        .await
        .unwrap();
    let done = store
        .finish_training_run(project.id, run.id, &RunOutcome::Succeeded(version.id))
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.version_id, Some(version.id));
    assert!(done.finished_at.is_some());

    // An ended run is never started or ended again.
    let again = store
        .claim_training_run(project.id, run.id, "worker-b")
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let again = store
        .finish_training_run(project.id, run.id, &RunOutcome::Cancelled)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

async fn cancelling_a_queued_run_ends_it_and_a_running_one_is_asked_to_stop(store: AnyStore) {
    let project = project(&store).await;
    let queued = store
        .create_training_run(project.id, &new_run())
        .await
        .unwrap();
    let cancelled = store
        .cancel_training_run(project.id, queued.id)
        .await
        .unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());
    let claim = store.claim_training_run(project.id, queued.id, "w").await;
    assert!(matches!(claim, Err(StoreError::Conflict(_))), "{claim:?}");

    let run = store
        .create_training_run(project.id, &new_run())
        .await
        .unwrap();
    store
        .claim_training_run(project.id, run.id, "w")
        .await
        .unwrap();
    let asked = store.cancel_training_run(project.id, run.id).await.unwrap();
    assert_eq!(asked.status, RunStatus::Running);
    assert!(asked.cancel_requested);
    let cancel = store
        .record_training_progress(project.id, run.id, &serde_json::json!({}))
        .await
        .unwrap();
    assert!(cancel, "the worker hears about the cancellation");
    let ended = store
        .finish_training_run(project.id, run.id, &RunOutcome::Cancelled)
        .await
        .unwrap();
    assert_eq!(ended.status, RunStatus::Cancelled);
    let twice = store.cancel_training_run(project.id, run.id).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
}

async fn a_requeued_run_is_claimed_again_and_a_failed_one_keeps_its_reason(store: AnyStore) {
    let project = project(&store).await;
    let run = store
        .create_training_run(project.id, &new_run())
        .await
        .unwrap();
    store
        .claim_training_run(project.id, run.id, "a")
        .await
        .unwrap();
    let requeued = store
        .finish_training_run(
            project.id,
            run.id,
            &RunOutcome::Requeued("worker a shut down".into()),
        )
        .await
        .unwrap();
    assert_eq!(requeued.status, RunStatus::Queued);
    assert_eq!(requeued.error.as_deref(), Some("worker a shut down"));
    assert!(requeued.finished_at.is_none());

    let second = store
        .claim_training_run(project.id, run.id, "b")
        .await
        .unwrap();
    assert_eq!(second.attempts, 2);
    assert_eq!(second.worker.as_deref(), Some("b"));
    // A worker that died holding it: the queue hands the job on, the run is claimed again.
    let third = store
        .claim_training_run(project.id, run.id, "c")
        .await
        .unwrap();
    assert_eq!(third.attempts, 3);

    let failed = store
        .finish_training_run(project.id, run.id, &RunOutcome::Failed("no labels".into()))
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("no labels"));
}

async fn runs_are_listed_newest_first_and_scoped_to_their_project(store: AnyStore) {
    let project = project(&store).await;
    let other = store
        .create_project(&ProjectName::parse("Other").unwrap(), LabelMode::Single)
        .await
        .unwrap();
    let first = store
        .create_training_run(project.id, &new_run())
        .await
        .unwrap();
    let second = store
        .create_training_run(project.id, &new_run())
        .await
        .unwrap();
    let runs = store.training_runs(project.id, 10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![second.id, first.id]
    );
    assert_eq!(store.training_runs(project.id, 1).await.unwrap().len(), 1);
    let missing = store.training_run(other.id, first.id).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    let missing = store
        .create_training_run(ProjectId(999_999), &new_run())
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

datasets::on_both_backends!(
    a_run_goes_from_queued_to_running_to_succeeded,
    cancelling_a_queued_run_ends_it_and_a_running_one_is_asked_to_stop,
    a_requeued_run_is_claimed_again_and_a_failed_one_keeps_its_reason,
    runs_are_listed_newest_first_and_scoped_to_their_project,
);
