//! Per-tag thresholds: the lowest probability at which a tag's auto-applied predictions on
//! held-out tickets are precise enough *with confidence*: the one-sided 95% Wilson score
//! lower bound of their precision reaches `target_precision`, not just the share right.
//! A point estimate on a few dozen tickets passes by luck often enough that thresholds
//! chosen on it missed the target on new tickets (0.82–0.84 for a target of 0.9, issue 17).
//! A tag whose own predictions cannot prove the target and that has few of them borrows the
//! threshold proven for all tags pooled, unless its own predictions at that threshold fall
//! short of the target; any other tag that cannot prove it gets a threshold above 1, so it
//! is only ever suggested.

use datasets::GroupChoice;
use inference::heads::{Head, Heads};

/// Fewer held-out predictions than this and a tag that cannot prove the target on its own
/// may borrow the pooled threshold.
pub const MIN_SUPPORT: usize = 30;
/// The threshold of a tag that is never applied without a person.
pub const NEVER: f32 = 1.01;
/// The confidence of the lower bound (one-sided).
pub const CONFIDENCE: f64 = 0.95;
/// The standard normal quantile of `CONFIDENCE`.
const Z: f64 = 1.644_853_626_951_472_2;

/// The Wilson score lower bound of a proportion `right / total` at `CONFIDENCE` (one-sided);
/// 0 with nothing observed.
pub fn wilson_lower_bound(right: usize, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let n = total as f64;
    let p = right as f64 / n;
    let z2 = Z * Z;
    let centre = p + z2 / (2.0 * n);
    let margin = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - margin) / (1.0 + z2 / n)).max(0.0)
}

/// (probability, was it right) for every prediction a tag of `head` would make: in a
/// single-choice head, where it is the head's likeliest tag on a ticket that has a tag of
/// the head (a grouped ticket without one cannot show it right or wrong).
fn candidates(
    probabilities: &[Vec<f32>],
    targets: &[Vec<usize>],
    head: &Head,
    tag: usize,
) -> Vec<(f32, bool)> {
    let range = head.outputs();
    probabilities
        .iter()
        .zip(targets)
        .filter_map(|(p, truth)| match head.choice {
            GroupChoice::Single => {
                if !truth.iter().any(|t| range.contains(t)) {
                    return None;
                }
                let best = p[range.clone()]
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))?
                    .0;
                (range.start + best == tag).then(|| (p[tag], truth.contains(&tag)))
            }
            GroupChoice::Multi => Some((p[tag], truth.contains(&tag))),
        })
        .collect()
}

/// The lowest threshold whose predictions at or above it have a precision lower bound at
/// or above the target. Predictions of equal probability stand or fall together.
fn lowest_precise_threshold(
    mut predictions: Vec<(f32, bool)>,
    target_precision: f64,
    choice: GroupChoice,
) -> Option<f32> {
    predictions.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut right = 0usize;
    let mut best = None;
    for (i, (probability, hit)) in predictions.iter().enumerate() {
        if *hit {
            right += 1;
        }
        // Several tags per ticket: below one half a tag is more likely absent than present.
        if choice == GroupChoice::Multi && *probability < 0.5 {
            break;
        }
        let last_of_its_value = predictions
            .get(i + 1)
            .is_none_or(|(next, _)| next < probability);
        if last_of_its_value && wilson_lower_bound(right, i + 1) >= target_precision {
            best = Some(*probability);
        }
    }
    best
}

/// The share right among predictions at or above `threshold` (1 when there are none: no
/// evidence against it).
fn precision_at(predictions: &[(f32, bool)], threshold: f32) -> f64 {
    let (right, total) = predictions
        .iter()
        .filter(|(p, _)| *p >= threshold)
        .fold((0usize, 0usize), |(right, total), (_, hit)| {
            (right + usize::from(*hit), total + 1)
        });
    if total == 0 {
        1.0
    } else {
        right as f64 / total as f64
    }
}

