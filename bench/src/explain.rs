//! `bench explain`: what explaining a verdict (`inference::explain`, the API's
//! `?explain=true`) costs per ticket for each model kind, against plain scoring of the same
//! ticket by the same model in the same run. Models are trained in memory on each shared
//! dataset's train split (the encoder kinds on a slice of it: the cost of an explanation
//! depends on the model's shape and the ticket's length, not on how well it was trained), and
//! timed on its test tickets one at a time, as the API serves a single request.

use super::{Markers, load_average, machine, write_section};
use anyhow::{Context, bail};
use clap::Args;
use datasets::{LabelMode, ModelKind, TagId, TagName, TicketId};
use inference::TaggingModel;
use inference::card::{CARD_FORMAT, ModelCard, TagRef};
use inference::encoder::head::{EncoderHeadModel, LinearHead};
use inference::encoder::hub::{DEFAULT_ENCODER_REPO, HubCache};
use inference::encoder::{Encoder, EncoderFiles, EncoderOptions};
use inference::explain::{DEFAULT_TOP_WORDS, MAX_OCCLUDED_WORDS};
use inference::heads::Heads;
use inference::model::Scorer;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trainer::encoder_head::{EncoderHeadParams, fit_head};
use trainer::examples::Example;
use trainer::finetune::{FinetuneParams, finetune_until};
use trainer::ngram::{NgramParams, train_ngram};

const MARKERS: Markers = Markers {
    start: "<!-- bench:explain:start -->",
    end: "<!-- bench:explain:end -->",
};

/// Train tickets the encoder kinds are fitted on.
const ENCODER_TRAIN_TICKETS: usize = 1000;
/// Gradient steps of the short fine-tuning that gives the `finetune` model its own weights.
const FINETUNE_STEPS: usize = 8;

#[derive(Debug, Args)]
pub struct ExplainBench {
    /// Folder with one sub-folder per dataset, as described in its README.md.
    #[arg(long, default_value = "../shared/datasets")]
    datasets_dir: PathBuf,
    /// Test tickets timed per dataset and kind (the first ones of the file).
    #[arg(long, default_value_t = 100)]
    tickets: usize,
    /// Model kinds to measure, comma-separated (the encoder kinds need all-MiniLM-L6-v2 in
    /// the hub cache and are skipped, saying so, without it).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ngram,encoder-head,finetune"
    )]
    kinds: Vec<ModelKind>,
    /// Markdown file whose explanation section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
}

/// A dataset: folder, title, text and label columns.
const DATASETS: [(&str, &str, &str, &str); 2] = [
    ("banking77", "BANKING77", "text", "category"),
    (
        "ticket-tagger-issues",
        "Ticket Tagger issues",
        "text",
        "label",
    ),
];

/// One kind on one dataset.
struct Measured {
    kind: ModelKind,
    tickets: usize,
    words: Percentiles,
    plain: Percentiles,
    explained: Percentiles,
    /// Tickets whose words outnumbered the occlusion cap.
    capped: usize,
}

/// Median and 95th percentile.
#[derive(Clone, Copy)]
struct Percentiles {
    median: f64,
    p95: f64,
}

fn percentiles(mut values: Vec<f64>) -> Percentiles {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Percentiles {
        median: at(0.5),
        p95: at(0.95),
    }
}

