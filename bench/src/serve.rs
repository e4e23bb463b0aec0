//! `bench serve`: a load benchmark of the release `tagger serve` on loopback. It sets up a
//! fresh SQLite project with two trained model versions and an API key, starts the server
//! as a child process, and drives it with an open-loop generator written here (tokio and
//! reqwest with keep-alive): request i leaves at t0 + i/rate whatever the earlier ones are
//! doing, so a slow server cannot slow the load down and hide its own slowness. Measures
//! tagging at a fixed rate, the highest sustained rate, hot swaps under load and, in the same
//! run, the `/healthz` floor of the HTTP stack (the machine is shared and noisy: a number
//! only means something beside one taken at the same time). Writes a marked section of
//! docs/benchmarks.md.

use super::{
    Markers, ScratchDir, load_average, machine, tagger_binary, thousands, write_csv, write_section,
};
use anyhow::{Context, bail};
use clap::Args;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

const MARKERS: Markers = Markers {
    start: "<!-- bench:serve:start -->",
    end: "<!-- bench:serve:end -->",
};
/// A new serving section goes right after the models section.
const AFTER_MARKER: &str = "<!-- bench:models:end -->";
const PROJECT: &str = "bench";
pub(crate) const TICKETS: usize = 2400;
pub(crate) const SEED: u64 = 42;
/// The issue's target: p99 under 25 ms with no errors.
const TARGET_P99: Duration = Duration::from_millis(25);
/// Requests in flight at once; one more finds no slot and is counted as not sent.
const MAX_IN_FLIGHT: usize = 256;
/// Sent later than this after its due time, a request counts as late: the generator, not
/// the server, fell behind (tokio's timer ticks in whole milliseconds).
const LATE_AFTER: Duration = Duration::from_millis(5);
/// Every request gives up after this, so each phase ends at most this long after its last send.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to answer `/readyz` after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The server's own watcher polls the database this often (it also follows our promotions).
const WATCH_SECONDS: &str = "0.5";
/// The fixed rate of measurements a, c and d.
const STEADY_RATE: f64 = 200.0;
/// The rate steps of measurement b double from the steady rate up to this one.
const RAMP_MAX_RATE: f64 = 25_600.0;
const PROMOTIONS: usize = 10;
/// Requests sent this close to a promotion count as "during a swap".
const SWAP_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
pub struct ServeBench {
    /// Markdown file whose serving section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
    /// A smoke run: every phase a tenth as long, and nothing is written to the file.
    #[arg(long)]
    quick: bool,
}

/// How long each phase lasts.
#[derive(Debug, Clone, Copy)]
struct Plan {
    warm_up: Duration,
    steady: Duration,
    step: Duration,
    swap: Duration,
    promote_every: Duration,
    pause: Duration,
}

impl Plan {
    fn new(quick: bool) -> Self {
        let plan = Self {
            warm_up: Duration::from_secs(2),
            steady: Duration::from_secs(20),
            step: Duration::from_secs(5),
            swap: Duration::from_secs(60),
            promote_every: Duration::from_secs(5),
            pause: Duration::from_secs(1),
        };
        if !quick {
            return plan;
        }
        Self {
            warm_up: plan.warm_up / 10,
            steady: plan.steady / 10,
            step: plan.step / 10,
            swap: plan.swap / 10,
            promote_every: plan.promote_every / 10,
            pause: plan.pause / 10,
        }
    }
}

pub fn run(args: &ServeBench) -> anyhow::Result<()> {
    // The load generator is this binary: a debug build would measure itself, not the server.
    if cfg!(debug_assertions) {
        bail!("run the serve bench from a release build: cargo run --release --bin bench -- serve");
    }
    let tagger = tagger_binary()?;
    let plan = Plan::new(args.quick);
    let work = ScratchDir::create()?;
    let work_dir = work
        .0
        .canonicalize()
        .context(format!("cannot resolve {}", work.0.display()))?;
    let url = format!("sqlite://{}", work_dir.join("tagger.db").display());
    let setup = set_up(&tagger, &work_dir, url)?;
    // Declared after `work`, so it is dropped (the server stopped) before the folder goes.
    let mut server = Server::start(&tagger, &work_dir, &setup.url)?;
    // One thread: the generator can take at most one of the cores it shares with the server.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(measure_all(&server, &setup, plan));
    // The server must have lived through the load: a crash would make every number wrong.
    let crashed = server.exited();
    let stopped = server.stop();
    let results = results?;
    if let Some(status) = crashed {
        bail!(
            "tagger serve exited during the benchmark ({status}); its log:\n{}",
            server.log_tail()
        );
    }
    stopped?;
    let section = section(args, plan, &setup, &results);
    println!("\n{section}");
    if args.quick {
        println!("--quick: {} left unchanged", args.output.display());
        return Ok(());
    }
    write_section(&args.output, &section, MARKERS, Some(AFTER_MARKER))
}

/// The project the server is measured on.
pub(crate) struct Setup {
    /// The machine's 1-minute load average before anything started.
    pub(crate) load_average: String,
    pub(crate) url: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) key: String,
    /// The two trained versions, the first promoted at start.
    pub(crate) versions: [i64; 2],
    /// Request bodies, `{"subject", "body"}` of the synthetic tickets.
    pub(crate) bodies: Arc<Vec<String>>,
}

