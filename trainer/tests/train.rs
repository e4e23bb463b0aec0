//! Training runs against a real store: a version is recorded with files that load and
//! scores that beat chance, on one-tag and several-tag projects, on SQLite and PostgreSQL;
//! tampering and too little data are refused.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
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
    assert_eq!(version.kind, datasets::ModelKind::Ngram);
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
async fn the_ngram_setting_chosen_by_cross_validation_is_recorded_and_reproducible() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store, "Chosen", LabelMode::Single, 400).await;
    let models = tempfile::tempdir().unwrap();
    let mut request = quick();
    request.ngram.selection_budget = trainer::ngram_selection::SUGGESTED_SELECTION_BUDGET;
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let outcome = train(&store, &project, &request, models.path(), |_| {})
            .await
            .unwrap();
        outcomes.push(outcome);
    }
    let selection = outcomes[0].selection.clone().unwrap();
    assert!(selection.trials.len() > 1, "{selection:?}");
    // The card holds the chosen setting and the whole search.
    let params = &outcomes[0].version.params["ngram"];
    let choice = selection.choice();
    assert_eq!(params["epochs"], choice.epochs);
    assert_eq!(params["l2"].as_f64().unwrap() as f32, choice.l2);
    assert_eq!(params["features"]["char_max"], choice.char_max);
    // Every trial, with the evidence it was judged on (numbers through the database's
    // JSON may lose their last digit).
    let recorded: trainer::ngram_selection::Selection =
        serde_json::from_value(params["selection"].clone()).unwrap();
    assert_eq!(recorded.chosen, selection.chosen);
    assert_eq!(recorded.trials.len(), selection.trials.len());
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs());
    for (stored, trial) in recorded.trials.iter().zip(&selection.trials) {
        assert_eq!(stored.features, trial.features);
        assert_eq!((stored.l2, stored.epochs), (trial.l2, trial.epochs));
        assert!(
            close(stored.accuracy, trial.accuracy),
            "{stored:?} {trial:?}"
        );
        assert!(close(stored.loss, trial.loss), "{stored:?} {trial:?}");
        assert_eq!(stored.gain.is_some(), trial.gain.is_some());
        if let (Some(a), Some(b)) = (stored.standard_error, trial.standard_error) {
            assert!(close(a, b), "{stored:?} {trial:?}");
        }
    }
    // The first candidate is the request's own setting; any other chosen beat the choice
    // before it by more than one standard error.
    assert!(selection.trials[0].gain.is_none());
    if selection.chosen > 0 {
        let choice = selection.choice();
        assert!(
            choice.gain.unwrap() > choice.standard_error.unwrap(),
            "{selection:?}"
        );
    }
    // Same tickets and seed: the same choice and the same weights, byte for byte.
    assert_eq!(outcomes[1].selection.as_ref(), Some(&selection));
    let weights = |outcome: &trainer::TrainOutcome| {
        std::fs::read(
            std::path::Path::new(&outcome.version.artifact_path)
                .join(inference::artifact::WEIGHTS_FILE),
        )
        .unwrap()
    };
    assert_eq!(weights(&outcomes[0]), weights(&outcomes[1]));
}

#[tokio::test]
async fn a_selection_budget_of_zero_trains_the_requested_setting() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store, "Fixed", LabelMode::Single, 400).await;
    let models = tempfile::tempdir().unwrap();
    let mut request = quick();
    request.ngram.selection_budget = 0;
    let outcome = train(&store, &project, &request, models.path(), |_| {})
        .await
        .unwrap();
    assert!(outcome.selection.is_none());
    assert!(outcome.version.params["ngram"]["selection"].is_null());
    assert_eq!(
        outcome.version.params["ngram"]["l2"].as_f64().unwrap() as f32,
        1e-6
    );
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

