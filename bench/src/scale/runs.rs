//! Training runs with two workers on one queue: runs queued over the API through any server,
//! and the check that each ran to completion once, read from the database (`training_runs`,
//! `model_versions`) and from both workers' own logs (one `training` line per start, one
//! `trained` line per completion).

use crate::psql;
use anyhow::{Context, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often a run's state is read while waiting for it.
const POLL: Duration = Duration::from_millis(100);

/// `/v1/projects/P/training-runs` on the servers.
pub(super) struct RunsApi<'a> {
    pub(super) client: &'a reqwest::Client,
    pub(super) key: &'a str,
    pub(super) addrs: Vec<SocketAddr>,
}

impl RunsApi<'_> {
    fn url(&self, server: usize, path: &str) -> String {
        format!(
            "http://{}/v1/projects/{}/training-runs{path}",
            self.addrs[server],
            super::PROJECT
        )
    }

    /// Queues an `ngram` run through `server`; its id.
    pub(super) async fn queue(
        &self,
        server: usize,
        params: serde_json::Value,
    ) -> anyhow::Result<i64> {
        let run: serde_json::Value = self
            .client
            .post(self.url(server, ""))
            .bearer_auth(self.key)
            .json(&serde_json::json!({"kind": "ngram", "params": params}))
            .send()
            .await?
            .error_for_status()
            .context("queueing a training run")?
            .json()
            .await?;
        run["id"].as_i64().context(format!("no run id in {run}"))
    }

    /// Reads the run through `server` until `done` holds for it.
    pub(super) async fn wait(
        &self,
        server: usize,
        id: i64,
        within: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let run: serde_json::Value = self
                .client
                .get(self.url(server, &format!("/{id}")))
                .bearer_auth(self.key)
                .send()
                .await?
                .error_for_status()
                .context(format!("reading training run {id}"))?
                .json()
                .await?;
            if done(&run) {
                return Ok(run);
            }
            if Instant::now() > deadline {
                bail!("run {id}: no {what} within {within:?}; its last state: {run}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Whether the run has ended, one way or another.
pub(super) fn is_final(run: &serde_json::Value) -> bool {
    matches!(
        run["status"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

/// Whether the run is training and has reached at least `epochs` epochs.
pub(super) fn training_at_least(run: &serde_json::Value, epochs: u64) -> bool {
    run["status"] == "running"
        && run["progress"]["stage"] == "training"
        && run["progress"]["step"].as_u64().unwrap_or(0) >= epochs
}

/// Starts and completions of training runs in a worker's JSON log lines.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct LogCounts {
    pub(super) starts: BTreeMap<i64, usize>,
    pub(super) completions: BTreeMap<i64, usize>,
}

impl LogCounts {
    /// Adds a worker's log (`TAGGER_LOG_FORMAT=json`): the job's `training` event (with its
    /// `attempt`) for a start, `trained` (with the `version`) for a completion.
    pub(super) fn add(&mut self, log: &str) {
        for line in log.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            // `run` is written with Display, so it is a string; a number is read too.
            let run = event["run"]
                .as_i64()
                .or_else(|| event["run"].as_str()?.parse().ok());
            let Some(run) = run else { continue };
            let counter = match event["message"].as_str() {
                Some("training") if !event["attempt"].is_null() => &mut self.starts,
                Some("trained") if !event["version"].is_null() => &mut self.completions,
                _ => continue,
            };
            *counter.entry(run).or_default() += 1;
        }
    }
}

/// One row of `training_runs`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RunRow {
    pub(super) id: i64,
    pub(super) status: String,
    pub(super) attempts: i64,
    pub(super) worker: String,
    pub(super) version: Option<i64>,
}

/// The query whose `psql -At` output `parse_runs` reads.
const RUNS_SQL: &str = "SELECT id, status, attempts, coalesce(worker, ''), coalesce(version_id::text, '') \
                        FROM training_runs ORDER BY id";

/// `id|status|attempts|worker|version` lines.
pub(super) fn parse_runs(text: &str) -> anyhow::Result<Vec<RunRow>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let cells: Vec<&str> = line.split('|').collect();
            let [id, status, attempts, worker, version] = cells[..] else {
                bail!("not a training run row: {line:?}");
            };
            Ok(RunRow {
                id: id.parse().context(format!("bad id in {line:?}"))?,
                status: status.to_string(),
                attempts: attempts
                    .parse()
                    .context(format!("bad attempts in {line:?}"))?,
                worker: worker.to_string(),
                version: match version {
                    "" => None,
                    v => Some(v.parse().context(format!("bad version in {line:?}"))?),
                },
            })
        })
        .collect()
}

