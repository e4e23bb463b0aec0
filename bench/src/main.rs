//! `bench import`: times the release `tagger import` on SQLite and PostgreSQL next to each
//! database's own bulk loader, all in one run (the machine is shared and noisy, so a number
//! only means something beside a baseline taken at the same time), and writes the table
//! into a marked section of docs/benchmarks.md.
//!
//! `bench models` (in `models.rs`): trains and times the tagger's models on the shared
//! public datasets next to a scikit-learn baseline run at the same time.
//!
//! `bench queue` (in `queue.rs`): a training job submitted over the API, run by a worker,
//! promoted and serving, next to a direct `tagger train` of the same data.
//!
//! `bench active-learning` (in `active_learning.rs`): simulated labelling on the shared
//! datasets; labels each selection strategy needs to reach 95% of the full-data accuracy.
//!
//! `bench web` (in `web.rs`): server time of the workbench pages on 100,000 tickets.
//!
//! `bench encoder` (in `encoder.rs`): the candle encoder against ONNX Runtime and PyTorch in
//! one run (inference), and a short fine-tuning slice's step time against PyTorch's.
//!
//! `bench explain` (in `explain.rs`): what explaining a verdict costs per ticket for each
//! model kind, against plain scoring of the same ticket.
//! `bench ood` (in `ood.rs`): out-of-scope queries on CLINC150, in-scope accepted-and-right
//! at out-of-scope recall 0.8, against TF-IDF + LR in the same run.
//!
//! `bench few-labels` (in `few_labels.rs`): `setfit` against `encoder-head`, `ngram` and
//! TF-IDF + LR with 8, 32 and 128 labels per class on Ticket Tagger issues.
//!
//! `bench ngram-selection` (in `ngram_selection.rs`): `ngram` with and without its model
//! selection on every shared dataset, against TF-IDF + LinearSVC in the same run.
//!
//! `bench languages` (in `languages.rs`): language detection on a small labelled sample of
//! tickets in twelve languages, against whatlang's raw answer and a stopword count.
//!
//! `bench idle` (in `idle.rs`): CPU of an idle `tagger demo` after start-up, against the
//! same process under a short tagging load.
//!
//! `bench serve` (in `serve.rs`): loads the release `tagger serve` on loopback with an
//! open-loop generator (fixed rate, highest rate, hot swaps) next to its `/healthz` floor.
//!
//! `bench scale` (in `scale.rs`): three `tagger serve` and two `tagger worker` processes on
//! one PostgreSQL: throughput as servers are added, promotions, killed workers and servers.

mod active_learning;
mod encoder;
mod explain;
mod few_labels;
mod groups;
mod helpdesk;
mod idle;
mod languages;
mod models;
mod ngram_selection;
mod normalise;
mod ood;
mod queue;
mod scale;
mod serve;
mod serve_encoder;
mod web;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const REPEATS: usize = 3;
const TARGET_ROWS_PER_SECOND: f64 = 20_000.0;
/// Memory that grew with the file would give a ratio near 10; below this it is flat.
const FLAT_RSS_RATIO: f64 = 1.5;
const IMPORT_MARKERS: Markers = Markers {
    start: "<!-- bench:import:start -->",
    end: "<!-- bench:import:end -->",
};
const CSV_COLUMNS: &str =
    "id text, subject text, body text, tags text, priority text, product text";
const IMPORT_FLAGS: &str = "--project bench --text-column subject --text-column body \
                            --label-column tags --label-separator ; --id-column id";