/// A project imported with every ticket in the train split (`tagger import --split train`).
async fn train_split_only_project(store: &AnyStore, name: &str, tickets: usize) -> Project {
    let name = ProjectName::parse(name).unwrap();
    let mut writer = store
        .begin_import(&name, Some(LabelMode::Multi), "test")
        .await
        .unwrap();
    for tag in datasets::demo::default_taxonomy() {
        writer.create_tag(&tag.name).await.unwrap();
    }
    let rows = datasets::demo::generate(tickets, 7, chrono::Utc::now())
        .into_iter()
        .map(|t| datasets::store::ImportRow {
            verdict: None,
            tags: t
                .tags
                .iter()
                .map(|tag| writer.tags()[&tag.folded()])
                .collect(),
            ticket: NewTicket {
                source: "import".into(),
                external_id: t.external_id,
                subject: t.subject,
                body: t.body,
                metadata: t.metadata,
                created_at: Some(t.created_at),
                split: Split::Train,
            },
        })
        .collect();
    writer.write(rows).await.unwrap();
    let project = writer.project().clone();
    writer.commit().await.unwrap();
    project
}

#[tokio::test]
async fn a_project_without_a_test_split_is_judged_on_training_tickets_held_out() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = train_split_only_project(&store, "TrainOnly", 300).await;
    let data = trainer::examples::load_training_data(&store, &project)
        .await
        .unwrap();
    let labelled = data.train.len() + data.validation.len() + data.test.len();
    // A fifth of the labelled tickets, never fewer than the minimum.
    let expected = (labelled as f64 * trainer::examples::HELD_OUT_FRACTION).ceil() as usize;
    assert!(expected >= trainer::examples::MIN_HELD_OUT);
    assert_eq!(data.test.len(), expected);
    assert_eq!(
        data.held_out,
        trainer::examples::HeldOut::TopUpFromTraining {
            from_training: expected
        }
    );
    // No ticket is both learned from and judged on.
    assert!(data.test.iter().all(|t| {
        !data
            .train
            .iter()
            .chain(&data.validation)
            .any(|e| e.ticket == t.ticket)
    }));

    let models = tempfile::tempdir().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let outcome = train(&store, &project, &quick(), models.path(), move |p| {
        let _ = sender.send(p);
    })
    .await
    .unwrap();
    assert_eq!(outcome.evaluation.examples, expected);
    assert!(
        outcome.evaluation.micro_f1 > 0.5,
        "{}",
        outcome.evaluation.micro_f1
    );
    assert_eq!(
        outcome.version.params["held_out"],
        serde_json::json!({"source": "top-up-from-training", "from_training": expected})
    );
    assert!(receiver.try_iter().any(|p| matches!(
        p,
        trainer::Progress::Loaded {
            held_out: trainer::examples::HeldOut::TopUpFromTraining { .. },
            ..
        }
    )));
    // The same tickets are held out when the version is evaluated again.
    let (again, _) = evaluate_version(&store, &project, &outcome.version)
        .await
        .unwrap();
    assert_eq!(again.examples, expected);
    assert!((again.macro_f1 - outcome.evaluation.macro_f1).abs() < 1e-9);
    // The version is promotable: it has a held-out evaluation.
    assert!(datasets::registry::check_guard(&outcome.version, None, 0.02).is_ok());
}

#[tokio::test]
async fn too_few_labelled_tickets_to_hold_some_out_are_refused_with_a_reason() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    // About 25 labelled tickets: 20 held out would leave too few to learn from.
    let project = train_split_only_project(&store, "Small", 30).await;
    let models = tempfile::tempdir().unwrap();
    let error = train(&store, &project, &quick(), models.path(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, TrainError::NotEnoughData(_)), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("held out to evaluate the model")
            && message.contains("20 held-out tickets"),
        "{message}"
    );
}

