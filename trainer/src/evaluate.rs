//! Honest evaluation on held-out tickets: accuracy, micro/macro F1, per-tag precision,
//! recall, F1 and support, confusion, calibration error, and what the thresholds do —
//! how many tickets are tagged without a person and how precise those tags are, with and
//! without the keyword rules, and how precise each tag's threshold turned out against the
//! precision it was chosen for.

use crate::examples::Example;
use datasets::{GroupChoice, LabelMode};
use inference::Decider;
use inference::heads::{Head, Heads};
use inference::out_of_distribution::Unfamiliarity;
use serde::{Deserialize, Serialize};

/// One tag's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagMetrics {
    pub tag: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
    pub threshold: f32,
    /// Test tickets the model applied this tag to without a person (its threshold, no
    /// keyword rules, nothing sent to review).
    #[serde(default)]
    pub applied: usize,
    /// The share of those that were right: the threshold's realised precision, to read
    /// against the run's target; `None` when it applied the tag to no test ticket.
    #[serde(default)]
    pub realised_precision: Option<f64>,
}

/// What the thresholds do on the test tickets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Share of tickets with at least one tag applied without a person.
    pub auto_tagged_share: f64,
    /// Share of applied tags that were right.
    pub precision: f64,
    /// Share of tickets sent to a person.
    pub review_share: f64,
}

/// A model's evaluation; the JSON keys are a public contract of `tagger eval --format json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub examples: usize,
    /// One tag per ticket: top tag right; several: the predicted set (p ≥ 0.5) exactly right.
    pub accuracy: f64,
    pub micro_f1: f64,
    pub macro_f1: f64,
    pub ece: f64,
    pub ece_before_calibration: f64,
    pub temperature: f32,
    pub per_tag: Vec<TagMetrics>,
    /// One tag per ticket: `confusion[truth][predicted]`; several: per tag `[tp, fp, fn, tn]`.
    pub confusion: Vec<Vec<usize>>,
    pub coverage: Coverage,
    pub coverage_with_rules: Coverage,
    /// The precision the thresholds were chosen for (versions recorded before it was kept
    /// with the evaluation have none).
    #[serde(default)]
    pub target_precision: Option<f64>,
    /// Share of test tickets the out-of-distribution detector found unlike the training
    /// tickets (sent to review untagged); `None` for a version without a detector.
    #[serde(default)]
    pub unfamiliar_share: Option<f64>,
    /// Per tag group, for a model with one head per group (empty without groups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupMetrics>,
}

/// One tag group's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    pub group: String,
    pub choice: GroupChoice,
    /// Test tickets judged on the group: those with a tag of it for a single-choice group
    /// (a ticket nobody gave a type says nothing about the type), every one for a
    /// multi-choice group.
    pub examples: usize,
    /// Single-choice: the group's top tag right; multi-choice: its predicted set (p ≥ 0.5)
    /// exactly right.
    pub accuracy: f64,
    /// Mean F1 over the group's tags with support.
    pub macro_f1: f64,
}

fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The tags a model predicts without thresholds: the top one of each single-choice head,
/// and all at 0.5 and above of a multi-choice head. With groups, a single-choice group the
/// ticket has no tag of is left out, as it is not judged there.
pub fn predicted_set(probabilities: &[f32], heads: &Heads, truth: &[usize]) -> Vec<usize> {
    let predicted = heads.predicted_set(probabilities);
    match heads {
        Heads::Whole(_) => predicted,
        Heads::Groups(groups) => predicted
            .into_iter()
            .filter(|&i| {
                groups.iter().any(|h| {
                    h.outputs().contains(&i)
                        && (h.choice == GroupChoice::Multi
                            || truth.iter().any(|t| h.outputs().contains(t)))
                })
            })
            .collect(),
    }
}

/// One group's figures from the test tickets' predicted sets and the per-tag F1.
fn group_metrics(
    head: &Head,
    predicted: &[Vec<usize>],
    examples: &[Example],
    per_tag: &[TagMetrics],
) -> GroupMetrics {
    let range = head.outputs();
    let (mut judged, mut right) = (0, 0);
    for (guess, example) in predicted.iter().zip(examples) {
        let truth: Vec<usize> = example
            .targets
            .iter()
            .copied()
            .filter(|t| range.contains(t))
            .collect();
        if head.choice == GroupChoice::Single && truth.is_empty() {
            continue;
        }
        judged += 1;
        let guess: Vec<usize> = guess
            .iter()
            .copied()
            .filter(|t| range.contains(t))
            .collect();
        if guess == truth {
            right += 1;
        }
    }
    let supported: Vec<f64> = per_tag[range]
        .iter()
        .filter(|t| t.support > 0)
        .map(|t| t.f1)
        .collect();
    GroupMetrics {
        group: head.name.clone(),
        choice: head.choice,
        examples: judged,
        accuracy: ratio(right, judged),
        macro_f1: if supported.is_empty() {
            0.0
        } else {
            supported.iter().sum::<f64>() / supported.len() as f64
        },
    }
}

/// What the thresholds did: coverage, and per tag how often it was applied and right.
struct Applied {
    coverage: Coverage,
    per_tag: Vec<(usize, usize)>,
}

