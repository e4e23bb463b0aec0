//! How unlike the tickets a model learned from a ticket is. Each kind of model gives a few
//! signals (higher: less familiar); a detector fitted at training time on held-out tickets
//! the model never saw standardises each signal by its spread there, averages them, and
//! places the threshold at a high quantile of that average (by default the 95th
//! percentile: about 1 in 20 ordinary tickets goes to a person, in exchange for catching
//! tickets about things no tag covers). A ticket beyond it is sent to review untagged.

use datasets::LabelMode;
use serde::{Deserialize, Serialize};

/// The share of held-out in-distribution tickets a detector lets through by default.
pub const DEFAULT_QUANTILE: f64 = 0.95;
/// Below this spread a signal counts as constant on held-out tickets: any change in it
/// must then be large before it moves the score (a spread of zero would make every change
/// infinite).
const MIN_SPREAD: f32 = 1e-3;

/// One signal that a ticket is unlike the training tickets; higher means less familiar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// The free energy of the scores: `−ln Σ exp(logit)` for one tag per ticket, `−Σ
    /// ln(1 + exp(logit))` for several (Liu et al., 2020; Wang et al., 2021). Low when some
    /// tag scores high, whatever the other tags do.
    Energy,
    /// One minus the highest probability at temperature 1 (softmax for one tag per
    /// ticket, per-tag sigmoid for several). For `ngram`, whose logits grow with a ticket's
    /// length, it separates out-of-scope queries far better than the energy (CLINC150
    /// validation, docs/benchmarks.md).
    Uncertainty,
    /// The share of the ticket's distinct n-gram features the model has no weight for
    /// (seen in fewer than `min_df` training tickets, or never).
    UnseenFeatures,
    /// One minus the cosine similarity of the ticket's embedding to the nearest tag's
    /// centroid (the mean direction of that tag's training tickets).
    CentroidDistance,
}

/// The fitted detector, kept in the model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodDetector {
    /// Which signals, in the order a model reports them.
    pub signals: Vec<Signal>,
    /// Per signal: its mean and standard deviation on the held-out tickets.
    pub mean: Vec<f32>,
    pub spread: Vec<f32>,
    /// Scores above this are unfamiliar.
    pub threshold: f32,
    /// The share of held-out tickets at or below the threshold when it was chosen.
    pub quantile: f64,
    /// How many held-out tickets it was fitted on.
    pub held_out: usize,
}

/// A ticket's score against its model's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Unfamiliarity {
    /// The average of the standardised signals; higher is less familiar.
    pub score: f32,
    pub threshold: f32,
}

impl Unfamiliarity {
    /// Beyond the threshold: the model's scores on this ticket mean little.
    pub fn is_beyond(&self) -> bool {
        self.score > self.threshold
    }
}

impl OodDetector {
    /// Fits a detector on the signals of held-out tickets (one row per ticket, one value
    /// per signal); `None` with no rows, or rows that do not match `signals`.
    pub fn fit(signals: Vec<Signal>, rows: &[Vec<f32>], quantile: f64) -> Option<Self> {
        let width = signals.len();
        let rows: Vec<&Vec<f32>> = rows
            .iter()
            .filter(|row| row.len() == width && row.iter().all(|v| v.is_finite()))
            .collect();
        if rows.is_empty() || width == 0 {
            return None;
        }
        let count = rows.len() as f64;
        let mean: Vec<f64> = (0..width)
            .map(|i| rows.iter().map(|row| f64::from(row[i])).sum::<f64>() / count)
            .collect();
        let spread: Vec<f32> = (0..width)
            .map(|i| {
                let variance = rows
                    .iter()
                    .map(|row| (f64::from(row[i]) - mean[i]).powi(2))
                    .sum::<f64>()
                    / count;
                (variance.sqrt() as f32).max(MIN_SPREAD)
            })
            .collect();
        let mut detector = Self {
            signals,
            mean: mean.iter().map(|m| *m as f32).collect(),
            spread,
            threshold: f32::INFINITY,
            quantile,
            held_out: rows.len(),
        };
        let mut scores: Vec<f32> = rows.iter().map(|row| detector.score(row)).collect();
        scores.sort_by(f32::total_cmp);
        detector.threshold = quantile_of(&scores, quantile);
        Some(detector)
    }