/// Benchmarks of the tagger binary.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Simulated labelling on the shared datasets: labels each strategy needs, against random.
    ActiveLearning(active_learning::ActiveLearningBench),
    /// The MiniLM encoder against ONNX Runtime and PyTorch: inference, and fine-tuning steps.
    Encoder(encoder::EncoderBench),
    /// Explaining a verdict (the words behind each tag) per ticket, against plain scoring.
    Explain(explain::ExplainBench),
    /// setfit against encoder-head, ngram and TF-IDF + LR with few labels per class.
    FewLabels(few_labels::FewLabelsBench),
    /// A Zendesk connector against a fake: webhook latency, write-back delay, backfill rate.
    Connectors(helpdesk::ConnectorsBench),
    /// CPU of an idle `tagger demo` after start-up, against the same process tagging.
    Idle(idle::IdleBench),
    /// Time `tagger import` of a synthetic CSV against each database's bulk loader.
    Import(ImportBench),
    /// Language detection on a labelled sample of tickets, against two simpler detectors.
    Languages(languages::LanguagesBench),
    /// Train and time the models on the shared datasets against a scikit-learn baseline.
    Models(models::ModelsBench),
    /// `ngram` with and without model selection on the shared datasets, against TF-IDF + LinearSVC.
    NgramSelection(ngram_selection::NgramSelectionBench),
    /// Out-of-scope queries on CLINC150: accepted-and-right at out-of-scope recall 0.8.
    Ood(ood::OodBench),
    /// Ticket text normalisation: cost per ticket and its effect on accuracy.
    Normalise(normalise::NormaliseBench),
    /// Per-group accuracy on the demo project with tag groups, against a flat model and the majority tag.
    Groups(groups::GroupsBench),
    /// Load `tagger serve` on loopback: fixed rate, highest rate, hot swaps, `/healthz` floor.
    Serve(serve::ServeBench),
    /// A training job end to end: submitted, run by a worker, promoted, serving.
    Queue(queue::QueueBench),
    /// Three servers and two workers on one PostgreSQL: throughput, swaps, kills, exactly once.
    Scale(scale::ScaleBench),
    /// Throughput of an `encoder-head` model through `tagger serve` against the raw model.
    ServeEncoder(serve_encoder::ServeEncoderBench),
    /// Server time of the workbench pages on 100,000 tickets.
    Web(web::WebBench),
}

#[derive(Debug, Args)]
struct ImportBench {
    /// Rows in the large file; the small one has a tenth of them.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Server on which a scratch database is created and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Markdown file whose import section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
}

/// One timed run of a subprocess; baselines leave the RSS at 0, it is not compared.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall_seconds: f64,
    peak_rss_kib: u64,
}

/// One line of the table.
struct TableRow {
    backend: &'static str,
    rows: usize,
    median: Run,
    baseline_name: &'static str,
    baseline_seconds: Option<f64>,
}

/// What every measurement needs.
struct Bench {
    tagger: PathBuf,
    work: ScratchDir,
    postgres: Option<Postgres>,
    sqlite_cli: bool,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        BenchCommand::ActiveLearning(args) => active_learning::run(&args),
        BenchCommand::Connectors(args) => helpdesk::run(&args),
        BenchCommand::Encoder(args) => encoder::run(&args),
        BenchCommand::Explain(args) => explain::run(&args),
        BenchCommand::FewLabels(args) => few_labels::run(&args),
        BenchCommand::Idle(args) => idle::run(&args),
        BenchCommand::Import(args) => import(args),
        BenchCommand::Languages(args) => languages::run(&args),
        BenchCommand::Ood(args) => ood::run(&args),
        BenchCommand::Models(args) => models::run(&args),
        BenchCommand::NgramSelection(args) => ngram_selection::run(&args),
        BenchCommand::Normalise(args) => normalise::run(&args),
        BenchCommand::Groups(args) => groups::run(&args),
        BenchCommand::Serve(args) => serve::run(&args),
        BenchCommand::Queue(args) => queue::run(&args),
        BenchCommand::Scale(args) => scale::run(&args),
        BenchCommand::ServeEncoder(args) => serve_encoder::run(&args),
        BenchCommand::Web(args) => web::run(&args),
    }
}

/// The release `tagger` built next to this binary: the benchmarks time what users run.
fn tagger_binary() -> anyhow::Result<PathBuf> {
    let tagger = std::env::current_exe()?.with_file_name("tagger");
    if !tagger.is_file() {
        bail!(
            "{} is missing: build it first with cargo build --release --bins",
            tagger.display()
        );
    }
    Ok(tagger)
}

fn import(args: ImportBench) -> anyhow::Result<()> {
    if args.rows < 10 {
        bail!("--rows must be at least 10 (the small file has a tenth of them)");
    }
    let tagger = tagger_binary()?;
    let postgres = Postgres::connect(&args.postgres_url)
        .inspect_err(|error| println!("skipped PostgreSQL: {error:#}"))
        .ok();
    // The bench must run without the sqlite3 CLI; it only loses its SQLite baseline.
    let sqlite_cli = Command::new("which")
        .arg("sqlite3")
        .output()
        .is_ok_and(|o| o.status.success());
    if !sqlite_cli {
        println!("sqlite3 CLI not installed, no SQLite baseline");
    }
    let bench = Bench {
        tagger,
        work: ScratchDir::create()?,
        postgres,
        sqlite_cli,
    };

    let now = chrono::Utc::now();
    let mut results = Vec::new();
    for rows in [args.rows / 10, args.rows] {
        let csv = bench.work.0.join(format!("tickets-{rows}.csv"));
        write_csv(&csv, rows, now)?;
        results.push(bench.sqlite(rows, &csv)?);
        if let Some(postgres) = &bench.postgres {
            results.push(bench.postgres(postgres, rows, &csv)?);
        }
    }

    let table = markdown_table(&results);
    println!("\n{table}");
    let section = section(&args, &bench, &results, &table);
    write_section(&args.output, &section, IMPORT_MARKERS, None)
}

