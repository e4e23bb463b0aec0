//! `bench idle`: what an idle `tagger demo` costs. Starts the demo in a scratch folder,
//! waits for its start-up (the first model trained, promoted and serving, then the
//! background jobs it sets off), samples the process's CPU time from `/proc/PID/stat` every
//! second with no traffic, then under a short tagging load from one client as the same-run
//! baseline, and writes the table into docs/benchmarks.md (issue 14, target: under 1% of a
//! core when idle).

use super::serve::cpu_seconds;
use super::{Markers, ScratchDir, load_average, machine, tagger_binary, write_section};
use anyhow::{Context, bail};
use clap::Args;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MARKERS: Markers = Markers {
    start: "<!-- bench:idle:start -->",
    end: "<!-- bench:idle:end -->",
};
/// The issue's target for an idle demo, in cores.
const TARGET_CORES: f64 = 0.01;
/// Start-up is over when a window of this many seconds used less than `QUIET_CORES`.
const QUIET_WINDOW_SECONDS: u64 = 5;
const QUIET_CORES: f64 = 0.05;
/// The longest start-up waited for (the first model trains in it).
const START_UP_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, Args)]
pub struct IdleBench {
    /// Seconds of idle sampling.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Seconds of tagging load for the baseline.
    #[arg(long, default_value_t = 10)]
    load_seconds: u64,
    /// The `tagger` to measure [default: the release build next to this binary].
    #[arg(long)]
    tagger: Option<PathBuf>,
    /// Markdown file whose idle section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
}

