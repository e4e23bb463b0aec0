//! `bench scale` (issue 19): three `tagger serve` and two `tagger worker` processes of the
//! release build on one PostgreSQL database, loaded by this process with requests spread
//! round robin over the servers. Measures (a) tagging throughput with one, two and three
//! servers, with each group of processes' CPU, up to where the machine's cores run out;
//! (b) how soon every server serves a version promoted through one of them, under load;
//! (c) a worker SIGKILLed mid-training and the other worker finishing its run; (d) from the
//! database and the workers' logs, that every queued run completed exactly once; (e) a
//! server SIGKILLed under load. Writes a marked section of docs/benchmarks.md.

mod fleet;
mod load;
mod report;
mod runs;

use super::idle::ticks_per_second;
use super::serve::{Load, Setup, set_up};
use super::{Markers, Postgres, ScratchDir, load_average, tagger_binary, write_section};
use anyhow::{Context, bail};
use clap::Args;
use fleet::{Cores, Fleet};
use load::{Answer, Fleetwide, Promotion};
use runs::{Ledger, LogCounts, RunsApi};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const MARKERS: Markers = Markers {
    start: "<!-- bench:scale:start -->",
    end: "<!-- bench:scale:end -->",
};
/// A new scale section goes right after the training queue's.
const AFTER_MARKER: &str = "<!-- bench:queue:end -->";
/// The project `serve::set_up` creates.
const PROJECT: &str = "bench";
const SERVERS: usize = 3;
const WORKERS: usize = 2;
/// The workers' heartbeat: a killed worker's job is handed on after three missed beats.
/// The default (10 s) would make the hand-over wait 30 s; the integration tests use 2 s too.
const HEARTBEAT_SECONDS: &str = "2";
/// Every request gives up after this and counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new server may take to serve the promoted version.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after a promotion call the servers are watched for the new version.
const SWAP_WATCH: Duration = Duration::from_secs(10);
/// The longest a queued training run is waited for.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// The killed worker's run is killed once it has trained this many epochs.
const KILL_AFTER_EPOCHS: u64 = 2;

#[derive(Debug, Args)]
pub struct ScaleBench {
    /// Requests in flight at all times (closed loop) in every load phase.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds each throughput step is measured, after a 2 s warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Epochs of the run whose worker is killed: enough that it is killed mid-run.
    #[arg(long, default_value_t = 200)]
    long_epochs: usize,
    /// Training runs queued at once for the exactly-once check.
    #[arg(long, default_value_t = 6)]
    runs: usize,
    /// The PostgreSQL server a scratch database is created on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Markdown file whose scale section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
    /// A smoke run: short phases, two queued runs, and nothing is written to the file.
    #[arg(long)]
    quick: bool,
}

/// How long each phase lasts.
#[derive(Debug, Clone, Copy)]
struct Plan {
    connections: usize,
    warm_up: Duration,
    step: Duration,
    promotions: usize,
    promote_every: Duration,
    /// The server-kill phase, and when in it the server is killed.
    kill_phase: Duration,
    kill_at: Duration,
    runs: usize,
    long_epochs: usize,
}

impl Plan {
    fn new(args: &ScaleBench) -> Self {
        let step = Duration::from_secs(args.seconds);
        let plan = Self {
            connections: args.connections,
            warm_up: Duration::from_secs(2),
            step,
            promotions: 4,
            promote_every: Duration::from_secs(4),
            kill_phase: step + Duration::from_secs(5),
            kill_at: Duration::from_secs(5),
            runs: args.runs,
            long_epochs: args.long_epochs,
        };
        if !args.quick {
            return plan;
        }
        Self {
            warm_up: Duration::from_millis(500),
            step: Duration::from_secs(2),
            promotions: 2,
            promote_every: Duration::from_secs(2),
            kill_phase: Duration::from_secs(4),
            kill_at: Duration::from_secs(2),
            runs: args.runs.min(2),
            ..plan
        }
    }
}

/// (a): one throughput step.
struct Step {
    servers: usize,
    /// Failed requests of the untimed warm-up: counted, not hidden.
    warm_up_failed: usize,
    answers: Vec<Answer>,
    wall: Duration,
    cores: Cores,
}