/// `psql -At`: the rows of one query, cells separated by `|`.
pub(super) fn query(url: &str, sql: &str) -> anyhow::Result<String> {
    let output = psql(url, sql)
        .args(["-A", "-t"])
        .output()
        .context("cannot run psql")?;
    if !output.status.success() {
        bail!(
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(super) fn count_versions(url: &str) -> anyhow::Result<i64> {
    let count = query(url, "SELECT count(*) FROM model_versions")?;
    count
        .trim()
        .parse()
        .context(format!("not a count: {count:?}"))
}

/// Every training run as the database and the workers' logs tell it.
#[derive(Debug, Clone)]
pub(super) struct Ledger {
    pub(super) rows: Vec<RunRow>,
    pub(super) logs: LogCounts,
    /// Model versions the runs created (counted before and after them).
    pub(super) versions_created: i64,
}

impl Ledger {
    pub(super) fn read(url: &str, versions_before: i64, logs: LogCounts) -> anyhow::Result<Self> {
        Ok(Self {
            rows: parse_runs(&query(url, RUNS_SQL)?)?,
            logs,
            versions_created: count_versions(url)? - versions_before,
        })
    }

    pub(super) fn starts(&self, run: i64) -> usize {
        self.logs.starts.get(&run).copied().unwrap_or(0)
    }

    pub(super) fn completions(&self, run: i64) -> usize {
        self.logs.completions.get(&run).copied().unwrap_or(0)
    }

    /// Everything that says a run did not complete exactly once; `handed_over` is the run
    /// whose worker was killed (two starts and two attempts are right for it).
    pub(super) fn problems(&self, handed_over: Option<i64>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut versions = BTreeSet::new();
        for row in &self.rows {
            let run = row.id;
            let expected_attempts = if Some(run) == handed_over { 2 } else { 1 };
            if row.status != "succeeded" {
                problems.push(format!("run {run} ended {}", row.status));
            }
            if row.attempts != expected_attempts {
                problems.push(format!(
                    "run {run} has {} attempts, not {expected_attempts}",
                    row.attempts
                ));
            }
            if self.starts(run) as i64 != row.attempts {
                problems.push(format!(
                    "run {run}: {} starts in the workers' logs for {} attempts",
                    self.starts(run),
                    row.attempts
                ));
            }
            if self.completions(run) != 1 {
                problems.push(format!(
                    "run {run} completed {} times in the workers' logs",
                    self.completions(run)
                ));
            }
            if let Some(version) = row.version
                && !versions.insert(version)
            {
                problems.push(format!("version {version} is recorded by two runs"));
            }
        }
        let succeeded = self.rows.iter().filter(|r| r.status == "succeeded").count() as i64;
        if self.versions_created != succeeded {
            problems.push(format!(
                "{} model versions were created for {succeeded} succeeded runs",
                self.versions_created
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_run_rows_are_parsed_from_psql() {
        let rows = parse_runs("3|succeeded|1|host-a-12|7\n4|running|2|host-a-13|\n\n").unwrap();
        assert_eq!(
            rows[0],
            RunRow {
                id: 3,
                status: "succeeded".into(),
                attempts: 1,
                worker: "host-a-12".into(),
                version: Some(7),
            }
        );
        assert_eq!((rows[1].attempts, rows[1].version), (2, None));
        assert!(parse_runs("3|succeeded|1").is_err());
        assert!(parse_runs("x|succeeded|1|w|").is_err());
    }

    #[test]
    fn starts_and_completions_are_counted_from_json_log_lines() {
        let log = r#"{"level":"INFO","message":"training worker started","worker":"h-1"}
{"level":"INFO","message":"training","run":"3","project":"bench","kind":"ngram","attempt":1}
not json
{"level":"INFO","message":"trained","run":"3","version":"7","seconds":1.5}
{"level":"INFO","message":"training","run":4,"attempt":2}
{"level":"INFO","message":"training","run":"5"}
"#;
        let mut counts = LogCounts::default();
        counts.add(log);
        counts.add(r#"{"message":"training","run":"3","attempt":2}"#);
        assert_eq!(counts.starts, BTreeMap::from([(3, 2), (4, 1)]));
        assert_eq!(counts.completions, BTreeMap::from([(3, 1)]));
    }

    fn row(id: i64, attempts: i64, version: Option<i64>) -> RunRow {
        RunRow {
            id,
            status: "succeeded".into(),
            attempts,
            worker: "h-1".into(),
            version,
        }
    }

    #[test]
    fn a_ledger_of_runs_each_completed_once_has_no_problems() {
        let logs = LogCounts {
            starts: BTreeMap::from([(1, 1), (2, 2)]),
            completions: BTreeMap::from([(1, 1), (2, 1)]),
        };
        let ledger = Ledger {
            rows: vec![row(1, 1, Some(10)), row(2, 2, Some(11))],
            logs,
            versions_created: 2,
        };
        assert_eq!(ledger.problems(Some(2)), Vec::<String>::new());
        // Without the hand-over, two attempts are one too many.
        assert_eq!(
            ledger.problems(None),
            vec!["run 2 has 2 attempts, not 1".to_string()]
        );
    }

    #[test]
    fn a_run_completed_twice_or_a_shared_version_is_reported() {
        let logs = LogCounts {
            starts: BTreeMap::from([(1, 1), (2, 1)]),
            completions: BTreeMap::from([(1, 2), (2, 1)]),
        };
        let ledger = Ledger {
            rows: vec![row(1, 1, Some(10)), row(2, 1, Some(10))],
            logs,
            versions_created: 3,
        };
        assert_eq!(
            ledger.problems(None),
            vec![
                "run 1 completed 2 times in the workers' logs".to_string(),
                "version 10 is recorded by two runs".to_string(),
                "3 model versions were created for 2 succeeded runs".to_string(),
            ]
        );
    }
}