/// A multi-label project whose taxonomy has a single-choice "Kind" group beside its topics:
/// each labelled ticket's kind follows its first topic, so a model that reads the topics can
/// learn it.
async fn grouped_project(store: &AnyStore, tickets: usize) -> Project {
    let project = demo_project(store, "Grouped", LabelMode::Multi, tickets).await;
    let kind = store
        .create_tag_group(
            project.id,
            &NewTagGroup {
                name: TagGroupName::parse("Kind").unwrap(),
                choice: GroupChoice::Single,
            },
        )
        .await
        .unwrap();
    for name in ["Money", "Access", "Other"] {
        let tag = NewTag {
            group: Some(kind.name.clone()),
            ..NewTag::named(TagName::parse(name).unwrap())
        };
        store.create_tag(project.id, &tag).await.unwrap();
    }
    let topics: Vec<TagName> = store
        .list_tags(project.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.group_id != kind.id)
        .map(|t| t.name)
        .collect();
    let kind_of = |first: &TagName| {
        let position = topics.iter().position(|t| t == first).unwrap_or(0);
        TagName::parse(["Money", "Access", "Other"][position % 3]).unwrap()
    };
    let labelled = store
        .tickets_after(project.id, None, tickets as u32)
        .await
        .unwrap();
    for ticket in labelled.iter().filter(|t| !t.tags.is_empty()) {
        let mut tags = ticket.tags.clone();
        tags.push(kind_of(&ticket.tags[0]));
        store
            .set_human_labels(project.id, ticket.ticket.id, &tags, "test")
            .await
            .unwrap();
    }
    project
}

#[tokio::test]
async fn a_grouped_project_trains_a_softmax_for_its_single_choice_group_and_is_judged_per_group() {
    let database = TestDatabase::sqlite().unwrap();
    grouped_training(&database.store().await.unwrap()).await;
}

#[tokio::test]
async fn grouped_training_works_the_same_on_postgres() {
    let Some(database) = TestDatabase::postgres("grouped_training_works_the_same_on_postgres")
        .await
        .unwrap()
    else {
        return;
    };
    grouped_training(&database.store().await.unwrap()).await;
    database.drop_database().await.unwrap();
}

async fn grouped_training(store: &AnyStore) {
    let project = grouped_project(store, 600).await;
    let models = tempfile::tempdir().unwrap();
    let outcome = train(store, &project, &quick(), models.path(), |_| {})
        .await
        .unwrap();
    let version = find_version(store, &project, None).await.unwrap();
    let model = load_version(&version).unwrap();
    let card = &model.card;
    // Two heads: the default group's topics (several per ticket), then Kind (one).
    let heads: Vec<(&str, GroupChoice, usize)> = card
        .groups
        .iter()
        .map(|h| (h.name.as_str(), h.choice, h.len))
        .collect();
    assert_eq!(
        heads,
        [
            ("Tags", GroupChoice::Multi, 10),
            ("Kind", GroupChoice::Single, 3)
        ]
    );
    let kinds: Vec<&str> = card.tags[10..].iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        kinds,
        ["Access", "Money", "Other"],
        "a group's outputs run together"
    );
    // The Kind head is one softmax: its three probabilities sum to one on any text; the
    // topics are independent sigmoids.
    for text in ["I was charged twice", "cannot log in", "🙂"] {
        let p = model.probabilities(text);
        let kind: f32 = p[10..].iter().sum();
        assert!((kind - 1.0).abs() < 1e-5, "{text}: {p:?}");
    }
    let topics: f32 = model.probabilities("I was charged twice")[..10]
        .iter()
        .sum();
    assert!((topics - 1.0).abs() > 1e-3, "topics are not a softmax");

    let groups = &outcome.evaluation.groups;
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[1].group, "Kind");
    // Chance is about a third; the kind follows the topic, which the model reads well.
    assert!(groups[1].accuracy > 0.7, "{:?}", groups[1]);
    assert!(groups[1].examples > 0 && groups[1].examples <= outcome.evaluation.examples);
    // Evaluated again from the stored version, with the same groups.
    let (again, _) = evaluate_version(store, &project, &version).await.unwrap();
    assert_eq!(again.groups.len(), 2);
    assert!((again.groups[1].accuracy - groups[1].accuracy).abs() < 1e-9);

    // The service's decisions take at most one kind per ticket, reported per group.
    let taxonomy = store.list_tags(project.id).await.unwrap();
    let tag_groups = store.list_tag_groups(project.id).await.unwrap();
    let decider = inference::Decider::new(card.label_mode, &card.tags, &card.thresholds, &taxonomy)
        .with_groups(&tag_groups);
    for text in [
        "I was charged twice for my invoice",
        "the password reset mail never came",
    ] {
        let decision = decider.decide(text, &model.probabilities(text), false);
        let kind = decision
            .groups
            .iter()
            .find(|g| g.group.as_str() == "Kind")
            .unwrap();
        assert!(kind.tags.len() <= 1, "{decision:?}");
        assert_eq!(kind.scores.len(), 3);
    }
}

