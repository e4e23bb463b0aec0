//! Training the `encoder-head` model: every ticket is embedded once by a frozen sentence
//! encoder (cached on disk per encoder revision and project, keyed by ticket id and the
//! SHA-256 of its text, so a second run embeds only new or edited tickets), then a linear
//! head (softmax or per-tag sigmoid, L2) is fitted with mini-batch Adam in seconds, stopping
//! early on validation loss.

use crate::examples::Example;
use crate::ngram::EpochReport;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use datasets::{LabelMode, ProjectId, TicketId};
use inference::encoder::head::LinearHead;
use inference::encoder::hub::{DEFAULT_ENCODER_REPO, HubCache};
use inference::encoder::{
    DEFAULT_BATCH_SIZE, DEFAULT_THREADS, Encoder, EncoderError, EncoderOptions, EncoderSpec,
};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Hyper-parameters of an `encoder-head` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderHeadParams {
    /// Hugging Face id of the sentence encoder, read from the local cache.
    pub encoder: String,
    /// Token budget per text, special tokens included.
    pub max_tokens: usize,
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

impl Default for EncoderHeadParams {
    fn default() -> Self {
        Self {
            encoder: DEFAULT_ENCODER_REPO.to_string(),
            max_tokens: inference::encoder::tokenize::DEFAULT_MAX_TOKENS,
            batch_size: DEFAULT_BATCH_SIZE,
            threads: DEFAULT_THREADS,
            epochs: 100,
            learning_rate: 1e-2,
            l2: 1e-4,
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
    // The token budget changes what a long text embeds to.
    if max_tokens != &spec.max_tokens.to_string() {
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
        (TICKETS, TensorView::new(Dtype::I64, vec![count], &ids).map_err(encode)?),
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
}

/// A fitted head and the epoch at which validation loss was lowest.
pub struct FittedHead {
    pub head: LinearHead,
    pub best_epoch: usize,
}

/// A small deterministic generator for shuffling (SplitMix64).
struct Shuffler(u64);

impl Shuffler {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
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
    mode: LabelMode,
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
    let targets = match mode {
        LabelMode::Single => {
            let classes: Vec<u32> = examples
                .iter()
                .map(|e| e.targets.first().copied().unwrap_or(0) as u32)
                .collect();
            Tensor::from_vec(classes, len, device)?
        }
        LabelMode::Multi => {
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
/// cross-entropy (written as `max(x,0) − x·y + ln(1 + e^−|x|)`, which does not overflow).
fn data_loss(logits: &Tensor, targets: &Tensor, mode: LabelMode) -> candle_core::Result<Tensor> {
    match mode {
        LabelMode::Single => candle_nn::loss::cross_entropy(logits, targets),
        LabelMode::Multi => {
            let (rows, _) = logits.dims2()?;
            let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
            let loss = ((logits.relu()? - (logits * targets)?)? + softplus)?;
            loss.sum_all()? / rows as f64
        }
    }
}

/// Fits a linear head on embeddings with mini-batch Adam; with validation tickets, keeps
/// the epoch with the lowest validation loss and stops after `patience` epochs without one.
#[allow(clippy::too_many_arguments)]
pub fn fit_head(
    mode: LabelMode,
    outputs: usize,
    dim: usize,
    embeddings: &HashMap<TicketId, Vec<f32>>,
    train: &[&Example],
    validation: &[&Example],
    params: &EncoderHeadParams,
    epochs: usize,
    mut on_epoch: impl FnMut(EpochReport),
) -> candle_core::Result<FittedHead> {
    let device = Device::Cpu;
    let train_data = to_tensors(train, embeddings, dim, outputs, mode, &device)?;
    let validation_data = to_tensors(validation, embeddings, dim, outputs, mode, &device)?;
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
    let logits_of = |inputs: &Tensor| inputs.matmul(weight.as_tensor())?.broadcast_add(bias.as_tensor());
    let mut order: Vec<u32> = (0..train_data.len as u32).collect();
    let mut shuffler = Shuffler(params.seed);
    let mut best: Option<(f64, usize, Tensor, Tensor)> = None;
    let mut epochs_without_gain = 0;
    let minibatch = params.minibatch.max(1);
    for epoch in 1..=epochs {
        shuffler.shuffle(&mut order);
        let mut train_loss = 0.0;
        for chunk in order.chunks(minibatch) {
            let index = Tensor::new(chunk, &device)?;
            let inputs = train_data.inputs.index_select(&index, 0)?;
            let targets = train_data.targets.index_select(&index, 0)?;
            let loss = data_loss(&logits_of(&inputs)?, &targets, mode)?;
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
                    mode,
                )?
                .to_scalar::<f32>()?,
            )
        };
        on_epoch(EpochReport {
            epoch,
            epochs,
            train_loss: train_loss / train_data.len.max(1) as f64,
            validation_loss,
        });
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
