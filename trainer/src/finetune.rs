//! Training the `finetune` model: a pretrained sentence encoder and a linear head trained
//! end to end. AdamW (no decay on biases and LayerNorm), linear warm-up then linear decay,
//! gradient-norm clipping, dropout while training only, mini-batches of similar length
//! padded to their longest text, and early stopping on validation loss that keeps the best
//! weights. The tuned encoder's files are saved in the model version's own directory.

pub(crate) mod adamw;

use crate::encoder_head::{EncoderHeadParams, data_loss, fit_head};
use crate::examples::{Example, TrainingData};
use crate::ngram::EpochReport;
use crate::random::Random;
use crate::run::{Fitted, Progress};
use adamw::{FusedAdamW, Group};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use datasets::LabelMode;
use inference::ModelError;
use inference::artifact::{Tensors, to_safetensors};
use inference::encoder::bert::{Bert, l2_normalize, mean_pool};
use inference::encoder::head::{EncoderHeadModel, LinearHead};
use inference::encoder::hub::{DEFAULT_ENCODER_REPO, HubCache};
use inference::encoder::tokenize::Tokens;
use inference::encoder::{
    DEFAULT_BATCH_SIZE, DEFAULT_THREADS, Encoder, EncoderError, EncoderFiles, EncoderOptions,
};
use inference::heads::Heads;
use inference::model::{Scored, Scorer};
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

/// Hyper-parameters of a `finetune` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneParams {
    /// Hugging Face id of the encoder to start from, read from the local cache.
    pub encoder: String,
    /// Token budget per text, special tokens included (64 covers BANKING77's texts).
    pub max_tokens: usize,
    /// Texts per gradient step.
    pub batch_size: usize,
    /// Threads for the encoder's matrix multiplies.
    pub threads: usize,
    /// Most passes over the training tickets.
    pub epochs: usize,
    /// Peak AdamW step size of the encoder's weights.
    pub learning_rate: f64,
    /// Peak step size of the head: it starts from random weights on unit-length
    /// embeddings, so it needs larger steps than the pretrained encoder.
    pub head_learning_rate: f64,
    /// AdamW's decoupled weight decay (not on biases and LayerNorm weights).
    pub weight_decay: f64,
    /// Share of the steps over which the step size rises linearly from zero.
    pub warmup_fraction: f64,
    /// Gradients are scaled down when their global L2 norm exceeds this (0: never).
    pub max_grad_norm: f64,
    /// Dropout probability while training.
    pub dropout: f32,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// Start the head from a linear probe (LP-FT, Kumar et al. 2022): a head fitted on the
    /// frozen encoder's embeddings, as `encoder-head` fits it, instead of random weights. A
    /// random head sends large, arbitrary gradients into the pretrained encoder on the first
    /// steps; a probed head starts where `encoder-head` ends, so tuning only has to improve.
    #[serde(default = "probe_by_default")]
    pub linear_probe: bool,
    /// Padded tokens one forward and backward pass holds at most; a batch over it runs in
    /// several passes whose gradients are summed (see [`PASS_TOKENS`]).
    #[serde(default = "pass_tokens_by_default")]
    pub pass_tokens: usize,
    /// Stop after this many steps in all (a short measured slice); none: every epoch.
    pub max_steps: Option<usize>,
    pub seed: u64,
    /// The hub cache to read the encoder from; the environment's (`HF_HOME`) when unset.
    #[serde(skip)]
    pub hub_cache: Option<PathBuf>,
}

impl Default for FinetuneParams {
    fn default() -> Self {
        Self {
            encoder: DEFAULT_ENCODER_REPO.to_string(),
            max_tokens: 64,
            batch_size: DEFAULT_BATCH_SIZE,
            threads: DEFAULT_THREADS,
            epochs: 3,
            learning_rate: 5e-5,
            head_learning_rate: 5e-3,
            weight_decay: 0.01,
            warmup_fraction: 0.1,
            max_grad_norm: 1.0,
            dropout: 0.1,
            patience: 1,
            linear_probe: true,
            pass_tokens: PASS_TOKENS,
            max_steps: None,
            seed: 42,
            hub_cache: None,
        }
    }
}

