//! `bench serve-encoder`: what serving costs an `encoder-head` model. The same texts are
//! scored in batches of 32 by the model loaded in this process (the raw model: no HTTP, no
//! queue, no batcher) and through `tagger serve` (`POST /tag/batch`, two clients in a closed
//! loop), alternating three times in one run so both see the same machine. The ratio is the
//! batching and HTTP overhead. Writes a marked section of docs/benchmarks.md.

use super::queue::{TaggerProcess, median, wait_until_ready};
use super::{Markers, ScratchDir, machine, tagger_binary, write_csv, write_section};
use anyhow::{Context, bail};
use clap::Args;
use datasets::ProjectName;
use datasets::store::prelude::*;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const MARKERS: Markers = Markers {
    start: "<!-- bench:serve-encoder:start -->",
    end: "<!-- bench:serve-encoder:end -->",
};
const AFTER_MARKER: &str = "<!-- bench:queue:end -->";
const PROJECT: &str = "bench";
const TICKETS: usize = 2400;
const BATCH: usize = 32;
const CLIENTS: usize = 2;
const ROUNDS: usize = 3;
/// The served/raw throughput ratio the issue asks for.
const TARGET_RATIO: f64 = 0.85;

#[derive(Debug, Args)]
pub struct ServeEncoderBench {
    /// Texts scored per measurement (a multiple of the batch of 32).
    #[arg(long, default_value_t = 640)]
    texts: usize,
    /// The benchmark document to update.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
}

pub fn run(args: &ServeEncoderBench) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        bail!(
            "run this bench from a release build: cargo run --release --bin bench -- serve-encoder"
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "unknown".into());
    let tagger = tagger_binary()?;
    let work = ScratchDir::create()?;
    let dir = work.0.canonicalize()?;
    let csv = dir.join("tickets.csv");
    write_csv(&csv, TICKETS, chrono::Utc::now())?;
    let url = format!("sqlite://{}", dir.join("tagger.db").display());
    let data_dir = dir.join("data");
    let run_tagger = |args: &[&str]| -> anyhow::Result<String> {
        let output = Command::new(&tagger)
            .current_dir(&dir)
            .env("TAGGER_DATA_DIR", &data_dir)
            .args(["--database-url", &url])
            .args(args)
            .output()?;
        if !output.status.success() {
            bail!(
                "tagger {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    run_tagger(&["migrate"])?;
    let csv_path = csv.display().to_string();
    run_tagger(&[
        "import",
        "--project",
        PROJECT,
        "--file",
        &csv_path,
        "--text-column",
        "subject",
        "--text-column",
        "body",
        "--label-column",
        "tags",
        "--label-separator",
        ";",
        "--id-column",
        "id",
    ])?;
    eprintln!("training an encoder-head model (embeds {TICKETS} tickets once)…");
    if let Err(error) = run_tagger(&["train", "--project", PROJECT, "--kind", "encoder-head"]) {
        println!(
            "skipped: the encoder-head model could not be trained here ({error:#}); put MiniLM \
             in the local Hugging Face cache as ../shared/models/README.md says"
        );
        return Ok(());
    }
    let key = run_tagger(&["keys", "create", "--project", PROJECT, "--name", "bench"])?
        .trim()
        .to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (model, texts) = runtime.block_on(async {
        let store = datasets::AnyStore::open(&url).await?;
        let project = store
            .project_by_name(&ProjectName::parse(PROJECT)?)
            .await?
            .context("no bench project")?;
        let version = store
            .model_versions(project.id)
            .await?
            .into_iter()
            .next()
            .context("no version")?;
        run_tagger(&[
            "models",
            "promote",
            "--project",
            PROJECT,
            "--version",
            &version.id.to_string(),
        ])?;
        let model = trainer::load_version(&version)?;
        let tickets = store
            .tickets_after(project.id, None, TICKETS as u32)
            .await?;
        let texts: Vec<(String, String)> = tickets
            .iter()
            .take(args.texts)
            .map(|t| (t.ticket.subject.clone(), t.ticket.body.clone()))
            .collect();
        anyhow::Ok((model, texts))
    })?;
    if texts.len() < BATCH {
        bail!("only {} texts to score", texts.len());
    }

    let addr: SocketAddr = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
    let addr_text = addr.to_string();
    let mut server = TaggerProcess::spawn(
        &tagger,
        &dir,
        &data_dir,
        &["--database-url", &url, "serve", "--addr", &addr_text],
        "serve",
    )?;
    let texts = Arc::new(texts);
    let mut raw = Vec::new();
    let mut served = Vec::new();
    let result = runtime.block_on(async {
        let client = reqwest::Client::new();
        wait_until_ready(&client, addr).await?;
        // One warm-up of each, unmeasured: first batches pay for allocations and caches.
        raw_throughput(&model, &texts[..BATCH])?;
        served_throughput(
            &client,
            addr,
            &key,
            Arc::new(texts[..BATCH * CLIENTS].to_vec()),
        )
        .await?;
        for _ in 0..ROUNDS {
            raw.push(raw_throughput(&model, &texts)?);
            served.push(served_throughput(&client, addr, &key, texts.clone()).await?);
        }
        anyhow::Ok(())
    });
    server.stop();
    result?;
    let section = section(&load, texts.len(), &raw, &served);
    println!("\n{section}");
    write_section(&args.output, &section, MARKERS, Some(AFTER_MARKER))
}

/// Texts per second of the model in this process, batches of 32 in file order.
fn raw_throughput(
    model: &inference::TaggingModel,
    texts: &[(String, String)],
) -> anyhow::Result<f64> {
    let joined: Vec<String> = texts.iter().map(|(s, b)| format!("{s}\n{b}")).collect();
    let started = Instant::now();
    for chunk in joined.chunks(BATCH) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        model.logits_batch(&refs)?;
    }
    Ok(joined.len() as f64 / started.elapsed().as_secs_f64())
}

/// Texts per second through `POST /tag/batch`, `CLIENTS` clients each sending the next
/// batch of 32 as soon as its previous one is answered.
async fn served_throughput(
    client: &reqwest::Client,
    addr: SocketAddr,
    key: &str,
    texts: Arc<Vec<(String, String)>>,
) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("http://{addr}/v1/projects/{PROJECT}/tag/batch");
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url, key, texts, next) = (
            client.clone(),
            url.clone(),
            key.to_string(),
            texts.clone(),
            next.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let from = next.fetch_add(BATCH, Ordering::SeqCst);
                if from >= texts.len() {
                    return anyhow::Ok(());
                }
                let tickets: Vec<serde_json::Value> = texts[from..(from + BATCH).min(texts.len())]
                    .iter()
                    .map(|(subject, body)| serde_json::json!({"subject": subject, "body": body}))
                    .collect();
                let response = client
                    .post(&url)
                    .header("authorization", format!("Bearer {key}"))
                    .json(&serde_json::json!({"tickets": tickets}))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("tag/batch answered {}", response.status());
                }
                let body: serde_json::Value = response.json().await?;
                if body["results"].as_array().map(Vec::len) != Some(tickets.len()) {
                    bail!("tag/batch did not score every text: {body}");
                }
            }
        }));
    }
    for client in clients {
        client.await??;
    }
    Ok(texts.len() as f64 / started.elapsed().as_secs_f64())
}

