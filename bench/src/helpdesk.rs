//! `bench connectors`: a Zendesk connector against a local fake of Zendesk's API, on SQLite
//! and PostgreSQL, through the release `tagger serve --with-worker`:
//! - webhook acknowledgement latency at a fixed offered rate (open loop: each delivery is
//!   sent on its schedule whether or not earlier ones were answered), beside the same tickets
//!   sent at the same rate through our own `POST /v1/projects/{p}/tickets` (the baseline: the
//!   same ingest, tagged inline, without signature, dedupe and delivery log);
//! - the time from a delivery to the fake receiving its write-back;
//! - backfill throughput (`tagger connectors backfill`) over the fake's incremental export,
//!   beside `tagger import` of the same number of tickets from CSV (the baseline: storing
//!   without tagging or HTTP). The connector's request rate is set high so the vendor's rate
//!   limit does not apply: the figure is ours.
//!
//! Writes a marked section of docs/benchmarks.md.

use super::queue::{TaggerCli, TaggerProcess, median, wait_until_ready};
use super::{
    Markers, Postgres, ScratchDir, machine, redact, tagger_binary, with_database, write_csv,
    write_section,
};
use anyhow::bail;
use axum::extract::{Query, State};
use axum::routing::{get, put};
use clap::Args;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MARKERS: Markers = Markers {
    start: "<!-- bench:connectors:start -->",
    end: "<!-- bench:connectors:end -->",
};
const AFTER_MARKER: &str = "<!-- bench:normalise:end -->";
const PROJECT: &str = "bench";
const CONNECTOR: &str = "desk";
const SECRET: &str = "bench-webhook-secret-0123456789";
const USER: &str = "bench@example.com";
const TOKEN: &str = "bench-api-token";
/// Tickets the model is trained on before the measurements.
const TRAINING_TICKETS: usize = 2400;
/// Tickets per page of the fake incremental export (Zendesk's own maximum).
const EXPORT_PAGE: usize = 1000;
/// The seed of the tickets the bench sends: the training tickets' generator (seed 42) with
/// another seed, so they are new tickets of the same help desk, as a live one sends.
const LIVE_SEED: u64 = 7;

#[derive(Debug, Args)]
pub struct ConnectorsBench {
    /// Deliveries a second offered to the webhook (and tickets a second to the baseline).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Seconds each load phase lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Tickets in the fake help desk's history for the backfill.
    #[arg(long, default_value_t = 20_000)]
    history: usize,
    /// A PostgreSQL server to create a scratch database on; unreachable means SQLite only.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// The benchmark document to update.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
}

/// Latencies of one load phase.
#[derive(Debug, Clone, Default)]
struct Load {
    sent: usize,
    failed: usize,
    p50_ms: f64,
    p99_ms: f64,
    /// How late the generator sent its last request: large means the rate was not offered.
    behind_ms: f64,
}

struct Row {
    backend: String,
    webhook: Load,
    baseline: Load,
    writeback_p50_ms: f64,
    writeback_p99_ms: f64,
    written: usize,
    /// Delivered tickets the model applied at least one tag to (each has a write to make).
    tagged: usize,
    backfill_per_second: f64,
    import_per_second: f64,
}

/// What the fake Zendesk saw: per ticket id, when its tags were first written.
#[derive(Clone, Default)]
struct Fake {
    written_at: Arc<Mutex<HashMap<String, Instant>>>,
    history: usize,
    /// The texts the help desk's tickets have (its history and the live deliveries).
    texts: Arc<Texts>,
}

/// Subjects and bodies of generated help-desk tickets, used in turn.
#[derive(Default)]
struct Texts(Vec<(String, String)>);

impl Texts {
    fn generate(count: usize) -> Self {
        Self(
            datasets::demo::generate(count.max(1), LIVE_SEED, chrono::Utc::now())
                .into_iter()
                .map(|ticket| (ticket.subject, ticket.body))
                .collect(),
        )
    }

    fn subject(&self, i: usize) -> &str {
        &self.0[i % self.0.len()].0
    }

    fn body(&self, i: usize) -> &str {
        &self.0[i % self.0.len()].1
    }
}

