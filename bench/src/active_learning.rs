//! `bench active-learning`: simulated labelling on the shared public datasets. Each run
//! starts from a random seed set of the train split, lets a strategy choose the next batch
//! from the rest of the train split (the dataset's true labels play the labeller), retrains,
//! and scores the test split; several seeds are averaged. Reported: labels needed to reach
//! 95% of the full-data accuracy per strategy, and the saving against random.
//!
//! Models are trained in memory with the tagger's own code: `ngram` with `train_ngram`, and
//! `encoder-head` with `fit_head` on MiniLM embeddings computed once and cached on disk
//! (the store and the model files are not involved: the point is the choice of tickets).

use super::{Markers, machine, write_section};
use anyhow::{Context, bail};
use clap::Args;
use datasets::{LabelMode, ModelKind, ProjectId, TicketId};
use inference::calibration::probabilities;
use inference::encoder::hub::{DEFAULT_ENCODER_REPO, HubCache};
use inference::encoder::{Encoder, EncoderOptions};
use inference::heads::Heads;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use trainer::active::{ModelView, Pool, Strategy, select};
use trainer::encoder_head::{EncoderHeadParams, cache_path, embed_examples, fit_head};
use trainer::examples::Example;
use trainer::ngram::{NgramParams, train_ngram};

const MARKERS: Markers = Markers {
    start: "<!-- bench:active-learning:start -->",
    end: "<!-- bench:active-learning:end -->",
};
/// Share of the full-data accuracy a strategy must reach.
const TARGET_SHARE: f64 = 0.95;
/// The issue's target: this much fewer labels than random on BANKING77 with encoder-head.
const TARGET_SAVING: f64 = 0.40;
/// Adam steps per head fit, whatever the number of labels: a fixed number of epochs would
/// leave a head trained on 200 tickets with one step per epoch far from converged.
const HEAD_STEPS: usize = 600;
/// Passes of the n-gram model over its labelled tickets (no validation split to stop on).
const NGRAM_EPOCHS: usize = 10;

#[derive(Debug, Args)]
pub struct ActiveLearningBench {
    /// Folder with one sub-folder per dataset, as described in its README.md.
    #[arg(long, default_value = "../shared/datasets")]
    datasets_dir: PathBuf,
    /// Markdown file whose active-learning section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
    /// The learning-curve chart.
    #[arg(long, default_value = "docs/active-learning-curve.svg")]
    chart: PathBuf,
    /// Seeds averaged per strategy (each seed draws its own seed set).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Model kinds to run.
    #[arg(long, value_delimiter = ',', default_value = "encoder-head,ngram")]
    kinds: Vec<ModelKind>,
    /// Where sentence embeddings are cached between runs.
    #[arg(long, default_value = "target/bench-cache")]
    cache_dir: PathBuf,
}

/// One public dataset and its labelling schedule per model kind.
struct Dataset {
    folder: &'static str,
    title: &'static str,
    text_column: &'static str,
    label_column: &'static str,
    /// (kind, seed set, batch, budget).
    schedules: [(ModelKind, usize, usize, usize); 2],
}

const DATASETS: [Dataset; 2] = [
    Dataset {
        folder: "banking77",
        title: "BANKING77",
        text_column: "text",
        label_column: "category",
        schedules: [
            (ModelKind::EncoderHead, 200, 200, 5000),
            (ModelKind::Ngram, 400, 400, 5200),
        ],
    },
    Dataset {
        folder: "ticket-tagger-issues",
        title: "Ticket Tagger issues",
        text_column: "text",
        label_column: "label",
        schedules: [
            (ModelKind::EncoderHead, 50, 50, 1000),
            (ModelKind::Ngram, 100, 100, 1500),
        ],
    },
];

fn strategies(kind: ModelKind) -> Vec<Strategy> {
    match kind {
        // Encoder fits take a second: every strategy. N-gram and fine-tuning fits take
        // longer: the main ones.
        ModelKind::EncoderHead => vec![
            Strategy::Random,
            Strategy::LeastConfidence,
            Strategy::Margin,
            Strategy::Entropy,
            Strategy::Diverse,
        ],
        ModelKind::Ngram | ModelKind::Finetune | ModelKind::Setfit => {
            vec![Strategy::Random, Strategy::Margin, Strategy::Entropy]
        }
    }
}

