//! Per-tag thresholds: the lowest probability at which a tag's auto-applied predictions
//! were still at least `target_precision` right on validation tickets. A tag with too few
//! validation predictions borrows the threshold found for all tags pooled; a tag whose
//! predictions never reach the target gets a threshold above 1, so it is only ever suggested.

use datasets::LabelMode;

/// Fewer predictions than this on validation and a tag borrows the pooled threshold.
pub const MIN_SUPPORT: usize = 8;
/// The threshold of a tag that is never applied without a person.
pub const NEVER: f32 = 1.01;

/// (probability, was it right) for every prediction a tag would make.
fn candidates(
    probabilities: &[Vec<f32>],
    targets: &[Vec<usize>],
    mode: LabelMode,
    tag: usize,
) -> Vec<(f32, bool)> {
    probabilities
        .iter()
        .zip(targets)
        .filter_map(|(p, truth)| match mode {
            LabelMode::Single => {
                let best = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?.0;
                (best == tag).then(|| (p[tag], truth.contains(&tag)))
            }
            LabelMode::Multi => Some((p[tag], truth.contains(&tag))),
        })
        .collect()
}

/// The lowest threshold whose predictions at or above it reach the target precision.
fn lowest_precise_threshold(
    mut predictions: Vec<(f32, bool)>,
    target_precision: f64,
    mode: LabelMode,
) -> Option<f32> {
    predictions.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut right = 0usize;
    let mut best = None;
    for (i, (probability, hit)) in predictions.iter().enumerate() {
        if *hit {
            right += 1;
        }
        // Several tags per ticket: below one half a tag is more likely absent than present.
        if mode == LabelMode::Multi && *probability < 0.5 {
            break;
        }
        if right as f64 / (i + 1) as f64 >= target_precision {
            best = Some(*probability);
        }
    }
    best
}

/// One threshold per tag.
pub fn choose_thresholds(
    probabilities: &[Vec<f32>],
    targets: &[Vec<usize>],
    mode: LabelMode,
    tags: usize,
    target_precision: f64,
) -> Vec<f32> {
    let pooled: Vec<(f32, bool)> = (0..tags)
        .flat_map(|tag| candidates(probabilities, targets, mode, tag))
        .collect();
    let fallback = lowest_precise_threshold(pooled, target_precision, mode).unwrap_or(NEVER);
    (0..tags)
        .map(|tag| {
            let own = candidates(probabilities, targets, mode, tag);
            if own.len() < MIN_SUPPORT {
                fallback
            } else {
                lowest_precise_threshold(own, target_precision, mode).unwrap_or(NEVER)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_the_lowest_that_keeps_the_target_precision() {
        // Tag 0 predicted with falling confidence; the two least confident are wrong.
        let probabilities: Vec<Vec<f32>> = [0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55]
            .iter()
            .map(|p| vec![*p, 1.0 - p])
            .collect();
        let targets: Vec<Vec<usize>> = (0..10).map(|i| vec![if i < 8 { 0 } else { 1 }]).collect();
        let thresholds = choose_thresholds(&probabilities, &targets, LabelMode::Single, 2, 0.9);
        // At 0.65 all 8 predictions are right; adding 0.6 (wrong) drops precision to 8/9.
        assert_eq!(thresholds[0], 0.65);
    }

    #[test]
    fn a_tag_that_is_never_precise_enough_is_never_applied() {
        let probabilities: Vec<Vec<f32>> = (0..20).map(|_| vec![0.9, 0.1]).collect();
        let targets: Vec<Vec<usize>> = (0..20).map(|i| vec![usize::from(i % 2 == 0)]).collect();
        let thresholds = choose_thresholds(&probabilities, &targets, LabelMode::Single, 2, 0.9);
        assert_eq!(thresholds[0], NEVER);
    }
}