pub fn run(args: &ExplainBench) -> anyhow::Result<()> {
    if args.tickets == 0 {
        bail!("--tickets must be at least 1");
    }
    let load_before = load_average();
    let encoder_files = match HubCache::from_env().snapshot(DEFAULT_ENCODER_REPO, None) {
        Ok(snapshot) => Ok(EncoderFiles::read(&snapshot, None)?),
        Err(error) => {
            let reason = format!(
                "{DEFAULT_ENCODER_REPO} is not in the hub cache ({error}); \
                 `HF_HOME=~/.cache/huggingface ../shared/models/fetch-minilm.sh` puts it there"
            );
            println!("encoder kinds skipped: {reason}");
            Err(reason)
        }
    };
    let mut tables = String::new();
    let mut skipped = String::new();
    for (folder, title, text_column, label_column) in DATASETS {
        let dir = args.datasets_dir.join(folder);
        if !dir.join("train.csv").is_file() || !dir.join("test.csv").is_file() {
            println!("{title}: skipped, its train.csv or test.csv is absent");
            writeln!(skipped, "- {title}: skipped, its files are absent.")?;
            continue;
        }
        let data = Data::read(&dir, text_column, label_column)?;
        let mut rows = String::new();
        for &kind in &args.kinds {
            let files = match (kind.info().needs_encoder, &encoder_files) {
                (true, Err(reason)) => {
                    writeln!(skipped, "- {title}, `{kind}`: skipped, {reason}.")?;
                    continue;
                }
                (_, files) => files.as_ref().ok(),
            };
            eprintln!("{title}: training {kind} (load average {})", load_average());
            let model = data.train(kind, files)?;
            eprintln!("{title}: timing {kind} on {} tickets", args.tickets);
            let measured = measure(&model, kind, &data.test_texts(args.tickets))?;
            let line = row(&measured);
            print!("{line}");
            rows.push_str(&line);
        }
        if !rows.is_empty() {
            write!(
                tables,
                "### {title}\n\n\
                 | kind | tickets | words per ticket (median / p95) | plain scoring (median / p95) | explained (median / p95) | explained ÷ plain (medians) | tickets past the 64-word cap |\n\
                 |---|---:|---:|---:|---:|---:|---:|\n{rows}\n"
            )?;
        }
    }
    let section = format!(
        "## Explanations\n\n\
         Measured {date} on {machine} (load average {load_before} before, {load_after} after), with:\n\n\
         ```sh\n{command}\n```\n\n\
         What `?explain=true` adds to one ticket's verdict: `TaggingModel::explain` for the \
         best-scored tag ({top} words listed) against plain scoring of the same ticket by the same \
         model (`logits_batch` of that one text), both timed per ticket on the first {tickets} test \
         tickets of each dataset, one at a time as the API serves a single request. `ngram` \
         is exact (a pass over the ticket's features); the encoder kinds are occlusion: the \
         ticket plus one variant per word (at most {cap} words), scored in one batch on the \
         encoder's 2 threads. The models are trained in memory on the train split: `ngram` on \
         all of it (10 epochs); `encoder-head` a head on all-MiniLM-L6-v2 embeddings of the first \
         {encoder_train} train tickets (128-token budget); `finetune` {steps} fine-tuning steps \
         on the same tickets (its 64-token budget): what an explanation costs depends on the \
         model's shape and the ticket, not on how well it was trained.\n\n{tables}{skipped}",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = machine(),
        load_after = load_average(),
        command = command(args),
        tickets = args.tickets,
        top = DEFAULT_TOP_WORDS,
        cap = MAX_OCCLUDED_WORDS,
        encoder_train = ENCODER_TRAIN_TICKETS,
        steps = FINETUNE_STEPS,
    );
    write_section(&args.output, &section, MARKERS, None)
}

/// The command that made the table (from the repository root, where the datasets folder
/// and the output file are at their defaults), with the profile it was built in. Everything
/// timed here is `inference` and `trainer` code and the encoder's dependencies, which the dev
/// profile builds at opt-level 3 too (the workspace's Cargo.toml); only debug assertions
/// differ.
fn command(args: &ExplainBench) -> String {
    let kinds: Vec<String> = args.kinds.iter().map(ToString::to_string).collect();
    let settings = format!(
        "explain --tickets {} --kinds {}",
        args.tickets,
        kinds.join(",")
    );
    if cfg!(debug_assertions) {
        format!(
            "HF_HOME=~/.cache/huggingface cargo run --bin bench -- {settings}   # dev profile: inference, trainer and dependencies at opt-level 3, debug assertions on"
        )
    } else {
        format!(
            "cargo build --release --bins && HF_HOME=~/.cache/huggingface cargo run --release --bin bench -- {settings}"
        )
    }
}

