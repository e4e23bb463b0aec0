//! Training the `ngram` model: a vocabulary of hashed features seen in at least `min_df`
//! training tickets, TF-IDF weights, then Adagrad on the cross-entropy (softmax for one tag
//! per ticket, per-tag sigmoid for several), updating only the rows a ticket touches.
//! Early stopping keeps the epoch that did best on the validation tickets
//! ([`HeldOutScore::better_than`]: the lowest loss).

use crate::examples::Example;
use crate::random::Random;
use datasets::{GroupChoice, LabelMode};
use inference::calibration::sigmoid;
use inference::features::{Family, FeatureConfig, SparseVector};
use inference::heads::Heads;
use inference::ngram::{NgramModel, NgramShape};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

/// Hyper-parameters of an `ngram` training run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NgramParams {
    pub features: FeatureConfig,
    /// 0: a linear model over the features (most accurate); otherwise the bag's width.
    pub hidden: usize,
    /// Features seen in fewer training tickets are dropped.
    pub min_df: u32,
    pub epochs: usize,
    pub learning_rate: f32,
    /// L2 penalty per update, scaled by the learning rate.
    pub l2: f32,
    /// Stop after this many epochs in which neither the validation score
    /// ([`HeldOutScore::better_than`]) nor the validation loss improved.
    pub patience: usize,
    pub seed: u64,
    /// After early stopping, train again on training and validation tickets for the best
    /// number of epochs, so no labelled ticket is wasted; calibration still uses the first
    /// model's scores on the validation tickets it never saw.
    pub refit: bool,
    /// Model selection's budget in millions of weight updates (`crate::ngram_selection`):
    /// the run chooses its n-gram families, L2 and epochs by cross-validation on its
    /// training tickets first. 0 trains with these parameters as they are.
    #[serde(default)]
    pub selection_budget: u64,
}

impl Default for NgramParams {
    fn default() -> Self {
        Self {
            features: FeatureConfig::default(),
            hidden: 0,
            min_df: 2,
            epochs: 30,
            learning_rate: 0.1,
            l2: 1e-6,
            patience: 3,
            seed: 42,
            refit: true,
            // Off: in `bench ngram-selection` (docs/benchmarks.md) it did not reach TF-IDF +
            // LinearSVC on every dataset, and on 15,000 tickets over 150 tags it doubles the
            // training time for the fixed setting's accuracy; `--selection-budget` turns it on.
            selection_budget: 0,
        }
    }
}

/// Progress of a run, reported once per epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
}

/// Builds the vocabulary and IDF from the training tickets: the fresh model training starts
/// from.
pub(crate) fn build_vocabulary(
    params: &NgramParams,
    outputs: usize,
    train: &[Example],
) -> NgramModel {
    let mut document_frequency: BTreeMap<u32, (Family, u32)> = BTreeMap::new();
    for example in train {
        for (bucket, (family, _)) in params.features.extract(&example.text) {
            document_frequency.entry(bucket).or_insert((family, 0)).1 += 1;
        }
    }
    let documents = train.len() as f32;
    let mut buckets = Vec::new();
    let mut families = Vec::new();
    let mut idf = Vec::new();
    for (bucket, (family, df)) in document_frequency {
        if df >= params.min_df {
            buckets.push(bucket);
            families.push(family);
            idf.push(libm::logf((1.0 + documents) / (1.0 + df as f32)) + 1.0);
        }
    }
    let rows: HashMap<u32, u32> = buckets
        .iter()
        .enumerate()
        .map(|(row, b)| (*b, row as u32))
        .collect();
    let width = if params.hidden == 0 {
        outputs
    } else {
        params.hidden
    };
    let mut random = Random(params.seed);
    let mut init = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|_| (random.uniform() * 2.0 - 1.0) * scale)
            .collect()
    };
    // A linear model starts at zero; a bag needs random rows or every hidden unit stays alike.
    let table = if params.hidden == 0 {
        vec![0.0; buckets.len() * width]
    } else {
        init(buckets.len() * width, 1.0 / width as f32)
    };
    let projection = if params.hidden == 0 {
        Vec::new()
    } else {
        init(
            params.hidden * outputs,
            (6.0 / (params.hidden + outputs) as f32).sqrt(),
        )
    };
    NgramModel {
        shape: NgramShape {
            features: params.features,
            hidden: params.hidden,
            outputs,
        },
        rows,
        buckets,
        families,
        idf,
        table,
        projection,
        bias: vec![0.0; outputs],
    }
}

