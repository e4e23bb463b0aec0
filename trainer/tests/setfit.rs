//! `setfit` runs on a tiny random BERT written into a temporary hub cache (no download): the
//! contrastive phase lowers the pair loss, a run tunes the encoder itself and records a
//! version holding it that reloads without the hub cache and tags, queued-run parameters
//! reach it, and a stop request ends the run with nothing written.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::*;
use inference::encoder::hub::HubCache;
use inference::encoder::testing::{TINY_REPO, TinyBert};
use inference::encoder::{Encoder, EncoderFiles, EncoderOptions, WEIGHTS_FILE};
use inference::{ModelKind, TaggingModel};
use std::ops::ControlFlow;
use std::path::Path;
use trainer::examples::{Example, load_training_data};
use trainer::jobs::TrainingParams;
use trainer::run::{TrainRequest, evaluate_model, train_until};
use trainer::setfit::{SetfitParams, pair_loss, sample_pairs, tune_encoder_until};
use trainer::{Progress, TrainError, train};

async fn demo_project(store: &AnyStore, mode: LabelMode, tickets: usize) -> Project {
    let name = ProjectName::parse("Pairs").unwrap();
    datasets::demo_project::install_demo_project(store, &name, mode, tickets, 7)
        .await
        .unwrap()
}

/// Settings for the tiny model: large steps, because its weights are random rather than
/// pretrained, and one thread so tests running side by side do not fight for cores.
fn tiny_params(hub: &Path, max_pairs: usize) -> SetfitParams {
    SetfitParams {
        encoder: TINY_REPO.into(),
        hub_cache: Some(hub.to_path_buf()),
        threads: 1,
        max_tokens: 64,
        max_pairs,
        pair_batch_size: 16,
        learning_rate: 2e-3,
        // Deterministic steps: dropout draws from an unseeded generator.
        dropout: 0.0,
        ..SetfitParams::default()
    }
}

fn tiny_request(hub: &Path, max_pairs: usize) -> TrainRequest {
    TrainRequest {
        kind: ModelKind::Setfit,
        setfit: tiny_params(hub, max_pairs),
        ..TrainRequest::default()
    }
}

fn options() -> EncoderOptions {
    EncoderOptions {
        threads: 1,
        ..EncoderOptions::default()
    }
}

/// A weight matrix of a safetensors file, as numbers.
fn weight(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu).unwrap();
    tensors[name].flatten_all().unwrap().to_vec1().unwrap()
}

