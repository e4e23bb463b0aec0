//! A pretrained sentence encoder (a BERT-family model such as all-MiniLM-L6-v2) loaded from
//! the local Hugging Face cache (downloaded into it on first use unless offline) and run on
//! candle: text → word pieces → token states →
//! mean-pooled, unit-length sentence embeddings. `encoder-head` models put a linear head on
//! these; `finetune` will train the encoder itself, which is why it is our own code.

pub mod bert;
pub mod head;
pub mod hub;
mod packed;
mod panel_matmul;
pub mod pull;
pub mod tokenize;

#[cfg(feature = "testing")]
pub mod fake_hub;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use crate::artifact::sha256_hex;
use bert::{Bert, BertConfig, Kernels, l2_normalize, mean_pool};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use hub::{HubCache, Snapshot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokenize::{Batch, DEFAULT_MAX_TOKENS, TextTokenizer, Tokens};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Texts per forward pass when embedding many: enough to keep the matrix multiplies
/// efficient, few enough that a batch of 128-token texts stays small in memory.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Threads for the encoder's matrix multiplies. Measured on the 2-core machine this
/// project targets (BANKING77 train texts, sorted batches of 32): 2 threads embed ~1.5×
/// faster than 1 when the machine is otherwise idle, see docs/models.md.
pub const DEFAULT_THREADS: usize = 2;

/// Why an encoder could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error(
        "the encoder {repo} is not in the Hugging Face cache (looked for {}); download it with `tagger models pull {repo}`, or on a machine without network run that command elsewhere and copy the folder models--{} into this cache (HF_HUB_CACHE, or HF_HOME/hub)",
        .path.display(), .repo.replace('/', "--")
    )]
    NotInCache { repo: String, path: PathBuf },
    #[error(
        "revision {revision} of the encoder {repo} is not in the Hugging Face cache (looked for {}); download it with `tagger models pull {repo} --revision {revision}`, or copy the folder models--{} from a machine that has it",
        .path.display(), .repo.replace('/', "--")
    )]
    RevisionNotCached {
        repo: String,
        revision: String,
        path: PathBuf,
    },
    #[error(
        "{} of the encoder {repo} (revision {revision}) is missing; `tagger models pull {repo} --revision {revision}` fetches it",
        .path.display()
    )]
    MissingFile {
        repo: String,
        revision: String,
        path: PathBuf,
    },
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a usable encoder configuration: {reason}", .path.display())]
    Config { path: PathBuf, reason: String },
    #[error("{} is not a usable tokenizer: {reason}", .path.display())]
    Tokenizer { path: PathBuf, reason: String },
    #[error("{} is corrupt or truncated: {reason}", .path.display())]
    Weights { path: PathBuf, reason: String },
    #[error("the weights in {} do not fit its config.json: {reason}", .path.display())]
    Shape { path: PathBuf, reason: String },
    #[error(
        "encoder file {file} differs from the one the model was trained with (expected SHA-256 {expected}, found {actual})"
    )]
    FileChanged {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{0:?} is not a Hugging Face model id (expected ORG/NAME)")]
    InvalidRepo(String),
    // Boxed: its messages carry several strings, and every encoder result would grow.
    #[error("downloading the encoder failed: {0}")]
    Download(Box<pull::PullError>),
    #[error("cannot start the encoder's threads: {0}")]
    Threads(String),
    #[error("tokenizing a text failed: {0}")]
    Tokenize(String),
    #[error("running the encoder failed: {0}")]
    Compute(#[from] candle_core::Error),
}

impl From<pull::PullError> for EncoderError {
    fn from(error: pull::PullError) -> Self {
        Self::Download(Box::new(error))
    }
}

/// How token states become one vector per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// The average over the text's tokens (sentence-transformers' mean pooling).
    Mean,
}