/// A fresh database at `url` (the serve bench's SQLite file, the scale bench's PostgreSQL)
/// with a project of synthetic tickets, two trained versions, the first promoted, and an API
/// key: everything through the release `tagger`, as a user would.
pub(crate) fn set_up(tagger: &Path, work: &Path, url: String) -> anyhow::Result<Setup> {
    let load_average = load_average();
    let now = chrono::Utc::now();
    let csv = work.join("tickets.csv");
    write_csv(&csv, TICKETS, now)?;
    let setup = Setup {
        load_average,
        url,
        data_dir: work.join("data"),
        key: String::new(),
        versions: [0, 0],
        bodies: Arc::new(
            datasets::demo::generate(TICKETS, SEED, now)
                .into_iter()
                .map(|t| serde_json::json!({"subject": t.subject, "body": t.body}).to_string())
                .collect(),
        ),
    };
    let tagger = |args: &[&str]| {
        let mut command = Command::new(tagger);
        // The scratch folder holds no tagger.toml, so a local config cannot change the run.
        command
            .current_dir(work)
            .env("TAGGER_DATA_DIR", &setup.data_dir)
            .args(["--database-url", &setup.url])
            .args(args);
        stdout_of(&mut command)
    };
    tagger(&["migrate"])?;
    let csv = csv.display().to_string();
    let imported = tagger(&[
        "import",
        "--project",
        PROJECT,
        "--file",
        &csv,
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
    if !imported.contains(&format!("imported {TICKETS} rows")) {
        bail!("tagger import did not import {TICKETS} rows: {imported}");
    }
    let mut versions = [0; 2];
    for version in &mut versions {
        let trained = tagger(&["train", "--project", PROJECT])?;
        *version = trained_version(&trained).context(format!(
            "no \"model version N\" line from tagger train: {trained}"
        ))?;
        eprintln!("trained model version {version}");
    }
    let key = tagger(&["keys", "create", "--project", PROJECT, "--name", "bench"])?
        .trim()
        .to_string();
    if key.is_empty() || key.contains(char::is_whitespace) {
        bail!("tagger keys create printed no single secret: {key:?}");
    }
    let first = versions[0].to_string();
    tagger(&[
        "models",
        "promote",
        "--project",
        PROJECT,
        "--version",
        &first,
        "--actor",
        "bench",
    ])?;
    Ok(Setup {
        key,
        versions,
        ..setup
    })
}

/// N from "model version N (ngram) trained in X s; files in …".
pub(crate) fn trained_version(stdout: &str) -> Option<i64> {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("model version "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

fn stdout_of(command: &mut Command) -> anyhow::Result<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let output = command.output().context(format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `tagger serve` as a child process, stopped when dropped (on error paths too).
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(tagger: &Path, work: &Path, url: &str) -> anyhow::Result<Self> {
        // Port 0 picks a free port; it is released for the server a moment later.
        let addr = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
        let log = work.join("serve.log");
        let file =
            std::fs::File::create(&log).context(format!("cannot create {}", log.display()))?;
        let child = Command::new(tagger)
            .current_dir(work)
            .env("TAGGER_MODEL_WATCH_SECONDS", WATCH_SECONDS)
            .args(["--database-url", url, "serve", "--addr", &addr.to_string()])
            .arg("--data-dir")
            .arg(work.join("data"))
            .stdin(Stdio::null())
            // A file, not a pipe: a pipe nobody reads would block the server once full.
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("cannot start tagger serve")?;
        eprintln!("tagger serve (pid {}) on {addr}", child.id());
        Ok(Self { child, addr, log })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How it exited, if it has.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM first, so it shuts down as in production; SIGKILL if it has not after 5 s.
    fn stop(&mut self) -> anyhow::Result<()> {
        if self.exited().is_some() {
            return Ok(());
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if self.exited().is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().context("cannot kill tagger serve")?;
        self.child.wait().context("cannot reap tagger serve")?;
        bail!("tagger serve ignored SIGTERM for 5 s and was killed")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("{error:#}");
        }
    }
}

/// Everything measured against one server.
struct Results {
    ready_seconds: f64,
    steady: Phase,
    ramp: Vec<(Phase, Verdict)>,
    swap: Swap,
    baseline: Phase,
}

async fn measure_all(server: &Server, setup: &Setup, plan: Plan) -> anyhow::Result<Results> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        // Loopback only: an HTTP_PROXY in the environment must not get in between.
        .no_proxy()
        .build()?;
    let started = Instant::now();
    wait_until_ready(&client, server, setup.versions[0]).await?;
    let ready_seconds = started.elapsed().as_secs_f64();
    let load = Load {
        client,
        tag_url: server.url(&format!("/v1/projects/{PROJECT}/tag")),
        health_url: server.url("/healthz"),
        key: setup.key.clone(),
        bodies: Arc::clone(&setup.bodies),
    };
    // Untimed: opens the connections and faults in both sides' code and the model.
    let warm_up = load
        .open_loop(Target::Tag, STEADY_RATE, plan.warm_up, Instant::now())
        .await;
    eprintln!("warm-up: {}", warm_up.stats().summary());
    let observer = Observer::new(&load.client, server);
    // The baseline first and the ramp last: overload must not spill into the other phases.
    let baseline = observer
        .watch(|| load.open_loop(Target::Health, STEADY_RATE, plan.steady, Instant::now()))
        .await;
    eprintln!("d. /healthz: {}", baseline.stats().summary());
    tokio::time::sleep(plan.pause).await;
    let steady = observer
        .watch(|| load.open_loop(Target::Tag, STEADY_RATE, plan.steady, Instant::now()))
        .await;
    eprintln!("a. tag: {}", steady.stats().summary());
    tokio::time::sleep(plan.pause).await;
    let swap = hot_swap(&load, &observer, server, setup, plan).await;
    eprintln!("c. hot swap: {}", swap.phase.stats().summary());
    let mut ramp = Vec::new();
    let mut rate = STEADY_RATE;
    while rate <= RAMP_MAX_RATE {
        tokio::time::sleep(plan.pause).await;
        let phase = observer
            .watch(|| load.open_loop(Target::Tag, rate, plan.step, Instant::now()))
            .await;
        let verdict = Verdict::of(&phase.stats());
        eprintln!("b. {rate} req/s: {} {verdict:?}", phase.stats().summary());
        let passed = verdict.passed();
        ramp.push((phase, verdict));
        if !passed {
            break;
        }
        rate *= 2.0;
    }
    Ok(Results {
        ready_seconds,
        steady,
        ramp,
        swap,
        baseline,
    })
}

/// Polls `/readyz` until it answers 200 with the promoted version in service.
async fn wait_until_ready(
    client: &reqwest::Client,
    server: &Server,
    version: i64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match client.get(server.url("/readyz")).send().await {
            Ok(response) if response.status().is_success() => {
                let body: serde_json::Value = response.json().await?;
                let serving = body["models"]
                    .as_array()
                    .is_some_and(|models| models.iter().any(|m| m["version"] == version));
                if serving {
                    return Ok(());
                }
                last = format!("ready, but version {version} is not in service: {body}");
            }
            Ok(response) => last = format!("HTTP {}", response.status()),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "tagger serve was not ready within {} s ({last}); its log:\n{}",
        READY_TIMEOUT.as_secs(),
        server.log_tail()
    )
}

/// Reads the server's `/metrics` and both processes' CPU time around a phase, so the
/// tables can say where the time went (batching wait, model, CPU left on 2 cores).
struct Observer<'a> {
    client: &'a reqwest::Client,
    metrics_url: String,
    server_pid: u32,
    ticks_per_second: f64,
}

/// Cumulative figures at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    at: Option<Instant>,
    server_cpu: f64,
    bench_cpu: f64,
    /// Busy CPU seconds of the whole machine, every process included.
    machine_cpu: f64,
    queue_seconds: f64,
    /// Jobs (requests) the model thread took from its queue.
    jobs: f64,
    model_seconds: f64,
    batches: f64,
    batch_texts: f64,
    swaps: f64,
}

/// What happened during a phase, from two `Counters`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Usage {
    /// CPU cores busy on average.
    server_cores: f64,
    bench_cores: f64,
    /// Everything else on the machine (it is shared: other builds and tests run meanwhile).
    other_cores: f64,
    /// Share of the phase the model thread spent scoring.
    model_busy: f64,
    /// Mean time a request waited for the model thread (batching wait included).
    mean_queue_ms: f64,
    mean_batch_texts: f64,
    mean_model_ms_per_batch: f64,
    swaps: f64,
}

impl<'a> Observer<'a> {
    fn new(client: &'a reqwest::Client, server: &Server) -> Self {
        let ticks_per_second = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        Self {
            client,
            metrics_url: server.url("/metrics"),
            server_pid: server.child.id(),
            ticks_per_second,
        }
    }

    /// Runs the phase `start` makes between two readings; it is made after the first
    /// reading, so the time that reading takes does not make the phase's first sends late.
    async fn watch<F: std::future::Future<Output = Phase>>(
        &self,
        start: impl FnOnce() -> F,
    ) -> Phase {
        let before = self.counters().await;
        let mut phase = start().await;
        let after = self.counters().await;
        phase.usage = before.zip(after).and_then(|(b, a)| Usage::between(&b, &a));
        phase
    }

    async fn counters(&self) -> Option<Counters> {
        let text = self
            .client
            .get(&self.metrics_url)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let metric = |name: &str| metric_value(&text, name);
        Some(Counters {
            at: Some(Instant::now()),
            server_cpu: cpu_seconds(&self.server_pid.to_string(), self.ticks_per_second)?,
            bench_cpu: cpu_seconds("self", self.ticks_per_second)?,
            machine_cpu: machine_cpu_seconds(self.ticks_per_second)?,
            queue_seconds: metric("tagger_queue_seconds_sum")?,
            jobs: metric("tagger_queue_seconds_count")?,
            model_seconds: metric("tagger_model_seconds_sum")?,
            batches: metric("tagger_model_seconds_count")?,
            batch_texts: metric("tagger_batch_texts_sum")?,
            swaps: metric("tagger_model_swaps_total")?,
        })
    }
}

impl Usage {
    fn between(before: &Counters, after: &Counters) -> Option<Self> {
        let wall = after.at?.duration_since(before.at?).as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        let per = |value: f64, count: f64| if count > 0.0 { value / count } else { 0.0 };
        let batches = after.batches - before.batches;
        let server_cores = (after.server_cpu - before.server_cpu) / wall;
        let bench_cores = (after.bench_cpu - before.bench_cpu) / wall;
        let machine_cores = (after.machine_cpu - before.machine_cpu) / wall;
        Some(Self {
            server_cores,
            bench_cores,
            other_cores: (machine_cores - server_cores - bench_cores).max(0.0),
            model_busy: (after.model_seconds - before.model_seconds) / wall,
            mean_queue_ms: 1000.0
                * per(
                    after.queue_seconds - before.queue_seconds,
                    after.jobs - before.jobs,
                ),
            mean_batch_texts: per(after.batch_texts - before.batch_texts, batches),
            mean_model_ms_per_batch: 1000.0
                * per(after.model_seconds - before.model_seconds, batches),
            swaps: after.swaps - before.swaps,
        })
    }
}

/// Busy CPU seconds of all cores together, from the first line of /proc/stat.
pub(crate) fn machine_cpu_seconds(ticks_per_second: f64) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: all but idle and iowait are busy.
    let (idle, iowait) = (*ticks.get(3)?, *ticks.get(4)?);
    let total: f64 = ticks.iter().take(8).sum();
    Some((total - idle - iowait) / ticks_per_second)
}

