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

/// Most windows a long text is read in (see [`TextTokenizer::encode_windows`]): 4 windows of
/// 128 tokens read 512, BERT's own position limit.
pub const MAX_WINDOWS: usize = 8;

/// A tokenizer configured for embedding: truncation on, padding off.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The same without truncation, for texts read in several windows.
    whole: Tokenizer,
    /// The special tokens around one text (`[CLS]` … `[SEP]` for BERT): ids before and after.
    before: Vec<u32>,
    after: Vec<u32>,
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
        let mut whole = inner.clone();
        whole.with_truncation(None).map_err(|e| e.to_string())?;
        let (before, after) = special_tokens(&whole)?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            inner,
            whole,
            before,
            after,
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

    /// The word pieces of a text read in up to `windows` windows of `max_tokens` each (special
    /// tokens included in each): a text that fits one window gives exactly [`Self::encode`];
    /// a longer one is cut into consecutive pieces of its words, each wrapped in the special
    /// tokens, the rest after `windows` pieces dropped. Embeddings of the windows are pooled
    /// by the encoder, so a long ticket is read to its 512th token, not its 128th.
    pub fn encode_windows(&self, text: &str, windows: usize) -> Result<Vec<Tokens>, String> {
        let windows = windows.clamp(1, MAX_WINDOWS);
        let first = self.encode(text)?;
        let room = self
            .max_tokens
            .saturating_sub(self.before.len() + self.after.len())
            .max(1);
        if windows == 1 || first.len() < self.max_tokens {
            return Ok(vec![first]);
        }
        // Tokenizing the whole of a very long text would cost far more than the windows read:
        // a word piece is rarely under one byte, so this many bytes always cover the windows.
        let mut end = (room * windows * 16).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let encoding = self
            .whole
            .encode_fast(&text[..end], false)
            .map_err(|e| e.to_string())?;
        Ok(encoding
            .get_ids()
            .chunks(room)
            .take(windows)
            .map(|piece| {
                let ids: Vec<u32> = self
                    .before
                    .iter()
                    .chain(piece)
                    .chain(&self.after)
                    .copied()
                    .collect();
                Tokens {
                    type_ids: vec![0; ids.len()],
                    ids,
                }
            })
            .collect())
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

/// The special tokens a tokenizer puts before and after one text, found by encoding a word
/// with and without them (the tokenizer's own template says where they go).
fn special_tokens(tokenizer: &Tokenizer) -> Result<(Vec<u32>, Vec<u32>), String> {
    let with = tokenizer
        .encode_fast("a", true)
        .map_err(|e| e.to_string())?;
    let without = tokenizer
        .encode_fast("a", false)
        .map_err(|e| e.to_string())?;
    let (with, without) = (with.get_ids(), without.get_ids());
    let start = with
        .windows(without.len().max(1))
        .position(|w| w == without)
        .ok_or_else(|| {
            "the tokenizer's special tokens wrap a text in an unknown way".to_string()
        })?;
    Ok((
        with[..start].to_vec(),
        with[start + without.len()..].to_vec(),
    ))
}

/// A padded batch, ready for the encoder.
#[derive(Debug, Clone)]
pub struct Batch {
    pub ids: Tensor,
    pub type_ids: Tensor,
    pub mask: Tensor,
}
