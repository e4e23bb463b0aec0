//! `bench models`: trains each kind of the tagger's models (`ngram`, `encoder-head`,
//! `finetune`) with the release `tagger train` on the public datasets in
//! `../shared/datasets/`, times their inference in-process, and runs the TF-IDF + logistic
//! regression baseline of BASELINES.md with scikit-learn in the same run (the machine is
//! shared and noisy: a time only means something beside one taken at the same moment).
//! Writes the tables into a marked section of docs/benchmarks.md.

use super::{
    Markers, ScratchDir, load_average, machine, run_checked, tagger_binary, thousands,
    write_section,
};
use anyhow::{Context, bail};
use clap::Args;
use datasets::ProjectName;
use datasets::store::prelude::*;
use inference::encoder::hub::{DEFAULT_ENCODER_REPO, HubCache};
use inference::{ModelKind, TaggingModel};
use serde::Deserialize;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Training runs per dataset of the kinds that train in seconds, and passes for each
/// throughput figure.
const REPEATS: usize = 3;
/// `finetune` trains for half an hour on BANKING77 here: one run.
const FINETUNE_RUNS: usize = 1;
/// Texts timed one at a time for an encoder model's single-text latency (each takes
/// milliseconds, not microseconds).
const ENCODER_SINGLE_TEXTS: usize = 500;
const BATCH: usize = 32;
/// The Python baseline times single texts on this many test texts, as BASELINES.md did.
const BASELINE_SINGLE_TEXTS: usize = 500;
/// The issue's targets on BANKING77: ngram trains in under 15 s; encoder-head and finetune
/// reach these accuracies.
const TARGET_TRAIN_SECONDS: f64 = 15.0;
const TARGET_ENCODER_HEAD_ACCURACY: f64 = 0.925;
const TARGET_FINETUNE_ACCURACY: f64 = 0.93;
const MARKERS: Markers = Markers {
    start: "<!-- bench:models:start -->",
    end: "<!-- bench:models:end -->",
};
/// A new models section goes right after the import section.
const AFTER_MARKER: &str = "<!-- bench:import:end -->";
#[derive(Debug, Args)]
pub struct ModelsBench {
    /// Folder with one sub-folder per dataset, as described in its README.md.
    #[arg(long, default_value = "../shared/datasets")]
    datasets_dir: PathBuf,
    /// Markdown file whose models section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
    /// Model kinds to train, comma-separated (the encoder kinds need all-MiniLM-L6-v2 in the
    /// hub cache; see ../shared/models/README.md).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ngram,encoder-head,finetune"
    )]
    kinds: Vec<ModelKind>,
}

/// Training runs of one kind per dataset.
fn runs_of(kind: ModelKind) -> usize {
    match kind {
        ModelKind::Finetune | ModelKind::Setfit => FINETUNE_RUNS,
        ModelKind::Ngram | ModelKind::EncoderHead => REPEATS,
    }
}

/// One public dataset and how to read it.
pub(crate) struct Dataset {
    pub(crate) folder: &'static str,
    pub(crate) title: &'static str,
    pub(crate) project: &'static str,
    pub(crate) text_column: &'static str,
    pub(crate) label_column: &'static str,
    /// Heading of its section in BASELINES.md.
    pub(crate) baselines_heading: &'static str,
}

const DATASETS: [Dataset; 2] = [
    Dataset {
        folder: "banking77",
        title: "BANKING77",
        project: "b77",
        text_column: "text",
        label_column: "category",
        baselines_heading: "## BANKING77",
    },
    Dataset {
        folder: "ticket-tagger-issues",
        title: "Ticket Tagger issues",
        project: "issues",
        text_column: "text",
        label_column: "label",
        baselines_heading: "## Ticket Tagger issues",
    },
];

/// What `tagger train --format json` reports about the held-out test split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quality {
    pub(crate) accuracy: f64,
    pub(crate) macro_f1: f64,
    ece: f64,
    ece_before_calibration: f64,
    auto_tagged_share: f64,
    auto_precision: f64,
}

/// One `tagger train` run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrainRun {
    pub(crate) quality: Quality,
    /// From tagger's own "trained in X s" line: fitting only, without reading or evaluating.
    pub(crate) train_seconds: f64,
    /// The whole `tagger train` process.
    pub(crate) wall_seconds: f64,
}

/// In-process inference speed of the newest model version.
#[derive(Debug, Clone, Copy)]
struct Speed {
    latency_median: f64,
    latency_p99: f64,
    /// Texts timed one at a time.
    single_texts: usize,
    batches: BatchSpeed,
}

/// Texts per second in batches of BATCH.
#[derive(Debug, Clone, Copy)]
enum BatchSpeed {
    /// `ngram` scores text by text: the batch on one thread, and split over two.
    Split { one_thread: f64, two_threads: f64 },
    /// An encoder embeds a whole batch at once on its own thread pool.
    Encoder {
        texts_per_second: f64,
        threads: usize,
    },
}

/// What the scikit-learn script prints, as one JSON line.
#[derive(Debug, Clone, Deserialize)]
struct SklearnRun {
    accuracy: f64,
    macro_f1: f64,
    train_seconds: f64,
    latency_median: f64,
    latency_p99: f64,
    batch_texts_per_second: f64,
    sklearn_version: String,
}

/// A row of BASELINES.md: its cells as written there.
#[derive(Debug, Clone, PartialEq)]
struct Reference {
    model: String,
    accuracy: String,
    macro_f1: String,
    train_seconds: String,
    texts_per_second: String,
}

/// Where the TF-IDF + LR row comes from.
enum LrBaseline {
    SameRun(SklearnRun),
    FromFile(Reference),
    Missing,
}