#[tokio::test]
async fn the_contrastive_phase_lowers_the_pair_loss() {
    let hub = tempfile::tempdir().unwrap();
    TinyBert::default().write(hub.path(), TINY_REPO).unwrap();
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store, LabelMode::Single, 300).await;
    let data = load_training_data(&store, &project).await.unwrap();
    let params = SetfitParams {
        dropout: 0.0,
        ..tiny_params(hub.path(), 800)
    };
    let files =
        EncoderFiles::read(&params.cache().snapshot(TINY_REPO, None).unwrap(), None).unwrap();
    let encoder = Encoder::from_files(&files, &params.encoder_options()).unwrap();
    let train: Vec<&Example> = data.train.iter().collect();
    let pairs = sample_pairs(&train, params.iterations, params.max_pairs, params.seed);
    assert_eq!(pairs.len(), 800);
    // Pairs the tuning never sees: the loss must fall on them too, not only on its own.
    let unseen = sample_pairs(&train, 1, 400, params.seed + 1);
    let before = pair_loss(&encoder, &train, &unseen).unwrap();
    let mut steps = Vec::new();
    let tuned = tune_encoder_until(&encoder, &files, &train, &pairs, &params, |step| {
        steps.push(step);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(!tuned.stopped);
    assert_eq!(tuned.steps, 800 / params.pair_batch_size);
    assert_eq!(steps.len(), tuned.steps);
    assert!(
        steps
            .iter()
            .all(|s| s.loss.is_finite() && s.steps == tuned.steps)
    );
    let after = pair_loss(
        &Encoder::from_files(&tuned.files, &params.encoder_options()).unwrap(),
        &train,
        &unseen,
    )
    .unwrap();
    println!(
        "pair loss on unseen pairs {before:.4} -> {after:.4}; training batches {:.4} -> {:.4}",
        tuned.first_loss, tuned.last_loss
    );
    assert!(after < 0.7 * before, "{before} -> {after}");
    assert!(tuned.last_loss < tuned.first_loss);
}

#[tokio::test]
async fn a_setfit_run_tunes_the_encoder_saves_it_and_reloads_to_the_same_scores() {
    let hub = tempfile::tempdir().unwrap();
    let snapshot = TinyBert::default().write(hub.path(), TINY_REPO).unwrap();
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store, LabelMode::Single, 400).await;
    let models = tempfile::tempdir().unwrap();

    let (sender, receiver) = std::sync::mpsc::channel();
    let outcome = train(
        &store,
        &project,
        &tiny_request(hub.path(), 640),
        models.path(),
        move |p| {
            let _ = sender.send(p);
        },
    )
    .await
    .unwrap();
    let progress: Vec<Progress> = receiver.try_iter().collect();
    let steps = progress
        .iter()
        .filter(|p| matches!(p, Progress::Step(_)))
        .count();
    assert_eq!(steps, 640 / 16, "every contrastive step was reported");
    assert!(progress.iter().any(|p| matches!(p, Progress::Embedded(_))));
    assert!(progress.iter().any(|p| matches!(p, Progress::Epoch(_))));
    // Ten tags: chance is 0.1; a random 32-wide encoder tuned for 40 steps promises little
    // more than clearly better than chance.
    println!("test accuracy {}", outcome.evaluation.accuracy);
    assert!(
        outcome.evaluation.accuracy > 0.2,
        "accuracy {}",
        outcome.evaluation.accuracy
    );

    // The version holds the tuned encoder beside the head, as a `finetune` version does.
    let version = &outcome.version;
    assert_eq!(version.kind, datasets::ModelKind::Setfit);
    let names: Vec<&str> = version.files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "config.json",
            "model.json",
            "model.safetensors",
            "tokenizer.json",
            "weights.safetensors"
        ]
    );
    let recorded = &version.params["setfit"];
    assert_eq!(recorded["pairs"], 640);
    assert_eq!(recorded["steps"], 40);
    assert_eq!(recorded["max_pairs"], 640);
    let dir = Path::new(&version.artifact_path);
    let tuned = dir.join(WEIGHTS_FILE);
    for name in [
        "embeddings.word_embeddings.weight",
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.1.output.LayerNorm.weight",
    ] {
        let change = weight(&tuned, name)
            .iter()
            .zip(weight(&snapshot.join(WEIGHTS_FILE), name))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(change > 1e-4, "{name} changed by {change}");
    }

    // It loads from its own directory, with no hub cache, and scores as training recorded.
    let no_hub = tempfile::tempdir().unwrap();
    let loaded = TaggingModel::load_with(
        dir,
        &version.files,
        &HubCache::at(no_hub.path()),
        &options(),
    )
    .unwrap();
    assert_eq!(loaded.card.kind, ModelKind::Setfit);
    assert_eq!(loaded.card.encoder.as_ref().unwrap().max_tokens, 64);
    let data = load_training_data(&store, &project).await.unwrap();
    let taxonomy = store.list_tags(project.id).await.unwrap();
    let (again, _) = evaluate_model(&loaded, &data.test, &taxonomy, &data.groups).unwrap();
    // Same weights, same kernels; a tie to the last bits may flip one ticket.
    assert!(
        (again.accuracy - outcome.evaluation.accuracy).abs() <= 1.0 / data.test.len() as f64 + 1e-9,
        "{} vs {}",
        again.accuracy,
        outcome.evaluation.accuracy
    );
    // It scores a new ticket as the service does, with an out-of-distribution verdict
    // from both of `encoder-head`'s signals (the head's tag centroids came with it).
    let scored = loaded
        .score_batch(&["I was charged twice, please refund me"])
        .unwrap();
    assert_eq!(scored[0].logits.len(), 10);
    assert!(loaded.unfamiliarity(&scored[0]).is_some());
    assert_eq!(
        loaded
            .card
            .out_of_distribution
            .as_ref()
            .unwrap()
            .signals
            .len(),
        2
    );
}

