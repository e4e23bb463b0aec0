//! Calibration: the temperature that makes probabilities honest on held-out tickets, the
//! check that it does so on tickets it was not fitted on, and the expected calibration
//! error (ECE) that says how honest they are.

use datasets::GroupChoice;
use datasets::split::stable_hash;
use inference::heads::Heads;
use serde::Serialize;

/// Folds of the held-out tickets in which a fitted temperature must prove itself.
pub const CALIBRATION_FOLDS: usize = 5;
/// Seed of the hash that deals held-out tickets into those folds.
const FOLD_SEED: u64 = 17;

/// Whether temperature scaling is applied, and the evidence for the choice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TemperatureChoice {
    /// The temperature the model uses: the fitted one if it helped, else 1.
    pub temperature: f32,
    /// The temperature fitted on all held-out tickets.
    pub fitted: f32,
    pub applied: bool,
    /// ECE over the held-out tickets, each fold scored at the temperature fitted on the
    /// other folds, and the same without a temperature.
    pub held_out_ece_fitted: f64,
    pub held_out_ece_plain: f64,
}

/// Fits a temperature on held-out logits and keeps it only if, fitted on all folds but
/// one, it lowers the ECE of the fold left out (pooled over the folds): temperature scaling
/// minimises log-loss, which a few confidently wrong tickets can pull far from what makes
/// the probabilities honest (issue 17 saw ECE 0.015 → 0.043).
pub fn choose_temperature(
    logits: &[Vec<f32>],
    targets: &[Vec<usize>],
    heads: &Heads,
    folds: usize,
) -> TemperatureChoice {
    let fitted = fit_temperature(logits, targets, heads);
    let folds = folds.clamp(2, logits.len().max(2));
    // Folds by a hash of the position, not the position itself: held-out tickets come in
    // id order, which an import may have grouped by tag.
    let fold_of: Vec<usize> = (0..logits.len())
        .map(|i| (stable_hash(FOLD_SEED, &i.to_string()) % folds as u64) as usize)
        .collect();
    let mut held_out_fitted = Vec::with_capacity(logits.len());
    let mut held_out_plain = Vec::with_capacity(logits.len());
    let mut held_out_targets = Vec::with_capacity(logits.len());
    for fold in 0..folds {
        let (rest_logits, rest_targets): (Vec<Vec<f32>>, Vec<Vec<usize>>) = logits
            .iter()
            .zip(targets)
            .enumerate()
            .filter(|(i, _)| fold_of[*i] != fold)
            .map(|(_, (l, t))| (l.clone(), t.clone()))
            .unzip();
        let temperature = fit_temperature(&rest_logits, &rest_targets, heads);
        for (_, (l, t)) in logits
            .iter()
            .zip(targets)
            .enumerate()
            .filter(|(i, _)| fold_of[*i] == fold)
        {
            held_out_fitted.push(heads.probabilities(l, temperature));
            held_out_plain.push(heads.probabilities(l, 1.0));
            held_out_targets.push(t.clone());
        }
    }
    let held_out_ece_fitted =
        expected_calibration_error(&held_out_fitted, &held_out_targets, heads);
    let held_out_ece_plain = expected_calibration_error(&held_out_plain, &held_out_targets, heads);
    let applied = held_out_ece_fitted < held_out_ece_plain;
    TemperatureChoice {
        temperature: if applied { fitted } else { 1.0 },
        fitted,
        applied,
        held_out_ece_fitted,
        held_out_ece_plain,
    }
}