pub fn run(args: &ConnectorsBench) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        bail!(
            "run the connectors bench from a release build: cargo run --release --bin bench -- connectors"
        );
    }
    let tagger = tagger_binary()?;
    let work = ScratchDir::create()?;
    let work_dir = work.0.canonicalize()?;
    let csv = work_dir.join("training.csv");
    write_csv(&csv, TRAINING_TICKETS, chrono::Utc::now())?;
    let history_csv = work_dir.join("history.csv");
    write_csv(&history_csv, args.history, chrono::Utc::now())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    let sqlite_dir = work_dir.join("sqlite");
    std::fs::create_dir_all(&sqlite_dir)?;
    let sqlite_url = format!("sqlite://{}", sqlite_dir.join("tagger.db").display());
    rows.push(measure(
        &runtime,
        args,
        &tagger,
        &sqlite_dir,
        &csv,
        &history_csv,
        &sqlite_url,
        "SQLite",
    )?);
    match Postgres::connect(&args.postgres) {
        Ok(postgres) => {
            postgres.recreate()?;
            let pg_dir = work_dir.join("postgres");
            std::fs::create_dir_all(&pg_dir)?;
            let url = with_database(&args.postgres, &postgres.name);
            rows.push(measure(
                &runtime,
                args,
                &tagger,
                &pg_dir,
                &csv,
                &history_csv,
                &url,
                &format!("PostgreSQL ({})", redact(&args.postgres)),
            )?);
        }
        Err(error) => eprintln!("PostgreSQL skipped: {error:#}"),
    }
    let section = section(args, &rows);
    println!("\n{section}");
    write_section(&args.output, &section, MARKERS, Some(AFTER_MARKER))
}

#[allow(clippy::too_many_arguments)] // one call per database
fn measure(
    runtime: &tokio::runtime::Runtime,
    args: &ConnectorsBench,
    tagger: &Path,
    dir: &Path,
    csv: &Path,
    history_csv: &Path,
    url: &str,
    backend: &str,
) -> anyhow::Result<Row> {
    let data_dir = dir.join("data");
    let cli = TaggerCli {
        binary: tagger,
        dir,
        data_dir: &data_dir,
        url,
    };
    let run_tagger = |args: &[&str]| cli.run(args);
    run_tagger(&["migrate"])?;
    cli.import(PROJECT, csv)?;
    run_tagger(&["train", "--project", PROJECT])?;
    cli.promote_first(PROJECT)?;
    let key = run_tagger(&["keys", "create", "--project", PROJECT, "--name", "bench"])?
        .trim()
        .to_string();
    // The import baseline: the history's size stored from a CSV into a project of its own.
    let started = Instant::now();
    cli.import("baseline", history_csv)?;
    let import_per_second = args.history as f64 / started.elapsed().as_secs_f64();

    let texts = Arc::new(Texts::generate(
        args.history.max((args.rate * args.seconds) as usize),
    ));
    let fake = Fake {
        history: args.history,
        texts: texts.clone(),
        ..Fake::default()
    };
    let fake_addr = runtime.block_on(serve_fake(fake.clone()))?;
    run_tagger(&[
        "connectors",
        "add",
        "--project",
        PROJECT,
        "--system",
        "zendesk",
        "--name",
        CONNECTOR,
        "--base-url",
        &format!("http://{fake_addr}"),
        "--webhook-secret",
        SECRET,
        "--user",
        USER,
        "--token",
        TOKEN,
        "--write-back",
        "on",
        "--requests-per-minute",
        "100000",
    ])?;

    let addr = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
    let addr_text = addr.to_string();
    let mut server = TaggerProcess::spawn(
        tagger,
        dir,
        &data_dir,
        &[
            "--database-url",
            url,
            "serve",
            "--with-worker",
            "--addr",
            &addr_text,
        ],
        "serve",
    )?;
    let measured = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        wait_until_ready(&client, addr).await?;
        let count = (args.rate * args.seconds) as usize;
        let baseline = load(args.rate, count, |i| {
            let body = serde_json::json!({
                "external_id": format!("api-{i}"),
                "subject": texts.subject(i),
                "body": texts.body(i),
            });
            client
                .post(format!("http://{addr}/v1/projects/{PROJECT}/tickets"))
                .header("authorization", format!("Bearer {key}"))
                .json(&body)
        })
        .await;
        let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let webhook = load(args.rate, count, |i| {
            let id = format!("{}", 1_000_000 + i);
            let body = zendesk_event(&id, texts.subject(i), texts.body(i));
            let timestamp = chrono::Utc::now().to_rfc3339();
            let signature = connectors::sign_zendesk(SECRET.as_bytes(), &timestamp, &body);
            sent_at
                .lock()
                .expect("not poisoned")
                .insert(id, Instant::now());
            client
                .post(format!("http://{addr}/v1/connectors/{CONNECTOR}/webhook"))
                .header("content-type", "application/json")
                .header("x-zendesk-webhook-signature-timestamp", timestamp)
                .header("x-zendesk-webhook-signature", signature)
                .body(body)
        })
        .await;
        // Every tagged delivery's write-back, waited for until all have come or none came for
        // 10 s (a ticket the model gives no tag has nothing to write), at most two minutes.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last_change = (0, Instant::now());
        loop {
            let written = fake.written_at.lock().expect("not poisoned").len();
            if written != last_change.0 {
                last_change = (written, Instant::now());
            }
            if written >= webhook.sent - webhook.failed
                || last_change.1.elapsed() > Duration::from_secs(10)
                || Instant::now() > deadline
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut to_writeback: Vec<f64> = {
            let written = fake.written_at.lock().expect("not poisoned");
            let sent = sent_at.lock().expect("not poisoned");
            written
                .iter()
                .filter_map(|(id, at)| {
                    Some(at.duration_since(*sent.get(id)?).as_secs_f64() * 1000.0)
                })
                .collect()
        };
        to_writeback.sort_by(f64::total_cmp);
        let tagged = count_tagged(&client, addr, &key).await?;
        anyhow::Ok((baseline, webhook, to_writeback, tagged))
    });
    server.stop();
    let (baseline, webhook, to_writeback, tagged) = measured?;

    // The backfill in the foreground, as an admin runs it.
    let started = Instant::now();
    run_tagger(&["connectors", "backfill", "--name", CONNECTOR])?;
    let backfill_per_second = args.history as f64 / started.elapsed().as_secs_f64();
    Ok(Row {
        backend: backend.to_string(),
        webhook,
        baseline,
        writeback_p50_ms: percentile(&to_writeback, 0.5),
        writeback_p99_ms: percentile(&to_writeback, 0.99),
        written: to_writeback.len(),
        tagged,
        backfill_per_second,
        import_per_second,
    })
}