/// Exactly which encoder produced a model's embeddings: recorded in the card, checked on
/// load, so a model is never served on top of a different encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderSpec {
    /// Hugging Face model id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub repo: String,
    /// The cache snapshot's commit id.
    pub revision: String,
    /// Width of an embedding.
    pub dim: usize,
    pub pooling: Pooling,
    /// Embeddings scaled to unit length after pooling.
    pub normalize: bool,
    /// Token budget per text, special tokens included.
    pub max_tokens: usize,
    /// How many windows of `max_tokens` a long text is read in; their embeddings are
    /// averaged (weighted by their tokens). 1, what versions made before it existed did:
    /// a long text is cut at `max_tokens`.
    #[serde(default = "one_window")]
    pub windows: usize,
    /// File name → SHA-256 of the encoder's files.
    pub files: BTreeMap<String, String>,
}

fn one_window() -> usize {
    1
}

/// Run-time choices that do not change what the encoder computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderOptions {
    /// Token budget per text (only for a newly loaded encoder; a model's card fixes its own).
    pub max_tokens: usize,
    /// Windows of `max_tokens` a long text is read in (as `max_tokens`: a card fixes its own).
    pub windows: usize,
    pub batch_size: usize,
    pub threads: usize,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            windows: 1,
            batch_size: DEFAULT_BATCH_SIZE,
            threads: DEFAULT_THREADS,
        }
    }
}

/// A loaded sentence encoder.
pub struct Encoder {
    spec: EncoderSpec,
    bert: Bert,
    // The same weights for the packed CPU forward pass that `embed` runs; none on a GPU,
    // where `embed` pads batches and runs `bert`'s fused kernels instead.
    packed: Option<packed::PackedBert>,
    tokenizer: TextTokenizer,
    device: Device,
    batch_size: usize,
    // Its own pool, so the encoder's thread count is set here and not by whatever else
    // shares rayon's global pool.
    pool: Arc<rayon::ThreadPool>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("spec", &self.spec)
            .field("threads", &self.pool.current_num_threads())
            .finish_non_exhaustive()
    }
}

/// The device encoders run on: the first GPU when built with `cuda` and one is present.
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda_if_available(0).unwrap_or(Device::Cpu)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Device::Cpu
    }
}

impl Encoder {
    /// The cached revision `refs/main` names of `repo`; downloaded first when it is not
    /// in the cache and the cache has a Hub to download from.
    pub fn load(
        cache: &HubCache,
        repo: &str,
        options: &EncoderOptions,
    ) -> Result<Self, EncoderError> {
        Self::from_snapshot(&cache.encoder_snapshot(repo, None)?, None, options)
    }

    /// Exactly the encoder a card recorded: same revision, same file hashes, same shape.
    pub fn load_spec(
        cache: &HubCache,
        spec: &EncoderSpec,
        options: &EncoderOptions,
    ) -> Result<Self, EncoderError> {
        let snapshot = cache.encoder_snapshot(&spec.repo, Some(&spec.revision))?;
        let options = EncoderOptions {
            max_tokens: spec.max_tokens,
            windows: spec.windows,
            ..*options
        };
        let encoder = Self::from_snapshot(&snapshot, Some(&spec.files), &options)?;
        if encoder.spec.dim != spec.dim || !spec.normalize || spec.pooling != Pooling::Mean {
            return Err(EncoderError::Config {
                path: snapshot.dir.join(CONFIG_FILE),
                reason: format!(
                    "the model expects {}-wide normalised mean-pooled embeddings, the encoder gives {}-wide ones",
                    spec.dim, encoder.spec.dim
                ),
            });
        }
        Ok(encoder)
    }

    /// Loads a snapshot's files, checking them against `expected` hashes when given.
    pub fn from_snapshot(
        snapshot: &Snapshot,
        expected: Option<&BTreeMap<String, String>>,
        options: &EncoderOptions,
    ) -> Result<Self, EncoderError> {
        Self::from_files(&EncoderFiles::read(snapshot, expected)?, options)
    }