/// What one kind of the tagger's own models did on one dataset.
struct Ours {
    kind: ModelKind,
    runs: Vec<TrainRun>,
    speed: Speed,
    /// Top-1 accuracy of the loaded model on the CSV's test texts: proves it is the model
    /// `tagger train` evaluated.
    in_process_accuracy: f64,
}

/// One kind on one dataset: measured, or why not.
enum KindOutcome {
    Measured(Ours),
    Skipped(ModelKind, String),
}

struct Measured {
    ours: Vec<KindOutcome>,
    lr: LrBaseline,
    references: Vec<Reference>,
}

enum Outcome {
    Measured(Box<Measured>),
    Skipped(String),
}

pub fn run(args: &ModelsBench) -> anyhow::Result<()> {
    // The in-process inference numbers are this binary's own: a debug build would publish
    // numbers nobody gets in production.
    if cfg!(debug_assertions) {
        bail!(
            "run the models bench from a release build: cargo run --release --bin bench -- models"
        );
    }
    let tagger = tagger_binary()?;
    let work = ScratchDir::create()?;
    let load_before = load_average();
    // The encoder kinds read all-MiniLM-L6-v2 from the hub cache, never the network.
    let encoder_missing = match HubCache::from_env().snapshot(DEFAULT_ENCODER_REPO, None) {
        Ok(_) => None,
        Err(error) => {
            let reason = format!(
                "{DEFAULT_ENCODER_REPO} is not in the hub cache ({error}); \
                 `HF_HOME=~/.cache/huggingface ../shared/models/fetch-minilm.sh` puts it there"
            );
            println!("encoder kinds skipped: {reason}");
            Some(reason)
        }
    };
    let sklearn = sklearn_available();
    if !sklearn {
        println!("scikit-learn unavailable: no same-run baseline");
    }
    let baselines = std::fs::read_to_string(args.datasets_dir.join("BASELINES.md"))
        .inspect_err(|error| println!("no BASELINES.md in the datasets folder: {error}"))
        .unwrap_or_default();
    let mut outcomes = Vec::new();
    for dataset in &DATASETS {
        let outcome = match missing_file(&args.datasets_dir, dataset) {
            Some(reason) => {
                println!("skipped {}: {reason}", dataset.folder);
                Outcome::Skipped(reason)
            }
            None => {
                let folder = work.0.join(dataset.folder);
                let source = args.datasets_dir.join(dataset.folder);
                let ours = measure(
                    &tagger,
                    &folder,
                    &source,
                    dataset,
                    &args.kinds,
                    encoder_missing.as_deref(),
                )
                .context(format!("benchmark of {}", dataset.folder))?;
                let references = references(&baselines, dataset.baselines_heading);
                let lr = lr_baseline(sklearn, &folder, &source, dataset, &references);
                // Each dataset gets a fresh database; the old one only takes disk space.
                let _ = std::fs::remove_dir_all(&folder);
                Outcome::Measured(Box::new(Measured {
                    ours,
                    lr,
                    references,
                }))
            }
        };
        outcomes.push((dataset, outcome));
    }
    let mut tables = String::new();
    for (dataset, outcome) in &outcomes {
        let table = dataset_section(dataset, outcome);
        println!("\n{table}");
        tables.push_str(&table);
        tables.push('\n');
    }
    let load_after = load_average();
    let section = section(args, &outcomes, &tables, (&load_before, &load_after));
    write_section(&args.output, &section, MARKERS, Some(AFTER_MARKER))
}

/// Why a dataset cannot be measured, if it cannot.
fn missing_file(datasets_dir: &Path, dataset: &Dataset) -> Option<String> {
    let folder = datasets_dir.join(dataset.folder);
    if !folder.is_dir() {
        return Some(format!("folder {} is absent", folder.display()));
    }
    ["train.csv", "test.csv"]
        .iter()
        .map(|file| folder.join(file))
        .find(|path| !path.is_file())
        .map(|path| format!("{} is absent", path.display()))
}

/// Imports the dataset into a fresh database in `folder`, then for each kind trains it
/// `runs_of(kind)` times with the release tagger and times the newest model in-process.
fn measure(
    tagger: &Path,
    folder: &Path,
    source: &Path,
    dataset: &Dataset,
    kinds: &[ModelKind],
    encoder_missing: Option<&str>,
) -> anyhow::Result<Vec<KindOutcome>> {
    std::fs::create_dir_all(folder).context(format!("cannot create {}", folder.display()))?;
    let folder = folder
        .canonicalize()
        .context(format!("cannot resolve {}", folder.display()))?;
    // tagger runs in the scratch folder, so it needs paths that do not depend on ours.
    let source = source
        .canonicalize()
        .context(format!("cannot resolve {}", source.display()))?;
    let (train_csv, test_csv) = (source.join("train.csv"), source.join("test.csv"));
    let test = read_csv(&test_csv, dataset)?;
    let train_rows = read_csv(&train_csv, dataset)?.len();
    let tagger = Tagger {
        binary: tagger,
        folder: &folder,
        url: format!("sqlite://{}", folder.join("tagger.db").display()),
    };
    tagger.import(dataset, &train_csv, "train", train_rows)?;
    tagger.import(dataset, &test_csv, "test", test.len())?;
    // An imported text column is the body; the model reads it the way it reads any ticket.
    let texts: Vec<String> = test
        .iter()
        .map(|(text, _)| datasets::ticket::model_text("", text))
        .collect();
    let mut outcomes = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        if let (true, Some(reason)) = (kind.info().needs_encoder, encoder_missing) {
            outcomes.push(KindOutcome::Skipped(kind, reason.to_string()));
            continue;
        }
        let repeats = runs_of(kind);
        let mut runs = Vec::with_capacity(repeats);
        for attempt in 1..=repeats {
            eprintln!(
                "{}: training {kind}, run {attempt}/{repeats} (load average {})",
                dataset.folder,
                load_average()
            );
            let run = tagger
                .train(dataset.project, kind)
                .context(format!("tagger train --kind {kind}, run {attempt}"))?;
            eprintln!(
                "{}: {kind} run {attempt}/{repeats}: accuracy {:.4}, trained in {:.1} s, wall {:.2} s",
                dataset.folder, run.quality.accuracy, run.train_seconds, run.wall_seconds
            );
            runs.push(run);
        }
        let model = load_newest_model(&tagger.url, dataset.project)?;
        if model.card.kind != kind {
            bail!(
                "the newest version is {}, not the {kind} just trained",
                model.card.kind
            );
        }
        let in_process_accuracy = top1_accuracy(&model, &texts, &test);
        let speed = match kind {
            ModelKind::Ngram => inference_speed(&model, &texts),
            ModelKind::EncoderHead | ModelKind::Finetune | ModelKind::Setfit => {
                encoder_speed(&model, &texts)?
            }
        };
        outcomes.push(KindOutcome::Measured(Ours {
            kind,
            runs,
            speed,
            in_process_accuracy,
        }));
    }
    Ok(outcomes)
}