/// The checks a run that tunes the encoder shares (`finetune`, `setfit`): a dropout and a
/// warm-up share in [0, 1), positive finite step sizes for the encoder and the head.
pub(crate) fn check_tuning(
    dropout: f32,
    warmup_fraction: f64,
    learning_rate: f64,
    head_learning_rate: f64,
) -> Result<(), String> {
    if !(0.0..1.0).contains(&dropout) {
        return Err(format!("dropout must be in [0, 1), not {dropout}"));
    }
    if !(0.0..1.0).contains(&warmup_fraction) {
        return Err(format!(
            "warmup_fraction must be in [0, 1), not {warmup_fraction}"
        ));
    }
    for (name, rate) in [
        ("learning_rate", learning_rate),
        ("head_learning_rate", head_learning_rate),
    ] {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!("{name} must be positive, not {rate}"));
        }
    }
    Ok(())
}

/// Parameters written before passes existed ran every batch in one pass; read back, they get
/// today's budget (it changes memory, not the model, beyond float rounding).
pub(crate) fn pass_tokens_by_default() -> usize {
    PASS_TOKENS
}

/// Parameters written without `linear_probe` get the default. (Versions recorded before it
/// existed, session 4, started from a random head; their params do not name it.)
fn probe_by_default() -> bool {
    true
}

impl FinetuneParams {
    pub fn cache(&self) -> HubCache {
        self.hub_cache
            .as_ref()
            .map_or_else(HubCache::from_env, HubCache::at)
    }

    pub fn encoder_options(&self) -> EncoderOptions {
        EncoderOptions {
            max_tokens: self.max_tokens,
            // Fine-tuning trains on one window per ticket; serving reads what it trained on.
            windows: 1,
            batch_size: self.batch_size,
            threads: self.threads,
        }
    }

    /// Refuses settings that would train nothing or diverge silently.
    pub fn check(&self) -> Result<(), String> {
        if self.batch_size == 0 || self.epochs == 0 || self.patience == 0 {
            return Err("batch_size, epochs and patience must be at least 1".into());
        }
        check_tuning(
            self.dropout,
            self.warmup_fraction,
            self.learning_rate,
            self.head_learning_rate,
        )?;
        if self.max_steps == Some(0) {
            return Err("max_steps must be at least 1".into());
        }
        if self.pass_tokens == 0 {
            return Err("pass_tokens must be at least 1".into());
        }
        Ok(())
    }
}

/// Why a `finetune` run failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainFinetuneError {
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error("fine-tuning failed: {0}")]
    Compute(#[from] candle_core::Error),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("invalid finetune parameters: {0}")]
    Params(String),
    #[error("stopped before training finished")]
    Stopped,
}

/// One gradient step, as reported to the caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// 1-based, over the whole run.
    pub step: usize,
    pub steps: usize,
    pub epoch: usize,
    /// Mean loss of this step's batch.
    pub loss: f64,
    /// Step size of the encoder at this step.
    pub learning_rate: f64,
    /// Global gradient norm before clipping.
    pub gradient_norm: f64,
    /// Padded length of this step's batch.
    pub tokens: usize,
    pub seconds: f64,
}

/// The encoder and head being trained.
struct Trainable {
    bert: Bert,
    encoder_vars: VarMap,
    head_weight: Var,
    head_bias: Var,
    normalize: bool,
}