fn row(measured: &Measured) -> String {
    format!(
        "| `{}` | {} | {:.0} / {:.0} | {} / {} | {} / {} | {:.1}× | {} |\n",
        measured.kind,
        measured.tickets,
        measured.words.median,
        measured.words.p95,
        human(measured.plain.median),
        human(measured.plain.p95),
        human(measured.explained.median),
        human(measured.explained.p95),
        measured.explained.median / measured.plain.median.max(1e-12),
        measured.capped,
    )
}

/// Times plain scoring and explaining of each text, one text at a time, alternating so that
/// a busy moment of the shared machine falls on both.
fn measure(model: &TaggingModel, kind: ModelKind, texts: &[String]) -> anyhow::Result<Measured> {
    let mut plain = Vec::with_capacity(texts.len());
    let mut explained = Vec::with_capacity(texts.len());
    let mut words = Vec::with_capacity(texts.len());
    let mut capped = 0;
    // One warm-up of each: the first call allocates the encoder's buffers.
    if let Some(text) = texts.first() {
        model.logits_batch(&[text])?;
        model.explain(text, &[0], DEFAULT_TOP_WORDS)?;
    }
    for text in texts {
        let started = Instant::now();
        let logits = model.logits_batch(&[text])?;
        plain.push(started.elapsed().as_secs_f64());
        let best = logits
            .first()
            .and_then(|row| {
                row.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i)
            })
            .unwrap_or(0);
        let started = Instant::now();
        let explanation = model.explain(text, &[best], DEFAULT_TOP_WORDS)?;
        explained.push(started.elapsed().as_secs_f64());
        let first = explanation.first().context("no explanation")?;
        words.push(first.words_total as f64);
        if first.words_examined < first.words_total {
            capped += 1;
        }
    }
    Ok(Measured {
        kind,
        tickets: texts.len(),
        words: percentiles(words),
        plain: percentiles(plain),
        explained: percentiles(explained),
        capped,
    })
}

/// A dataset's examples, its classes, and the test texts as the model reads them.
struct Data {
    classes: Vec<String>,
    train: Vec<Example>,
    test: Vec<Example>,
}

impl Data {
    fn read(dir: &Path, text_column: &str, label_column: &str) -> anyhow::Result<Self> {
        let train = crate::normalise::read_rows(&dir.join("train.csv"), text_column, label_column)?;
        let test = crate::normalise::read_rows(&dir.join("test.csv"), text_column, label_column)?;
        let classes: BTreeSet<&str> = train.iter().map(|(_, label)| label.as_str()).collect();
        let index: BTreeMap<&str, usize> =
            classes.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        let examples = |rows: &[(String, String)]| -> Vec<Example> {
            rows.iter()
                .enumerate()
                .map(|(i, (text, label))| Example {
                    ticket: TicketId(i as i64),
                    // An imported text column is the body, read as any ticket is.
                    text: datasets::ticket::model_text("", text),
                    targets: index
                        .get(label.as_str())
                        .map(|&c| vec![c])
                        .unwrap_or_default(),
                })
                .collect()
        };
        Ok(Self {
            classes: classes.iter().map(|c| c.to_string()).collect(),
            train: examples(&train),
            test: examples(&test),
        })
    }

    fn test_texts(&self, count: usize) -> Vec<String> {
        self.test
            .iter()
            .take(count)
            .map(|e| e.text.clone())
            .collect()
    }

