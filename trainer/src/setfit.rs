//! Training the `setfit` model, the SetFit recipe (Tunstall et al., 2022): the pretrained
//! sentence encoder is first tuned contrastively on pairs of labelled training tickets — a
//! pair with the same tags should embed close (cosine 1), a pair with different tags apart
//! (cosine 0), CosineSimilarityLoss — then the head `encoder-head` fits is fitted on the tuned
//! encoder's embeddings, with its calibration, thresholds and out-of-distribution signals.
//! The tuned encoder's files are saved beside the head exactly as `finetune` saves them.

use crate::encoder_head::{
    EmbeddingReport, EncoderHeadParams, TrainEncoderHeadError, fit_on_embeddings,
};
use crate::examples::{Example, TrainingData};
use crate::finetune::{
    Optimizers, StepReport, add_gradients, check_tuning, encoder_tensors, schedule, share_of_batch,
    texts_per_pass,
};
use crate::random::Random;
use crate::run::{Fitted, HeldOutScores, Progress};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use datasets::TicketId;
use inference::ModelError;
use inference::artifact::to_safetensors;
use inference::encoder::bert::{Bert, l2_normalize, mean_pool};
use inference::encoder::hub::{DEFAULT_ENCODER_REPO, HubCache};
use inference::encoder::tokenize::Tokens;
use inference::encoder::{DEFAULT_THREADS, Encoder, EncoderError, EncoderFiles, EncoderOptions};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

/// Hyper-parameters of a `setfit` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetfitParams {
    /// Hugging Face id of the encoder to start from, read from the local cache.
    pub encoder: String,
    /// Token budget per text, special tokens included; the head and serving read the same.
    pub max_tokens: usize,
    /// Sentence pairs per gradient step (twice as many texts go through the encoder).
    pub pair_batch_size: usize,
    /// Rounds of pair sampling: each round gives every training ticket one positive and one
    /// negative pair (SetFit's `num_iterations`, 20 in the paper).
    pub iterations: usize,
    /// Most sentence pairs in all, a uniform sample of the rounds' pairs: the bound on the
    /// contrastive phase's time (steps = pairs / `pair_batch_size`).
    pub max_pairs: usize,
    /// Peak AdamW step size of the encoder's weights (SetFit's body learning rate).
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay (not on biases and LayerNorm weights).
    pub weight_decay: f64,
    /// Share of the steps over which the step size rises linearly from zero.
    pub warmup_fraction: f64,
    /// Gradients are scaled down when their global L2 norm exceeds this (0: never).
    pub max_grad_norm: f64,
    /// Dropout probability while tuning (sentence-transformers trains with BERT's 0.1).
    pub dropout: f32,
    /// Padded tokens one forward and backward pass holds at most (`finetune`'s
    /// [`PASS_TOKENS`](crate::finetune::PASS_TOKENS)): a step over it runs in several
    /// passes of whole pairs whose gradients are summed.
    #[serde(default = "crate::finetune::pass_tokens_by_default")]
    pub pass_tokens: usize,
    /// Texts per encoder forward pass when embedding for the head.
    pub batch_size: usize,
    /// Threads for the encoder's matrix multiplies and the head.
    pub threads: usize,
    /// The head's most epochs (`encoder-head`'s `epochs`).
    pub head_epochs: usize,
    /// The head's Adam step size (`encoder-head`'s `learning_rate`).
    pub head_learning_rate: f64,
    /// The head's L2 penalty (`encoder-head`'s `l2`).
    pub head_l2: f64,
    /// The head stops after this many epochs without a better validation loss.
    pub head_patience: usize,
    /// Seeds the pairs, the dropout and the head.
    pub seed: u64,
    /// The hub cache to read the encoder from; the environment's (`HF_HOME`) when unset.
    #[serde(skip)]
    pub hub_cache: Option<PathBuf>,
}