/// A dataset in memory: examples indexed by class, train ids first then test ids.
struct Loaded {
    classes: Vec<String>,
    train: Vec<Example>,
    test: Vec<Example>,
}

fn read_rows(path: &Path, dataset: &Dataset) -> anyhow::Result<Vec<(String, String)>> {
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
        rows.push((
            record.get(text).unwrap_or_default().to_string(),
            record.get(label).unwrap_or_default().to_string(),
        ));
    }
    Ok(rows)
}

fn load(folder: &Path, dataset: &Dataset) -> anyhow::Result<Loaded> {
    let train_rows = read_rows(&folder.join("train.csv"), dataset)?;
    let test_rows = read_rows(&folder.join("test.csv"), dataset)?;
    let mut classes: Vec<String> = train_rows.iter().map(|(_, l)| l.clone()).collect();
    classes.sort();
    classes.dedup();
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let examples = |rows: &[(String, String)], first: usize| -> anyhow::Result<Vec<Example>> {
        rows.iter()
            .enumerate()
            .map(|(i, (text, label))| {
                let class = *index
                    .get(label.as_str())
                    .context(format!("test label {label:?} never appears in train"))?;
                Ok(Example {
                    ticket: TicketId((first + i) as i64),
                    // Read as the product reads an imported text column: a ticket's body.
                    text: datasets::ticket::model_text("", text),
                    targets: vec![class],
                })
            })
            .collect()
    };
    let train = examples(&train_rows, 0)?;
    let test = examples(&test_rows, train_rows.len())?;
    Ok(Loaded {
        classes,
        train,
        test,
    })
}

/// Accuracy and macro-F1 (over the classes present in the test split) of argmax predictions.
pub(crate) fn quality(predictions: &[usize], truth: &[usize], classes: usize) -> (f64, f64) {
    let correct = predictions
        .iter()
        .zip(truth)
        .filter(|(p, t)| p == t)
        .count();
    let mut tp = vec![0usize; classes];
    let mut predicted = vec![0usize; classes];
    let mut actual = vec![0usize; classes];
    for (&p, &t) in predictions.iter().zip(truth) {
        predicted[p] += 1;
        actual[t] += 1;
        if p == t {
            tp[p] += 1;
        }
    }
    let present: Vec<usize> = (0..classes).filter(|&c| actual[c] > 0).collect();
    let f1_sum: f64 = present
        .iter()
        .map(|&c| {
            let denominator = predicted[c] + actual[c];
            if denominator == 0 {
                0.0
            } else {
                2.0 * tp[c] as f64 / denominator as f64
            }
        })
        .sum();
    (
        correct as f64 / truth.len().max(1) as f64,
        f1_sum / present.len().max(1) as f64,
    )
}

pub(crate) fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// A model kind ready to fit on a subset and score texts.
enum Learner<'a> {
    Ngram,
    EncoderHead {
        embeddings: &'a HashMap<TicketId, Vec<f32>>,
        dim: usize,
    },
}

/// Logits per ticket of the pool and of the test split.
type PoolAndTestLogits = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// Fits on `labelled`, returns logits for `pool` and for the test split.
fn fit_and_score(
    learner: &Learner<'_>,
    data: &Loaded,
    labelled: &[&Example],
    pool: &[&Example],
    seed: u64,
) -> anyhow::Result<PoolAndTestLogits> {
    let outputs = data.classes.len();
    match learner {
        Learner::Ngram => {
            let params = NgramParams {
                epochs: NGRAM_EPOCHS,
                refit: false,
                seed,
                ..NgramParams::default()
            };
            let train: Vec<Example> = labelled.iter().map(|e| (*e).clone()).collect();
            let fitted = train_ngram(&Heads::SINGLE, outputs, &train, &[], &params, |_| {});
            let pool_logits = pool.iter().map(|e| fitted.model.logits(&e.text)).collect();
            let test_logits = data
                .test
                .iter()
                .map(|e| fitted.model.logits(&e.text))
                .collect();
            Ok((pool_logits, test_logits))
        }
        Learner::EncoderHead { embeddings, dim } => {
            let params = EncoderHeadParams {
                seed,
                ..EncoderHeadParams::default()
            };
            let steps_per_epoch = labelled.len().div_ceil(params.minibatch.max(1)).max(1);
            let epochs = HEAD_STEPS.div_ceil(steps_per_epoch);
            let fitted = fit_head(
                &Heads::SINGLE,
                outputs,
                *dim,
                embeddings,
                labelled,
                &[],
                &params,
                epochs,
                |_| {},
            )
            .context("fitting the head")?;
            let logits = |examples: &mut dyn Iterator<Item = &Example>| -> Vec<Vec<f32>> {
                examples
                    .map(|e| {
                        embeddings
                            .get(&e.ticket)
                            .map_or_else(|| vec![f32::NAN; outputs], |x| fitted.head.logits(x))
                    })
                    .collect()
            };
            Ok((
                logits(&mut pool.iter().copied()),
                logits(&mut data.test.iter()),
            ))
        }
    }
}

