//! `bench normalise`: what ticket text normalisation (`datasets::text`) costs per ticket, on
//! a 2 KB reply with a stack trace and a quoted message and on 5 MB pastes, and what it
//! changes in `ngram`, `encoder-head`, `finetune` and `setfit` accuracy on the shared datasets: the same model,
//! seed and split trained and scored once on the raw text and once on the normalised text,
//! in memory.

use super::{Markers, machine, write_section};
use anyhow::Context;
use clap::Args;
use datasets::TicketId;
use inference::ModelKind;
use inference::encoder::head::EncoderHeadModel;
use inference::encoder::hub::{DEFAULT_ENCODER_REPO, HubCache};
use inference::encoder::{Encoder, EncoderFiles};
use inference::heads::Heads;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trainer::encoder_head::{EncoderHeadParams, fit_head};
use trainer::examples::Example;
use trainer::finetune::{FinetuneParams, finetune_until, linear_probe};
use trainer::ngram::{NgramParams, train_ngram};
use trainer::setfit::{SetfitParams, sample_pairs, tune_encoder_until};

const MARKERS: Markers = Markers {
    start: "<!-- bench:normalise:start -->",
    end: "<!-- bench:normalise:end -->",
};

/// Where the fixture tickets live, from the repository root.
const FIXTURES: &str = "datasets/tests/fixtures/normalise";

#[derive(Debug, Args)]
pub struct NormaliseBench {
    /// Folder with one sub-folder per dataset, as described in its README.md.
    #[arg(long, default_value = "../shared/datasets")]
    datasets_dir: PathBuf,
    /// Markdown file whose normalisation section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
    /// Model kinds whose accuracy is compared on raw and normalised text, comma-separated
    /// (the encoder kinds need all-MiniLM-L6-v2 in the hub cache; `finetune` runs on the
    /// datasets `--finetune-datasets` names).
    #[arg(long, value_delimiter = ',', default_value = "ngram,encoder-head")]
    kinds: Vec<ModelKind>,
    /// Dataset folders `finetune` and `setfit` are measured on when `--kinds` names them
    /// (one run takes 15–40 minutes on two cores, two per dataset). A dataset where normalisation changes
    /// no text's token ids is not trained at all: both runs would be the same model.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "banking77,ticket-tagger-issues,clinc150"
    )]
    finetune_datasets: Vec<String>,
    /// Stop each `finetune` run after this many steps: a short slice that checks the path
    /// works, whose rows say they are not a full run.
    #[arg(long)]
    finetune_max_steps: Option<usize>,
}

/// A dataset: folder, title, text and label columns.
const DATASETS: [(&str, &str, &str, &str); 3] = [
    ("banking77", "BANKING77", "text", "category"),
    (
        "ticket-tagger-issues",
        "Ticket Tagger issues",
        "text",
        "label",
    ),
    // train.csv and test.csv hold the in-scope queries only (the out-of-scope ones are in
    // files of their own), so this is the 150-intent task `bench ood` trains on.
    ("clinc150", "CLINC150 (in-scope)", "text", "intent"),
];

