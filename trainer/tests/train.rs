//! Training runs against a real store: a version is recorded with files that load and
//! scores that beat chance, on one-tag and several-tag projects, on SQLite and PostgreSQL;
//! tampering and too little data are refused.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::test_db::TestDatabase;
use datasets::*;
use inference::ModelKind;
use trainer::run::TrainRequest;
use trainer::{TrainError, evaluate_version, find_version, load_version, train};

async fn demo_project(store: &AnyStore, name: &str, mode: LabelMode, tickets: usize) -> Project {
    let name = ProjectName::parse(name).unwrap();
    datasets::demo_project::install_demo_project(store, &name, mode, tickets, 7)
        .await
        .unwrap()
}

fn quick() -> TrainRequest {
    let mut request = TrainRequest::default();
    request.ngram.epochs = 8;
    request
}

async fn train_and_check(store: &AnyStore, mode: LabelMode) {
    let project = demo_project(store, "Demo", mode, 800).await;
    let models = tempfile::tempdir().unwrap();
    let mut epochs = Vec::new();
    let (sender, receiver) = std::sync::mpsc::channel();
    let outcome = train(store, &project, &quick(), models.path(), move |p| {
        let _ = sender.send(p);
    })
    .await
    .unwrap();
    epochs.extend(
        receiver
            .try_iter()
            .filter(|p| matches!(p, trainer::Progress::Epoch(_))),
    );
    assert!(!epochs.is_empty(), "progress was reported");

    let evaluation = &outcome.evaluation;
    // Ten tags: chance is far below these.
    assert!(
        evaluation.micro_f1 > 0.6,
        "micro-F1 {}",
        evaluation.micro_f1
    );
    assert!(evaluation.ece < 0.2, "ECE {}", evaluation.ece);
    assert_eq!(evaluation.per_tag.len(), 10);
    let share = evaluation.coverage.auto_tagged_share + evaluation.coverage.review_share;
    assert!((share - 1.0).abs() < 1e-9);
    if mode == LabelMode::Single {
        let confused: usize = evaluation.confusion.iter().flatten().sum();
        assert_eq!(confused, evaluation.examples);
    }

    // The recorded version loads (hashes checked) and re-evaluates to the same figures.
    let version = find_version(store, &project, None).await.unwrap();
    assert_eq!(version.id, outcome.version.id);
    assert_eq!(version.kind, "ngram");
    assert_eq!(version.files.len(), 2);
    let model = load_version(&version).unwrap();
    assert_eq!(model.card.label_mode, mode);
    let (again, _) = evaluate_version(store, &project, &version).await.unwrap();
    // Stored JSON may differ in the last digit of a float; the figures must agree.
    for key in ["accuracy", "micro_f1", "macro_f1", "ece"] {
        let stored = version.metrics[key].as_f64().unwrap();
        let recomputed = serde_json::to_value(&again).unwrap()[key].as_f64().unwrap();
        assert!(
            (stored - recomputed).abs() < 1e-6,
            "{key}: {stored} vs {recomputed}"
        );
    }
    assert_eq!(
        serde_json::to_value(&again).unwrap()["confusion"],
        version.metrics["confusion"]
    );

    // A tag added after training is reported, not a crash.
    store
        .create_tag(
            project.id,
            &NewTag::named(TagName::parse("Outage").unwrap()),
        )
        .await
        .unwrap();
    let (_, drift) = evaluate_version(store, &project, &version).await.unwrap();
    assert_eq!(drift.not_covered, [TagName::parse("Outage").unwrap()]);

    // A damaged file is refused.
    let weights =
        std::path::Path::new(&version.artifact_path).join(inference::artifact::WEIGHTS_FILE);
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    let error = evaluate_version(store, &project, &version)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TrainError::Model(inference::ModelError::HashMismatch { .. })
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_multi_label_project_trains_evaluates_and_records_a_version() {
    let database = TestDatabase::sqlite().unwrap();
    train_and_check(&database.store().await.unwrap(), LabelMode::Multi).await;
}

#[tokio::test]
async fn a_single_label_project_trains_evaluates_and_records_a_version() {
    let database = TestDatabase::sqlite().unwrap();
    train_and_check(&database.store().await.unwrap(), LabelMode::Single).await;
}

#[tokio::test]
async fn training_works_the_same_on_postgres() {
    let Some(database) = TestDatabase::postgres("training_works_the_same_on_postgres")
        .await
        .unwrap()
    else {
        return;
    };
    train_and_check(&database.store().await.unwrap(), LabelMode::Multi).await;
    database.drop_database().await.unwrap();
}

#[tokio::test]
async fn too_few_labels_are_refused_with_a_reason() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store, "Tiny", LabelMode::Multi, 6).await;
    let models = tempfile::tempdir().unwrap();
    let error = train(&store, &project, &quick(), models.path(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, TrainError::NotEnoughData(_)));
    assert!(
        error.to_string().contains("label at least 10 tickets"),
        "{error}"
    );
    // Every kind checks the data before loading anything.
    let finetune = TrainRequest {
        kind: ModelKind::Finetune,
        ..quick()
    };
    let error = train(&store, &project, &finetune, models.path(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, TrainError::NotEnoughData(_)), "{error}");
}
