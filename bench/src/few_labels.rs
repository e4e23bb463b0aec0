//! `bench few-labels`: accuracy with few labels on Ticket Tagger issues. For k labelled
//! tickets per class (a fixed-seed sample of the published train split), `setfit`,
//! `encoder-head` and `ngram` are trained in memory with the tagger's own code and TF-IDF +
//! logistic regression with scikit-learn on the same sample; all are scored on the whole
//! test split. Each `setfit` fit runs in a child process of this binary that reports its own
//! peak RSS (VmHWM). With `--full-data`, instead, `setfit` is trained on the whole train
//! split through `tagger import` / `tagger train --kind setfit` under `/usr/bin/time -v`,
//! next to TF-IDF + LR on the same split, into a section of its own.

use super::active_learning::{argmax, quality};
use super::models::{Dataset, Tagger, parse_quality, parse_train_seconds, read_csv};
use super::{Markers, ScratchDir, load_average, machine, write_section};
use anyhow::{Context, bail};
use clap::Args;
use datasets::{ModelKind, TicketId};
use inference::encoder::hub::{DEFAULT_ENCODER_REPO, HubCache};
use inference::encoder::{Encoder, EncoderFiles};
use inference::heads::Heads;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use trainer::encoder_head::{EncoderHeadParams, fit_head};
use trainer::examples::Example;
use trainer::ngram::{NgramParams, train_ngram};
use trainer::setfit::{SetfitParams, sample_pairs, tune_encoder_until};

const MARKERS: Markers = Markers {
    start: "<!-- bench:few-labels:start -->",
    end: "<!-- bench:few-labels:end -->",
};
const AFTER_MARKER: &str = "<!-- bench:models:end -->";
const FULL_MARKERS: Markers = Markers {
    start: "<!-- bench:few-labels-full:start -->",
    end: "<!-- bench:few-labels-full:end -->",
};
/// Adam steps of every head fit, whatever the sample's size: with no validation split to
/// stop on, a fixed number of epochs would leave a head on 24 tickets (one step per epoch)
/// far from converged. The same for `encoder-head` and `setfit`.
const HEAD_STEPS: usize = 600;
/// The issue's target for the few-label kind on the whole of Ticket Tagger issues.
const TARGET_FULL_ACCURACY: f64 = 0.78;

const DATASET: Dataset = Dataset {
    folder: "ticket-tagger-issues",
    title: "Ticket Tagger issues",
    project: "issues",
    text_column: "text",
    label_column: "label",
    baselines_heading: "",
};

#[derive(Debug, Args)]
pub struct FewLabelsBench {
    /// Folder with one sub-folder per dataset, as described in its README.md.
    #[arg(long, default_value = "../shared/datasets")]
    datasets_dir: PathBuf,
    /// Markdown file whose few-labels section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
    /// Python with scikit-learn for the TF-IDF + LR baseline.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// Labelled tickets per class, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,32,128")]
    per_class: Vec<usize>,
    /// Seed of the samples (and of every model's own randomness).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The tagger's kinds to train, comma-separated (TF-IDF + LR always runs).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "setfit,encoder-head,ngram"
    )]
    kinds: Vec<ModelKind>,
    /// `setfit`'s most sentence pairs [default: the kind's default].
    #[arg(long)]
    max_pairs: Option<usize>,
    /// Instead of the samples: `setfit` on the whole train split through `tagger train`
    /// (tens of minutes), written to a section of its own.
    #[arg(long)]
    full_data: bool,
    /// Internal: fit `setfit` on the k-per-class sample in this process and print the result
    /// as JSON (how the parent measures one fit's peak memory).
    #[arg(long, hide = true)]
    child_per_class: Option<usize>,
}

/// The dataset in memory: class names sorted, examples with class indices.
struct Loaded {
    classes: Vec<String>,
    train: Vec<Example>,
    test: Vec<Example>,
}