    /// The average of the standardised signals.
    pub fn score(&self, values: &[f32]) -> f32 {
        let sum: f32 = values
            .iter()
            .zip(self.mean.iter().zip(&self.spread))
            .map(|(value, (mean, spread))| (value - mean) / spread)
            .sum();
        sum / self.signals.len().max(1) as f32
    }

    /// The ticket's score against the threshold.
    pub fn judge(&self, values: &[f32]) -> Unfamiliarity {
        Unfamiliarity {
            score: self.score(values),
            threshold: self.threshold,
        }
    }
}

/// The value below which `share` of the sorted values lie (nearest rank, rounded up so the
/// threshold lets at least `share` through).
fn quantile_of(sorted: &[f32], share: f64) -> f32 {
    if sorted.is_empty() {
        return f32::INFINITY;
    }
    let rank = ((share * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The free energy of a row of logits (see [`Signal::Energy`]).
pub fn energy(logits: &[f32], mode: LabelMode) -> f32 {
    match mode {
        LabelMode::Single => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = logits.iter().map(|l| libm::expf(l - max)).sum();
            -(max + libm::logf(sum))
        }
        LabelMode::Multi => -logits
            .iter()
            .map(|l| l.max(0.0) + libm::log1pf(libm::expf(-l.abs())))
            .sum::<f32>(),
    }
}

/// One minus the highest probability at temperature 1 (see [`Signal::Uncertainty`]).
pub fn uncertainty(logits: &[f32], heads: &crate::heads::Heads) -> f32 {
    let probabilities = heads.probabilities(logits, 1.0);
    1.0 - probabilities.iter().copied().fold(0.0, f32::max)
}

/// Unit-length tag centroids (`outputs × dim`, row-major) from embeddings and their tags;
/// a tag without examples gets a zero row, which is never the nearest.
pub fn centroids(
    embeddings: &[&[f32]],
    targets: &[&[usize]],
    outputs: usize,
    dim: usize,
) -> Vec<f32> {
    let mut sums = vec![0f64; outputs * dim];
    for (embedding, tags) in embeddings.iter().zip(targets) {
        let norm = norm(embedding);
        if norm == 0.0 || embedding.len() != dim {
            continue;
        }
        for &tag in tags.iter().filter(|t| **t < outputs) {
            for (sum, value) in sums[tag * dim..(tag + 1) * dim].iter_mut().zip(*embedding) {
                *sum += f64::from(value / norm);
            }
        }
    }
    sums.chunks_exact(dim.max(1))
        .flat_map(|row| {
            let length = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            row.iter().map(move |v| {
                if length > 0.0 {
                    (v / length) as f32
                } else {
                    0.0
                }
            })
        })
        .collect()
}

/// One minus the cosine similarity to the nearest centroid (see [`Signal::CentroidDistance`]).
pub fn centroid_distance(embedding: &[f32], centroids: &[f32]) -> f32 {
    let length = norm(embedding);
    if length == 0.0 || embedding.is_empty() {
        return 1.0;
    }
    let best = centroids
        .chunks_exact(embedding.len())
        // A tag without training tickets has a zero row: it is no tag's direction.
        .filter(|row| row.iter().any(|v| *v != 0.0))
        .map(|row| row.iter().zip(embedding).map(|(c, e)| c * e).sum::<f32>() / length)
        .fold(f32::NEG_INFINITY, f32::max);
    if best.is_finite() { 1.0 - best } else { 1.0 }
}

fn norm(values: &[f32]) -> f32 {
    values.iter().map(|v| v * v).sum::<f32>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_lets_the_chosen_share_of_held_out_tickets_through() {
        let rows: Vec<Vec<f32>> = (0..100).map(|i| vec![i as f32]).collect();
        let detector = OodDetector::fit(vec![Signal::Energy], &rows, 0.95).unwrap();
        let through = rows
            .iter()
            .filter(|row| !detector.judge(row).is_beyond())
            .count();
        assert_eq!(through, 95);
        assert!(detector.judge(&[500.0]).is_beyond());
        assert!(!detector.judge(&[10.0]).is_beyond());
    }

    #[test]
    fn signals_count_by_their_own_spread_so_neither_drowns_the_other() {
        // The first signal varies in thousands, the second in hundredths.
        let rows: Vec<Vec<f32>> = (0..200)
            .map(|i| vec![1000.0 * (i % 10) as f32, 0.01 * (i % 7) as f32])
            .collect();
        let detector =
            OodDetector::fit(vec![Signal::Energy, Signal::UnseenFeatures], &rows, 0.95).unwrap();
        // Far out on the small-scale signal alone is unfamiliar.
        let mean_first = detector.mean[0];
        assert!(detector.judge(&[mean_first, 1.0]).is_beyond());
        assert!(!detector.judge(&[mean_first, 0.03]).is_beyond());
    }

    #[test]
    fn a_signal_constant_on_held_out_tickets_still_counts_when_it_moves() {
        let rows: Vec<Vec<f32>> = (0..50).map(|i| vec![i as f32, 0.0]).collect();
        let detector =
            OodDetector::fit(vec![Signal::Energy, Signal::UnseenFeatures], &rows, 0.95).unwrap();
        assert!(detector.spread[1] > 0.0);
        assert!(detector.judge(&[detector.mean[0], 0.5]).is_beyond());
        assert!(detector.judge(&[f32::NAN]).score.is_nan());
        assert!(!detector.judge(&[f32::NAN, f32::NAN]).is_beyond());
    }

    #[test]
    fn nothing_to_fit_on_gives_no_detector() {
        assert!(OodDetector::fit(vec![Signal::Energy], &[], 0.95).is_none());
        assert!(OodDetector::fit(vec![Signal::Energy], &[vec![f32::NAN]], 0.95).is_none());
    }

    #[test]
    fn energy_is_low_when_one_tag_scores_high() {
        let sure = energy(&[9.0, 0.0, 0.0], LabelMode::Single);
        let flat = energy(&[0.0, 0.0, 0.0], LabelMode::Single);
        assert!(sure < flat, "{sure} vs {flat}");
        assert!((flat + 3f32.ln()).abs() < 1e-6);
        let multi_sure = energy(&[9.0, -9.0], LabelMode::Multi);
        let multi_none = energy(&[-9.0, -9.0], LabelMode::Multi);
        assert!(multi_sure < multi_none);
        assert!(energy(&[1e4, -1e4], LabelMode::Multi).is_finite());
    }

    #[test]
    fn uncertainty_is_low_when_one_tag_is_likely() {
        assert!(uncertainty(&[9.0, 0.0, 0.0], &crate::heads::Heads::SINGLE) < 0.01);
        assert!((uncertainty(&[0.0, 0.0], &crate::heads::Heads::SINGLE) - 0.5).abs() < 1e-6);
        assert!(uncertainty(&[-9.0, -9.0], &crate::heads::Heads::MULTI) > 0.99);
    }

    #[test]
    fn the_nearest_centroid_decides_the_distance() {
        let embeddings: Vec<Vec<f32>> = vec![
            vec![2.0, 0.0],
            vec![1.0, 0.1],
            vec![0.0, 3.0],
            vec![0.1, 1.0],
        ];
        let refs: Vec<&[f32]> = embeddings.iter().map(Vec::as_slice).collect();
        let tags: [&[usize]; 4] = [&[0], &[0], &[1], &[1]];
        let centroids = centroids(&refs, &tags, 3, 2);
        assert_eq!(centroids.len(), 6);
        assert_eq!(&centroids[4..], &[0.0, 0.0], "a tag without tickets");
        assert!(centroid_distance(&[5.0, 0.2], &centroids) < 0.01);
        let between = centroid_distance(&[1.0, 1.0], &centroids);
        assert!(between > 0.2, "{between}");
        assert!(centroid_distance(&[-1.0, -1.0], &centroids) > 1.0);
        assert_eq!(centroid_distance(&[0.0, 0.0], &centroids), 1.0);
    }
}