impl Trainable {
    fn new(
        files: &EncoderFiles,
        outputs: usize,
        normalize: bool,
        initial_head: Option<&LinearHead>,
        seed: u64,
        device: &Device,
    ) -> Result<Self, TrainFinetuneError> {
        let config = files.config()?;
        let (encoder_vars, bert) = Bert::trainable(&config, files.tensors(device)?, device)?;
        let dim = config.hidden_size;
        let (weights, bias) = match initial_head {
            Some(head) if head.dim != dim || head.outputs != outputs => {
                return Err(TrainFinetuneError::Params(format!(
                    "the initial head maps {} inputs to {} tags, the model needs {dim} to {outputs}",
                    head.dim, head.outputs
                )));
            }
            Some(head) => (head.weight.clone(), head.bias.clone()),
            None => {
                // nn.Linear's initialisation: uniform in ±1/√dim. A zero head would pass no
                // gradient to the encoder on the first steps.
                let bound = 1.0 / (dim as f32).sqrt();
                let mut random = Random(seed);
                let weights = (0..outputs * dim)
                    .map(|_| (random.uniform() * 2.0 - 1.0) * bound)
                    .collect();
                (weights, vec![0.0; outputs])
            }
        };
        Ok(Self {
            bert,
            encoder_vars,
            head_weight: Var::from_tensor(&Tensor::from_vec(weights, (outputs, dim), device)?)?,
            head_bias: Var::from_tensor(&Tensor::from_vec(bias, outputs, device)?)?,
            normalize,
        })
    }

    /// Scores `[batch, outputs]`; with `dropout` the differentiable training path.
    fn logits(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        dropout: Option<f32>,
    ) -> candle_core::Result<Tensor> {
        let states = match dropout {
            Some(probability) => self.bert.forward_train(ids, type_ids, mask, probability)?,
            None => self.bert.forward(
                ids,
                type_ids,
                mask,
                inference::encoder::bert::Kernels::Fused,
            )?,
        };
        let pooled = mean_pool(&states, mask)?;
        let pooled = if self.normalize {
            l2_normalize(&pooled)?
        } else {
            pooled
        };
        pooled
            .matmul(&self.head_weight.as_tensor().t()?)?
            .broadcast_add(self.head_bias.as_tensor())
    }

    /// Every variable: the encoder's by name, then the head's.
    fn all_vars(&self) -> Vec<Var> {
        let mut vars = self.encoder_vars.all_vars();
        vars.push(self.head_weight.clone());
        vars.push(self.head_bias.clone());
        vars
    }

    fn snapshot(&self) -> candle_core::Result<Vec<Tensor>> {
        self.all_vars()
            .iter()
            .map(|v| v.as_tensor().copy())
            .collect()
    }

    fn restore(&self, saved: &[Tensor]) -> candle_core::Result<()> {
        for (var, tensor) in self.all_vars().iter().zip(saved) {
            var.set(tensor)?;
        }
        Ok(())
    }

    fn head(&self) -> candle_core::Result<LinearHead> {
        let (outputs, dim) = self.head_weight.as_tensor().dims2()?;
        Ok(LinearHead {
            dim,
            outputs,
            weight: self
                .head_weight
                .as_tensor()
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1()?,
            bias: self
                .head_bias
                .as_tensor()
                .to_device(&Device::Cpu)?
                .to_vec1()?,
        })
    }
}

/// An encoder's weights, by their Hugging Face names, ready for a safetensors file.
pub(crate) fn encoder_tensors(encoder_vars: &VarMap) -> candle_core::Result<Tensors> {
    let mut tensors = Tensors::default();
    let variables = encoder_vars
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("the variable map lock is poisoned".into()))?;
    for (name, var) in variables.iter() {
        let tensor = var.as_tensor().to_device(&Device::Cpu)?;
        tensors.f32s.insert(
            name.clone(),
            (tensor.dims().to_vec(), tensor.flatten_all()?.to_vec1()?),
        );
    }
    Ok(tensors)
}

/// The optimiser: one fused pass per weight on the CPU, candle's `AdamW` elsewhere (its
/// tensor operations run on any device).
pub(crate) enum Optimizers {
    Fused(FusedAdamW),
    Candle(Vec<(AdamW, f64)>),
}