/// The value of an unlabelled metric in the Prometheus text format.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// User and system CPU seconds of a process (all its threads) from /proc/<pid>/stat.
pub(crate) fn cpu_seconds(pid: &str, ticks_per_second: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, ticks) = command_and_cpu_ticks(&stat)?;
    Some(ticks / ticks_per_second)
}

/// The command name and the user + system CPU ticks in the text of a /proc/<pid>/stat.
pub(crate) fn command_and_cpu_ticks(stat: &str) -> Option<(&str, f64)> {
    // The command name may hold spaces and parentheses; the fields after it are plain numbers.
    let (head, tail) = stat.rsplit_once(')')?;
    let command = head.split_once('(')?.1;
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15; the list starts at field 3.
    Some((command, ticks(11)? + ticks(12)?))
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Target {
    /// `POST /v1/projects/P/tag` with the API key.
    Tag,
    /// `GET /healthz`: no model, no database.
    Health,
}

/// What every request of the generator needs.
pub(crate) struct Load {
    pub(crate) client: reqwest::Client,
    pub(crate) tag_url: String,
    pub(crate) health_url: String,
    pub(crate) key: String,
    pub(crate) bodies: Arc<Vec<String>>,
}

/// What happened to one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// 200; for tagging, the model version that answered.
    Ok(Option<i64>),
    /// An error status or a transport failure, by kind (e.g. "HTTP 503 unavailable").
    Failed(String),
    /// All MAX_IN_FLIGHT slots were busy at its due time.
    NotSent,
}

#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// When it was due, from the start of its phase.
    pub(crate) due: Duration,
    /// How long after its due time it was sent.
    pub(crate) lag: Duration,
    /// From sending it to the last byte of the answer.
    pub(crate) latency: Duration,
    pub(crate) outcome: Outcome,
}

impl Sample {
    pub(crate) fn sent(&self) -> Duration {
        self.due + self.lag
    }
}

/// One open-loop run at a fixed rate.
struct Phase {
    rate: f64,
    duration: Duration,
    samples: Vec<Sample>,
    /// What the processes did meanwhile, when it could be read.
    usage: Option<Usage>,
}

impl Phase {
    fn stats(&self) -> Stats {
        Stats::of(self.samples.iter(), self.duration)
    }
}

