//! A training run from start to finish: read the labelled tickets, fit the model, calibrate
//! it, choose thresholds and fit its out-of-distribution detector on held-out scores
//! (validation tickets, or out-of-fold scores when the validation split is small), evaluate
//! it on the test split, write its files, publish them to the artifact store and record the
//! version. And the same evaluation for a stored version.

use crate::calibrate::{CALIBRATION_FOLDS, choose_temperature};
use crate::encoder_head::{EmbeddingReport, EncoderHeadParams, TrainEncoderHeadError};
use crate::evaluate::{Evaluation, EvaluationInputs, evaluate};
use crate::examples::{Example, HeldOut, MIN_HELD_OUT, TrainingData, load_training_data};
use crate::finetune::{FinetuneParams, StepReport, TrainFinetuneError};
use crate::ngram::{EpochReport, NgramParams, train_ngram, train_ngram_until};
use crate::ngram_selection::{NoSelection, Selection, select_ngram};
use crate::setfit::{SetfitParams, TrainSetfitError};
use crate::thresholds::{CONFIDENCE, choose_thresholds};
use datasets::store::prelude::*;
use datasets::{AnyStore, ModelVersion, ModelVersionId, NewModelVersion, Project, StoreError};
use inference::artifact_store::{ArtifactStore, ArtifactStoreError};
use inference::card::{CARD_FORMAT, ModelCard, ModelKind};
use inference::encoder::EncoderSpec;
use inference::heads::Heads;
use inference::model::{Scored, Scorer};
use inference::ngram::NgramShape;
use inference::out_of_distribution::{DEFAULT_QUANTILE, OodDetector};
use inference::{Decider, ModelError, TaggingModel, TaxonomyDrift};
use std::ops::ControlFlow;
use std::path::Path;

/// The precision auto-applied tags should have unless the run asks for another.
pub const DEFAULT_TARGET_PRECISION: f64 = 0.9;
/// Fewer validation tickets than this and a kind that cannot refit cheaply calibrates on
/// the training tickets instead.
const MIN_VALIDATION: usize = 20;
/// Fewer validation tickets than this and the kinds that refit in seconds choose their
/// temperature, thresholds and out-of-distribution detector on out-of-fold scores over the
/// training and validation tickets. At 1,000 held-out tickets the precision lower bound of
/// the pooled predictions is within about 1.5 points of the share right; at a few hundred
/// (issue 17: 152) a per-tag threshold rests on a few dozen tickets.
pub const MIN_VALIDATION_TICKETS: usize = 1_000;
/// Folds of the out-of-fold scores.
pub const HELD_OUT_FOLDS: usize = 5;

/// Where the scores come from that calibration, thresholds and the out-of-distribution
/// detector are chosen on; recorded with the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "source")]
pub enum HeldOutScores {
    /// The validation tickets, scored by a model fitted without them.
    Validation { tickets: usize },
    /// Every training and validation ticket, scored by the one of `folds` models that was
    /// fitted without its fold (`examples::fold_of`), each for the epochs early stopping
    /// chose.
    OutOfFold { folds: usize, tickets: usize },
    /// Too few validation tickets for a kind too slow to refit: the training tickets,
    /// scored by the model that learned them (optimistic; the lower bound still applies).
    Training { tickets: usize },
}

impl HeldOutScores {
    /// The plan for a run of `kind` on `data`.
    fn plan(data: &TrainingData, kind: ModelKind) -> Self {
        let refits_cheaply = match kind {
            ModelKind::Ngram | ModelKind::EncoderHead => true,
            // The tuned encoder learned the training tickets: scores of refits on its
            // embeddings would not be held out.
            ModelKind::Finetune | ModelKind::Setfit => false,
        };
        let labelled = data.train.len() + data.validation.len();
        if refits_cheaply
            && data.validation.len() < MIN_VALIDATION_TICKETS
            && labelled >= 2 * HELD_OUT_FOLDS
        {
            Self::OutOfFold {
                folds: HELD_OUT_FOLDS,
                tickets: labelled,
            }
        } else if data.validation.len() >= MIN_VALIDATION {
            Self::Validation {
                tickets: data.validation.len(),
            }
        } else {
            Self::Training {
                tickets: data.train.len(),
            }
        }
    }

