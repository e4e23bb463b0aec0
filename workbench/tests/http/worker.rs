//! Training as a queued job, against SQLite and PostgreSQL (when `TEST_DATABASE_URL` is set):
//! a separate `tagger worker` process runs the job; SIGTERM puts the run back in the queue
//! for another worker; a worker killed with SIGKILL has its job handed on after its missed
//! heartbeats; a cancel stops a running job; bad data fails once; the HTTP API queues a run
//! and reports it to the end.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use trainer::jobs::{JobQueue, QueueSettings, TrainingParams, WorkerState, submit_training};

const DEMO_TICKETS: usize = 600;

fn settings() -> QueueSettings {
    QueueSettings {
        heartbeat: Duration::from_secs(1),
        missed_heartbeats: 2,
        poll_interval: Duration::from_millis(200),
    }
}

async fn demo_project(store: &AnyStore) -> Project {
    datasets::demo_project::install_demo_project(
        store,
        &ProjectName::parse("Demo").unwrap(),
        LabelMode::Multi,
        DEMO_TICKETS,
        7,
    )
    .await
    .unwrap()
}

/// Parameters for a run that goes on until someone stops it.
fn endless() -> TrainingParams {
    TrainingParams {
        // Adagrad's epochs, not L-BFGS (which ends when the loss stops falling).
        solver: Some(trainer::ngram::NgramSolver::Adagrad),
        epochs: Some(10_000),
        patience: Some(10_000),
        ..TrainingParams::default()
    }
}

/// A worker running in the test's own runtime, as `serve --with-worker` runs one.
struct InProcessWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), trainer::jobs::JobError>>,
}

impl InProcessWorker {
    fn start(store: &AnyStore, queue: JobQueue, data_dir: &std::path::Path) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(trainer::jobs::run_worker(
            queue,
            WorkerState {
                store: store.clone(),
                artifacts: inference::artifact_store::ArtifactStore::local(data_dir.join("models")),
                name: "in-process".into(),
                stopping: Default::default(),
                guard_margin: 0.02,
                retag_after_promotion: 0,
                connector_jobs: None,
            },
            async move {
                let _ = stopped.await;
            },
        ));
        Self { stop, handle }
    }

    /// Stops it and checks it ended cleanly.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
    }
}

/// A `tagger worker` process on the database, with a two-second heartbeat: a killed worker
/// is noticed after three missed beats (6 s), while a live one on a loaded two-core CI
/// machine is not taken for dead by a beat that comes a second late.
fn spawn_worker(url: &str, data_dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tagger"))
        .args(["--database-url", url, "worker"])
        .current_dir(data_dir)
        .env("TAGGER_DATA_DIR", data_dir)
        .env("TAGGER_WORKER_HEARTBEAT_SECONDS", "2")
        .env("TAGGER_LOG", "info,sqlx=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} failed");
}