fn load(datasets_dir: &Path) -> anyhow::Result<Loaded> {
    let folder = datasets_dir.join(DATASET.folder);
    let train = read_csv(&folder.join("train.csv"), &DATASET)?;
    let test = read_csv(&folder.join("test.csv"), &DATASET)?;
    let classes: Vec<String> = train
        .iter()
        .map(|(_, label)| label.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let examples = |rows: Vec<(String, String)>, first_id: i64| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (text, label))| {
                let class = classes
                    .iter()
                    .position(|c| *c == label)
                    .context(format!("label {label:?} of the test split is not in train"))?;
                Ok(Example {
                    ticket: TicketId(first_id + i as i64),
                    text,
                    targets: vec![class],
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let train = examples(train, 0)?;
    let test = examples(test, 1_000_000)?;
    Ok(Loaded {
        classes,
        train,
        test,
    })
}

/// SplitMix64: the same sample on every machine.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `k` training examples per class: each class's examples (file order) are shuffled by one
/// SplitMix64 stream seeded with `seed`, classes in name order, and the first `k` kept. The
/// shuffle does not depend on `k`, so a smaller sample is part of every larger one.
fn sample(train: &[Example], classes: usize, k: usize, seed: u64) -> Vec<Example> {
    let mut random = SplitMix(seed);
    let mut chosen = Vec::with_capacity(k * classes);
    for class in 0..classes {
        let mut members: Vec<&Example> = train.iter().filter(|e| e.targets[0] == class).collect();
        for i in (1..members.len()).rev() {
            let j = (random.next() % (i as u64 + 1)) as usize;
            members.swap(i, j);
        }
        chosen.extend(members.into_iter().take(k).cloned());
    }
    chosen
}

/// One model's result on one sample.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Scored {
    accuracy: f64,
    macro_f1: f64,
    /// Fitting: embedding the sample and the head for the encoder kinds, the contrastive
    /// phase too for `setfit`; not scoring the test split.
    train_seconds: f64,
}

/// What a `setfit` child prints.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct SetfitChild {
    scored: Scored,
    tune_seconds: f64,
    pairs: usize,
    steps: usize,
    /// VmHWM of the child at the end: the peak of the whole fit.
    peak_rss_kib: u64,
}

/// One row of the table: one sample size.
struct Row {
    per_class: usize,
    labelled: usize,
    setfit: Option<SetfitChild>,
    encoder_head: Option<Scored>,
    ngram: Option<Scored>,
    tfidf_lr: Option<Scored>,
}

fn setfit_params(max_pairs: Option<usize>, seed: u64) -> SetfitParams {
    let defaults = SetfitParams::default();
    SetfitParams {
        max_pairs: max_pairs.unwrap_or(defaults.max_pairs),
        seed,
        ..defaults
    }
}

fn score(test: &[Example], logits: &[Vec<f32>], classes: usize, seconds: f64) -> Scored {
    let predictions: Vec<usize> = logits.iter().map(|row| argmax(row)).collect();
    let truth: Vec<usize> = test.iter().map(|e| e.targets[0]).collect();
    let (accuracy, macro_f1) = quality(&predictions, &truth, classes);
    Scored {
        accuracy,
        macro_f1,
        train_seconds: seconds,
    }
}

/// A head on `embeddings` of `train`, fitted for HEAD_STEPS Adam steps, and its test logits.
fn head_logits(
    embeddings: &HashMap<TicketId, Vec<f32>>,
    train: &[Example],
    test: &[Example],
    classes: usize,
    dim: usize,
    seed: u64,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let params = EncoderHeadParams {
        seed,
        ..EncoderHeadParams::default()
    };
    let steps_per_epoch = train.len().div_ceil(params.minibatch.max(1)).max(1);
    let epochs = HEAD_STEPS.div_ceil(steps_per_epoch);
    let labelled: Vec<&Example> = train.iter().collect();
    let fitted = fit_head(
        &Heads::SINGLE,
        classes,
        dim,
        embeddings,
        &labelled,
        &[],
        &params,
        epochs,
        |_| {},
    )
    .context("fitting the head")?;
    Ok(test
        .iter()
        .map(|e| {
            embeddings
                .get(&e.ticket)
                .map_or_else(|| vec![f32::NAN; classes], |row| fitted.head.logits(row))
        })
        .collect())
}

fn embed(encoder: &Encoder, examples: &[Example]) -> anyhow::Result<HashMap<TicketId, Vec<f32>>> {
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let rows = encoder.embed(&texts)?;
    Ok(examples.iter().map(|e| e.ticket).zip(rows).collect())
}

/// The child's work: tune on the sample's pairs, embed with the tuned encoder, fit the head.
fn setfit_child(args: &FewLabelsBench, per_class: usize) -> anyhow::Result<()> {
    let data = load(&args.datasets_dir)?;
    let classes = data.classes.len();
    let train = sample(&data.train, classes, per_class, args.seed);
    let params = setfit_params(args.max_pairs, args.seed);
    let snapshot = HubCache::from_env()
        .snapshot(DEFAULT_ENCODER_REPO, None)
        .context("the MiniLM encoder is not in the local Hugging Face cache")?;
    let files = EncoderFiles::read(&snapshot, None)?;
    let started = Instant::now();
    let encoder = Encoder::from_files(&files, &params.encoder_options())?;
    let labelled: Vec<&Example> = train.iter().collect();
    let pairs = sample_pairs(&labelled, params.iterations, params.max_pairs, params.seed);
    let tuned = tune_encoder_until(&encoder, &files, &labelled, &pairs, &params, |step| {
        if step.step % 10 == 0 || step.step == step.steps {
            eprintln!(
                "  setfit k={per_class}: step {}/{} loss {:.4} ({:.1} s)",
                step.step, step.steps, step.loss, step.seconds
            );
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let tune_seconds = started.elapsed().as_secs_f64();
    drop(encoder);
    let encoder = Encoder::from_files(&tuned.files, &params.encoder_options())?;
    let mut embeddings = embed(&encoder, &train)?;
    let logits = |embeddings: &HashMap<TicketId, Vec<f32>>| {
        head_logits(
            embeddings,
            &train,
            &data.test,
            classes,
            encoder.dim(),
            args.seed,
        )
    };
    // The head is fitted before the test split is embedded: only the fit is timed.
    let fit_started = Instant::now();
    logits(&embeddings)?;
    let train_seconds = tune_seconds + fit_started.elapsed().as_secs_f64();
    embeddings.extend(embed(&encoder, &data.test)?);
    let test_logits = logits(&embeddings)?;
    let child = SetfitChild {
        scored: score(&data.test, &test_logits, classes, train_seconds),
        tune_seconds,
        pairs: pairs.len(),
        steps: tuned.steps,
        peak_rss_kib: peak_rss_kib()?,
    };
    println!("{}", serde_json::to_string(&child)?);
    Ok(())
}

/// This process's peak resident set size so far (VmHWM in /proc/self/status).
fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .context("no VmHWM in /proc/self/status")
}

fn run_setfit_child(args: &FewLabelsBench, per_class: usize) -> anyhow::Result<SetfitChild> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("few-labels")
        .arg("--datasets-dir")
        .arg(&args.datasets_dir)
        .args(["--seed", &args.seed.to_string()])
        .args(["--child-per-class", &per_class.to_string()]);
    if let Some(pairs) = args.max_pairs {
        command.args(["--max-pairs", &pairs.to_string()]);
    }
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run the setfit child")?;
    if !output.status.success() {
        bail!(
            "the setfit child for k={per_class} failed ({})",
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).context(format!("the setfit child printed {stdout:?}"))
}

/// TF-IDF (BASELINES.md's features) + logistic regression C=10 on one sample.
const SKLEARN_SCRIPT: &str = r#"
import csv, json, sys, time
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline, make_union

train_path, test_path = sys.argv[1:3]

def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]

x_train, y_train = read(train_path)
x_test, y_test = read(test_path)
model = make_pipeline(
    make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2),
    ),
    LogisticRegression(C=10, max_iter=1000),
)
started = time.perf_counter()
model.fit(x_train, y_train)
seconds = time.perf_counter() - started
predicted = model.predict(x_test)
print(json.dumps({
    "accuracy": accuracy_score(y_test, predicted),
    "macro_f1": f1_score(y_test, predicted, average="macro"),
    "train_seconds": seconds,
    "sklearn_version": sklearn.__version__,
}))
"#;