    /// The tickets scored, in the order the scores come.
    pub(crate) fn examples(self, data: &TrainingData) -> Vec<Example> {
        match self {
            Self::Validation { .. } => data.validation.clone(),
            Self::OutOfFold { .. } => data.train.iter().chain(&data.validation).cloned().collect(),
            Self::Training { .. } => data.train.clone(),
        }
    }
}

/// What to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainRequest {
    pub kind: ModelKind,
    pub ngram: NgramParams,
    pub encoder_head: EncoderHeadParams,
    pub finetune: FinetuneParams,
    pub setfit: SetfitParams,
    pub target_precision: f64,
}

impl Default for TrainRequest {
    fn default() -> Self {
        Self {
            kind: ModelKind::Ngram,
            ngram: NgramParams::default(),
            encoder_head: EncoderHeadParams::default(),
            finetune: FinetuneParams::default(),
            setfit: SetfitParams::default(),
            target_precision: DEFAULT_TARGET_PRECISION,
        }
    }
}

impl TrainRequest {
    /// The most epochs this request's kind will train for.
    pub fn epochs(&self) -> usize {
        match self.kind {
            ModelKind::Ngram => self.ngram.epochs,
            ModelKind::EncoderHead => self.encoder_head.epochs,
            ModelKind::Finetune => self.finetune.epochs,
            ModelKind::Setfit => self.setfit.head_epochs,
        }
    }

    /// Whether progress is best followed by steps rather than epochs (`Progress::Step`):
    /// true for kinds whose epochs take minutes. (`setfit`'s steps come first, then its
    /// head's epochs: each sets the bar when it comes.)
    pub fn reports_steps(&self) -> bool {
        match self.kind {
            ModelKind::Ngram | ModelKind::EncoderHead | ModelKind::Setfit => false,
            ModelKind::Finetune => true,
        }
    }
}

/// Progress a run reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Loaded {
        train: usize,
        validation: usize,
        test: usize,
        tags: usize,
        /// Whether `test` had to be topped up from the training tickets.
        held_out: HeldOut,
    },
    /// Sentence embeddings computed so far (of those the cache did not have).
    Embedding {
        done: usize,
        total: usize,
    },
    /// Every ticket has its embedding.
    Embedded(EmbeddingReport),
    /// `ngram` model selection: candidate settings tried so far, of those planned.
    Selecting {
        tried: usize,
        candidates: usize,
    },
    Epoch(EpochReport),
    /// One gradient step of a `finetune` run (its epochs take minutes) or of `setfit`'s
    /// contrastive phase.
    Step(StepReport),
    /// Training again on training and validation tickets for the best number of epochs.
    Refitting {
        epochs: usize,
    },
    Evaluating,
}