/// Replaces one marked section of the markdown file, creating the file when needed.
fn write_section(
    output: &Path,
    section: &str,
    markers: Markers,
    after: Option<&str>,
) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(output) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error).context(format!("cannot read {}", output.display())),
    };
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).context(format!("cannot create {}", parent.display()))?;
    }
    let updated = replace_section(existing.as_deref(), section, markers, after);
    std::fs::write(output, updated).context(format!("cannot write {}", output.display()))?;
    println!("wrote {}", output.display());
    Ok(())
}

impl Bench {
    fn sqlite(&self, rows: usize, csv: &Path) -> anyhow::Result<TableRow> {
        let db = self.work.0.join("bench.db");
        let median = median_run(&format!("SQLite, {rows} rows"), || {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            self.time_import(&format!("sqlite://{}", db.display()), csv, rows)
        })?;
        let mut row = TableRow {
            backend: "SQLite",
            rows,
            median,
            baseline_name: "none (sqlite3 CLI not installed)",
            baseline_seconds: None,
        };
        if self.sqlite_cli {
            let db = self.work.0.join("baseline.db");
            let baseline = median_run(&format!("sqlite3 .import, {rows} rows"), || {
                let _ = std::fs::remove_file(&db);
                let create = format!("CREATE TABLE raw({CSV_COLUMNS})");
                run_checked(Command::new("sqlite3").arg(&db).arg(create))?;
                let import = format!(".import --csv --skip 1 \"{}\" raw", csv.display());
                time_command(Command::new("sqlite3").arg(&db).arg(import))
            })?;
            row.baseline_name = "sqlite3 .import, no indexes";
            row.baseline_seconds = Some(baseline.wall_seconds);
        }
        Ok(row)
    }

    fn postgres(&self, postgres: &Postgres, rows: usize, csv: &Path) -> anyhow::Result<TableRow> {
        let median = median_run(&format!("PostgreSQL, {rows} rows"), || {
            postgres.recreate()?;
            self.time_import(&postgres.bench_url, csv, rows)
        })?;
        let baseline = median_run(&format!("psql \\copy, {rows} rows"), || {
            postgres.recreate()?;
            run_checked(&mut psql(
                &postgres.bench_url,
                &format!("CREATE TABLE raw({CSV_COLUMNS})"),
            ))?;
            let path = csv.display().to_string().replace('\'', "''");
            let copy = format!("\\copy raw FROM '{path}' WITH (FORMAT csv, HEADER true)");
            time_command(&mut psql(&postgres.bench_url, &copy))
        })?;
        Ok(TableRow {
            backend: "PostgreSQL",
            rows,
            median,
            baseline_name: "psql \\copy, no indexes",
            baseline_seconds: Some(baseline.wall_seconds),
        })
    }

    /// Migrates first so only the import is timed, under GNU time for its peak RSS.
    fn time_import(&self, url: &str, csv: &Path, rows: usize) -> anyhow::Result<Run> {
        let tagger = &self.tagger;
        // The scratch directory holds no tagger.toml, so a local config cannot change the run.
        run_checked(
            Command::new(tagger)
                .args(["--database-url", url, "migrate"])
                .current_dir(&self.work.0),
        )?;
        let output = Command::new("/usr/bin/time")
            .arg("-v")
            .arg(tagger)
            .args(["--database-url", url, "import", "--file"])
            .arg(csv)
            .args(IMPORT_FLAGS.split_whitespace())
            .current_dir(&self.work.0)
            .output()
            .context("cannot run /usr/bin/time (GNU time) -v tagger import")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("tagger import failed ({}): {stderr}", output.status);
        }
        // A run that skipped rows would look fast for the wrong reason.
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !stdout.contains(&format!("imported {rows} rows")) {
            bail!("tagger import did not import {rows} rows: {stdout}");
        }
        parse_time_report(&stderr)
    }
}