#[derive(Debug, Deserialize)]
struct SklearnRun {
    accuracy: f64,
    macro_f1: f64,
    train_seconds: f64,
    sklearn_version: String,
}

fn write_csv(path: &Path, examples: &[Example], classes: &[String]) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_path(path)?;
    writer.write_record(["text", "label"])?;
    for example in examples {
        writer.write_record([example.text.as_str(), classes[example.targets[0]].as_str()])?;
    }
    writer.flush()?;
    Ok(())
}

fn tfidf_lr(
    python: &Path,
    work: &Path,
    train: &[Example],
    test_csv: &Path,
    classes: &[String],
) -> anyhow::Result<SklearnRun> {
    let train_csv = work.join(format!("train-{}.csv", train.len()));
    write_csv(&train_csv, train, classes)?;
    let script = work.join("tfidf_lr.py");
    std::fs::write(&script, SKLEARN_SCRIPT)?;
    let mut command = Command::new(python);
    command.arg(&script).arg(&train_csv).arg(test_csv);
    super::models::run_sklearn_script(command)
}

/// The whole train split through the product: `tagger import`, then `tagger train --kind
/// setfit` with its defaults under `/usr/bin/time -v`.
struct FullRun {
    accuracy: f64,
    macro_f1: f64,
    train_seconds: f64,
    wall_seconds: f64,
    peak_rss_kib: u64,
    pairs: Option<u64>,
    tfidf_lr: Option<SklearnRun>,
}