pub fn run(args: &NormaliseBench) -> anyhow::Result<()> {
    let fixture = |name: &str| {
        let path = Path::new(FIXTURES).join(name);
        std::fs::read_to_string(&path).context(format!("cannot read {}", path.display()))
    };
    let two_kb = format!(
        "{}\n{}",
        fixture("java_trace.txt")?,
        fixture("gmail_reply.txt")?
    );
    let log = fixture("log_dump.txt")?;
    let html = fixture("gmail_reply.html")?;
    let five_mb = |unit: &str| unit.repeat((5 << 20) / unit.len() + 1);
    let cases = [
        ("reply with a Java trace and a quote", two_kb.clone(), 2000),
        ("5 MB log paste", five_mb(&log), 5),
        ("5 MB of HTML mail", five_mb(&html), 5),
        ("5 MB of one repeated word", five_mb("word "), 5),
    ];
    let mut cost =
        String::from("| input | bytes | median per ticket | throughput |\n|---|---:|---:|---:|\n");
    for (name, text, runs) in &cases {
        let median = median_time(*runs, || datasets::text::normalise_body(text).len());
        let line = format!(
            "| {name} | {} | {} | {:.0} MB/s |\n",
            text.len(),
            human(median),
            text.len() as f64 / median.as_secs_f64() / 1e6
        );
        print!("{line}");
        cost.push_str(&line);
    }
    let normalised = datasets::ticket::model_text("", &two_kb);
    let detect = median_time(2000, || {
        usize::from(datasets::language::detect_language(&normalised).is_some())
    });
    writeln!(
        cost,
        "\nLanguage detection (`whatlang`, first 2 KiB) on the normalised 2 KB reply: {} per ticket.",
        human(detect)
    )?;

    let needs_encoder = args.kinds.iter().any(|kind| kind.info().needs_encoder);
    let encoder = if needs_encoder {
        match Encoder::load(
            &HubCache::from_env(),
            DEFAULT_ENCODER_REPO,
            &EncoderHeadParams::default().encoder_options(),
        ) {
            Ok(encoder) => Some(encoder),
            Err(error) => {
                println!(
                    "encoder kinds skipped: {DEFAULT_ENCODER_REPO} is not in the hub cache ({error}); \
                     `HF_HOME=~/.cache/huggingface ../shared/models/fetch-minilm.sh` puts it there"
                );
                None
            }
        }
    } else {
        None
    };
    // The tokenizers the tuned-encoder kinds read with (their own token budget, shorter
    // than `encoder-head`'s): where normalisation changes no text's token ids, raw and
    // normalised runs would train the same model from the same inputs and seed, so none is
    // trained.
    let mut tuned_tokenizers = HashMap::new();
    if encoder.is_some() {
        for (kind, options) in [
            (
                ModelKind::Finetune,
                FinetuneParams::default().encoder_options(),
            ),
            (ModelKind::Setfit, SetfitParams::default().encoder_options()),
        ] {
            if args.kinds.contains(&kind) {
                tuned_tokenizers.insert(kind, Encoder::from_files(&encoder_files()?, &options)?);
            }
        }
    }
    let features = NgramParams::default().features;
    let mut accuracy = String::from(
        "| dataset | test tickets | texts normalisation changes (train + test) | kind | texts whose model input changes | accuracy, raw text | normalised | change |\n\
         |---|---:|---:|---|---:|---:|---:|---:|\n",
    );
    for (folder, title, text_column, label_column) in DATASETS {
        let dir = args.datasets_dir.join(folder);
        if !dir.join("train.csv").is_file() {
            println!("{title}: skipped, {} is absent", dir.display());
            continue;
        }
        let train = read_rows(&dir.join("train.csv"), text_column, label_column)?;
        let test = read_rows(&dir.join("test.csv"), text_column, label_column)?;
        let pairs: Vec<(String, String)> = train
            .iter()
            .chain(&test)
            .map(|(text, _)| (raw_text(text), datasets::ticket::model_text("", text)))
            .collect();
        let (mut changed, mut beyond_whitespace) = (0, 0);
        for (raw, clean) in &pairs {
            if clean != raw {
                changed += 1;
                // Words, not spacing: what HTML, quotes, signatures and traces remove.
                if !clean.split_whitespace().eq(raw.split_whitespace()) {
                    beyond_whitespace += 1;
                }
            }
        }
        let changed = format!(
            "{changed} of {} ({:.1}%), {beyond_whitespace} beyond whitespace",
            pairs.len(),
            100.0 * changed as f64 / pairs.len().max(1) as f64
        );
        // One memory of embeddings per dataset: a text normalisation leaves as it was is
        // embedded once for both runs.
        let mut embedded = HashMap::new();
        for &kind in &args.kinds {
            // What each kind actually reads of a text: its hashed n-grams, or its word
            // pieces within its token budget.
            let inputs_changed = match kind {
                ModelKind::Ngram => count_changed(&pairs, |text| Ok(features.extract(text)))?,
                ModelKind::EncoderHead => {
                    let Some(encoder) = &encoder else { continue };
                    count_changed(&pairs, |text| Ok(encoder.tokenize(text)?))?
                }
                ModelKind::Finetune | ModelKind::Setfit => {
                    let Some(tokens) = tuned_tokenizers.get(&kind) else {
                        continue;
                    };
                    if !args.finetune_datasets.iter().any(|d| d == folder) {
                        continue;
                    }
                    count_changed(&pairs, |text| Ok(tokens.tokenize(text)?))?
                }
            };
            let (raw, clean) = match kind {
                ModelKind::Ngram => (
                    ngram_accuracy(&train, &test, raw_text)?,
                    ngram_accuracy(&train, &test, |text| datasets::ticket::model_text("", text))?,
                ),
                ModelKind::EncoderHead => {
                    let Some(encoder) = &encoder else { continue };
                    eprintln!("{title}: encoder-head on the raw text");
                    let raw = head_accuracy(encoder, &mut embedded, &train, &test, raw_text)?;
                    eprintln!("{title}: encoder-head on the normalised text");
                    let clean = head_accuracy(encoder, &mut embedded, &train, &test, |text| {
                        datasets::ticket::model_text("", text)
                    })?;
                    (raw, clean)
                }
                ModelKind::Finetune | ModelKind::Setfit if inputs_changed == 0 => {
                    let line = format!(
                        "| {title} | {} | {changed} | `{kind}` | 0 | – | – | 0 (the same token ids: the same model) |\n",
                        test.len(),
                    );
                    print!("{line}");
                    accuracy.push_str(&line);
                    continue;
                }
                ModelKind::Finetune => {
                    let files = encoder_files()?;
                    eprintln!("{title}: finetune on the raw text");
                    let steps = args.finetune_max_steps;
                    let raw = finetune_accuracy(&files, &train, &test, steps, raw_text)?;
                    eprintln!("{title}: finetune on the normalised text");
                    let clean = finetune_accuracy(&files, &train, &test, steps, |text| {
                        datasets::ticket::model_text("", text)
                    })?;
                    (raw, clean)
                }
                ModelKind::Setfit => {
                    let files = encoder_files()?;
                    eprintln!("{title}: setfit on the raw text");
                    let raw = setfit_accuracy(&files, &train, &test, raw_text)?;
                    eprintln!("{title}: setfit on the normalised text");
                    let clean = setfit_accuracy(&files, &train, &test, |text| {
                        datasets::ticket::model_text("", text)
                    })?;
                    (raw, clean)
                }
            };
            let slice = match (kind, args.finetune_max_steps) {
                (ModelKind::Finetune, Some(steps)) => format!(" ({steps} steps only)"),
                _ => String::new(),
            };
            let line = format!(
                "| {title} | {} | {changed} | `{kind}`{slice} | {inputs_changed} | {raw:.4} | {clean:.4} | {:+.4} |\n",
                test.len(),
                clean - raw
            );
            print!("{line}");
            accuracy.push_str(&line);
        }
    }
    let measured: Vec<&str> = DATASETS
        .iter()
        .filter(|(folder, ..)| args.finetune_datasets.iter().any(|d| d == folder))
        .map(|(_, title, ..)| *title)
        .collect();
    let defaults = FinetuneParams::default();
    let finetune = if args.kinds.contains(&ModelKind::Finetune) && encoder.is_some() {
        let slice = args.finetune_max_steps.map_or(String::new(), |steps| {
            format!(
                " Its runs stopped after {steps} steps: a check that the path works, not a \
                 measurement of the full model."
            )
        });
        format!(
            "`finetune`: default parameters ({} epochs, {} tokens, the head started from a \
             linear probe), no validation split, so the weights after the last epoch; one run \
             fine-tunes MiniLM for 15–40 minutes per dataset on these 2 shared cores. It was \
             asked for on {}; a dataset where normalisation changes no text's token ids within \
             its {} tokens is not trained, since both runs would read the same inputs with the \
             same seed and make the same model.{slice}\n",
            defaults.epochs,
            defaults.max_tokens,
            if measured.is_empty() {
                "no dataset".to_string()
            } else {
                measured.join(", ")
            },
            defaults.max_tokens,
        )
    } else {
        "`finetune` is not measured in this run (`--kinds ngram,encoder-head,finetune` measures \
         it on the datasets `--finetune-datasets` names). It trains on the same `model_text` as \
         `encoder-head`, so it sees the same changed texts.\n"
            .to_string()
    };
    let setfit = if args.kinds.contains(&ModelKind::Setfit) && encoder.is_some() {
        let params = SetfitParams::default();
        format!(
            "\n`setfit`: default parameters (at most {} pairs of training tickets, {} pairs a step, \
             {} tokens, then `encoder-head`'s default head on the tuned encoder's embeddings for \
             all its epochs), no validation split, on the datasets `--finetune-datasets` names; \
             where no text's token ids change within its {} tokens it is not trained either.\n",
            params.max_pairs, params.pair_batch_size, params.max_tokens, params.max_tokens,
        )
    } else {
        String::new()
    };
    let section = format!(
        "## Text normalisation\n\nMeasured {} on {}, with:\n\n```sh\n{}\n```\n\n\
         Cost of `datasets::text::normalise_body` (HTML, quotes and signatures, traces, \
         whitespace, 16 KiB cap) per ticket; the target is under 0.2 ms for 2 KB and linear \
         growth.\n\n{cost}\n\
         Effect on accuracy: each kind trained in memory on each dataset's train split and scored \
         on its test split, once on the raw text (as before normalisation) and once as \
         `model_text` reads it now, with the same seed (42), parameters and split. `ngram`: \
         default parameters, no validation split. `encoder-head`: all-MiniLM-L6-v2 embeddings \
         (128 tokens, one window) and the default linear head, no validation split, so all \
         {epochs} epochs and no refit; its accuracy is therefore a little off the models table's, \
         which stops early on validation tickets. The datasets are one line per ticket \
         (newlines were flattened upstream), so the line-based steps (quotes, signatures, trace \
         blocks) rarely fire on them; the column of changed texts says how many texts normalisation \
         changes at all and how many beyond their spacing (HTML, quotes, signatures, traces), and \
         the kind's own column how many texts it reads differently (its hashed n-grams, or its \
         word pieces within its token budget). Real \
         help-desk mail has the reply chains and traces the fixtures show.\n\n{accuracy}\n\
         {finetune}{setfit}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        command(),
        epochs = EncoderHeadParams::default().epochs,
    );
    write_section(&args.output, &section, MARKERS, None)
}

