//! The processes under test — `tagger serve` and `tagger worker` of the release build on one
//! PostgreSQL database and one data directory, as a deployment runs them — and the CPU time
//! each group of processes used over a phase.

use crate::queue::TaggerProcess;
use crate::serve::{command_and_cpu_ticks, cpu_seconds, machine_cpu_seconds};
use anyhow::{Context, bail};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Instant;

/// One `tagger` process of the fleet.
pub(super) struct Member {
    process: TaggerProcess,
    /// SIGKILLed on purpose: its exit is not a crash.
    pub(super) killed: bool,
    /// Stopped with SIGTERM at the end.
    stopped: bool,
}

impl Member {
    pub(super) fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub(super) fn is_named(&self, worker: &str) -> bool {
        names_pid(worker, self.pid())
    }

    pub(super) fn log(&self) -> anyhow::Result<String> {
        let path = self.process.log();
        std::fs::read_to_string(path).context(format!("cannot read {}", path.display()))
    }

    /// SIGKILL, as a crash or a lost node ends a process.
    pub(super) fn kill(&mut self) -> anyhow::Result<()> {
        self.killed = true;
        self.process.kill()
    }
}

/// The servers and workers, stopped with SIGTERM when dropped.
pub(super) struct Fleet<'a> {
    pub(super) tagger: &'a Path,
    pub(super) dir: &'a Path,
    pub(super) data_dir: &'a Path,
    pub(super) url: &'a str,
    /// `TAGGER_WORKER_HEARTBEAT_SECONDS` of the workers.
    pub(super) heartbeat_seconds: &'a str,
    pub(super) servers: Vec<Member>,
    pub(super) workers: Vec<Member>,
}

impl Fleet<'_> {
    /// Starts one more `tagger serve` on a free loopback port, with the default model watch
    /// (PostgreSQL's notification reaches it at once; the watch is the fallback).
    pub(super) fn start_server(&mut self) -> anyhow::Result<SocketAddr> {
        // Port 0 picks a free port; it is released for the server a moment later.
        let addr = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
        let name = format!("serve-{}", self.servers.len() + 1);
        let addr_text = addr.to_string();
        let args = ["--database-url", self.url, "serve", "--addr", &addr_text];
        let process =
            TaggerProcess::spawn_with_env(self.tagger, self.dir, self.data_dir, &args, &name, &[])?;
        eprintln!("{name} (pid {}) on {addr}", process.pid());
        self.servers.push(Member {
            process,
            killed: false,
            stopped: false,
        });
        Ok(addr)
    }

    /// Starts one more `tagger worker`, logging JSON lines so its training runs can be counted.
    pub(super) fn start_worker(&mut self) -> anyhow::Result<()> {
        let name = format!("worker-{}", self.workers.len() + 1);
        let args = ["--database-url", self.url, "worker"];
        let env = [
            ("TAGGER_WORKER_HEARTBEAT_SECONDS", self.heartbeat_seconds),
            ("TAGGER_LOG_FORMAT", "json"),
        ];
        let process = TaggerProcess::spawn_with_env(
            self.tagger,
            self.dir,
            self.data_dir,
            &args,
            &name,
            &env,
        )?;
        eprintln!("{name} (pid {})", process.pid());
        self.workers.push(Member {
            process,
            killed: false,
            stopped: false,
        });
        Ok(())
    }

    /// Fails if a process that nobody killed has exited: every figure would be wrong.
    pub(super) fn check_alive(&mut self) -> anyhow::Result<()> {
        for member in self.servers.iter_mut().chain(self.workers.iter_mut()) {
            if member.killed || member.stopped {
                continue;
            }
            if let Some(status) = member.process.exited() {
                let log = member.log().unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                bail!(
                    "tagger (pid {}) exited on its own ({status}); the end of its log:\n{}",
                    member.pid(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to every live process, as a deployment is stopped.
    pub(super) fn stop(&mut self) {
        for member in self.servers.iter_mut().chain(self.workers.iter_mut()) {
            if !member.killed && !member.stopped {
                member.process.stop();
                member.stopped = true;
            }
        }
    }

    /// CPU seconds used so far by each group of processes and by the whole machine.
    pub(super) fn cpu(&self, ticks_per_second: f64) -> CpuReading {
        let sum = |members: &[Member]| -> f64 {
            members
                .iter()
                .filter(|m| !m.killed)
                .filter_map(|m| cpu_seconds(&m.pid().to_string(), ticks_per_second))
                .sum()
        };
        CpuReading {
            at: Instant::now(),
            servers: sum(&self.servers),
            workers: sum(&self.workers),
            postgres: postgres_cpu_ticks() / ticks_per_second,
            bench: cpu_seconds("self", ticks_per_second).unwrap_or(0.0),
            machine: machine_cpu_seconds(ticks_per_second).unwrap_or(0.0),
        }
    }
}

impl Drop for Fleet<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a worker's name (`training_runs.worker`: its host and pid) is that of `pid`.
pub(super) fn names_pid(worker: &str, pid: u32) -> bool {
    worker
        .rsplit_once('-')
        .is_some_and(|(_, named)| named == pid.to_string())
}

/// CPU ticks of every process named `postgres` (the server and all its backends, also
/// those serving other databases on the same server).
fn postgres_cpu_ticks() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let (command, ticks) = command_and_cpu_ticks(&stat)?;
            (command == "postgres").then_some(ticks)
        })
        .sum()
}

/// Cumulative CPU seconds at one moment.
#[derive(Debug, Clone, Copy)]
pub(super) struct CpuReading {
    pub(super) at: Instant,
    pub(super) servers: f64,
    pub(super) workers: f64,
    pub(super) postgres: f64,
    pub(super) bench: f64,
    /// Busy CPU seconds of all cores together, every process included.
    pub(super) machine: f64,
}

/// Cores busy on average between two readings, by group.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Cores {
    pub(super) servers: f64,
    pub(super) workers: f64,
    pub(super) postgres: f64,
    /// The load generator (this process).
    pub(super) bench: f64,
    /// Everything else: the machine is shared with other people's builds and tests.
    pub(super) other: f64,
    /// The whole machine.
    pub(super) busy: f64,
}