fn full_data(args: &FewLabelsBench, work: &Path) -> anyhow::Result<FullRun> {
    let binary = super::tagger_binary()?;
    let source = args.datasets_dir.join(DATASET.folder).canonicalize()?;
    let folder = work.join("full");
    std::fs::create_dir_all(&folder)?;
    let folder = folder.canonicalize()?;
    let (train_csv, test_csv) = (source.join("train.csv"), source.join("test.csv"));
    let tagger = Tagger {
        binary: &binary,
        folder: &folder,
        url: format!("sqlite://{}", folder.join("tagger.db").display()),
    };
    tagger.import(
        &DATASET,
        &train_csv,
        "train",
        read_csv(&train_csv, &DATASET)?.len(),
    )?;
    tagger.import(
        &DATASET,
        &test_csv,
        "test",
        read_csv(&test_csv, &DATASET)?.len(),
    )?;
    eprintln!("full data: tagger train --kind setfit");
    let output = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(&binary)
        .current_dir(&folder)
        .env("TAGGER_DATA_DIR", folder.join("data"))
        .args(["--database-url", &tagger.url])
        .args(["train", "--project", DATASET.project, "--format", "json"])
        .args(["--kind", "setfit"])
        .args(
            args.max_pairs
                .map(|pairs| vec!["--pairs".to_string(), pairs.to_string()])
                .unwrap_or_default(),
        )
        .output()
        .context("cannot run /usr/bin/time -v tagger train")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("tagger train failed ({}): {}", output.status, stderr.trim());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let quality = parse_quality(&stdout)?;
    let report = super::parse_time_report(&stderr)?;
    let json: serde_json::Value = serde_json::from_str(&stdout)?;
    let pairs = json
        .pointer("/params/setfit/pairs")
        .and_then(serde_json::Value::as_u64);
    let data = load(&args.datasets_dir)?;
    let tfidf = tfidf_lr(&args.python, work, &data.train, &test_csv, &data.classes)
        .inspect_err(|error| eprintln!("scikit-learn baseline failed: {error:#}"))
        .ok();
    Ok(FullRun {
        accuracy: quality.accuracy,
        macro_f1: quality.macro_f1,
        train_seconds: parse_train_seconds(&stderr)?,
        wall_seconds: report.wall_seconds,
        peak_rss_kib: report.peak_rss_kib,
        pairs,
        tfidf_lr: tfidf,
    })
}

