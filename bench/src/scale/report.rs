//! The scale section of docs/benchmarks.md: a table per measurement and the findings, every
//! sentence drawn from the numbers.

use super::load::{Answer, POLL, Promotion};
use super::{
    HEARTBEAT_SECONDS, Handover, Kill, PROJECT, Plan, Results, SERVERS, ScaleBench, Step, Swap,
    WORKERS,
};
use crate::serve::{Outcome, SEED, Setup, Stats, TICKETS, ms};
use crate::{machine, redact, thousands};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The machine counts as saturated when this share of its cores is busy.
const SATURATED: f64 = 0.9;

fn stats<'a>(answers: impl Iterator<Item = &'a Answer>, duration: Duration) -> Stats {
    Stats::of(answers.map(|a| &a.sample), duration)
}

fn answered(answer: &Answer) -> bool {
    matches!(answer.sample.outcome, Outcome::Ok(_))
}

/// Answers 200 per server.
fn per_server(answers: &[Answer], servers: usize) -> Vec<usize> {
    let mut counts = vec![0; servers];
    for answer in answers.iter().filter(|a| answered(a)) {
        counts[answer.server] += 1;
    }
    counts
}

/// "1 server", "3 servers".
fn servers(n: usize) -> String {
    match n {
        1 => "1 server".into(),
        n => format!("{n} servers"),
    }
}

fn cores_available() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

fn slash<T>(cells: &[T], cell: impl Fn(&T) -> String) -> String {
    cells.iter().map(cell).collect::<Vec<_>>().join(" / ")
}

/// Answered 200 per second of a step.
fn rate(step: &Step) -> f64 {
    step.answers.iter().filter(|a| answered(a)).count() as f64 / step.wall.as_secs_f64()
}

/// CPU milliseconds per answered request, from cores busy and answers per second.
fn cpu_ms_per_answer(cores: f64, rate: f64) -> f64 {
    if rate > 0.0 {
        1000.0 * cores / rate
    } else {
        0.0
    }
}

pub(super) fn throughput_table(steps: &[Step]) -> String {
    let mut table = String::from(
        "| servers | answered 200/s | answered by server 1 / 2 / 3 | errors | p50 ms | p99 ms \
         | CPU cores: servers / workers (idle) / PostgreSQL / generator / rest of machine | machine busy \
         | CPU ms per answer: servers / PostgreSQL |\n\
         |---:|---:|---:|---|---:|---:|---:|---:|---:|\n",
    );
    for step in steps {
        let stats = stats(step.answers.iter(), step.wall);
        let rate = rate(step);
        let c = step.cores;
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {:.2} / {:.2} / {:.2} / {:.2} / {:.2} | {:.2} of {} | {:.3} / {:.3} |",
            step.servers,
            thousands(rate),
            slash(&per_server(&step.answers, step.servers), |n| thousands(
                *n as f64
            )),
            errors_with_warm_up(&stats, step.warm_up_failed),
            ms(stats.p50),
            ms(stats.p99),
            c.servers,
            c.workers,
            c.postgres,
            c.bench,
            c.other,
            c.busy,
            cores_available(),
            cpu_ms_per_answer(c.servers, rate),
            cpu_ms_per_answer(c.postgres, rate),
        );
    }
    table
}

/// The step's errors, and the warm-up's when it had any.
fn errors_with_warm_up(stats: &Stats, warm_up_failed: usize) -> String {
    match warm_up_failed {
        0 => stats.error_kinds(),
        n => format!("{} (and {n} in the warm-up)", stats.error_kinds()),
    }
}

fn millis(d: Option<Duration>, none: &str) -> String {
    d.map_or(none.to_string(), |d| {
        format!("{:.0}", d.as_secs_f64() * 1000.0)
    })
}

/// The next promotion's start, or the phase's end: the window of one promotion.
fn windows(swap: &Swap) -> Vec<Duration> {
    let mut ends: Vec<Duration> = swap.promotions.iter().skip(1).map(|p| p.at).collect();
    ends.push(swap.duration);
    ends
}

