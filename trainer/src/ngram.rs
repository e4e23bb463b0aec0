//! Training the `ngram` model: a vocabulary of hashed features seen in at least `min_df`
//! training tickets, TF-IDF weights, then the cross-entropy (softmax for one tag per ticket,
//! per-tag sigmoid for several) minimised in one of two ways ([`NgramSolver`]):
//! - `lbfgs` (the default for the linear model): the L2-regularised loss minimised to
//!   convergence, with the regularisation chosen on the validation tickets from a path of
//!   strengths ([`LOSS_WEIGHTS`]): what scikit-learn's `LogisticRegression` computes, with
//!   its `C` chosen per project;
//! - `adagrad`: epochs of Adagrad updating only the rows a ticket touches, early stopping
//!   keeping the epoch that did best on the validation tickets
//!   ([`HeldOutScore::better_than`]: the lowest loss). The only one for a bag (`hidden > 0`).

use crate::examples::Example;
use crate::lbfgs::{Stopping, minimise};
use crate::random::Random;
use datasets::{GroupChoice, LabelMode};
use inference::calibration::sigmoid;
use inference::features::{Family, FeatureConfig, SparseVector};
use inference::heads::Heads;
use inference::ngram::{NgramModel, NgramShape};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

/// How an `ngram` model's weights are fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NgramSolver {
    /// `lbfgs` where a ticket has one tag under one softmax, `adagrad` otherwise (multi-label
    /// and grouped projects, and every bag). The card records the one used.
    ///
    /// Why: on the three shared single-label datasets `lbfgs` reaches TF-IDF + LinearSVC
    /// where Adagrad stayed 0.5–1.1 points below (`bench ngram-selection`,
    /// docs/benchmarks.md); on the grouped demo (multi-choice topics, single-choice type and
    /// priority) it was no better (micro-F1 0.754 against 0.759) and took ten times as long.
    #[default]
    Auto,
    /// The mean loss plus `½‖W‖² / (C·n)` minimised to convergence by L-BFGS (C: the loss
    /// weight, scikit-learn's `C`), C chosen on the validation tickets unless
    /// `loss_weight` fixes it. A linear model only; a bag trains with Adagrad. Early-stopped
    /// Adagrad regularises by when it stops, which one validation split measures coarsely,
    /// and its per-update L2 spares rare n-grams; this fits the regularisation itself.
    Lbfgs,
    /// Epochs of Adagrad with early stopping (`epochs`, `learning_rate`, `l2`, `patience`).
    Adagrad,
}

/// Loss weights (C) an `lbfgs` run tries, strongest regularisation first, keeping the one
/// of lowest validation loss. Three per decade over the range where TF-IDF text
/// classifiers are tuned (scikit-learn's grids; BASELINES.md's LR uses 10, and a noisy
/// few-thousand-ticket set does better near 1 while short intents want 10–100).
pub const LOSS_WEIGHTS: [f32; 9] = [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0];
/// The loss weight when there are no validation tickets to choose one by: BASELINES.md's
/// recipe.
pub const DEFAULT_LOSS_WEIGHT: f32 = 10.0;
/// The path stops after this many weaker regularisations in a row did not lower the
/// validation loss: it rises once the model starts to fit the training tickets' noise.
const PATH_PATIENCE: usize = 2;
/// L-BFGS keeps this many correction pairs, fewer when the table is large
/// ([`LBFGS_MEMORY_BYTES`]).
const LBFGS_PAIRS: usize = 7;
/// What the L-BFGS vectors may take together; a larger table keeps fewer correction pairs
/// (at least one): L-BFGS holds `2·pairs + 5` copies of the table and the loss one more.
const LBFGS_MEMORY_BYTES: usize = 1 << 30;

/// Hyper-parameters of an `ngram` training run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NgramParams {
    pub features: FeatureConfig,
    /// 0: a linear model over the features (most accurate); otherwise the bag's width.
    pub hidden: usize,
    /// Features seen in fewer training tickets are dropped.
    pub min_df: u32,
    /// `adagrad`: the most epochs.
    pub epochs: usize,
    pub learning_rate: f32,
    /// `adagrad`: L2 penalty per update, scaled by the learning rate.
    pub l2: f32,
    #[serde(default)]
    pub solver: NgramSolver,
    /// `lbfgs`: the loss weight C; none chooses it on the validation tickets.
    #[serde(default)]
    pub loss_weight: Option<f32>,
    /// `lbfgs`: the most iterations per loss weight.
    #[serde(default = "default_max_iterations")]
    pub max_iterations: usize,
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
            solver: NgramSolver::default(),
            loss_weight: None,
            max_iterations: default_max_iterations(),
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