impl Load {
    /// Sends `rate × duration` requests, request i at `start + i/rate`, without waiting for
    /// answers; waits for the answers at the end (each is bounded by REQUEST_TIMEOUT).
    async fn open_loop(
        &self,
        target: Target,
        rate: f64,
        duration: Duration,
        start: Instant,
    ) -> Phase {
        let count = (rate * duration.as_secs_f64()).round() as usize;
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut samples = Vec::with_capacity(count);
        let mut answers = Vec::with_capacity(count);
        for i in 0..count {
            let due = Duration::from_secs_f64(i as f64 / rate);
            // Past its due time it goes at once: sleeping would wait for the next timer tick.
            if Instant::now() < start + due {
                tokio::time::sleep_until(start + due).await;
            }
            let lag = start.elapsed().saturating_sub(due);
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                samples.push(Sample {
                    due,
                    lag,
                    latency: Duration::ZERO,
                    outcome: Outcome::NotSent,
                });
                continue;
            };
            let request = self.request(target, i);
            answers.push(tokio::spawn(async move {
                let sample = send(request, target, due, lag).await;
                drop(slot);
                sample
            }));
        }
        for answer in answers {
            samples.push(answer.await.unwrap_or_else(|error| Sample {
                due: Duration::ZERO,
                lag: Duration::ZERO,
                latency: Duration::ZERO,
                outcome: Outcome::Failed(format!("task failed: {error}")),
            }));
        }
        samples.sort_by_key(|s| s.due);
        Phase {
            rate,
            duration,
            samples,
            usage: None,
        }
    }

    pub(crate) fn request(&self, target: Target, i: usize) -> reqwest::RequestBuilder {
        match target {
            Target::Health => self.client.get(&self.health_url),
            Target::Tag => self
                .client
                .post(&self.tag_url)
                .bearer_auth(&self.key)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(self.bodies[i % self.bodies.len()].clone()),
        }
    }
}

pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    target: Target,
    due: Duration,
    lag: Duration,
) -> Sample {
    let sent = std::time::Instant::now();
    let outcome = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(body) => classify(target, status, &body),
                Err(error) => Outcome::Failed(transport_error(&error)),
            }
        }
        Err(error) => Outcome::Failed(transport_error(&error)),
    };
    Sample {
        due,
        lag,
        latency: sent.elapsed(),
        outcome,
    }
}

/// A 200 with the version that answered, or the error status with the API's error code.
fn classify(target: Target, status: u16, body: &[u8]) -> Outcome {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if status != 200 {
        let code = json
            .as_ref()
            .and_then(|j| j.pointer("/error/code")?.as_str().map(String::from))
            .unwrap_or_default();
        return Outcome::Failed(format!("HTTP {status} {code}").trim_end().to_string());
    }
    match target {
        Target::Health => Outcome::Ok(None),
        Target::Tag => match json.as_ref().and_then(|j| j["version"].as_i64()) {
            Some(version) => Outcome::Ok(Some(version)),
            None => Outcome::Failed("HTTP 200 without a version".into()),
        },
    }
}

fn transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "cannot connect".into()
    } else {
        "connection error".into()
    }
}

/// The figures of a set of requests; latencies are those of successful requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    pub(crate) due: usize,
    pub(crate) ok: usize,
    pub(crate) failed: usize,
    not_sent: usize,
    late: usize,
    /// Sent later than TARGET_P99 after their due time.
    very_late: usize,
    max_lag: Duration,
    pub(crate) p50: Duration,
    p90: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
    /// Successful answers per second of the phase.
    pub(crate) answered_per_second: f64,
    errors: BTreeMap<String, usize>,
}

