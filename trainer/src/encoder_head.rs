//! Training the `encoder-head` model: every ticket is embedded once by a frozen sentence
//! encoder (cached on disk per encoder revision and project, keyed by ticket id and the
//! SHA-256 of its text, so a second run embeds only new or edited tickets), then a linear
//! head (softmax or per-tag sigmoid, L2) is fitted with mini-batch Adam in seconds, stopping
//! early on validation loss.

use crate::examples::{Example, TrainingData};
use crate::ngram::EpochReport;
use crate::random::Random;
use crate::run::{Fitted, HeldOutScores, Progress};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use datasets::{GroupChoice, LabelMode, ProjectId, TicketId};
use inference::encoder::head::{EncoderHeadModel, LinearHead};
use inference::encoder::hub::{DEFAULT_ENCODER_REPO, HubCache};
use inference::encoder::{
    DEFAULT_BATCH_SIZE, DEFAULT_THREADS, Encoder, EncoderError, EncoderOptions, EncoderSpec,
};
use inference::heads::Heads;
use inference::model::{Scored, Scorer};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Hyper-parameters of an `encoder-head` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderHeadParams {
    /// Hugging Face id of the sentence encoder, read from the local cache.
    pub encoder: String,
    /// Token budget per text, special tokens included.
    pub max_tokens: usize,
    /// Windows of `max_tokens` a long ticket is read in, their embeddings averaged (see
    /// docs/models.md "Long tickets"); 1 cuts a ticket at `max_tokens`.
    #[serde(default = "default_windows")]
    pub windows: usize,
    /// Texts per encoder forward pass.
    pub batch_size: usize,
    /// Threads for the encoder and the head's training.
    pub threads: usize,
    /// Most passes over the training tickets.
    pub epochs: usize,
    /// Adam's step size.
    pub learning_rate: f64,
    /// L2 penalty: the objective is the mean loss per ticket plus `l2 / 2 · ‖W‖²` (the
    /// bias is not penalised); scikit-learn's `C` corresponds to `1 / (C · tickets)`.
    pub l2: f64,
    /// Tickets per gradient step.
    pub minibatch: usize,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    pub seed: u64,
    /// After early stopping, fit again on training and validation tickets for the best
    /// number of epochs (calibration still uses the first head's validation scores).
    pub refit: bool,
    /// The hub cache to read the encoder from; the environment's (`HF_HOME`) when unset.
    #[serde(skip)]
    pub hub_cache: Option<PathBuf>,
}

/// One window by default until the measurement on long tickets (Ticket Tagger issues) says
/// more windows pay for their cost: four windows read a ticket to its 512th token for up to
/// four times the encoder time (docs/models.md "Long tickets").
pub const DEFAULT_WINDOWS: usize = 1;

fn default_windows() -> usize {
    DEFAULT_WINDOWS
}

impl Default for EncoderHeadParams {
    fn default() -> Self {
        Self {
            encoder: DEFAULT_ENCODER_REPO.to_string(),
            max_tokens: inference::encoder::tokenize::DEFAULT_MAX_TOKENS,
            windows: DEFAULT_WINDOWS,
            batch_size: DEFAULT_BATCH_SIZE,
            threads: DEFAULT_THREADS,
            epochs: 100,
            // Chosen on BANKING77 (docs/models.md): stronger L2 underfits (1e-4: 0.907
            // accuracy), a larger step stops early on noise (0.1: 0.918).
            learning_rate: 2e-2,
            l2: 3e-6,
            minibatch: 256,
            patience: 5,
            seed: 42,
            refit: true,
            hub_cache: None,
        }
    }
}

impl EncoderHeadParams {
    pub fn cache(&self) -> HubCache {
        self.hub_cache
            .as_ref()
            .map_or_else(HubCache::from_env, HubCache::at)
    }

    pub fn encoder_options(&self) -> EncoderOptions {
        EncoderOptions {
            max_tokens: self.max_tokens,
            windows: self.windows,
            batch_size: self.batch_size,
            threads: self.threads,
        }
    }
}

/// Why an embedding cache could not be used. A cache that cannot be read is recomputed; one
/// that cannot be written fails the run (the next run would redo the work silently).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot write the embedding cache {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the embedding cache: {0}")]
    Encode(String),
}

/// Where a project's embeddings by one encoder revision live.
pub fn cache_path(models_dir: &Path, spec: &EncoderSpec, project: ProjectId) -> PathBuf {
    models_dir
        .join("embeddings")
        .join(format!(
            "{}--{}",
            spec.repo.replace('/', "--"),
            spec.revision
        ))
        .join(format!("project-{project}.safetensors"))
}

fn text_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Cached embeddings: ticket → (SHA-256 of the text it had, embedding).
type Cached = HashMap<TicketId, ([u8; 32], Vec<f32>)>;

const TICKETS: &str = "ticket";
const TEXT_HASHES: &str = "text_sha256";
const EMBEDDINGS: &str = "embedding";
const MAX_TOKENS_KEY: &str = "max_tokens";
const WINDOWS_KEY: &str = "windows";