    /// A fine-tuned encoder saved in a model version's own directory `dir`: its three files
    /// must match the hashes recorded for the version, and the card's description of it.
    pub fn load_tuned(
        dir: &Path,
        spec: &EncoderSpec,
        recorded: &BTreeMap<String, String>,
        options: &EncoderOptions,
    ) -> Result<Self, EncoderError> {
        let snapshot = Snapshot {
            repo: spec.repo.clone(),
            revision: spec.revision.clone(),
            dir: dir.to_path_buf(),
        };
        let files = EncoderFiles::read(&snapshot, Some(recorded))?;
        for (file, actual) in &files.hashes {
            let expected = spec
                .files
                .get(file)
                .map_or("(none recorded)", String::as_str);
            if expected != actual {
                return Err(EncoderError::FileChanged {
                    file: file.clone(),
                    expected: expected.to_string(),
                    actual: actual.clone(),
                });
            }
        }
        let options = EncoderOptions {
            max_tokens: spec.max_tokens,
            windows: spec.windows,
            ..*options
        };
        let encoder = Self::from_files(&files, &options)?;
        if encoder.spec.dim != spec.dim || spec.pooling != Pooling::Mean {
            return Err(EncoderError::Config {
                path: dir.join(CONFIG_FILE),
                reason: format!(
                    "the model expects {}-wide mean-pooled embeddings, the encoder gives {}-wide ones",
                    spec.dim, encoder.spec.dim
                ),
            });
        }
        Ok(encoder)
    }

    /// Builds the encoder from its files' bytes (already read and hash-checked).
    pub fn from_files(
        files: &EncoderFiles,
        options: &EncoderOptions,
    ) -> Result<Self, EncoderError> {
        let config = files.config()?;
        let tokenizer_path = files.dir.join(TOKENIZER_FILE);
        // Positions beyond the table do not exist; a larger budget would fail mid-batch.
        let max_tokens = options.max_tokens.clamp(2, config.max_position_embeddings);
        let tokenizer =
            TextTokenizer::from_bytes(&files.tokenizer, max_tokens).map_err(|reason| {
                EncoderError::Tokenizer {
                    path: tokenizer_path,
                    reason,
                }
            })?;
        // Every id the tokenizer can give must be a row of the embedding table: a tokenizer
        // from another model would otherwise fail (or read wrong rows) on some texts only.
        let pieces = tokenizer.vocab_size();
        if pieces > config.vocab_size {
            return Err(EncoderError::Tokenizer {
                path: files.dir.join(TOKENIZER_FILE),
                reason: format!(
                    "its token ids run to {pieces} but config.json's vocab_size is {}: the tokenizer belongs to another model",
                    config.vocab_size
                ),
            });
        }
        let device = device();
        let tensors = files.tensors(&device)?;
        let bert = Bert::load(
            &config,
            VarBuilder::from_tensors(tensors, DType::F32, &device),
        )
        .map_err(|e| EncoderError::Shape {
            path: files.dir.join(WEIGHTS_FILE),
            reason: e.to_string(),
        })?;
        let packed = if device.is_cpu() {
            Some(bert.packed().map_err(|e| EncoderError::Shape {
                path: files.dir.join(WEIGHTS_FILE),
                reason: e.to_string(),
            })?)
        } else {
            None
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads.max(1))
            .thread_name(|index| format!("encoder-{index}"))
            .build()
            .map_err(|e| EncoderError::Threads(e.to_string()))?;
        Ok(Self {
            spec: EncoderSpec {
                repo: files.repo.clone(),
                revision: files.revision.clone(),
                dim: config.hidden_size,
                pooling: Pooling::Mean,
                normalize: true,
                max_tokens,
                windows: options.windows.clamp(1, tokenize::MAX_WINDOWS),
                files: files.hashes.clone(),
            },
            bert,
            packed,
            tokenizer,
            device,
            batch_size: options.batch_size.max(1),
            pool: Arc::new(pool),
        })
    }

    /// What this encoder is, as a card records it.
    pub fn spec(&self) -> &EncoderSpec {
        &self.spec
    }

    /// Width of an embedding.
    pub fn dim(&self) -> usize {
        self.spec.dim
    }

    pub fn bert(&self) -> &Bert {
        &self.bert
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Threads the encoder's matrix multiplies use.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `work` on the encoder's thread pool, so candle's parallel kernels use its
    /// threads; a training loop over the encoder runs inside this too.
    pub fn install<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        self.pool.install(work)
    }