impl Stats {
    pub(crate) fn of<'a>(samples: impl Iterator<Item = &'a Sample>, duration: Duration) -> Self {
        let mut stats = Self::default();
        let mut latencies = Vec::new();
        for sample in samples {
            stats.due += 1;
            if sample.lag > LATE_AFTER {
                stats.late += 1;
            }
            if sample.lag > TARGET_P99 {
                stats.very_late += 1;
            }
            stats.max_lag = stats.max_lag.max(sample.lag);
            match &sample.outcome {
                Outcome::Ok(_) => {
                    stats.ok += 1;
                    latencies.push(sample.latency);
                }
                Outcome::Failed(kind) => {
                    stats.failed += 1;
                    *stats.errors.entry(kind.clone()).or_default() += 1;
                }
                Outcome::NotSent => stats.not_sent += 1,
            }
        }
        latencies.sort_unstable();
        stats.p50 = percentile(&latencies, 0.50);
        stats.p90 = percentile(&latencies, 0.90);
        stats.p99 = percentile(&latencies, 0.99);
        stats.max = latencies.last().copied().unwrap_or_default();
        stats.answered_per_second = stats.ok as f64 / duration.as_secs_f64().max(1e-9);
        stats
    }

    /// Failed or not sent: every request that did not get its answer.
    pub(crate) fn unanswered(&self) -> usize {
        self.failed + self.not_sent
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "{} due, {} ok, {} failed, {} not sent, {} late; p50 {} p99 {} max {} ms",
            self.due,
            self.ok,
            self.failed,
            self.not_sent,
            self.late,
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }

    /// "none", or "3 × HTTP 503 unavailable, 1 × cannot connect".
    pub(crate) fn error_kinds(&self) -> String {
        let mut kinds: Vec<String> = self
            .errors
            .iter()
            .map(|(kind, n)| format!("{n} × {kind}"))
            .collect();
        if self.not_sent > 0 {
            kinds.push(format!(
                "{} × not sent ({MAX_IN_FLIGHT} in flight)",
                self.not_sent
            ));
        }
        if kinds.is_empty() {
            "none".into()
        } else {
            kinds.join(", ")
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], share: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (share * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// Whether a step of the ramp held: p99 within the target, every request answered, and the
/// generator on schedule (else the rate was never really offered).
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Passed,
    Failed(Vec<String>),
}

impl Verdict {
    fn of(stats: &Stats) -> Self {
        let mut reasons = Vec::new();
        if stats.p99 > TARGET_P99 {
            reasons.push(format!(
                "p99 {} ms > {} ms",
                ms(stats.p99),
                TARGET_P99.as_millis()
            ));
        }
        if stats.unanswered() > 0 {
            reasons.push(format!("errors: {}", stats.error_kinds()));
        }
        // Sends a few ms late are the timer or a busy machine; more than the latency target
        // late on over 1% of requests, and the rate was not really offered.
        if stats.very_late * 100 > stats.due {
            reasons.push(format!(
                "generator behind schedule: {} sends over {} ms late (up to {} ms)",
                stats.very_late,
                TARGET_P99.as_millis(),
                ms(stats.max_lag)
            ));
        }
        if reasons.is_empty() {
            Self::Passed
        } else {
            Self::Failed(reasons)
        }
    }

    fn passed(&self) -> bool {
        *self == Self::Passed
    }

    fn describe(&self) -> String {
        match self {
            Self::Passed => "passed".into(),
            Self::Failed(reasons) => format!("failed: {}", reasons.join("; ")),
        }
    }
}

/// One `POST …/models/<id>/promote` during the hot-swap phase.
#[derive(Debug, Clone)]
struct Promotion {
    /// When it was sent, from the start of the phase.
    at: Duration,
    took: Duration,
    version: i64,
    /// What the server said it serves afterwards, or why the call failed.
    result: Result<i64, String>,
}

struct Swap {
    phase: Phase,
    promotions: Vec<Promotion>,
    /// The version the server had in service before the first promotion.
    initial: i64,
}

/// Steady load while another task promotes back and forth between the two versions.
async fn hot_swap(
    load: &Load,
    observer: &Observer<'_>,
    server: &Server,
    setup: &Setup,
    plan: Plan,
) -> Swap {
    // Shared by the load and the promoter; a little ahead, for the first /metrics reading.
    let start = Instant::now() + Duration::from_millis(50);
    let [first, second] = setup.versions;
    let promoter = async {
        let mut promotions = Vec::with_capacity(PROMOTIONS);
        for k in 0..PROMOTIONS {
            tokio::time::sleep_until(start + plan.promote_every * (k as u32 + 1)).await;
            let version = if k % 2 == 0 { second } else { first };
            let url = server.url(&format!("/v1/projects/{PROJECT}/models/{version}/promote"));
            let at = start.elapsed();
            let sent = Instant::now();
            let result = promote(&load.client, &url, &setup.key).await;
            let took = sent.elapsed();
            eprintln!(
                "promotion {}: version {version} in {} ms: {result:?}",
                k + 1,
                ms(took)
            );
            promotions.push(Promotion {
                at,
                took,
                version,
                result,
            });
        }
        promotions
    };
    let (phase, promotions) = tokio::join!(
        observer.watch(|| load.open_loop(Target::Tag, STEADY_RATE, plan.swap, start)),
        promoter
    );
    Swap {
        phase,
        promotions,
        initial: first,
    }
}

/// The version the server says it serves after the promotion.
pub(crate) async fn promote(client: &reqwest::Client, url: &str, key: &str) -> Result<i64, String> {
    let response = client
        .post(url)
        .bearer_auth(key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(r#"{"force": true}"#)
        .send()
        .await
        .map_err(|e| transport_error(&e))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {body}"));
    }
    if let Some(error) = body["swap_error"].as_str() {
        return Err(format!("swap failed: {error}"));
    }
    body["serving"]
        .as_i64()
        .ok_or_else(|| format!("no serving version in {body}"))
}

impl Swap {
    /// Requests sent within SWAP_WINDOW of a promotion call.
    fn near_a_promotion(&self, sample: &Sample) -> bool {
        let sent = sample.sent();
        self.promotions
            .iter()
            .any(|p| sent.abs_diff(p.at) <= SWAP_WINDOW)
    }

    /// Answers per model version.
    fn versions(&self) -> BTreeMap<i64, usize> {
        let mut counts = BTreeMap::new();
        for sample in &self.phase.samples {
            if let Outcome::Ok(Some(version)) = sample.outcome {
                *counts.entry(version).or_default() += 1;
            }
        }
        counts
    }

    /// Answers to requests that ran wholly between one promotion call's return and the next
    /// call, and those of them from another version than the one it put in service.
    fn staleness(&self) -> Staleness {
        let mut staleness = Staleness::default();
        for sample in &self.phase.samples {
            let Outcome::Ok(Some(version)) = sample.outcome else {
                continue;
            };
            let (sent, answered) = (sample.sent(), sample.sent() + sample.latency);
            // In flight while a call was: the server may have answered either way.
            if self
                .promotions
                .iter()
                .any(|p| sent <= p.at + p.took && answered >= p.at)
            {
                continue;
            }
            let last = self.promotions.iter().rfind(|p| p.at + p.took < sent);
            let expected = last.map_or(Ok(self.initial), |p| p.result.clone());
            // After a failed call nobody knows what should serve.
            let Ok(expected) = expected else {
                continue;
            };
            staleness.checked += 1;
            if version != expected {
                staleness.stale += 1;
                let returned = last.map_or(Duration::ZERO, |p| p.at + p.took);
                staleness.latest = staleness.latest.max(sent - returned);
                if let Some(p) = last {
                    staleness.promotions.insert(p.at.as_millis());
                }
            }
        }
        staleness
    }
}

/// Answers from a version that a finished promotion had already replaced.
#[derive(Debug, Default, PartialEq)]
struct Staleness {
    checked: usize,
    stale: usize,
    /// The longest time after a promotion returned that a request still got the old version.
    latest: Duration,
    /// The promotions (by their time in ms) after which it happened.
    promotions: std::collections::BTreeSet<u128>,
}

const LOAD_HEAD: &str = "| requests due | answered 200 | errors | late sends | p50 ms | p90 ms | p99 ms | max ms \
                         | CPU cores: server / generator / rest of machine | model thread busy \
                         | wait for model thread ms (mean) | texts per batch (mean) |\n\
                         |---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

fn load_row(phase: &Phase) -> String {
    let stats = phase.stats();
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        thousands(stats.due as f64),
        thousands(stats.ok as f64),
        stats.error_kinds(),
        stats.late,
        ms(stats.p50),
        ms(stats.p90),
        ms(stats.p99),
        ms(stats.max),
        usage_cells(phase.usage),
    )
}

/// The four usage cells; the model figures are "–" where no text reached the model.
fn usage_cells(usage: Option<Usage>) -> String {
    let Some(usage) = usage else {
        return "– | – | – | –".into();
    };
    let model = if usage.mean_batch_texts > 0.0 {
        format!(
            "{:.0}% | {:.2} | {:.1}",
            usage.model_busy * 100.0,
            usage.mean_queue_ms,
            usage.mean_batch_texts
        )
    } else {
        "– | – | –".into()
    };
    format!(
        "{:.2} / {:.2} / {:.2} | {model}",
        usage.server_cores, usage.bench_cores, usage.other_cores
    )
}

fn ramp_table(ramp: &[(Phase, Verdict)]) -> String {
    let mut table = String::from(
        "| offered req/s | requests due | answered 200/s | errors | p50 ms | p99 ms | max ms \
         | CPU cores: server / generator / rest of machine | model thread busy | wait for model thread ms (mean) \
         | texts per batch (mean) | verdict |\n\
         |---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (phase, verdict) in ramp {
        let stats = phase.stats();
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(phase.rate),
            thousands(stats.due as f64),
            thousands(stats.answered_per_second),
            stats.error_kinds(),
            ms(stats.p50),
            ms(stats.p99),
            ms(stats.max),
            usage_cells(phase.usage),
            verdict.describe(),
        );
    }
    table
}