pub fn run(args: &FewLabelsBench) -> anyhow::Result<()> {
    if let Some(per_class) = args.child_per_class {
        return setfit_child(args, per_class);
    }
    let work = ScratchDir::create()?;
    let load_before = load_average();
    if args.full_data {
        let full = full_data(args, &work.0)?;
        let section = full_section(&full, args.max_pairs, (&load_before, &load_average()));
        println!("\n{section}");
        return write_section(&args.output, &section, FULL_MARKERS, Some(MARKERS.end));
    }
    let data = load(&args.datasets_dir)?;
    let classes = data.classes.len();
    let test_csv = args.datasets_dir.join(DATASET.folder).join("test.csv");
    let wants = |kind: ModelKind| args.kinds.contains(&kind);
    // The frozen encoder embeds the test split once for every encoder-head fit.
    let frozen = if wants(ModelKind::EncoderHead) {
        let encoder = Encoder::load(
            &HubCache::from_env(),
            DEFAULT_ENCODER_REPO,
            &EncoderHeadParams::default().encoder_options(),
        )
        .context("the MiniLM encoder is not in the local Hugging Face cache")?;
        eprintln!("embedding the test split with the frozen encoder");
        let test = embed(&encoder, &data.test)?;
        Some((encoder, test))
    } else {
        None
    };
    let mut sklearn_version = None;
    let mut rows = Vec::new();
    for &per_class in &args.per_class {
        let train = sample(&data.train, classes, per_class, args.seed);
        eprintln!("k={per_class}: {} labelled tickets", train.len());
        let ngram = wants(ModelKind::Ngram).then(|| {
            let started = Instant::now();
            let params = NgramParams {
                refit: false,
                seed: args.seed,
                ..NgramParams::default()
            };
            let fitted = train_ngram(&Heads::SINGLE, classes, &train, &[], &params, |_| {});
            let seconds = started.elapsed().as_secs_f64();
            let logits: Vec<Vec<f32>> = data
                .test
                .iter()
                .map(|e| fitted.model.logits(&e.text))
                .collect();
            score(&data.test, &logits, classes, seconds)
        });
        let encoder_head = match &frozen {
            Some((encoder, test)) => {
                let started = Instant::now();
                let mut embeddings = embed(encoder, &train)?;
                let fitted_on = embeddings.clone();
                head_logits(&fitted_on, &train, &[], classes, encoder.dim(), args.seed)?;
                let seconds = started.elapsed().as_secs_f64();
                embeddings.extend(test.iter().map(|(id, row)| (*id, row.clone())));
                let logits = head_logits(
                    &embeddings,
                    &train,
                    &data.test,
                    classes,
                    encoder.dim(),
                    args.seed,
                )?;
                Some(score(&data.test, &logits, classes, seconds))
            }
            None => None,
        };
        let tfidf = match tfidf_lr(&args.python, &work.0, &train, &test_csv, &data.classes) {
            Ok(run) => {
                sklearn_version = Some(run.sklearn_version.clone());
                Some(Scored {
                    accuracy: run.accuracy,
                    macro_f1: run.macro_f1,
                    train_seconds: run.train_seconds,
                })
            }
            Err(error) => {
                eprintln!("scikit-learn baseline failed: {error:#}");
                None
            }
        };
        let setfit = if wants(ModelKind::Setfit) {
            eprintln!("k={per_class}: setfit in a child process");
            Some(run_setfit_child(args, per_class)?)
        } else {
            None
        };
        let row = Row {
            per_class,
            labelled: train.len(),
            setfit,
            encoder_head,
            ngram,
            tfidf_lr: tfidf,
        };
        eprintln!("{}", table_row(&row));
        rows.push(row);
    }
    let section = section(
        args,
        &rows,
        sklearn_version.as_deref(),
        data.test.len(),
        (&load_before, &load_average()),
    );
    println!("\n{section}");
    write_section(&args.output, &section, MARKERS, Some(AFTER_MARKER))
}

fn cell(scored: Option<&Scored>) -> String {
    scored.map_or_else(
        || "– | – | –".into(),
        |s| {
            format!(
                "{:.3} | {:.3} | {:.1}",
                s.accuracy, s.macro_f1, s.train_seconds
            )
        },
    )
}