/// Why a run or an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Artifacts(#[from] ArtifactStoreError),
    #[error(transparent)]
    EncoderHead(#[from] TrainEncoderHeadError),
    #[error(transparent)]
    Finetune(#[from] TrainFinetuneError),
    #[error(transparent)]
    Setfit(#[from] TrainSetfitError),
    #[error("not enough labelled tickets to train: {0}")]
    NotEnoughData(String),
    #[error("the training thread failed: {0}")]
    Worker(String),
    /// Cancelled, or the worker is shutting down: nothing was recorded.
    #[error("training stopped before it finished; no version was recorded")]
    Stopped,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub version: ModelVersion,
    pub evaluation: Evaluation,
    pub drift: TaxonomyDrift,
    pub train_seconds: f64,
    /// `ngram`: what model selection tried and chose, when it ran.
    pub selection: Option<Selection>,
}

fn check_enough(data: &TrainingData) -> Result<(), TrainError> {
    let tags_with_examples = (0..data.tags.len())
        .filter(|t| data.train.iter().any(|e| e.targets.contains(t)))
        .count();
    if data.train.len() < 10 || tags_with_examples < 2 {
        let held_out = match data.held_out {
            HeldOut::TestSplit => String::new(),
            HeldOut::TopUpFromTraining { from_training } => format!(
                " ({from_training} more are held out to evaluate the model, because the test split has fewer than {MIN_HELD_OUT} tickets)"
            ),
        };
        return Err(TrainError::NotEnoughData(format!(
            "{} training tickets over {tags_with_examples} tags{held_out}; label at least 10 tickets with at least 2 different tags, and enough beyond them for {MIN_HELD_OUT} held-out tickets",
            data.train.len()
        )));
    }
    Ok(())
}

/// Trains, evaluates and records a new candidate version of the project's model, its files
/// kept in `artifacts` (a plain directory is a local store).
pub async fn train(
    store: &AnyStore,
    project: &Project,
    request: &TrainRequest,
    artifacts: impl Into<ArtifactStore>,
    mut progress: impl FnMut(Progress) + Send + 'static,
) -> Result<TrainOutcome, TrainError> {
    train_until(store, project, request, artifacts, move |event| {
        progress(event);
        ControlFlow::Continue(())
    })
    .await
}

/// `train` whose progress callback may say stop (a cancelled job, a worker shutting down):
/// the run ends at the next epoch boundary with `TrainError::Stopped` and records nothing —
/// no model files are written before the last step, so there is never a half-written version.
/// The version is recorded only after its files reached the artifact store.
pub async fn train_until(
    store: &AnyStore,
    project: &Project,
    request: &TrainRequest,
    artifacts: impl Into<ArtifactStore>,
    mut progress: impl FnMut(Progress) -> ControlFlow<()> + Send + 'static,
) -> Result<TrainOutcome, TrainError> {
    let artifacts: ArtifactStore = artifacts.into();
    let data = load_training_data(store, project).await?;
    check_enough(&data)?;
    if let HeldOut::TopUpFromTraining { from_training } = data.held_out {
        tracing::warn!(
            project = %project.id,
            from_training,
            held_out = data.test.len(),
            "the test split has fewer than {MIN_HELD_OUT} tickets: training tickets held out to evaluate the model"
        );
    }
    let loaded = progress(Progress::Loaded {
        train: data.train.len(),
        validation: data.validation.len(),
        test: data.test.len(),
        tags: data.tags.len(),
        held_out: data.held_out,
    });
    if loaded.is_break() {
        return Err(TrainError::Stopped);
    }
    let taxonomy = store.list_tags(project.id).await?;
    let directory = artifacts.version_dir(
        project.id,
        &format!(
            "{}-{}",
            request.kind,
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
        ),
    );
    let request = request.clone();
    let saved_dir = directory.clone();
    let models_dir = artifacts.models_dir().to_path_buf();
    let project_id = project.id;
    // Training is seconds of pure CPU: keep it off the async workers.
    let (model, files, evaluation, drift, fit) = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        // Scores on tickets the model never saw are what calibration and thresholds need.
        let plan = HeldOutScores::plan(&data, request.kind);
        let held_out = plan.examples(&data);
        let mut encoder_files = None;
        let fitted = match request.kind {
            ModelKind::Finetune => {
                match crate::finetune::fit(&data, &held_out, &request.finetune, &mut progress) {
                    Err(TrainFinetuneError::Stopped) => return Err(TrainError::Stopped),
                    other => {
                        let fitted = other?;
                        encoder_files = Some(fitted.files);
                        fitted.fitted
                    }
                }
            }
            ModelKind::Setfit => {
                match crate::setfit::fit(&data, plan, &held_out, &request.setfit, &mut progress) {
                    Err(TrainSetfitError::Stopped) => return Err(TrainError::Stopped),
                    other => {
                        let fitted = other?;
                        encoder_files = Some(fitted.files);
                        fitted.fitted
                    }
                }
            }
            ModelKind::EncoderHead => match crate::encoder_head::fit(
                &data,
                plan,
                &held_out,
                &request.encoder_head,
                &models_dir,
                project_id,
                &mut progress,
            ) {
                Err(TrainEncoderHeadError::Stopped) => return Err(TrainError::Stopped),
                other => other?,
            },
            ModelKind::Ngram => fit_ngram(&data, plan, &held_out, &request.ngram, &mut progress)?,
        };
        let logits: Vec<Vec<f32>> = fitted
            .calibration
            .iter()
            .map(|s| s.logits.clone())
            .collect();
        let train_seconds = started.elapsed().as_secs_f64();
        if progress(Progress::Evaluating).is_break() {
            return Err(TrainError::Stopped);
        }
        let targets: Vec<Vec<usize>> = held_out.iter().map(|e| e.targets.clone()).collect();
        let calibration = choose_temperature(&logits, &targets, &data.heads, CALIBRATION_FOLDS);
        let temperature = calibration.temperature;
        let calibrated: Vec<Vec<f32>> = logits
            .iter()
            .map(|l| data.heads.probabilities(l, temperature))
            .collect();
        let thresholds = choose_thresholds(
            &calibrated,
            &targets,
            &data.heads,
            data.tags.len(),
            request.target_precision,
        );
        let signals: Vec<Vec<f32>> = fitted
            .calibration
            .iter()
            .map(|s| s.signals.clone())
            .collect();
        let detector = OodDetector::fit(fitted.scorer.signals(), &signals, DEFAULT_QUANTILE);
        let mut params = serde_json::json!({
            "target_precision": request.target_precision,
            "held_out_scores": plan,
            "calibration": calibration,
            "threshold_rule": {
                "bound": "wilson-lower-bound",
                "confidence": CONFIDENCE,
            },
            "train_examples": data.train.len(),
            "validation_examples": data.validation.len(),
            "test_examples": data.test.len(),
            "held_out": data.held_out,
            "labelled_by_hand": data.labelled_by_hand,
        });
        params[request.kind.as_str()] = fitted.params;
        let selection = fitted.selection;
        let card = ModelCard {
            format: CARD_FORMAT,
            kind: request.kind,
            label_mode: data.mode,
            tags: data.tags.clone(),
            groups: match &data.heads {
                Heads::Whole(_) => Vec::new(),
                Heads::Groups(heads) => heads.to_vec(),
            },
            temperature,
            thresholds,
            params,
            training_fingerprint: data.fingerprint.clone(),
            ngram: fitted.ngram,
            encoder: fitted.encoder,
            out_of_distribution: detector,
        };
        let mut tagging = TaggingModel {
            card,
            scorer: fitted.scorer,
        };
        let (evaluation, drift) = match fitted.test_scores {
            Some(scores) => evaluate_scores(&tagging, &data.test, &scores, &taxonomy, &data.groups),
            None => evaluate_model(&tagging, &data.test, &taxonomy, &data.groups)?,
        };
        // The card shows each threshold with how precise it turned out on the test split.
        tagging.card.params["realised_precision"] = evaluation
            .per_tag
            .iter()
            .map(|t| (t.tag.clone(), serde_json::json!(t.realised_precision)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        if let Some(parent) = directory.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ModelError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let files = match &encoder_files {
            Some(encoder) => tagging.save_with_encoder(&directory, encoder)?,
            None => tagging.save(&directory)?,
        };
        Ok::<_, TrainError>((
            tagging,
            files,
            evaluation,
            drift,
            (train_seconds, selection),
        ))
    })
    .await
    .map_err(|e| TrainError::Worker(e.to_string()))??;
    let (train_seconds, selection) = fit;
    let location = match artifacts.publish(project.id, &saved_dir, &files).await {
        Ok(location) => location,
        Err(error) => {
            // Never recorded, so never loaded: the local copy would only take disk.
            let _ = tokio::fs::remove_dir_all(&saved_dir).await;
            return Err(error.into());
        }
    };
    let metrics =
        serde_json::to_value(&evaluation).map_err(|e| TrainError::Worker(e.to_string()))?;
    let version = store
        .create_model_version(
            project.id,
            &NewModelVersion {
                kind: model.card.kind,
                metrics,
                params: model.card.params.clone(),
                artifact_path: location,
                files,
                training_fingerprint: model.card.training_fingerprint.clone(),
            },
        )
        .await?;
    Ok(TrainOutcome {
        version,
        evaluation,
        drift,
        train_seconds,
        selection,
    })
}

/// What fitting one kind of model hands to the shared calibration, thresholds,
/// out-of-distribution detector and evaluation.
pub(crate) struct Fitted {
    /// Scores on the held-out tickets (`HeldOutScores::examples`, in that order) from
    /// models that did not train on them.
    pub calibration: Vec<Scored>,
    /// Scores on the test tickets, when fitting could compute them cheaply.
    pub test_scores: Option<Vec<Scored>>,
    /// The final model (refitted on all labelled tickets when asked to).
    pub scorer: Scorer,
    /// The kind's hyper-parameters and run facts, recorded in the card.
    pub params: serde_json::Value,
    pub ngram: Option<NgramShape>,
    pub encoder: Option<EncoderSpec>,
    /// `ngram`: what model selection tried and chose, when it ran.
    pub selection: Option<Selection>,
}

fn fit_ngram(
    data: &TrainingData,
    plan: HeldOutScores,
    held_out: &[Example],
    requested: &NgramParams,
    progress: &mut (dyn FnMut(Progress) -> ControlFlow<()> + Send),
) -> Result<Fitted, TrainError> {
    let outputs = data.tags.len();
    let labelled: Vec<Example> = data.train.iter().chain(&data.validation).cloned().collect();
    // The setting is chosen on folds of the labelled training tickets; the test split is
    // never seen. Too few tickets to choose by, and the request's setting stands.
    let selection = if requested.selection_budget > 0 {
        match select_ngram(
            &data.heads,
            outputs,
            &labelled,
            requested,
            requested.selection_budget,
            |report| {
                progress(Progress::Selecting {
                    tried: report.tried,
                    candidates: report.candidates,
                })
            },
        ) {
            Ok(selection) => Some(selection),
            Err(NoSelection::TooFewTickets) => None,
            Err(NoSelection::Stopped) => return Err(TrainError::Stopped),
        }
    } else {
        None
    };
    let (settled, first) = match &selection {
        // The folds chose the epochs: every fit below trains for them, with nothing to
        // stop on.
        Some(selection) => (selection.apply(requested), None),
        None => {
            let fitted = train_ngram_until(
                &data.heads,
                outputs,
                &data.train,
                &data.validation,
                requested,
                |epoch| progress(Progress::Epoch(epoch)),
            );
            if fitted.stopped {
                return Err(TrainError::Stopped);
            }
            // Folds and refit train for the epochs early stopping chose, or with the loss
            // weight the validation tickets chose.
            (fitted.settled, Some(fitted.model))
        }
    };
    // The model fitted on the training tickets alone scores the validation tickets, and is
    // the final model when there is nothing to refit on; out-of-fold scores and a refit
    // need no such model.
    let refits = settled.refit && !data.validation.is_empty();
    let needs_first_fit = !matches!(plan, HeldOutScores::OutOfFold { .. }) || !refits;
    let first = match first {
        None if needs_first_fit => {
            let fitted =
                train_ngram_until(&data.heads, outputs, &data.train, &[], &settled, |epoch| {
                    progress(Progress::Epoch(epoch))
                });
            if fitted.stopped {
                return Err(TrainError::Stopped);
            }
            Some(fitted.model)
        }
        first => first,
    };
    let calibration = match (plan, &first) {
        (HeldOutScores::Validation { .. } | HeldOutScores::Training { .. }, Some(model)) => {
            held_out
                .iter()
                .map(|e| Scored::ngram(model, &e.text, &data.heads))
                .collect()
        }
        _ => {
            let folds = match plan {
                HeldOutScores::OutOfFold { folds, .. } => folds,
                _ => HELD_OUT_FOLDS,
            };
            let mut scores: Vec<Option<Scored>> = vec![None; held_out.len()];
            for fold in 0..folds {
                if progress(Progress::Refitting {
                    epochs: settled.epochs,
                })
                .is_break()
                {
                    return Err(TrainError::Stopped);
                }
                let (inside, outside): (Vec<usize>, Vec<usize>) = (0..held_out.len())
                    .partition(|&i| crate::examples::fold_of(held_out[i].ticket, folds) == fold);
                let rest: Vec<Example> = outside.iter().map(|&i| held_out[i].clone()).collect();
                let model = train_ngram(&data.heads, outputs, &rest, &[], &settled, |_| {}).model;
                for i in inside {
                    scores[i] = Some(Scored::ngram(&model, &held_out[i].text, &data.heads));
                }
            }
            scores.into_iter().flatten().collect()
        }
    };
    let model = match first {
        Some(model) if !refits => model,
        _ => {
            if progress(Progress::Refitting {
                epochs: settled.epochs,
            })
            .is_break()
            {
                return Err(TrainError::Stopped);
            }
            // Its epochs are reported (the bar and the run's progress follow them) and a
            // cancelled run stops after the current one.
            let refitted =
                train_ngram_until(&data.heads, outputs, &labelled, &[], &settled, |epoch| {
                    progress(Progress::Epoch(epoch))
                });
            if refitted.stopped {
                return Err(TrainError::Stopped);
            }
            refitted.model
        }
    };
    let mut recorded = serde_json::json!(settled);
    recorded["selection"] = serde_json::json!(selection);
    Ok(Fitted {
        calibration,
        test_scores: None,
        ngram: Some(model.shape),
        encoder: None,
        scorer: Scorer::Ngram(model),
        params: recorded,
        selection,
    })
}

/// Evaluates a model on examples with today's taxonomy.
pub fn evaluate_model(
    model: &TaggingModel,
    examples: &[Example],
    taxonomy: &[datasets::Tag],
    groups: &[datasets::TagGroup],
) -> Result<(Evaluation, TaxonomyDrift), ModelError> {
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let scores = model.score_batch(&texts)?;
    Ok(evaluate_scores(model, examples, &scores, taxonomy, groups))
}

/// Evaluates a model's scores (one per example) with today's taxonomy.
pub fn evaluate_scores(
    model: &TaggingModel,
    examples: &[Example],
    scores: &[Scored],
    taxonomy: &[datasets::Tag],
    groups: &[datasets::TagGroup],
) -> (Evaluation, TaxonomyDrift) {
    let card = &model.card;
    let decider =
        Decider::new(card.label_mode, &card.tags, &card.thresholds, taxonomy).with_groups(groups);
    let heads = card.heads();
    let calibrated: Vec<Vec<f32>> = scores
        .iter()
        .map(|s| heads.probabilities(&s.logits, card.temperature))
        .collect();
    let uncalibrated: Vec<Vec<f32>> = scores
        .iter()
        .map(|s| heads.probabilities(&s.logits, 1.0))
        .collect();
    let unfamiliarity: Vec<_> = scores.iter().map(|s| model.unfamiliarity(s)).collect();
    let tag_names: Vec<String> = card.tags.iter().map(|t| t.name.to_string()).collect();
    let evaluation = evaluate(
        examples,
        &calibrated,
        &uncalibrated,
        &EvaluationInputs {
            heads,
            tag_names: &tag_names,
            thresholds: &card.thresholds,
            temperature: card.temperature,
            decider: &decider,
            unfamiliarity: &unfamiliarity,
            target_precision: card
                .params
                .get("target_precision")
                .and_then(serde_json::Value::as_f64),
        },
    );
    (evaluation, decider.drift)
}

/// Loads a stored version whose files are on this machine, checking them against the
/// recorded hashes (a version kept in a bucket: [`ArtifactStore::fetch`] it first).
pub fn load_version(version: &ModelVersion) -> Result<TaggingModel, ModelError> {
    TaggingModel::load(Path::new(&version.artifact_path), &version.files)
}

/// The newest version, or the one asked for.
pub async fn find_version(
    store: &AnyStore,
    project: &Project,
    version: Option<ModelVersionId>,
) -> Result<ModelVersion, TrainError> {
    match version {
        Some(id) => Ok(store.model_version(project.id, id).await?),
        None => store
            .model_versions(project.id)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                TrainError::NotEnoughData(format!(
                    "project {:?} has no model yet: run `tagger train`",
                    project.name.as_str()
                ))
            }),
    }
}