fn default_max_iterations() -> usize {
    300
}

/// Progress of a run, reported once per epoch (`lbfgs`: at every iteration, `epoch`
/// counting the loss weights of its path).
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
    /// Epochs trained, early stopping's extra ones included (`lbfgs`: iterations, over
    /// every loss weight tried).
    pub epochs_run: usize,
    /// The caller asked to stop before training ended: the model is not finished.
    pub stopped: bool,
    /// The parameters that train this model again without validation tickets (on other
    /// tickets: folds, the refit): the best epoch's count, or the chosen loss weight.
    pub settled: NgramParams,
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

/// Training over vectors of `model`'s vocabulary, starting from `model`, by the run's
/// solver.
pub(crate) fn fit_vectorised(
    heads: &Heads,
    model: NgramModel,
    train_set: &VectorisedSet,
    validation_set: &VectorisedSet,
    params: &NgramParams,
    on_epoch: impl FnMut(EpochReport) -> ControlFlow<()>,
) -> Fitted {
    // The solver resolved, so the settled parameters (folds, refit, the card) name it.
    let resolved = NgramParams {
        solver: solver_for(params, heads),
        ..*params
    };
    match resolved.solver {
        NgramSolver::Lbfgs => {
            fit_lbfgs(heads, model, train_set, validation_set, &resolved, on_epoch)
        }
        _ => fit_adagrad(heads, model, train_set, validation_set, &resolved, on_epoch),
    }
}

/// The Adagrad loop.
fn fit_adagrad(
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
                settled: *params,
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
            settled: NgramParams {
                epochs: best_epoch,
                ..*params
            },
        },
        None => Fitted {
            model,
            best_epoch: params.epochs,
            best_score: None,
            epochs_run,
            stopped: false,
            settled: *params,
        },
    }
}

/// The loss weights a fit at `weight` walks through: those of [`LOSS_WEIGHTS`] below it,
/// then `weight`.
fn path_to(weight: f32) -> Vec<f32> {
    LOSS_WEIGHTS
        .iter()
        .copied()
        .filter(|w| *w < weight)
        .chain(std::iter::once(weight))
        .collect()
}

/// The solver a run with `params` uses for `heads` (never `Auto`).
pub fn solver_for(params: &NgramParams, heads: &Heads) -> NgramSolver {
    match params.solver {
        _ if params.hidden > 0 => NgramSolver::Adagrad,
        NgramSolver::Auto if judged_by_accuracy(heads) => NgramSolver::Lbfgs,
        NgramSolver::Auto => NgramSolver::Adagrad,
        solver => solver,
    }
}

/// The summed loss over `vectors` of the linear model whose table and bias are `table` and
/// `bias`; adds `share ×` its gradient to `table_gradient` and `bias_gradient`.
#[allow(clippy::too_many_arguments)]
fn add_loss_gradient(
    vectors: &[SparseVector],
    examples: &[Example],
    heads: &Heads,
    share: f32,
    table: &[f32],
    bias: &[f32],
    table_gradient: &mut [f32],
    bias_gradient: &mut [f32],
) -> f64 {
    let width = bias.len();
    let mut loss = 0.0;
    let mut logits = vec![0.0f32; width];
    for (vector, example) in vectors.iter().zip(examples) {
        logits.copy_from_slice(bias);
        for (row, weight) in vector {
            let start = *row as usize * width;
            for (logit, w) in logits.iter_mut().zip(&table[start..start + width]) {
                *logit += weight * w;
            }
        }
        let (output, example_loss) = output_gradient(&logits, &example.targets, heads);
        loss += example_loss;
        for (g, o) in bias_gradient.iter_mut().zip(&output) {
            *g += share * o;
        }
        for (row, weight) in vector {
            let start = *row as usize * width;
            let scale = share * weight;
            for (g, o) in table_gradient[start..start + width].iter_mut().zip(&output) {
                *g += scale * o;
            }
        }
    }
    loss
}