/// The command that made the table, with the profile it was built in: a dev build leaves
/// `datasets` unoptimised, so its costs are upper bounds.
fn command() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if cfg!(debug_assertions) {
        format!(
            "cargo run --bin bench -- {}   # dev profile: datasets unoptimised, costs are upper bounds",
            args.join(" ")
        )
    } else {
        format!(
            "cargo build --release --bins && cargo run --release --bin bench -- {}",
            args.join(" ")
        )
    }
}

/// The median wall time of `runs` calls; the result is kept so the work is not optimised away.
fn median_time(runs: usize, mut work: impl FnMut() -> usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(work());
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn human(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.1} µs")
    } else {
        format!("{:.1} ms", micros / 1000.0)
    }
}

/// A dataset file's text and label columns, by name, in file order.
pub(crate) fn read_rows(
    path: &Path,
    text: &str,
    label: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut reader =
        csv::Reader::from_path(path).context(format!("cannot open {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .context(format!("{} has no column {name:?}", path.display()))
    };
    let (text, label) = (column(text)?, column(label)?);
    reader
        .records()
        .map(|record| {
            let record = record?;
            Ok((record[text].to_string(), record[label].to_string()))
        })
        .collect()
}

/// The text as it was read before normalisation: subject empty, body as it came.
/// How many (raw, normalised) pairs a kind reads differently, by what `read` makes of each.
fn count_changed<T: PartialEq>(
    pairs: &[(String, String)],
    read: impl Fn(&str) -> anyhow::Result<T>,
) -> anyhow::Result<usize> {
    let mut changed = 0;
    for (raw, clean) in pairs {
        if read(raw)? != read(clean)? {
            changed += 1;
        }
    }
    Ok(changed)
}

fn raw_text(text: &str) -> String {
    format!("\n{text}")
}

/// Top-1 accuracy of an `encoder-head` model trained and scored on texts made by `read`:
/// the default head over the frozen encoder, fitted for all its epochs (no validation
/// split, as the `ngram` rows). `embedded` keeps every text's embedding by text, so the
/// second reading embeds only the texts it changed.
fn head_accuracy(
    encoder: &Encoder,
    embedded: &mut HashMap<String, Vec<f32>>,
    train: &[(String, String)],
    test: &[(String, String)],
    read: impl Fn(&str) -> String,
) -> anyhow::Result<f64> {
    let (classes, train, test) = examples(train, test, read)?;
    let mut missing: Vec<&str> = train
        .iter()
        .chain(&test)
        .map(|e| e.text.as_str())
        .filter(|text| !embedded.contains_key(*text))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let started = Instant::now();
    let vectors = encoder.embed(&missing)?;
    eprintln!(
        "embedded {} texts in {:.1} s",
        missing.len(),
        started.elapsed().as_secs_f64()
    );
    for (text, vector) in missing.iter().zip(vectors) {
        embedded.insert((*text).to_string(), vector);
    }
    let by_ticket: HashMap<TicketId, Vec<f32>> = train
        .iter()
        .chain(&test)
        .map(|e| (e.ticket, embedded[&e.text].clone()))
        .collect();
    let params = EncoderHeadParams {
        seed: 42,
        refit: false,
        ..EncoderHeadParams::default()
    };
    let train_refs: Vec<&Example> = train.iter().collect();
    let fitted = encoder.install(|| {
        fit_head(
            &Heads::SINGLE,
            classes,
            encoder.dim(),
            &by_ticket,
            &train_refs,
            &[],
            &params,
            params.epochs,
            |_| {},
        )
    })?;
    let right = test
        .iter()
        .filter(|e| {
            let logits = fitted.head.logits(&by_ticket[&e.ticket]);
            e.targets.first() == Some(&arg_max(&logits))
        })
        .count();
    Ok(right as f64 / test.len().max(1) as f64)
}

fn arg_max(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// all-MiniLM-L6-v2's files from the hub cache, as a `finetune` run starts from them.
fn encoder_files() -> anyhow::Result<EncoderFiles> {
    let snapshot = HubCache::from_env().snapshot(DEFAULT_ENCODER_REPO, None)?;
    Ok(EncoderFiles::read(&snapshot, None)?)
}

/// Top-1 accuracy of a `finetune` model trained and scored on texts made by `read`, as a
/// `finetune` run fits it (linear probe, then encoder and head together with the default
/// parameters) but with no validation split, as the other rows: every epoch is kept.
fn finetune_accuracy(
    files: &EncoderFiles,
    train: &[(String, String)],
    test: &[(String, String)],
    max_steps: Option<usize>,
    read: impl Fn(&str) -> String,
) -> anyhow::Result<f64> {
    let (classes, train, test) = examples(train, test, read)?;
    let params = FinetuneParams {
        seed: 42,
        max_steps,
        ..FinetuneParams::default()
    };
    let options = params.encoder_options();
    let encoder = Encoder::from_files(files, &options)?;
    let train_refs: Vec<&Example> = train.iter().collect();
    let started = Instant::now();
    let probe = linear_probe(
        &encoder,
        &Heads::SINGLE,
        classes,
        &train_refs,
        &[],
        params.seed,
        |_, _| {},
    )?;
    eprintln!("linear probe in {:.0} s", started.elapsed().as_secs_f64());
    let trained = finetune_until(
        &encoder,
        files,
        &Heads::SINGLE,
        classes,
        &train_refs,
        &[],
        Some(&probe),
        &params,
        |step| {
            if step.step % 25 == 0 || step.step == step.steps {
                eprintln!(
                    "step {}/{} (epoch {}), loss {:.3}, {:.0} s",
                    step.step,
                    step.steps,
                    step.epoch,
                    step.loss,
                    started.elapsed().as_secs_f64()
                );
            }
            ControlFlow::Continue(())
        },
        |_| ControlFlow::Continue(()),
    )?;
    drop(encoder);
    // Scored as the product serves it: the tuned encoder's files loaded again, the head on top.
    let model = EncoderHeadModel {
        encoder: Arc::new(Encoder::from_files(&trained.files, &options)?),
        head: trained.head,
        centroids: Vec::new(),
    };
    let texts: Vec<&str> = test.iter().map(|e| e.text.as_str()).collect();
    let right = model
        .logits(&texts)?
        .iter()
        .zip(&test)
        .filter(|(logits, e)| e.targets.first() == Some(&arg_max(logits)))
        .count();
    Ok(right as f64 / test.len().max(1) as f64)
}

/// Top-1 accuracy of a `setfit` model trained and scored on texts made by `read`: the encoder
/// tuned on pairs of training tickets with the kind's defaults, then the default head on the
/// tuned encoder's embeddings for all its epochs (no validation split, as the other rows).
fn setfit_accuracy(
    files: &EncoderFiles,
    train: &[(String, String)],
    test: &[(String, String)],
    read: impl Fn(&str) -> String,
) -> anyhow::Result<f64> {
    let (_, examples, _) = examples(train, test, &read)?;
    let params = SetfitParams {
        seed: 42,
        ..SetfitParams::default()
    };
    let encoder = Encoder::from_files(files, &params.encoder_options())?;
    let labelled: Vec<&Example> = examples.iter().collect();
    let pairs = sample_pairs(&labelled, params.iterations, params.max_pairs, params.seed);
    let started = Instant::now();
    let tuned = tune_encoder_until(&encoder, files, &labelled, &pairs, &params, |step| {
        if step.step % 25 == 0 || step.step == step.steps {
            eprintln!(
                "step {}/{}, loss {:.3}, {:.0} s",
                step.step,
                step.steps,
                step.loss,
                started.elapsed().as_secs_f64()
            );
        }
        ControlFlow::Continue(())
    })?;
    drop(encoder);
    let tuned = Encoder::from_files(&tuned.files, &params.encoder_options())?;
    head_accuracy(&tuned, &mut HashMap::new(), train, test, read)
}

/// Train and test rows as examples read by `read`, with class indices in label order and
/// distinct ticket ids (test rows after the train rows); the number of classes first.
fn examples(
    train: &[(String, String)],
    test: &[(String, String)],
    read: impl Fn(&str) -> String,
) -> anyhow::Result<(usize, Vec<Example>, Vec<Example>)> {
    let classes: BTreeMap<&str, usize> = train
        .iter()
        .map(|(_, label)| label.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, label)| (label, i))
        .collect();
    let examples = |rows: &[(String, String)], first: usize| -> anyhow::Result<Vec<Example>> {
        rows.iter()
            .enumerate()
            .map(|(i, (text, label))| {
                Ok(Example {
                    ticket: TicketId((first + i) as i64),
                    text: read(text),
                    targets: vec![
                        *classes
                            .get(label.as_str())
                            .context(format!("label {label:?} is not in the train split"))?,
                    ],
                })
            })
            .collect()
    };
    Ok((
        classes.len(),
        examples(train, 0)?,
        examples(test, train.len())?,
    ))
}

/// Top-1 accuracy of an `ngram` model trained and scored on texts made by `read`.
fn ngram_accuracy(
    train: &[(String, String)],
    test: &[(String, String)],
    read: impl Fn(&str) -> String,
) -> anyhow::Result<f64> {
    let (classes, train, test) = examples(train, test, read)?;
    let params = NgramParams {
        seed: 42,
        refit: false,
        ..NgramParams::default()
    };
    let fitted = train_ngram(&Heads::SINGLE, classes, &train, &[], &params, |_| {});
    let right = test
        .iter()
        .filter(|example| {
            example.targets.first() == Some(&arg_max(&fitted.model.logits(&example.text)))
        })
        .count();
    Ok(right as f64 / test.len().max(1) as f64)
}