/// Most sentence pairs by default: 250 steps of 8 pairs. The SetFit paper's few-shot runs
/// (8–64 labels per class, 20 rounds) use a few hundred to a few thousand pairs; the cap
/// keeps the contrastive phase of any project, however many labels it has, to a bounded
/// number of steps (their measured time is in docs/benchmarks.md, `bench few-labels`).
pub const DEFAULT_MAX_PAIRS: usize = 2_000;
/// Pairs per step by default: 16 texts of at most 64 tokens a step. SetFit's batch of 16
/// pairs at `encoder-head`'s 128 tokens is four times that step's activations (see
/// docs/models.md for the one-step trial that ruled it out on two cores).
pub const DEFAULT_PAIR_BATCH_SIZE: usize = 8;

impl Default for SetfitParams {
    fn default() -> Self {
        let head = EncoderHeadParams::default();
        Self {
            encoder: DEFAULT_ENCODER_REPO.to_string(),
            // `finetune`'s budget: a step's memory and time grow with the tokens.
            max_tokens: 64,
            pair_batch_size: DEFAULT_PAIR_BATCH_SIZE,
            iterations: 20,
            max_pairs: DEFAULT_MAX_PAIRS,
            // SetFit's default body learning rate.
            learning_rate: 2e-5,
            weight_decay: 0.01,
            warmup_fraction: 0.1,
            max_grad_norm: 1.0,
            dropout: 0.1,
            pass_tokens: crate::finetune::PASS_TOKENS,
            batch_size: head.batch_size,
            threads: DEFAULT_THREADS,
            head_epochs: head.epochs,
            head_learning_rate: head.learning_rate,
            head_l2: head.l2,
            head_patience: head.patience,
            seed: 42,
            hub_cache: None,
        }
    }
}

impl SetfitParams {
    pub fn cache(&self) -> HubCache {
        self.hub_cache
            .as_ref()
            .map_or_else(HubCache::from_env, HubCache::at)
    }

    pub fn encoder_options(&self) -> EncoderOptions {
        EncoderOptions {
            max_tokens: self.max_tokens,
            // The encoder is tuned on one window per ticket; serving reads what it tuned on.
            windows: 1,
            batch_size: self.batch_size,
            threads: self.threads,
        }
    }

    /// The settings of the head, as an `encoder-head` run of the same encoder would read them.
    pub fn head_params(&self) -> EncoderHeadParams {
        EncoderHeadParams {
            encoder: self.encoder.clone(),
            max_tokens: self.max_tokens,
            windows: 1,
            batch_size: self.batch_size,
            threads: self.threads,
            epochs: self.head_epochs,
            learning_rate: self.head_learning_rate,
            l2: self.head_l2,
            patience: self.head_patience,
            seed: self.seed,
            hub_cache: self.hub_cache.clone(),
            ..EncoderHeadParams::default()
        }
    }

    /// Refuses settings that would train nothing or diverge silently.
    pub fn check(&self) -> Result<(), String> {
        if self.pair_batch_size == 0
            || self.iterations == 0
            || self.max_pairs == 0
            || self.batch_size == 0
            || self.head_epochs == 0
            || self.head_patience == 0
            || self.pass_tokens == 0
        {
            return Err(
                "pair_batch_size, iterations, max_pairs, batch_size, head_epochs, head_patience and pass_tokens must be at least 1"
                    .into(),
            );
        }
        check_tuning(
            self.dropout,
            self.warmup_fraction,
            self.learning_rate,
            self.head_learning_rate,
        )?;
        Ok(())
    }
}

/// Why a `setfit` run failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainSetfitError {
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error("contrastive tuning failed: {0}")]
    Compute(#[from] candle_core::Error),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Head(#[from] TrainEncoderHeadError),
    #[error("invalid setfit parameters: {0}")]
    Params(String),
    #[error("stopped before training finished")]
    Stopped,
}

/// Two training tickets (indices into the examples the pairs were drawn from) and whether
/// they should embed alike (1) or apart (0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub first: usize,
    pub second: usize,
    pub target: f32,
}