/// Mean negative log-likelihood of the true tags at a temperature.
fn negative_log_likelihood(
    logits: &[Vec<f32>],
    targets: &[Vec<usize>],
    temperature: f32,
    heads: &Heads,
) -> f64 {
    let mut total = 0.0;
    let mut count = 0usize;
    let segments = heads.segments(logits.first().map_or(0, Vec::len));
    for (row, truth) in logits.iter().zip(targets) {
        let p = heads.probabilities(row, temperature);
        for head in &segments {
            let range = head.outputs();
            match head.choice {
                // A single-choice head: the probability of the ticket's tag in it (a ticket
                // without one says nothing about it).
                GroupChoice::Single => {
                    if let Some(&t) = truth.iter().find(|t| range.contains(t)) {
                        total -= libm::log(f64::from(p[t].max(1e-7)));
                        count += 1;
                    }
                }
                GroupChoice::Multi => {
                    for i in range {
                        let q = if truth.contains(&i) { p[i] } else { 1.0 - p[i] };
                        total -= libm::log(f64::from(q.max(1e-7)));
                        count += 1;
                    }
                }
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        total / count as f64
    }
}

/// The temperature minimising validation NLL (golden-section search on log T in [-3, 3]);
/// 1.0 when there is nothing to fit on.
pub fn fit_temperature(logits: &[Vec<f32>], targets: &[Vec<usize>], heads: &Heads) -> f32 {
    if logits.is_empty() {
        return 1.0;
    }
    let loss =
        |log_t: f64| negative_log_likelihood(logits, targets, libm::exp(log_t) as f32, heads);
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut low, mut high) = (-3.0f64, 3.0f64);
    let mut a = high - ratio * (high - low);
    let mut b = low + ratio * (high - low);
    let (mut fa, mut fb) = (loss(a), loss(b));
    for _ in 0..40 {
        if fa < fb {
            high = b;
            b = a;
            fb = fa;
            a = high - ratio * (high - low);
            fa = loss(a);
        } else {
            low = a;
            a = b;
            fa = fb;
            b = low + ratio * (high - low);
            fb = loss(b);
        }
    }
    libm::exp((low + high) / 2.0) as f32
}

/// Expected calibration error over 15 equal-width bins: for one tag per ticket, of the top
/// probability against being right; for several, of every tag's probability against the truth.
pub fn expected_calibration_error(
    probabilities: &[Vec<f32>],
    targets: &[Vec<usize>],
    heads: &Heads,
) -> f64 {
    const BINS: usize = 15;
    let mut confidence = [0f64; BINS];
    let mut correct = [0f64; BINS];
    let mut count = [0usize; BINS];
    let mut add = |p: f32, hit: bool| {
        let bin = ((p * BINS as f32) as usize).min(BINS - 1);
        confidence[bin] += f64::from(p);
        correct[bin] += if hit { 1.0 } else { 0.0 };
        count[bin] += 1;
    };
    let segments = heads.segments(probabilities.first().map_or(0, Vec::len));
    for (p, truth) in probabilities.iter().zip(targets) {
        for head in &segments {
            let range = head.outputs();
            match head.choice {
                GroupChoice::Single => {
                    // Single-label tickets always have their tag; a grouped ticket without
                    // a tag in this group is not judged on it.
                    if !truth.iter().any(|t| range.contains(t)) {
                        continue;
                    }
                    if let Some((best, top)) = p[range.clone()]
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                    {
                        add(*top, truth.contains(&(range.start + best)));
                    }
                }
                GroupChoice::Multi => {
                    for i in range {
                        add(p[i], truth.contains(&i));
                    }
                }
            }
        }
    }
    let total: usize = count.iter().sum();
    if total == 0 {
        return 0.0;
    }
    (0..BINS)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            (count[b] as f64 / total as f64)
                * (confidence[b] / count[b] as f64 - correct[b] / count[b] as f64).abs()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overconfident_scores_get_a_temperature_above_one_and_a_lower_ece() {
        // The model is right 70% of the time but always says so with logits 10 apart.
        let logits: Vec<Vec<f32>> = (0..100).map(|_| vec![10.0, 0.0]).collect();
        let targets: Vec<Vec<usize>> = (0..100)
            .map(|i| vec![if i % 10 < 7 { 0 } else { 1 }])
            .collect();
        let temperature = fit_temperature(&logits, &targets, &Heads::SINGLE);
        assert!(temperature > 5.0, "{temperature}");
        let before: Vec<Vec<f32>> = logits
            .iter()
            .map(|l| Heads::SINGLE.probabilities(l, 1.0))
            .collect();
        let after: Vec<Vec<f32>> = logits
            .iter()
            .map(|l| Heads::SINGLE.probabilities(l, temperature))
            .collect();
        let ece_before = expected_calibration_error(&before, &targets, &Heads::SINGLE);
        let ece_after = expected_calibration_error(&after, &targets, &Heads::SINGLE);
        assert!(
            ece_before > 0.25 && ece_after < 0.02,
            "{ece_before} → {ece_after}"
        );
    }

    #[test]
    fn a_temperature_that_helps_on_held_out_folds_is_applied() {
        let logits: Vec<Vec<f32>> = (0..200).map(|_| vec![10.0, 0.0]).collect();
        let targets: Vec<Vec<usize>> = (0..200)
            .map(|i| vec![if i % 10 < 7 { 0 } else { 1 }])
            .collect();
        let choice = choose_temperature(&logits, &targets, &Heads::SINGLE, 5);
        assert!(choice.applied, "{choice:?}");
        assert_eq!(choice.temperature, choice.fitted);
        assert!(choice.held_out_ece_fitted < choice.held_out_ece_plain);
    }

    #[test]
    fn a_temperature_that_hurts_on_held_out_folds_is_not_applied() {
        // 200 tickets honestly at 0.9 (logit gap ln 9, 180 right) and 10 confidently wrong
        // ones (gap 12): log-loss wants a high temperature for the ten, which makes the
        // 200 underconfident.
        let gap = 9f32.ln();
        let mut logits: Vec<Vec<f32>> = (0..200).map(|_| vec![gap, 0.0]).collect();
        let mut targets: Vec<Vec<usize>> =
            (0..200).map(|i| vec![usize::from(i % 10 == 9)]).collect();
        for _ in 0..10 {
            logits.push(vec![12.0, 0.0]);
            targets.push(vec![1]);
        }
        let choice = choose_temperature(&logits, &targets, &Heads::SINGLE, 5);
        assert!(choice.fitted > 1.3, "log-loss asks for {}", choice.fitted);
        assert!(!choice.applied, "{choice:?}");
        assert_eq!(choice.temperature, 1.0);
        assert!(choice.held_out_ece_fitted > choice.held_out_ece_plain);
    }

    #[test]
    fn a_perfectly_calibrated_model_has_zero_ece() {
        let probabilities = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let targets = vec![vec![0], vec![1]];
        assert_eq!(
            expected_calibration_error(&probabilities, &targets, &Heads::MULTI),
            0.0
        );
    }
}
