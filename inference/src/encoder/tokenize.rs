//! Text to word pieces with the encoder's own `tokenizer.json`, truncated to a fixed budget
//! and padded per batch: MiniLM's file ships fixed padding to 128 tokens, which would make
//! every batch as slow as the longest possible text.

use candle_core::{Device, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

/// Token budget per text unless a run asks for another (special tokens included).
pub const DEFAULT_MAX_TOKENS: usize = 128;

/// A text's token ids, before padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

impl Tokens {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A tokenizer configured for embedding: truncation on, padding off.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    max_tokens: usize,
}

impl TextTokenizer {
    /// Reads a `tokenizer.json`; the reason is returned as text for the caller's error.
    pub fn from_bytes(bytes: &[u8], max_tokens: usize) -> Result<Self, String> {
        // tokenizers' own deserializer panics on some malformed files (an `expect` in its
        // decoder section, 0.23): a damaged file is an error to report, not a crash.
        let parsed = std::panic::catch_unwind(|| Tokenizer::from_bytes(bytes)).map_err(|_| {
            "the file is not a tokenizer the tokenizers library can read".to_string()
        })?;
        let mut inner = parsed.map_err(|e| e.to_string())?;
        let pad_id = inner
            .get_padding()
            .map(|padding| padding.pad_id)
            .or_else(|| inner.token_to_id("[PAD]"))
            .unwrap_or(0);
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            inner,
            pad_id,
            max_tokens,
        })
    }

    /// One past the largest id the tokenizer can give (added tokens included).
    pub fn vocab_size(&self) -> usize {
        let largest = self.inner.get_vocab(true).into_values().max();
        largest.map_or(0, |id| id as usize + 1)
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The word pieces of one text, with the model's special tokens.
    pub fn encode(&self, text: &str) -> Result<Tokens, String> {
        // `encode_fast` skips character offsets, which embedding never uses.
        let encoding = self
            .inner
            .encode_fast(text, true)
            .map_err(|e| e.to_string())?;
        Ok(Tokens {
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
        })
    }

    /// Pads texts to the longest among them: ids and type ids `[batch, length]` (u32) and
    /// the attention mask (f32: 1 for a token, 0 for padding).
    pub fn pad(&self, texts: &[&Tokens], device: &Device) -> candle_core::Result<Batch> {
        let length = texts.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(texts.len() * length);
        let mut type_ids = Vec::with_capacity(texts.len() * length);
        let mut mask = Vec::with_capacity(texts.len() * length);
        for tokens in texts {
            let padding = length - tokens.len();
            ids.extend_from_slice(&tokens.ids);
            ids.extend(std::iter::repeat_n(self.pad_id, padding));
            type_ids.extend_from_slice(&tokens.type_ids);
            type_ids.extend(std::iter::repeat_n(0, padding));
            mask.extend(std::iter::repeat_n(1f32, tokens.len()));
            mask.extend(std::iter::repeat_n(0f32, padding));
        }
        let shape = (texts.len(), length);
        Ok(Batch {
            ids: Tensor::from_vec(ids, shape, device)?,
            type_ids: Tensor::from_vec(type_ids, shape, device)?,
            mask: Tensor::from_vec(mask, shape, device)?,
        })
    }
}

/// A padded batch, ready for the encoder.
#[derive(Debug, Clone)]
pub struct Batch {
    pub ids: Tensor,
    pub type_ids: Tensor,
    pub mask: Tensor,
}