/// (b): load over all servers while versions are promoted through each in turn.
struct Swap {
    answers: Vec<Answer>,
    duration: Duration,
    promotions: Vec<Promotion>,
}

/// (c): the run whose worker was killed.
struct Handover {
    run: i64,
    epochs: usize,
    /// The epoch its progress showed when the worker was killed.
    killed_at_epoch: u64,
    victim: String,
    heir: String,
    /// From the kill to the run's second attempt being seen.
    taken_after: Duration,
    /// From the kill to the run's end.
    finished_after: Duration,
    status: String,
}

/// (e): load over all servers while one is killed.
struct Kill {
    answers: Vec<Answer>,
    duration: Duration,
    server: usize,
    at: Duration,
}

/// Everything measured while the processes ran.
struct Measured {
    steps: Vec<Step>,
    swap: Swap,
    /// (d): the runs queued at once, and how long until all had ended.
    burst: Vec<i64>,
    burst_took: Duration,
    handover: Handover,
    kill: Kill,
}

struct Results {
    measured: Measured,
    /// Read after the processes stopped.
    ledger: Ledger,
    /// `worker-1`, `worker-2` with their pids, to name the workers in the tables.
    workers: Vec<(String, u32)>,
}

pub fn run(args: &ScaleBench) -> anyhow::Result<()> {
    // The load generator is this binary: a debug build would measure itself, not the servers.
    if cfg!(debug_assertions) {
        bail!("run the scale bench from a release build: cargo run --release --bin bench -- scale");
    }
    if args.connections == 0 || args.seconds == 0 || args.runs == 0 {
        bail!("--connections, --seconds and --runs must be at least 1");
    }
    let tagger = tagger_binary()?;
    let plan = Plan::new(args);
    let ticks = ticks_per_second()?;
    let work = ScratchDir::create()?;
    let work_dir = work
        .0
        .canonicalize()
        .context(format!("cannot resolve {}", work.0.display()))?;
    // Several processes on one database need PostgreSQL: without it there is nothing to run.
    let postgres = Postgres::connect(&args.postgres)?;
    postgres.recreate()?;
    let setup = set_up(&tagger, &work_dir, postgres.bench_url.clone())?;
    let versions_before = runs::count_versions(&setup.url)?;
    // Declared after `work` and `postgres`: the processes stop before their folder and
    // database go.
    let mut fleet = Fleet {
        tagger: &tagger,
        dir: &work_dir,
        data_dir: &setup.data_dir,
        url: &setup.url,
        heartbeat_seconds: HEARTBEAT_SECONDS,
        servers: Vec::new(),
        workers: Vec::new(),
    };
    // One thread: the generator takes at most one of the cores it shares with the fleet.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let measured = runtime.block_on(measure(&mut fleet, &setup, plan, ticks));
    let alive = fleet.check_alive();
    let workers: Vec<(String, u32)> = fleet
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| (format!("worker-{}", i + 1), w.pid()))
        .collect();
    let logs = fleet
        .workers
        .iter()
        .map(|w| w.log())
        .collect::<Result<Vec<_>, _>>();
    fleet.stop();
    let measured = measured?;
    alive?;
    let mut counts = LogCounts::default();
    for log in logs? {
        counts.add(&log);
    }
    let results = Results {
        measured,
        ledger: Ledger::read(&setup.url, versions_before, counts)?,
        workers,
    };
    let section = report::section(args, &plan, &setup, &results, &load_average());
    println!("\n{section}");
    if args.quick {
        println!("--quick: {} left unchanged", args.output.display());
        return Ok(());
    }
    write_section(&args.output, &section, MARKERS, Some(AFTER_MARKER))
}