/// A Zendesk event webhook about a new ticket, as Zendesk sends it.
fn zendesk_event(id: &str, subject: &str, body: &str) -> Vec<u8> {
    let now = chrono::Utc::now().to_rfc3339();
    serde_json::json!({
        "type": "zen:event-type:ticket.created",
        "id": format!("01BENCH-{id}"),
        "time": now,
        "subject": format!("zen:ticket:{id}"),
        "detail": {"id": id, "subject": subject, "description": body,
                   "tags": [], "updated_at": now, "created_at": now}
    })
    .to_string()
    .into_bytes()
}

/// How many of the connector's tickets carry a tag the model applied, read page by page
/// through the API: the write-backs there are to make.
async fn count_tagged(
    client: &reqwest::Client,
    addr: SocketAddr,
    key: &str,
) -> anyhow::Result<usize> {
    let mut tagged = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url =
            format!("http://{addr}/v1/projects/{PROJECT}/tickets?source={CONNECTOR}&limit=500");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: serde_json::Value = client
            .get(&url)
            .header("authorization", format!("Bearer {key}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let tickets = page["tickets"].as_array().cloned().unwrap_or_default();
        tagged += tickets
            .iter()
            .filter(|ticket| {
                ticket["labels"].as_array().is_some_and(|labels| {
                    labels
                        .iter()
                        .any(|label| label["source"] == "model" && label["present"] == true)
                })
            })
            .count();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(tagged),
        }
    }
}