/// One threshold per tag from held-out probabilities and the true tags. A tag that cannot
/// prove the target alone may borrow the threshold proven for its head's tags pooled.
pub fn choose_thresholds(
    probabilities: &[Vec<f32>],
    targets: &[Vec<usize>],
    heads: &Heads,
    tags: usize,
    target_precision: f64,
) -> Vec<f32> {
    let mut thresholds = vec![NEVER; tags];
    for head in heads.segments(tags) {
        let range = head.outputs();
        let pooled: Vec<(f32, bool)> = range
            .clone()
            .flat_map(|tag| candidates(probabilities, targets, &head, tag))
            .collect();
        let fallback =
            lowest_precise_threshold(pooled, target_precision, head.choice).unwrap_or(NEVER);
        for tag in range {
            let own = candidates(probabilities, targets, &head, tag);
            thresholds[tag] =
                match lowest_precise_threshold(own.clone(), target_precision, head.choice) {
                    Some(threshold) => threshold,
                    None => {
                        let borrows = own.len() < MIN_SUPPORT
                            && fallback < NEVER
                            && precision_at(&own, fallback) >= target_precision;
                        if borrows { fallback } else { NEVER }
                    }
                };
        }
    }
    thresholds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` single-label predictions of tag 0, probabilities falling from 0.99 to 0.6,
    /// the ones at `wrong` positions (0 = most confident) right about tag 1 instead.
    fn falling(count: usize, wrong: &[usize]) -> (Vec<Vec<f32>>, Vec<Vec<usize>>) {
        let probabilities = (0..count)
            .map(|i| {
                let p = 0.99 - 0.39 * i as f32 / count as f32;
                vec![p, 1.0 - p]
            })
            .collect();
        let targets = (0..count)
            .map(|i| vec![usize::from(wrong.contains(&i))])
            .collect();
        (probabilities, targets)
    }

    #[test]
    fn the_wilson_bound_matches_known_values() {
        assert!((wilson_lower_bound(8, 10) - 0.5408).abs() < 1e-4);
        assert!((wilson_lower_bound(195, 200) - 0.9495).abs() < 1e-4);
        assert!((wilson_lower_bound(25, 25) - 0.9023).abs() < 1e-4);
        assert_eq!(wilson_lower_bound(0, 0), 0.0);
        assert!(wilson_lower_bound(0, 50) == 0.0);
    }

    #[test]
    fn a_precision_that_passes_by_its_point_estimate_but_not_its_bound_is_refused() {
        // 40 predictions, 3 wrong spread among them: 37/40 = 0.925 ≥ 0.9 at the lowest
        // threshold, but the lower bound is 0.83; no cut-off proves 0.9.
        let (probabilities, targets) = falling(40, &[5, 20, 35]);
        let point = {
            let right = targets.iter().filter(|t| t[0] == 0).count();
            right as f64 / targets.len() as f64
        };
        assert!(point >= 0.9, "the point estimate passes: {point}");
        let thresholds = choose_thresholds(&probabilities, &targets, &Heads::SINGLE, 2, 0.9);
        assert_eq!(thresholds[0], NEVER);
    }

    #[test]
    fn enough_evidence_proves_the_target_and_the_threshold_is_the_lowest_proven() {
        // 300 predictions; the 30 least confident are all wrong, 2 wrong among the rest.
        let wrong: Vec<usize> = [10, 150].into_iter().chain(270..300).collect();
        let (probabilities, targets) = falling(300, &wrong);
        let thresholds = choose_thresholds(&probabilities, &targets, &Heads::SINGLE, 2, 0.9);
        let threshold = thresholds[0];
        assert!(threshold < NEVER);
        // Every cut-off at or above it proves the target; the next one down does not.
        let mut sorted: Vec<(f32, bool)> = probabilities
            .iter()
            .zip(&targets)
            .map(|(p, t)| (p[0], t[0] == 0))
            .collect();
        sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
        let kept = sorted.iter().filter(|(p, _)| *p >= threshold).count();
        let right = sorted[..kept].iter().filter(|(_, hit)| *hit).count();
        assert!(wilson_lower_bound(right, kept) >= 0.9);
        let right_below = right + usize::from(sorted[kept].1);
        assert!(wilson_lower_bound(right_below, kept + 1) < 0.9);
        // The point estimate would have gone further down, into the wrong predictions.
        let point_kept = (1..=sorted.len())
            .filter(|&n| {
                let right = sorted[..n].iter().filter(|(_, hit)| *hit).count();
                right as f64 / n as f64 >= 0.9
            })
            .max()
            .unwrap();
        assert!(point_kept > kept, "{point_kept} vs {kept}");
    }

    #[test]
    fn predictions_of_equal_probability_stand_or_fall_together() {
        // 60 right at 0.95, then 10 at 0.8 of which 6 are wrong: a cut between equal
        // probabilities cannot exist, so 0.8 is judged on all ten.
        let mut probabilities: Vec<Vec<f32>> = (0..60).map(|_| vec![0.95, 0.05]).collect();
        let mut targets: Vec<Vec<usize>> = (0..60).map(|_| vec![0]).collect();
        for i in 0..10 {
            probabilities.push(vec![0.8, 0.2]);
            targets.push(vec![usize::from(i < 6)]);
        }
        let thresholds = choose_thresholds(&probabilities, &targets, &Heads::SINGLE, 2, 0.9);
        assert_eq!(thresholds[0], 0.95);
    }

    #[test]
    fn a_tag_that_is_never_precise_enough_is_never_applied() {
        let probabilities: Vec<Vec<f32>> = (0..40).map(|_| vec![0.9, 0.1]).collect();
        let targets: Vec<Vec<usize>> = (0..40).map(|i| vec![usize::from(i % 2 == 0)]).collect();
        let thresholds = choose_thresholds(&probabilities, &targets, &Heads::SINGLE, 2, 0.9);
        assert_eq!(thresholds[0], NEVER);
    }

    #[test]
    fn a_rare_tag_borrows_the_pooled_threshold_unless_its_own_tickets_contradict_it() {
        // Tag 0 has 200 predictions, all right, proving itself; tag 1 has 5, all right;
        // tag 2 has 5 with 3 wrong.
        let mut probabilities = Vec::new();
        let mut targets = Vec::new();
        for i in 0..200 {
            let p = 0.99 - 0.3 * i as f32 / 200.0;
            probabilities.push(vec![p, (1.0 - p) / 2.0, (1.0 - p) / 2.0]);
            targets.push(vec![0]);
        }
        for i in 0..5 {
            probabilities.push(vec![0.02, 0.96, 0.02]);
            targets.push(vec![1]);
            probabilities.push(vec![0.02, 0.02, 0.96]);
            targets.push(vec![if i < 3 { 0 } else { 2 }]);
        }
        let thresholds = choose_thresholds(&probabilities, &targets, &Heads::SINGLE, 3, 0.9);
        assert!(thresholds[0] < NEVER);
        assert!(thresholds[1] < NEVER, "borrowed: {}", thresholds[1]);
        assert_eq!(thresholds[2], NEVER);
    }
}