/// The same-run scikit-learn baseline, or BASELINES.md's figures when it cannot run.
fn lr_baseline(
    sklearn: bool,
    folder: &Path,
    source: &Path,
    dataset: &Dataset,
    references: &[Reference],
) -> LrBaseline {
    if sklearn {
        let (train_csv, test_csv) = (source.join("train.csv"), source.join("test.csv"));
        match sklearn_baseline(folder, &train_csv, &test_csv, dataset) {
            Ok(run) => return LrBaseline::SameRun(run),
            Err(error) => println!(
                "scikit-learn baseline failed on {}: {error:#}",
                dataset.folder
            ),
        }
    }
    references
        .iter()
        .find(|r| r.model.contains("logistic"))
        .map_or(LrBaseline::Missing, |row| LrBaseline::FromFile(row.clone()))
}

/// (text, label) pairs of a dataset file.
pub(crate) fn read_csv(path: &Path, dataset: &Dataset) -> anyhow::Result<Vec<(String, String)>> {
    let mut reader =
        csv::Reader::from_path(path).context(format!("cannot open {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .context(format!("{} has no column {name:?}", path.display()))
    };
    let (text, label) = (column(dataset.text_column)?, column(dataset.label_column)?);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.context(format!("cannot read {}", path.display()))?;
        let cell = |i: usize| record.get(i).unwrap_or_default().to_string();
        rows.push((cell(text), cell(label)));
    }
    Ok(rows)
}

/// The release tagger on one dataset's scratch database.
pub(crate) struct Tagger<'a> {
    pub(crate) binary: &'a Path,
    pub(crate) folder: &'a Path,
    pub(crate) url: String,
}

impl Tagger<'_> {
    /// Runs in the scratch folder, which holds no tagger.toml, with the model files there too.
    fn command(&self) -> Command {
        let mut command = Command::new(self.binary);
        command
            .current_dir(self.folder)
            .env("TAGGER_DATA_DIR", self.folder.join("data"))
            .args(["--database-url", &self.url]);
        command
    }

    pub(crate) fn import(
        &self,
        dataset: &Dataset,
        file: &Path,
        split: &str,
        rows: usize,
    ) -> anyhow::Result<()> {
        let output = self
            .command()
            .args(["import", "--project", dataset.project, "--file"])
            .arg(file)
            .args(["--text-column", dataset.text_column])
            .args(["--label-column", dataset.label_column])
            .args(["--split", split])
            .output()
            .context("cannot run tagger import")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!(
                "tagger import of {} failed: {}",
                file.display(),
                stderr.trim()
            );
        }
        // A model trained on part of the data would be judged on the wrong thing.
        if !stdout.contains(&format!("imported {rows} rows")) {
            bail!(
                "tagger import of {} did not import {rows} rows: {stdout}",
                file.display()
            );
        }
        Ok(())
    }

    fn train(&self, project: &str, kind: ModelKind) -> anyhow::Result<TrainRun> {
        let (run, _) = self.train_with(project, kind, &[])?;
        Ok(run)
    }

    /// `train` with more `tagger train` arguments; also hands back the JSON it printed.
    pub(crate) fn train_with(
        &self,
        project: &str,
        kind: ModelKind,
        extra: &[&str],
    ) -> anyhow::Result<(TrainRun, serde_json::Value)> {
        let started = Instant::now();
        let output = self
            .command()
            .args(["train", "--project", project, "--format", "json"])
            .args(["--kind", &kind.to_string()])
            .args(extra)
            .output()
            .context("cannot run tagger train")?;
        let wall_seconds = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("tagger train failed ({}): {}", output.status, stderr.trim());
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let run = TrainRun {
            quality: parse_quality(&stdout)?,
            train_seconds: parse_train_seconds(&stderr)?,
            wall_seconds,
        };
        let json = serde_json::from_str(&stdout).context("tagger train did not print JSON")?;
        Ok((run, json))
    }
}

/// The metrics of `tagger train --format json`.
pub(crate) fn parse_quality(json: &str) -> anyhow::Result<Quality> {
    let value: serde_json::Value =
        serde_json::from_str(json).context("tagger train did not print JSON")?;
    let number = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(serde_json::Value::as_f64)
            .context(format!(
                "no number at {pointer} in the output of tagger train"
            ))
    };
    Ok(Quality {
        accuracy: number("/accuracy")?,
        macro_f1: number("/macro_f1")?,
        ece: number("/ece")?,
        ece_before_calibration: number("/ece_before_calibration")?,
        auto_tagged_share: number("/coverage/auto_tagged_share")?,
        auto_precision: number("/coverage/precision")?,
    })
}