/// Reads a cache file; anything unreadable or made with other settings counts as empty.
fn read_cache(path: &Path, spec: &EncoderSpec) -> Cached {
    let Ok(bytes) = std::fs::read(path) else {
        return Cached::new();
    };
    parse_cache(&bytes, spec).unwrap_or_default()
}

fn parse_cache(bytes: &[u8], spec: &EncoderSpec) -> Option<Cached> {
    let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes).ok()?;
    let max_tokens = metadata.metadata().as_ref()?.get(MAX_TOKENS_KEY)?;
    // The token budget and the windows change what a long text embeds to (a cache written
    // before windows existed read one).
    let windows = metadata
        .metadata()
        .as_ref()?
        .get(WINDOWS_KEY)
        .map_or("1", String::as_str);
    if max_tokens != &spec.max_tokens.to_string() || windows != spec.windows.to_string() {
        return None;
    }
    let file = safetensors::SafeTensors::deserialize(bytes).ok()?;
    let tickets = file.tensor(TICKETS).ok()?;
    let hashes = file.tensor(TEXT_HASHES).ok()?;
    let embeddings = file.tensor(EMBEDDINGS).ok()?;
    let count = tickets.shape().first().copied()?;
    if tickets.dtype() != Dtype::I64
        || hashes.dtype() != Dtype::U8
        || embeddings.dtype() != Dtype::F32
        || hashes.shape() != [count, 32]
        || embeddings.shape() != [count, spec.dim]
    {
        return None;
    }
    let ids = tickets
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
    let rows = embeddings.data().chunks_exact(spec.dim * 4).map(|row| {
        row.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect::<Vec<f32>>()
    });
    let hashes = hashes.data().chunks_exact(32).map(|c| {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(c);
        hash
    });
    Some(
        ids.zip(hashes)
            .zip(rows)
            .map(|((id, hash), row)| (TicketId(id), (hash, row)))
            .collect(),
    )
}

fn write_cache(
    path: &Path,
    spec: &EncoderSpec,
    entries: &[(TicketId, [u8; 32], &[f32])],
) -> Result<(), CacheError> {
    let ids: Vec<u8> = entries
        .iter()
        .flat_map(|(id, _, _)| id.0.to_le_bytes())
        .collect();
    let hashes: Vec<u8> = entries.iter().flat_map(|(_, hash, _)| *hash).collect();
    let rows: Vec<u8> = entries
        .iter()
        .flat_map(|(_, _, row)| row.iter().flat_map(|v| v.to_le_bytes()))
        .collect();
    let encode = |e: safetensors::SafeTensorError| CacheError::Encode(e.to_string());
    let count = entries.len();
    let views = vec![
        (
            TICKETS,
            TensorView::new(Dtype::I64, vec![count], &ids).map_err(encode)?,
        ),
        (
            TEXT_HASHES,
            TensorView::new(Dtype::U8, vec![count, 32], &hashes).map_err(encode)?,
        ),
        (
            EMBEDDINGS,
            TensorView::new(Dtype::F32, vec![count, spec.dim], &rows).map_err(encode)?,
        ),
    ];
    let metadata = HashMap::from([
        (MAX_TOKENS_KEY.to_string(), spec.max_tokens.to_string()),
        (WINDOWS_KEY.to_string(), spec.windows.to_string()),
        ("encoder".to_string(), spec.repo.clone()),
        ("revision".to_string(), spec.revision.clone()),
    ]);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(encode)?;
    let write = |source| CacheError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(write)?;
    }
    // Written beside and renamed: a run killed mid-write leaves the old cache intact.
    let staging = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&staging, bytes).map_err(write)?;
    std::fs::rename(&staging, path).map_err(write)
}

/// How the embeddings of a run were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EmbeddingReport {
    pub computed: usize,
    pub cached: usize,
    pub seconds: f64,
}

