//! The load generator: a closed loop of `connections` clients, each sending its next tagging
//! request as soon as the last one was answered, every request to the next server in turn
//! (round robin, as a balancer in front of the servers spreads them). Every failed request
//! is kept with the server it went to; none is retried.

use crate::serve::{Load, Outcome, Sample, Target, promote, send};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// One request: the server it went to, when it was sent (`due`, from the start of its
/// phase), its latency and its outcome.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub(super) server: usize,
    pub(super) sample: Sample,
}

/// The servers a phase spreads requests over, in turn, skipping those taken out.
pub(super) struct Rotation {
    servers: Vec<usize>,
    next: AtomicUsize,
    out: Vec<AtomicBool>,
}

impl Rotation {
    pub(super) fn new(servers: &[usize]) -> Self {
        Self {
            servers: servers.to_vec(),
            next: AtomicUsize::new(0),
            out: servers.iter().map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// The next server in turn that is still in; none when all were taken out.
    pub(super) fn next(&self) -> Option<usize> {
        for _ in 0..self.servers.len() {
            let position = self.next.fetch_add(1, Ordering::Relaxed) % self.servers.len();
            if !self.out[position].load(Ordering::Relaxed) {
                return Some(self.servers[position]);
            }
        }
        None
    }

    /// A balancer's passive health check: a server that failed to answer at all gets no
    /// more requests (an error status does not take it out: the server is up).
    pub(super) fn take_out(&self, server: usize) {
        if let Some(position) = self.servers.iter().position(|s| *s == server) {
            self.out[position].store(true, Ordering::Relaxed);
        }
    }
}

/// A request that got no HTTP answer: refused, reset, or timed out.
pub(super) fn no_answer(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Failed(kind) if !kind.starts_with("HTTP"))
}

/// What the generator needs: one serve `Load` per server (all sharing one client and its
/// keep-alive connections) and the servers' addresses.
pub(super) struct Fleetwide {
    pub(super) loads: Arc<Vec<Load>>,
    pub(super) addrs: Vec<SocketAddr>,
}

impl Fleetwide {
    pub(super) fn client(&self) -> &reqwest::Client {
        &self.loads[0].client
    }

    pub(super) fn key(&self) -> &str {
        &self.loads[0].key
    }

    /// `connections` clients in a closed loop over `servers` from `start` for `duration`.
    /// With `eject`, a server that gives no answer is taken out of the rotation.
    pub(super) async fn closed_loop(
        &self,
        servers: &[usize],
        connections: usize,
        duration: Duration,
        eject: bool,
        start: Instant,
    ) -> anyhow::Result<Vec<Answer>> {
        tokio::time::sleep_until(start).await;
        let rotation = Arc::new(Rotation::new(servers));
        let mut clients = tokio::task::JoinSet::new();
        for connection in 0..connections {
            let rotation = Arc::clone(&rotation);
            let loads = Arc::clone(&self.loads);
            clients.spawn(async move {
                let mut answers = Vec::new();
                // Each client walks the ticket texts from its own offset.
                let mut text = connection;
                while start.elapsed() < duration {
                    let Some(server) = rotation.next() else { break };
                    let request = loads[server].request(Target::Tag, text);
                    text += connections;
                    let sample = send(request, Target::Tag, start.elapsed(), Duration::ZERO).await;
                    if eject && no_answer(&sample.outcome) {
                        rotation.take_out(server);
                    }
                    answers.push(Answer { server, sample });
                }
                answers
            });
        }
        let mut answers = Vec::new();
        while let Some(client) = clients.join_next().await {
            answers.extend(client.context("a load generator task failed")?);
        }
        answers.sort_by_key(|a| a.sample.due);
        Ok(answers)
    }

    /// The version `/readyz` says the server has in service (the bench has one project).
    pub(super) async fn serving(&self, server: usize) -> Option<i64> {
        let url = format!("http://{}/readyz", self.addrs[server]);
        let response = self.client().get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: serde_json::Value = response.json().await.ok()?;
        body["models"]
            .as_array()?
            .iter()
            .find_map(|m| m["version"].as_i64())
    }