    /// Word pieces of one text.
    pub fn tokenize(&self, text: &str) -> Result<Tokens, EncoderError> {
        self.tokenizer.encode(text).map_err(EncoderError::Tokenize)
    }

    /// Sentence embeddings `[batch, dim]` of a padded batch. With differentiable kernels
    /// the result carries gradients back into the encoder's weights.
    pub fn forward(&self, batch: &Batch, kernels: Kernels) -> candle_core::Result<Tensor> {
        let states = self
            .bert
            .forward(&batch.ids, &batch.type_ids, &batch.mask, kernels)?;
        let pooled = mean_pool(&states, &batch.mask)?;
        if self.spec.normalize {
            l2_normalize(&pooled)
        } else {
            Ok(pooled)
        }
    }

    /// One embedding per text, in the order given.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        self.embed_with_progress(texts, |_| {})
    }

    /// Like `embed`, reporting how many texts are done after each batch. On the CPU the
    /// texts of a batch are packed without padding (see `packed.rs`), so no work goes to
    /// padding and their order does not matter; elsewhere texts are embedded longest first
    /// in padded batches of similar length (padding is wasted work: sorting halves the
    /// time), then put back in the order given.
    pub fn embed_with_progress(
        &self,
        texts: &[&str],
        mut progress: impl FnMut(usize) + Send,
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        // A long text is read in several windows: each is embedded as a text of its own and
        // the windows' embeddings are pooled back below.
        let windows = self.spec.windows;
        let mut tokens: Vec<Tokens> = Vec::with_capacity(texts.len());
        let mut owner: Vec<usize> = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            let pieces = if windows > 1 {
                self.tokenizer
                    .encode_windows(text, windows)
                    .map_err(EncoderError::Tokenize)?
            } else {
                vec![self.tokenize(text)?]
            };
            owner.extend(std::iter::repeat_n(index, pieces.len()));
            tokens.extend(pieces);
        }
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        if self.packed.is_none() {
            order.sort_by_key(|&index| std::cmp::Reverse(tokens[index].len()));
        }
        let mut rows_of: Vec<Vec<f32>> = vec![Vec::new(); tokens.len()];
        self.install(|| {
            let mut done = 0;
            let mut last_reported = 0;
            for chunk in order.chunks(self.batch_size) {
                let batch: Vec<&Tokens> = chunk.iter().map(|&index| &tokens[index]).collect();
                let rows = match &self.packed {
                    Some(packed) => packed.embed(&batch, self.spec.normalize)?,
                    None => {
                        let padded = self.tokenizer.pad(&batch, &self.device)?;
                        self.forward(&padded, Kernels::Fused)?
                            .to_device(&Device::Cpu)?
                            .to_vec2::<f32>()?
                    }
                };
                for (&index, row) in chunk.iter().zip(rows) {
                    rows_of[index] = row;
                }
                done += chunk.len();
                // Progress counts texts: windows are an inner detail.
                let texts_done = done * texts.len() / tokens.len().max(1);
                if texts_done > last_reported || done == tokens.len() {
                    last_reported = texts_done;
                    progress(texts_done);
                }
            }
            Ok::<_, EncoderError>(())
        })?;
        if tokens.len() == texts.len() {
            return Ok(rows_of);
        }
        Ok(pool_windows(
            &rows_of,
            &tokens,
            &owner,
            texts.len(),
            self.spec.normalize,
        ))
    }
}

/// One embedding per text from its windows' embeddings: their average weighted by each
/// window's tokens (mean pooling over the whole text read, as one window pools its tokens),
/// scaled to unit length again when the encoder normalises.
fn pool_windows(
    rows: &[Vec<f32>],
    tokens: &[Tokens],
    owner: &[usize],
    texts: usize,
    normalize: bool,
) -> Vec<Vec<f32>> {
    let dim = rows.first().map_or(0, Vec::len);
    let mut pooled = vec![vec![0f32; dim]; texts];
    let mut weights = vec![0f32; texts];
    for ((row, tokens), &text) in rows.iter().zip(tokens).zip(owner) {
        let weight = tokens.len() as f32;
        weights[text] += weight;
        for (sum, value) in pooled[text].iter_mut().zip(row) {
            *sum += weight * value;
        }
    }
    for (vector, weight) in pooled.iter_mut().zip(weights) {
        if weight > 0.0 {
            vector.iter_mut().for_each(|v| *v /= weight);
        }
        if normalize {
            let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                vector.iter_mut().for_each(|v| *v /= norm);
            }
        }
    }
    pooled
}