impl Optimizers {
    /// AdamW over `groups` of (weights, weight decay, peak step size).
    pub(crate) fn new(
        groups: Vec<(Vec<Var>, f64, f64)>,
        device: &Device,
    ) -> candle_core::Result<Self> {
        if device.is_cpu() {
            return Ok(Self::Fused(FusedAdamW::new(
                groups
                    .into_iter()
                    .map(|(vars, decay, peak)| Group::new(vars, decay, peak))
                    .collect(),
            )));
        }
        let optimizers = groups
            .into_iter()
            .map(|(vars, weight_decay, peak)| {
                let adam = AdamW::new(
                    vars,
                    ParamsAdamW {
                        weight_decay,
                        ..ParamsAdamW::default()
                    },
                )?;
                Ok((adam, peak))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self::Candle(optimizers))
    }

    /// Clips the gradients to a global L2 norm of `max_norm` (when positive) and takes one
    /// step at `factor` × each group's peak step size; returns the norm before clipping.
    pub(crate) fn step(
        &mut self,
        gradients: &mut GradStore,
        parameters: &[Var],
        max_norm: f64,
        factor: f64,
    ) -> candle_core::Result<f64> {
        let clip = |norm: f64| {
            if max_norm > 0.0 && norm > max_norm {
                max_norm / (norm + 1e-6)
            } else {
                1.0
            }
        };
        match self {
            Self::Fused(optimizer) => {
                let norm = optimizer.gradient_norm(gradients)?;
                optimizer.step(gradients, clip(norm), factor)?;
                Ok(norm)
            }
            Self::Candle(optimizers) => {
                let mut squares = 0.0;
                for var in parameters {
                    if let Some(gradient) = gradients.get(var.as_tensor()) {
                        squares += f64::from(gradient.sqr()?.sum_all()?.to_scalar::<f32>()?);
                    }
                }
                let norm = squares.sqrt();
                let scale = clip(norm);
                if scale < 1.0 {
                    for var in parameters {
                        if let Some(gradient) = gradients.remove(var.as_tensor()) {
                            gradients.insert(var.as_tensor(), (gradient * scale)?);
                        }
                    }
                }
                for (optimizer, peak) in optimizers.iter_mut() {
                    optimizer.set_learning_rate(*peak * factor);
                    optimizer.step(gradients)?;
                }
                Ok(norm)
            }
        }
    }
}

/// Mini-batches of texts of similar length: shuffled, sorted by length within windows of 50
/// batches, cut, and the batches shuffled again, so padding is small but the order random.
fn length_buckets(lengths: &[usize], batch_size: usize, random: &mut Random) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    random.shuffle(&mut order);
    let mut batches = Vec::new();
    for window in order.chunks_mut(batch_size * 50) {
        window.sort_by_key(|&index| lengths[index]);
        batches.extend(window.chunks(batch_size).map(<[usize]>::to_vec));
    }
    random.shuffle(&mut batches);
    batches
}

/// Step size at `step` (0-based) of `total`: linear warm-up, then linear decay to zero.
pub(crate) fn schedule(step: usize, total: usize, warmup: usize) -> f64 {
    if step < warmup {
        (step + 1) as f64 / warmup as f64
    } else {
        (total - step) as f64 / (total - warmup).max(1) as f64
    }
}

/// Targets of a batch: class ids (single-label) or a multi-hot matrix.
fn targets(
    examples: &[&Example],
    batch: &[usize],
    outputs: usize,
    heads: &Heads,
    device: &Device,
) -> candle_core::Result<Tensor> {
    match heads.whole() {
        Some(LabelMode::Single) => {
            let classes: Vec<u32> = batch
                .iter()
                .map(|&i| examples[i].targets.first().copied().unwrap_or(0) as u32)
                .collect();
            Tensor::from_vec(classes, batch.len(), device)
        }
        // Several tags, or one head per group: which tags each ticket has.
        _ => {
            let mut hot = vec![0f32; batch.len() * outputs];
            for (row, &i) in batch.iter().enumerate() {
                for &tag in &examples[i].targets {
                    hot[row * outputs + tag] = 1.0;
                }
            }
            Tensor::from_vec(hot, (batch.len(), outputs), device)
        }
    }
}