fn applied(
    examples: &[Example],
    probabilities: &[Vec<f32>],
    inputs: &EvaluationInputs<'_>,
    with_rules: bool,
) -> Applied {
    let mut auto_tagged = 0;
    let mut applied = 0;
    let mut right = 0;
    let mut per_tag = vec![(0usize, 0usize); inputs.tag_names.len()];
    for (i, (example, p)) in examples.iter().zip(probabilities).enumerate() {
        let unfamiliarity = inputs.unfamiliarity.get(i).copied().flatten();
        let decision = inputs
            .decider
            .decide_scored(&example.text, p, unfamiliarity, with_rules);
        if decision.needs_review {
            continue;
        }
        auto_tagged += 1;
        for tag in &decision.applied {
            applied += 1;
            let Some(index) = inputs.tag_names.iter().position(|n| n == tag.as_str()) else {
                continue;
            };
            per_tag[index].0 += 1;
            if example.targets.contains(&index) {
                right += 1;
                per_tag[index].1 += 1;
            }
        }
    }
    Applied {
        coverage: Coverage {
            auto_tagged_share: ratio(auto_tagged, examples.len()),
            precision: ratio(right, applied),
            review_share: ratio(examples.len() - auto_tagged, examples.len()),
        },
        per_tag,
    }
}

/// Inputs of an evaluation besides the examples.
pub struct EvaluationInputs<'a> {
    pub heads: Heads,
    pub tag_names: &'a [String],
    pub thresholds: &'a [f32],
    pub temperature: f32,
    pub decider: &'a Decider,
    /// Per example, how unfamiliar the model found it (empty: no detector).
    pub unfamiliarity: &'a [Option<Unfamiliarity>],
    pub target_precision: Option<f64>,
}

/// Scores a model on examples from its calibrated and uncalibrated probabilities.
pub fn evaluate(
    examples: &[Example],
    probabilities: &[Vec<f32>],
    uncalibrated: &[Vec<f32>],
    inputs: &EvaluationInputs<'_>,
) -> Evaluation {
    let tags = inputs.tag_names.len();
    let heads = &inputs.heads;
    // A tags × tags confusion only where one tag per ticket is all there is.
    let mode = match heads {
        Heads::Whole(mode) => *mode,
        Heads::Groups(_) => LabelMode::Multi,
    };
    let (mut tp, mut fp, mut fn_) = (vec![0usize; tags], vec![0usize; tags], vec![0usize; tags]);
    let mut exact = 0;
    let mut confusion = match mode {
        LabelMode::Single => vec![vec![0usize; tags]; tags],
        LabelMode::Multi => vec![vec![0usize; 4]; tags],
    };
    let mut predicted_sets = Vec::with_capacity(examples.len());
    for (example, p) in examples.iter().zip(probabilities) {
        let predicted = predicted_set(p, heads, &example.targets);
        if predicted == example.targets {
            exact += 1;
        }
        for tag in 0..tags {
            let (said, truly) = (predicted.contains(&tag), example.targets.contains(&tag));
            match (said, truly) {
                (true, true) => tp[tag] += 1,
                (true, false) => fp[tag] += 1,
                (false, true) => fn_[tag] += 1,
                (false, false) => {}
            }
            if mode == LabelMode::Multi {
                let cell = match (said, truly) {
                    (true, true) => 0,
                    (true, false) => 1,
                    (false, true) => 2,
                    (false, false) => 3,
                };
                confusion[tag][cell] += 1;
            }
        }
        if mode == LabelMode::Single
            && let (Some(&truth), Some(&guess)) = (example.targets.first(), predicted.first())
        {
            confusion[truth][guess] += 1;
        }
        predicted_sets.push(predicted);
    }
    let model_only = applied(examples, probabilities, inputs, false);
    let per_tag: Vec<TagMetrics> = (0..tags)
        .map(|tag| {
            let (applied, right) = model_only.per_tag[tag];
            let precision = ratio(tp[tag], tp[tag] + fp[tag]);
            let recall = ratio(tp[tag], tp[tag] + fn_[tag]);
            TagMetrics {
                tag: inputs.tag_names[tag].clone(),
                precision,
                recall,
                f1: f1(precision, recall),
                support: tp[tag] + fn_[tag],
                threshold: inputs.thresholds[tag],
                applied,
                realised_precision: (applied > 0).then(|| ratio(right, applied)),
            }
        })
        .collect();
    let with_support: Vec<&TagMetrics> = per_tag.iter().filter(|t| t.support > 0).collect();
    let macro_f1 = if with_support.is_empty() {
        0.0
    } else {
        with_support.iter().map(|t| t.f1).sum::<f64>() / with_support.len() as f64
    };
    let (all_tp, all_fp, all_fn) = (
        tp.iter().sum(),
        fp.iter().sum::<usize>(),
        fn_.iter().sum::<usize>(),
    );
    let micro_f1 = f1(
        ratio(all_tp, all_tp + all_fp),
        ratio(all_tp, all_tp + all_fn),
    );
    let targets: Vec<Vec<usize>> = examples.iter().map(|e| e.targets.clone()).collect();
    let groups = match heads {
        Heads::Whole(_) => Vec::new(),
        Heads::Groups(groups) => groups
            .iter()
            .map(|head| group_metrics(head, &predicted_sets, examples, &per_tag))
            .collect(),
    };
    Evaluation {
        examples: examples.len(),
        accuracy: ratio(exact, examples.len()),
        micro_f1,
        macro_f1,
        ece: crate::calibrate::expected_calibration_error(probabilities, &targets, heads),
        ece_before_calibration: crate::calibrate::expected_calibration_error(
            uncalibrated,
            &targets,
            heads,
        ),
        temperature: inputs.temperature,
        per_tag,
        confusion,
        coverage: model_only.coverage,
        coverage_with_rules: applied(examples, probabilities, inputs, true).coverage,
        target_precision: inputs.target_precision,
        unfamiliar_share: (!inputs.unfamiliarity.is_empty()
            && inputs.unfamiliarity.iter().any(Option::is_some))
        .then(|| {
            let beyond = inputs
                .unfamiliarity
                .iter()
                .filter(|u| u.is_some_and(|u| u.is_beyond()))
                .count();
            ratio(beyond, examples.len())
        }),
        groups,
    }
}
