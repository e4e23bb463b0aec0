//! Choosing the batch: one strategy ranks the unlabelled tickets of a project from the
//! model's probabilities (and, for some strategies, sentence embeddings or keyword rules),
//! and every chosen ticket carries its score and the reason a labeller reads.

use super::diversity::{normalised, weighted_kmeans_pp};
use super::uncertainty::{ModelView, Uncertainty, entropy, least_confidence, margin};
use crate::random::Random;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A way of choosing which tickets to label next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// 1 − the probability of the model's answer.
    LeastConfidence,
    /// Two likeliest tags close together (multi-label: a tag near its threshold).
    Margin,
    /// Spread of the whole distribution.
    Entropy,
    /// Margin-weighted k-means++ on embeddings: uncertain and unlike each other.
    Diverse,
    /// Keyword rules and the model disagree on a tag.
    Disagreement,
    /// Uniformly at random: the control.
    Random,
    /// No model yet: k-means++ on embeddings (or hashed n-grams), one ticket per region.
    ColdStart,
}

impl Strategy {
    pub const ALL: [Strategy; 7] = [
        Strategy::LeastConfidence,
        Strategy::Margin,
        Strategy::Entropy,
        Strategy::Diverse,
        Strategy::Disagreement,
        Strategy::Random,
        Strategy::ColdStart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LeastConfidence => "least-confidence",
            Strategy::Margin => "margin",
            Strategy::Entropy => "entropy",
            Strategy::Diverse => "diverse",
            Strategy::Disagreement => "disagreement",
            Strategy::Random => "random",
            Strategy::ColdStart => "cold-start",
        }
    }

    /// Whether the strategy needs a trained model's probabilities.
    pub fn needs_model(self) -> bool {
        !matches!(self, Strategy::Random | Strategy::ColdStart)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A strategy name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown strategy {0:?}: use one of least-confidence, margin, entropy, diverse, disagreement, random, cold-start"
)]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == s.trim())
            .ok_or_else(|| UnknownStrategy(s.to_string()))
    }
}

/// A keyword rule that disagrees with the model on one ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleConflict {
    /// How strongly the model disagrees: its probability for a vetoed tag, 1 − it for an
    /// added one.
    pub strength: f32,
    pub reason: String,
}

/// Everything a strategy may look at, one row per candidate ticket.
#[derive(Debug, Clone, Copy)]
pub struct Pool<'a> {
    /// How many candidate tickets there are; every per-candidate input has this length.
    pub candidates: usize,
    /// Calibrated probabilities per candidate (empty when there is no model).
    pub probabilities: &'a [Vec<f32>],
    pub view: ModelView<'a>,
    /// Sentence embeddings or hashed n-gram vectors, for `diverse` and `cold-start`.
    pub vectors: Option<&'a [Vec<f32>]>,
    /// Per candidate, the keyword-rule conflict if any, for `disagreement`.
    pub conflicts: Option<&'a [Option<RuleConflict>]>,
}

/// One chosen ticket: its row in the pool, its score and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub index: usize,
    pub score: f32,
    pub reason: String,
}

/// Why a strategy cannot run on this pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("strategy {0} needs the model's probabilities for every candidate")]
    NoProbabilities(Strategy),
    #[error("strategy {0} needs embeddings (or n-gram vectors) for every candidate")]
    NoVectors(Strategy),
    #[error("strategy disagreement needs the keyword-rule conflicts of every candidate")]
    NoConflicts,
}

/// How many of the most uncertain tickets `diverse` spreads its batch over, per ticket of
/// the batch: wide enough to skip near-duplicates, narrow enough to stay uncertain.
pub const DIVERSE_CANDIDATES_PER_PICK: usize = 10;