/// Padded tokens one forward and backward pass holds at most: the default batch's (32 texts
/// of 64 tokens). A pass's activations grow with its texts × padded length, attention's with
/// the length squared. A batch over this budget runs in several passes whose gradients are
/// summed before its one step, so a longer token budget costs time more than memory.
pub const PASS_TOKENS: usize = 2048;

/// How many texts padded to `padded` tokens one pass of `budget` tokens takes (at least one).
pub(crate) fn texts_per_pass(budget: usize, padded: usize) -> usize {
    (budget / padded.max(1)).max(1)
}

/// A pass's mean loss weighted by its share of the batch, so that the passes' gradients
/// add up to the gradient of the whole batch's mean loss. A batch run in one pass is left
/// exactly as it is.
pub(crate) fn share_of_batch(
    loss: Tensor,
    pass: usize,
    batch: usize,
) -> candle_core::Result<Tensor> {
    if pass == batch {
        Ok(loss)
    } else {
        loss * (pass as f64 / batch as f64)
    }
}

/// Adds one pass's gradients of `parameters` to `sum` and drops the rest of its store.
/// candle's backward also returns a gradient for every constant a differentiable operation
/// read (attention masks, dropout masks: `[batch, heads, length, length]` each, per layer);
/// kept across passes they would hold as much memory as one pass over the whole batch.
pub(crate) fn add_gradients(
    sum: &mut GradStore,
    mut pass: GradStore,
    parameters: &[Var],
) -> candle_core::Result<()> {
    for var in parameters {
        if let Some(gradient) = pass.remove(var) {
            let total = match sum.remove(var) {
                Some(before) => (before + gradient)?,
                None => gradient,
            };
            sum.insert(var, total);
        }
    }
    Ok(())
}

/// The trained encoder and head, before they are turned into a served model.
pub struct FinetunedWeights {
    /// The tuned encoder's files (the starting config and tokenizer, new weights).
    pub files: EncoderFiles,
    pub head: LinearHead,
    /// The epoch whose weights were kept (lowest validation loss).
    pub best_epoch: usize,
    pub steps: usize,
    /// The caller asked to stop: the weights are not finished and must not be saved.
    pub stopped: bool,
}