/// X from "model version N (kind) trained in X s; files in …", which JSON mode prints to stderr.
pub(crate) fn parse_train_seconds(stderr: &str) -> anyhow::Result<f64> {
    stderr
        .lines()
        .find_map(|line| line.split_once(" trained in "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .context(format!(
            "no \"trained in X s\" line from tagger train: {stderr}"
        ))
}

/// The version `tagger train` just recorded, loaded the way the server loads it.
fn load_newest_model(url: &str, project: &str) -> anyhow::Result<TaggingModel> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = datasets::AnyStore::open(url).await?;
        let name = ProjectName::parse(project)?;
        let project = store
            .project_by_name(&name)
            .await?
            .context(format!("project {name:?} not found after the import"))?;
        let version = trainer::find_version(&store, &project, None).await?;
        trainer::load_version(&version).context(format!("cannot load model version {}", version.id))
    })
}

fn top1_accuracy(model: &TaggingModel, texts: &[String], rows: &[(String, String)]) -> f64 {
    let right = texts
        .iter()
        .zip(rows)
        .filter(|(text, (_, label))| {
            let probabilities = model.probabilities(text);
            let best = (0..probabilities.len())
                .max_by(|a, b| probabilities[*a].total_cmp(&probabilities[*b]));
            best.is_some_and(|i| model.card.tags[i].name.as_str() == label)
        })
        .count();
    right as f64 / texts.len().max(1) as f64
}

fn inference_speed(model: &TaggingModel, texts: &[String]) -> Speed {
    // One untimed pass first so the first texts do not pay for faulting in the weights.
    for text in texts {
        black_box(model.probabilities(text));
    }
    let mut latencies: Vec<f64> = texts
        .iter()
        .map(|text| {
            let started = Instant::now();
            black_box(model.probabilities(black_box(text)));
            started.elapsed().as_secs_f64()
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let one_thread = median_throughput(texts, |batch| {
        for text in batch {
            black_box(model.probabilities(text));
        }
    });
    let two_threads = median_throughput(texts, |batch| {
        let (first, second) = batch.split_at(batch.len() / 2);
        // The calling thread takes the second half, so two threads work on every batch.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for text in first {
                    black_box(model.probabilities(text));
                }
            });
            for text in second {
                black_box(model.probabilities(text));
            }
        });
    });
    Speed {
        latency_median: percentile(&latencies, 0.5),
        latency_p99: percentile(&latencies, 0.99),
        single_texts: texts.len(),
        batches: BatchSpeed::Split {
            one_thread,
            two_threads,
        },
    }
}

