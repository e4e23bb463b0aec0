//! How unsure a model is about one ticket, from its calibrated probabilities: least
//! confidence, margin, entropy (single-label: one softmax; multi-label: per-tag sigmoids
//! against their thresholds), each with the sentence a labeller reads as the reason.

use datasets::LabelMode;

/// What the model's probabilities on one ticket mean for the queue.
#[derive(Debug, Clone, Copy)]
pub struct ModelView<'a> {
    pub mode: LabelMode,
    /// Names of the model's outputs, in output order.
    pub tags: &'a [String],
    /// Per-output thresholds (multi-label decisions); 0.5 where the model has none.
    pub thresholds: &'a [f32],
}

/// A score where higher means "a person should look at this sooner", and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Uncertainty {
    pub score: f32,
    pub reason: String,
}

fn tag<'a>(view: &'a ModelView<'_>, index: usize) -> &'a str {
    view.tags.get(index).map_or("?", String::as_str)
}

fn threshold(view: &ModelView<'_>, index: usize) -> f32 {
    view.thresholds.get(index).copied().unwrap_or(0.5)
}

/// Indices of the two most probable outputs.
fn top_two(probabilities: &[f32]) -> (usize, Option<usize>) {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|a, b| probabilities[*b].total_cmp(&probabilities[*a]));
    (order.first().copied().unwrap_or(0), order.get(1).copied())
}

/// The output whose probability is nearest its threshold, and that distance.
fn nearest_threshold(probabilities: &[f32], view: &ModelView<'_>) -> (usize, f32) {
    probabilities
        .iter()
        .enumerate()
        .map(|(i, p)| (i, (p - threshold(view, i)).abs()))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 1.0))
}

/// Binary entropy in bits (0 for a sure decision, 1 at p = 0.5).
fn binary_entropy(p: f32) -> f32 {
    let p = p.clamp(1e-7, 1.0 - 1e-7);
    -(p * p.log2() + (1.0 - p) * (1.0 - p).log2())
}

/// 1 − the probability of the model's own answer. Multi-label: the least sure per-tag
/// decision (a sigmoid at p is a yes with confidence p, a no with confidence 1 − p).
pub fn least_confidence(probabilities: &[f32], view: &ModelView<'_>) -> Uncertainty {
    match view.mode {
        LabelMode::Single => {
            let (best, _) = top_two(probabilities);
            let p = probabilities.get(best).copied().unwrap_or(0.0);
            Uncertainty {
                score: 1.0 - p,
                reason: format!("top tag {} at only {:.2}", tag(view, best), p),
            }
        }
        LabelMode::Multi => {
            let (i, confidence) = probabilities
                .iter()
                .enumerate()
                .map(|(i, p)| (i, p.max(1.0 - p)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0, 1.0));
            Uncertainty {
                score: 1.0 - confidence,
                reason: format!(
                    "least sure about {}: {:.2}",
                    tag(view, i),
                    probabilities.get(i).copied().unwrap_or(0.0)
                ),
            }
        }
    }
}

/// Single-label: how close the two likeliest tags are (score 1 − margin). Multi-label: how
/// close the nearest tag is to its threshold (the multi-label form of a margin).
pub fn margin(probabilities: &[f32], view: &ModelView<'_>) -> Uncertainty {
    match view.mode {
        LabelMode::Single => {
            let (first, second) = top_two(probabilities);
            let p1 = probabilities.get(first).copied().unwrap_or(0.0);
            let p2 = second.map_or(0.0, |s| probabilities[s]);
            let gap = p1 - p2;
            Uncertainty {
                score: 1.0 - gap,
                reason: match second {
                    Some(s) => format!(
                        "margin {gap:.2} between {} and {}",
                        tag(view, first),
                        tag(view, s)
                    ),
                    None => format!("only one tag, {} at {p1:.2}", tag(view, first)),
                },
            }
        }
        LabelMode::Multi => threshold_closeness(probabilities, view),
    }
}