    /// Waits until every server in `servers` has `version` in service.
    pub(super) async fn wait_serving(
        &self,
        servers: &[usize],
        version: i64,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for &server in servers {
            while self.serving(server).await != Some(version) {
                if Instant::now() > deadline {
                    anyhow::bail!(
                        "server {} did not serve version {version} within {within:?}",
                        server + 1
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Promotes `version` through server `via` now, then polls every server's `/readyz`
    /// until each serves it (or `within` passes); times count from `start`.
    pub(super) async fn promote_and_watch(
        &self,
        via: usize,
        version: i64,
        start: Instant,
        within: Duration,
    ) -> Promotion {
        let url = format!(
            "http://{}/v1/projects/{}/models/{version}/promote",
            self.addrs[via],
            super::PROJECT
        );
        let at = start.elapsed();
        let called = Instant::now();
        let result = promote(self.client(), &url, self.key()).await;
        let took = called.elapsed();
        let mut serving_after = vec![None; self.addrs.len()];
        while serving_after.iter().any(Option::is_none) && called.elapsed() < within {
            for (server, seen) in serving_after.iter_mut().enumerate() {
                if seen.is_none() && self.serving(server).await == Some(version) {
                    *seen = Some(called.elapsed());
                }
            }
            tokio::time::sleep(POLL).await;
        }
        Promotion {
            at,
            took,
            via,
            version,
            result,
            serving_after,
        }
    }
}

/// How often `/readyz` is polled after a promotion: the resolution of the swap times.
pub(super) const POLL: Duration = Duration::from_millis(20);

/// One promotion through one server, and when each server had the version in service.
#[derive(Debug, Clone)]
pub(super) struct Promotion {
    /// When the call was sent, from the start of the phase.
    pub(super) at: Duration,
    pub(super) took: Duration,
    /// The server it was sent to.
    pub(super) via: usize,
    pub(super) version: i64,
    /// The version the server called says it serves afterwards, or why the call failed.
    pub(super) result: Result<i64, String>,
    /// Per server: from sending the call to `/readyz` showing the version (none: not seen).
    pub(super) serving_after: Vec<Option<Duration>>,
}

impl Promotion {
    /// Per server: how long after the call was sent the last answer that came from another
    /// version than this promotion's arrived, among requests sent after the call and answered
    /// before `until` (the next promotion, which may rightly bring the old version back);
    /// none when every such answer came from the new version.
    pub(super) fn last_old_answer(
        &self,
        answers: &[Answer],
        until: Duration,
        servers: usize,
    ) -> Vec<Option<Duration>> {
        let mut last = vec![None; servers];
        for answer in answers {
            let sent = answer.sample.sent();
            let Outcome::Ok(Some(version)) = answer.sample.outcome else {
                continue;
            };
            let answered = sent + answer.sample.latency;
            if sent < self.at || answered >= until || version == self.version {
                continue;
            }
            let answered = answered - self.at;
            let slot: &mut Option<Duration> = &mut last[answer.server];
            *slot = Some(slot.map_or(answered, |s: Duration| s.max(answered)));
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotation_takes_servers_in_turn_and_skips_those_taken_out() {
        let rotation = Rotation::new(&[0, 1, 2]);
        let turns: Vec<_> = (0..6).map(|_| rotation.next()).collect();
        assert_eq!(turns, [0, 1, 2, 0, 1, 2].map(Some));
        rotation.take_out(1);
        let turns: Vec<_> = (0..4).map(|_| rotation.next()).collect();
        assert_eq!(turns, [0, 2, 0, 2].map(Some));
        rotation.take_out(0);
        rotation.take_out(2);
        assert_eq!(rotation.next(), None);
        let subset = Rotation::new(&[1]);
        assert_eq!((subset.next(), subset.next()), (Some(1), Some(1)));
    }

    #[test]
    fn only_requests_without_an_http_answer_take_a_server_out() {
        assert!(no_answer(&Outcome::Failed("cannot connect".into())));
        assert!(no_answer(&Outcome::Failed("connection error".into())));
        assert!(!no_answer(&Outcome::Failed("HTTP 503 unavailable".into())));
        assert!(!no_answer(&Outcome::Ok(Some(1))));
    }

    #[test]
    fn the_last_old_answer_is_counted_per_server_from_the_call() {
        let answer = |server, sent_ms, latency_ms, version| Answer {
            server,
            sample: Sample {
                due: Duration::from_millis(sent_ms),
                lag: Duration::ZERO,
                latency: Duration::from_millis(latency_ms),
                outcome: Outcome::Ok(Some(version)),
            },
        };
        let promotion = Promotion {
            at: Duration::from_millis(1_000),
            took: Duration::from_millis(5),
            via: 0,
            version: 2,
            result: Ok(2),
            serving_after: vec![Some(Duration::from_millis(5)); 3],
        };
        let answers = [
            // Before the call: not counted.
            answer(1, 900, 1, 1),
            answer(1, 1_010, 2, 1),
            answer(1, 1_200, 3, 1),
            answer(1, 1_300, 1, 2),
            answer(0, 1_100, 1, 2),
            // Answered after the next promotion began: not this one's.
            answer(2, 3_999, 2, 1),
            answer(2, 5_000, 1, 1),
        ];
        let last = promotion.last_old_answer(&answers, Duration::from_millis(4_000), 3);
        assert_eq!(last, vec![None, Some(Duration::from_millis(203)), None]);
    }
}
