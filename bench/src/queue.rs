//! `bench queue`: a training job end to end, as a user runs it — submitted over the API,
//! taken by a worker, trained, promoted, and serving — on SQLite (`serve --with-worker`, one
//! process) and PostgreSQL (`serve` and a separate `tagger worker`). Beside it, in the same
//! run, the same training done directly with `tagger train`: the difference is what the
//! queue, the worker and the swap cost. Writes a marked section of docs/benchmarks.md.

use super::{
    Markers, Postgres, ScratchDir, machine, redact, run_checked, tagger_binary, with_database,
    write_csv, write_section,
};
use anyhow::{Context, bail};
use clap::Args;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MARKERS: Markers = Markers {
    start: "<!-- bench:queue:start -->",
    end: "<!-- bench:queue:end -->",
};
const AFTER_MARKER: &str = "<!-- bench:serve:end -->";
const PROJECT: &str = "bench";
const TICKETS: usize = 2400;
const POLL: Duration = Duration::from_millis(20);
const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Args)]
pub struct QueueBench {
    /// Runs per database; the table shows medians.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// A PostgreSQL server to create a scratch database on; unreachable means SQLite only.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// The benchmark document to update.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
}

/// One end-to-end run, in seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    /// Submit → a worker started it (from the run's own timestamps).
    queue_wait: f64,
    /// Started → finished in the worker (training, evaluation, files, version row).
    in_worker: f64,
    /// Submit → the client sees `succeeded`.
    to_candidate: f64,
    /// Promote request → a tag request answered by the new version.
    promote_to_serving: f64,
    /// Submit → serving.
    total: f64,
}

struct Row {
    backend: String,
    setup: &'static str,
    direct_train: f64,
    timing: Timing,
}