/// One point of a learning curve.
#[derive(Debug, Clone, Copy)]
struct Point {
    labels: usize,
    accuracy: f64,
    macro_f1: f64,
}

/// One simulated labelling run.
fn simulate(
    learner: &Learner<'_>,
    data: &Loaded,
    strategy: Strategy,
    (seed_size, batch, budget): (usize, usize, usize),
    seed: u64,
) -> anyhow::Result<Vec<Point>> {
    let truth: Vec<usize> = data.test.iter().map(|e| e.targets[0]).collect();
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    // The same seed set for every strategy of a seed: only the choices after it differ.
    shuffle(&mut order, seed);
    let mut labelled: Vec<usize> = order[..seed_size.min(order.len())].to_vec();
    let mut is_labelled = vec![false; data.train.len()];
    for &i in &labelled {
        is_labelled[i] = true;
    }
    let tags: Vec<String> = data.classes.clone();
    let thresholds = vec![0.5; tags.len()];
    let mut curve = Vec::new();
    loop {
        let pool_indices: Vec<usize> = (0..data.train.len()).filter(|&i| !is_labelled[i]).collect();
        let labelled_examples: Vec<&Example> = labelled.iter().map(|&i| &data.train[i]).collect();
        let pool_examples: Vec<&Example> = pool_indices.iter().map(|&i| &data.train[i]).collect();
        let (pool_logits, test_logits) =
            fit_and_score(learner, data, &labelled_examples, &pool_examples, seed)?;
        let predictions: Vec<usize> = test_logits.iter().map(|l| argmax(l)).collect();
        let (accuracy, macro_f1) = quality(&predictions, &truth, tags.len());
        curve.push(Point {
            labels: labelled.len(),
            accuracy,
            macro_f1,
        });
        if labelled.len() >= budget || pool_indices.is_empty() {
            break;
        }
        let probabilities: Vec<Vec<f32>> = pool_logits
            .iter()
            .map(|l| probabilities(l, 1.0, LabelMode::Single))
            .collect();
        let vectors: Option<Vec<Vec<f32>>> = match learner {
            Learner::EncoderHead { embeddings, .. } if strategy == Strategy::Diverse => Some(
                pool_examples
                    .iter()
                    .map(|e| embeddings.get(&e.ticket).cloned().unwrap_or_default())
                    .collect(),
            ),
            _ => None,
        };
        let pool = Pool {
            candidates: pool_indices.len(),
            probabilities: &probabilities,
            view: ModelView {
                mode: LabelMode::Single,
                tags: &tags,
                thresholds: &thresholds,
            },
            vectors: vectors.as_deref(),
            conflicts: None,
        };
        let k = batch.min(budget - labelled.len());
        let round_seed = seed
            .wrapping_mul(1_000_003)
            .wrapping_add(labelled.len() as u64);
        for chosen in select(strategy, &pool, k, round_seed)? {
            let i = pool_indices[chosen.index];
            is_labelled[i] = true;
            labelled.push(i);
        }
    }
    Ok(curve)
}