/// An encoder's three files, read (and hash-checked when hashes were given) but not yet
/// turned into a model: what loading builds an `Encoder` from, and what fine-tuning starts
/// from and writes anew.
#[derive(Clone)]
pub struct EncoderFiles {
    /// The repository and revision the files are (or were tuned from).
    pub repo: String,
    pub revision: String,
    /// Where they were read from, for error messages.
    pub dir: PathBuf,
    pub config: Vec<u8>,
    pub tokenizer: Vec<u8>,
    pub weights: Vec<u8>,
    /// File name → SHA-256 of the three files.
    pub hashes: BTreeMap<String, String>,
}

impl std::fmt::Debug for EncoderFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncoderFiles")
            .field("repo", &self.repo)
            .field("revision", &self.revision)
            .field("dir", &self.dir)
            .field("hashes", &self.hashes)
            .finish_non_exhaustive()
    }
}

impl EncoderFiles {
    /// Reads a snapshot's files, checking them against `expected` hashes when given.
    pub fn read(
        snapshot: &Snapshot,
        expected: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, EncoderError> {
        let mut hashes = BTreeMap::new();
        let mut read = |file: &str| -> Result<Vec<u8>, EncoderError> {
            let bytes = snapshot.read(file)?;
            let actual = sha256_hex(&bytes);
            if let Some(expected) = expected {
                let want = expected.get(file).map_or("(none recorded)", String::as_str);
                if want != actual {
                    return Err(EncoderError::FileChanged {
                        file: file.to_string(),
                        expected: want.to_string(),
                        actual,
                    });
                }
            }
            hashes.insert(file.to_string(), actual);
            Ok(bytes)
        };
        let config = read(CONFIG_FILE)?;
        let tokenizer = read(TOKENIZER_FILE)?;
        let weights = read(WEIGHTS_FILE)?;
        Ok(Self {
            repo: snapshot.repo.clone(),
            revision: snapshot.revision.clone(),
            dir: snapshot.dir.clone(),
            config,
            tokenizer,
            weights,
            hashes,
        })
    }

    /// The same encoder with other weights (fine-tuned ones): the hashes follow.
    pub fn with_weights(&self, weights: Vec<u8>) -> Self {
        let mut hashes = self.hashes.clone();
        hashes.insert(WEIGHTS_FILE.to_string(), sha256_hex(&weights));
        Self {
            weights,
            hashes,
            ..self.clone()
        }
    }

    /// The parsed and checked `config.json`.
    pub fn config(&self) -> Result<BertConfig, EncoderError> {
        let path = self.dir.join(CONFIG_FILE);
        let config: BertConfig =
            serde_json::from_slice(&self.config).map_err(|e| EncoderError::Config {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        config
            .check()
            .map_err(|reason| EncoderError::Config { path, reason })?;
        Ok(config)
    }

    /// The weights by name.
    pub fn tensors(
        &self,
        device: &Device,
    ) -> Result<std::collections::HashMap<String, Tensor>, EncoderError> {
        // Read from memory rather than memory-mapped: mapping needs `unsafe`, and the bytes
        // are already here because their hash had to be checked.
        candle_core::safetensors::load_buffer(&self.weights, device).map_err(|e| {
            EncoderError::Weights {
                path: self.dir.join(WEIGHTS_FILE),
                reason: e.to_string(),
            }
        })
    }

    /// The three files by name, as a model version's directory holds them.
    pub fn named(&self) -> [(&'static str, &[u8]); 3] {
        [
            (CONFIG_FILE, &self.config),
            (TOKENIZER_FILE, &self.tokenizer),
            (WEIGHTS_FILE, &self.weights),
        ]
    }
}