async fn measure(
    fleet: &mut Fleet<'_>,
    setup: &Setup,
    plan: Plan,
    ticks: f64,
) -> anyhow::Result<Measured> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(plan.connections)
        // Loopback only: an HTTP_PROXY in the environment must not get in between.
        .no_proxy()
        .build()?;
    // The workers run all along, idle until (d), as in a deployment.
    for _ in 0..WORKERS {
        fleet.start_worker()?;
    }
    let mut wide = Fleetwide {
        loads: Arc::new(Vec::new()),
        addrs: Vec::new(),
    };
    let steps = throughput(fleet, &mut wide, &client, setup, plan, ticks).await?;
    let swap = hot_swap(&wide, setup, plan).await?;
    eprintln!(
        "b. hot swap: {} requests, {} failed",
        swap.answers.len(),
        failed(&swap.answers)
    );
    fleet.check_alive()?;
    let api = RunsApi {
        client: &client,
        key: &setup.key,
        addrs: wide.addrs.clone(),
    };
    let burst_started = Instant::now();
    let mut burst = Vec::with_capacity(plan.runs);
    for k in 0..plan.runs {
        // Through every server in turn: any of them queues on the one queue.
        burst.push(api.queue(k % SERVERS, serde_json::json!({})).await?);
    }
    for &run in &burst {
        api.wait(0, run, RUN_TIMEOUT, "end", runs::is_final).await?;
    }
    let burst_took = burst_started.elapsed();
    eprintln!("d. {} runs ended in {burst_took:?}", burst.len());
    let handover = hand_over(fleet, &api, plan).await?;
    eprintln!(
        "c. run {} taken {:?} and finished {:?} after the kill",
        handover.run, handover.taken_after, handover.finished_after
    );
    let kill = kill_a_server(fleet, &wide, plan).await?;
    eprintln!(
        "e. server {} killed at {:?}: {} requests, {} failed",
        kill.server + 1,
        kill.at,
        kill.answers.len(),
        failed(&kill.answers)
    );
    Ok(Measured {
        steps,
        swap,
        burst,
        burst_took,
        handover,
        kill,
    })
}

fn failed(answers: &[Answer]) -> usize {
    answers
        .iter()
        .filter(|a| !matches!(a.sample.outcome, crate::serve::Outcome::Ok(_)))
        .count()
}

/// (a): starts the servers one by one; after each, the load over all started so far.
async fn throughput(
    fleet: &mut Fleet<'_>,
    wide: &mut Fleetwide,
    client: &reqwest::Client,
    setup: &Setup,
    plan: Plan,
    ticks: f64,
) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    for count in 1..=SERVERS {
        let addr = fleet.start_server()?;
        wide.addrs.push(addr);
        wide.loads = Arc::new(
            wide.addrs
                .iter()
                .map(|addr| Load {
                    client: client.clone(),
                    tag_url: format!("http://{addr}/v1/projects/{PROJECT}/tag"),
                    health_url: format!("http://{addr}/healthz"),
                    key: setup.key.clone(),
                    bodies: Arc::clone(&setup.bodies),
                })
                .collect(),
        );
        wide.wait_serving(&[count - 1], setup.versions[0], READY_TIMEOUT)
            .await
            .with_context(|| server_log(fleet, count - 1))?;
        let servers: Vec<usize> = (0..count).collect();
        // Untimed: opens the connections and faults in the new server's code and model.
        let c = plan.connections;
        let warm_up = wide
            .closed_loop(&servers, c, plan.warm_up, false, Instant::now())
            .await?;
        let before = fleet.cpu(ticks);
        let started = Instant::now();
        let answers = wide
            .closed_loop(&servers, c, plan.step, false, started)
            .await?;
        let wall = started.elapsed();
        let cores = Cores::between(&before, &fleet.cpu(ticks));
        eprintln!(
            "a. {count} servers: {} requests in {wall:?}, {} failed, {:.2} cores busy",
            answers.len(),
            failed(&answers),
            cores.busy
        );
        steps.push(Step {
            servers: count,
            warm_up_failed: failed(&warm_up),
            answers,
            wall,
            cores,
        });
        fleet.check_alive()?;
    }
    Ok(steps)
}

fn server_log(fleet: &Fleet<'_>, server: usize) -> String {
    let log = fleet.servers[server].log().unwrap_or_default();
    format!("server {}'s log:\n{log}", server + 1)
}