/// Re-evaluates a stored version on the project's current test split.
pub async fn evaluate_version(
    store: &AnyStore,
    project: &Project,
    version: &ModelVersion,
) -> Result<(Evaluation, TaxonomyDrift), TrainError> {
    let (evaluation, drift, _) = evaluate_version_with(store, project, version, None).await?;
    Ok((evaluation, drift))
}

/// `evaluate_version` that reads an `encoder-head` model's embeddings from the project's
/// embedding cache under `models_dir` (the one training fills), embedding only tickets
/// whose text is new; it reports what it embedded. Other kinds score as they always do.
pub async fn evaluate_version_with(
    store: &AnyStore,
    project: &Project,
    version: &ModelVersion,
    models_dir: Option<&Path>,
) -> Result<(Evaluation, TaxonomyDrift, Option<EmbeddingReport>), TrainError> {
    let model = load_version(version)?;
    let mut data = load_training_data(store, project).await?;
    let taxonomy = store.list_tags(project.id).await?;
    // The model's outputs, not today's taxonomy, index the targets.
    remap_targets(&mut data, &model);
    let cache_file = match (&model.scorer, models_dir) {
        // A fine-tuned encoder embeds differently from the cached one it started from.
        (Scorer::EncoderHead(head), Some(dir)) if model.card.kind == ModelKind::EncoderHead => {
            Some(crate::encoder_head::cache_path(
                dir,
                head.encoder.spec(),
                project.id,
            ))
        }
        _ => None,
    };
    tokio::task::spawn_blocking(move || {
        evaluate_model_cached(&model, &data, &taxonomy, cache_file.as_deref())
    })
    .await
    .map_err(|e| TrainError::Worker(e.to_string()))?
}