fn table_row(row: &Row) -> String {
    let rss = row.setfit.map_or_else(
        || "–".into(),
        |s| format!("{:.0}", s.peak_rss_kib as f64 / 1024.0),
    );
    let pairs = row
        .setfit
        .map_or_else(|| "–".into(), |s| format!("{} / {}", s.pairs, s.steps));
    format!(
        "| {} ({}) | {} | {} | {} | {} | {} | {} |",
        row.per_class,
        row.labelled,
        cell(row.setfit.as_ref().map(|s| &s.scored)),
        cell(row.encoder_head.as_ref()),
        cell(row.ngram.as_ref()),
        cell(row.tfidf_lr.as_ref()),
        pairs,
        rss,
    )
}

fn section(
    args: &FewLabelsBench,
    rows: &[Row],
    sklearn_version: Option<&str>,
    test: usize,
    load: (&str, &str),
) -> String {
    let params = setfit_params(args.max_pairs, args.seed);
    let kinds: Vec<String> = args.kinds.iter().map(ToString::to_string).collect();
    let per_class: Vec<String> = args.per_class.iter().map(ToString::to_string).collect();
    let mut text = format!(
        "## Few labels (setfit, Ticket Tagger issues)\n\n\
         Measured {date} on {machine} (load average {before} before, {after} after), with:\n\n\
         ```sh\ncargo build --workspace --bins && HF_HOME=~/.cache/huggingface cargo run --bin bench -- \
         few-labels --per-class {per_class} --seed {seed} --kinds {kinds}{pairs} \
         --python /work/venv-bench/bin/python\n```\n\n\
         k labelled tickets per class are drawn from the published train split (2,925 tickets, 3 classes): \
         each class's tickets, in file order, are shuffled by one SplitMix64 stream seeded {seed} (classes in \
         name order) and the first k kept, so each sample is part of the next larger one. Every model \
         trains on the same sample and is scored on the whole test split ({test} tickets): accuracy and \
         macro-F1 of the top tag. One seed, one run per cell. In memory with the tagger's own code: \
         `setfit` = `sample_pairs` + `tune_encoder_until` ({max_pairs} pairs at most{pairs_note}, {iterations} \
         rounds, {batch} pairs a step, step {lr}, {tokens} tokens, dropout {dropout}) and a head fitted on the \
         tuned encoder's embeddings; `encoder-head` = the same head on frozen all-MiniLM-L6-v2 embeddings \
         ({tokens} tokens); both heads take {HEAD_STEPS} Adam steps with `encoder-head`'s defaults (no \
         validation split to stop on). `ngram` = `train_ngram` with its defaults, no refit, no model \
         selection. TF-IDF + LR = scikit-learn{sk} (word 1–2-grams and char_wb 3–5-grams, sublinear tf, \
         min_df 2; C=10), one thread. Training seconds: the fit only (embedding the sample included for the \
         encoder kinds, the contrastive phase for `setfit`; not scoring the test split). `setfit` runs in a \
         child process of the bench, which reports its own peak resident set size (VmHWM of \
         /proc/self/status at the end of the fit and the test scoring): the memory of one whole fit.\n\n\
         | k per class (tickets) | setfit acc | macro-F1 | train s | encoder-head acc | macro-F1 | train s \
         | ngram acc | macro-F1 | train s | TF-IDF + LR acc | macro-F1 | train s | setfit pairs / steps \
         | setfit peak RSS MiB |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = machine(),
        before = load.0,
        after = load.1,
        per_class = per_class.join(","),
        seed = args.seed,
        kinds = kinds.join(","),
        pairs = args
            .max_pairs
            .map_or_else(String::new, |p| format!(" --max-pairs {p}")),
        max_pairs = params.max_pairs,
        pairs_note = match args.max_pairs {
            Some(_) => " by `--max-pairs`, not the kind's default",
            None => ", the kind's default",
        },
        iterations = params.iterations,
        batch = params.pair_batch_size,
        lr = params.learning_rate,
        tokens = params.max_tokens,
        dropout = params.dropout,
        sk = sklearn_version.map_or_else(String::new, |v| format!(" {v}")),
    );
    for row in rows {
        let _ = writeln!(text, "{}", table_row(row));
    }
    text.push('\n');
    let mut findings = Vec::new();
    for row in rows {
        if let (Some(setfit), Some(tfidf)) = (row.setfit, row.tfidf_lr) {
            findings.push(format!(
                "k={}: setfit {:+.3} accuracy and {:+.3} macro-F1 against TF-IDF + LR",
                row.per_class,
                setfit.scored.accuracy - tfidf.accuracy,
                setfit.scored.macro_f1 - tfidf.macro_f1
            ));
        }
    }
    if !findings.is_empty() {
        let _ = writeln!(text, "{}.\n", findings.join("; "));
    }
    text
}