/// Fisher–Yates with SplitMix64, so the seed sets are the same on every machine.
fn shuffle(items: &mut [usize], seed: u64) {
    let mut state = seed ^ 0x00a1_1ce5_5eed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The mean curve over seeds (every run has the same label counts).
fn mean_curve(runs: &[Vec<Point>]) -> Vec<Point> {
    let length = runs.iter().map(Vec::len).min().unwrap_or(0);
    (0..length)
        .map(|i| {
            let n = runs.len() as f64;
            Point {
                labels: runs[0][i].labels,
                accuracy: runs.iter().map(|r| r[i].accuracy).sum::<f64>() / n,
                macro_f1: runs.iter().map(|r| r[i].macro_f1).sum::<f64>() / n,
            }
        })
        .collect()
}

/// Labels at which the mean curve first reaches `target`, interpolated between the two
/// measured points around it; `None` when it never does within the budget.
fn labels_to_reach(curve: &[Point], target: f64) -> Option<f64> {
    let first = curve.iter().position(|p| p.accuracy >= target)?;
    if first == 0 {
        return Some(curve[0].labels as f64);
    }
    let (a, b) = (curve[first - 1], curve[first]);
    let share = (target - a.accuracy) / (b.accuracy - a.accuracy);
    Some(a.labels as f64 + share * (b.labels - a.labels) as f64)
}

/// Results of one dataset and model kind.
struct Experiment {
    title: String,
    kind: ModelKind,
    full: (f64, f64),
    budget: usize,
    batch: usize,
    seed_size: usize,
    curves: Vec<(Strategy, Vec<Point>)>,
    seconds: f64,
}

impl Experiment {
    fn target(&self) -> f64 {
        TARGET_SHARE * self.full.0
    }

    fn reached(&self, strategy: Strategy) -> Option<f64> {
        let curve = &self.curves.iter().find(|(s, _)| *s == strategy)?.1;
        labels_to_reach(curve, self.target())
    }
}

fn embeddings_for(
    data: &Loaded,
    cache_dir: &Path,
    project: i64,
) -> anyhow::Result<(HashMap<TicketId, Vec<f32>>, usize)> {
    let encoder = Encoder::load(&HubCache::from_env(), DEFAULT_ENCODER_REPO, &EncoderOptions::default())
        .context("the MiniLM encoder is not in the local Hugging Face cache (see ../shared/models/README.md)")?;
    let everything: Vec<&Example> = data.train.iter().chain(&data.test).collect();
    let file = cache_path(cache_dir, encoder.spec(), ProjectId(project));
    let (embeddings, report) = embed_examples(&encoder, &everything, &file, |_, _| {})?;
    println!(
        "  embeddings: {} computed, {} from the cache {} ({:.1} s)",
        report.computed,
        report.cached,
        file.display(),
        report.seconds
    );
    Ok((embeddings, encoder.dim()))
}

pub fn run(args: &ActiveLearningBench) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let mut experiments = Vec::new();
    let mut skipped = Vec::new();
    for (number, dataset) in DATASETS.iter().enumerate() {
        let folder = args.datasets_dir.join(dataset.folder);
        if !folder.join("train.csv").is_file() || !folder.join("test.csv").is_file() {
            let note = format!(
                "{}: skipped, {} has no train.csv and test.csv",
                dataset.title,
                folder.display()
            );
            println!("{note}");
            skipped.push(note);
            continue;
        }
        let data = load(&folder, dataset)?;
        println!(
            "{}: {} train, {} test, {} classes",
            dataset.title,
            data.train.len(),
            data.test.len(),
            data.classes.len()
        );
        let mut embeddings = None;
        for &(kind, seed_size, batch, budget) in &dataset.schedules {
            if !args.kinds.contains(&kind) {
                continue;
            }
            let kind_started = Instant::now();
            let learner = match kind {
                ModelKind::EncoderHead => {
                    if embeddings.is_none() {
                        embeddings =
                            Some(embeddings_for(&data, &args.cache_dir, number as i64 + 1)?);
                    }
                    let (map, dim) = embeddings.as_ref().context("embeddings")?;
                    Learner::EncoderHead {
                        embeddings: map,
                        dim: *dim,
                    }
                }
                ModelKind::Ngram => Learner::Ngram,
                // Minutes per fit: a labelling simulation of hundreds of fits is out of reach.
                ModelKind::Finetune | ModelKind::Setfit => {
                    bail!("the active-learning benchmark does not fine-tune")
                }
            };
            let everything: Vec<&Example> = data.train.iter().collect();
            let (_, full_logits) = fit_and_score(&learner, &data, &everything, &[], 0)?;
            let truth: Vec<usize> = data.test.iter().map(|e| e.targets[0]).collect();
            let full = quality(
                &full_logits.iter().map(|l| argmax(l)).collect::<Vec<_>>(),
                &truth,
                data.classes.len(),
            );
            println!(
                "  {kind}: full data accuracy {:.3}, macro-F1 {:.3}",
                full.0, full.1
            );
            let mut curves = Vec::new();
            for strategy in strategies(kind) {
                let mut runs = Vec::new();
                for seed in 1..=args.seeds {
                    let run_started = Instant::now();
                    let curve =
                        simulate(&learner, &data, strategy, (seed_size, batch, budget), seed)?;
                    let last = curve.last().copied();
                    println!(
                        "    {strategy} seed {seed}: {} points, last accuracy {:.3} ({:.1} s)",
                        curve.len(),
                        last.map_or(0.0, |p| p.accuracy),
                        run_started.elapsed().as_secs_f64()
                    );
                    runs.push(curve);
                }
                curves.push((strategy, mean_curve(&runs)));
            }
            experiments.push(Experiment {
                title: dataset.title.to_string(),
                kind,
                full,
                budget,
                batch,
                seed_size,
                curves,
                seconds: kind_started.elapsed().as_secs_f64(),
            });
        }
    }
    if experiments.is_empty() {
        bail!(
            "no dataset found under {}: nothing measured",
            args.datasets_dir.display()
        );
    }
    let total = started.elapsed().as_secs_f64();
    let chart_name = args
        .chart
        .file_name()
        .map_or("active-learning-curve.svg".into(), |n| {
            n.to_string_lossy().into_owned()
        });
    write_section(
        &args.output,
        &section(args, &experiments, &skipped, total, &chart_name),
        MARKERS,
        None,
    )?;
    if let Some(parent) = args.chart.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).context(format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&args.chart, chart(&experiments))
        .context(format!("cannot write {}", args.chart.display()))?;
    println!(
        "wrote {}; total {:.1} min",
        args.chart.display(),
        total / 60.0
    );
    Ok(())
}