/// The same tickets the demo uses, as a help desk export would have them.
fn write_csv(path: &Path, rows: usize, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).context(format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "id,subject,body,tags,priority,product")?;
    for ticket in datasets::demo::generate(rows, 42, now) {
        let tags: Vec<&str> = ticket.tags.iter().map(|t| t.as_str()).collect();
        let meta = |key: &str| {
            ticket.metadata[key]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let cells = [
            ticket.external_id.clone(),
            ticket.subject.clone(),
            ticket.body.clone(),
            tags.join(";"),
            meta("priority"),
            meta("product"),
        ];
        // Quoting every cell is valid CSV whatever the text holds (commas, quotes, newlines).
        let quoted: Vec<String> = cells
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        writeln!(out, "{}", quoted.join(","))?;
    }
    out.flush()
        .context(format!("cannot write {}", path.display()))
}

/// Wall time measured around the subprocess (process start-up included, as for tagger).
fn time_command(command: &mut Command) -> anyhow::Result<Run> {
    let started = Instant::now();
    run_checked(command)?;
    Ok(Run {
        wall_seconds: started.elapsed().as_secs_f64(),
        peak_rss_kib: 0,
    })
}

fn run_checked(command: &mut Command) -> anyhow::Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().context(format!("cannot run {program}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{program} failed ({}): {}", output.status, stderr.trim());
    }
    Ok(())
}

/// Wall time and peak RSS from `/usr/bin/time -v`'s report.
fn parse_time_report(stderr: &str) -> anyhow::Result<Run> {
    let value = |label: &str| {
        stderr
            .lines()
            .find(|line| line.contains(label))
            .and_then(|line| line.rsplit(": ").next())
            .map(str::trim)
            .context(format!("no {label:?} in the report of time: {stderr}"))
    };
    let wall = value("Elapsed (wall clock) time")?;
    let mut wall_seconds = 0.0;
    // h:mm:ss or m:ss.ss
    for part in wall.split(':') {
        wall_seconds = wall_seconds * 60.0
            + part
                .parse::<f64>()
                .context(format!("bad wall time {wall:?}"))?;
    }
    let rss = value("Maximum resident set size (kbytes)")?;
    let peak_rss_kib = rss.parse().context(format!("bad peak RSS {rss:?}"))?;
    Ok(Run {
        wall_seconds,
        peak_rss_kib,
    })
}

/// Runs `measure` REPEATS times; the median wall time and the median peak RSS.
fn median_run(what: &str, mut measure: impl FnMut() -> anyhow::Result<Run>) -> anyhow::Result<Run> {
    let mut walls = Vec::with_capacity(REPEATS);
    let mut rss = Vec::with_capacity(REPEATS);
    for attempt in 1..=REPEATS {
        let run = measure().context(format!("{what}, run {attempt}"))?;
        eprintln!(
            "{what}: run {attempt}/{REPEATS}: {:.2} s, {} KiB",
            run.wall_seconds, run.peak_rss_kib
        );
        walls.push(run.wall_seconds);
        rss.push(run.peak_rss_kib);
    }
    walls.sort_by(f64::total_cmp);
    rss.sort_unstable();
    Ok(Run {
        wall_seconds: walls[REPEATS / 2],
        peak_rss_kib: rss[REPEATS / 2],
    })
}

/// `psql` that reads no ~/.psqlrc and stops at the first error.
fn psql(url: &str, sql: &str) -> Command {
    let mut command = Command::new("psql");
    command.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]);
    command
}

/// A scratch database `tagger_bench_<pid>` on the given server, dropped when done.
struct Postgres {
    server_url: String,
    bench_url: String,
    name: String,
}

impl Postgres {
    fn connect(server_url: &str) -> anyhow::Result<Self> {
        run_checked(&mut psql(server_url, "SELECT 1"))
            .context(format!("cannot reach {}", redact(server_url)))?;
        let name = format!("tagger_bench_{}", std::process::id());
        Ok(Self {
            server_url: server_url.into(),
            bench_url: with_database(server_url, &name),
            name,
        })
    }

    /// A fresh empty database for every run, so none finds the previous run's rows or bloat.
    fn recreate(&self) -> anyhow::Result<()> {
        self.drop_database()?;
        run_checked(&mut psql(
            &self.server_url,
            &format!("CREATE DATABASE {}", self.name),
        ))
    }