/// Trains the encoder `files` and a head end to end on `train`, keeping the epoch with the
/// lowest loss on `validation` (every epoch when it is empty). The head starts from
/// `initial_head` (a linear probe, see [`linear_probe`]) or, without one, from random
/// weights. `on_step` is called after every step and `on_epoch` after every epoch; either
/// may say stop, and training ends there with `stopped`.
#[allow(clippy::too_many_arguments)] // the data, the settings and the two callbacks
pub fn finetune_until(
    encoder: &Encoder,
    files: &EncoderFiles,
    heads: &Heads,
    outputs: usize,
    train: &[&Example],
    validation: &[&Example],
    initial_head: Option<&LinearHead>,
    params: &FinetuneParams,
    mut on_step: impl FnMut(StepReport) -> ControlFlow<()> + Send,
    mut on_epoch: impl FnMut(EpochReport) -> ControlFlow<()> + Send,
) -> Result<FinetunedWeights, TrainFinetuneError> {
    params.check().map_err(TrainFinetuneError::Params)?;
    let device = encoder.device().clone();
    let tokenize = |examples: &[&Example]| {
        examples
            .iter()
            .map(|e| encoder.tokenize(&e.text))
            .collect::<Result<Vec<Tokens>, _>>()
    };
    let train_tokens = tokenize(train)?;
    let validation_tokens = tokenize(validation)?;
    let lengths: Vec<usize> = train_tokens.iter().map(Tokens::len).collect();
    let batch_size = params.batch_size;
    let steps_per_epoch = train.len().div_ceil(batch_size);
    let mut total = steps_per_epoch * params.epochs;
    if let Some(limit) = params.max_steps {
        total = total.min(limit);
    }
    let warmup = (total as f64 * params.warmup_fraction).ceil() as usize;
    encoder.install(|| {
        let model = Trainable::new(
            files,
            outputs,
            encoder.spec().normalize,
            initial_head,
            params.seed,
            &device,
        )?;
        // Biases and LayerNorm weights (one dimension) take no weight decay, as in BERT.
        let (matrices, vectors): (Vec<Var>, Vec<Var>) = model
            .encoder_vars
            .all_vars()
            .into_iter()
            .partition(|var| var.rank() > 1);
        let head = vec![model.head_weight.clone(), model.head_bias.clone()];
        let groups = [
            (matrices, params.weight_decay, params.learning_rate),
            (vectors, 0.0, params.learning_rate),
            (head, params.weight_decay, params.head_learning_rate),
        ];
        let mut optimizer = Optimizers::new(groups.into(), &device)?;
        let parameters = model.all_vars();
        let validation_loss = |model: &Trainable| -> candle_core::Result<f64> {
            let mut sum = 0.0;
            let indices: Vec<usize> = (0..validation.len()).collect();
            for chunk in indices.chunks(batch_size) {
                let tokens: Vec<&Tokens> = chunk.iter().map(|&i| &validation_tokens[i]).collect();
                let batch = encoder.tokenizer().pad(&tokens, &device)?;
                let logits = model.logits(&batch.ids, &batch.type_ids, &batch.mask, None)?;
                let loss = data_loss(
                    &logits,
                    &targets(validation, chunk, outputs, heads, &device)?,
                    heads,
                )?;
                sum += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
            }
            Ok(sum / validation.len().max(1) as f64)
        };
        let mut random = Random(params.seed);
        let mut best: Option<(f64, usize, Vec<Tensor>)> = None;
        let mut without_gain = 0;
        let mut step = 0;
        let mut last_epoch = 0;
        let mut stopped = false;
        'epochs: for epoch in 1..=params.epochs {
            if step >= total {
                break;
            }
            last_epoch = epoch;
            let mut train_loss = 0.0;
            let mut seen = 0;
            for batch_indices in length_buckets(&lengths, batch_size, &mut random) {
                if step >= total {
                    break;
                }
                let started = std::time::Instant::now();
                let padded = batch_indices.iter().map(|&i| lengths[i]).max().unwrap_or(1);
                let mut gradients = GradStore::default();
                let mut loss_value = 0.0;
                let mut padded_tokens = 0;
                for pass in batch_indices.chunks(texts_per_pass(params.pass_tokens, padded)) {
                    let tokens: Vec<&Tokens> = pass.iter().map(|&i| &train_tokens[i]).collect();
                    let batch = encoder.tokenizer().pad(&tokens, &device)?;
                    padded_tokens = padded_tokens.max(batch.ids.dims2()?.1);
                    let logits = model.logits(
                        &batch.ids,
                        &batch.type_ids,
                        &batch.mask,
                        Some(params.dropout),
                    )?;
                    let loss = data_loss(
                        &logits,
                        &targets(train, pass, outputs, heads, &device)?,
                        heads,
                    )?;
                    let loss = share_of_batch(loss, pass.len(), batch_indices.len())?;
                    loss_value += f64::from(loss.to_scalar::<f32>()?);
                    add_gradients(&mut gradients, loss.backward()?, &parameters)?;
                }
                let factor = schedule(step, total, warmup);
                let norm =
                    optimizer.step(&mut gradients, &parameters, params.max_grad_norm, factor)?;
                step += 1;
                train_loss += loss_value * batch_indices.len() as f64;
                seen += batch_indices.len();
                let report = StepReport {
                    step,
                    steps: total,
                    epoch,
                    loss: loss_value,
                    learning_rate: params.learning_rate * factor,
                    gradient_norm: norm,
                    tokens: padded_tokens,
                    seconds: started.elapsed().as_secs_f64(),
                };
                if on_step(report).is_break() {
                    stopped = true;
                    break 'epochs;
                }
            }
            let validation_loss = if validation.is_empty() {
                0.0
            } else {
                validation_loss(&model)?
            };
            let go_on = on_epoch(EpochReport {
                epoch,
                epochs: params.epochs,
                train_loss: train_loss / seen.max(1) as f64,
                validation_loss,
            });
            if go_on.is_break() {
                stopped = true;
                break;
            }
            if validation.is_empty() {
                continue;
            }
            match &best {
                Some((loss, _, _)) if validation_loss >= *loss => {
                    without_gain += 1;
                    if without_gain >= params.patience {
                        break;
                    }
                }
                _ => {
                    best = Some((validation_loss, epoch, model.snapshot()?));
                    without_gain = 0;
                }
            }
        }
        let best_epoch = match best {
            Some((_, epoch, saved)) => {
                if epoch != last_epoch {
                    model.restore(&saved)?;
                }
                epoch
            }
            None => last_epoch,
        };
        Ok(FinetunedWeights {
            files: files.with_weights(to_safetensors(&encoder_tensors(&model.encoder_vars)?)?),
            head: model.head()?,
            best_epoch,
            steps: step,
            stopped,
        })
    })
}

