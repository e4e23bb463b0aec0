//! The `ngram` model: a fastText-style embedding bag over hashed n-gram features, weighted
//! by TF-IDF, followed by a linear layer. With `hidden = 0` the bag's width is the number of
//! tags and the linear layer is the identity (a linear model over the features, which is
//! what reaches TF-IDF + logistic regression accuracy); with `hidden > 0` the bag is `hidden`
//! wide and a dense projection maps it to the tags (smaller, slightly less accurate).
//!
//! Plain Rust rather than candle: training touches ~100 of a million rows per example, and
//! a dense gradient of the whole table per step would be thousands of times the work.

use crate::features::{Family, FeatureConfig, SparseVector, normalise};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The shape of an n-gram model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NgramShape {
    pub features: FeatureConfig,
    /// Width of the embedding bag; 0 for none (a direct linear model).
    pub hidden: usize,
    pub outputs: usize,
}

/// Weights of an n-gram model. Rows exist only for features seen in training.
#[derive(Debug, Clone, PartialEq)]
pub struct NgramModel {
    pub shape: NgramShape,
    /// Hash bucket → row.
    pub rows: HashMap<u32, u32>,
    /// Per row: the bucket it stands for, its family and its inverse document frequency.
    pub buckets: Vec<u32>,
    pub families: Vec<Family>,
    pub idf: Vec<f32>,
    /// `rows × width`, row-major; width is `hidden` or `outputs`.
    pub table: Vec<f32>,
    /// `hidden × outputs`, empty when `hidden == 0`.
    pub projection: Vec<f32>,
    pub bias: Vec<f32>,
}

impl NgramModel {
    /// The width of a table row.
    pub fn width(&self) -> usize {
        if self.shape.hidden == 0 {
            self.shape.outputs
        } else {
            self.shape.hidden
        }
    }

    /// The text's TF-IDF vector over this model's rows; unseen features are dropped.
    pub fn vectorize(&self, text: &str) -> SparseVector {
        self.vectorize_counting(text).0
    }

    /// `vectorize`, and how many distinct features the text had, seen or not.
    fn vectorize_counting(&self, text: &str) -> (SparseVector, usize) {
        let extracted = self.shape.features.extract(text);
        let total = extracted.len();
        let mut features: Vec<_> = extracted
            .into_iter()
            .filter_map(|(bucket, (family, tf))| {
                let row = *self.rows.get(&bucket)?;
                Some((row, family, tf * self.idf[row as usize]))
            })
            .collect();
        // A fixed order keeps floating-point sums (norms, bags) identical from run to run.
        features.sort_unstable_by_key(|(row, _, _)| *row);
        (normalise(features), total)
    }

    /// The bag: the weighted sum of the vector's table rows.
    pub fn bag(&self, vector: &SparseVector) -> Vec<f32> {
        let width = self.width();
        let mut bag = vec![0.0; width];
        for (row, weight) in vector {
            let start = *row as usize * width;
            for (sum, value) in bag.iter_mut().zip(&self.table[start..start + width]) {
                *sum += weight * value;
            }
        }
        bag
    }

    /// Raw scores (logits) of each output for a bag.
    pub fn logits_of_bag(&self, bag: &[f32]) -> Vec<f32> {
        if self.shape.hidden == 0 {
            return bag
                .iter()
                .zip(&self.bias)
                .map(|(b, bias)| b + bias)
                .collect();
        }
        let outputs = self.shape.outputs;
        let mut logits = self.bias.clone();
        for (h, value) in bag.iter().enumerate() {
            let row = &self.projection[h * outputs..(h + 1) * outputs];
            for (logit, weight) in logits.iter_mut().zip(row) {
                *logit += value * weight;
            }
        }
        logits
    }

    /// Raw scores of each output for a text.
    pub fn logits(&self, text: &str) -> Vec<f32> {
        let vector = self.vectorize(text);
        self.logits_of_bag(&self.bag(&vector))
    }

    /// Raw scores of the whole text, and the share of unseen features among the words
    /// people wrote in it (without stack traces and logs: see
    /// [`datasets::text::traces::prose`]), so a pasted trace, whose class names and line
    /// numbers are new in nearly every ticket, does not make a ticket unfamiliar alone.
    pub fn logits_and_unseen_prose_share(&self, text: &str) -> (Vec<f32>, f32) {
        let (vector, total) = self.vectorize_counting(text);
        let logits = self.logits_of_bag(&self.bag(&vector));
        let prose = datasets::text::traces::prose(text);
        if prose.len() == text.len() {
            return (logits, unseen(vector.len(), total));
        }
        let (prose_vector, prose_total) = self.vectorize_counting(&prose);
        (logits, unseen(prose_vector.len(), prose_total))
    }
}

/// The share of `total` distinct features outside the `known` ones (1 without features).
fn unseen(known: usize, total: usize) -> f32 {
    match total {
        0 => 1.0,
        _ => (total - known) as f32 / total as f32,
    }
}
