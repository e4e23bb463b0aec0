//! `tagger train`, `tagger eval` and `tagger predict`.

use crate::cli::{EvalArgs, OutputFormat, PredictArgs, TrainArgs};
use crate::config::Config;
use anyhow::Context;
use datasets::store::prelude::*;
use datasets::{AnyStore, ModelVersion, ModelVersionId};
use indicatif::{ProgressBar, ProgressStyle};
use inference::artifact_store::ArtifactStore;
use inference::{Decider, TaxonomyDrift};
use std::io::Read as _;
use trainer::{Evaluation, Progress};

/// The configured artifact store; its local directory is absolute, so recorded paths do not
/// depend on the directory a later command or server runs from.
pub(crate) fn open_artifacts(config: &Config) -> anyhow::Result<ArtifactStore> {
    config
        .artifact_store()
        .context("cannot open the artifact store (artifact_store)")
}

/// The version with its files on this machine (downloaded when kept in a bucket).
pub(crate) async fn fetch(
    artifacts: &ArtifactStore,
    version: &ModelVersion,
) -> anyhow::Result<ModelVersion> {
    artifacts
        .fetch(version)
        .await
        .with_context(|| format!("cannot fetch the files of model version {}", version.id))
}

pub async fn train(store: &AnyStore, config: &Config, args: TrainArgs) -> anyhow::Result<()> {
    let project = super::find_project(store, &args.project).await?;
    // The same parameters, checks and defaults as a queued run (`TrainingParams`).
    let params = trainer::jobs::TrainingParams {
        epochs: args.epochs,
        learning_rate: args.learning_rate.map(f64::from),
        hidden: args.hidden,
        min_df: args.min_df,
        selection_budget: args.selection_budget,
        solver: args.solver.as_deref().map(|solver| match solver {
            "adagrad" => trainer::ngram::NgramSolver::Adagrad,
            "lbfgs" => trainer::ngram::NgramSolver::Lbfgs,
            _ => trainer::ngram::NgramSolver::Auto,
        }),
        loss_weight: args.loss_weight,
        l2: args.l2,
        encoder: args.encoder.clone(),
        threads: args.threads,
        windows: args.windows,
        max_tokens: args.max_tokens,
        pairs: args.pairs,
        target_precision: Some(args.target_precision),
        ..Default::default()
    };
    let request = params
        .request(args.kind)
        .map_err(|reason| anyhow::anyhow!("invalid training parameters: {reason}"))?;
    let epochs = request.epochs();
    let bar = ProgressBar::new(epochs as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:<28} [{bar:30}] {prefix} {pos}/{len} {elapsed} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix("epoch");
    bar.set_message("reading tickets");
    let reporter = bar.clone();
    let by_steps = request.reports_steps();
    let artifacts = open_artifacts(config)?;
    let outcome =
        trainer::train(
            store,
            &project,
            &request,
            &artifacts,
            move |progress| match progress {
                Progress::Loaded {
                    train,
                    validation,
                    test,
                    tags,
                    held_out,
                } => {
                    reporter.println(format!(
                "{train} training, {validation} validation and {test} test tickets over {tags} tags"
            ));
                    if let trainer::examples::HeldOut::TopUpFromTraining { from_training } =
                        held_out
                    {
                        reporter.println(format!(
                            "the test split has fewer than {} tickets: {from_training} of the labelled training tickets are held out to evaluate the model",
                            trainer::examples::MIN_HELD_OUT
                        ));
                    }
                    reporter.set_message("training");
                }
                Progress::Embedding { done, total } => {
                    reporter.set_prefix("texts");
                    reporter.set_length(total as u64);
                    reporter.set_position(done as u64);
                    reporter.set_message("embedding tickets");
                }
                Progress::Embedded(report) => {
                    reporter.println(format!(
                        "embeddings: {} computed, {} from the cache, in {:.1} s",
                        report.computed, report.cached, report.seconds
                    ));
                    reporter.set_prefix("epoch");
                    reporter.set_length(epochs as u64);
                    reporter.set_position(0);
                    reporter.set_message("training");
                }
                // A finetune bar counts steps: its epochs are printed instead.
                Progress::Epoch(epoch) if by_steps => reporter.println(format!(
                    "epoch {}/{}: loss {:.4} (val {:.4})",
                    epoch.epoch, epoch.epochs, epoch.train_loss, epoch.validation_loss
                )),
                Progress::Epoch(epoch) => {
                    reporter.set_prefix("epoch");
                    reporter.set_length(epoch.epochs as u64);
                    reporter.set_position(epoch.epoch as u64);
                    reporter.set_message(format!(
                        "loss {:.4} (val {:.4})",
                        epoch.train_loss, epoch.validation_loss
                    ));
                }
                Progress::Step(step) => {
                    // Fine-tuning epochs take minutes: the bar follows steps instead.
                    reporter.set_prefix("step");
                    reporter.set_length(step.steps as u64);
                    reporter.set_position(step.step as u64);
                    reporter.set_message(format!("epoch {} loss {:.4}", step.epoch, step.loss));
                }
                Progress::Selecting { tried, candidates } => {
                    reporter.set_prefix("setting");
                    reporter.set_length(candidates as u64);
                    reporter.set_position(tried as u64);
                    reporter.set_message("choosing by cross-validation");
                }
                Progress::Refitting { epochs } => {
                    reporter.set_prefix("epoch");
                    reporter.set_position(0);
                    reporter.set_length(epochs as u64);
                    reporter.set_message(format!("refitting on all {epochs} epochs"));
                }
                Progress::Evaluating => reporter.set_message("calibrating and evaluating"),
            },
        )
        .await
        .with_context(|| {
            format!(
                "training a {} model for {:?} failed",
                args.kind, args.project
            )
        })?;
    bar.finish_and_clear();
    let summary = format!(
        "model version {} ({}) trained in {:.1} s; files in {}",
        outcome.version.id,
        outcome.version.kind,
        outcome.train_seconds,
        outcome.version.artifact_path
    );
    // JSON output stays parseable: the summary goes to stderr then.
    match args.format {
        OutputFormat::Table => println!("{summary}"),
        OutputFormat::Json => eprintln!("{summary}"),
    }
    if let Some(selection) = &outcome.selection {
        match args.format {
            OutputFormat::Table => println!("{}: {}", outcome.version.kind, selection.summary()),
            OutputFormat::Json => eprintln!("{}: {}", outcome.version.kind, selection.summary()),
        }
    }
    // What an `lbfgs` run chose for its loss weight, where it chose it.
    let loss_weight = outcome.version.params["ngram"]["loss_weight"].as_f64();
    let solver = outcome.version.params["ngram"]["solver"].as_str();
    if let (Some(weight), Some("lbfgs"), None) = (loss_weight, solver, args.loss_weight) {
        let line = format!(
            "{}: loss weight C {weight} (L-BFGS; chosen on the validation tickets, or the default without them)",
            outcome.version.kind
        );
        match args.format {
            OutputFormat::Table => println!("{line}"),
            OutputFormat::Json => eprintln!("{line}"),
        }
    }
    if args.format == OutputFormat::Json {
        let mut value = serde_json::to_value(&outcome.evaluation)?;
        value["drift"] = serde_json::to_value(&outcome.drift)?;
        value["params"] = outcome.version.params.clone();
        value["model_selection"] = serde_json::to_value(&outcome.selection)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print_evaluation(&outcome.evaluation, &outcome.drift, args.format)
}

pub async fn eval(store: &AnyStore, config: &Config, args: EvalArgs) -> anyhow::Result<()> {
    let project = super::find_project(store, &args.project).await?;
    let version = trainer::find_version(store, &project, args.version.map(ModelVersionId)).await?;
    let artifacts = open_artifacts(config)?;
    let version = fetch(&artifacts, &version).await?;
    let (evaluation, drift, embedded) =
        trainer::evaluate_version_with(store, &project, &version, Some(artifacts.models_dir()))
            .await
            .with_context(|| format!("cannot evaluate model version {}", version.id))?;
    if let Some(report) = embedded {
        // On stderr: `--format json` keeps stdout one JSON document.
        eprintln!(
            "embeddings: {} from the cache, {} computed ({:.1} s)",
            report.cached, report.computed, report.seconds
        );
    }
    if args.format == OutputFormat::Table {
        println!(
            "model version {} ({}), trained {}",
            version.id,
            version.kind,
            version.created_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    print_evaluation(&evaluation, &drift, args.format)
}

pub async fn predict(store: &AnyStore, config: &Config, args: PredictArgs) -> anyhow::Result<()> {
    let project = super::find_project(store, &args.project).await?;
    let version = trainer::find_version(store, &project, args.version.map(ModelVersionId)).await?;
    let version = fetch(&open_artifacts(config)?, &version).await?;
    let model = trainer::load_version(&version)
        .with_context(|| format!("cannot load model version {}", version.id))?;
    let taxonomy = store.list_tags(project.id).await?;
    let groups = store.list_tag_groups(project.id).await?;
    let decider = Decider::new(
        model.card.label_mode,
        &model.card.tags,
        &model.card.thresholds,
        &taxonomy,
    )
    .with_groups(&groups)
    .with_realised_precision(model.card.realised_precision())
    .with_languages(&project.languages);
    // The text is a ticket's body, read as every model reads a ticket.
    let text = datasets::ticket::model_text("", &predict_text(&args)?);
    let scored = model
        .score_batch(&[text.as_str()])?
        .pop()
        .context("the model gave no scores")?;
    let probabilities = model
        .card
        .heads()
        .probabilities(&scored.logits, model.card.temperature);
    let unfamiliarity = model.unfamiliarity(&scored);
    let decision = decider.decide_scored(&text, &probabilities, unfamiliarity, true);
    println!("model version {} ({})", version.id, version.kind);
    if let Some(language) = decision.language {
        println!("language: {} ({language})", language.english_name());
    }
    for score in decision.scores.iter().take(5) {
        let verdict = match (score.applied, score.rule) {
            (true, Some(_)) => "applied (keyword rule)",
            (true, None) => "applied",
            (false, Some(inference::decision::RuleEffect::Vetoed)) => "vetoed by keyword rule",
            (false, _) => "suggested",
        };
        let realised = score
            .realised_precision
            .map_or_else(String::new, |p| format!(" (precision {p:.2} on test)"));
        println!(
            "  {:<32} {:>6.3}  threshold {:>5.2}{realised}  {verdict}",
            score.tag.as_str(),
            score.probability,
            score.threshold.min(1.0)
        );
    }
    // A taxonomy with groups: what each group got (a single-choice group one tag at most).
    if decision.groups.len() > 1 {
        for group in &decision.groups {
            let top = group.scores.first().map_or_else(
                || "no tags".to_string(),
                |s| format!("likeliest {} {:.3}", s.tag.as_str(), s.probability),
            );
            let applied: Vec<&str> = group.tags.iter().map(|t| t.as_str()).collect();
            println!(
                "group {} ({}-choice): {} ({top})",
                group.group.as_str(),
                group.choice.as_str(),
                if applied.is_empty() {
                    "nothing applied".to_string()
                } else {
                    applied.join(", ")
                }
            );
        }
    }
    if let Some(unfamiliarity) = decision.unfamiliarity {
        println!(
            "unlike the training tickets: {:.2} (threshold {:.2})",
            unfamiliarity.score, unfamiliarity.threshold
        );
    }
    if let Some(reason) = decision.review_reason {
        println!("→ sent to a person for review: {}", reason.describe());
    }
    print_drift(&decider.drift);
    Ok(())
}

/// The text to predict on: the argument, a file, or standard input (`--file -`), within
/// the size a stored ticket may have, and not empty.
fn predict_text(args: &PredictArgs) -> anyhow::Result<String> {
    let limit = datasets::limits::MAX_SUBJECT_CHARS * 4 + datasets::ticket::MAX_BODY_BYTES;
    let text = match (&args.text, &args.file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => {
            let mut bytes = Vec::new();
            let read = if path.as_os_str() == "-" {
                std::io::stdin()
                    .lock()
                    .take(limit as u64 + 1)
                    .read_to_end(&mut bytes)
                    .context("cannot read the ticket text from standard input")?
            } else {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                file.take(limit as u64 + 1)
                    .read_to_end(&mut bytes)
                    .with_context(|| format!("cannot read {}", path.display()))?
            };
            if read > limit {
                // Read one byte past the limit: enough to know it is over.
                return Err(too_long(limit));
            }
            String::from_utf8(bytes).context("the ticket text is not UTF-8")?
        }
        (None, None) => anyhow::bail!("give the ticket text, or --file PATH (- for stdin)"),
    };
    if text.len() > limit {
        return Err(too_long(limit));
    }
    if text.trim().is_empty() {
        anyhow::bail!("the ticket text is empty");
    }
    Ok(text)
}

fn too_long(limit: usize) -> anyhow::Error {
    anyhow::anyhow!(
        "the ticket text is over {} KiB, the most a ticket may hold",
        limit / 1024
    )
}

fn print_drift(drift: &TaxonomyDrift) {
    if !drift.not_covered.is_empty() {
        let names: Vec<&str> = drift.not_covered.iter().map(|t| t.as_str()).collect();
        println!(
            "not covered (added after training; retrain to learn them): {}",
            names.join(", ")
        );
    }
    if !drift.retired.is_empty() {
        let names: Vec<&str> = drift.retired.iter().map(|t| t.as_str()).collect();
        println!(
            "retired since training (never applied): {}",
            names.join(", ")
        );
    }
}

fn print_evaluation(
    evaluation: &Evaluation,
    drift: &TaxonomyDrift,
    format: OutputFormat,
) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        let mut value = serde_json::to_value(evaluation)?;
        value["drift"] = serde_json::to_value(drift)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "held-out tickets {}: accuracy {:.3}  micro-F1 {:.3}  macro-F1 {:.3}  ECE {:.3} (before calibration {:.3}, temperature {:.2})",
        evaluation.examples,
        evaluation.accuracy,
        evaluation.micro_f1,
        evaluation.macro_f1,
        evaluation.ece,
        evaluation.ece_before_calibration,
        evaluation.temperature
    );
    for (label, coverage) in [
        ("model alone", &evaluation.coverage),
        ("with keyword rules", &evaluation.coverage_with_rules),
    ] {
        println!(
            "at the thresholds ({label}): {:.1}% auto-tagged with precision {:.3}; {:.1}% sent to review",
            coverage.auto_tagged_share * 100.0,
            coverage.precision,
            coverage.review_share * 100.0
        );
    }
    if let Some(share) = evaluation.unfamiliar_share {
        println!(
            "unlike the training tickets (sent to review untagged): {:.1}%",
            share * 100.0
        );
    }
    // One head per tag group: each group judged on the tickets that have its tags.
    for group in &evaluation.groups {
        println!(
            "group {} ({}-choice): {} tickets, accuracy {:.3}  macro-F1 {:.3}",
            group.group,
            group.choice.as_str(),
            group.examples,
            group.accuracy,
            group.macro_f1
        );
    }
    // The precision each threshold was chosen for, beside what it gave on the test split.
    let target = evaluation
        .target_precision
        .map_or_else(|| "-".to_string(), |t| format!("{t:.2}"));
    println!(
        "{:<40} {:>9} {:>7} {:>7} {:>8} {:>9} {:>7} {:>8} {:>8}",
        "TAG", "PRECISION", "RECALL", "F1", "SUPPORT", "THRESHOLD", "TARGET", "REALISED", "APPLIED"
    );
    for tag in &evaluation.per_tag {
        let threshold = if tag.threshold > 1.0 {
            "never".to_string()
        } else {
            format!("{:.2}", tag.threshold)
        };
        let realised = tag
            .realised_precision
            .map_or_else(|| "-".to_string(), |p| format!("{p:.3}"));
        println!(
            "{:<40} {:>9.3} {:>7.3} {:>7.3} {:>8} {:>9} {:>7} {:>8} {:>8}",
            tag.tag,
            tag.precision,
            tag.recall,
            tag.f1,
            tag.support,
            threshold,
            target,
            realised,
            tag.applied
        );
    }
    print_drift(drift);
    Ok(())
}