fn wait_for_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the worker did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls the run until `done` holds, or fails with the run's last state.
async fn wait_for_run(
    store: &AnyStore,
    run: &TrainingRun,
    within: Duration,
    what: &str,
    done: impl Fn(&TrainingRun) -> bool,
) -> TrainingRun {
    let deadline = Instant::now() + within;
    loop {
        let current = store.training_run(run.project_id, run.id).await.unwrap();
        if done(&current) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn training_at_least(run: &TrainingRun, epochs: u64) -> bool {
    run.status == RunStatus::Running
        && run.progress["stage"] == "training"
        && run.progress["step"].as_u64().unwrap_or(0) >= epochs
}

async fn a_worker_process_trains_a_queued_run_and_sigterm_requeues_it_for_another(
    database: &TestDatabase,
    store: AnyStore,
) {
    let project = demo_project(&store).await;
    let queue = JobQueue::open(&store, &settings()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    // A run that finishes: trained by a separate process, recorded as a candidate version.
    let quick = TrainingParams {
        epochs: Some(3),
        ..TrainingParams::default()
    };
    let run = submit_training(
        &store,
        &queue,
        project.id,
        inference::ModelKind::Ngram,
        &quick,
        "test",
    )
    .await
    .unwrap();
    assert_eq!(run.status, RunStatus::Queued);
    let mut first = spawn_worker(&database.url, dir.path());
    let done = wait_for_run(&store, &run, Duration::from_secs(120), "success", |r| {
        r.status.is_final()
    })
    .await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    let version = store
        .model_version(project.id, done.version_id.unwrap())
        .await
        .unwrap();
    assert_eq!(version.status, "candidate");
    assert!(version.metrics["macro_f1"].as_f64().unwrap() > 0.3);
    assert!(done.progress["stage"].is_string());

    // SIGTERM mid-run: the worker stops at an epoch boundary, records nothing, queues it again.
    let long = submit_training(
        &store,
        &queue,
        project.id,
        inference::ModelKind::Ngram,
        &endless(),
        "test",
    )
    .await
    .unwrap();
    wait_for_run(&store, &long, Duration::from_secs(120), "training", |r| {
        training_at_least(r, 2)
    })
    .await;
    signal(&first, "TERM");
    let exit = wait_for_exit(&mut first, Duration::from_secs(30));
    assert!(
        exit.success(),
        "the worker exits cleanly on SIGTERM: {exit:?}"
    );
    let requeued = store.training_run(project.id, long.id).await.unwrap();
    assert_eq!(requeued.status, RunStatus::Queued, "{requeued:?}");
    assert!(requeued.error.as_deref().unwrap().contains("shut down"));
    assert_eq!(store.model_versions(project.id).await.unwrap().len(), 1);

    // Another worker takes it (a second attempt); a cancel stops it at the next epoch.
    let mut second = spawn_worker(&database.url, dir.path());
    wait_for_run(&store, &long, Duration::from_secs(60), "the retry", |r| {
        r.attempts == 2 && training_at_least(r, 1)
    })
    .await;
    store
        .cancel_training_run(project.id, long.id)
        .await
        .unwrap();
    let cancelled = wait_for_run(&store, &long, Duration::from_secs(30), "cancel", |r| {
        r.status.is_final()
    })
    .await;
    assert_eq!(cancelled.status, RunStatus::Cancelled, "{cancelled:?}");
    assert_eq!(store.model_versions(project.id).await.unwrap().len(), 1);
    signal(&second, "TERM");
    wait_for_exit(&mut second, Duration::from_secs(30));
}

async fn a_killed_workers_job_is_handed_to_another_worker(
    database: &TestDatabase,
    store: AnyStore,
) {
    let project = demo_project(&store).await;
    let queue = JobQueue::open(&store, &settings()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = submit_training(
        &store,
        &queue,
        project.id,
        inference::ModelKind::Ngram,
        &endless(),
        "test",
    )
    .await
    .unwrap();
    let mut doomed = spawn_worker(&database.url, dir.path());
    wait_for_run(&store, &run, Duration::from_secs(120), "training", |r| {
        training_at_least(r, 1)
    })
    .await;
    signal(&doomed, "KILL");
    wait_for_exit(&mut doomed, Duration::from_secs(10));

    let mut heir = spawn_worker(&database.url, dir.path());
    let retried = wait_for_run(
        &store,
        &run,
        Duration::from_secs(90),
        "the hand-over",
        |r| r.attempts == 2 && training_at_least(r, 1),
    )
    .await;
    assert_ne!(retried.worker, None);
    store.cancel_training_run(project.id, run.id).await.unwrap();
    let ended = wait_for_run(&store, &run, Duration::from_secs(30), "cancel", |r| {
        r.status.is_final()
    })
    .await;
    assert_eq!(ended.status, RunStatus::Cancelled);
    assert!(store.model_versions(project.id).await.unwrap().is_empty());
    signal(&heir, "TERM");
    wait_for_exit(&mut heir, Duration::from_secs(30));
}

/// A search so long that it can only end by being cancelled inside it: every fold fit
/// of its first candidate would run 10,000 epochs.
async fn a_cancel_during_ngram_model_selection_stops_the_run(
    _database: &TestDatabase,
    store: AnyStore,
) {
    let project = demo_project(&store).await;
    let queue = JobQueue::open(&store, &settings()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = submit_training(
        &store,
        &queue,
        project.id,
        inference::ModelKind::Ngram,
        &TrainingParams {
            selection_budget: Some(1_000_000_000),
            ..endless()
        },
        "test",
    )
    .await
    .unwrap();
    let worker = InProcessWorker::start(&store, queue, dir.path());
    let searching = wait_for_run(&store, &run, Duration::from_secs(120), "the search", |r| {
        r.status == RunStatus::Running && r.progress["stage"] == "selecting"
    })
    .await;
    assert_eq!(searching.progress["step"], 0, "{searching:?}");
    store.cancel_training_run(project.id, run.id).await.unwrap();
    let ended = wait_for_run(&store, &run, Duration::from_secs(30), "cancel", |r| {
        r.status.is_final()
    })
    .await;
    assert_eq!(ended.status, RunStatus::Cancelled, "{ended:?}");
    // Stopped inside the first candidate's fold fits, not after them.
    assert_eq!(ended.progress["stage"], "selecting", "{ended:?}");
    assert_eq!(ended.progress["step"], 0, "{ended:?}");
    assert!(store.model_versions(project.id).await.unwrap().is_empty());
    worker.stop().await;
}

async fn a_run_on_bad_data_fails_once_with_the_reason(database: &TestDatabase, store: AnyStore) {
    let project = store
        .create_project(&ProjectName::parse("Empty").unwrap(), LabelMode::Single)
        .await
        .unwrap();
    let queue = JobQueue::open(&store, &settings()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = submit_training(
        &store,
        &queue,
        project.id,
        inference::ModelKind::Ngram,
        &TrainingParams::default(),
        "test",
    )
    .await
    .unwrap();
    let mut worker = spawn_worker(&database.url, dir.path());
    let failed = wait_for_run(&store, &run, Duration::from_secs(60), "failure", |r| {
        r.status.is_final()
    })
    .await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .contains("not enough labelled tickets"),
        "{failed:?}"
    );
    // Never retried: several polls later it is still the one attempt.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        store
            .training_run(project.id, run.id)
            .await
            .unwrap()
            .attempts,
        1
    );
    signal(&worker, "TERM");
    wait_for_exit(&mut worker, Duration::from_secs(30));
}

async fn a_run_whose_workers_keep_dying_is_given_up_after_the_attempt_limit(
    _database: &TestDatabase,
    store: AnyStore,
) {
    let project = demo_project(&store).await;
    let queue = JobQueue::open(&store, &settings()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = submit_training(
        &store,
        &queue,
        project.id,
        inference::ModelKind::Ngram,
        &TrainingParams::default(),
        "test",
    )
    .await
    .unwrap();
    // Workers that claimed the run and died before they could report anything, as many
    // as the limit allows (the queue hands such a job on without counting it).
    for dead in 1..=trainer::jobs::MAX_ATTEMPTS {
        let claimed = store
            .claim_training_run(project.id, run.id, &format!("dead-{dead}"))
            .await
            .unwrap();
        assert_eq!(claimed.attempts as usize, dead);
    }
    let worker = InProcessWorker::start(&store, queue, dir.path());
    let ended = wait_for_run(&store, &run, Duration::from_secs(60), "giving up", |r| {
        r.status.is_final()
    })
    .await;
    assert_eq!(ended.status, RunStatus::Failed, "{ended:?}");
    let error = ended.error.as_deref().unwrap();
    assert!(
        error.contains(&format!(
            "started {} times without finishing",
            trainer::jobs::MAX_ATTEMPTS
        )),
        "{error}"
    );
    assert!(store.model_versions(project.id).await.unwrap().is_empty());
    worker.stop().await;
}

async fn call(
    router: &axum::Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn the_api_queues_a_run_reports_its_progress_and_its_version_is_promoted(
    _database: &TestDatabase,
    store: AnyStore,
) {
    let project = demo_project(&store).await;
    let key = store
        .create_api_key(
            &KeyGrant::Project {
                project_id: project.id,
                scopes: Scopes::all(),
            },
            "ci",
        )
        .await
        .unwrap()
        .secret;
    let queue = JobQueue::open(&store, &settings()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = workbench::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let state = workbench::state::AppState::new(store.clone(), config).with_jobs(queue.clone());
    let router = workbench::app::app(state);
    let worker = InProcessWorker::start(&store, queue, dir.path());
    let runs = "/v1/projects/Demo/training-runs";

    let (status, _) = call(
        &router,
        Method::POST,
        runs,
        None,
        Some(json!({"kind": "ngram"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(
        &router,
        Method::POST,
        runs,
        Some(&key),
        Some(json!({"kind": "ngram", "params": {"epochs": 0}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = call(
        &router,
        Method::POST,
        runs,
        Some(&key),
        Some(json!({"kind": "finetune", "params": {"max_tokens": 1024}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("max_tokens"), "{body}");
    let (status, body) = call(
        &router,
        Method::POST,
        runs,
        Some(&key),
        Some(json!({"kind": "ngram", "params": {"epoch": 3}})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown parameter: {body}"
    );
    let (status, body) = call(
        &router,
        Method::POST,
        runs,
        Some(&key),
        Some(json!({"kind": "bert"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (status, queued) = call(
        &router,
        Method::POST,
        runs,
        Some(&key),
        Some(json!({"kind": "ngram", "params": {"epochs": 3}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["requested_by"], "api-key:ci");
    let id = queued["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        let (status, run) = call(
            &router,
            Method::GET,
            &format!("{runs}/{id}"),
            Some(&key),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        if run["status"] != "queued" && run["status"] != "running" {
            break run;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let version = finished["version_id"].as_i64().unwrap();
    let (status, listed) = call(&router, Method::GET, runs, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed[0]["id"], id);

    // Cancelling an ended run is a conflict; promoting its version puts it in service.
    let (status, _) = call(
        &router,
        Method::POST,
        &format!("{runs}/{id}/cancel"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, promoted) = call(
        &router,
        Method::POST,
        &format!("/v1/projects/Demo/models/{version}/promote"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["serving"], version);
    let (status, tagged) = call(
        &router,
        Method::POST,
        "/v1/projects/Demo/tag",
        Some(&key),
        Some(
            json!({"subject": "The app crashes on login", "body": "It shows an error and closes."}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tagged}");
    assert_eq!(tagged["version"], version, "{tagged}");
    worker.stop().await;
    let _ = project;
}

async fn enough_new_labels_retrain_promote_and_rescore_the_review_queue(
    _database: &TestDatabase,
    store: AnyStore,
) {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let project = demo_project(&store).await;
    let queue = JobQueue::open(&store, &settings()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = workbench::config::Config {
        data_dir: dir.path().to_path_buf(),
        retrain_after_labels: 3,
        ..Default::default()
    };
    let state = workbench::state::AppState::new(store.clone(), config).with_jobs(queue.clone());
    let router = workbench::app::app(state);
    let worker = InProcessWorker::start(&store, queue, dir.path());
    let tickets = store.tickets_after(project.id, None, 3).await.unwrap();
    let ana = store
        .create_api_key(
            &KeyGrant::Project {
                project_id: project.id,
                scopes: "label".parse().unwrap(),
            },
            "ana",
        )
        .await
        .unwrap()
        .secret;
    for (i, ticket) in tickets.iter().enumerate() {
        let (status, body) = call(
            &router,
            Method::PUT,
            &format!("/v1/projects/Demo/tickets/{}/labels", ticket.ticket.id),
            Some(&ana),
            Some(json!({"tags": ["Bug"]})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if i < 2 {
            // Below the policy's count: nothing is queued.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(
                store
                    .training_runs(project.id, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let run = loop {
        let runs = store.training_runs(project.id, 10).await.unwrap();
        if let Some(run) = runs.first().filter(|r| r.status.is_final()) {
            break run.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no policy run finished: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run.requested_by, "policy");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    // No version was in service, so the guard lets the retrained one in.
    let promoted = store
        .promoted_model_version(project.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(promoted.id), run.version_id);
    assert_eq!(
        store.model_promotions(project.id).await.unwrap()[0].actor,
        "policy"
    );
    // The queue is scored again with the new model, which restarts the label count.
    let deadline = Instant::now() + Duration::from_secs(120);
    let stats = loop {
        let stats = store.review_queue_stats(project.id).await.unwrap();
        if stats.scored_at.is_some() {
            break stats;
        }
        assert!(
            Instant::now() < deadline,
            "the queue was never scored: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(stats.pending > 0, "{stats:?}");
    assert_eq!(stats.labelled_since_scoring, 0, "{stats:?}");
    worker.stop().await;
}

async fn a_promotion_retags_the_newest_tickets_and_an_evaluation_is_queued(
    _database: &TestDatabase,
    store: AnyStore,
) {
    let project = demo_project(&store).await;
    let key = store
        .create_api_key(
            &KeyGrant::Project {
                project_id: project.id,
                scopes: Scopes::all(),
            },
            "ci",
        )
        .await
        .unwrap()
        .secret;
    let queue = JobQueue::open(&store, &settings()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = workbench::config::Config {
        data_dir: dir.path().to_path_buf(),
        retag_after_promotion: 40,
        ..Default::default()
    };
    let state = workbench::state::AppState::new(store.clone(), config).with_jobs(queue.clone());
    let router = workbench::app::app(state);
    let worker = InProcessWorker::start(&store, queue.clone(), dir.path());
    let quick = TrainingParams {
        epochs: Some(3),
        ..TrainingParams::default()
    };
    let run = submit_training(
        &store,
        &queue,
        project.id,
        inference::ModelKind::Ngram,
        &quick,
        "t",
    )
    .await
    .unwrap();
    let done = wait_for_run(&store, &run, Duration::from_secs(120), "success", |r| {
        r.status.is_final()
    })
    .await;
    let version = done.version_id.unwrap();
    let (status, body) = call(
        &router,
        Method::POST,
        &format!("/v1/projects/Demo/models/{version}/promote"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The newest 40 tickets nobody labelled get this version's tags; older ones do not.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tickets = store.tickets_after(project.id, None, 5000).await.unwrap();
        let by_version = |t: &LabelledTicket| {
            t.labels
                .iter()
                .any(|l| l.source == LabelSource::Model && l.set_by == format!("model:{version}"))
        };
        let retagged: Vec<usize> = (0..tickets.len())
            .filter(|&i| by_version(&tickets[i]))
            .collect();
        if !retagged.is_empty() {
            assert!(retagged.len() <= 40, "{} retagged", retagged.len());
            assert!(
                retagged.iter().all(|&i| i >= tickets.len() - 40),
                "{retagged:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no ticket was tagged again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An evaluation job replaces the stored metrics.
    store
        .set_model_metrics(project.id, version, &json!({}))
        .await
        .unwrap();
    let (status, body) = call(
        &router,
        Method::POST,
        &format!("/v1/projects/Demo/models/{version}/evaluate"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let metrics = store
            .model_version(project.id, version)
            .await
            .unwrap()
            .metrics;
        if metrics["macro_f1"].as_f64().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "never evaluated: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = call(
        &router,
        Method::POST,
        "/v1/projects/Demo/models/999999/evaluate",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    worker.stop().await;
}

/// `name=value` of a cookie a response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string()
}

/// The `<label class="choice" …>` block of the review form for one tag.
fn choice<'a>(page: &'a str, tag: &str) -> &'a str {
    let at = page.find(&format!("value=\"{tag}\"")).unwrap();
    let start = page[..at].rfind("<label class=\"choice\"").unwrap();
    let end = at + page[at..].find("</label>").unwrap();
    &page[start..end]
}

#[test]
fn the_demo_shows_the_models_suggestions_from_its_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_tagger"))
        .args(["demo", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("TAGGER_DATABASE_URL")
        .env_remove("TAGGER_RETAG_AFTER_PROMOTION")
        .env("TAGGER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(demo.stdout.take().unwrap()));
    let (mut url, mut password) = (None, None);
    while url.is_none() || password.is_none() {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.strip_prefix("tagger is serving the demo at ") {
            url = Some(rest.trim_end_matches('/').to_string());
        }
        if let Some(rest) = line.trim().strip_prefix("log in as admin with password ") {
            password = Some(rest.to_string());
        }
    }
    let (url, password) = (url.unwrap(), password.unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let store = AnyStore::open(&format!(
                "sqlite://{}",
                dir.path().join("tagger.db").display()
            ))
            .await
            .unwrap();
            let project = store
                .project_by_name(&ProjectName::parse("Demo").unwrap())
                .await
                .unwrap()
                .unwrap();
            // The first model is trained and promoted by itself, then tags the tickets.
            let deadline = Instant::now() + Duration::from_secs(300);
            let suggested = loop {
                if let Some(version) = store.promoted_model_version(project.id).await.unwrap() {
                    let tickets = store.tickets_after(project.id, None, 5000).await.unwrap();
                    // Tickets nobody and no import labelled, carrying the model's tags.
                    let suggested: Vec<&LabelledTicket> = tickets
                        .iter()
                        .filter(|t| {
                            !t.labels.iter().any(|l| {
                                matches!(l.source, LabelSource::Human | LabelSource::Import)
                            })
                        })
                        .filter(|t| {
                            t.labels.iter().any(|l| {
                                l.source == LabelSource::Model
                                    && l.set_by == format!("model:{}", version.id)
                            })
                        })
                        .collect();
                    // The review queue is ranked too (a job of its own).
                    let ranked = store.review_queue_stats(project.id).await.unwrap().pending > 0;
                    if suggested.len() >= 10 && ranked {
                        break suggested[0].clone();
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "no unlabelled ticket got the first model's tags, or the queue was not ranked"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            };

            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let form = client.get(format!("{url}/login")).send().await.unwrap();
            let login_cookie = set_cookie(&form, "tagger_login_csrf");
            let body = form.text().await.unwrap();
            let start = body.find("name=\"csrf\" value=\"").unwrap() + 19;
            let csrf = &body[start..start + body[start..].find('"').unwrap()];
            let fields = [
                ("csrf", csrf),
                ("username", "admin"),
                ("password", password.as_str()),
                ("next", "/"),
            ]
            .iter()
            .map(|(k, v)| format!("{k}={}", workbench::web::encode_component(v)))
            .collect::<Vec<_>>()
            .join("&");
            let logged_in = client
                .post(format!("{url}/login"))
                .header(reqwest::header::COOKIE, &login_cookie)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(fields)
                .send()
                .await
                .unwrap();
            assert_eq!(logged_in.status(), StatusCode::SEE_OTHER);
            let session = set_cookie(&logged_in, "tagger_session");
            let get = |path: String| {
                let request = client
                    .get(format!("{url}{path}"))
                    .header(reqwest::header::COOKIE, &session);
                async move {
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    response.text().await.unwrap()
                }
            };

            // The review page pre-selects the model's tag and shows its confidence.
            let label = suggested
                .labels
                .iter()
                .find(|l| l.source == LabelSource::Model)
                .unwrap();
            let tag = store
                .list_tags(project.id)
                .await
                .unwrap()
                .into_iter()
                .find(|t| t.id == label.tag_id)
                .unwrap();
            let page = get(format!(
                "/p/{}/review?ticket={}",
                project.id, suggested.ticket.id
            ))
            .await;
            let block = choice(&page, tag.name.as_str());
            assert!(block.contains(" checked"), "not pre-selected: {block}");
            let shown: f32 = block
                .rsplit("<span class=\"muted\">")
                .next()
                .unwrap()
                .trim_end_matches("</span>")
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("no confidence: {block}"));
            assert!(
                (shown - label.confidence.unwrap()).abs() < 0.006,
                "{shown} vs {:?}",
                label.confidence
            );
            // The queue's next ticket shows the model's confidence for its tags too.
            let next = get(format!("/p/{}/review", project.id)).await;
            assert!(next.contains("data-review"), "the queue is empty: {next}");
            assert!(
                next.matches("<span class=\"muted\">0.").count()
                    + next.matches("<span class=\"muted\">1.").count()
                    >= 2,
                "{next}"
            );
            // The dashboard counts the tickets the model tagged.
            let dashboard = get(format!("/p/{}/dashboard?days=365", project.id)).await;
            let at = dashboard.find("auto-tagged by a model (").unwrap() + 24;
            let count: i64 = dashboard[at..at + dashboard[at..].find(')').unwrap()]
                .parse()
                .unwrap();
            assert!(count > 0, "nothing auto-tagged on the dashboard");
        })
    }));
    signal(&demo, "TERM");
    wait_for_exit(&mut demo, Duration::from_secs(30));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let database = datasets::test_db::TestDatabase::sqlite().unwrap();
                    let store = database.store().await.unwrap();
                    super::$test(&database, store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(database) = datasets::test_db::TestDatabase::postgres(concat!("worker_", stringify!($test))).await.unwrap() else {
                        return;
                    };
                    let store = database.store().await.unwrap();
                    super::$test(&database, store.clone()).await;
                    drop(store);
                    database.drop_database().await.unwrap();
                }
            )*
        }
    };
}

on_both_backends!(
    a_worker_process_trains_a_queued_run_and_sigterm_requeues_it_for_another,
    a_killed_workers_job_is_handed_to_another_worker,
    a_run_on_bad_data_fails_once_with_the_reason,
    a_cancel_during_ngram_model_selection_stops_the_run,
    a_run_whose_workers_keep_dying_is_given_up_after_the_attempt_limit,
    the_api_queues_a_run_reports_its_progress_and_its_version_is_promoted,
    enough_new_labels_retrain_promote_and_rescore_the_review_queue,
    a_promotion_retags_the_newest_tickets_and_an_evaluation_is_queued,
);
