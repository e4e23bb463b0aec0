//! `bench ngram-selection`: the `ngram` kind trained through the real `tagger import` /
//! `tagger train` path on every dataset in `../shared/datasets/`: the default (`lbfgs`, its
//! loss weight chosen on the validation split), `adagrad` with early stopping, and `adagrad`
//! with model selection at the suggested budget, next to TF-IDF + LinearSVC and TF-IDF + logistic regression fitted with scikit-learn in
//! the same run. Quality and training time; writes a marked section of docs/benchmarks.md.

use super::models::{Dataset, Tagger, TrainRun, read_csv, run_sklearn_script};
use super::{Markers, ScratchDir, load_average, machine, write_section};
use anyhow::Context;
use clap::Args;
use inference::ModelKind;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

const MARKERS: Markers = Markers {
    start: "<!-- bench:ngram-selection:start -->",
    end: "<!-- bench:ngram-selection:end -->",
};
const AFTER_MARKER: &str = "<!-- bench:models:end -->";

#[derive(Debug, Args)]
pub struct NgramSelectionBench {
    /// Folder with one sub-folder per dataset, as described in its README.md.
    #[arg(long, default_value = "../shared/datasets")]
    datasets_dir: PathBuf,
    /// Markdown file whose section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
    /// Python with scikit-learn for the same-run baselines.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// Datasets to run (folder names), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "banking77,ticket-tagger-issues,clinc150"
    )]
    datasets: Vec<String>,
}

/// The datasets with a train and a test file; CLINC150 is its in-scope queries only.
const DATASETS: [Dataset; 3] = [
    Dataset {
        folder: "banking77",
        title: "BANKING77",
        project: "b77",
        text_column: "text",
        label_column: "category",
        baselines_heading: "",
    },
    Dataset {
        folder: "ticket-tagger-issues",
        title: "Ticket Tagger issues",
        project: "issues",
        text_column: "text",
        label_column: "label",
        baselines_heading: "",
    },
    Dataset {
        folder: "clinc150",
        title: "CLINC150 (in-scope)",
        project: "clinc",
        text_column: "text",
        label_column: "intent",
        baselines_heading: "",
    },
];

/// TF-IDF (BASELINES.md's features) + LinearSVC C=0.5 and + LR C=10, one fit each.
const SKLEARN_SCRIPT: &str = r#"
import csv, json, sys, time
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline, make_union

train_path, test_path, text, label = sys.argv[1:5]

def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r[text] for r in rows], [r[label] for r in rows]

def features():
    return make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2),
    )

x_train, y_train = read(train_path)
x_test, y_test = read(test_path)
result = {"sklearn_version": sklearn.__version__}
for name, classifier in [("svc", LinearSVC(C=0.5)), ("lr", LogisticRegression(C=10, max_iter=1000))]:
    model = make_pipeline(features(), classifier)
    started = time.perf_counter()
    model.fit(x_train, y_train)
    result[name + "_seconds"] = time.perf_counter() - started
    result[name + "_accuracy"] = accuracy_score(y_test, model.predict(x_test))
print(json.dumps(result))
"#;

#[derive(Debug, Clone, Deserialize)]
struct Baselines {
    svc_accuracy: f64,
    svc_seconds: f64,
    lr_accuracy: f64,
    lr_seconds: f64,
    sklearn_version: String,
}

/// One dataset's row.
struct Row {
    dataset: &'static Dataset,
    train: usize,
    test: usize,
    selected: TrainRun,
    /// What `tagger train --format json` said selection chose.
    choice: String,
    /// The default: `lbfgs`, selection off.
    without: TrainRun,
    /// The loss weight it chose.
    loss_weight: Option<f64>,
    /// `adagrad`, selection off: the default before `lbfgs`.
    adagrad: TrainRun,
    baselines: Option<Baselines>,
}