fn swap_tables(swap: &Swap) -> String {
    let duration = swap.phase.duration;
    let (near, away): (Vec<&Sample>, Vec<&Sample>) = swap
        .phase
        .samples
        .iter()
        .partition(|s| swap.near_a_promotion(s));
    let mut table = String::from(
        "| requests | due | answered 200 | errors | p50 ms | p90 ms | p99 ms | max ms |\n\
         |---|---:|---:|---|---:|---:|---:|---:|\n",
    );
    let window = SWAP_WINDOW.as_secs();
    for (name, stats) in [
        ("all", swap.phase.stats()),
        (
            &*format!("within ±{window} s of a promotion"),
            Stats::of(near.into_iter(), duration),
        ),
        (
            &*format!("further than {window} s from any promotion"),
            Stats::of(away.into_iter(), duration),
        ),
    ] {
        let _ = writeln!(
            table,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(stats.due as f64),
            thousands(stats.ok as f64),
            stats.error_kinds(),
            ms(stats.p50),
            ms(stats.p90),
            ms(stats.p99),
            ms(stats.max),
        );
    }
    table.push_str(
        "\n| promotion | at s | to version | call ms | serving afterwards |\n|---:|---:|---:|---:|---|\n",
    );
    for (k, p) in swap.promotions.iter().enumerate() {
        let _ = writeln!(
            table,
            "| {} | {:.1} | {} | {} | {} |",
            k + 1,
            p.at.as_secs_f64(),
            p.version,
            ms(p.took),
            match &p.result {
                Ok(serving) => format!("version {serving}"),
                Err(error) => format!("error: {}", error.replace('|', "\\|")),
            }
        );
    }
    table.push('\n');
    table.push_str(&swap_notes(swap));
    table
}

/// What the server counted and whether every answer after a promotion came from the new version.
fn swap_notes(swap: &Swap) -> String {
    let mut notes = Vec::new();
    if let Some(usage) = swap.phase.usage {
        notes.push(format!(
            "The server counted {:.0} model swaps during the phase for {} promotions (`tagger_model_swaps_total`), \
             using {:.2} CPU cores (the generator {:.2}, the rest of the machine {:.2}).",
            usage.swaps,
            swap.promotions.len(),
            usage.server_cores,
            usage.bench_cores,
            usage.other_cores,
        ));
    }
    let staleness = swap.staleness();
    let checked = thousands(staleness.checked as f64);
    notes.push(if staleness.stale == 0 {
        format!(
            "All {checked} answers to requests sent after a promotion call had returned (and before the next began) \
             came from the version it put in service."
        )
    } else {
        format!(
            "{} of the {checked} answers to requests sent after a promotion call had returned (and before the next \
             began) came from the version it had replaced, after {} of the {} promotions and up to {} ms after the \
             call returned.",
            thousands(staleness.stale as f64),
            staleness.promotions.len(),
            swap.promotions.len(),
            ms(staleness.latest),
        )
    });
    notes.join(" ") + "\n"
}

/// The sentences on the issue's targets, from the numbers.
fn findings(results: &Results) -> String {
    let target = TARGET_P99.as_millis();
    let steady = results.steady.stats();
    let floor = results.baseline.stats();
    let verdict = if steady.p99 < TARGET_P99 && steady.unanswered() == 0 {
        "meets"
    } else {
        "misses"
    };
    let overhead = steady.p50.saturating_sub(floor.p50);
    let wait = results.steady.usage.map_or_else(String::new, |usage| {
        format!(
            ", of which {:.2} ms is the mean wait for the model thread (its batching window)",
            usage.mean_queue_ms
        )
    });
    let mut text = vec![format!(
        "At {STEADY_RATE:.0} requests/s tagging answered with p50 {} ms and p99 {} ms and {} failed requests, \
         so it {verdict} the target of p99 under {target} ms with no errors; against `/healthz` at the same rate \
         (p50 {} ms, p99 {} ms) tagging adds {} ms at p50{wait}.",
        ms(steady.p50),
        ms(steady.p99),
        steady.unanswered(),
        ms(floor.p50),
        ms(floor.p99),
        ms(overhead),
    )];
    let passed = results.ramp.iter().rfind(|(_, v)| v.passed());
    let failed = results.ramp.iter().find(|(_, v)| !v.passed());
    let passed_text = passed.map_or_else(
        || format!("no rate passed, not even {STEADY_RATE:.0} requests/s"),
        |(phase, _)| {
            format!(
                "the highest rate that held was {} requests/s (p99 {} ms)",
                thousands(phase.rate),
                ms(phase.stats().p99)
            )
        },
    );
    text.push(match failed {
        Some((phase, verdict)) => format!(
            "Stepping up the rate, {passed_text}; {} requests/s failed ({}){}.",
            thousands(phase.rate),
            verdict
                .describe()
                .trim_start_matches("failed: ")
                .replace('|', "\\|"),
            phase.usage.map_or_else(String::new, |usage| format!(
                ", with the server on {:.2} CPU cores, the generator on {:.2} and other processes on {:.2} \
                 of the machine's {}",
                usage.server_cores,
                usage.bench_cores,
                usage.other_cores,
                std::thread::available_parallelism().map_or(0, |n| n.get()),
            )),
        ),
        None => format!(
            "Stepping up the rate, {passed_text}: every step up to {} requests/s passed, so the ceiling is higher.",
            thousands(RAMP_MAX_RATE)
        ),
    });
    let swap = &results.swap;
    let all = swap.phase.stats();
    let near: Vec<&Sample> = swap
        .phase
        .samples
        .iter()
        .filter(|s| swap.near_a_promotion(s))
        .collect();
    let near = Stats::of(near.into_iter(), swap.phase.duration);
    let versions = swap.versions();
    let served: Vec<String> = versions
        .iter()
        .map(|(version, n)| format!("version {version}: {} answers", thousands(*n as f64)))
        .collect();
    let both = swap.promotions.len() > 1
        && [swap.initial, swap.promotions[0].version]
            .iter()
            .all(|v| versions.contains_key(v));
    let stale = swap.staleness().stale;
    let failed_promotions = swap.promotions.iter().filter(|p| p.result.is_err()).count();
    text.push(format!(
        "During {} promotions under {STEADY_RATE:.0} requests/s {} requests failed (target 0: {}), \
         p99 was {} ms overall and {} ms within ±{} s of a promotion ({}), and {} ({}){}{}.",
        swap.promotions.len(),
        all.unanswered(),
        if all.unanswered() == 0 { "met" } else { "missed" },
        ms(all.p99),
        ms(near.p99),
        SWAP_WINDOW.as_secs(),
        if near.p99 < TARGET_P99 {
            "under the target"
        } else {
            "over the target"
        },
        if both {
            "both versions served"
        } else {
            "NOT both versions served"
        },
        served.join(", "),
        if stale > 0 {
            format!(
                "; but {} answers came from a version that a finished promotion had already replaced",
                thousands(stale as f64)
            )
        } else {
            String::new()
        },
        if failed_promotions > 0 {
            format!("; {failed_promotions} promotion calls failed")
        } else {
            String::new()
        },
    ));
    text.join(" ")
}