/// SetFit's pairs: in each of `iterations` rounds every example gets a positive pair with a
/// random other example of the same tag set and a negative pair with a random example of
/// another tag set (when such exist). Only as many rounds as `max_pairs` needs are drawn,
/// then the pairs are shuffled and cut to `max_pairs`. Same examples and seed, same pairs.
///
/// The tag set is the whole set of an example's targets: the tag for single-label projects,
/// the identical set of tags for multi-label ones, and the identical choice in every group
/// for grouped ones (a ticket that shares one group's tag but not another's is a negative:
/// it must not embed like a ticket the head should tag the same).
pub fn sample_pairs(
    examples: &[&Example],
    iterations: usize,
    max_pairs: usize,
    seed: u64,
) -> Vec<Pair> {
    let count = examples.len();
    if count < 2 || max_pairs == 0 {
        return Vec::new();
    }
    // The examples ordered by tag set: each set is one run of `order`, so "any example of
    // another set" is one uniform draw over what lies outside the run.
    let mut sets: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
    for (index, example) in examples.iter().enumerate() {
        let mut key = example.targets.clone();
        key.sort_unstable();
        key.dedup();
        sets.entry(key).or_default().push(index);
    }
    let mut order = Vec::with_capacity(count);
    let mut run_of = vec![(0, 0); count];
    for members in sets.values() {
        let start = order.len();
        order.extend_from_slice(members);
        for &member in members {
            run_of[member] = (start, order.len());
        }
    }
    let rounds = iterations.min(max_pairs.div_ceil(2 * count)).max(1);
    let mut random = Random(seed);
    let mut pairs = Vec::with_capacity(rounds * 2 * count);
    for _ in 0..rounds {
        for (index, &(start, end)) in run_of.iter().enumerate() {
            let size = end - start;
            if size > 1 {
                // A uniform draw over the run without the example itself.
                let mut pick = start + (random.next() % (size as u64 - 1)) as usize;
                if order[pick] == index {
                    pick = end - 1;
                }
                pairs.push(Pair {
                    first: index,
                    second: order[pick],
                    target: 1.0,
                });
            }
            let outside = count - size;
            if outside > 0 {
                let draw = (random.next() % outside as u64) as usize;
                let pick = if draw < start { draw } else { draw + size };
                pairs.push(Pair {
                    first: index,
                    second: order[pick],
                    target: 0.0,
                });
            }
        }
    }
    random.shuffle(&mut pairs);
    pairs.truncate(max_pairs);
    pairs
}

/// The mean CosineSimilarityLoss of `pairs` under `encoder`: the squared difference between
/// each pair's cosine similarity and its target, averaged.
pub fn pair_loss(
    encoder: &Encoder,
    examples: &[&Example],
    pairs: &[Pair],
) -> Result<f64, EncoderError> {
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let embeddings = encoder.embed(&texts)?;
    let unit: Vec<Vec<f32>> = embeddings
        .into_iter()
        .map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.into_iter().map(|v| v / norm).collect()
        })
        .collect();
    let total: f64 = pairs
        .iter()
        .map(|pair| {
            let cosine: f32 = unit[pair.first]
                .iter()
                .zip(&unit[pair.second])
                .map(|(a, b)| a * b)
                .sum();
            f64::from(cosine - pair.target).powi(2)
        })
        .sum();
    Ok(total / pairs.len().max(1) as f64)
}

/// The encoder after the contrastive phase.
pub struct TunedEncoder {
    /// The starting encoder's files with the tuned weights.
    pub files: EncoderFiles,
    pub steps: usize,
    /// Mean loss of the first and the last tenth of the steps (the trend, not one batch).
    pub first_loss: f64,
    pub last_loss: f64,
    /// The caller asked to stop: the weights are not finished and must not be saved.
    pub stopped: bool,
}

