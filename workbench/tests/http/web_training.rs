//! The training pages through the real router and a real in-process worker: an ML engineer
//! starts a run from the form, follows it on the run page and its live JSON until it
//! succeeds; a labeler can see runs but cannot start or cancel one; a cancel without the
//! CSRF token is refused.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use axum::http::StatusCode;
use datasets::test_db::TestDatabase;
use datasets::*;
use std::time::{Duration, Instant};
use trainer::jobs::{JobQueue, QueueSettings, WorkerState};
use workbench::config::Config;
use workbench::state::AppState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ml_engineer_starts_a_run_and_follows_it_to_its_version() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = datasets::demo_project::install_demo_project(
        &store,
        &ProjectName::parse("Demo").unwrap(),
        LabelMode::Multi,
        600,
        3,
    )
    .await
    .unwrap();
    let settings = QueueSettings {
        poll_interval: Duration::from_millis(100),
        ..QueueSettings::default()
    };
    let queue = JobQueue::open(&store, &settings).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let router = workbench::app::app(AppState::new(store.clone(), config).with_jobs(queue.clone()));
    let app = support::WebApp::with_router(store.clone(), router).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(trainer::jobs::run_worker(
        queue,
        WorkerState {
            store: store.clone(),
            artifacts: inference::artifact_store::ArtifactStore::local(dir.path().join("models")),
            name: "web-test".into(),
            stopping: Default::default(),
            guard_margin: 0.02,
            retag_after_promotion: 0,
            connector_jobs: None,
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let base = format!("/p/{}/training", project.id);

    // A labeler sees the page but neither the form nor the right to post it.
    let lab = app.login("labeler").await;
    let page = app.get(&base, Some(&lab)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("Start training"));
    let refused = app
        .post(
            &base,
            Some(&lab.cookie),
            &[("csrf", &lab.csrf), ("kind", "ngram")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        store
            .training_runs(project.id, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let ml = app.login("mlengineer").await;
    let page = app.get(&base, Some(&ml)).await;
    assert!(page.body.contains("Start training"), "{}", page.body);
    // The form offers every registered kind, the default one selected.
    for kind in ModelKind::ALL {
        let selected = if kind == ModelKind::default() {
            " selected"
        } else {
            ""
        };
        let option = format!(
            "<option value=\"{kind}\"{selected}>{kind} — {}</option>",
            kind.info().summary
        );
        assert!(page.body.contains(&option), "{option} in {}", page.body);
    }
    // An unknown kind is refused with the list of kinds, nothing queued.
    let unknown = app
        .post(
            &base,
            Some(&ml.cookie),
            &[("csrf", &ml.csrf), ("kind", "bert")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown
            .body
            .contains("ngram, encoder-head, finetune, setfit"),
        "{}",
        unknown.body
    );
    // Without the CSRF token nothing is queued.
    let forged = app
        .post(&base, Some(&ml.cookie), &[("kind", "ngram")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // A bad parameter is refused with the reason, nothing queued.
    let bad = app
        .post(
            &base,
            Some(&ml.cookie),
            &[("csrf", &ml.csrf), ("kind", "ngram"), ("epochs", "0")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::SEE_OTHER);
    assert!(
        store
            .training_runs(project.id, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let started = app
        .post(
            &base,
            Some(&ml.cookie),
            &[("csrf", &ml.csrf), ("kind", "ngram"), ("epochs", "4")],
        )
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let run_page = started.location.unwrap();
    let run = store.training_runs(project.id, 1).await.unwrap()[0].clone();
    assert_eq!(run_page, format!("{base}/{}", run.id));
    assert_eq!(run.requested_by, "web:mlengineer");
    assert_eq!(run.params["epochs"], 4);
    let page = app.get(&run_page, Some(&ml)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&format!("Training run #{}", run.id)));

    // The live JSON follows the run to its end.
    let deadline = Instant::now() + Duration::from_secs(120);
    let last = loop {
        let progress = app.get(&format!("{run_page}/progress"), Some(&ml)).await;
        assert_eq!(progress.status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&progress.body).unwrap();
        if json["final"] == true {
            break json;
        }
        assert!(Instant::now() < deadline, "the run did not end: {json}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(last["status"], "succeeded", "{last}");
    let version = last["version_id"].as_i64().unwrap();
    let page = app.get(&run_page, Some(&ml)).await;
    assert!(
        page.body.contains(&format!("Version #{version}")),
        "{}",
        page.body
    );
    let list = app.get(&base, Some(&ml)).await;
    assert!(list.body.contains("succeeded"));

    // An ended run cannot be cancelled; the labeler cannot cancel at all.
    let cancel = format!("{run_page}/cancel");
    assert_eq!(
        app.post(&cancel, Some(&lab.cookie), &[("csrf", &lab.csrf)])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post(&cancel, Some(&ml.cookie), &[("csrf", &ml.csrf)])
            .await
            .status,
        StatusCode::CONFLICT
    );
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
}