/// The gradient of the loss with respect to the logits, and the loss: per head, softmax
/// cross-entropy for a single-choice head (none where the ticket has no tag of it) or the
/// per-tag sigmoid cross-entropy.
fn output_gradient(logits: &[f32], targets: &[usize], heads: &Heads) -> (Vec<f32>, f64) {
    let heads = match heads {
        Heads::Whole(mode) => return head_gradient(logits, targets, *mode),
        Heads::Groups(heads) => heads,
    };
    let mut gradient = vec![0.0; logits.len()];
    let mut loss = 0.0;
    for head in heads.iter() {
        let range = head.outputs();
        let local: Vec<usize> = targets
            .iter()
            .filter(|t| range.contains(t))
            .map(|t| t - range.start)
            .collect();
        if head.choice == GroupChoice::Single && local.is_empty() {
            continue;
        }
        let (part, part_loss) = head_gradient(&logits[range.clone()], &local, head.choice.into());
        gradient[range].copy_from_slice(&part);
        loss += part_loss;
    }
    (gradient, loss)
}

/// [`output_gradient`] of one head over all of `logits`.
fn head_gradient(logits: &[f32], targets: &[usize], mode: LabelMode) -> (Vec<f32>, f64) {
    match mode {
        LabelMode::Single => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = logits.iter().map(|l| libm::expf(l - max)).collect();
            let sum: f32 = exps.iter().sum();
            let mut gradient: Vec<f32> = exps.iter().map(|e| e / sum).collect();
            let target = targets.first().copied().unwrap_or(0);
            let loss = -libm::log(f64::from(gradient[target].max(1e-12)));
            gradient[target] -= 1.0;
            (gradient, loss)
        }
        LabelMode::Multi => {
            let mut loss = 0.0;
            let gradient = logits
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let p = sigmoid(*l);
                    let y = if targets.contains(&i) { 1.0 } else { 0.0 };
                    loss -= libm::log(f64::from(if y > 0.0 { p } else { 1.0 - p }.max(1e-12)));
                    p - y
                })
                .collect();
            (gradient, loss)
        }
    }
}

/// How a model did on held-out tickets: what early stopping and model selection compare.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeldOutScore {
    /// Share of the tickets whose best-scored tag is one of theirs.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
}

impl HeldOutScore {
    /// Early stopping's yardstick: the lower held-out loss, for every kind of head.
    ///
    /// Why not accuracy, for one tag per ticket: it was tried (the epoch of best held-out
    /// accuracy, loss breaking ties) and measured through `tagger train` against this rule
    /// on the three shared datasets: BANKING77 0.911 against 0.916, Ticket Tagger 0.661
    /// against 0.662, CLINC150 0.920 both. The best of many epochs' accuracies on one
    /// validation split moves in steps of one ticket and is partly luck; the loss is smooth.
    /// Model selection still judges candidates by accuracy ([`judged_by_accuracy`]): there
    /// the one-standard-error rule guards against luck.
    pub fn better_than(&self, other: &HeldOutScore) -> bool {
        self.loss < other.loss
    }
}

/// Whether held-out accuracy (the best tag right) is a run's yardstick: one tag per ticket
/// under one softmax.
pub fn judged_by_accuracy(heads: &Heads) -> bool {
    matches!(heads, Heads::Whole(LabelMode::Single))
}

/// The index of the highest logit (the first of equals).
fn best_output(logits: &[f32]) -> usize {
    logits
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, v)| {
            if *v > bv { (i, *v) } else { (bi, bv) }
        })
        .0
}

/// How one held-out ticket did: whether its best-scored tag is one of its own, and its loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub right: bool,
    pub loss: f64,
}

/// `model`'s outcome on each ticket of a vectorised set.
pub(crate) fn held_out_outcomes(
    model: &NgramModel,
    set: &VectorisedSet,
    heads: &Heads,
) -> Vec<Outcome> {
    set.vectors
        .iter()
        .zip(set.examples)
        .map(|(vector, example)| {
            let logits = model.logits_of_bag(&model.bag(vector));
            Outcome {
                right: example.targets.contains(&best_output(&logits)),
                loss: output_gradient(&logits, &example.targets, heads).1,
            }
        })
        .collect()
}