/// An encoder model: single texts on the first ENCODER_SINGLE_TEXTS test texts, and whole
/// batches of BATCH through the encoder (its own threads) in file order.
fn encoder_speed(model: &TaggingModel, texts: &[String]) -> anyhow::Result<Speed> {
    let single = &texts[..texts.len().min(ENCODER_SINGLE_TEXTS)];
    // Untimed texts first, so the first timed ones do not pay for faulting in the weights.
    for text in single.iter().take(20) {
        black_box(model.probabilities(text));
    }
    let mut latencies: Vec<f64> = single
        .iter()
        .map(|text| {
            let started = Instant::now();
            black_box(model.probabilities(black_box(text)));
            started.elapsed().as_secs_f64()
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut failed = None;
    let texts_per_second = median_throughput(texts, |batch| {
        let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
        if let Err(error) = model.logits_batch(&batch) {
            failed = Some(error);
        }
    });
    if let Some(error) = failed {
        bail!("the model could not score a batch: {error}");
    }
    let threads = match &model.scorer {
        inference::model::Scorer::EncoderHead(scorer) => scorer.encoder.threads(),
        _ => 1,
    };
    Ok(Speed {
        latency_median: percentile(&latencies, 0.5),
        latency_p99: percentile(&latencies, 0.99),
        single_texts: single.len(),
        batches: BatchSpeed::Encoder {
            texts_per_second,
            threads,
        },
    })
}

/// Texts per second over all texts in batches of BATCH; the median of REPEATS passes.
fn median_throughput(texts: &[String], mut score_batch: impl FnMut(&[String])) -> f64 {
    let rates = (0..REPEATS)
        .map(|_| {
            let started = Instant::now();
            for batch in texts.chunks(BATCH) {
                score_batch(batch);
            }
            texts.len() as f64 / started.elapsed().as_secs_f64().max(1e-9)
        })
        .collect();
    median(rates)
}

/// Nearest-rank percentile of sorted values (the Python baseline uses the same rule).
fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (share * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Whether `import sklearn` works, after one `pip install` if it did not.
fn sklearn_available() -> bool {
    let importable = || {
        Command::new("python3")
            .args(["-c", "import sklearn"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if importable() {
        return true;
    }
    println!("scikit-learn not importable: trying python3 -m pip install --quiet scikit-learn");
    let installed = run_checked(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "scikit-learn",
    ]));
    if let Err(error) = &installed {
        println!("pip install failed: {error:#}");
    }
    installed.is_ok() && importable()
}

/// BASELINES.md's TF-IDF + logistic regression, fitted REPEATS times; prints one JSON line.
const SKLEARN_SCRIPT: &str = r#"
import csv, json, statistics, sys, time
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline, make_union

train_path, test_path, text, label, repeats, single, batch = sys.argv[1:8]

def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r[text] for r in rows], [r[label] for r in rows]

def percentile(values, share):
    values = sorted(values)
    rank = -(-share * len(values) // 1)
    return values[min(max(int(rank), 1), len(values)) - 1]

x_train, y_train = read(train_path)
x_test, y_test = read(test_path)
train_seconds = []
for _ in range(int(repeats)):
    model = make_pipeline(
        make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2),
        ),
        LogisticRegression(C=10, max_iter=1000),
    )
    started = time.perf_counter()
    model.fit(x_train, y_train)
    train_seconds.append(time.perf_counter() - started)
predicted = model.predict(x_test)
latencies = []
for t in x_test[: int(single)]:
    started = time.perf_counter()
    model.predict_proba([t])
    latencies.append(time.perf_counter() - started)
batch = int(batch)
rates = []
for _ in range(int(repeats)):
    started = time.perf_counter()
    for i in range(0, len(x_test), batch):
        model.predict_proba(x_test[i : i + batch])
    rates.append(len(x_test) / (time.perf_counter() - started))
print(json.dumps({
    "accuracy": accuracy_score(y_test, predicted),
    "macro_f1": f1_score(y_test, predicted, average="macro"),
    "train_seconds": statistics.median(train_seconds),
    "latency_median": percentile(latencies, 0.5),
    "latency_p99": percentile(latencies, 0.99),
    "batch_texts_per_second": statistics.median(rates),
    "sklearn_version": sklearn.__version__,
}))
"#;

fn sklearn_baseline(
    folder: &Path,
    train_csv: &Path,
    test_csv: &Path,
    dataset: &Dataset,
) -> anyhow::Result<SklearnRun> {
    let script = folder.join("tfidf_lr.py");
    std::fs::write(&script, SKLEARN_SCRIPT)
        .context(format!("cannot write {}", script.display()))?;
    eprintln!(
        "{}: scikit-learn TF-IDF + LR, {REPEATS} fits",
        dataset.folder
    );
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .arg(train_csv)
        .arg(test_csv)
        .args([dataset.text_column, dataset.label_column])
        .args([REPEATS, BASELINE_SINGLE_TEXTS, BATCH].map(|n| n.to_string()));
    run_sklearn_script(command)
}

/// Runs a scikit-learn reference script single-threaded (like the tagger's numbers and the
/// BASELINES.md table) and reads the JSON object it prints last.
pub(crate) fn run_sklearn_script<T: serde::de::DeserializeOwned>(
    mut command: Command,
) -> anyhow::Result<T> {
    let output = command
        .envs(
            ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"].map(|name| (name, "1")),
        )
        .output()
        .context("cannot run python3")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("python3 failed ({}): {}", output.status, stderr.trim());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).context(format!("the scikit-learn script printed {stdout:?}"))
}

/// The TF-IDF + LR and fastText rows under `heading` in BASELINES.md.
fn references(baselines: &str, heading: &str) -> Vec<Reference> {
    baselines
        .lines()
        .skip_while(|line| !line.starts_with(heading))
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .strip_prefix('|')?
                .split('|')
                .map(str::trim)
                .collect();
            let model = *cells.first()?;
            let ours_to_compare = model.starts_with("fastText")
                || model == "TF-IDF + logistic regression"
                || model.contains("all-MiniLM-L6-v2");
            if !ours_to_compare {
                return None;
            }
            Some(Reference {
                model: model.to_string(),
                accuracy: cells.get(1)?.to_string(),
                macro_f1: cells.get(2)?.to_string(),
                train_seconds: cells.get(3)?.to_string(),
                texts_per_second: cells.get(4)?.to_string(),
            })
        })
        .collect()
}