fn section(args: &ServeBench, plan: Plan, setup: &Setup, results: &Results) -> String {
    let [first, second] = setup.versions;
    // "20" in a full run, "0.2" in a quick one.
    let seconds = |d: Duration| d.as_secs_f64().to_string();
    format!(
        "## Serving (tagger serve)\n\n\
         Measured {date} on {machine}, with:\n\n\
         ```sh\ncargo build --release --bins && \
         cargo run --release --bin bench -- serve --output {output}{quick}\n```\n\n\
         Set-up with the release `tagger`: {tickets} synthetic demo tickets (seed {SEED}) imported into a fresh \
         SQLite database as project `{PROJECT}`, `tagger train` twice (ngram versions {first} and {second}), \
         `tagger keys create`, version {first} promoted. Then `tagger serve` on 127.0.0.1 \
         (TAGGER_MODEL_WATCH_SECONDS={WATCH_SECONDS}; ready {ready:.1} s after start). \
         The load comes from the bench binary itself, on the same 2 cores as the server: one tokio thread \
         with reqwest and keep-alive connections, open loop (request i is sent at t0 + i/rate whatever the \
         earlier ones are doing; at most {MAX_IN_FLIGHT} in flight, a request finding no free slot is not sent \
         and counts as an error). Tagging requests are `POST /v1/projects/{PROJECT}/tag` with \
         `Authorization: Bearer <key>` and `{{\"subject\", \"body\"}}` of the synthetic tickets in turn. \
         Latency runs from sending a request to the last byte of its answer, over the requests answered 200; \
         \"late sends\" left more than {late} ms after their due time (the generator, not the server, fell behind; \
         a step of b fails for it only when over 1% of its sends are more than {target} ms late). \
         CPU cores are each process's user and system CPU time over the phase's wall time (from /proc; \
         \"rest of machine\" is every other process, as the machine is shared); the model thread's busy share \
         (`tagger_model_seconds`), its mean wait (batching wait included, `tagger_queue_seconds`) and texts per \
         batch (`tagger_batch_texts`) come from the server's own `/metrics`, read before and after each phase. \
         The 1-minute load average was {load_before} before the run and {load_after} after it. \
         A {warm} s warm-up at {STEADY_RATE:.0} requests/s comes first and is not counted; \
         the phases ran in the order d, a, c, b.\n\n\
         ### a. Tagging at {STEADY_RATE:.0} requests/s for {steady} s\n\n{LOAD_HEAD}{a}\n\
         ### b. Highest sustained rate ({step} s per step, rate doubled until p99 > {target} ms or any error)\n\n{b}\n\
         ### c. Hot swap: {promotions} promotions under {STEADY_RATE:.0} requests/s for {swap} s\n\n\
         A second task promotes versions {second} and {first} in turn every {every} s with \
         `POST /v1/projects/{PROJECT}/models/<id>/promote`, body `{{\"force\": true}}`, with the same API key.\n\n{c}\n\
         ### d. Baseline: `GET /healthz` at {STEADY_RATE:.0} requests/s for {steady} s (no model, no database)\n\n{LOAD_HEAD}{d}\n\
         {findings}\n",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = machine(),
        output = args.output.display(),
        quick = if args.quick { " --quick" } else { "" },
        tickets = thousands(TICKETS as f64),
        ready = results.ready_seconds,
        load_before = setup.load_average,
        load_after = load_average(),
        late = LATE_AFTER.as_millis(),
        warm = seconds(plan.warm_up),
        steady = seconds(plan.steady),
        step = seconds(plan.step),
        target = TARGET_P99.as_millis(),
        promotions = results.swap.promotions.len(),
        every = seconds(plan.promote_every),
        swap = seconds(plan.swap),
        a = load_row(&results.steady),
        b = ramp_table(&results.ramp),
        c = swap_tables(&results.swap),
        d = load_row(&results.baseline),
        findings = findings(results),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(due_ms: u64, latency_ms: u64, outcome: Outcome) -> Sample {
        Sample {
            due: Duration::from_millis(due_ms),
            lag: Duration::ZERO,
            latency: Duration::from_millis(latency_ms),
            outcome,
        }
    }

    #[test]
    fn metrics_and_cpu_times_are_read() {
        let text = "# HELP x\ntagger_queue_seconds_sum 0.25\ntagger_queue_seconds_count 10\n\
                    tagger_queue_seconds_bucket{le=\"+Inf\"} 10\n";
        assert_eq!(metric_value(text, "tagger_queue_seconds_sum"), Some(0.25));
        assert_eq!(metric_value(text, "tagger_queue_seconds_count"), Some(10.0));
        assert_eq!(metric_value(text, "tagger_queue_seconds"), None);
        assert!(cpu_seconds("self", 100.0).is_some_and(|s| s >= 0.0));
        let stat = "42 (postgres: a (b)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(
            command_and_cpu_ticks(stat),
            Some(("postgres: a (b)", 300.0))
        );
        let before = Counters {
            at: Some(Instant::now()),
            jobs: 10.0,
            queue_seconds: 0.01,
            batches: 5.0,
            batch_texts: 10.0,
            ..Counters::default()
        };
        let after = Counters {
            at: before.at.map(|at| at + Duration::from_secs(2)),
            server_cpu: 1.0,
            machine_cpu: 3.0,
            model_seconds: 0.5,
            jobs: 30.0,
            queue_seconds: 0.05,
            batches: 10.0,
            batch_texts: 30.0,
            ..Counters::default()
        };
        let usage = Usage::between(&before, &after).unwrap();
        assert_eq!(usage.server_cores, 0.5);
        assert_eq!(usage.other_cores, 1.0);
        assert_eq!(usage.model_busy, 0.25);
        assert!(machine_cpu_seconds(100.0).is_some());
        assert!((usage.mean_queue_ms - 2.0).abs() < 1e-9);
        assert_eq!(usage.mean_batch_texts, 4.0);
    }

    #[test]
    fn findings_say_whether_each_target_is_met() {
        let phase = |rate: f64, latency_ms: u64, outcome: Outcome| Phase {
            rate,
            duration: Duration::from_secs(1),
            samples: (0..100)
                .map(|i| sample(i * 10, latency_ms, outcome.clone()))
                .collect(),
            usage: None,
        };
        let ramp = vec![
            (phase(200.0, 3, Outcome::Ok(Some(1))), Verdict::Passed),
            (
                phase(400.0, 40, Outcome::Ok(Some(1))),
                Verdict::Failed(vec!["p99 40.00 ms > 25 ms".into()]),
            ),
        ];
        let mut swap_phase = phase(200.0, 3, Outcome::Ok(Some(1)));
        swap_phase.samples[99].outcome = Outcome::Ok(Some(2));
        let results = Results {
            ready_seconds: 0.1,
            steady: phase(200.0, 3, Outcome::Ok(Some(1))),
            ramp,
            swap: Swap {
                phase: swap_phase,
                promotions: vec![Promotion {
                    at: Duration::from_millis(950),
                    took: Duration::from_millis(5),
                    version: 2,
                    result: Ok(2),
                }],
                initial: 1,
            },
            baseline: phase(200.0, 1, Outcome::Ok(None)),
        };
        let text = findings(&results);
        assert!(
            text.contains("p99 3.00 ms and 0 failed requests, so it meets"),
            "{text}"
        );
        assert!(text.contains("tagging adds 2.00 ms at p50"), "{text}");
        assert!(
            text.contains("the highest rate that held was 200 requests/s (p99 3.00 ms); 400 requests/s failed (p99 40.00 ms > 25 ms)"),
            "{text}"
        );
        assert!(text.contains("0 requests failed (target 0: met)"), "{text}");
        assert!(
            text.contains("both versions served (version 1: 99 answers, version 2: 1 answers)"),
            "{text}"
        );
    }

    #[test]
    fn train_output_gives_the_version() {
        let stdout = "model version 7 (ngram) trained in 1.2 s; files in /tmp/x\naccuracy 0.9\n";
        assert_eq!(trained_version(stdout), Some(7));
        assert_eq!(trained_version("nothing"), None);
    }

    #[test]
    fn answers_are_classified_with_their_version_or_error_code() {
        let ok = br#"{"version": 3, "tags": []}"#;
        assert_eq!(classify(Target::Tag, 200, ok), Outcome::Ok(Some(3)));
        assert_eq!(classify(Target::Health, 200, b"{}"), Outcome::Ok(None));
        let full = br#"{"error": {"code": "unavailable", "message": "queue full"}}"#;
        assert_eq!(
            classify(Target::Tag, 503, full),
            Outcome::Failed("HTTP 503 unavailable".into())
        );
        assert_eq!(
            classify(Target::Tag, 502, b"bad gateway"),
            Outcome::Failed("HTTP 502".into())
        );
        assert!(matches!(
            classify(Target::Tag, 200, b"{}"),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn stats_count_failures_apart_from_latencies() {
        let mut samples: Vec<Sample> = (1..=100)
            .map(|i| sample(i, i, Outcome::Ok(Some(1))))
            .collect();
        samples.push(sample(
            101,
            1,
            Outcome::Failed("HTTP 503 unavailable".into()),
        ));
        samples.push(sample(102, 0, Outcome::NotSent));
        let stats = Stats::of(samples.iter(), Duration::from_secs(1));
        assert_eq!((stats.due, stats.ok, stats.unanswered()), (102, 100, 2));
        assert_eq!(stats.p50, Duration::from_millis(50));
        assert_eq!(stats.p99, Duration::from_millis(99));
        assert_eq!(stats.max, Duration::from_millis(100));
        assert_eq!(
            stats.error_kinds(),
            "1 × HTTP 503 unavailable, 1 × not sent (256 in flight)"
        );
        assert!(!Verdict::of(&stats).passed());
        let fast: Vec<Sample> = (1..=100).map(|i| sample(i, 1, Outcome::Ok(None))).collect();
        assert!(Verdict::of(&Stats::of(fast.iter(), Duration::from_secs(1))).passed());
    }

    #[test]
    fn stale_answers_are_those_from_the_replaced_version() {
        let promotion = |at_ms, version, result| Promotion {
            at: Duration::from_millis(at_ms),
            took: Duration::from_millis(10),
            version,
            result,
        };
        let swap = Swap {
            phase: Phase {
                rate: 1.0,
                duration: Duration::from_secs(5),
                usage: None,
                samples: vec![
                    sample(500, 1, Outcome::Ok(Some(1))),
                    // During the call: either version is right.
                    sample(1_005, 1, Outcome::Ok(Some(1))),
                    sample(1_500, 1, Outcome::Ok(Some(2))),
                    sample(1_600, 1, Outcome::Ok(Some(1))),
                    sample(4_000, 1, Outcome::Ok(Some(1))),
                ],
            },
            promotions: vec![
                promotion(1_000, 2, Ok(2)),
                promotion(3_000, 1, Err("HTTP 500".into())),
            ],
            initial: 1,
        };
        let staleness = swap.staleness();
        assert_eq!((staleness.checked, staleness.stale), (3, 1));
        assert_eq!(staleness.latest, Duration::from_millis(590));
        assert_eq!(staleness.promotions.len(), 1);
        assert!(swap.near_a_promotion(&swap.phase.samples[0]));
        assert!(!swap.near_a_promotion(&sample(4_500, 1, Outcome::NotSent)));
        assert_eq!(swap.versions(), BTreeMap::from([(1, 4), (2, 1)]));
    }
}
