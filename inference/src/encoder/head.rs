//! The `encoder-head` model: a frozen sentence encoder and a linear layer from its
//! embedding to one score per tag. The head is small enough (dim × tags) to apply in plain
//! Rust; the encoder's files stay in the Hugging Face cache, referenced by the card.

use super::{Encoder, EncoderError};
use std::sync::Arc;

/// A linear layer: `logits = weight · embedding + bias`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    pub dim: usize,
    pub outputs: usize,
    /// `outputs × dim`, row-major (one row per tag).
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl LinearHead {
    /// One score per tag for an embedding of width `dim`.
    pub fn logits(&self, embedding: &[f32]) -> Vec<f32> {
        self.weight
            .chunks_exact(self.dim)
            .zip(&self.bias)
            .map(|(row, bias)| row.iter().zip(embedding).map(|(w, x)| w * x).sum::<f32>() + bias)
            .collect()
    }
}

/// A text's scores and its embedding.
pub type LogitsAndEmbedding = (Vec<f32>, Vec<f32>);

/// A loaded `encoder-head` model.
#[derive(Debug, Clone)]
pub struct EncoderHeadModel {
    /// Shared: several versions trained on the same encoder need it in memory once.
    pub encoder: Arc<Encoder>,
    pub head: LinearHead,
    /// Unit-length centroids of each tag's training embeddings (`outputs × dim`), for the
    /// out-of-distribution signal; empty when the version has none (`finetune`, or older).
    pub centroids: Vec<f32>,
}

impl PartialEq for EncoderHeadModel {
    /// Two models are the same when their heads are and their encoders are the same files.
    fn eq(&self, other: &Self) -> bool {
        self.head == other.head
            && self.centroids == other.centroids
            && self.encoder.spec() == other.encoder.spec()
    }
}

impl EncoderHeadModel {
    /// Scores for many texts, embedded in sorted batches.
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        Ok(self
            .encoder
            .embed(texts)?
            .iter()
            .map(|embedding| self.head.logits(embedding))
            .collect())
    }

    /// Scores and embeddings for many texts (one encoder pass).
    pub fn logits_and_embeddings(
        &self,
        texts: &[&str],
    ) -> Result<Vec<LogitsAndEmbedding>, EncoderError> {
        Ok(self
            .encoder
            .embed(texts)?
            .into_iter()
            .map(|embedding| (self.head.logits(&embedding), embedding))
            .collect())
    }
}