pub fn run(args: &NgramSelectionBench) -> anyhow::Result<()> {
    let tagger = super::tagger_binary()?;
    let work = ScratchDir::create()?;
    let load_before = load_average();
    let mut rows = Vec::new();
    for dataset in DATASETS
        .iter()
        .filter(|d| args.datasets.iter().any(|f| f == d.folder))
    {
        let source = args
            .datasets_dir
            .join(dataset.folder)
            .canonicalize()
            .context(format!(
                "no folder {} in the datasets folder",
                dataset.folder
            ))?;
        let folder = work.0.join(dataset.folder);
        std::fs::create_dir_all(&folder)?;
        let row = measure(&tagger, &folder, &source, dataset, &args.python)
            .context(format!("benchmark of {}", dataset.folder))?;
        let _ = std::fs::remove_dir_all(&folder);
        rows.push(row);
    }
    let table = table(&rows);
    println!("\n{table}");
    let section = section(args, &rows, &table, (&load_before, &load_average()));
    write_section(&args.output, &section, MARKERS, Some(AFTER_MARKER))
}

fn measure(
    binary: &Path,
    folder: &Path,
    source: &Path,
    dataset: &'static Dataset,
    python: &Path,
) -> anyhow::Result<Row> {
    let folder = folder.canonicalize()?;
    let (train_csv, test_csv) = (source.join("train.csv"), source.join("test.csv"));
    let train = read_csv(&train_csv, dataset)?.len();
    let test = read_csv(&test_csv, dataset)?.len();
    let tagger = Tagger {
        binary,
        folder: &folder,
        url: format!("sqlite://{}", folder.join("tagger.db").display()),
    };
    tagger.import(dataset, &train_csv, "train", train)?;
    tagger.import(dataset, &test_csv, "test", test)?;
    eprintln!("{}: ngram with model selection", dataset.folder);
    let budget = trainer::ngram_selection::SUGGESTED_SELECTION_BUDGET.to_string();
    let (selected, json) = tagger.train_with(
        dataset.project,
        ModelKind::Ngram,
        &["--selection-budget", &budget],
    )?;
    let choice = json
        .pointer("/model_selection")
        .filter(|v| !v.is_null())
        .map_or_else(|| "no selection".to_string(), describe_choice);
    eprintln!(
        "{}: accuracy {:.4} in {:.1} s; {choice}",
        dataset.folder, selected.quality.accuracy, selected.train_seconds
    );
    eprintln!(
        "{}: ngram, the default (lbfgs, selection off)",
        dataset.folder
    );
    let (without, json) = tagger.train_with(
        dataset.project,
        ModelKind::Ngram,
        &["--selection-budget", "0"],
    )?;
    let loss_weight = json
        .pointer("/params/ngram/loss_weight")
        .and_then(|v| v.as_f64());
    eprintln!(
        "{}: accuracy {:.4} in {:.1} s, C {loss_weight:?}",
        dataset.folder, without.quality.accuracy, without.train_seconds
    );
    eprintln!("{}: ngram with adagrad, selection off", dataset.folder);
    let (adagrad, _) = tagger.train_with(
        dataset.project,
        ModelKind::Ngram,
        &["--selection-budget", "0", "--solver", "adagrad"],
    )?;
    eprintln!(
        "{}: accuracy {:.4} in {:.1} s",
        dataset.folder, adagrad.quality.accuracy, adagrad.train_seconds
    );
    let script = folder.join("tfidf_svc_lr.py");
    std::fs::write(&script, SKLEARN_SCRIPT)?;
    let mut command = Command::new(python);
    command
        .arg(&script)
        .arg(&train_csv)
        .arg(&test_csv)
        .args([dataset.text_column, dataset.label_column]);
    let baselines = run_sklearn_script::<Baselines>(command)
        .inspect_err(|error| println!("scikit-learn baselines failed: {error:#}"))
        .ok();
    Ok(Row {
        dataset,
        train,
        test,
        selected,
        choice,
        without,
        loss_weight,
        adagrad,
        baselines,
    })
}