/// Sends `count` requests at `rate` a second, each on its own schedule (open loop); the
/// answers' latencies.
async fn load(
    rate: u32,
    count: usize,
    mut request: impl FnMut(usize) -> reqwest::RequestBuilder,
) -> Load {
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(count);
    let mut behind = Duration::ZERO;
    for i in 0..count {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due).await;
        behind = tokio::time::Instant::now().duration_since(due);
        let builder = request(i);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = matches!(builder.send().await, Ok(r) if r.status().is_success());
            (ok, sent.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut failed = 0;
    for task in tasks {
        match task.await {
            Ok((true, took)) => latencies.push(took.as_secs_f64() * 1000.0),
            _ => failed += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    Load {
        sent: count,
        failed,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        behind_ms: behind.as_secs_f64() * 1000.0,
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (share * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The fake Zendesk: the tag write-back (recording when each ticket's tags arrived) and the
/// cursor-based incremental export of `history` generated tickets, `EXPORT_PAGE` a page.
async fn serve_fake(fake: Fake) -> anyhow::Result<SocketAddr> {
    async fn tags(
        State(fake): State<Fake>,
        axum::extract::Path(id): axum::extract::Path<String>,
        body: axum::body::Bytes,
    ) -> axum::Json<serde_json::Value> {
        fake.written_at
            .lock()
            .expect("not poisoned")
            .entry(id)
            .or_insert_with(Instant::now);
        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        axum::Json(serde_json::json!({ "tags": sent["tags"] }))
    }
    async fn export(
        State(fake): State<Fake>,
        Query(query): Query<HashMap<String, String>>,
    ) -> axum::Json<serde_json::Value> {
        let page: usize = query
            .get("cursor")
            .and_then(|c| c.strip_prefix("page-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let from = page * EXPORT_PAGE;
        let to = (from + EXPORT_PAGE).min(fake.history);
        let created = "2025-06-01T09:00:00Z";
        let tickets: Vec<serde_json::Value> = (from..to)
            .map(|i| {
                serde_json::json!({"id": 5_000_000 + i, "subject": fake.texts.subject(i),
                    "description": fake.texts.body(i), "tags": [], "status": "open",
                    "created_at": created, "updated_at": created})
            })
            .collect();
        axum::Json(serde_json::json!({
            "tickets": tickets,
            "after_cursor": format!("page-{}", page + 1),
            "end_of_stream": to >= fake.history,
        }))
    }
    let router = axum::Router::new()
        .route("/api/v2/tickets/{id}/tags", put(tags))
        .route("/api/v2/incremental/tickets/cursor.json", get(export))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

fn section(args: &ConnectorsBench, rows: &[Row]) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "## Connectors: webhooks in, write-back, backfill\n\n\
         `cargo run --release --bin bench -- connectors --rate {rate} --seconds {seconds} --history {history}` \
         on {date}, {machine}. A Zendesk connector against a local fake of Zendesk's API, through \
         `tagger serve --with-worker`; the tickets are generated help-desk tickets (the demo \
         generator with another seed than the model's training tickets). **Webhook** rows offer \
         {rate} signed `ticket.created` deliveries a second for {seconds} s (open loop) and time \
         each acknowledgement, given once the ticket is stored and its tagging job queued; the \
         **baseline** offers the same tickets at the same rate to our own \
         `POST /v1/projects/{{p}}/tickets`, which tags inline before it answers (without \
         signature, dedupe and delivery log). **To write-back** is from sending a delivery to \
         the fake receiving its tags (the tagging job, which sends the write); **written / \
         tagged / sent**: the deliveries whose tags reached the fake, the delivered tickets the \
         model gave at least one tag (read back through the API; one it gives none, a doubtful \
         one left to review, has nothing to write), and the deliveries sent. **Backfill** reads {history} tickets from the fake's incremental \
         export (pages of {page}) with `tagger connectors backfill`, each page tagged in one \
         batch and stored in one transaction; its baseline is `tagger import` of as many \
         tickets from a CSV (stored, not tagged). The connector's request rate is set to \
         100,000 a minute so Zendesk's limit does not bind. Target: webhook p99 under 50 ms; \
         backfill at least 2,000 tickets/s.\n",
        rate = args.rate,
        seconds = args.seconds,
        history = args.history,
        page = EXPORT_PAGE,
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = machine(),
    );
    let _ = writeln!(
        text,
        "| database | webhook p50 / p99 (ms) | baseline API p50 / p99 (ms) | failed (webhook / API) | generator behind (ms) | to write-back p50 / p99 (ms) | written / tagged / sent | backfill tickets/s | baseline import tickets/s |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    for row in rows {
        let _ = writeln!(
            text,
            "| {} | {:.1} / {:.1} | {:.1} / {:.1} | {} / {} | {:.0} | {:.0} / {:.0} | {} / {} / {} | {:.0} | {:.0} |",
            row.backend,
            row.webhook.p50_ms,
            row.webhook.p99_ms,
            row.baseline.p50_ms,
            row.baseline.p99_ms,
            row.webhook.failed,
            row.baseline.failed,
            row.webhook.behind_ms.max(row.baseline.behind_ms),
            row.writeback_p50_ms,
            row.writeback_p99_ms,
            row.written,
            row.tagged,
            row.webhook.sent,
            row.backfill_per_second,
            row.import_per_second,
        );
    }
    let medians: Vec<f64> = rows.iter().map(|r| r.webhook.p99_ms).collect();
    let _ = writeln!(
        text,
        "\nWebhook p99 over the databases: {:.1} ms (median of the rows).\n",
        median(medians)
    );
    text
}