#[tokio::test]
async fn a_multi_label_setfit_run_records_a_version_that_loads() {
    let hub = tempfile::tempdir().unwrap();
    TinyBert::default().write(hub.path(), TINY_REPO).unwrap();
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store, LabelMode::Multi, 200).await;
    let models = tempfile::tempdir().unwrap();
    let outcome = train(
        &store,
        &project,
        &tiny_request(hub.path(), 128),
        models.path(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(outcome.evaluation.per_tag.len(), 10);
    assert!(outcome.evaluation.micro_f1.is_finite());
    let version = &outcome.version;
    let loaded = TaggingModel::load_with(
        Path::new(&version.artifact_path),
        &version.files,
        &HubCache::at(hub.path()),
        &options(),
    )
    .unwrap();
    assert_eq!(loaded.card.kind, ModelKind::Setfit);
    assert_eq!(loaded.probabilities("refund please").len(), 10);
}

#[tokio::test]
async fn a_stop_request_ends_a_setfit_run_with_nothing_written() {
    let hub = tempfile::tempdir().unwrap();
    TinyBert::default().write(hub.path(), TINY_REPO).unwrap();
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store, LabelMode::Single, 200).await;
    let models = tempfile::tempdir().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let error = train_until(
        &store,
        &project,
        &tiny_request(hub.path(), 320),
        models.path(),
        move |p| {
            let step = matches!(p, Progress::Step(_));
            let _ = sender.send(p);
            if step {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(error, TrainError::Stopped), "{error}");
    let steps = receiver
        .try_iter()
        .filter(|p| matches!(p, Progress::Step(_)))
        .count();
    assert_eq!(steps, 1, "tuning stopped at the step boundary");
    let mut left = vec![models.path().to_path_buf()];
    let mut files = Vec::new();
    while let Some(dir) = left.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                left.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.is_empty(), "files were written: {files:?}");
    assert!(store.model_versions(project.id).await.unwrap().is_empty());
}

#[test]
fn training_jobs_accept_setfit_and_its_parameters() {
    let params = TrainingParams {
        epochs: Some(50),
        learning_rate: Some(3e-5),
        threads: Some(1),
        pairs: Some(500),
        ..TrainingParams::default()
    };
    let request = params.request(ModelKind::Setfit).unwrap();
    assert_eq!(request.kind, ModelKind::Setfit);
    assert_eq!(request.setfit.head_epochs, 50);
    assert_eq!(request.setfit.learning_rate, 3e-5);
    assert_eq!(request.setfit.threads, 1);
    assert_eq!(request.setfit.max_pairs, 500);
    let zero = TrainingParams {
        pairs: Some(0),
        ..TrainingParams::default()
    };
    assert!(zero.request(ModelKind::Setfit).is_err());
    let json: TrainingParams = serde_json::from_str(r#"{"pairs": 300}"#).unwrap();
    assert_eq!(json.pairs, Some(300));
}

#[test]
fn setfit_parameters_that_cannot_train_are_refused() {
    for bad in [
        SetfitParams {
            dropout: 1.0,
            ..SetfitParams::default()
        },
        SetfitParams {
            pair_batch_size: 0,
            ..SetfitParams::default()
        },
        SetfitParams {
            max_pairs: 0,
            ..SetfitParams::default()
        },
        SetfitParams {
            learning_rate: f64::NAN,
            ..SetfitParams::default()
        },
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
    }
    assert!(SetfitParams::default().check().is_ok());
}