/// (b): load over all servers; every `promote_every` a version is promoted through the
/// next server in turn, and every server is watched until it serves it.
async fn hot_swap(wide: &Fleetwide, setup: &Setup, plan: Plan) -> anyhow::Result<Swap> {
    let all: Vec<usize> = (0..SERVERS).collect();
    // A little ahead, so the load and the promoter share one start.
    let start = Instant::now() + Duration::from_millis(50);
    let duration = plan.promote_every * (plan.promotions as u32 + 1);
    let promoter = async {
        let mut promotions = Vec::with_capacity(plan.promotions);
        for k in 0..plan.promotions {
            tokio::time::sleep_until(start + plan.promote_every * (k as u32 + 1)).await;
            let version = setup.versions[(k + 1) % 2];
            let promotion = wide
                .promote_and_watch(k % SERVERS, version, start, SWAP_WATCH)
                .await;
            eprintln!("promotion {}: {promotion:?}", k + 1);
            promotions.push(promotion);
        }
        promotions
    };
    let (answers, promotions) = tokio::join!(
        wide.closed_loop(&all, plan.connections, duration, false, start),
        promoter
    );
    Ok(Swap {
        answers: answers?,
        duration,
        promotions,
    })
}

/// (c): a long run; its worker is SIGKILLed once it has trained a few epochs, and the other
/// worker must take the run after the missed heartbeats and finish it.
async fn hand_over(
    fleet: &mut Fleet<'_>,
    api: &RunsApi<'_>,
    plan: Plan,
) -> anyhow::Result<Handover> {
    let epochs = plan.long_epochs;
    let run = api
        .queue(0, serde_json::json!({"epochs": epochs, "patience": epochs}))
        .await?;
    let running = api
        .wait(0, run, RUN_TIMEOUT, "training", |r| {
            runs::training_at_least(r, KILL_AFTER_EPOCHS) || runs::is_final(r)
        })
        .await?;
    if runs::is_final(&running) {
        bail!(
            "run {run} ended before its worker could be killed: raise --long-epochs ({epochs}); {running}"
        );
    }
    let victim = running["worker"]
        .as_str()
        .context(format!("run {run} names no worker: {running}"))?
        .to_string();
    let member = fleet
        .workers
        .iter_mut()
        .find(|w| w.is_named(&victim))
        .context(format!("no worker of the bench is named {victim}"))?;
    member.kill()?;
    let killed = Instant::now();
    let killed_at_epoch = running["progress"]["step"].as_u64().unwrap_or(0);
    eprintln!("c. killed {victim} at epoch {killed_at_epoch} of run {run}");
    api.wait(0, run, RUN_TIMEOUT, "second attempt", |r| {
        r["attempts"].as_i64().unwrap_or(0) >= 2
    })
    .await?;
    let taken_after = killed.elapsed();
    let ended = api.wait(0, run, RUN_TIMEOUT, "end", runs::is_final).await?;
    Ok(Handover {
        run,
        epochs,
        killed_at_epoch,
        victim,
        heir: ended["worker"].as_str().unwrap_or_default().to_string(),
        taken_after,
        finished_after: killed.elapsed(),
        status: ended["status"].as_str().unwrap_or_default().to_string(),
    })
}

/// (e): load over all servers, the last one SIGKILLed partway. The generator takes a
/// server that gives no answer out of its rotation, as a balancer's passive check does.
async fn kill_a_server(
    fleet: &mut Fleet<'_>,
    wide: &Fleetwide,
    plan: Plan,
) -> anyhow::Result<Kill> {
    let all: Vec<usize> = (0..SERVERS).collect();
    let server = SERVERS - 1;
    let start = Instant::now() + Duration::from_millis(50);
    let victim = &mut fleet.servers[server];
    let killer = async {
        tokio::time::sleep_until(start + plan.kill_at).await;
        let at = start.elapsed();
        victim.kill().map(|()| at)
    };
    let (answers, at) = tokio::join!(
        wide.closed_loop(&all, plan.connections, plan.kill_phase, true, start),
        killer
    );
    Ok(Kill {
        answers: answers?,
        duration: plan.kill_phase,
        server,
        at: at?,
    })
}