/// "word 1–2 + char 3–5, L2 1e-5, 9 epochs (4 of 7 candidates, CV accuracy 0.671)".
fn describe_choice(selection: &serde_json::Value) -> String {
    let chosen = selection["chosen"].as_u64().unwrap_or(0) as usize;
    let trial = &selection["trials"][chosen];
    let tried = selection["trials"].as_array().map_or(0, Vec::len);
    let untried = selection["untried"].as_u64().unwrap_or(0);
    format!(
        "{}, L2 {:.0e}, {} epochs (CV accuracy {:.3}; {tried} tried, {untried} untried; {:.0} of {:.0} M updates)",
        trial["features"].as_str().unwrap_or("?"),
        // Stored as f32 and read back as f64: 1e-6 comes back as 9.99999997e-7.
        trial["l2"].as_f64().unwrap_or(0.0),
        trial["epochs"],
        trial["accuracy"].as_f64().unwrap_or(0.0),
        selection["updates"].as_f64().unwrap_or(0.0) / 1e6,
        selection["budget_updates"].as_f64().unwrap_or(0.0) / 1e6,
    )
}

fn table(rows: &[Row]) -> String {
    let mut table = String::from(
        "| dataset | train / test | `ngram` (default: `lbfgs`) | `ngram` `adagrad` | `adagrad` with selection | TF-IDF + LinearSVC | TF-IDF + LR | `ngram` train s (default / adagrad / selection) | LinearSVC / LR train s | loss weight chosen | selection's setting |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    for row in rows {
        let (svc, lr, seconds) = match &row.baselines {
            Some(b) => (
                format!("{:.3}", b.svc_accuracy),
                format!("{:.3}", b.lr_accuracy),
                format!("{:.1} / {:.1}", b.svc_seconds, b.lr_seconds),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let mark = match &row.baselines {
            Some(b) if row.without.quality.accuracy >= b.svc_accuracy => " ✓",
            Some(_) => " ✗",
            None => "",
        };
        table.push_str(&format!(
            "| {} | {} / {} | {:.4}{mark} | {:.4} | {:.4} | {svc} | {lr} | {:.1} / {:.1} / {:.1} | {seconds} | {} | {} |\n",
            row.dataset.title,
            row.train,
            row.test,
            row.without.quality.accuracy,
            row.adagrad.quality.accuracy,
            row.selected.quality.accuracy,
            row.without.train_seconds,
            row.adagrad.train_seconds,
            row.selected.train_seconds,
            row.loss_weight.map_or("–".into(), |c| format!("C = {c}")),
            row.choice,
        ));
    }
    table
}

fn section(
    args: &NgramSelectionBench,
    rows: &[Row],
    table: &str,
    (load_before, load_after): (&str, &str),
) -> String {
    let version = rows
        .iter()
        .find_map(|r| r.baselines.as_ref().map(|b| b.sklearn_version.clone()))
        .unwrap_or_else(|| "unavailable".into());
    let profile = if cfg!(debug_assertions) {
        "dev profile (the trainer, inference and every dependency at opt-level 3)"
    } else {
        "release profile"
    };
    format!(
        "## `ngram` against TF-IDF + LinearSVC: solvers and model selection\n\n\
         Command: `cargo build --bins && cargo run --bin bench -- ngram-selection --datasets-dir {datasets} --python {python}` \
         ({profile}). Date: {date}. Machine: {machine}; load average (1 min) {load_before} before, {load_after} after.\n\n\
         Each dataset is imported with its published split into a fresh SQLite database (CLINC150: the in-scope \
         train and test files) and `ngram` is trained three times with `tagger train --kind ngram --format json`: \
         with the defaults (`lbfgs`: the L2-regularised loss minimised to convergence, the loss weight C chosen on the \
         validation split; docs/models.md); with `--solver adagrad` (epochs with early stopping, the default before); and with \
         `--selection-budget {budget}` (`SUGGESTED_SELECTION_BUDGET`; Adagrad's setting chosen by 3-fold cross-validation on the labelled training tickets). \
         Accuracy is on the test split, which no choice sees. \"train s\" is tagger's own \
         \"trained in X s\" (selection, the fits for calibration and the refit; not reading tickets or evaluating). \
         The baselines are scikit-learn {version}, one fit each in the same run, single-threaded: word 1–2 + \
         char_wb 3–5 TF-IDF (sublinear tf, min_df 2) with LinearSVC C=0.5 and with logistic regression C=10 \
         (BASELINES.md's recipes). ✓: the default reaches LinearSVC's accuracy.\n\n{table}",
        budget = trainer::ngram_selection::SUGGESTED_SELECTION_BUDGET,
        datasets = args.datasets_dir.display(),
        python = args.python.display(),
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = machine(),
    )
}