/// Milliseconds with three significant digits' worth of decimals.
fn ms(seconds: f64) -> String {
    let millis = seconds * 1000.0;
    if millis < 0.1 {
        format!("{millis:.4}")
    } else {
        format!("{millis:.3}")
    }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

const TABLE_HEAD: &str = "| model | accuracy | macro-F1 | ECE (before → after calibration) \
    | auto-tagged share @ thresholds | precision of auto-tags | train s (median of the runs) \
    | single-text latency median / p99 ms | batch-32 texts/s |\n\
    |---|---:|---:|---:|---:|---:|---:|---:|---:|\n";

fn dataset_section(dataset: &Dataset, outcome: &Outcome) -> String {
    let measured = match outcome {
        Outcome::Skipped(reason) => {
            return format!("### {}\n\nSkipped: {reason}.\n", dataset.title);
        }
        Outcome::Measured(measured) => measured,
    };
    let mut table = String::from(TABLE_HEAD);
    let mut notes = Vec::new();
    for outcome in &measured.ours {
        match outcome {
            KindOutcome::Skipped(kind, reason) => {
                table.push_str(&format!(
                    "| {kind} (ours) | skipped: {reason} | – | – | – | – | – | – | – |\n"
                ));
            }
            KindOutcome::Measured(ours) => {
                table.push_str(&our_row(ours));
                notes.push(kind_notes(ours));
            }
        }
    }
    match &measured.lr {
        LrBaseline::SameRun(lr) => table.push_str(&format!(
            "| TF-IDF + LR (scikit-learn {}, same run) | {:.3} | {:.3} | – | – | – | {:.1} | {} / {} | {} |\n",
            lr.sklearn_version,
            lr.accuracy,
            lr.macro_f1,
            lr.train_seconds,
            ms(lr.latency_median),
            ms(lr.latency_p99),
            thousands(lr.batch_texts_per_second),
        )),
        LrBaseline::FromFile(row) => table.push_str(&format!(
            "| TF-IDF + LR (from BASELINES.md) | {} | {} | – | – | – | {} | – | {} (batch, all texts) |\n",
            row.accuracy, row.macro_f1, row.train_seconds, row.texts_per_second
        )),
        LrBaseline::Missing => {}
    }
    for row in measured
        .references
        .iter()
        .filter(|r| !r.model.starts_with("TF-IDF"))
    {
        table.push_str(&format!(
            "| {} (from BASELINES.md, not re-measured) | {} | {} | – | – | – | {} | – | {} |\n",
            row.model, row.accuracy, row.macro_f1, row.train_seconds, row.texts_per_second
        ));
    }
    format!("### {}\n\n{table}\n{}\n", dataset.title, notes.join(" "))
}

/// The table row of one of our kinds.
fn our_row(ours: &Ours) -> String {
    let runs = &ours.runs;
    let quality = median_quality(runs);
    let train = median(runs.iter().map(|r| r.train_seconds).collect());
    let wall = median(runs.iter().map(|r| r.wall_seconds).collect());
    let speed = ours.speed;
    let batches = match speed.batches {
        BatchSpeed::Split {
            one_thread,
            two_threads,
        } => format!(
            "{} (1 thread); {} (2 threads)",
            thousands(one_thread),
            thousands(two_threads)
        ),
        BatchSpeed::Encoder {
            texts_per_second,
            threads,
        } => format!(
            "{} (whole batches, {threads} encoder threads)",
            thousands(texts_per_second)
        ),
    };
    let count = if runs.len() == 1 {
        "1 run, ".to_string()
    } else {
        format!("{} runs, ", runs.len())
    };
    format!(
        "| {kind} (ours) | {:.3} | {:.3} | {:.3} → {:.3} | {} | {:.3} | {train:.1} ({count}whole `tagger train` {wall:.1}) | {} / {} | {batches} |\n",
        quality.accuracy,
        quality.macro_f1,
        quality.ece_before_calibration,
        quality.ece,
        percent(quality.auto_tagged_share),
        quality.auto_precision,
        ms(speed.latency_median),
        ms(speed.latency_p99),
        kind = ours.kind,
    )
}

/// What the runs of one kind agree on, and how its speed was taken.
fn kind_notes(ours: &Ours) -> String {
    let kind = ours.kind;
    let quality = median_quality(&ours.runs);
    let mut notes = Vec::new();
    if ours.runs.len() > 1 {
        notes.push(format!("{kind}: {}", run_agreement(&ours.runs)));
    }
    let agrees = (ours.in_process_accuracy - quality.accuracy).abs() < 5e-4;
    notes.push(format!(
        "The {kind} model loaded in-process gets top-1 accuracy {:.3} on the CSV's test texts ({}).",
        ours.in_process_accuracy,
        if agrees {
            "the same as `tagger train` reported"
        } else {
            "NOT the figure `tagger train` reported"
        }
    ));
    match ours.speed.batches {
        BatchSpeed::Split {
            one_thread,
            two_threads,
        } => {
            let faster = if two_threads > one_thread {
                "two threads are faster"
            } else {
                "one thread is faster: starting a thread per batch costs more than half a batch of scoring"
            };
            notes.push(format!(
                "{kind} batches of {BATCH} split over 2 threads: {} vs {} texts/s on 1 thread, so {faster}.",
                thousands(two_threads),
                thousands(one_thread),
            ));
        }
        BatchSpeed::Encoder { .. } => notes.push(format!(
            "{kind} single-text latency is over the first {} test texts one at a time.",
            ours.speed.single_texts
        )),
    }
    notes.join(" ")
}

/// A quality figure's name and how to read it.
type QualityField = (&'static str, fn(&Quality) -> f64);

/// Which quality figures were the same in every training run, and how far the others moved.
fn run_agreement(runs: &[TrainRun]) -> String {
    let fields: [QualityField; 6] = [
        ("accuracy", |q| q.accuracy),
        ("macro-F1", |q| q.macro_f1),
        ("auto-tagged share", |q| q.auto_tagged_share),
        ("precision of auto-tags", |q| q.auto_precision),
        ("ECE before calibration", |q| q.ece_before_calibration),
        ("ECE after calibration", |q| q.ece),
    ];
    let (mut same, mut varied) = (Vec::new(), Vec::new());
    for (name, get) in fields {
        let values = runs.iter().map(|r| get(&r.quality));
        let low = values.clone().fold(f64::INFINITY, f64::min);
        let spread = values.fold(f64::NEG_INFINITY, f64::max) - low;
        if spread > 0.0 {
            varied.push((name, spread));
        } else {
            same.push(name);
        }
    }
    let runs = runs.len();
    if varied.is_empty() {
        return format!("Every quality figure was identical in all {runs} training runs.");
    }
    let moved = format!("{} moved by {}", varied_names(&varied), spreads(&varied));
    match same.first() {
        Some(&"accuracy") => format!(
            "Across the {runs} training runs {} were identical, while {moved}.",
            and_list(&same)
        ),
        _ => format!(
            "Across the {runs} training runs {moved}; the table shows the run with the median accuracy."
        ),
    }
}

fn varied_names(varied: &[(&str, f64)]) -> String {
    and_list(&varied.iter().map(|(name, _)| *name).collect::<Vec<_>>())
}

fn spreads(varied: &[(&str, f64)]) -> String {
    let spreads: Vec<String> = varied.iter().map(|(_, s)| format!("{s:.1e}")).collect();
    and_list(&spreads)
}

/// "a", "a and b", "a, b and c".
fn and_list<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [only] => only.as_ref().to_string(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", init.join(", "), last.as_ref())
        }
    }
}