impl Cores {
    pub(super) fn between(before: &CpuReading, after: &CpuReading) -> Self {
        let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let per_second = |from: f64, to: f64| ((to - from) / wall).max(0.0);
        let servers = per_second(before.servers, after.servers);
        let workers = per_second(before.workers, after.workers);
        let postgres = per_second(before.postgres, after.postgres);
        let bench = per_second(before.bench, after.bench);
        let busy = per_second(before.machine, after.machine);
        Self {
            servers,
            workers,
            postgres,
            bench,
            other: (busy - servers - workers - postgres - bench).max(0.0),
            busy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cores_are_cpu_seconds_over_wall_seconds_and_the_rest_is_other() {
        let at = Instant::now();
        let before = CpuReading {
            at,
            servers: 1.0,
            workers: 0.0,
            postgres: 2.0,
            bench: 0.5,
            machine: 10.0,
        };
        let after = CpuReading {
            at: at + Duration::from_secs(2),
            servers: 3.0,
            workers: 0.2,
            postgres: 2.6,
            bench: 1.1,
            machine: 13.8,
        };
        let cores = Cores::between(&before, &after);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(cores.servers, 1.0), "{cores:?}");
        assert!(close(cores.workers, 0.1), "{cores:?}");
        assert!(close(cores.postgres, 0.3), "{cores:?}");
        assert!(close(cores.bench, 0.3), "{cores:?}");
        assert!(close(cores.busy, 1.9), "{cores:?}");
        assert!(close(cores.other, 0.2), "{cores:?}");
        assert!(postgres_cpu_ticks() >= 0.0);
    }

    #[test]
    fn a_worker_is_found_by_the_pid_at_the_end_of_its_name() {
        assert!(names_pid("tagger-worker-7f9c-1234", 1234));
        assert!(!names_pid("tagger-worker-7f9c-1234", 123));
        assert!(!names_pid("1234", 1234));
    }
}