/// `tagger demo` as a child process, stopped when dropped.
struct Demo {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Demo {
    fn start(tagger: &Path, work: &Path) -> anyhow::Result<Self> {
        let addr = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
        let log = work.join("demo.log");
        let file =
            std::fs::File::create(&log).context(format!("cannot create {}", log.display()))?;
        let child = Command::new(tagger)
            // The scratch folder holds no tagger.toml, so a local config cannot change the run.
            .current_dir(work)
            .env("TAGGER_LOG", "warn")
            .arg("--data-dir")
            .arg(work.join("data"))
            .args(["demo", "--addr", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("cannot start tagger demo")?;
        eprintln!("tagger demo (pid {}) on {addr}", child.id());
        Ok(Self {
            child,
            base: format!("http://{addr}"),
            log,
        })
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU of one phase: cores used on average and in the busiest one-second sample.
#[derive(Debug, Clone, Copy)]
struct Usage {
    seconds: f64,
    mean_cores: f64,
    peak_cores: f64,
}

/// Samples the process's CPU time every second for `seconds`.
fn sample(pid: &str, ticks: f64, seconds: u64) -> anyhow::Result<Usage> {
    let read = || cpu_seconds(pid, ticks).context("cannot read /proc/PID/stat of tagger demo");
    let started = Instant::now();
    let first = read()?;
    let mut last = first;
    let mut peak: f64 = 0.0;
    for i in 1..=seconds {
        let due = started + Duration::from_secs(i);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let now = read()?;
        peak = peak.max(now - last);
        last = now;
    }
    let wall = started.elapsed().as_secs_f64();
    Ok(Usage {
        seconds: wall,
        mean_cores: (last - first) / wall,
        peak_cores: peak,
    })
}

/// The ticks `/proc` counts CPU time in, per second.
pub(crate) fn ticks_per_second() -> anyhow::Result<f64> {
    let output = Command::new("getconf").arg("CLK_TCK").output()?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .context("getconf CLK_TCK gave no number")
}

pub fn run(args: &IdleBench) -> anyhow::Result<()> {
    let tagger = match &args.tagger {
        Some(path) => path.clone(),
        None => tagger_binary()?,
    };
    let ticks = ticks_per_second()?;
    let load_average = load_average();
    let work = ScratchDir::create()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let demo = Demo::start(&tagger, &work.0)?;
    let client = reqwest::Client::new();
    let started = Instant::now();

    // Start-up: the first model in service, then a quiet window (the re-tag and the review
    // queue's scoring run after the promotion).
    let version = runtime.block_on(async {
        loop {
            if started.elapsed() > START_UP_LIMIT {
                bail!(
                    "no model in service after {} s; the demo's log:\n{}",
                    START_UP_LIMIT.as_secs(),
                    demo.log_tail()
                );
            }
            if let Ok(answer) = client.get(format!("{}/readyz", demo.base)).send().await
                && let Ok(body) = answer.json::<serde_json::Value>().await
                && let Some(version) = body["models"]
                    .as_array()
                    .and_then(|m| m.iter().find_map(|p| p["version"].as_i64()))
            {
                return Ok(version);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })?;
    let serving_after = started.elapsed().as_secs_f64();
    eprintln!("version {version} in service after {serving_after:.1} s");
    loop {
        let window = sample(&demo.pid(), ticks, QUIET_WINDOW_SECONDS)?;
        if window.mean_cores < QUIET_CORES {
            break;
        }
        if started.elapsed() > START_UP_LIMIT {
            bail!("the demo never went quiet: {:.3} cores", window.mean_cores);
        }
    }
    let quiet_after = started.elapsed().as_secs_f64();
    eprintln!(
        "quiet after {quiet_after:.1} s; sampling {} s idle",
        args.seconds
    );
    let idle = sample(&demo.pid(), ticks, args.seconds)?;

    // The baseline: the same process tagging, one client, one request after another.
    let key_output = Command::new(&tagger)
        .current_dir(&work.0)
        .arg("--data-dir")
        .arg(work.0.join("data"))
        .args([
            "keys",
            "create",
            "--project",
            "Demo",
            "--name",
            "bench-idle",
        ])
        .output()
        .context("cannot run tagger keys create")?;
    let key = String::from_utf8_lossy(&key_output.stdout)
        .trim()
        .to_string();
    if !key_output.status.success() || key.is_empty() || key.contains(char::is_whitespace) {
        bail!(
            "tagger keys create printed no single secret: {key:?} {}",
            String::from_utf8_lossy(&key_output.stderr)
        );
    }
    let texts = datasets::demo::generate(200, 7, chrono::Utc::now());
    let pid = demo.pid();
    let load_seconds = args.load_seconds;
    let tag_url = format!("{}/v1/projects/Demo/tag", demo.base);
    let sampler = std::thread::spawn(move || sample(&pid, ticks, load_seconds));
    let requests = runtime.block_on(async {
        let until = Instant::now() + Duration::from_secs(load_seconds);
        let mut sent = 0u64;
        for ticket in texts.iter().cycle() {
            if Instant::now() >= until {
                break;
            }
            let answer = client
                .post(&tag_url)
                .bearer_auth(&key)
                .json(&serde_json::json!({"subject": ticket.subject, "body": ticket.body}))
                .send()
                .await?;
            if !answer.status().is_success() {
                bail!("tagging answered {}", answer.status());
            }
            sent += 1;
        }
        Ok(sent)
    })?;
    let load = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the sampler panicked"))??;

    let verdict = if idle.mean_cores < TARGET_CORES {
        "met"
    } else {
        "missed"
    };
    let release = tagger.components().any(|c| c.as_os_str() == "release");
    let (build, command) = if release {
        (
            "release",
            "cargo build --release --bins && cargo run --release --bin bench -- idle",
        )
    } else {
        (
            "dev (dependencies at opt-level 3)",
            "cargo build --bins && cargo run --bin bench -- idle --tagger target/debug/tagger",
        )
    };
    let section = format!(
        "## Idle server, measured by `bench idle`\n\n\
         Measured {date} on {machine} (1-minute load average {load_average} before the run), {build} build, with:\n\n\
         ```sh\n{command} --seconds {seconds} --load-seconds {load_seconds}\n```\n\n\
         `TAGGER_LOG=warn tagger --data-dir DIR demo --addr 127.0.0.1:PORT` in a scratch folder; start-up is over once \
         `/readyz` shows version {version} in service ({serving_after:.1} s) and a {QUIET_WINDOW_SECONDS}-second window used \
         under {QUIET_CORES} cores ({quiet_after:.1} s). CPU is `utime + stime` of the process (all threads) from \
         `/proc/PID/stat`, read every second. The baseline is the same process tagging demo tickets for \
         {load_seconds} s, one client sending one request after another.\n\n\
         | phase | seconds | CPU, mean | busiest second | requests/s |\n\
         |---|---:|---:|---:|---:|\n\
         | idle, no traffic | {idle_s:.0} | {idle_mean:.4} cores | {idle_peak:.2} cores | – |\n\
         | tagging, one client | {load_s:.0} | {load_mean:.3} cores | {load_peak:.2} cores | {rate:.0} |\n\n\
         Target (under {TARGET_CORES} of a core idle): {verdict}.\n\n",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = machine(),
        seconds = args.seconds,
        idle_s = idle.seconds,
        idle_mean = idle.mean_cores,
        idle_peak = idle.peak_cores,
        load_s = load.seconds,
        load_mean = load.mean_cores,
        load_peak = load.peak_cores,
        rate = requests as f64 / load.seconds,
    );
    print!("{section}");
    drop(demo);
    write_section(
        &args.output,
        &section,
        MARKERS,
        Some("<!-- bench:active-learning:end -->"),
    )
}