/// The quality of the run with the median accuracy (all runs agree when training is
/// deterministic, as it should be).
fn median_quality(runs: &[TrainRun]) -> Quality {
    let mut sorted: Vec<Quality> = runs.iter().map(|r| r.quality).collect();
    sorted.sort_by(|a, b| a.accuracy.total_cmp(&b.accuracy));
    sorted[sorted.len() / 2]
}

/// One kind's measurement on a dataset, if it was measured.
fn measured_kind(measured: &Measured, kind: ModelKind) -> Option<&Ours> {
    measured.ours.iter().find_map(|outcome| match outcome {
        KindOutcome::Measured(ours) if ours.kind == kind => Some(ours),
        _ => None,
    })
}

/// The sentences on the issue's targets, from the numbers.
fn findings(outcomes: &[(&Dataset, Outcome)]) -> String {
    let mut text = Vec::new();
    for (dataset, outcome) in outcomes {
        let Outcome::Measured(measured) = outcome else {
            if dataset.folder == "banking77" {
                text.push("BANKING77 was skipped, so the targets are unchecked.".to_string());
            }
            continue;
        };
        let (lr_accuracy, lr_source) = match &measured.lr {
            LrBaseline::SameRun(lr) => (Some(lr.accuracy), "in the same run"),
            LrBaseline::FromFile(row) => (row.accuracy.parse().ok(), "from BASELINES.md"),
            LrBaseline::Missing => (None, ""),
        };
        let against_lr = |accuracy: f64| match lr_accuracy {
            Some(lr) => format!(
                "accuracy {accuracy:.3} against {lr:.3} for TF-IDF + LR {lr_source} ({:+.1} points)",
                (accuracy - lr) * 100.0
            ),
            None => format!("accuracy {accuracy:.3} (no TF-IDF + LR figure to compare)"),
        };
        if let Some(ngram) = measured_kind(measured, ModelKind::Ngram) {
            text.push(ngram_findings(
                dataset,
                measured,
                ngram,
                lr_accuracy,
                &against_lr,
            ));
        }
        for (kind, target) in [
            (ModelKind::EncoderHead, TARGET_ENCODER_HEAD_ACCURACY),
            (ModelKind::Finetune, TARGET_FINETUNE_ACCURACY),
        ] {
            let Some(ours) = measured_kind(measured, kind) else {
                continue;
            };
            let quality = median_quality(&ours.runs);
            let train = median(ours.runs.iter().map(|r| r.train_seconds).collect());
            let mut sentence = format!(
                "On {} {kind} reaches {}, macro-F1 {:.3}, trained in {train:.1} s",
                dataset.title,
                against_lr(quality.accuracy),
                quality.macro_f1
            );
            if dataset.folder == "banking77" {
                let verdict = if quality.accuracy >= target {
                    "meets"
                } else {
                    "misses"
                };
                sentence.push_str(&format!(": it {verdict} the issue's {target} target"));
            }
            sentence.push_str(&format!(
                "; one text takes {} ms (median).",
                ms(ours.speed.latency_median)
            ));
            text.push(sentence);
        }
    }
    text.join(" ")
}

/// The ngram sentences: the BANKING77 targets, or the comparison elsewhere.
fn ngram_findings(
    dataset: &Dataset,
    measured: &Measured,
    ngram: &Ours,
    lr_accuracy: Option<f64>,
    against_lr: &dyn Fn(f64) -> String,
) -> String {
    let quality = median_quality(&ngram.runs);
    let train = median(ngram.runs.iter().map(|r| r.train_seconds).collect());
    let wall = median(ngram.runs.iter().map(|r| r.wall_seconds).collect());
    let comparison = against_lr(quality.accuracy);
    if dataset.folder != "banking77" {
        let lr_train = match &measured.lr {
            LrBaseline::SameRun(lr) => format!(" ({:.1} s for TF-IDF + LR)", lr.train_seconds),
            _ => String::new(),
        };
        return format!(
            "On {} ngram reaches {comparison}, trained in {train:.1} s{lr_train}.",
            dataset.title
        );
    }
    let accuracy_verdict = match lr_accuracy {
        Some(lr) if quality.accuracy >= lr => "meets the accuracy target",
        Some(_) => "misses the accuracy target",
        None => "cannot be checked against the accuracy target",
    };
    let time_verdict = match (train < TARGET_TRAIN_SECONDS, wall < TARGET_TRAIN_SECONDS) {
        (true, true) => "meets the under-15 s target".to_string(),
        (true, false) => format!(
            "meets the under-15 s target on its own fitting time but not on the whole command ({wall:.1} s)"
        ),
        (false, _) => "misses the under-15 s target".to_string(),
    };
    let runs = ngram.runs.len();
    let mut text = format!(
        "On BANKING77 ngram reaches {comparison} and trains in {train:.1} s (whole `tagger train` {wall:.1} s, median of {runs}): \
         it {accuracy_verdict} (≥ TF-IDF + LR) and {time_verdict}."
    );
    if let (LrBaseline::SameRun(lr), BatchSpeed::Split { one_thread, .. }) =
        (&measured.lr, ngram.speed.batches)
    {
        text.push_str(&format!(
            " It scores one text in {} ms (median) against {} ms for scikit-learn, and {} texts/s \
             in batches of {BATCH} on one thread against {}.",
            ms(ngram.speed.latency_median),
            ms(lr.latency_median),
            thousands(one_thread),
            thousands(lr.batch_texts_per_second),
        ));
    }
    text
}

