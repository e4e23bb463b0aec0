//! Ticket text to hashed n-gram features: word uni- and bigrams and character 3–5-grams
//! within words (like scikit-learn's `char_wb`), counted with sublinear term frequency. The
//! hash space is large and fixed; a trained model keeps rows only for the features it saw.

use datasets::split::stable_hash;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Which n-grams to extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// Features hash into `2^hash_bits` buckets.
    pub hash_bits: u8,
    /// 1 for words only, 2 to add word pairs.
    pub word_ngrams: u8,
    /// Character n-gram lengths inside words; `0..0` for none.
    pub char_min: u8,
    pub char_max: u8,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            hash_bits: 24,
            word_ngrams: 2,
            char_min: 3,
            char_max: 5,
        }
    }
}

/// A feature's family: the families are normalised separately, as two stacked TF-IDF
/// vectorisers would be, so long words do not drown the word features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Word,
    Char,
}

const WORD_SEED: u64 = 1;
const PAIR_SEED: u64 = 2;
const CHAR_SEED: u64 = 3;

/// Counted features of one text: bucket → (family, sublinear tf = 1 + ln count).
pub type FeatureCounts = HashMap<u32, (Family, f32)>;

impl FeatureConfig {
    fn bucket(&self, seed: u64, text: &str) -> u32 {
        let mask = (1u64 << self.hash_bits.min(31)) - 1;
        (stable_hash(seed, text) & mask) as u32
    }

    /// Words: lower-cased runs of two or more letters, digits or underscores.
    pub fn words(text: &str) -> Vec<String> {
        text.to_lowercase()
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| w.chars().nth(1).is_some())
            .map(str::to_string)
            .collect()
    }

    /// Every feature of the text with its sublinear term frequency.
    pub fn extract(&self, text: &str) -> FeatureCounts {
        let mut counts: HashMap<u32, (Family, u32)> = HashMap::new();
        let mut add = |bucket: u32, family: Family| {
            counts.entry(bucket).or_insert((family, 0)).1 += 1;
        };
        let words = Self::words(text);
        for word in &words {
            add(self.bucket(WORD_SEED, word), Family::Word);
        }
        if self.word_ngrams >= 2 {
            for pair in words.windows(2) {
                add(
                    self.bucket(PAIR_SEED, &format!("{} {}", pair[0], pair[1])),
                    Family::Word,
                );
            }
        }
        if self.char_max >= self.char_min && self.char_min > 0 {
            let lowered = text.to_lowercase();
            for token in lowered.split_whitespace() {
                let padded = format!(" {token} ");
                let starts: Vec<usize> = padded
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain(std::iter::once(padded.len()))
                    .collect();
                let chars = starts.len() - 1;
                for n in usize::from(self.char_min)..=usize::from(self.char_max) {
                    if n > chars {
                        break;
                    }
                    for i in 0..=chars - n {
                        add(
                            self.bucket(CHAR_SEED, &padded[starts[i]..starts[i + n]]),
                            Family::Char,
                        );
                    }
                }
            }
        }
        counts
            .into_iter()
            .map(|(bucket, (family, count))| (bucket, (family, 1.0 + libm::logf(count as f32))))
            .collect()
    }
}

/// A sparse vector over a model's rows.
pub type SparseVector = Vec<(u32, f32)>;

/// Weights each family by IDF and scales it to unit length.
pub fn normalise(features: Vec<(u32, Family, f32)>) -> SparseVector {
    let mut norms: HashMap<Family, f32> = HashMap::new();
    for (_, family, weight) in &features {
        *norms.entry(*family).or_default() += weight * weight;
    }
    features
        .into_iter()
        .map(|(row, family, weight)| {
            let norm = norms.get(&family).copied().unwrap_or(1.0).sqrt();
            (row, if norm > 0.0 { weight / norm } else { 0.0 })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_and_single_characters_dropped() {
        assert_eq!(
            FeatureConfig::words("I can't LOG-in to v2"),
            ["can", "log", "in", "to", "v2"]
        );
    }

    #[test]
    fn repeated_words_get_sublinear_weight() {
        let config = FeatureConfig {
            word_ngrams: 1,
            char_min: 0,
            char_max: 0,
            ..FeatureConfig::default()
        };
        let features = config.extract("refund refund refund");
        assert_eq!(features.len(), 1);
        let (_, weight) = features.values().next().copied().unwrap();
        assert!((weight - (1.0 + 3f32.ln())).abs() < 1e-6);
    }

    #[test]
    fn character_ngrams_stay_within_padded_words() {
        let config = FeatureConfig {
            word_ngrams: 1,
            char_min: 3,
            char_max: 3,
            ..FeatureConfig::default()
        };
        // " ab " has the 3-grams " ab" and "ab "; plus the word itself.
        let features = config.extract("ab");
        assert_eq!(
            features
                .values()
                .filter(|(f, _)| *f == Family::Char)
                .count(),
            2
        );
    }

    #[test]
    fn the_same_text_always_gives_the_same_features() {
        let config = FeatureConfig::default();
        let a = config.extract("Payment failed twice, café");
        let b = config.extract("Payment failed twice, café");
        assert_eq!(a, b);
        assert!(a.keys().all(|bucket| *bucket < (1 << config.hash_bits)));
    }

    #[test]
    fn each_family_is_scaled_to_unit_length() {
        let vector = normalise(vec![
            (0, Family::Word, 3.0),
            (1, Family::Word, 4.0),
            (2, Family::Char, 2.0),
        ]);
        assert_eq!(vector, [(0, 0.6), (1, 0.8), (2, 1.0)]);
    }
}