/// Multi-label: 1 − the distance of the nearest tag's probability to its threshold.
pub fn threshold_closeness(probabilities: &[f32], view: &ModelView<'_>) -> Uncertainty {
    let (i, distance) = nearest_threshold(probabilities, view);
    Uncertainty {
        score: 1.0 - distance,
        reason: format!(
            "{} at {:.2}, {distance:.2} from its threshold {:.2}",
            tag(view, i),
            probabilities.get(i).copied().unwrap_or(0.0),
            threshold(view, i)
        ),
    }
}

/// Single-label: entropy of the softmax over ln(tags), in [0, 1]. Multi-label: the mean
/// binary entropy over tags, naming the most uncertain one.
pub fn entropy(probabilities: &[f32], view: &ModelView<'_>) -> Uncertainty {
    let n = probabilities.len().max(2) as f32;
    match view.mode {
        LabelMode::Single => {
            let h: f32 = probabilities
                .iter()
                .filter(|p| **p > 0.0)
                .map(|p| -p * p.ln())
                .sum();
            let (first, _) = top_two(probabilities);
            let spread = probabilities.iter().filter(|p| **p >= 0.05).count();
            Uncertainty {
                score: h / n.ln(),
                reason: format!(
                    "entropy {:.2}: {spread} tags at 0.05 or more, top {}",
                    h / n.ln(),
                    tag(view, first)
                ),
            }
        }
        LabelMode::Multi => {
            let each: Vec<f32> = probabilities.iter().map(|p| binary_entropy(*p)).collect();
            let mean = each.iter().sum::<f32>() / probabilities.len().max(1) as f32;
            let worst = each
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i);
            Uncertainty {
                score: mean,
                reason: format!(
                    "mean tag entropy {mean:.2}, most unsure about {}",
                    tag(view, worst)
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        ["Bug", "Question", "Billing", "Login"][..n]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn margin_names_the_two_closest_tags_and_scores_a_tie_highest() {
        let tags = names(3);
        let view = ModelView {
            mode: LabelMode::Single,
            tags: &tags,
            thresholds: &[0.5; 3],
        };
        let close = margin(&[0.40, 0.05, 0.55], &view);
        let sure = margin(&[0.90, 0.05, 0.05], &view);
        assert!(close.score > sure.score);
        assert_eq!(close.reason, "margin 0.15 between Billing and Bug");
        assert!((margin(&[0.5, 0.5, 0.0], &view).score - 1.0).abs() < 1e-6);
    }

    #[test]
    fn entropy_is_one_for_uniform_and_zero_for_certain() {
        let tags = names(4);
        let view = ModelView {
            mode: LabelMode::Single,
            tags: &tags,
            thresholds: &[0.5; 4],
        };
        assert!((entropy(&[0.25; 4], &view).score - 1.0).abs() < 1e-5);
        assert!(entropy(&[1.0, 0.0, 0.0, 0.0], &view).score.abs() < 1e-5);
    }

    #[test]
    fn least_confidence_multi_label_finds_the_least_sure_tag() {
        let tags = names(3);
        let view = ModelView {
            mode: LabelMode::Multi,
            tags: &tags,
            thresholds: &[0.5; 3],
        };
        let u = least_confidence(&[0.95, 0.45, 0.02], &view);
        assert!((u.score - 0.45).abs() < 1e-6);
        assert!(u.reason.contains("Question"), "{}", u.reason);
    }

    #[test]
    fn multi_label_margin_is_the_distance_to_each_tags_own_threshold() {
        let tags = names(2);
        // Bug at 0.30 is 0.20 from 0.5; Question at 0.75 is 0.05 from its threshold 0.8.
        let view = ModelView {
            mode: LabelMode::Multi,
            tags: &tags,
            thresholds: &[0.5, 0.8],
        };
        let u = margin(&[0.30, 0.75], &view);
        assert!((u.score - 0.95).abs() < 1e-6);
        assert!(u.reason.starts_with("Question at 0.75"), "{}", u.reason);
        // Mean binary entropy: one tag at 0.5 (1 bit), one at 1.0 (0 bits).
        assert!((entropy(&[0.5, 1.0], &view).score - 0.5).abs() < 1e-3);
    }
}