    fn card(&self, kind: ModelKind) -> anyhow::Result<ModelCard> {
        let tags = self
            .classes
            .iter()
            .enumerate()
            .map(|(i, class)| {
                // Dataset labels are not always valid tag names (`reverted_card_payment?`);
                // the card only needs distinct ones.
                let name =
                    TagName::parse(class).or_else(|_| TagName::parse(&format!("class-{i}")))?;
                Ok(TagRef {
                    id: TagId(i as i64 + 1),
                    name,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(ModelCard {
            format: CARD_FORMAT,
            kind,
            label_mode: LabelMode::Single,
            groups: Vec::new(),
            thresholds: vec![0.5; tags.len()],
            tags,
            temperature: 1.0,
            params: serde_json::json!({}),
            training_fingerprint: String::new(),
            ngram: None,
            encoder: None,
            out_of_distribution: None,
        })
    }

    /// A model of `kind` trained in memory (see the module's comment for how much).
    fn train(&self, kind: ModelKind, files: Option<&EncoderFiles>) -> anyhow::Result<TaggingModel> {
        let mut card = self.card(kind)?;
        let outputs = self.classes.len();
        let options = EncoderOptions::default();
        let slice: Vec<&Example> = self.train.iter().take(ENCODER_TRAIN_TICKETS).collect();
        let files = || files.context("the encoder kinds need the encoder's files");
        let scorer = match kind {
            ModelKind::Ngram => {
                let params = NgramParams {
                    epochs: 10,
                    refit: false,
                    ..NgramParams::default()
                };
                let fitted =
                    train_ngram(&Heads::SINGLE, outputs, &self.train, &[], &params, |_| {});
                card.ngram = Some(fitted.model.shape);
                Scorer::Ngram(fitted.model)
            }
            ModelKind::EncoderHead => {
                let encoder = Encoder::from_files(files()?, &options)?;
                let texts: Vec<&str> = slice.iter().map(|e| e.text.as_str()).collect();
                let embeddings: HashMap<TicketId, Vec<f32>> = slice
                    .iter()
                    .map(|e| e.ticket)
                    .zip(encoder.embed(&texts)?)
                    .collect();
                let params = EncoderHeadParams::default();
                let fitted = fit_head(
                    &Heads::SINGLE,
                    outputs,
                    encoder.dim(),
                    &embeddings,
                    &slice,
                    &[],
                    &params,
                    params.epochs,
                    |_| {},
                )?;
                card.encoder = Some(encoder.spec().clone());
                encoder_scorer(encoder, fitted.head)
            }
            ModelKind::Finetune => {
                let params = FinetuneParams {
                    max_steps: Some(FINETUNE_STEPS),
                    linear_probe: false,
                    ..FinetuneParams::default()
                };
                let start = Encoder::from_files(
                    files()?,
                    &EncoderOptions {
                        max_tokens: params.max_tokens,
                        ..options
                    },
                )?;
                let tuned = finetune_until(
                    &start,
                    files()?,
                    &Heads::SINGLE,
                    outputs,
                    &slice,
                    &[],
                    None,
                    &params,
                    |_| ControlFlow::Continue(()),
                    |_| ControlFlow::Continue(()),
                )?;
                let encoder = Encoder::from_files(
                    &tuned.files,
                    &EncoderOptions {
                        max_tokens: params.max_tokens,
                        ..options
                    },
                )?;
                card.encoder = Some(encoder.spec().clone());
                encoder_scorer(encoder, tuned.head)
            }
            // Explained as `finetune` is (a tuned encoder and a head): nothing new to measure.
            ModelKind::Setfit => anyhow::bail!("the explanation bench does not train setfit"),
        };
        Ok(TaggingModel { card, scorer })
    }
}

fn encoder_scorer(encoder: Encoder, head: LinearHead) -> Scorer {
    Scorer::EncoderHead(EncoderHeadModel {
        encoder: Arc::new(encoder),
        head,
        centroids: Vec::new(),
    })
}

fn human(seconds: f64) -> String {
    let duration = Duration::from_secs_f64(seconds);
    let micros = duration.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.1} µs")
    } else {
        format!("{:.1} ms", micros / 1000.0)
    }
}