pub fn run(args: &QueueBench) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        bail!("run the queue bench from a release build: cargo run --release --bin bench -- queue");
    }
    let tagger = tagger_binary()?;
    let work = ScratchDir::create()?;
    let work_dir = work.0.canonicalize()?;
    let csv = work_dir.join("tickets.csv");
    write_csv(&csv, TICKETS, chrono::Utc::now())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();

    let sqlite_dir = work_dir.join("sqlite");
    std::fs::create_dir_all(&sqlite_dir)?;
    let sqlite_url = format!("sqlite://{}", sqlite_dir.join("tagger.db").display());
    rows.push(measure(
        &runtime,
        &tagger,
        &sqlite_dir,
        &csv,
        &sqlite_url,
        "SQLite",
        true,
        args.repeats,
    )?);

    match Postgres::connect(&args.postgres) {
        Ok(postgres) => {
            postgres.recreate()?;
            let pg_dir = work_dir.join("postgres");
            std::fs::create_dir_all(&pg_dir)?;
            let url = with_database(&args.postgres, &postgres.name);
            rows.push(measure(
                &runtime,
                &tagger,
                &pg_dir,
                &csv,
                &url,
                &format!("PostgreSQL ({})", redact(&args.postgres)),
                false,
                args.repeats,
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
    tagger: &Path,
    dir: &Path,
    csv: &Path,
    url: &str,
    backend: &str,
    in_process_worker: bool,
    repeats: usize,
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
    // The baseline: the same training without queue, worker or server.
    let mut direct = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        run_tagger(&["train", "--project", PROJECT])?;
        direct.push(started.elapsed().as_secs_f64());
    }
    // A first version in service, so promotions below are swaps, as in production.
    cli.promote_first(PROJECT)?;
    let key = run_tagger(&["keys", "create", "--project", PROJECT, "--name", "bench"])?
        .trim()
        .to_string();

    let addr = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
    let mut serve_args = vec!["--database-url", url, "serve"];
    if in_process_worker {
        serve_args.push("--with-worker");
    }
    let addr_text = addr.to_string();
    serve_args.extend(["--addr", addr_text.as_str()]);
    let mut children = vec![TaggerProcess::spawn(
        tagger,
        dir,
        &data_dir,
        &serve_args,
        "serve",
    )?];
    if !in_process_worker {
        children.push(TaggerProcess::spawn(
            tagger,
            dir,
            &data_dir,
            &["--database-url", url, "worker"],
            "worker",
        )?);
    }
    let timings = runtime.block_on(async {
        let client = reqwest::Client::new();
        wait_until_ready(&client, addr).await?;
        let mut timings = Vec::new();
        for _ in 0..repeats {
            timings.push(end_to_end(&client, addr, &key).await?);
        }
        anyhow::Ok(timings)
    });
    for child in &mut children {
        child.stop();
    }
    let timings = timings?;
    Ok(Row {
        backend: backend.to_string(),
        setup: if in_process_worker {
            "`serve --with-worker`"
        } else {
            "`serve` + `tagger worker`"
        },
        direct_train: median(direct),
        timing: Timing {
            queue_wait: median(timings.iter().map(|t| t.queue_wait).collect()),
            in_worker: median(timings.iter().map(|t| t.in_worker).collect()),
            to_candidate: median(timings.iter().map(|t| t.to_candidate).collect()),
            promote_to_serving: median(timings.iter().map(|t| t.promote_to_serving).collect()),
            total: median(timings.iter().map(|t| t.total).collect()),
        },
    })
}

pub(crate) async fn wait_until_ready(
    client: &reqwest::Client,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(format!("http://{addr}/healthz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("tagger serve did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn seconds_between(run: &serde_json::Value, from: &str, to: &str) -> anyhow::Result<f64> {
    let parse = |key: &str| -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
        run[key]
            .as_str()
            .and_then(|t| t.parse().ok())
            .context(format!("the run has no {key}: {run}"))
    };
    Ok((parse(to)? - parse(from)?).as_seconds_f64())
}

async fn end_to_end(
    client: &reqwest::Client,
    addr: SocketAddr,
    key: &str,
) -> anyhow::Result<Timing> {
    let base = format!("http://{addr}/v1/projects/{PROJECT}");
    let auth = format!("Bearer {key}");
    let started = Instant::now();
    let queued: serde_json::Value = client
        .post(format!("{base}/training-runs"))
        .header("authorization", &auth)
        .json(&serde_json::json!({"kind": "ngram"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = queued["id"].as_i64().context("no run id")?;
    let run = loop {
        let run: serde_json::Value = client
            .get(format!("{base}/training-runs/{id}"))
            .header("authorization", &auth)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        match run["status"].as_str() {
            Some("succeeded") => break run,
            Some("queued" | "running") => {}
            _ => bail!("the training run did not succeed: {run}"),
        }
        if started.elapsed() > TIMEOUT {
            bail!("the training run took over {TIMEOUT:?}: {run}");
        }
        tokio::time::sleep(POLL).await;
    };
    let to_candidate = started.elapsed().as_secs_f64();
    let version = run["version_id"].as_i64().context("no version")?;
    let promoting = Instant::now();
    client
        .post(format!("{base}/models/{version}/promote"))
        .header("authorization", &auth)
        .json(&serde_json::json!({"force": true}))
        .send()
        .await?
        .error_for_status()?;
    // Serving means a tag request answered by the new version.
    loop {
        let tagged: serde_json::Value = client
            .post(format!("{base}/tag"))
            .header("authorization", &auth)
            .json(&serde_json::json!({"subject": "Cannot log in", "body": "The app crashes."}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if tagged["version"].as_i64() == Some(version) {
            break;
        }
        if promoting.elapsed() > TIMEOUT {
            bail!("version {version} never served");
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(Timing {
        queue_wait: seconds_between(&run, "created_at", "started_at")?,
        in_worker: seconds_between(&run, "started_at", "finished_at")?,
        to_candidate,
        promote_to_serving: promoting.elapsed().as_secs_f64(),
        total: started.elapsed().as_secs_f64(),
    })
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A `tagger` child process, logging to a file, stopped with SIGTERM.
/// The release `tagger` run as a script runs it, on one database and data directory.
pub(crate) struct TaggerCli<'a> {
    pub(crate) binary: &'a Path,
    pub(crate) dir: &'a Path,
    pub(crate) data_dir: &'a Path,
    pub(crate) url: &'a str,
}

impl TaggerCli<'_> {
    /// Runs `tagger ARGS`; its standard output, or its error output as the error.
    pub(crate) fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(self.binary)
            .current_dir(self.dir)
            .env("TAGGER_DATA_DIR", self.data_dir)
            .args(["--database-url", self.url])
            .args(args)
            .output()?;
        if !output.status.success() {
            bail!(
                "tagger {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Imports a CSV written by `write_csv` (labelled tickets) into `project`.
    pub(crate) fn import(&self, project: &str, csv: &Path) -> anyhow::Result<String> {
        self.run(&[
            "import",
            "--project",
            project,
            "--file",
            &csv.display().to_string(),
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
        ])
    }

    /// Puts the project's first listed version in service (forced: no guard to pass).
    pub(crate) fn promote_first(&self, project: &str) -> anyhow::Result<()> {
        let versions = self.run(&["models", "list", "--project", project])?;
        let first = versions
            .lines()
            .find_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
            .context(format!("no version in `tagger models list`: {versions}"))?;
        self.run(&[
            "models",
            "promote",
            "--project",
            project,
            "--version",
            &first.to_string(),
            "--force",
        ])?;
        Ok(())
    }
}

pub(crate) struct TaggerProcess {
    child: Child,
    log: PathBuf,
}

impl TaggerProcess {
    pub(crate) fn spawn(
        tagger: &Path,
        dir: &Path,
        data_dir: &Path,
        args: &[&str],
        name: &str,
    ) -> anyhow::Result<Self> {
        // Promotions made elsewhere are followed within this; the promote call swaps at once.
        let watch = [("TAGGER_MODEL_WATCH_SECONDS", "0.5")];
        Self::spawn_with_env(tagger, dir, data_dir, args, name, &watch)
    }

    /// Like `spawn`, with these environment variables instead of the short model watch.
    pub(crate) fn spawn_with_env(
        tagger: &Path,
        dir: &Path,
        data_dir: &Path,
        args: &[&str],
        name: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(tagger)
            .current_dir(dir)
            .env("TAGGER_DATA_DIR", data_dir)
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context(format!("cannot start tagger {name}"))?;
        Ok(Self { child, log })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file its standard output and error go to.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// SIGKILL, as a crash or a lost node would end it: no shutdown code runs.
    pub(crate) fn kill(&mut self) -> anyhow::Result<()> {
        self.child
            .kill()
            .context("cannot SIGKILL a tagger process")?;
        self.child
            .wait()
            .context("cannot reap a killed tagger process")?;
        Ok(())
    }

    /// How it exited, if it has.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub(crate) fn stop(&mut self) {
        if self.exited().is_some() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("a tagger process had exited early; its log:\n{log}");
            return;
        }
        let _ = run_checked(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        let deadline = Instant::now() + Duration::from_secs(10);
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

impl Drop for TaggerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn section(args: &QueueBench, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Training queue: submit → serving (`ngram`)\n");
    let _ = writeln!(
        out,
        "Measured {} on {} with `cargo run --release --bin bench -- queue` (medians of {} runs; \
         {TICKETS} synthetic tickets, default `ngram` parameters). A run is submitted over the API, \
         taken by a worker, trained, promoted with the API, and counted as serving when a tag \
         request is answered by the new version. The direct `tagger train` beside it (same data, \
         same run) is the baseline: what is left is the cost of the queue, worker and swap.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        args.repeats,
    );
    let _ = writeln!(
        out,
        "| database | setup | direct `tagger train` | queue wait | in the worker | submit → candidate | promote → serving | **submit → serving** |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let t = row.timing;
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s | **{:.2} s** |",
            row.backend,
            row.setup,
            row.direct_train,
            t.queue_wait,
            t.in_worker,
            t.to_candidate,
            t.promote_to_serving,
            t.total
        );
    }
    let _ = writeln!(
        out,
        "\nQueue wait is from the run's own timestamps (created → started): the worker's poll \
         interval (0.5 s) bounds it. The direct `tagger train` includes starting the process and \
         opening the database, as a user would run it.\n"
    );
    out
}