/// Ranks the pool with `strategy` and returns the best `k`, best first.
pub fn select(
    strategy: Strategy,
    pool: &Pool<'_>,
    k: usize,
    seed: u64,
) -> Result<Vec<Selection>, SelectError> {
    let n = pool.candidates;
    if strategy.needs_model() && strategy != Strategy::Disagreement && pool.probabilities.len() != n
    {
        return Err(SelectError::NoProbabilities(strategy));
    }
    let uncertainty = |f: fn(&[f32], &ModelView<'_>) -> Uncertainty| -> Vec<Uncertainty> {
        pool.probabilities
            .iter()
            .map(|p| f(p, &pool.view))
            .collect()
    };
    let top = |scored: Vec<Uncertainty>| -> Vec<Selection> {
        let mut ranked: Vec<Selection> = scored
            .into_iter()
            .enumerate()
            .map(|(index, u)| Selection {
                index,
                score: u.score,
                reason: u.reason,
            })
            .collect();
        // Stable on ties: the earlier row (lower ticket id) first, so reruns agree.
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        ranked.truncate(k);
        ranked
    };
    match strategy {
        Strategy::LeastConfidence => Ok(top(uncertainty(least_confidence))),
        Strategy::Margin => Ok(top(uncertainty(margin))),
        Strategy::Entropy => Ok(top(uncertainty(entropy))),
        Strategy::Random => {
            let mut order: Vec<usize> = (0..n).collect();
            Random(seed).shuffle(&mut order);
            Ok(order
                .into_iter()
                .take(k)
                .map(|index| Selection {
                    index,
                    score: 0.0,
                    reason: "picked at random (control)".into(),
                })
                .collect())
        }
        Strategy::Disagreement => {
            let conflicts = pool
                .conflicts
                .filter(|c| c.len() == n)
                .ok_or(SelectError::NoConflicts)?;
            let mut ranked: Vec<Selection> = conflicts
                .iter()
                .enumerate()
                .filter_map(|(index, conflict)| {
                    conflict.as_ref().map(|c| Selection {
                        index,
                        score: c.strength,
                        reason: c.reason.clone(),
                    })
                })
                .collect();
            ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
            ranked.truncate(k);
            Ok(ranked)
        }
        Strategy::Diverse => {
            let vectors = pool
                .vectors
                .filter(|v| v.len() == n)
                .ok_or(SelectError::NoVectors(strategy))?;
            let scored = uncertainty(margin);
            let mut shortlist: Vec<usize> = (0..n).collect();
            shortlist.sort_by(|a, b| scored[*b].score.total_cmp(&scored[*a].score).then(a.cmp(b)));
            shortlist.truncate(k.saturating_mul(DIVERSE_CANDIDATES_PER_PICK).max(k));
            let points = normalised(
                &shortlist
                    .iter()
                    .map(|&i| vectors[i].clone())
                    .collect::<Vec<_>>(),
            );
            // A margin score of exactly 0 (a sure ticket) still gets a small weight, so a
            // shortlist of sure tickets can fill the batch.
            let weights: Vec<f32> = shortlist
                .iter()
                .map(|&i| scored[i].score.max(1e-3))
                .collect();
            let picked = weighted_kmeans_pp(&points, &weights, k, seed);
            Ok(picked
                .into_iter()
                .map(|p| {
                    let index = shortlist[p];
                    Selection {
                        index,
                        score: scored[index].score,
                        reason: format!("{}; unlike the rest of the batch", scored[index].reason),
                    }
                })
                .collect())
        }
        Strategy::ColdStart => {
            let vectors = pool
                .vectors
                .filter(|v| v.len() == n)
                .ok_or(SelectError::NoVectors(strategy))?;
            let points = normalised(vectors);
            // k-means++ starts from the heaviest row; with equal weights a seeded shuffle
            // of tiny offsets picks a random first ticket instead of always row 0.
            let mut random = Random(seed);
            let weights: Vec<f32> = (0..n).map(|_| 1.0 + 1e-3 * random.uniform()).collect();
            let picked = weighted_kmeans_pp(&points, &weights, k, seed);
            Ok(picked
                .into_iter()
                .enumerate()
                .map(|(order, index)| Selection {
                    index,
                    score: 1.0 - order as f32 / k.max(1) as f32,
                    reason: "no model yet: a ticket from a part of the project not covered so far"
                        .into(),
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::LabelMode;

    fn tags() -> Vec<String> {
        vec!["Bug".into(), "Question".into(), "Billing".into()]
    }

    fn pool<'a>(probabilities: &'a [Vec<f32>], tags: &'a [String]) -> Pool<'a> {
        Pool {
            candidates: probabilities.len(),
            probabilities,
            view: ModelView {
                mode: LabelMode::Single,
                tags,
                thresholds: &[0.5, 0.5, 0.5],
            },
            vectors: None,
            conflicts: None,
        }
    }

    #[test]
    fn margin_picks_the_ticket_closest_to_the_boundary() {
        let tags = tags();
        let probabilities = vec![
            vec![0.90, 0.05, 0.05],
            vec![0.48, 0.46, 0.06],
            vec![0.60, 0.30, 0.10],
            vec![0.34, 0.33, 0.33],
        ];
        let picked = select(Strategy::Margin, &pool(&probabilities, &tags), 1, 0).unwrap();
        assert_eq!(picked[0].index, 3);
        assert_eq!(picked[0].reason, "margin 0.01 between Bug and Question");
        let two = select(Strategy::Margin, &pool(&probabilities[..3], &tags), 2, 0).unwrap();
        assert_eq!(two.iter().map(|s| s.index).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn least_confidence_and_entropy_can_disagree_with_margin() {
        let tags = tags();
        // Row 0: two tags tied, third zero (margin 0, top 0.5). Row 1: flat-ish (top 0.4).
        let probabilities = vec![vec![0.5, 0.5, 0.0], vec![0.4, 0.3, 0.3]];
        let pool = pool(&probabilities, &tags);
        assert_eq!(select(Strategy::Margin, &pool, 1, 0).unwrap()[0].index, 0);
        assert_eq!(
            select(Strategy::LeastConfidence, &pool, 1, 0).unwrap()[0].index,
            1
        );
        assert_eq!(select(Strategy::Entropy, &pool, 1, 0).unwrap()[0].index, 1);
    }

    #[test]
    fn random_is_seeded_and_never_repeats() {
        let tags = tags();
        let probabilities = vec![vec![0.4, 0.3, 0.3]; 50];
        let pool = pool(&probabilities, &tags);
        let a = select(Strategy::Random, &pool, 10, 7).unwrap();
        let b = select(Strategy::Random, &pool, 10, 7).unwrap();
        let c = select(Strategy::Random, &pool, 10, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let unique: std::collections::HashSet<usize> = a.iter().map(|s| s.index).collect();
        assert_eq!(unique.len(), 10);
    }

    #[test]
    fn diverse_does_not_return_near_duplicates() {
        let tags = tags();
        // Ten near-identical, very uncertain tickets and five distinct, slightly less uncertain.
        let mut probabilities = vec![vec![0.34, 0.33, 0.33]; 10];
        probabilities.extend(vec![vec![0.45, 0.40, 0.15]; 5]);
        let mut vectors: Vec<Vec<f32>> = (0..10)
            .map(|i| vec![1.0, 1e-4 * i as f32, 0.0, 0.0, 0.0, 0.0])
            .collect();
        for d in 1..6 {
            let mut v = vec![0.0; 6];
            v[d] = 1.0;
            vectors.push(v);
        }
        let mut pool = pool(&probabilities, &tags);
        pool.vectors = Some(&vectors);
        let margin_batch = select(Strategy::Margin, &pool, 4, 0).unwrap();
        assert!(
            margin_batch.iter().all(|s| s.index < 10),
            "plain margin takes the copies"
        );
        for seed in 0..10 {
            let batch = select(Strategy::Diverse, &pool, 4, seed).unwrap();
            let copies = batch.iter().filter(|s| s.index < 10).count();
            assert_eq!(copies, 1, "seed {seed}: {batch:?}");
            assert!(batch[0].reason.contains("unlike the rest"));
        }
    }

    #[test]
    fn cold_start_covers_each_cluster_without_a_model() {
        let tags = tags();
        let vectors: Vec<Vec<f32>> = (0..30)
            .map(|i| {
                let mut v = vec![0.0; 3];
                v[i % 3] = 1.0;
                v.push(1e-3 * i as f32);
                v
            })
            .collect();
        let with_vectors = Pool {
            candidates: vectors.len(),
            vectors: Some(&vectors),
            ..pool(&[], &tags)
        };
        let batch = select(Strategy::ColdStart, &with_vectors, 3, 1).unwrap();
        let mut clusters: Vec<usize> = batch.iter().map(|s| s.index % 3).collect();
        clusters.sort_unstable();
        assert_eq!(clusters, [0, 1, 2]);
        let without_vectors = Pool {
            candidates: 30,
            ..pool(&[], &tags)
        };
        assert!(matches!(
            select(Strategy::ColdStart, &without_vectors, 3, 1),
            Err(SelectError::NoVectors(_))
        ));
    }

    #[test]
    fn disagreement_ranks_the_strongest_rule_conflicts_first() {
        let tags = tags();
        let probabilities = vec![vec![0.4, 0.3, 0.3]; 3];
        let conflicts = vec![
            None,
            Some(RuleConflict {
                strength: 0.6,
                reason: "rule adds Billing, model 0.40".into(),
            }),
            Some(RuleConflict {
                strength: 0.9,
                reason: "rule vetoes Bug, model 0.90".into(),
            }),
        ];
        let mut pool = pool(&probabilities, &tags);
        pool.conflicts = Some(&conflicts);
        let batch = select(Strategy::Disagreement, &pool, 5, 0).unwrap();
        assert_eq!(batch.iter().map(|s| s.index).collect::<Vec<_>>(), [2, 1]);
    }

    #[test]
    fn strategy_names_round_trip_and_unknown_names_are_refused() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.as_str().parse::<Strategy>().unwrap(), strategy);
        }
        assert!("confidence".parse::<Strategy>().is_err());
    }
}