/// Tunes the encoder `files` on `pairs` of `examples` with CosineSimilarityLoss: each step
/// embeds both sides of `pair_batch_size` pairs (mean pooling, unit length, dropout on),
/// and takes one AdamW step with warm-up, linear decay and gradient clipping. `on_step` is
/// called after every step and may say stop. Memory is bounded by the batch: one step's
/// activations for `2 × pair_batch_size` texts of at most `max_tokens` tokens, plus the
/// weights and AdamW's two moments.
pub fn tune_encoder_until(
    encoder: &Encoder,
    files: &EncoderFiles,
    examples: &[&Example],
    pairs: &[Pair],
    params: &SetfitParams,
    mut on_step: impl FnMut(StepReport) -> ControlFlow<()> + Send,
) -> Result<TunedEncoder, TrainSetfitError> {
    params.check().map_err(TrainSetfitError::Params)?;
    let device = encoder.device().clone();
    let tokens = examples
        .iter()
        .map(|e| encoder.tokenize(&e.text))
        .collect::<Result<Vec<Tokens>, _>>()?;
    let total = pairs.len().div_ceil(params.pair_batch_size);
    let warmup = (total as f64 * params.warmup_fraction).ceil() as usize;
    encoder.install(|| {
        let config = files.config()?;
        let (variables, bert) = Bert::trainable(&config, files.tensors(&device)?, &device)?;
        // Biases and LayerNorm weights (one dimension) take no weight decay, as in BERT.
        let (matrices, vectors): (Vec<Var>, Vec<Var>) = variables
            .all_vars()
            .into_iter()
            .partition(|var| var.rank() > 1);
        let mut optimizer = Optimizers::new(
            vec![
                (matrices, params.weight_decay, params.learning_rate),
                (vectors, 0.0, params.learning_rate),
            ],
            &device,
        )?;
        let parameters = variables.all_vars();
        let mut losses = Vec::with_capacity(total);
        let mut stopped = false;
        for (step, batch) in pairs.chunks(params.pair_batch_size).enumerate() {
            let started = std::time::Instant::now();
            let longest = batch
                .iter()
                .flat_map(|p| [tokens[p.first].len(), tokens[p.second].len()])
                .max()
                .unwrap_or(1);
            // Whole pairs (two texts each) per pass, within `finetune`'s pass budget.
            let pairs_per_pass = (texts_per_pass(params.pass_tokens, longest) / 2).max(1);
            let mut gradients = GradStore::default();
            let mut loss_value = 0.0;
            let mut padded_tokens = 0;
            for pass in batch.chunks(pairs_per_pass) {
                // Firsts, then seconds: the two halves of one padded batch.
                let texts: Vec<&Tokens> = pass
                    .iter()
                    .map(|p| &tokens[p.first])
                    .chain(pass.iter().map(|p| &tokens[p.second]))
                    .collect();
                let padded = encoder.tokenizer().pad(&texts, &device)?;
                padded_tokens = padded_tokens.max(padded.ids.dims2()?.1);
                let loss = contrastive_loss(&bert, &padded, pass, params.dropout, &device)?;
                let loss = share_of_batch(loss, pass.len(), batch.len())?;
                loss_value += f64::from(loss.to_scalar::<f32>()?);
                add_gradients(&mut gradients, loss.backward()?, &parameters)?;
            }
            let factor = schedule(step, total, warmup);
            let norm = optimizer.step(&mut gradients, &parameters, params.max_grad_norm, factor)?;
            losses.push(loss_value);
            let report = StepReport {
                step: step + 1,
                steps: total,
                epoch: 1,
                loss: loss_value,
                learning_rate: params.learning_rate * factor,
                gradient_norm: norm,
                tokens: padded_tokens,
                seconds: started.elapsed().as_secs_f64(),
            };
            if on_step(report).is_break() {
                stopped = true;
                break;
            }
        }
        let tenth = (losses.len() / 10).max(1);
        let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
        let weights = to_safetensors(&encoder_tensors(&variables)?)?;
        Ok(TunedEncoder {
            files: files.with_weights(weights),
            steps: losses.len(),
            first_loss: mean(&losses[..tenth.min(losses.len())]),
            last_loss: mean(&losses[losses.len().saturating_sub(tenth)..]),
            stopped,
        })
    })
}