/// A head fitted on the frozen encoder's embeddings of `train`, with early stopping on
/// `validation`, exactly as an `encoder-head` run fits its head (same defaults): the
/// starting point of LP-FT. `progress` hears how many texts are embedded.
#[allow(clippy::too_many_arguments)] // the data and the settings
pub fn linear_probe(
    encoder: &Encoder,
    heads: &Heads,
    outputs: usize,
    train: &[&Example],
    validation: &[&Example],
    seed: u64,
    mut progress: impl FnMut(usize, usize) + Send,
) -> Result<LinearHead, TrainFinetuneError> {
    let examples: Vec<&Example> = train.iter().chain(validation).copied().collect();
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let total = texts.len();
    let computed = encoder.embed_with_progress(&texts, |done| progress(done, total))?;
    let embeddings = examples.iter().map(|e| e.ticket).zip(computed).collect();
    let params = EncoderHeadParams {
        threads: encoder.threads(),
        seed,
        ..EncoderHeadParams::default()
    };
    let fitted = encoder.install(|| {
        fit_head(
            heads,
            outputs,
            encoder.dim(),
            &embeddings,
            train,
            validation,
            &params,
            params.epochs,
            |_| {},
        )
    })?;
    Ok(fitted.head)
}

/// What a finished `finetune` fit hands to the run: the shared part, and the tuned encoder's
/// files to save beside the head.
pub(crate) struct FittedFinetune {
    pub fitted: Fitted,
    pub files: EncoderFiles,
}