/// Evaluates a model on `data.test`; with a cache file, an encoder-head model's embeddings
/// come from it. Every example of `data` goes through the cache, as in training, so the
/// cache keeps the training tickets it holds (it is rewritten with the examples asked for).
pub fn evaluate_model_cached(
    model: &TaggingModel,
    data: &TrainingData,
    taxonomy: &[datasets::Tag],
    cache_file: Option<&Path>,
) -> Result<(Evaluation, TaxonomyDrift, Option<EmbeddingReport>), TrainError> {
    if let (Some(cache_file), Scorer::EncoderHead(scorer)) = (cache_file, &model.scorer) {
        let everything = data.all();
        let (embeddings, report) = crate::encoder_head::embed_examples(
            &scorer.encoder,
            &everything,
            cache_file,
            |_, _| {},
        )?;
        let scores = crate::encoder_head::head_scores(
            &scorer.head,
            &scorer.centroids,
            &model.card.heads(),
            &data.test,
            &embeddings,
        );
        let (evaluation, drift) =
            evaluate_scores(model, &data.test, &scores, taxonomy, &data.groups);
        return Ok((evaluation, drift, Some(report)));
    }
    let (evaluation, drift) = evaluate_model(model, &data.test, taxonomy, &data.groups)?;
    Ok((evaluation, drift, None))
}

fn remap_targets(data: &mut TrainingData, model: &TaggingModel) {
    let to_model: Vec<Option<usize>> = data
        .tags
        .iter()
        .map(|tag| model.card.tags.iter().position(|known| known.id == tag.id))
        .collect();
    for example in &mut data.test {
        example.targets = example
            .targets
            .iter()
            .filter_map(|t| to_model[*t])
            .collect();
        example.targets.sort_unstable();
    }
}