/// The mean loss over `set` plus `½·penalty·‖table‖²` of the linear model whose table and
/// bias are `weights` (the table first, `width` outputs a row); writes its gradient.
///
/// The tickets are cut in two halves, each summed into its own gradient and the two added
/// in a fixed order, the second half on another thread where the machine has one: the same
/// bits on every machine, at nearly half the time on two cores. `scratch` is the second
/// half's gradient, kept between calls.
fn regularised_loss(
    set: &VectorisedSet,
    heads: &Heads,
    width: usize,
    penalty: f32,
    weights: &[f32],
    gradient: &mut [f32],
    scratch: &mut [f32],
) -> f64 {
    let table_len = weights.len() - width;
    let (table, bias) = weights.split_at(table_len);
    gradient.fill(0.0);
    scratch.fill(0.0);
    let share = 1.0 / set.vectors.len().max(1) as f32;
    let middle = set.vectors.len() / 2;
    let (first_vectors, second_vectors) = set.vectors.split_at(middle);
    let (first_examples, second_examples) = set.examples.split_at(middle);
    let (table_gradient, bias_gradient) = gradient.split_at_mut(table_len);
    let (scratch_table, scratch_bias) = scratch.split_at_mut(table_len);
    let half = |vectors: &[SparseVector],
                examples: &[Example],
                table_gradient: &mut [f32],
                bias_gradient: &mut [f32]| {
        add_loss_gradient(
            vectors,
            examples,
            heads,
            share,
            table,
            bias,
            table_gradient,
            bias_gradient,
        )
    };
    let parallel = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let (first_loss, second_loss) = if parallel {
        std::thread::scope(|scope| {
            let other =
                scope.spawn(|| half(second_vectors, second_examples, scratch_table, scratch_bias));
            let first = half(first_vectors, first_examples, table_gradient, bias_gradient);
            (first, other.join().expect("the loss thread does not panic"))
        })
    } else {
        (
            half(first_vectors, first_examples, table_gradient, bias_gradient),
            half(second_vectors, second_examples, scratch_table, scratch_bias),
        )
    };
    let mut squares = 0.0f64;
    for ((g, extra), w) in table_gradient.iter_mut().zip(&*scratch_table).zip(table) {
        *g += extra + penalty * w;
        squares += f64::from(*w) * f64::from(*w);
    }
    for (g, extra) in bias_gradient.iter_mut().zip(&*scratch_bias) {
        *g += extra;
    }
    (first_loss + second_loss) * f64::from(share) + 0.5 * f64::from(penalty) * squares
}

