//! A tiny random BERT laid out like a Hugging Face cache entry, so tests of the encoder and
//! of `encoder-head` training run anywhere, without downloading a model. Its tokenizer is
//! a real WordPiece `tokenizer.json` (with MiniLM's fixed padding, which loading must undo).

use super::hub::HubCache;
use super::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer};

/// The repository id tests use for the tiny model.
pub const TINY_REPO: &str = "tests/tiny-bert";
/// Its revision (any 40 hex digits will do).
pub const TINY_REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

type FixtureError = Box<dyn std::error::Error + Send + Sync>;

/// The shape of the tiny model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TinyBert {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    /// Name the weights `bert.…`, as task checkpoints do.
    pub prefixed: bool,
    pub seed: u64,
}

impl Default for TinyBert {
    fn default() -> Self {
        Self {
            hidden: 32,
            layers: 2,
            heads: 2,
            intermediate: 64,
            max_positions: 64,
            prefixed: false,
            seed: 1,
        }
    }
}

const SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const WORDS: &str = "the to my is not and it in of for on we can you with this that i a \
    refund payment invoice charge charged billing card login password account error crash \
    crashes export import feature request slow page email integration api settings plan \
    upgrade cancel subscription access team data report mobile app browser security docs \
    question bug outage down help please thanks money back twice wrong reset locked sso \
    missing broken fails failed works would like add dark mode";

/// The word pieces: specials, whole words, then every letter and digit alone and as a
/// continuation, so any lower-case text tokenizes without `[UNK]`.
pub fn vocabulary() -> Vec<String> {
    let mut pieces: Vec<String> = SPECIAL.iter().map(|s| s.to_string()).collect();
    pieces.extend(WORDS.split_whitespace().map(str::to_string));
    for c in ('a'..='z').chain('0'..='9') {
        pieces.push(c.to_string());
        pieces.push(format!("##{c}"));
    }
    pieces.extend([".", ",", "!", "?", "'", "-", ":", "/"].map(str::to_string));
    let mut seen = std::collections::HashSet::new();
    pieces.retain(|piece| seen.insert(piece.clone()));
    pieces
}

/// A BERT `tokenizer.json` over `vocabulary()`.
pub fn tokenizer() -> Result<Tokenizer, FixtureError> {
    // WordPiece takes tokenizers' own hash map type, which `bpe` names publicly.
    let vocab: tokenizers::models::bpe::Vocab = vocabulary()
        .into_iter()
        .enumerate()
        .map(|(id, piece)| (piece, id as u32))
        .collect();
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .build()?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::default()))?
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), 3),
            ("[CLS]".into(), 2),
        )))
        .with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(128),
            pad_id: 0,
            pad_token: "[PAD]".into(),
            ..PaddingParams::default()
        }));
    Ok(tokenizer)
}

/// A deterministic generator of normal noise (SplitMix64 and Box–Muller).
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn normal(&mut self, count: usize, mean: f32, std: f32) -> Vec<f32> {
        (0..count)
            .map(|_| {
                let (u, v) = (self.uniform(), self.uniform());
                mean + std * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
            })
            .collect()
    }
}

impl TinyBert {
    /// Its `config.json`.
    pub fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": vocabulary().len(),
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.intermediate,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": self.max_positions,
            "type_vocab_size": 2,
            "initializer_range": 0.02,
            "layer_norm_eps": 1e-12,
            "pad_token_id": 0,
            "position_embedding_type": "absolute",
        })
    }

    /// Random weights by their Hugging Face names.
    pub fn weights(&self) -> Result<HashMap<String, Tensor>, FixtureError> {
        let mut noise = Noise(self.seed);
        let mut weights = HashMap::new();
        let prefix = if self.prefixed { "bert." } else { "" };
        let (h, i) = (self.hidden, self.intermediate);
        let mut add = |name: String, shape: &[usize], mean: f32, std: f32| {
            let values = noise.normal(shape.iter().product(), mean, std);
            Tensor::from_vec(values, shape, &Device::Cpu)
                .map(|tensor| weights.insert(format!("{prefix}{name}"), tensor))
        };
        add(
            "embeddings.word_embeddings.weight".into(),
            &[vocabulary().len(), h],
            0.0,
            1.0,
        )?;
        add(
            "embeddings.position_embeddings.weight".into(),
            &[self.max_positions, h],
            0.0,
            0.1,
        )?;
        add(
            "embeddings.token_type_embeddings.weight".into(),
            &[2, h],
            0.0,
            0.1,
        )?;
        add("embeddings.LayerNorm.weight".into(), &[h], 1.0, 0.05)?;
        add("embeddings.LayerNorm.bias".into(), &[h], 0.0, 0.05)?;
        let scale = 1.0 / (h as f32).sqrt();
        for layer in 0..self.layers {
            let base = format!("encoder.layer.{layer}");
            for part in ["query", "key", "value"] {
                add(
                    format!("{base}.attention.self.{part}.weight"),
                    &[h, h],
                    0.0,
                    scale,
                )?;
                add(
                    format!("{base}.attention.self.{part}.bias"),
                    &[h],
                    0.0,
                    0.02,
                )?;
            }
            add(
                format!("{base}.attention.output.dense.weight"),
                &[h, h],
                0.0,
                scale,
            )?;
            add(
                format!("{base}.attention.output.dense.bias"),
                &[h],
                0.0,
                0.02,
            )?;
            add(
                format!("{base}.attention.output.LayerNorm.weight"),
                &[h],
                1.0,
                0.05,
            )?;
            add(
                format!("{base}.attention.output.LayerNorm.bias"),
                &[h],
                0.0,
                0.05,
            )?;
            add(
                format!("{base}.intermediate.dense.weight"),
                &[i, h],
                0.0,
                scale,
            )?;
            add(format!("{base}.intermediate.dense.bias"), &[i], 0.0, 0.02)?;
            add(
                format!("{base}.output.dense.weight"),
                &[h, i],
                0.0,
                1.0 / (i as f32).sqrt(),
            )?;
            add(format!("{base}.output.dense.bias"), &[h], 0.0, 0.02)?;
            add(format!("{base}.output.LayerNorm.weight"), &[h], 1.0, 0.05)?;
            add(format!("{base}.output.LayerNorm.bias"), &[h], 0.0, 0.05)?;
        }
        Ok(weights)
    }

    /// Writes the model into the hub cache at `hub_root` as `repo`, revision
    /// `TINY_REVISION`, with `refs/main` pointing to it; returns the snapshot directory.
    pub fn write(&self, hub_root: &Path, repo: &str) -> Result<PathBuf, FixtureError> {
        let repo_dir = HubCache::at(hub_root).repo_dir(repo)?;
        let snapshot = repo_dir.join("snapshots").join(TINY_REVISION);
        std::fs::create_dir_all(&snapshot)?;
        std::fs::create_dir_all(repo_dir.join("refs"))?;
        // No trailing newline: the hub tools write it this way.
        std::fs::write(repo_dir.join("refs").join("main"), TINY_REVISION)?;
        std::fs::write(
            snapshot.join(CONFIG_FILE),
            serde_json::to_vec_pretty(&self.config())?,
        )?;
        tokenizer()?.save(snapshot.join(TOKENIZER_FILE), true)?;
        candle_core::safetensors::save(&self.weights()?, snapshot.join(WEIGHTS_FILE))?;
        Ok(snapshot)
    }
}