/// The whole-train-split run's section.
fn full_section(full: &FullRun, max_pairs: Option<usize>, load: (&str, &str)) -> String {
    let baseline = full.tfidf_lr.as_ref().map_or_else(
        || "TF-IDF + LR failed to run".into(),
        |b| {
            format!(
                "TF-IDF + LR (as above, scikit-learn {}) on the same split in the same run: {:.3} accuracy, {:.3} macro-F1, {:.1} s",
                b.sklearn_version, b.accuracy, b.macro_f1, b.train_seconds
            )
        },
    );
    let verdict = if full.accuracy >= TARGET_FULL_ACCURACY {
        "meets"
    } else {
        "misses"
    };
    format!(
        "### setfit on the whole Ticket Tagger train split\n\n\
         Measured {date} on {machine} (load average {before} before, {after} after), with:\n\n\
         ```sh\ncargo build --workspace --bins && HF_HOME=~/.cache/huggingface cargo run --bin bench -- \
         few-labels --full-data{pairs_flag} --python /work/venv-bench/bin/python\n```\n\n\
         `tagger import` of train.csv and test.csv as published, then `/usr/bin/time -v tagger train \
         --kind setfit` with every default{pairs}: test accuracy **{acc:.3}**, macro-F1 {f1:.3} — \
         {verdict} the issue's target of {TARGET_FULL_ACCURACY}. {baseline}. Training {train:.0} s \
         (tagger's own \"trained in\": pairs, contrastive phase, embedding every ticket, head; {wall:.0} s \
         for the whole command), peak RSS {rss:.0} MiB (the whole `tagger train` process, from \
         `/usr/bin/time`). The product holds validation tickets out of the pairs for the head's early \
         stopping and calibration.\n",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = machine(),
        before = load.0,
        after = load.1,
        pairs = full
            .pairs
            .map_or_else(String::new, |p| format!(" ({p} pairs)")),
        pairs_flag = max_pairs.map_or_else(String::new, |p| format!(" --max-pairs {p}")),
        acc = full.accuracy,
        f1 = full.macro_f1,
        train = full.train_seconds,
        wall = full.wall_seconds,
        rss = full.peak_rss_kib as f64 / 1024.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples(per_class: &[usize]) -> Vec<Example> {
        let mut all = Vec::new();
        for (class, &count) in per_class.iter().enumerate() {
            for _ in 0..count {
                all.push(Example {
                    ticket: TicketId(all.len() as i64),
                    text: format!("ticket {}", all.len()),
                    targets: vec![class],
                });
            }
        }
        all
    }

    #[test]
    fn a_sample_has_k_per_class_repeats_for_a_seed_and_grows_by_adding() {
        let train = examples(&[50, 40, 30]);
        let small = sample(&train, 3, 8, 42);
        assert_eq!(small.len(), 24);
        for class in 0..3 {
            assert_eq!(small.iter().filter(|e| e.targets[0] == class).count(), 8);
        }
        assert_eq!(small, sample(&train, 3, 8, 42));
        assert_ne!(small, sample(&train, 3, 8, 43));
        let large = sample(&train, 3, 32, 42);
        assert!(small.iter().all(|e| large.contains(e)));
        // A class with fewer tickets than k gives all it has.
        assert_eq!(sample(&train, 3, 45, 42).len(), 45 + 40 + 30);
    }
}