pub(super) fn swap_table(swap: &Swap) -> String {
    let mut table = String::from(
        "| promotion | at s | via server | to version | call ms | serving it, ms after the call (`/readyz`): server 1 / 2 / 3 \
         | last answer from the version it replaced, ms after the call: server 1 / 2 / 3 |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (k, (p, until)) in swap.promotions.iter().zip(windows(swap)).enumerate() {
        let last_old = p.last_old_answer(&swap.answers, until, SERVERS);
        let version = match &p.result {
            Ok(serving) if *serving == p.version => p.version.to_string(),
            Ok(serving) => format!("{} (the server called serves {serving})", p.version),
            Err(error) => format!("{} (call failed: {})", p.version, error.replace('|', "\\|")),
        };
        let _ = writeln!(
            table,
            "| {} | {:.1} | {} | {version} | {} | {} | {} |",
            k + 1,
            p.at.as_secs_f64(),
            p.via + 1,
            ms(p.took),
            slash(&p.serving_after, |d| millis(*d, "not seen")),
            slash(&last_old, |d| millis(*d, "none")),
        );
    }
    let all = stats(swap.answers.iter(), swap.duration);
    let mut versions: BTreeMap<i64, usize> = BTreeMap::new();
    for answer in &swap.answers {
        if let Outcome::Ok(Some(version)) = answer.sample.outcome {
            *versions.entry(version).or_default() += 1;
        }
    }
    let _ = write!(
        table,
        "\nOver the phase ({:.0} s): {} requests, {} answered 200, errors: {}; p50 {} ms, p99 {} ms, max {} ms; \
         answers by version: {}.\n",
        swap.duration.as_secs_f64(),
        thousands(all.due as f64),
        thousands(all.ok as f64),
        all.error_kinds(),
        ms(all.p50),
        ms(all.p99),
        ms(all.max),
        versions
            .iter()
            .map(|(v, n)| format!("version {v}: {}", thousands(*n as f64)))
            .collect::<Vec<_>>()
            .join(", "),
    );
    table
}

fn worker_label(workers: &[(String, u32)], worker: &str) -> String {
    workers
        .iter()
        .find(|(_, pid)| super::fleet::names_pid(worker, *pid))
        .map_or_else(|| worker.to_string(), |(label, _)| label.clone())
}

pub(super) fn handover_table(handover: &Handover, workers: &[(String, u32)]) -> String {
    format!(
        "| run | epochs asked | worker SIGKILLed | at epoch | second attempt seen after | run ended after | finished by | status |\n\
         |---:|---:|---|---:|---:|---:|---|---|\n\
         | {} | {} | {} | {} | {:.1} s | {:.1} s | {} | {} |\n",
        handover.run,
        handover.epochs,
        worker_label(workers, &handover.victim),
        handover.killed_at_epoch,
        handover.taken_after.as_secs_f64(),
        handover.finished_after.as_secs_f64(),
        worker_label(workers, &handover.heir),
        handover.status,
    )
}

pub(super) fn ledger_table(results: &Results) -> String {
    let ledger = &results.ledger;
    let handed_over = results.measured.handover.run;
    let mut table = String::from(
        "| run | queued | status | attempts | last worker | starts in the workers' logs | completions in the workers' logs | version |\n\
         |---:|---|---|---:|---|---:|---:|---:|\n",
    );
    for row in &ledger.rows {
        let queued = if row.id == handed_over {
            "c: its worker killed"
        } else if results.measured.burst.contains(&row.id) {
            "d: all at once"
        } else {
            "not by the bench"
        };
        let _ = writeln!(
            table,
            "| {} | {queued} | {} | {} | {} | {} | {} | {} |",
            row.id,
            row.status,
            row.attempts,
            worker_label(&results.workers, &row.worker),
            ledger.starts(row.id),
            ledger.completions(row.id),
            row.version.map_or("–".into(), |v| v.to_string()),
        );
    }
    let problems = ledger.problems(Some(handed_over));
    let _ = write!(
        table,
        "\nModel versions created during the runs: {}. {}\n",
        ledger.versions_created,
        if problems.is_empty() {
            "No run started more often than it had attempts, completed more than once, or shares a version with another."
                .to_string()
        } else {
            format!("Problems: {}.", problems.join("; "))
        }
    );
    table
}

/// Answers and errors of one server before and after the kill, by when each request ended
/// (those in flight at the kill end after it).
struct Sides {
    before: Stats,
    after: Stats,
}