/// `model`'s score on a vectorised set.
pub(crate) fn held_out_score(
    model: &NgramModel,
    set: &VectorisedSet,
    heads: &Heads,
) -> HeldOutScore {
    let outcomes = held_out_outcomes(model, set, heads);
    let n = outcomes.len().max(1) as f64;
    HeldOutScore {
        accuracy: outcomes.iter().filter(|o| o.right).count() as f64 / n,
        loss: outcomes.iter().map(|o| o.loss).sum::<f64>() / n,
    }
}

/// Adagrad state: a running sum of squared gradients per parameter.
struct Accumulators {
    table: Vec<f32>,
    projection: Vec<f32>,
    bias: Vec<f32>,
}

#[inline(always)]
fn adagrad(weight: &mut f32, accumulator: &mut f32, gradient: f32, rate: f32, l2: f32) {
    let gradient = gradient + l2 * *weight;
    *accumulator += gradient * gradient;
    *weight -= rate * gradient / (accumulator.sqrt() + 1e-8);
}

/// A trained model and the epoch that did best on the validation tickets.
pub struct Fitted {
    pub model: NgramModel,
    pub best_epoch: usize,
    /// That epoch's score on the validation tickets (none without validation tickets).
    pub best_score: Option<HeldOutScore>,
    /// Epochs trained, early stopping's extra ones included.
    pub epochs_run: usize,
    /// The caller asked to stop before training ended: the model is not finished.
    pub stopped: bool,
}

/// Trains an `ngram` model on `train`, stopping early on `validation`; `on_epoch` hears
/// about every epoch.
pub fn train_ngram(
    heads: &Heads,
    outputs: usize,
    train: &[Example],
    validation: &[Example],
    params: &NgramParams,
    mut on_epoch: impl FnMut(EpochReport),
) -> Fitted {
    train_ngram_until(heads, outputs, train, validation, params, |epoch| {
        on_epoch(epoch);
        ControlFlow::Continue(())
    })
}

/// `train_ngram` whose `on_epoch` may say stop (a cancelled job, a worker shutting down):
/// training ends after that epoch with `stopped` set.
pub fn train_ngram_until(
    heads: &Heads,
    outputs: usize,
    train: &[Example],
    validation: &[Example],
    params: &NgramParams,
    on_epoch: impl FnMut(EpochReport) -> ControlFlow<()>,
) -> Fitted {
    let model = build_vocabulary(params, outputs, train);
    let train_set = VectorisedSet::new(&model, train);
    let validation_set = VectorisedSet::new(&model, validation);
    fit_vectorised(heads, model, &train_set, &validation_set, params, on_epoch)
}

/// Tickets turned into the TF-IDF vectors of one vocabulary, so a fit and the scoring of
/// its held-out tickets (model selection) vectorise once.
pub(crate) struct VectorisedSet<'a> {
    pub vectors: Vec<SparseVector>,
    pub examples: &'a [Example],
}

impl<'a> VectorisedSet<'a> {
    pub fn new(model: &NgramModel, examples: &'a [Example]) -> Self {
        Self {
            vectors: examples.iter().map(|e| model.vectorize(&e.text)).collect(),
            examples,
        }
    }

    /// Weight updates one epoch over these tickets takes on a table `width` wide: the unit
    /// of model selection's budget (proportional to training time, and the same on every
    /// machine, so a budget cut never depends on the clock).
    pub fn updates_per_epoch(&self, width: usize) -> u64 {
        self.vectors.iter().map(|v| (v.len() * width) as u64).sum()
    }
}