#[tokio::test]
async fn a_project_whose_tags_are_all_in_one_group_trains_as_before_groups() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store, "Plain", LabelMode::Single, 300).await;
    // An empty extra group changes nothing: the model has one head over every tag.
    store
        .create_tag_group(
            project.id,
            &NewTagGroup {
                name: TagGroupName::parse("Priority").unwrap(),
                choice: GroupChoice::Single,
            },
        )
        .await
        .unwrap();
    let models = tempfile::tempdir().unwrap();
    let outcome = train(&store, &project, &quick(), models.path(), |_| {})
        .await
        .unwrap();
    let model = load_version(&outcome.version).unwrap();
    assert!(model.card.groups.is_empty());
    assert_eq!(model.card.label_mode, LabelMode::Single);
    assert!(outcome.evaluation.groups.is_empty());
    let p = model.probabilities("I was charged twice");
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn a_token_budget_reaches_both_tuned_kinds_and_bad_ones_are_refused() {
    let params: trainer::jobs::TrainingParams =
        serde_json::from_value(serde_json::json!({"max_tokens": 256})).unwrap();
    let request = params.request(ModelKind::Finetune).unwrap();
    assert_eq!(request.finetune.max_tokens, 256);
    assert_eq!(request.setfit.max_tokens, 256);
    assert_eq!(request.finetune.encoder_options().max_tokens, 256);
    let default = trainer::jobs::TrainingParams::default()
        .request(ModelKind::Finetune)
        .unwrap();
    assert_eq!(default.finetune.max_tokens, 64);
    for tokens in [0, 7, 513, 100_000] {
        let params = trainer::jobs::TrainingParams {
            max_tokens: Some(tokens),
            ..Default::default()
        };
        let refused = params.request(ModelKind::Finetune).unwrap_err();
        assert!(refused.contains("max_tokens"), "{tokens}: {refused}");
    }
}

#[test]
fn ngram_solver_parameters_reach_the_request_and_bad_ones_are_refused() {
    let params: trainer::jobs::TrainingParams =
        serde_json::from_value(serde_json::json!({"solver": "adagrad", "loss_weight": 3.0}))
            .unwrap();
    let request = params.request(ModelKind::Ngram).unwrap();
    assert_eq!(request.ngram.solver, trainer::ngram::NgramSolver::Adagrad);
    assert_eq!(request.ngram.loss_weight, Some(3.0));
    let default = trainer::jobs::TrainingParams::default()
        .request(ModelKind::Ngram)
        .unwrap();
    assert_eq!(default.ngram.solver, trainer::ngram::NgramSolver::Auto);
    assert_eq!(default.ngram.loss_weight, None);
    for weight in [0.0, -1.0, 2e6] {
        let params = trainer::jobs::TrainingParams {
            loss_weight: Some(weight),
            ..Default::default()
        };
        assert!(params.request(ModelKind::Ngram).is_err(), "{weight}");
    }
    let unknown = serde_json::from_value::<trainer::jobs::TrainingParams>(
        serde_json::json!({"solver": "sgd"}),
    );
    assert!(unknown.is_err());
}