/// CosineSimilarityLoss of one batch whose first half holds the pairs' first texts and
/// whose second half their second texts.
fn contrastive_loss(
    bert: &Bert,
    batch: &inference::encoder::tokenize::Batch,
    pairs: &[Pair],
    dropout: f32,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let states = bert.forward_train(&batch.ids, &batch.type_ids, &batch.mask, dropout)?;
    let embeddings = l2_normalize(&mean_pool(&states, &batch.mask)?)?;
    let half = pairs.len();
    let first = embeddings.narrow(0, 0, half)?;
    let second = embeddings.narrow(0, half, half)?;
    let cosine = (first * second)?.sum(1)?;
    let targets: Vec<f32> = pairs.iter().map(|p| p.target).collect();
    let targets = Tensor::from_vec(targets, half, device)?;
    (cosine - targets)?.sqr()?.mean_all()
}

/// What a finished `setfit` fit hands to the run: the shared part, and the tuned encoder's
/// files to save beside the head.
pub(crate) struct FittedSetfit {
    pub fitted: Fitted,
    pub files: EncoderFiles,
}

/// A `setfit` training run's model-specific part: sample pairs of the training tickets,
/// tune the encoder on them, embed every ticket with the tuned encoder, and fit the head on
/// those embeddings as `encoder-head` does (early stopping on validation, held-out scores,
/// refit). The validation tickets are not in any pair, so their scores stay held out.
pub(crate) fn fit(
    data: &TrainingData,
    plan: HeldOutScores,
    held_out: &[Example],
    params: &SetfitParams,
    progress: &mut (dyn FnMut(Progress) -> ControlFlow<()> + Send),
) -> Result<FittedSetfit, TrainSetfitError> {
    params.check().map_err(TrainSetfitError::Params)?;
    let snapshot = params.cache().snapshot(&params.encoder, None)?;
    let files = EncoderFiles::read(&snapshot, None)?;
    let options = params.encoder_options();
    let encoder = Encoder::from_files(&files, &options)?;
    let train: Vec<&Example> = data.train.iter().collect();
    let pairs = sample_pairs(&train, params.iterations, params.max_pairs, params.seed);
    let positives = pairs.iter().filter(|p| p.target > 0.5).count();
    let started = std::time::Instant::now();
    let tuned = tune_encoder_until(&encoder, &files, &train, &pairs, params, |step| {
        progress(Progress::Step(step))
    })?;
    if tuned.stopped {
        return Err(TrainSetfitError::Stopped);
    }
    let tune_seconds = started.elapsed().as_secs_f64();
    drop(encoder);
    let encoder = Arc::new(Encoder::from_files(&tuned.files, &options)?);
    // A tuned encoder embeds differently from any cached one: every ticket is embedded
    // afresh, and nothing is written to the embedding cache.
    let started = std::time::Instant::now();
    let everything = data.all();
    let texts: Vec<&str> = everything.iter().map(|e| e.text.as_str()).collect();
    let total = texts.len();
    let rows = encoder.embed_with_progress(&texts, |done| {
        let _ = progress(Progress::Embedding { done, total });
    })?;
    let embeddings: HashMap<TicketId, Vec<f32>> =
        everything.iter().map(|e| e.ticket).zip(rows).collect();
    let report = EmbeddingReport {
        computed: total,
        cached: 0,
        seconds: started.elapsed().as_secs_f64(),
    };
    let head = params.head_params();
    let mut fitted = match fit_on_embeddings(
        data,
        plan,
        held_out,
        &head,
        encoder,
        &embeddings,
        report,
        progress,
    ) {
        Err(TrainEncoderHeadError::Stopped) => return Err(TrainSetfitError::Stopped),
        other => other?,
    };
    let mut recorded = serde_json::json!(params);
    recorded["pairs"] = pairs.len().into();
    recorded["positive_pairs"] = positives.into();
    recorded["steps"] = tuned.steps.into();
    recorded["pair_loss_first_tenth"] = tuned.first_loss.into();
    recorded["pair_loss_last_tenth"] = tuned.last_loss.into();
    recorded["tune_seconds"] = tune_seconds.into();
    recorded["head_best_epoch"] = fitted.params["best_epoch"].clone();
    recorded["embedding"] = serde_json::json!(report);
    fitted.params = recorded;
    Ok(FittedSetfit {
        fitted,
        files: tuned.files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(ticket: i64, targets: &[usize]) -> Example {
        Example {
            ticket: TicketId(ticket),
            text: format!("ticket {ticket}"),
            targets: targets.to_vec(),
        }
    }

    #[test]
    fn positives_share_the_tag_set_negatives_do_not_and_a_seed_repeats_the_pairs() {
        let examples: Vec<Example> = (0..60)
            .map(|i| match i % 4 {
                0 => example(i, &[0]),
                1 => example(i, &[1]),
                2 => example(i, &[0, 1]),
                _ => example(i, &[1, 0]),
            })
            .collect();
        let examples: Vec<&Example> = examples.iter().collect();
        let set = |i: usize| {
            let mut set = examples[i].targets.clone();
            set.sort_unstable();
            set
        };
        let pairs = sample_pairs(&examples, 20, 10_000, 7);
        // 20 rounds of one positive and one negative per example, under the cap.
        assert_eq!(pairs.len(), 20 * 2 * 60);
        for pair in &pairs {
            assert_ne!(pair.first, pair.second);
            assert_eq!(
                pair.target == 1.0,
                set(pair.first) == set(pair.second),
                "{pair:?}"
            );
        }
        assert_eq!(pairs.iter().filter(|p| p.target == 1.0).count(), 20 * 60);
        // [0, 1] and [1, 0] are one tag set: positives cross between them.
        assert!(
            pairs
                .iter()
                .any(|p| p.target == 1.0 && examples[p.first].targets != examples[p.second].targets)
        );
        assert_eq!(pairs, sample_pairs(&examples, 20, 10_000, 7));
        assert_ne!(pairs, sample_pairs(&examples, 20, 10_000, 8));
    }

    #[test]
    fn the_pair_cap_draws_only_the_rounds_it_needs_and_cuts_to_the_cap() {
        let examples: Vec<Example> = (0..50).map(|i| example(i, &[(i % 5) as usize])).collect();
        let examples: Vec<&Example> = examples.iter().collect();
        let pairs = sample_pairs(&examples, 20, 130, 1);
        assert_eq!(pairs.len(), 130);
        // Two rounds are drawn (200 pairs) and shuffled before the cut: both kinds remain,
        // and about as many of each.
        let positives = pairs.iter().filter(|p| p.target == 1.0).count();
        assert!((40..=90).contains(&positives), "{positives}");
    }

    #[test]
    fn a_lone_tag_set_has_no_positive_and_a_single_set_no_negative() {
        let examples = [example(1, &[0]), example(2, &[1]), example(3, &[1])];
        let examples: Vec<&Example> = examples.iter().collect();
        let pairs = sample_pairs(&examples, 1, 100, 3);
        // Ticket 0 has no partner of its set; tickets 1 and 2 have one each; all three
        // have a negative.
        assert_eq!(pairs.iter().filter(|p| p.target == 1.0).count(), 2);
        assert_eq!(pairs.iter().filter(|p| p.target == 0.0).count(), 3);
        assert!(
            pairs
                .iter()
                .filter(|p| p.target == 1.0)
                .all(|p| p.first != 0 && p.second != 0)
        );
        let same = [example(1, &[2]), example(2, &[2])];
        let same: Vec<&Example> = same.iter().collect();
        assert!(
            sample_pairs(&same, 3, 100, 3)
                .iter()
                .all(|p| p.target == 1.0)
        );
    }
}