    fn drop_database(&self) -> anyhow::Result<()> {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        run_checked(&mut psql(&self.server_url, &sql))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Err(error) = self.drop_database() {
            eprintln!("could not drop database {}: {error:#}", self.name);
        }
    }
}

/// The same server URL with another database (keeping any `?options`).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, String::new()), |(b, q)| (b, format!("?{q}")));
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let server = base[host_start..]
        .find('/')
        .map_or(base, |i| &base[..host_start + i]);
    format!("{server}/{database}{query}")
}

/// The URL without its password, fit for a published document.
fn redact(url: &str) -> String {
    let host_start = url.find("://").map_or(0, |i| i + 3);
    match url[host_start..].split_once('@') {
        Some((user_info, rest)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{}{user}:***@{rest}", &url[..host_start])
        }
        _ => url.to_string(),
    }
}

/// A directory under the system temp dir, removed with everything in it when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("tagger-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path).context(format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rows_per_second(rows: usize, seconds: f64) -> f64 {
    rows as f64 / seconds.max(1e-3)
}

fn markdown_table(results: &[TableRow]) -> String {
    let mut table = String::from(
        "| backend | rows | wall s (median of 3) | rows/s | peak RSS MiB | baseline (what) | baseline rows/s |\n\
         |---|---:|---:|---:|---:|---|---:|\n",
    );
    for r in results {
        table.push_str(&format!(
            "| {} | {} | {:.2} | {} | {:.1} | {} | {} |\n",
            r.backend,
            thousands(r.rows as f64),
            r.median.wall_seconds,
            thousands(rows_per_second(r.rows, r.median.wall_seconds)),
            r.median.peak_rss_kib as f64 / 1024.0,
            r.baseline_name,
            r.baseline_seconds
                .map_or("–".into(), |s| thousands(rows_per_second(r.rows, s))),
        ));
    }
    table
}

/// The sentences under the table, drawn from the numbers.
fn findings(results: &[TableRow], large: usize) -> String {
    let row = |backend: &str, rows: usize| {
        results
            .iter()
            .find(|r| r.backend == backend && r.rows == rows)
    };
    let mut text = Vec::new();
    match row("PostgreSQL", large) {
        Some(r) => {
            let speed = rows_per_second(r.rows, r.median.wall_seconds);
            let verdict = if speed >= TARGET_ROWS_PER_SECOND {
                "meets"
            } else {
                "misses"
            };
            let share = r.baseline_seconds.map_or(String::new(), |s| {
                let percent = 100.0 * speed / rows_per_second(r.rows, s);
                format!(" ({percent:.0}% of `\\copy` into an unindexed table)")
            });
            text.push(format!(
                "At {} rows PostgreSQL imports {} rows/s{share}, so it {verdict} the target of ≥ 20,000 rows/s.",
                thousands(large as f64),
                thousands(speed),
            ));
        }
        None => {
            text.push("PostgreSQL was skipped, so the ≥ 20,000 rows/s target is unchecked.".into())
        }
    }
    for backend in ["SQLite", "PostgreSQL"] {
        if let (Some(small), Some(big)) = (row(backend, large / 10), row(backend, large)) {
            let (small, big) = (
                small.median.peak_rss_kib as f64 / 1024.0,
                big.median.peak_rss_kib as f64 / 1024.0,
            );
            let ratio = big / small.max(1e-3);
            let verdict = if ratio < FLAT_RSS_RATIO {
                "flat"
            } else {
                "not flat"
            };
            text.push(format!(
                "{backend}'s peak RSS goes from {small:.1} to {big:.1} MiB, a ratio of {ratio:.2} \
                 while the file grew 10×: memory is {verdict}."
            ));
        }
    }
    text.join(" ")
}

/// "2 cores and 23.5 GiB memory": what a reader needs to weigh the numbers.
/// The 1-minute load average: how busy the shared machine was around a measurement.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|line| line.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or("unknown memory".into(), |kib| {
            format!("{:.1} GiB memory", kib / 1024.0 / 1024.0)
        });
    format!("{cores} cores and {memory}")
}