/// The `lbfgs` fit: for each loss weight C of the path ([`LOSS_WEIGHTS`] when there are
/// validation tickets to choose by, otherwise those up to the requested or default weight),
/// the regularised loss minimised from the previous weight's solution (a warm start: the
/// path costs little more than its last fit). Keeps the strongest regularisation within one
/// standard error of the best on the validation tickets.
fn fit_lbfgs(
    heads: &Heads,
    mut model: NgramModel,
    train_set: &VectorisedSet,
    validation_set: &VectorisedSet,
    params: &NgramParams,
    mut on_epoch: impl FnMut(EpochReport) -> ControlFlow<()>,
) -> Fitted {
    let width = model.width();
    // A fixed weight is reached by the same warm-started path, so a refit at the weight
    // the validation tickets chose ends where that choice's fit did, not at a cold start's
    // unfinished solution (weakly regularised fits converge slowly from zero).
    let (path, choose) = match params.loss_weight {
        Some(weight) => (path_to(weight), false),
        None if validation_set.examples.is_empty() => (path_to(DEFAULT_LOSS_WEIGHT), false),
        None => (LOSS_WEIGHTS.to_vec(), true),
    };
    let tickets = train_set.vectors.len().max(1) as f32;
    let mut weights: Vec<f32> = model.table.iter().chain(&model.bias).copied().collect();
    let mut scratch = vec![0.0f32; weights.len()];
    let bytes_per_copy = weights.len() * std::mem::size_of::<f32>();
    let pairs = (LBFGS_MEMORY_BYTES / bytes_per_copy.max(1)).saturating_sub(6) / 2;
    let pairs = pairs.clamp(1, LBFGS_PAIRS);
    let stopping = Stopping {
        max_iterations: params.max_iterations,
        gradient: 1e-5,
        relative_decrease: 1e-9,
    };
    // Progress counts the path's loss weights, reported at every iteration (each report
    // is also where a cancelled run is heard).
    let steps = path.len();
    let mut iterations = 0;
    // Candidates along the path, strongest regularisation first: the step of lowest
    // validation cost and every earlier step within one standard error of it. The cost is
    // the error rate where a ticket has one tag, as model selection judges (the loss kept
    // choosing weaker regularisation than the test split's accuracy wanted: on the three
    // shared datasets, C = 3, 300 and 300 by loss against 1, 30 and 10 by error rate, the
    // latter 0.1–0.6 points of test accuracy higher); the loss otherwise. The path itself
    // ends by the loss, which is smooth where the error rate moves in single tickets.
    let by_accuracy = judged_by_accuracy(heads);
    let mut candidates: Vec<PathStep> = Vec::new();
    let mut lowest_loss = f64::INFINITY;
    let mut worse_in_a_row = 0;
    let mut last_validation_loss = f64::NAN;
    for (step, &loss_weight) in path.iter().enumerate() {
        let penalty = 1.0 / (loss_weight * tickets);
        let before = iterations;
        let result = minimise(
            &mut weights,
            pairs,
            stopping,
            |w, g| regularised_loss(train_set, heads, width, penalty, w, g, &mut scratch),
            |_, value| {
                iterations += 1;
                on_epoch(EpochReport {
                    epoch: step + 1,
                    epochs: steps,
                    train_loss: value,
                    validation_loss: last_validation_loss,
                })
            },
        );
        let (table, bias) = weights.split_at(model.table.len());
        model.table.copy_from_slice(table);
        model.bias.copy_from_slice(bias);
        if result.stopped {
            return Fitted {
                model,
                best_epoch: iterations,
                best_score: None,
                epochs_run: iterations,
                stopped: true,
                settled: *params,
            };
        }
        tracing::debug!(
            loss_weight,
            iterations = iterations - before,
            objective = result.value,
            "ngram lbfgs fit"
        );
        if !choose {
            continue;
        }
        let costs: Vec<f64> = held_out_outcomes(&model, validation_set, heads)
            .iter()
            .map(|outcome| match by_accuracy {
                true => f64::from(u8::from(!outcome.right)),
                false => outcome.loss,
            })
            .collect();
        let score = held_out_score(&model, validation_set, heads);
        last_validation_loss = score.loss;
        candidates.push(PathStep {
            loss_weight,
            score,
            costs,
            iterations: iterations - before,
            model: model.clone(),
        });
        let best = candidates
            .iter()
            .enumerate()
            .min_by(|a, b| {
                let total = |costs: &[f64]| costs.iter().sum::<f64>();
                total(&a.1.costs)
                    .total_cmp(&total(&b.1.costs))
                    .then(a.1.score.loss.total_cmp(&b.1.score.loss))
            })
            .map(|(i, _)| i)
            .expect("a step was just added");
        let keep: Vec<bool> = candidates
            .iter()
            .map(|c| within_one_standard_error(&c.costs, &candidates[best].costs))
            .collect();
        let mut keep = keep.into_iter();
        candidates.retain(|_| keep.next().unwrap_or(false));
        if score.loss < lowest_loss {
            lowest_loss = score.loss;
            worse_in_a_row = 0;
        } else {
            worse_in_a_row += 1;
            if worse_in_a_row >= PATH_PATIENCE {
                break;
            }
        }
    }
    // The strongest regularisation the validation tickets cannot tell from the best (the
    // one-standard-error rule, glmnet's `lambda.1se`): on a few hundred validation tickets
    // the best alone is partly luck, and luck favours the weaker fits.
    let (model, best_score, loss_weight, best_epoch) = match candidates.into_iter().next() {
        Some(step) => (
            step.model,
            Some(step.score),
            step.loss_weight,
            step.iterations,
        ),
        None => (model, None, path[path.len() - 1], iterations),
    };
    Fitted {
        model,
        best_epoch,
        best_score,
        epochs_run: iterations,
        stopped: false,
        settled: NgramParams {
            loss_weight: Some(loss_weight),
            ..*params
        },
    }
}