/// A `finetune` training run's model-specific part: train the encoder and head with early
/// stopping, then score the calibration and test tickets with the model exactly as it will
/// be served (built from the files that will be saved).
pub(crate) fn fit(
    data: &TrainingData,
    calibration_set: &[Example],
    params: &FinetuneParams,
    progress: &mut (dyn FnMut(Progress) -> ControlFlow<()> + Send),
) -> Result<FittedFinetune, TrainFinetuneError> {
    params.check().map_err(TrainFinetuneError::Params)?;
    let cache = params.cache();
    let snapshot = cache.snapshot(&params.encoder, None)?;
    let files = EncoderFiles::read(&snapshot, None)?;
    let options = params.encoder_options();
    let encoder = Encoder::from_files(&files, &options)?;
    let train: Vec<&Example> = data.train.iter().collect();
    let validation: Vec<&Example> = data.validation.iter().collect();
    let started = std::time::Instant::now();
    let probe = if params.linear_probe && !train.is_empty() {
        let head = linear_probe(
            &encoder,
            &data.heads,
            data.tags.len(),
            &train,
            &validation,
            params.seed,
            |done, total| {
                let _ = progress(Progress::Embedding { done, total });
            },
        )?;
        Some(head)
    } else {
        None
    };
    let probe_seconds = started.elapsed().as_secs_f64();
    let progress = std::sync::Mutex::new(progress);
    let report = |event: Progress| match progress.lock() {
        Ok(mut progress) => (*progress)(event),
        // A callback that panicked cannot say go on.
        Err(_) => ControlFlow::Break(()),
    };
    let started = std::time::Instant::now();
    let trained = finetune_until(
        &encoder,
        &files,
        &data.heads,
        data.tags.len(),
        &train,
        &validation,
        probe.as_ref(),
        params,
        |step| report(Progress::Step(step)),
        |epoch| report(Progress::Epoch(epoch)),
    )?;
    if trained.stopped {
        return Err(TrainFinetuneError::Stopped);
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(encoder);
    let tuned = Encoder::from_files(&trained.files, &options)?;
    let spec = tuned.spec().clone();
    let model = EncoderHeadModel {
        encoder: Arc::new(tuned),
        head: trained.head,
        centroids: Vec::new(),
    };
    // No tag centroids for a tuned encoder (they would need the training tickets embedded
    // again): its out-of-distribution signal is the energy of its scores alone.
    let score = |examples: &[Example]| {
        let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
        model.logits(&texts).map(|rows| {
            rows.into_iter()
                .map(|logits| Scored::encoder(logits, &[], &[], &data.heads))
                .collect::<Vec<_>>()
        })
    };
    let calibration = score(calibration_set)?;
    let test_scores = score(&data.test)?;
    let mut recorded = serde_json::json!(params);
    recorded["best_epoch"] = trained.best_epoch.into();
    recorded["steps"] = trained.steps.into();
    recorded["train_seconds"] = seconds.into();
    recorded["linear_probe_seconds"] = probe_seconds.into();
    recorded["device"] = if model.encoder.device().is_cuda() {
        "cuda".into()
    } else {
        "cpu".into()
    };
    Ok(FittedFinetune {
        fitted: Fitted {
            calibration,
            test_scores: Some(test_scores),
            scorer: Scorer::EncoderHead(model),
            params: recorded,
            ngram: None,
            encoder: Some(spec),
            selection: None,
        },
        files: trained.files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_size_rises_then_falls_to_zero() {
        let total = 10;
        let rates: Vec<f64> = (0..total).map(|s| schedule(s, total, 2)).collect();
        assert_eq!(rates[0], 0.5);
        assert_eq!(rates[1], 1.0);
        assert_eq!(rates[2], 1.0);
        assert!(rates.windows(2).skip(2).all(|w| w[1] < w[0]));
        assert_eq!(rates[9], 1.0 / 8.0);
    }

    #[test]
    fn length_buckets_cover_every_text_once_in_batches_of_similar_length() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 37) % 61 + 3).collect();
        let batches = length_buckets(&lengths, 32, &mut Random(3));
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| b.len() <= 32));
        // Sorted within windows: the padding is far below that of random batches.
        let padding = |batch: &[usize]| {
            let longest = batch.iter().map(|&i| lengths[i]).max().unwrap_or(0);
            batch.iter().map(|&i| longest - lengths[i]).sum::<usize>()
        };
        let bucketed: usize = batches.iter().map(|b| padding(b)).sum();
        let random: usize = (0..1000).collect::<Vec<_>>().chunks(32).map(padding).sum();
        assert!(bucketed * 5 < random, "{bucketed} vs {random}");
    }
}