fn section(args: &ImportBench, bench: &Bench, results: &[TableRow], table: &str) -> String {
    let url = redact(&args.postgres_url);
    let mut notes = String::new();
    if bench.postgres.is_none() {
        notes.push_str(&format!(
            "PostgreSQL was skipped: {url} was unreachable.\n\n"
        ));
    }
    if !bench.sqlite_cli {
        notes.push_str("sqlite3 CLI not installed, no SQLite baseline.\n\n");
    }
    format!(
        "## Import (tagger import)\n\n\
         Measured {date} on {machine}, with:\n\n\
         ```sh\ncargo build --release --bins && \
         cargo run --release --bin bench -- import --rows {rows} --postgres-url {url} --output {output}\n```\n\n\
         Each run is `/usr/bin/time -v tagger --database-url URL import --file FILE {flags}` on a fresh database \
         after `tagger migrate`, importing synthetic demo tickets (seed 42); the baselines load the same CSV \
         in the same run. Medians of {REPEATS} runs.\n\n{notes}{table}\n{findings}\n",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = machine(),
        rows = args.rows,
        output = args.output.display(),
        flags = IMPORT_FLAGS.replace(" ; ", " \";\" "),
        findings = findings(results, args.rows),
    )
}

/// The comments that fence one generated section of the markdown file.
#[derive(Debug, Clone, Copy)]
struct Markers {
    start: &'static str,
    end: &'static str,
}

/// The file with its marked section replaced. A file without it gets it right after the
/// `after` marker when it has that one (sections keep a stable order), else at the end.
fn replace_section(
    existing: Option<&str>,
    section: &str,
    markers: Markers,
    after: Option<&str>,
) -> String {
    let Markers { start, end } = markers;
    let block = format!("{start}\n{section}{end}");
    let Some(text) = existing else {
        return format!(
            "# Benchmarks\n\nMeasurements of the tagger on this project's machines. The machines are shared \
             and noisy, so every table puts each number next to a baseline measured in the same run: \
             compare ratios rather than absolute values.\n\n{block}\n"
        );
    };
    let after = after.and_then(|a| text.find(a).map(|i| i + a.len()));
    match (text.find(start), text.find(end), after) {
        (Some(from), Some(to), _) if from < to => {
            format!("{}{block}{}", &text[..from], &text[to + end.len()..])
        }
        (_, _, Some(at)) => format!("{}\n\n{block}{}", &text[..at], &text[at..]),
        _ if text.is_empty() || text.ends_with('\n') => format!("{text}\n{block}\n"),
        _ => format!("{text}\n\n{block}\n"),
    }
}

/// 12345.6 → "12,346".
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_report_gives_wall_seconds_and_peak_rss() {
        let report = "\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02.50\n\
                      \tMaximum resident set size (kbytes): 20480\n";
        let run = parse_time_report(report).unwrap();
        assert!((run.wall_seconds - 62.5).abs() < 1e-9);
        assert_eq!(run.peak_rss_kib, 20480);
    }

    #[test]
    fn only_the_marked_section_is_replaced() {
        let Markers { start, end } = IMPORT_MARKERS;
        let text = format!("# B\n\nintro\n\n{start}\nold\n{end}\n\n## Other\n");
        let updated = replace_section(Some(&text), "new\n", IMPORT_MARKERS, None);
        assert_eq!(
            updated,
            format!("# B\n\nintro\n\n{start}\nnew\n{end}\n\n## Other\n")
        );
        assert!(replace_section(None, "new\n", IMPORT_MARKERS, None).starts_with("# Benchmarks\n"));
        assert!(
            replace_section(Some("# B\n"), "new\n", IMPORT_MARKERS, None)
                .starts_with("# B\n\n<!--")
        );
    }

    #[test]
    fn a_new_section_goes_after_the_one_named() {
        let models = Markers {
            start: "<!-- m:start -->",
            end: "<!-- m:end -->",
        };
        let Markers { start, end } = IMPORT_MARKERS;
        let text = format!("# B\n\n{start}\nimport\n{end}\n\n## Later\n");
        let updated = replace_section(Some(&text), "new\n", models, Some(end));
        assert_eq!(
            updated,
            format!(
                "# B\n\n{start}\nimport\n{end}\n\n<!-- m:start -->\nnew\n<!-- m:end -->\n\n## Later\n"
            )
        );
        // Run again, only the new section changes.
        let again = replace_section(Some(&updated), "newer\n", models, Some(end));
        assert_eq!(
            again,
            updated.replace("new\n<!-- m:end", "newer\n<!-- m:end")
        );
    }

    #[test]
    fn urls_get_the_scratch_database_and_lose_passwords() {
        let url = "postgres://u@h:5432/postgres?sslmode=disable";
        assert_eq!(
            with_database(url, "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