/// The training loop over vectors of `model`'s vocabulary, starting from `model`.
pub(crate) fn fit_vectorised(
    heads: &Heads,
    mut model: NgramModel,
    train_set: &VectorisedSet,
    validation_set: &VectorisedSet,
    params: &NgramParams,
    mut on_epoch: impl FnMut(EpochReport) -> ControlFlow<()>,
) -> Fitted {
    let outputs = model.shape.outputs;
    let train = train_set.examples;
    let validation = validation_set.examples;
    let train_vectors = &train_set.vectors;
    let width = model.width();
    let hidden = params.hidden;
    let mut state = Accumulators {
        table: vec![0.0; model.table.len()],
        projection: vec![0.0; model.projection.len()],
        bias: vec![0.0; outputs],
    };
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut random = Random(params.seed ^ 0x5eed);
    let mut best: Option<(HeldOutScore, usize, NgramModel)> = None;
    let mut lowest_loss: Option<f64> = None;
    let mut epochs_without_gain = 0;
    let mut epochs_run = 0;
    for epoch in 1..=params.epochs {
        epochs_run = epoch;
        random.shuffle(&mut order);
        let mut train_loss = 0.0;
        for &i in &order {
            let vector = &train_vectors[i];
            let bag = model.bag(vector);
            let logits = model.logits_of_bag(&bag);
            let (gradient, loss) = output_gradient(&logits, &train[i].targets, heads);
            train_loss += loss;
            let rate = params.learning_rate;
            for ((bias, accumulator), g) in
                model.bias.iter_mut().zip(&mut state.bias).zip(&gradient)
            {
                adagrad(bias, accumulator, *g, rate, 0.0);
            }
            // The gradient reaching the bag: the output gradient itself for a linear model,
            // or back through the projection.
            let bag_gradient: Vec<f32> = if hidden == 0 {
                gradient
            } else {
                let mut back = vec![0.0; hidden];
                for (h, slot) in back.iter_mut().enumerate() {
                    let row = &model.projection[h * outputs..(h + 1) * outputs];
                    *slot = row.iter().zip(&gradient).map(|(w, g)| w * g).sum();
                }
                let weights = model
                    .projection
                    .chunks_mut(outputs)
                    .zip(state.projection.chunks_mut(outputs));
                for ((row, accumulators), activation) in weights.zip(&bag) {
                    for ((weight, accumulator), g) in
                        row.iter_mut().zip(accumulators).zip(&gradient)
                    {
                        adagrad(weight, accumulator, activation * g, rate, params.l2);
                    }
                }
                back
            };
            // Written over slices so the compiler vectorises the square roots and divisions:
            // this loop is nearly all of the training time.
            for (row, weight) in vector {
                let start = *row as usize * width;
                let entries = &mut model.table[start..start + width];
                let accumulators = &mut state.table[start..start + width];
                for ((entry, accumulator), g) in
                    entries.iter_mut().zip(accumulators).zip(&bag_gradient)
                {
                    adagrad(entry, accumulator, weight * g, rate, params.l2);
                }
            }
        }
        let score = held_out_score(&model, validation_set, heads);
        let go_on = on_epoch(EpochReport {
            epoch,
            epochs: params.epochs,
            train_loss: train_loss / train.len().max(1) as f64,
            validation_loss: score.loss,
        });
        if go_on.is_break() {
            return Fitted {
                model,
                best_epoch: epoch,
                best_score: None,
                epochs_run,
                stopped: true,
            };
        }
        if validation.is_empty() {
            continue;
        }
        // Training goes on while either yardstick still improves: accuracy moves in steps
        // of one ticket and can stall for a few epochs while the loss is still falling,
        // and the loss can rise from over-confidence while accuracy still climbs. Of the
        // epochs seen, `better_than` picks the one kept.
        let lower_loss = lowest_loss.is_none_or(|lowest| score.loss < lowest);
        if lower_loss {
            lowest_loss = Some(score.loss);
        }
        let better = best
            .as_ref()
            .is_none_or(|(best_score, _, _)| score.better_than(best_score));
        if better {
            best = Some((score, epoch, model.clone()));
        }
        if better || lower_loss {
            epochs_without_gain = 0;
        } else {
            epochs_without_gain += 1;
            if epochs_without_gain >= params.patience {
                break;
            }
        }
    }
    match best {
        Some((score, best_epoch, model)) => Fitted {
            model,
            best_epoch,
            best_score: Some(score),
            epochs_run,
            stopped: false,
        },
        None => Fitted {
            model,
            best_epoch: params.epochs,
            best_score: None,
            epochs_run,
            stopped: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::TicketId;

    /// Tickets of two tags told apart by a few words among shared ones; every fifth
    /// training ticket carries the wrong tag, so the held-out loss climbs from
    /// over-confidence long before accuracy stops moving.
    fn noisy(tickets: i64, offset: i64, noise: bool) -> Vec<Example> {
        let mut random = Random(offset as u64 + 9);
        let topic = [
            ["printer", "toner", "paper", "tray", "jam", "scan"],
            ["password", "login", "account", "locked", "reset", "token"],
        ];
        let shared = [
            "please", "help", "today", "again", "office", "urgent", "since", "monday",
        ];
        (0..tickets)
            .map(|i| {
                let tag = (i % 2) as usize;
                let mut words: Vec<&str> = (0..3)
                    .map(|_| topic[tag][(random.next() % 6) as usize])
                    .collect();
                words.extend((0..5).map(|_| shared[(random.next() % 8) as usize]));
                // A word of the other tag now and then, so some tickets are hard.
                if random.next().is_multiple_of(3) {
                    words.push(topic[1 - tag][(random.next() % 6) as usize]);
                }
                let flipped = noise && i % 5 == 0;
                Example {
                    ticket: TicketId(offset + i),
                    text: words.join(" "),
                    targets: vec![if flipped { 1 - tag } else { tag }],
                }
            })
            .collect()
    }

    /// The epoch `better_than` prefers among models trained for 1, 2, … `epochs` epochs
    /// (the same updates a longer run makes up to then) and each epoch's score.
    fn rescored(
        heads: &Heads,
        train: &[Example],
        validation: &[Example],
        params: &NgramParams,
    ) -> (usize, Vec<HeldOutScore>) {
        let scores: Vec<HeldOutScore> = (1..=params.epochs)
            .map(|epochs| {
                let fixed = NgramParams { epochs, ..*params };
                let model = train_ngram(heads, 2, train, &[], &fixed, |_| {}).model;
                held_out_score(&model, &VectorisedSet::new(&model, validation), heads)
            })
            .collect();
        let mut best = 0;
        for (i, score) in scores.iter().enumerate() {
            if score.better_than(&scores[best]) {
                best = i;
            }
        }
        (best + 1, scores)
    }

    fn long_run() -> NgramParams {
        NgramParams {
            epochs: 12,
            patience: 12,
            min_df: 1,
            learning_rate: 0.5,
            ..NgramParams::default()
        }
    }

    #[test]
    fn a_single_label_run_keeps_the_epoch_of_lowest_held_out_loss_not_best_accuracy() {
        let (train, validation) = (noisy(200, 0, true), noisy(80, 10_000, false));
        let params = long_run();
        let fitted = train_ngram(&Heads::SINGLE, 2, &train, &validation, &params, |_| {});
        let (expected, scores) = rescored(&Heads::SINGLE, &train, &validation, &params);
        assert_eq!(fitted.best_epoch, expected, "{scores:?}");
        assert_eq!(fitted.best_score, Some(scores[expected - 1]));
        let lowest = scores.iter().map(|s| s.loss).fold(f64::INFINITY, f64::min);
        assert_eq!(scores[expected - 1].loss, lowest);
        // On these tickets the two yardsticks disagree, so the test tells them apart.
        let best_accuracy = scores.iter().map(|s| s.accuracy).fold(0.0, f64::max);
        assert!(scores[expected - 1].accuracy < best_accuracy, "{scores:?}");
    }

    #[test]
    fn a_multi_label_run_keeps_the_epoch_of_lowest_held_out_loss() {
        let (train, validation) = (noisy(200, 0, true), noisy(80, 10_000, false));
        let params = long_run();
        let fitted = train_ngram(&Heads::MULTI, 2, &train, &validation, &params, |_| {});
        let (expected, scores) = rescored(&Heads::MULTI, &train, &validation, &params);
        assert_eq!(fitted.best_epoch, expected, "{scores:?}");
        let lowest = scores.iter().map(|s| s.loss).fold(f64::INFINITY, f64::min);
        assert_eq!(scores[expected - 1].loss, lowest);
    }

    #[test]
    fn the_lower_loss_decides_whatever_the_accuracy() {
        let sure = HeldOutScore {
            accuracy: 0.9,
            loss: 0.5,
        };
        let calibrated = HeldOutScore {
            accuracy: 0.8,
            loss: 0.3,
        };
        assert!(calibrated.better_than(&sure));
        assert!(!sure.better_than(&calibrated));
    }
}