fn section(load: &str, texts: usize, raw: &[f64], served: &[f64]) -> String {
    let raw_median = median(raw.to_vec());
    let served_median = median(served.to_vec());
    let ratio = served_median / raw_median;
    let verdict = if ratio >= TARGET_RATIO {
        format!(
            "✓ within {:.0}% of the raw model",
            (1.0 - TARGET_RATIO) * 100.0
        )
    } else {
        format!(
            "✗ more than {:.0}% below the raw model",
            (1.0 - TARGET_RATIO) * 100.0
        )
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Serving an `encoder-head` model: batching overhead\n"
    );
    let _ = writeln!(
        out,
        "Measured {} on {} (1-minute load average {} at the start: absolute figures move with \
         whatever else the machine runs; the ratio is measured within one run) with \
         `cargo run --release --bin bench -- serve-encoder` ({texts} \
         synthetic ticket texts, MiniLM-L6 frozen encoder + linear head, batches of {BATCH}, \
         {ROUNDS} rounds alternating raw and served; medians). Raw: `TaggingModel::logits_batch` \
         in the bench process. Served: `POST /v1/projects/P/tag/batch` to `tagger serve` on \
         loopback from {CLIENTS} closed-loop clients (HTTP, JSON, auth, the batcher, decisions).\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        load,
    );
    let _ = writeln!(out, "| | texts/s (median) | rounds |");
    let _ = writeln!(out, "|---|---:|---|");
    let list = |values: &[f64]| {
        values
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "| raw model, batch {BATCH} | {raw_median:.0} | {} |",
        list(raw)
    );
    let _ = writeln!(
        out,
        "| through `tagger serve` | {served_median:.0} | {} |",
        list(served)
    );
    let _ = writeln!(
        out,
        "\nServed / raw: **{:.0}%** {verdict} (target: at least {:.0}%).\n",
        ratio * 100.0,
        TARGET_RATIO * 100.0
    );
    out
}