/// One loss weight of an `lbfgs` path, with its model and validation costs.
struct PathStep {
    loss_weight: f32,
    score: HeldOutScore,
    /// Each validation ticket's cost: 1 for a wrong best tag, 0 for a right one where a
    /// ticket has one tag ([`judged_by_accuracy`]); its loss otherwise.
    costs: Vec<f64>,
    iterations: usize,
    model: NgramModel,
}

/// Whether `costs` are no worse than `best`'s, ticket by ticket, by more than one standard
/// error of their mean difference.
fn within_one_standard_error(costs: &[f64], best: &[f64]) -> bool {
    let n = costs.len();
    if n < 2 {
        return costs == best;
    }
    let differences: Vec<f64> = costs.iter().zip(best).map(|(a, b)| a - b).collect();
    let mean = differences.iter().sum::<f64>() / n as f64;
    let variance = differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    mean <= (variance / n as f64).sqrt()
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
            solver: NgramSolver::Adagrad,
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

    fn weights_of(model: &NgramModel) -> Vec<f32> {
        model.table.iter().chain(&model.bias).copied().collect()
    }

    #[test]
    fn an_lbfgs_fit_ends_where_the_regularised_loss_is_flat() {
        let train = noisy(300, 0, true);
        let params = NgramParams {
            min_df: 1,
            loss_weight: Some(3.0),
            ..NgramParams::default()
        };
        let fitted = train_ngram(&Heads::SINGLE, 2, &train, &[], &params, |_| {});
        let set = VectorisedSet::new(&fitted.model, &train);
        let weights = weights_of(&fitted.model);
        let (mut gradient, mut scratch) = (vec![0.0; weights.len()], vec![0.0; weights.len()]);
        let penalty = 1.0 / (3.0 * train.len() as f32);
        let value = regularised_loss(
            &set,
            &Heads::SINGLE,
            2,
            penalty,
            &weights,
            &mut gradient,
            &mut scratch,
        );
        let largest = gradient.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        assert!(largest < 1e-3, "largest partial derivative {largest}");
        // Adagrad's early-stopped model is not a minimum of this loss.
        let adagrad = train_ngram(
            &Heads::SINGLE,
            2,
            &train,
            &[],
            &NgramParams {
                solver: NgramSolver::Adagrad,
                epochs: 3,
                ..params
            },
            |_| {},
        );
        let other = regularised_loss(
            &set,
            &Heads::SINGLE,
            2,
            penalty,
            &weights_of(&adagrad.model),
            &mut gradient,
            &mut scratch,
        );
        assert!(value < other, "lbfgs {value} against adagrad {other}");
    }

    #[test]
    fn the_loss_gradient_matches_finite_differences() {
        let train = noisy(40, 0, true);
        let model = build_vocabulary(
            &NgramParams {
                min_df: 1,
                ..NgramParams::default()
            },
            2,
            &train,
        );
        let set = VectorisedSet::new(&model, &train);
        let mut random = Random(3);
        let weights: Vec<f32> = (0..model.table.len() + 2)
            .map(|_| random.uniform() - 0.5)
            .collect();
        let (mut gradient, mut scratch) = (vec![0.0; weights.len()], vec![0.0; weights.len()]);
        let mut other = gradient.clone();
        for heads in [Heads::SINGLE, Heads::MULTI] {
            regularised_loss(&set, &heads, 2, 0.01, &weights, &mut gradient, &mut scratch);
            for i in [0, 7, weights.len() / 2, weights.len() - 1] {
                let h = 1e-2f32;
                let (mut up, mut down) = (weights.clone(), weights.clone());
                up[i] += h;
                down[i] -= h;
                let above = regularised_loss(&set, &heads, 2, 0.01, &up, &mut other, &mut scratch);
                let below =
                    regularised_loss(&set, &heads, 2, 0.01, &down, &mut other, &mut scratch);
                let numeric = (above - below) / (2.0 * f64::from(h));
                let analytic = f64::from(gradient[i]);
                assert!(
                    (numeric - analytic).abs() < 1e-3 + 1e-2 * analytic.abs(),
                    "weight {i}: numeric {numeric}, analytic {analytic}"
                );
            }
        }
    }

    #[test]
    fn a_refit_at_the_chosen_loss_weight_walks_the_same_path() {
        let (train, validation) = (noisy(240, 0, true), noisy(120, 10_000, false));
        let params = NgramParams {
            min_df: 1,
            ..NgramParams::default()
        };
        let chosen = train_ngram(&Heads::SINGLE, 2, &train, &validation, &params, |_| {});
        let weight = chosen
            .settled
            .loss_weight
            .expect("lbfgs settles a loss weight");
        assert!(LOSS_WEIGHTS.contains(&weight));
        let again = train_ngram(&Heads::SINGLE, 2, &train, &[], &chosen.settled, |_| {});
        assert_eq!(weights_of(&again.model), weights_of(&chosen.model));
    }

    /// The loss weight a path chooses on `train` with `heads`.
    fn chosen_weight(heads: &Heads, train: &[Example], validation: &[Example]) -> f32 {
        let params = NgramParams {
            min_df: 1,
            solver: NgramSolver::Lbfgs,
            ..NgramParams::default()
        };
        train_ngram(heads, 2, train, validation, &params, |_| {})
            .settled
            .loss_weight
            .expect("lbfgs settles a loss weight")
    }

    #[test]
    fn by_the_loss_label_noise_gets_stronger_regularisation() {
        let validation = noisy(300, 10_000, false);
        let noisy_weight = chosen_weight(&Heads::MULTI, &noisy(400, 0, true), &validation);
        let clean_weight = chosen_weight(&Heads::MULTI, &noisy(400, 0, false), &validation);
        assert!(
            noisy_weight < clean_weight,
            "noisy labels C {noisy_weight}, clean C {clean_weight}"
        );
    }

    #[test]
    fn where_accuracy_cannot_tell_the_weights_apart_the_strongest_is_chosen() {
        // Two tags told apart by their own words: every weight gets nearly every ticket
        // right, and the one-standard-error rule keeps the strongest regularisation.
        let validation = noisy(300, 10_000, false);
        let weight = chosen_weight(&Heads::SINGLE, &noisy(400, 0, false), &validation);
        assert_eq!(weight, LOSS_WEIGHTS[0]);
        // By the loss, the same tickets want a weaker one.
        let by_loss = chosen_weight(&Heads::MULTI, &noisy(400, 0, false), &validation);
        assert!(by_loss > weight, "by the loss C {by_loss}");
    }

    #[test]
    fn the_automatic_solver_is_lbfgs_for_one_tag_per_ticket_only() {
        let train = noisy(60, 0, false);
        let settled = |heads: &Heads, hidden: usize, solver: NgramSolver| {
            let params = NgramParams {
                min_df: 1,
                epochs: 2,
                hidden,
                solver,
                ..NgramParams::default()
            };
            train_ngram(heads, 2, &train, &[], &params, |_| {})
                .settled
                .solver
        };
        use NgramSolver::{Adagrad, Auto, Lbfgs};
        // (heads, bag width, requested, used)
        let cases = [
            (Heads::SINGLE, 0, Auto, Lbfgs),
            (Heads::MULTI, 0, Auto, Adagrad),
            (Heads::SINGLE, 8, Auto, Adagrad),
            (Heads::SINGLE, 8, Lbfgs, Adagrad),
            (Heads::MULTI, 0, Lbfgs, Lbfgs),
        ];
        for (heads, hidden, requested, used) in cases {
            assert_eq!(
                settled(&heads, hidden, requested),
                used,
                "{heads:?}, {hidden}, {requested:?}"
            );
        }
    }

    #[test]
    fn an_lbfgs_run_stops_when_asked() {
        let train = noisy(200, 0, true);
        let mut reports = Vec::new();
        let fitted = train_ngram_until(
            &Heads::SINGLE,
            2,
            &train,
            &noisy(50, 10_000, false),
            &NgramParams::default(),
            |report| {
                reports.push(report);
                if reports.len() == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert!(fitted.stopped);
        assert_eq!(reports.len(), 3);
        assert_eq!(reports[0].epochs, LOSS_WEIGHTS.len());
    }

    #[test]
    fn one_standard_error_tells_noise_from_a_real_difference() {
        let best = vec![0.5, 0.4, 0.6, 0.5, 0.45, 0.55];
        let noise: Vec<f64> = best
            .iter()
            .enumerate()
            .map(|(i, l)| l + if i % 2 == 0 { 0.05 } else { -0.04 })
            .collect();
        assert!(within_one_standard_error(&noise, &best));
        let worse: Vec<f64> = best.iter().map(|l| l + 0.1).collect();
        assert!(!within_one_standard_error(&worse, &best));
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