/// The embedding of every example, by ticket, computing only what the cache lacks.
pub fn embed_examples(
    encoder: &Encoder,
    examples: &[&Example],
    cache_file: &Path,
    progress: impl FnMut(usize, usize) + Send,
) -> Result<(HashMap<TicketId, Vec<f32>>, EmbeddingReport), TrainEncoderHeadError> {
    let started = std::time::Instant::now();
    let mut cached = read_cache(cache_file, encoder.spec());
    let hashes: Vec<[u8; 32]> = examples.iter().map(|e| text_hash(&e.text)).collect();
    let missing: Vec<usize> = (0..examples.len())
        .filter(|&i| {
            cached
                .get(&examples[i].ticket)
                .is_none_or(|(hash, _)| hash != &hashes[i])
        })
        .collect();
    let texts: Vec<&str> = missing.iter().map(|&i| examples[i].text.as_str()).collect();
    let total = texts.len();
    let mut progress = progress;
    let computed = encoder.embed_with_progress(&texts, |done| progress(done, total))?;
    for (&i, embedding) in missing.iter().zip(computed) {
        cached.insert(examples[i].ticket, (hashes[i], embedding));
    }
    let mut entries: Vec<(TicketId, [u8; 32], &[f32])> = Vec::with_capacity(examples.len());
    for (example, hash) in examples.iter().zip(&hashes) {
        if let Some((_, row)) = cached.get(&example.ticket) {
            entries.push((example.ticket, *hash, row));
        }
    }
    entries.sort_by_key(|(id, _, _)| *id);
    entries.dedup_by_key(|(id, _, _)| *id);
    if !missing.is_empty() {
        // Only this project's current examples are kept: deleted tickets leave the cache.
        write_cache(cache_file, encoder.spec(), &entries)?;
    }
    let report = EmbeddingReport {
        computed: missing.len(),
        cached: examples.len() - missing.len(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let embeddings = entries
        .into_iter()
        .map(|(id, _, row)| (id, row.to_vec()))
        .collect();
    Ok((embeddings, report))
}

/// Why an `encoder-head` run failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainEncoderHeadError {
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("training the head failed: {0}")]
    Compute(#[from] candle_core::Error),
    #[error("stopped before training finished")]
    Stopped,
}

/// A fitted head and the epoch at which validation loss was lowest.
pub struct FittedHead {
    pub head: LinearHead,
    pub best_epoch: usize,
    /// The caller asked to stop before training ended: the head is not finished.
    pub stopped: bool,
}

/// Inputs and targets as tensors.
struct Data {
    inputs: Tensor,
    targets: Tensor,
    len: usize,
}

fn to_tensors(
    examples: &[&Example],
    embeddings: &HashMap<TicketId, Vec<f32>>,
    dim: usize,
    outputs: usize,
    heads: &Heads,
    device: &Device,
) -> candle_core::Result<Data> {
    let mut inputs = Vec::with_capacity(examples.len() * dim);
    for example in examples {
        match embeddings.get(&example.ticket) {
            Some(row) => inputs.extend_from_slice(row),
            None => candle_core::bail!("ticket {} has no embedding", example.ticket),
        }
    }
    let len = examples.len();
    let inputs = Tensor::from_vec(inputs, (len, dim), device)?;
    let targets = match heads.whole() {
        Some(LabelMode::Single) => {
            let classes: Vec<u32> = examples
                .iter()
                .map(|e| e.targets.first().copied().unwrap_or(0) as u32)
                .collect();
            Tensor::from_vec(classes, len, device)?
        }
        // Several tags, or one head per group: which tags each ticket has.
        _ => {
            let mut hot = vec![0f32; len * outputs];
            for (row, example) in examples.iter().enumerate() {
                for &tag in &example.targets {
                    hot[row * outputs + tag] = 1.0;
                }
            }
            Tensor::from_vec(hot, (len, outputs), device)?
        }
    };
    Ok(Data {
        inputs,
        targets,
        len,
    })
}

/// Mean loss per ticket: softmax cross-entropy, or the sum over tags of the sigmoid
/// cross-entropy (written as `max(x,0) − x·y + ln(1 + e^−|x|)`, which does not overflow);
/// with one head per group, the sum of each head's (a single-choice head's cross-entropy
/// counts only for tickets with a tag of its group: `targets` is then multi-hot).
pub(crate) fn data_loss(
    logits: &Tensor,
    targets: &Tensor,
    heads: &Heads,
) -> candle_core::Result<Tensor> {
    let sigmoid_loss = |logits: &Tensor, targets: &Tensor| {
        let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
        ((logits.relu()? - (logits * targets)?)? + softplus)?.sum_all()
    };
    let (rows, _) = logits.dims2()?;
    match heads {
        Heads::Whole(LabelMode::Single) => candle_nn::loss::cross_entropy(logits, targets),
        Heads::Whole(LabelMode::Multi) => sigmoid_loss(logits, targets)? / rows as f64,
        Heads::Groups(groups) => {
            let mut total = Tensor::zeros((), logits.dtype(), logits.device())?;
            for head in groups.iter() {
                let part = logits.narrow(1, head.start, head.len)?;
                let truth = targets.narrow(1, head.start, head.len)?;
                let loss = match head.choice {
                    // −Σ y·log softmax: a row without a tag of the group is all zeros and
                    // adds nothing.
                    GroupChoice::Single => candle_nn::ops::log_softmax(&part, 1)?
                        .mul(&truth)?
                        .sum_all()?
                        .neg()?,
                    GroupChoice::Multi => sigmoid_loss(&part, &truth)?,
                };
                total = (total + loss)?;
            }
            total / rows as f64
        }
    }
}

/// Fits a linear head on embeddings with mini-batch Adam; with validation tickets, keeps
/// the epoch with the lowest validation loss and stops after `patience` epochs without one.
#[allow(clippy::too_many_arguments)]
pub fn fit_head(
    heads: &Heads,
    outputs: usize,
    dim: usize,
    embeddings: &HashMap<TicketId, Vec<f32>>,
    train: &[&Example],
    validation: &[&Example],
    params: &EncoderHeadParams,
    epochs: usize,
    mut on_epoch: impl FnMut(EpochReport),
) -> candle_core::Result<FittedHead> {
    fit_head_until(
        heads,
        outputs,
        dim,
        embeddings,
        train,
        validation,
        params,
        epochs,
        |epoch| {
            on_epoch(epoch);
            ControlFlow::Continue(())
        },
    )
}

/// `fit_head` whose `on_epoch` may say stop: training ends after that epoch with `stopped`.
#[allow(clippy::too_many_arguments)] // the same arguments as `fit_head`, plus the callback
pub fn fit_head_until(
    heads: &Heads,
    outputs: usize,
    dim: usize,
    embeddings: &HashMap<TicketId, Vec<f32>>,
    train: &[&Example],
    validation: &[&Example],
    params: &EncoderHeadParams,
    epochs: usize,
    mut on_epoch: impl FnMut(EpochReport) -> ControlFlow<()>,
) -> candle_core::Result<FittedHead> {
    let device = Device::Cpu;
    let train_data = to_tensors(train, embeddings, dim, outputs, heads, &device)?;
    let validation_data = to_tensors(validation, embeddings, dim, outputs, heads, &device)?;
    // Zero weights: the loss is convex, and every run starts from the same point.
    let weight = Var::zeros((dim, outputs), DType::F32, &device)?;
    let bias = Var::zeros(outputs, DType::F32, &device)?;
    let mut optimizer = AdamW::new(
        vec![weight.clone(), bias.clone()],
        ParamsAdamW {
            lr: params.learning_rate,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?;
    let logits_of = |inputs: &Tensor| {
        inputs
            .matmul(weight.as_tensor())?
            .broadcast_add(bias.as_tensor())
    };
    let mut order: Vec<u32> = (0..train_data.len as u32).collect();
    let mut shuffler = Random(params.seed);
    let mut best: Option<(f64, usize, Tensor, Tensor)> = None;
    let mut epochs_without_gain = 0;
    let mut stopped = false;
    let minibatch = params.minibatch.max(1);
    for epoch in 1..=epochs {
        shuffler.shuffle(&mut order);
        let mut train_loss = 0.0;
        for chunk in order.chunks(minibatch) {
            let index = Tensor::new(chunk, &device)?;
            let inputs = train_data.inputs.index_select(&index, 0)?;
            let targets = train_data.targets.index_select(&index, 0)?;
            let loss = data_loss(&logits_of(&inputs)?, &targets, heads)?;
            train_loss += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
            let penalty = (weight.as_tensor().sqr()?.sum_all()? * (0.5 * params.l2))?;
            optimizer.backward_step(&(loss + penalty)?)?;
        }
        let validation_loss = if validation_data.len == 0 {
            0.0
        } else {
            f64::from(
                data_loss(
                    &logits_of(&validation_data.inputs)?,
                    &validation_data.targets,
                    heads,
                )?
                .to_scalar::<f32>()?,
            )
        };
        let go_on = on_epoch(EpochReport {
            epoch,
            epochs,
            train_loss: train_loss / train_data.len.max(1) as f64,
            validation_loss,
        });
        if go_on.is_break() {
            stopped = true;
            break;
        }
        if validation_data.len == 0 {
            continue;
        }
        match &best {
            Some((loss, _, _, _)) if validation_loss >= *loss => {
                epochs_without_gain += 1;
                if epochs_without_gain >= params.patience {
                    break;
                }
            }
            _ => {
                best = Some((
                    validation_loss,
                    epoch,
                    weight.as_tensor().copy()?,
                    bias.as_tensor().copy()?,
                ));
                epochs_without_gain = 0;
            }
        }
    }
    let (best_epoch, weight, bias) = match best {
        Some((_, epoch, weight, bias)) => (epoch, weight, bias),
        None => (epochs, weight.as_tensor().copy()?, bias.as_tensor().copy()?),
    };
    Ok(FittedHead {
        head: LinearHead {
            dim,
            outputs,
            // Stored one row per tag, as the model applies it.
            weight: weight.t()?.contiguous()?.flatten_all()?.to_vec1()?,
            bias: bias.to_vec1()?,
        },
        best_epoch,
        stopped,
    })
}

/// Scores of examples whose embeddings are known, without running the encoder again.
pub fn head_logits(
    head: &LinearHead,
    examples: &[Example],
    embeddings: &HashMap<TicketId, Vec<f32>>,
) -> Vec<Vec<f32>> {
    examples
        .iter()
        .map(|e| match embeddings.get(&e.ticket) {
            Some(row) => head.logits(row),
            None => vec![f32::NAN; head.outputs],
        })
        .collect()
}

/// Scores and out-of-distribution signals of examples whose embeddings are known.
pub fn head_scores(
    head: &LinearHead,
    centroids: &[f32],
    heads: &Heads,
    examples: &[Example],
    embeddings: &HashMap<TicketId, Vec<f32>>,
) -> Vec<Scored> {
    examples
        .iter()
        .map(|e| match embeddings.get(&e.ticket) {
            Some(row) => Scored::encoder(head.logits(row), row, centroids, heads),
            None => Scored {
                logits: vec![f32::NAN; head.outputs],
                signals: vec![f32::NAN; if centroids.is_empty() { 1 } else { 2 }],
            },
        })
        .collect()
}

/// Tag centroids of the examples' embeddings.
fn tag_centroids(
    examples: &[&Example],
    embeddings: &HashMap<TicketId, Vec<f32>>,
    outputs: usize,
    dim: usize,
) -> Vec<f32> {
    let (rows, targets): (Vec<&[f32]>, Vec<&[usize]>) = examples
        .iter()
        .filter_map(|e| Some((embeddings.get(&e.ticket)?.as_slice(), e.targets.as_slice())))
        .unzip();
    inference::out_of_distribution::centroids(&rows, &targets, outputs, dim)
}

/// An `encoder-head` training run's model-specific part: embed every ticket (cached), fit
/// the head with early stopping, score the held-out tickets (with that head, or out of
/// fold with heads fitted without each fold), then refit on all labelled tickets for the
/// best number of epochs.
pub(crate) fn fit(
    data: &TrainingData,
    plan: HeldOutScores,
    held_out: &[Example],
    params: &EncoderHeadParams,
    models_dir: &Path,
    project: ProjectId,
    progress: &mut (dyn FnMut(Progress) -> ControlFlow<()> + Send),
) -> Result<Fitted, TrainEncoderHeadError> {
    let encoder = Arc::new(Encoder::load(
        &params.cache(),
        &params.encoder,
        &params.encoder_options(),
    )?);
    let spec = encoder.spec().clone();
    let everything = data.all();
    let (embeddings, report) = embed_examples(
        &encoder,
        &everything,
        &cache_path(models_dir, &spec, project),
        // Embedding is not interrupted half way: the cache file is written when it ends.
        |done, total| {
            let _ = progress(Progress::Embedding { done, total });
        },
    )?;
    fit_on_embeddings(
        data,
        plan,
        held_out,
        params,
        encoder,
        &embeddings,
        report,
        progress,
    )
}

/// The head part of an `encoder-head` run once every ticket of `data` has its embedding by
/// `encoder`: fit the head with early stopping, score the held-out tickets, refit, and
/// score the test tickets. `setfit` fits its head here too, on its tuned encoder.
#[allow(clippy::too_many_arguments)] // the data, the settings, the encoder and its output
pub(crate) fn fit_on_embeddings(
    data: &TrainingData,
    plan: HeldOutScores,
    held_out: &[Example],
    params: &EncoderHeadParams,
    encoder: Arc<Encoder>,
    embeddings: &HashMap<TicketId, Vec<f32>>,
    report: EmbeddingReport,
    progress: &mut (dyn FnMut(Progress) -> ControlFlow<()> + Send),
) -> Result<Fitted, TrainEncoderHeadError> {
    let spec = encoder.spec().clone();
    if progress(Progress::Embedded(report)).is_break() {
        return Err(TrainEncoderHeadError::Stopped);
    }
    let outputs = data.tags.len();
    let train: Vec<&Example> = data.train.iter().collect();
    let validation: Vec<&Example> = data.validation.iter().collect();
    // The head's matrix multiplies run on the encoder's threads too.
    let (head, best_epoch, calibration) = encoder
        .install(|| {
            let first = fit_head_until(
                &data.heads,
                outputs,
                spec.dim,
                embeddings,
                &train,
                &validation,
                params,
                params.epochs,
                |epoch| progress(Progress::Epoch(epoch)),
            )?;
            if first.stopped {
                return Ok(None);
            }
            let calibration = match plan {
                HeldOutScores::OutOfFold { folds, .. } => {
                    let mut scores: Vec<Option<Scored>> = vec![None; held_out.len()];
                    for fold in 0..folds {
                        let _ = progress(Progress::Refitting {
                            epochs: first.best_epoch,
                        });
                        let (inside, outside): (Vec<usize>, Vec<usize>) = (0..held_out.len())
                            .partition(|&i| {
                                crate::examples::fold_of(held_out[i].ticket, folds) == fold
                            });
                        let outside: Vec<&Example> =
                            outside.iter().map(|&i| &held_out[i]).collect();
                        let fold_head = fit_head(
                            &data.heads,
                            outputs,
                            spec.dim,
                            embeddings,
                            &outside,
                            &[],
                            params,
                            first.best_epoch,
                            |_| {},
                        )?
                        .head;
                        let centroids = tag_centroids(&outside, embeddings, outputs, spec.dim);
                        for i in inside {
                            let scored = head_scores(
                                &fold_head,
                                &centroids,
                                &data.heads,
                                std::slice::from_ref(&held_out[i]),
                                embeddings,
                            );
                            scores[i] = scored.into_iter().next();
                        }
                    }
                    scores.into_iter().flatten().collect()
                }
                HeldOutScores::Validation { .. } | HeldOutScores::Training { .. } => {
                    let centroids = tag_centroids(&train, embeddings, outputs, spec.dim);
                    head_scores(&first.head, &centroids, &data.heads, held_out, embeddings)
                }
            };
            let head = if params.refit && !validation.is_empty() {
                let _ = progress(Progress::Refitting {
                    epochs: first.best_epoch,
                });
                let all: Vec<&Example> = train.iter().chain(&validation).copied().collect();
                fit_head(
                    &data.heads,
                    outputs,
                    spec.dim,
                    embeddings,
                    &all,
                    &[],
                    params,
                    first.best_epoch,
                    |_| {},
                )?
                .head
            } else {
                first.head
            };
            Ok::<_, candle_core::Error>(Some((head, first.best_epoch, calibration)))
        })?
        .ok_or(TrainEncoderHeadError::Stopped)?;
    // The final centroids come from every ticket the final head learned from.
    let learned: Vec<&Example> = if params.refit && !validation.is_empty() {
        train.iter().chain(&validation).copied().collect()
    } else {
        train.clone()
    };
    let centroids = tag_centroids(&learned, embeddings, outputs, spec.dim);
    let test_scores = head_scores(&head, &centroids, &data.heads, &data.test, embeddings);
    let mut recorded = serde_json::json!(params);
    recorded["best_epoch"] = best_epoch.into();
    recorded["embedding"] = serde_json::json!(report);
    Ok(Fitted {
        calibration,
        test_scores: Some(test_scores),
        scorer: Scorer::EncoderHead(EncoderHeadModel {
            encoder,
            head,
            centroids,
        }),
        params: recorded,
        ngram: None,
        encoder: Some(spec),
        selection: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;
    use crate::examples::load_training_data;
    use crate::run::{TrainRequest, evaluate_model, train};
    use datasets::split::StratifiedSplitter;
    use datasets::store::prelude::*;
    use datasets::store::{ImportRow, ImportWriter};
    use datasets::test_db::TestDatabase;
    use datasets::{AnyStore, NewTicket, Project, ProjectName, Store, TagId};
    use inference::encoder::testing::{TINY_REPO, TinyBert};
    use inference::{ModelKind, TaggingModel};

    /// A project of synthetic tickets; single-label projects keep each ticket's first tag.
    async fn demo_project(store: &AnyStore, mode: LabelMode, tickets: usize) -> Project {
        let name = ProjectName::parse("Heads").unwrap();
        let mut writer = store.begin_import(&name, Some(mode), "test").await.unwrap();
        for tag in datasets::demo::default_taxonomy() {
            writer.create_tag(&tag.name).await.unwrap();
        }
        let mut splitter = StratifiedSplitter::new(1, 0.2);
        let rows: Vec<ImportRow> = datasets::demo::generate(tickets, 7, chrono::Utc::now())
            .into_iter()
            .map(|ticket| {
                let mut tags: Vec<TagId> = ticket
                    .tags
                    .iter()
                    .map(|t| writer.tags()[&t.folded()])
                    .collect();
                if mode == LabelMode::Single {
                    tags.truncate(1);
                }
                ImportRow {
                    verdict: None,
                    ticket: NewTicket {
                        source: "demo".into(),
                        split: splitter
                            .assign(ticket.tags.first().map(|t| t.as_str()), &ticket.external_id),
                        external_id: ticket.external_id,
                        subject: ticket.subject,
                        body: ticket.body,
                        metadata: ticket.metadata,
                        created_at: Some(ticket.created_at),
                    },
                    tags,
                }
            })
            .collect();
        writer.write(rows).await.unwrap();
        writer.commit().await.unwrap();
        store.project_by_name(&name).await.unwrap().unwrap()
    }

    fn tiny_request(hub: &Path) -> TrainRequest {
        TrainRequest {
            kind: ModelKind::EncoderHead,
            encoder_head: EncoderHeadParams {
                encoder: TINY_REPO.into(),
                hub_cache: Some(hub.to_path_buf()),
                threads: 1,
                ..EncoderHeadParams::default()
            },
            ..TrainRequest::default()
        }
    }

    fn model_encoder(model: &TaggingModel) -> Arc<Encoder> {
        match &model.scorer {
            Scorer::EncoderHead(scorer) => scorer.encoder.clone(),
            Scorer::Ngram(_) => panic!("not an encoder model"),
        }
    }

    fn embedded(progress: &[Progress]) -> EmbeddingReport {
        progress
            .iter()
            .find_map(|p| match p {
                Progress::Embedded(report) => Some(*report),
                _ => None,
            })
            .unwrap()
    }

    #[tokio::test]
    async fn an_encoder_head_trains_caches_embeddings_and_reloads_to_the_same_scores() {
        let hub = tempfile::tempdir().unwrap();
        TinyBert::default().write(hub.path(), TINY_REPO).unwrap();
        let database = TestDatabase::sqlite().unwrap();
        let store = database.store().await.unwrap();
        let project = demo_project(&store, LabelMode::Single, 400).await;
        let models = tempfile::tempdir().unwrap();
        let request = tiny_request(hub.path());

        let (sender, receiver) = std::sync::mpsc::channel();
        let outcome = train(&store, &project, &request, models.path(), move |p| {
            let _ = sender.send(p);
        })
        .await
        .unwrap();
        let progress: Vec<Progress> = receiver.try_iter().collect();
        let data = load_training_data(&store, &project).await.unwrap();
        let examples = data.train.len() + data.validation.len() + data.test.len();
        let first = embedded(&progress);
        assert_eq!((first.computed, first.cached), (examples, 0));
        assert!(progress.iter().any(|p| matches!(p, Progress::Epoch(_))));
        // Ten tags, a random 32-wide encoder: better than chance is what it can promise.
        assert!(
            outcome.evaluation.accuracy > 0.2,
            "accuracy {}",
            outcome.evaluation.accuracy
        );

        // The saved model names its encoder and loads it back from the cache.
        let version = &outcome.version;
        assert_eq!(version.kind, ModelKind::EncoderHead);
        let loaded = TaggingModel::load_with(
            Path::new(&version.artifact_path),
            &version.files,
            &HubCache::at(hub.path()),
            &EncoderOptions {
                threads: 1,
                ..EncoderOptions::default()
            },
        )
        .unwrap();
        let spec = loaded.card.encoder.clone().unwrap();
        assert_eq!(spec.repo, TINY_REPO);
        assert_eq!(spec.dim, 32);
        assert_eq!(spec.files.len(), 3);
        let cache_file = cache_path(models.path(), &spec, project.id);
        assert!(cache_file.is_file(), "{}", cache_file.display());

        // Evaluating again reads every embedding from the cache training filled, and gives
        // the recorded figures; the cache keeps every ticket it had.
        let taxonomy = store.list_tags(project.id).await.unwrap();
        let (again, _, report) =
            crate::run::evaluate_model_cached(&loaded, &data, &taxonomy, Some(&cache_file))
                .unwrap();
        let report = report.expect("an encoder-head model reads the cache");
        assert_eq!((report.computed, report.cached), (0, examples));
        assert_eq!(again.accuracy, outcome.evaluation.accuracy);
        let (_, rewritten) = embed_examples(
            &model_encoder(&loaded),
            &data.train.iter().collect::<Vec<_>>(),
            &cache_file,
            |_, _| {},
        )
        .unwrap();
        assert_eq!(
            rewritten.computed, 0,
            "the training tickets are still cached"
        );

        // Scores from a fresh embedding match scores from the cached embeddings, and the
        // reloaded model evaluates to the recorded figures.
        let Scorer::EncoderHead(model) = &loaded.scorer else {
            panic!("not an encoder-head model");
        };
        let test: Vec<&Example> = data.test.iter().collect();
        let (cached, _) = embed_examples(&model.encoder, &test, &cache_file, |_, _| {}).unwrap();
        let expected = head_logits(&model.head, &data.test, &cached);
        let texts: Vec<&str> = data.test.iter().map(|e| e.text.as_str()).collect();
        let fresh = loaded.logits_batch(&texts).unwrap();
        for (a, b) in fresh.iter().zip(&expected) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-4, "{x} vs {y}");
            }
        }
        assert_eq!(loaded.logits(texts[0]), fresh[0]);
        let taxonomy = store.list_tags(project.id).await.unwrap();
        let (again, _) = evaluate_model(&loaded, &data.test, &taxonomy, &data.groups).unwrap();
        // The recorded figure came from candle's head on cached embeddings, this one from
        // the served head on fresh ones (logits within 1e-4 above): a prediction may flip
        // only where two logits tie that closely, so within one test ticket.
        assert!(
            (again.accuracy - outcome.evaluation.accuracy).abs()
                <= 1.0 / data.test.len() as f64 + 1e-9,
            "{} vs {}",
            again.accuracy,
            outcome.evaluation.accuracy
        );

        // A second run embeds nothing new.
        let (sender, receiver) = std::sync::mpsc::channel();
        train(&store, &project, &request, models.path(), move |p| {
            let _ = sender.send(p);
        })
        .await
        .unwrap();
        let second = embedded(&receiver.try_iter().collect::<Vec<_>>());
        assert_eq!((second.computed, second.cached), (0, examples));
    }

    #[tokio::test]
    async fn a_missing_encoder_fails_the_run_with_the_way_to_get_it() {
        let hub = tempfile::tempdir().unwrap();
        let database = TestDatabase::sqlite().unwrap();
        let store = database.store().await.unwrap();
        let project = demo_project(&store, LabelMode::Single, 60).await;
        let models = tempfile::tempdir().unwrap();
        let error = train(
            &store,
            &project,
            &tiny_request(hub.path()),
            models.path(),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains("not in the Hugging Face cache"),
            "{error}"
        );
    }

    fn example(ticket: i64, text: &str, targets: Vec<usize>) -> Example {
        Example {
            ticket: TicketId(ticket),
            text: text.into(),
            targets,
        }
    }

    #[test]
    fn only_new_or_edited_tickets_are_embedded_again() {
        let hub = tempfile::tempdir().unwrap();
        TinyBert::default().write(hub.path(), TINY_REPO).unwrap();
        let encoder = Encoder::load(
            &HubCache::at(hub.path()),
            TINY_REPO,
            &EncoderOptions::default(),
        )
        .unwrap();
        let file = hub.path().join("cache").join("project-1.safetensors");
        let mut examples = vec![
            example(1, "refund please", vec![0]),
            example(2, "login fails", vec![1]),
            example(3, "app crashes", vec![1]),
        ];
        fn refs(examples: &[Example]) -> Vec<&Example> {
            examples.iter().collect()
        }
        let (first, report) = embed_examples(&encoder, &refs(&examples), &file, |_, _| {}).unwrap();
        assert_eq!((report.computed, report.cached), (3, 0));
        examples[1].text = "login fails again".into();
        examples.push(example(4, "dark mode", vec![0]));
        let (second, report) =
            embed_examples(&encoder, &refs(&examples), &file, |_, _| {}).unwrap();
        assert_eq!((report.computed, report.cached), (2, 2));
        assert_eq!(first[&TicketId(1)], second[&TicketId(1)]);
        assert_ne!(first[&TicketId(2)], second[&TicketId(2)]);
        // A different token budget makes the whole cache stale.
        let spec = EncoderSpec {
            max_tokens: 16,
            ..encoder.spec().clone()
        };
        assert!(read_cache(&file, &spec).is_empty());
        // So do other windows.
        let spec = EncoderSpec {
            windows: encoder.spec().windows + 1,
            ..encoder.spec().clone()
        };
        assert!(read_cache(&file, &spec).is_empty());
        assert_eq!(read_cache(&file, encoder.spec()).len(), 4);
    }

    #[test]
    fn a_multi_label_head_learns_separable_tags() {
        // Tag 0 when the first coordinate is positive, tag 1 when the second is.
        let mut embeddings = HashMap::new();
        let mut examples = Vec::new();
        for i in 0..200i64 {
            let (a, b) = (i % 2 == 0, (i / 2) % 2 == 0);
            let row = vec![if a { 1.0 } else { -1.0 }, if b { 1.0 } else { -1.0 }, 0.1];
            embeddings.insert(TicketId(i), row);
            let targets = [(a, 0), (b, 1)]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, tag)| *tag)
                .collect();
            examples.push(example(i, "", targets));
        }
        let refs: Vec<&Example> = examples.iter().collect();
        let params = EncoderHeadParams {
            learning_rate: 0.1,
            minibatch: 32,
            ..EncoderHeadParams::default()
        };
        let fitted = fit_head(
            &Heads::MULTI,
            2,
            3,
            &embeddings,
            &refs[..160],
            &refs[160..],
            &params,
            50,
            |_| {},
        )
        .unwrap();
        let logits = head_logits(&fitted.head, &examples, &embeddings);
        for (example, scores) in examples.iter().zip(&logits) {
            let predicted: Vec<usize> = (0..2).filter(|&t| scores[t] > 0.0).collect();
            assert_eq!(predicted, example.targets);
        }
    }

    #[test]
    fn a_grouped_head_learns_a_softmax_per_single_choice_group_beside_sigmoids() {
        // Outputs 0..3: a single-choice group (which third of the circle the point is in);
        // outputs 3..5: a multi-choice group (x > 0, y > 0). A third of the tickets have no
        // tag of the single-choice group and must not pull its softmax anywhere.
        use inference::heads::Head;
        let heads = Heads::grouped(
            &[
                Head {
                    name: "Type".into(),
                    choice: GroupChoice::Single,
                    start: 0,
                    len: 3,
                },
                Head {
                    name: "Topics".into(),
                    choice: GroupChoice::Multi,
                    start: 3,
                    len: 2,
                },
            ],
            5,
        )
        .unwrap();
        let mut embeddings = HashMap::new();
        let mut examples = Vec::new();
        for i in 0..300i64 {
            let angle = (i as f32) * 2.399; // golden angle: points all around the circle
            let (x, y) = (angle.cos(), angle.sin());
            embeddings.insert(TicketId(i), vec![x, y, 1.0]);
            let third = (((y.atan2(x) + std::f32::consts::PI) / (2.0 * std::f32::consts::PI) * 3.0)
                as usize)
                .min(2);
            let mut targets = Vec::new();
            if i % 3 != 0 {
                targets.push(third);
            }
            if x > 0.0 {
                targets.push(3);
            }
            if y > 0.0 {
                targets.push(4);
            }
            examples.push(example(i, "", targets));
        }
        let refs: Vec<&Example> = examples.iter().collect();
        let params = EncoderHeadParams {
            learning_rate: 0.1,
            minibatch: 32,
            ..EncoderHeadParams::default()
        };
        let fitted = fit_head(&heads, 5, 3, &embeddings, &refs, &[], &params, 200, |_| {}).unwrap();
        let logits = head_logits(&fitted.head, &examples, &embeddings);
        let mut right = 0;
        let mut judged = 0;
        for (example, scores) in examples.iter().zip(&logits) {
            let p = heads.probabilities(scores, 1.0);
            assert!(
                (p[..3].iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "one softmax: {p:?}"
            );
            let topics: Vec<usize> = (3..5).filter(|&t| p[t] >= 0.5).collect();
            let truth: Vec<usize> = example
                .targets
                .iter()
                .copied()
                .filter(|&t| t >= 3)
                .collect();
            assert_eq!(topics, truth, "the multi-choice group's sigmoids");
            if let Some(&third) = example.targets.first().filter(|&&t| t < 3) {
                judged += 1;
                let best = (0..3).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap();
                right += usize::from(best == third);
            }
        }
        // Thirds of a circle are not linearly separable at their borders everywhere, but
        // nearly: far above a third right by chance.
        assert!(right * 10 >= judged * 8, "{right} of {judged}");
    }
}