fn section(
    args: &ModelsBench,
    outcomes: &[(&Dataset, Outcome)],
    tables: &str,
    load: (&str, &str),
) -> String {
    let kinds: Vec<String> = args.kinds.iter().map(ToString::to_string).collect();
    format!(
        "## Models (tagger train / eval)\n\n\
         Measured {date} on {machine}, with:\n\n\
         ```sh\n{hub}../shared/models/fetch-minilm.sh   # the encoder kinds' all-MiniLM-L6-v2, once\n\
         cargo build --release --bins && \
         {hub}cargo run --release --bin bench -- models --datasets-dir {datasets} --output {output} --kinds {kinds}\n```\n\n\
         Each dataset is imported with its published split (`tagger import … --split train`, then `--split test`) \
         into a fresh SQLite database; each kind is trained there with `tagger train --project P --kind K --format json`, \
         {REPEATS} times (`finetune`: {FINETUNE_RUNS} run, half an hour on BANKING77) with each kind's default settings. \
         The quality figures are on the test split, with tags auto-applied at the thresholds chosen for precision \
         {target} on validation tickets. \"train s\" is tagger's own \"trained in X s\" (fitting: ngram and encoder-head \
         with the refit on training and validation tickets, encoder-head including computing or reading the embedding \
         cache, finetune including its linear probe; not reading tickets, calibrating, choosing thresholds or evaluating); \
         the whole command's wall time is in brackets. Inference is timed \
         in-process on the newest model version loaded from the store: single-text latency one text at a time \
         (ngram: every test text; encoder kinds: the first {ENCODER_SINGLE_TEXTS}), and throughput over all test texts \
         in batches of {BATCH} in file order (median of {REPEATS} passes). \
         TF-IDF + LR is the BASELINES.md recipe in scikit-learn, run in the same run with OMP_NUM_THREADS=1 and \
         OPENBLAS_NUM_THREADS=1 (train s is the median of {REPEATS} fits; single-text latency is `predict_proba` \
         on the first {BASELINE_SINGLE_TEXTS} test texts one at a time). Load average (1 min) {before} before, {after} after.\n\n{tables}{findings}\n",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = machine(),
        hub = "HF_HOME=~/.cache/huggingface ",
        datasets = args.datasets_dir.display(),
        output = args.output.display(),
        kinds = kinds.join(","),
        target = trainer::run::DEFAULT_TARGET_PRECISION,
        findings = findings(outcomes),
        before = load.0,
        after = load.1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_output_gives_the_quality_and_seconds() {
        let json = r#"{"accuracy": 0.9, "macro_f1": 0.8, "ece": 0.01, "ece_before_calibration": 0.02,
            "coverage": {"auto_tagged_share": 0.75, "precision": 0.95, "review_share": 0.25}}"#;
        let quality = parse_quality(json).unwrap();
        assert_eq!(quality.auto_tagged_share, 0.75);
        assert_eq!(quality.auto_precision, 0.95);
        assert_eq!(quality.ece_before_calibration, 0.02);
        let stderr = "model version 3 (ngram) trained in 15.9 s; files in /tmp/x\n";
        assert_eq!(parse_train_seconds(stderr).unwrap(), 15.9);
        assert!(parse_train_seconds("nothing").is_err());
        assert!(parse_quality(r#"{"accuracy": 0.9}"#).is_err());
    }

    #[test]
    fn baselines_rows_come_from_the_dataset_heading() {
        let text = "# B\n\n## BANKING77 (77 classes)\n| model | accuracy | macro-F1 | train s | predict texts/s |\n\
                    |---|---|---|---|---|\n| TF-IDF + logistic regression | 0.913 | 0.914 | 10.7 | 18.5k |\n\
                    | TF-IDF + LinearSVC | 0.908 | 0.909 | 2.6 | 19.6k |\n| fastText, default lr | 0.768 | 0.763 | 3.6 | 76k |\n\
                    | frozen all-MiniLM-L6-v2 embeddings + logistic regression | 0.930 | 0.929 | 42 | ~335 |\n\n\
                    ## Ticket Tagger issues\n| fastText, default lr | 0.561 | 0.559 | 4.9 | 11.5k |\n";
        let rows = references(text, "## BANKING77");
        let names: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
        assert_eq!(
            names,
            [
                "TF-IDF + logistic regression",
                "fastText, default lr",
                "frozen all-MiniLM-L6-v2 embeddings + logistic regression"
            ]
        );
        assert_eq!(rows[1].texts_per_second, "76k");
        assert_eq!(
            references(text, "## Ticket Tagger issues")[0].accuracy,
            "0.561"
        );
        assert!(references(text, "## Missing").is_empty());
    }

    #[test]
    fn run_agreement_names_what_moved() {
        let quality = Quality {
            accuracy: 0.9,
            macro_f1: 0.8,
            ece: 0.01,
            ece_before_calibration: 0.02,
            auto_tagged_share: 0.7,
            auto_precision: 0.95,
        };
        let run = |ece| TrainRun {
            quality: Quality { ece, ..quality },
            train_seconds: 1.0,
            wall_seconds: 1.0,
        };
        let same = run_agreement(&[run(0.01), run(0.01)]);
        assert!(
            same.starts_with("Every quality figure was identical"),
            "{same}"
        );
        let moved = run_agreement(&[run(0.01), run(0.011)]);
        assert!(
            moved.ends_with(
                "accuracy, macro-F1, auto-tagged share, precision of auto-tags and \
                 ECE before calibration were identical, while ECE after calibration moved by 1.0e-3."
            ),
            "{moved}"
        );
        let mut worse = run(0.02);
        worse.quality.accuracy = 0.8;
        let accuracy_moved = run_agreement(&[run(0.01), worse]);
        assert!(
            accuracy_moved
                .contains("accuracy and ECE after calibration moved by 1.0e-1 and 1.0e-2;"),
            "{accuracy_moved}"
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(ms(0.000_012_34), "0.0123");
    }
}