fn labels_cell(labels: Option<f64>, budget: usize) -> String {
    labels.map_or(format!("not within {budget}"), |l| format!("{:.0}", l))
}

fn saving_cell(strategy: Option<f64>, random: Option<f64>, budget: usize) -> String {
    match (strategy, random) {
        (Some(s), Some(r)) => format!("{:+.0}%", (1.0 - s / r) * 100.0),
        // Random never got there: the saving is at least against the whole budget.
        (Some(s), None) => format!("at least {:.0}%", (1.0 - s / budget as f64) * 100.0),
        (None, _) => "—".into(),
    }
}

fn section(
    args: &ActiveLearningBench,
    experiments: &[Experiment],
    skipped: &[String],
    total: f64,
    chart_name: &str,
) -> String {
    let mut out = String::new();
    let date = chrono::Utc::now().format("%Y-%m-%d");
    let kinds = args
        .kinds
        .iter()
        .map(|kind| kind.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let _ = writeln!(
        out,
        "## Active learning: labels needed to reach 95% of the full-data accuracy\n"
    );
    let _ = writeln!(
        out,
        "Command: `cargo run --release --bin bench -- active-learning --seeds {} --kinds {kinds}` · {date} · \
         {} · whole run {:.1} min (embeddings are cached on disk after the first run; the time includes \
         computing them only when the cache was empty).\n",
        args.seeds,
        machine(),
        total / 60.0,
    );
    let _ = writeln!(
        out,
        "Simulated labelling: a random seed set of the train split (the same for every strategy of a seed), \
         then batches chosen by each strategy from the rest of the train split, the dataset's labels playing \
         the labeller; after each batch the model is trained again from scratch on the labelled tickets and \
         scored on the whole test split. Curves are the mean of {} seeds. \"Labels to 95%\" is where the mean \
         accuracy curve first reaches 95% of the accuracy of the same model trained on the whole train split \
         (interpolated between measured points); the saving is against random. Models: `encoder-head` = the \
         tagger's `fit_head` ({HEAD_STEPS} Adam steps, no early stopping) on frozen MiniLM embeddings; `ngram` = \
         the tagger's `train_ngram` ({NGRAM_EPOCHS} epochs, no refit). `diverse` = margin-weighted k-means++ over \
         the {}× most uncertain tickets.\n",
        args.seeds,
        trainer::active::select::DIVERSE_CANDIDATES_PER_PICK,
    );
    for experiment in experiments {
        let random = experiment.reached(Strategy::Random);
        let _ = writeln!(
            out,
            "### {}, `{}`: full data accuracy {:.3}, macro-F1 {:.3}; target accuracy {:.3}\n",
            experiment.title,
            experiment.kind,
            experiment.full.0,
            experiment.full.1,
            experiment.target()
        );
        let _ = writeln!(
            out,
            "Seed set {}, batches of {}, up to {} labels; {:.1} min for this part.\n",
            experiment.seed_size,
            experiment.batch,
            experiment.budget,
            experiment.seconds / 60.0
        );
        let checkpoints: Vec<usize> = {
            let labels: Vec<usize> = experiment.curves[0].1.iter().map(|p| p.labels).collect();
            let picks = [
                labels.len() / 4,
                labels.len() / 2,
                labels.len().saturating_sub(1),
            ];
            picks
                .iter()
                .filter_map(|&i| labels.get(i).copied())
                .collect()
        };
        let heads: Vec<String> = checkpoints
            .iter()
            .map(|c| format!("accuracy @ {c}"))
            .collect();
        let _ = writeln!(
            out,
            "| strategy | labels to 95% | saving vs random | {} | macro-F1 @ {} |",
            heads.join(" | "),
            checkpoints.last().copied().unwrap_or(0)
        );
        let _ = writeln!(out, "|---|---|---|{}---|", "---|".repeat(heads.len()));
        for (strategy, curve) in &experiment.curves {
            let reached = labels_to_reach(curve, experiment.target());
            let at = |labels: usize| curve.iter().find(|p| p.labels == labels);
            let cells: Vec<String> = checkpoints
                .iter()
                .map(|&c| at(c).map_or("—".into(), |p| format!("{:.3}", p.accuracy)))
                .collect();
            let _ = writeln!(
                out,
                "| {strategy} | {} | {} | {} | {} |",
                labels_cell(reached, experiment.budget),
                if *strategy == Strategy::Random {
                    "—".into()
                } else {
                    saving_cell(reached, random, experiment.budget)
                },
                cells.join(" | "),
                curve
                    .last()
                    .map_or("—".into(), |p| format!("{:.3}", p.macro_f1))
            );
        }
        out.push('\n');
    }
    if let Some(b77) = experiments
        .iter()
        .find(|e| e.title == "BANKING77" && e.kind == ModelKind::EncoderHead)
    {
        let random = b77.reached(Strategy::Random);
        let best = b77
            .curves
            .iter()
            .filter(|(s, _)| *s != Strategy::Random)
            .filter_map(|(s, _)| b77.reached(*s).map(|l| (*s, l)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let verdict = match (best, random) {
            (Some((strategy, labels)), Some(random)) => {
                let saving = 1.0 - labels / random;
                format!(
                    "Target (≥ {:.0}% fewer labels than random on BANKING77 with `encoder-head`): best is `{strategy}` \
                     with {labels:.0} labels against {random:.0} for random, {:.0}% fewer — {}.",
                    TARGET_SAVING * 100.0,
                    saving * 100.0,
                    if saving >= TARGET_SAVING {
                        "met"
                    } else {
                        "missed"
                    }
                )
            }
            (Some((strategy, labels)), None) => format!(
                "Target: `{strategy}` reached 95% with {labels:.0} labels; random did not within {} labels, so the \
                 saving is at least {:.0}%.",
                b77.budget,
                (1.0 - labels / b77.budget as f64) * 100.0
            ),
            _ => "Target: no strategy reached 95% of the full-data accuracy within the budget."
                .into(),
        };
        let _ = writeln!(out, "{verdict}\n");
    }
    for note in skipped {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(
        out,
        "![Learning curves: test accuracy against labels, mean of the seeds]({chart_name})\n"
    );
    out
}

const COLOURS: [(&str, &str); 7] = [
    ("random", "#6b7280"),
    ("least-confidence", "#2563eb"),
    ("margin", "#dc2626"),
    ("entropy", "#16a34a"),
    ("diverse", "#9333ea"),
    ("disagreement", "#ea580c"),
    ("cold-start", "#0891b2"),
];

fn colour(strategy: Strategy) -> &'static str {
    COLOURS
        .iter()
        .find(|(name, _)| *name == strategy.as_str())
        .map_or("#000000", |(_, c)| c)
}

/// Round step for about `ticks` intervals over `span`.
fn nice_step(span: f64, ticks: f64) -> f64 {
    let raw = (span / ticks).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    let scaled = raw / magnitude;
    let nice = if scaled <= 1.0 {
        1.0
    } else if scaled <= 2.0 {
        2.0
    } else if scaled <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One panel per dataset and kind, 2 per row: axes with ticks, the 95% target dashed, a legend.
fn chart(experiments: &[Experiment]) -> String {
    const PANEL_W: f64 = 480.0;
    const PANEL_H: f64 = 320.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 34.0;
    const BOTTOM: f64 = 44.0;
    let columns = experiments.len().clamp(1, 2);
    let rows = experiments.len().div_ceil(2);
    let legend_h = 30.0;
    let width = PANEL_W * columns as f64;
    let height = PANEL_H * rows as f64 + legend_h;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    );
    for (n, experiment) in experiments.iter().enumerate() {
        let x0 = PANEL_W * (n % 2) as f64;
        let y0 = PANEL_H * (n / 2) as f64;
        let (plot_x, plot_y) = (x0 + LEFT, y0 + TOP);
        let (plot_w, plot_h) = (PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
        let points: Vec<&Point> = experiment
            .curves
            .iter()
            .flat_map(|(_, c)| c.iter())
            .collect();
        let max_labels = points.iter().map(|p| p.labels).max().unwrap_or(1).max(1) as f64;
        let low = points
            .iter()
            .map(|p| p.accuracy)
            .fold(f64::INFINITY, f64::min)
            .min(experiment.target());
        let high = points
            .iter()
            .map(|p| p.accuracy)
            .fold(0.0, f64::max)
            .max(experiment.full.0);
        let y_step = nice_step(high - low, 5.0);
        let y_min = (low / y_step).floor() * y_step;
        let y_max = (high / y_step).ceil() * y_step;
        let sx = |labels: f64| plot_x + labels / max_labels * plot_w;
        let sy = |accuracy: f64| {
            plot_y + plot_h - (accuracy - y_min) / (y_max - y_min).max(1e-9) * plot_h
        };
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="13" font-weight="bold">{} · {}</text>"#,
            x0 + PANEL_W / 2.0,
            y0 + 20.0,
            escape(&experiment.title),
            experiment.kind
        );
        // Axes.
        let _ = writeln!(
            svg,
            r##"<path d="M{plot_x},{plot_y} V{} H{}" fill="none" stroke="#111827"/>"##,
            plot_y + plot_h,
            plot_x + plot_w
        );
        let x_step = nice_step(max_labels, 5.0);
        let mut tick = 0.0;
        while tick <= max_labels + 1e-9 {
            let x = sx(tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#111827"/><text x="{x:.1}" y="{}" text-anchor="middle">{tick:.0}</text>"##,
                plot_y + plot_h,
                plot_y + plot_h + 5.0,
                plot_y + plot_h + 17.0
            );
            tick += x_step;
        }
        let mut tick = y_min;
        while tick <= y_max + 1e-9 {
            let y = sy(tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{}" y1="{y:.1}" x2="{plot_x}" y2="{y:.1}" stroke="#111827"/><line x1="{plot_x}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e5e7eb"/><text x="{}" y="{:.1}" text-anchor="end">{tick:.2}</text>"##,
                plot_x - 5.0,
                plot_x + plot_w,
                plot_x - 8.0,
                y + 4.0
            );
            tick += y_step;
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">labelled tickets</text>"#,
            plot_x + plot_w / 2.0,
            plot_y + plot_h + 34.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">test accuracy</text>"#,
            x0 + 14.0,
            plot_y + plot_h / 2.0,
            x0 + 14.0,
            plot_y + plot_h / 2.0
        );
        // The target: 95% of the full-data accuracy.
        let target_y = sy(experiment.target());
        let _ = writeln!(
            svg,
            r##"<line x1="{plot_x}" y1="{target_y:.1}" x2="{}" y2="{target_y:.1}" stroke="#111827" stroke-dasharray="4 3"/><text x="{}" y="{:.1}" text-anchor="end">95% of full data ({:.3})</text>"##,
            plot_x + plot_w,
            plot_x + plot_w - 4.0,
            target_y - 4.0,
            experiment.target()
        );
        for (strategy, curve) in &experiment.curves {
            let path: Vec<String> = curve
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    format!(
                        "{}{:.1},{:.1}",
                        if i == 0 { "M" } else { "L" },
                        sx(p.labels as f64),
                        sy(p.accuracy)
                    )
                })
                .collect();
            let _ = writeln!(
                svg,
                r#"<path d="{}" fill="none" stroke="{}" stroke-width="{}"/>"#,
                path.join(" "),
                colour(*strategy),
                if *strategy == Strategy::Random {
                    2.5
                } else {
                    1.6
                }
            );
        }
    }
    // One legend for all panels.
    let strategies: Vec<Strategy> = {
        let mut seen = Vec::new();
        for (strategy, _) in experiments.iter().flat_map(|e| e.curves.iter()) {
            if !seen.contains(strategy) {
                seen.push(*strategy);
            }
        }
        seen
    };
    let legend_y = PANEL_H * rows as f64 + 18.0;
    for (i, strategy) in strategies.iter().enumerate() {
        let x = 20.0 + i as f64 * 130.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{strategy}</text>"#,
            legend_y - 4.0,
            x + 24.0,
            legend_y - 4.0,
            colour(*strategy),
            x + 30.0,
            legend_y
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(labels: usize, accuracy: f64) -> Point {
        Point {
            labels,
            accuracy,
            macro_f1: accuracy,
        }
    }

    #[test]
    fn labels_to_reach_interpolates_between_the_points_around_the_target() {
        let curve = [point(100, 0.5), point(200, 0.7), point(300, 0.9)];
        assert!((labels_to_reach(&curve, 0.8).unwrap() - 250.0).abs() < 1e-9);
        assert_eq!(labels_to_reach(&curve, 0.4), Some(100.0));
        assert_eq!(labels_to_reach(&curve, 0.95), None);
    }

    #[test]
    fn quality_gives_accuracy_and_macro_f1_over_present_classes() {
        // Class 0: tp 1, predicted 2, actual 1 → F1 2/3. Class 1: tp 1, predicted 1, actual 2 → 2/3.
        let (accuracy, macro_f1) = quality(&[0, 0, 1], &[0, 1, 1], 3);
        assert!((accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert!((macro_f1 - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn the_chart_has_axes_a_target_line_and_a_legend_entry_per_strategy() {
        let experiment = Experiment {
            title: "Demo <set>".into(),
            kind: ModelKind::Ngram,
            full: (0.9, 0.9),
            budget: 300,
            batch: 100,
            seed_size: 100,
            curves: vec![
                (Strategy::Random, vec![point(100, 0.5), point(300, 0.8)]),
                (Strategy::Margin, vec![point(100, 0.5), point(300, 0.88)]),
            ],
            seconds: 1.0,
        };
        let svg = chart(std::slice::from_ref(&experiment));
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Demo &lt;set&gt; · ngram"));
        assert!(svg.contains("95% of full data (0.855)"));
        assert!(svg.contains(">random</text>") && svg.contains(">margin</text>"));
        assert!(svg.contains("labelled tickets") && svg.contains("test accuracy"));
        assert_eq!(svg.matches("stroke-width=\"1.6\"").count(), 1);
    }
}