fn sides(kill: &Kill, server: usize) -> Sides {
    let ended = |a: &Answer| a.sample.sent() + a.sample.latency;
    let mine = || kill.answers.iter().filter(move |a| a.server == server);
    let after = kill.duration.saturating_sub(kill.at);
    Sides {
        before: stats(mine().filter(|a| ended(a) < kill.at), kill.at),
        after: stats(mine().filter(|a| ended(a) >= kill.at), after),
    }
}

pub(super) fn kill_table(kill: &Kill) -> String {
    let mut table = String::from(
        "| server | answered 200/s before the kill | after the kill | errors before | errors after (requests in flight at the kill included) |\n\
         |---:|---:|---:|---|---|\n",
    );
    for server in 0..SERVERS {
        let Sides { before, after } = sides(kill, server);
        let killed = if server == kill.server {
            " (killed)"
        } else {
            ""
        };
        let _ = writeln!(
            table,
            "| {}{killed} | {} | {} | {} | {} |",
            server + 1,
            thousands(before.answered_per_second),
            thousands(after.answered_per_second),
            before.error_kinds(),
            after.error_kinds(),
        );
    }
    table
}

/// (a)'s finding: the throughput per step and where the cores ran out.
fn throughput_finding(steps: &[Step], connections: usize, cores: f64) -> String {
    let rates: Vec<f64> = steps.iter().map(rate).collect();
    let (Some(first), Some(last)) = (rates.first(), rates.last()) else {
        return String::new();
    };
    let listed = steps
        .iter()
        .zip(&rates)
        .enumerate()
        .map(|(i, (s, r))| match i {
            0 => format!("{} requests/s with {} server", thousands(*r), s.servers),
            _ => format!("{} with {}", thousands(*r), s.servers),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        "Tagging answered {listed} ({:.2}× from 1 to {} servers).",
        last / first.max(1e-9),
        steps.len()
    );
    let saturated = steps.iter().find(|s| s.cores.busy >= SATURATED * cores);
    match saturated {
        Some(step) => {
            let c = step.cores;
            let _ = write!(
                text,
                " The machine's {cores:.0} cores were saturated from {} on ({:.2} busy: servers {:.2}, \
                 PostgreSQL {:.2}, the load generator {:.2}, idle workers {:.2}, everything else {:.2}), so the \
                 further servers shared those cores rather than adding any: this table shows this machine's \
                 ceiling, not the design's.",
                servers(step.servers),
                c.busy,
                c.servers,
                c.postgres,
                c.bench,
                c.workers,
                c.other
            );
        }
        None => {
            let busiest = steps.iter().map(|s| s.cores.busy).fold(0.0, f64::max);
            let _ = write!(
                text,
                " The machine's {cores:.0} cores never saturated (at most {busiest:.2} busy): the limit was \
                 elsewhere (the generator's {connections} connections, or waiting on PostgreSQL)."
            );
        }
    }
    let per_answer = |step: &Step| {
        let rate = rate(step);
        (
            cpu_ms_per_answer(step.cores.servers, rate),
            cpu_ms_per_answer(step.cores.postgres, rate),
        )
    };
    if let (Some(one), Some(all)) = (steps.first(), steps.last()) {
        let ((one_server_ms, _), (server_ms, postgres_ms)) = (per_answer(one), per_answer(all));
        let _ = write!(
            text,
            " Per answer the servers spent {one_server_ms:.3} ms of CPU with 1 server and {server_ms:.3} ms with {}, \
             and PostgreSQL {postgres_ms:.3} ms (every request reads its API key and its project from the \
             database): one core of servers answers about {} requests/s and one core of PostgreSQL serves \
             about {}.",
            all.servers,
            thousands(1000.0 / server_ms.max(1e-9)),
            thousands(1000.0 / postgres_ms.max(1e-9)),
        );
    }
    text
}

fn swap_finding(swap: &Swap) -> String {
    let slowest = |p: &Promotion| p.serving_after.iter().copied().max().flatten();
    let all_seen = swap
        .promotions
        .iter()
        .all(|p| p.serving_after.iter().all(Option::is_some));
    let slowest_ms = swap
        .promotions
        .iter()
        .filter_map(slowest)
        .max()
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let last_old = swap
        .promotions
        .iter()
        .zip(windows(swap))
        .flat_map(|(p, until)| p.last_old_answer(&swap.answers, until, SERVERS))
        .flatten()
        .max();
    let all = stats(swap.answers.iter(), swap.duration);
    let old = match last_old {
        Some(d) => format!(
            "the last answer from a replaced version came {} ms after a promotion call",
            millis(Some(d), "")
        ),
        None => "no answer after a promotion call came from the version it replaced".into(),
    };
    format!(
        "{} Under load, {old}. {} of {} requests failed during the promotions (target 0: {}).",
        if all_seen {
            format!(
                "Every one of the {} promotions was in service on all {SERVERS} servers within {slowest_ms:.0} ms \
                 of the call (`/readyz` polled every {} ms).",
                swap.promotions.len(),
                POLL.as_millis()
            )
        } else {
            format!(
                "NOT every promotion reached every server within {} s.",
                super::SWAP_WATCH.as_secs()
            )
        },
        thousands(all.unanswered() as f64),
        thousands(all.due as f64),
        if all.unanswered() == 0 {
            "met"
        } else {
            "missed"
        },
    )
}

fn handover_finding(results: &Results) -> String {
    let h = &results.measured.handover;
    let problems = results.ledger.problems(Some(h.run));
    let runs = results.ledger.rows.len();
    format!(
        "{victim} was SIGKILLed at epoch {epoch} of run {run}; {heir} took the run {taken:.1} s later (the queue \
         hands a job on after three missed {HEARTBEAT_SECONDS} s heartbeats, counted from the last beat before the \
         kill) and it ended {status} {done:.1} s after the kill. {ledger}",
        victim = worker_label(&results.workers, &h.victim),
        epoch = h.killed_at_epoch,
        run = h.run,
        heir = worker_label(&results.workers, &h.heir),
        taken = h.taken_after.as_secs_f64(),
        status = h.status,
        done = h.finished_after.as_secs_f64(),
        ledger = if problems.is_empty() {
            format!(
                "All {runs} runs ran to completion exactly once (the {} queued at once took {:.1} s on {WORKERS} \
                 workers), each with its own version.",
                results.measured.burst.len(),
                results.measured.burst_took.as_secs_f64()
            )
        } else {
            format!(
                "NOT every run completed exactly once: {}.",
                problems.join("; ")
            )
        },
    )
}

fn kill_finding(kill: &Kill) -> String {
    let victim = sides(kill, kill.server);
    let survivors: Vec<Sides> = (0..SERVERS)
        .filter(|s| *s != kill.server)
        .map(|s| sides(kill, s))
        .collect();
    let survivor_rate: f64 = survivors.iter().map(|s| s.after.answered_per_second).sum();
    let survivor_errors: usize = survivors
        .iter()
        .map(|s| s.before.unanswered() + s.after.unanswered())
        .sum();
    let total = stats(kill.answers.iter(), kill.duration);
    format!(
        "When server {} was SIGKILLed {:.1} s into the load, the load generator counted {} failed requests in all \
         ({}), {} of them to the killed server after the kill (requests in flight on it, and those sent before \
         the generator took it out of its rotation); the other {} servers went on answering, {} requests/s \
         together after the kill, with {} errors.",
        kill.server + 1,
        kill.at.as_secs_f64(),
        thousands(total.unanswered() as f64),
        total.error_kinds(),
        thousands(victim.after.unanswered() as f64),
        survivors.len(),
        thousands(survivor_rate),
        survivor_errors,
    )
}

pub(super) fn section(
    args: &ScaleBench,
    plan: &Plan,
    setup: &Setup,
    results: &Results,
    load_after: &str,
) -> String {
    let m = &results.measured;
    let seconds = |d: Duration| d.as_secs_f64().to_string();
    format!(
        "## Scale-out: {SERVERS} servers and {WORKERS} workers on one PostgreSQL (`bench scale`)\n\n\
         Measured {date} on {machine}, with:\n\n\
         ```sh\ncargo build --release --bin tagger --bin bench && \
         cargo run --release --bin bench -- scale --connections {connections} --seconds {step_seconds} \
         --runs {runs} --long-epochs {epochs} --postgres {url} --output {output}{quick}\n```\n\n\
         Set-up with the release `tagger`: a scratch database on that PostgreSQL server, {tickets} synthetic \
         demo tickets (seed {SEED}) imported as project `{PROJECT}`, `tagger train` twice (ngram versions {v1} \
         and {v2}), `tagger keys create`, version {v1} promoted. Then {WORKERS} `tagger worker` processes \
         (TAGGER_WORKER_HEARTBEAT_SECONDS={HEARTBEAT_SECONDS}, so a killed worker's job is handed on after \
         about {handover} s; the default 10 s makes that 30 s) and up to {SERVERS} `tagger serve` processes \
         (default TAGGER_MODEL_WATCH_SECONDS: a promotion reaches the other servers through PostgreSQL's \
         notification), all on one data directory, on the same {cores} cores as PostgreSQL and the load \
         generator. The generator is the bench binary itself, one tokio thread: {connections} clients in a closed \
         loop (each sends its next request when the last is answered), each request to the next server in \
         turn, `POST /v1/projects/{PROJECT}/tag` with `Authorization: Bearer <key>` and the synthetic tickets' \
         `{{\"subject\", \"body\"}}`. Every failed request is counted — no answer within {timeout} s, a refused or \
         broken connection, any status but 200 — and none is retried. CPU cores are each group's user and \
         system CPU time over the phase's wall time from /proc (PostgreSQL is every `postgres` process, also \
         those serving other databases; \"rest of machine\" is every other process: the machine is shared). \
         The 1-minute load average was {load_before} before the run and {load_after} after it.\n\n\
         ### a. Tagging throughput as servers are added ({connections} connections, {step_seconds} s per step)\n\n\
         The servers were started one by one; each step spreads the load over the servers started so far, \
         after a {warm} s warm-up.\n\n{a}\n\
         ### b. Promotions under load, through each server in turn\n\n\
         Load over all {SERVERS} servers for {swap} s; every {every} s a version is promoted with \
         `POST /v1/projects/{PROJECT}/models/<id>/promote` (body `{{\"force\": true}}`) through the next \
         server in turn, then every server's `/readyz` is polled every {poll} ms until it names the version.\n\n{b}\n\
         ### c. A worker SIGKILLed mid-training\n\n\
         After d, an `ngram` run of {epochs} epochs (patience as long) is queued; when its progress shows \
         epoch {kill_epoch}, the worker running it (`training_runs.worker` names its pid) gets SIGKILL.\n\n{c}\n\
         ### d. Every queued run ran to completion once\n\n\
         {burst} `ngram` runs with default parameters are queued at once through the {SERVERS} servers in turn \
         while both workers are idle; with c's run they are checked from the database (`training_runs`, \
         `model_versions` counted before and after) and from both workers' JSON logs, the killed one's \
         included (one `training` line per start of a run, one `trained` line per completion).\n\n{d}\n\
         ### e. A server SIGKILLed under load\n\n\
         Load over all {SERVERS} servers for {kill_phase} s; server {victim} gets SIGKILL {kill_at} s in. The \
         generator takes a server that gives no answer out of its rotation (a balancer's passive health \
         check); HTTP errors would not take it out.\n\n{e}\n\
         {findings}\n",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = machine(),
        connections = plan.connections,
        step_seconds = seconds(plan.step),
        runs = args.runs,
        epochs = plan.long_epochs,
        url = redact(&args.postgres),
        output = args.output.display(),
        quick = if args.quick { " --quick" } else { "" },
        tickets = thousands(TICKETS as f64),
        v1 = setup.versions[0],
        v2 = setup.versions[1],
        handover = 3 * HEARTBEAT_SECONDS.parse::<u64>().unwrap_or(0),
        cores = cores_available(),
        timeout = super::REQUEST_TIMEOUT.as_secs(),
        load_before = setup.load_average,
        warm = seconds(plan.warm_up),
        swap = seconds(m.swap.duration),
        every = seconds(plan.promote_every),
        poll = POLL.as_millis(),
        kill_epoch = super::KILL_AFTER_EPOCHS,
        burst = m.burst.len(),
        kill_phase = seconds(plan.kill_phase),
        victim = m.kill.server + 1,
        kill_at = seconds(plan.kill_at),
        a = throughput_table(&m.steps),
        b = swap_table(&m.swap),
        c = handover_table(&m.handover, &results.workers),
        d = ledger_table(results),
        e = kill_table(&m.kill),
        findings = [
            throughput_finding(&m.steps, plan.connections, cores_available() as f64),
            swap_finding(&m.swap),
            handover_finding(results),
            kill_finding(&m.kill),
        ]
        .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fleet::Cores;
    use super::*;
    use crate::serve::Sample;

    fn answer(server: usize, sent_ms: u64, outcome: Outcome) -> Answer {
        Answer {
            server,
            sample: Sample {
                due: Duration::from_millis(sent_ms),
                lag: Duration::ZERO,
                latency: Duration::from_millis(2),
                outcome,
            },
        }
    }

    fn step(servers: usize, per_server: &[usize], busy: f64) -> Step {
        let answers = per_server
            .iter()
            .enumerate()
            .flat_map(|(server, n)| {
                (0..*n).map(move |i| answer(server, i as u64, Outcome::Ok(Some(1))))
            })
            .collect();
        Step {
            servers,
            warm_up_failed: 0,
            answers,
            wall: Duration::from_secs(1),
            cores: Cores {
                servers: 1.0,
                workers: 0.02,
                postgres: 0.5,
                bench: 0.3,
                other: 0.08,
                busy,
            },
        }
    }

    #[test]
    fn a_throughput_row_has_the_rate_the_spread_the_errors_and_the_cpu_per_answer() {
        let mut two = step(2, &[300, 200], 1.9);
        two.answers
            .push(answer(1, 5, Outcome::Failed("cannot connect".into())));
        two.warm_up_failed = 2;
        let table = throughput_table(&[two]);
        let row = table.lines().nth(2).unwrap();
        assert!(
            row.starts_with("| 2 | 500 | 300 / 200 | 1 × cannot connect (and 2 in the warm-up) |"),
            "{row}"
        );
        assert!(
            row.contains("| 1.00 / 0.02 / 0.50 / 0.30 / 0.08 | 1.90 of"),
            "{row}"
        );
        assert!(row.ends_with("| 2.000 / 1.000 |"), "{row}");
    }

    #[test]
    fn the_throughput_finding_says_from_which_step_the_cores_were_saturated() {
        let steps = [step(1, &[400], 1.5), step(2, &[250, 250], 1.9)];
        let text = throughput_finding(&steps, 32, 2.0);
        assert!(
            text.starts_with("Tagging answered 400 requests/s with 1 server, 500 with 2 (1.25× from 1 to 2 servers)."),
            "{text}"
        );
        assert!(
            text.contains("saturated from 2 servers on (1.90 busy"),
            "{text}"
        );
        // 1.0 server cores for 400 and 500 answers/s: 2.5 and 2 ms each.
        assert!(
            text.contains(
                "the servers spent 2.500 ms of CPU with 1 server and 2.000 ms with 2, and PostgreSQL 1.000 ms"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "answers about 500 requests/s and one core of PostgreSQL serves about 1,000."
            ),
            "{text}"
        );
        let idle = throughput_finding(&steps[..1], 32, 2.0);
        assert!(
            idle.contains("never saturated (at most 1.50 busy)"),
            "{idle}"
        );
    }

    #[test]
    fn the_kill_is_reported_per_server_before_and_after() {
        let mut answers = Vec::new();
        for ms in (0..2_000).step_by(10) {
            for server in 0..SERVERS {
                let outcome = if server == 2 && ms >= 1_000 {
                    Outcome::Failed("connection error".into())
                } else {
                    Outcome::Ok(Some(1))
                };
                // The generator takes the dead server out after its first few failures.
                if server == 2 && ms > 1_020 {
                    continue;
                }
                answers.push(answer(server, ms, outcome));
            }
        }
        let kill = Kill {
            answers,
            duration: Duration::from_secs(2),
            server: 2,
            at: Duration::from_secs(1),
        };
        let table = kill_table(&kill);
        assert!(table.contains("| 1 | 100 | 100 | none | none |"), "{table}");
        assert!(
            table.contains("| 3 (killed) | 100 | 0 | none | 3 × connection error |"),
            "{table}"
        );
        let text = kill_finding(&kill);
        assert!(
            text.contains("counted 3 failed requests in all (3 × connection error), 3 of them to the killed server"),
            "{text}"
        );
        assert!(
            text.contains("200 requests/s together after the kill, with 0 errors"),
            "{text}"
        );
    }
}
