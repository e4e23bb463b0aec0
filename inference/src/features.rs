//! Ticket text to hashed n-gram features: word uni- and bigrams and character 3–5-grams
//! within words (like scikit-learn's `char_wb`), counted with sublinear term frequency. The
//! hash space is large and fixed; a trained model keeps rows only for the features it saw.

use datasets::split::stable_hash;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ops::Range;

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

/// One n-gram of a text and where it lies, for explanations (`crate::explain`): the same
/// n-grams, in the same buckets, as `extract` counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub bucket: u32,
    pub family: Family,
    /// Bytes of the lower-cased text (`text.to_lowercase()`) the n-gram covers; a character
    /// n-gram's padding is not part of it (a 1-gram of padding alone covers nothing).
    pub span: Range<usize>,
    /// Bytes of the whitespace-separated token a character n-gram was taken from; for a
    /// word n-gram, `span` again.
    pub token: Range<usize>,
}

impl FeatureConfig {
    /// Every n-gram occurrence of the text, with its place in the lower-cased text. Counted
    /// by bucket they are `extract`'s counts (a test holds the two together); kept apart
    /// from `extract`, which serving and training call on every ticket and which needs no
    /// places.
    pub fn occurrences(&self, text: &str) -> Vec<Occurrence> {
        let lowered = text.to_lowercase();
        let mut found = Vec::new();
        let words = word_spans(&lowered);
        for word in &words {
            found.push(Occurrence {
                bucket: self.bucket(WORD_SEED, &lowered[word.clone()]),
                family: Family::Word,
                span: word.clone(),
                token: word.clone(),
            });
        }
        if self.word_ngrams >= 2 {
            for pair in words.windows(2) {
                let text = format!(
                    "{} {}",
                    &lowered[pair[0].clone()],
                    &lowered[pair[1].clone()]
                );
                found.push(Occurrence {
                    bucket: self.bucket(PAIR_SEED, &text),
                    family: Family::Word,
                    span: pair[0].start..pair[1].end,
                    token: pair[0].start..pair[1].end,
                });
            }
        }
        if self.char_max >= self.char_min && self.char_min > 0 {
            for token in token_spans(&lowered) {
                let padded = format!(" {} ", &lowered[token.clone()]);
                let starts: Vec<usize> = padded
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain(std::iter::once(padded.len()))
                    .collect();
                let chars = starts.len() - 1;
                // Padded byte `i` is byte `token.start + i - 1` of the text; the two spaces
                // are clipped off.
                let inner = 1..padded.len() - 1;
                for n in usize::from(self.char_min)..=usize::from(self.char_max) {
                    if n > chars {
                        break;
                    }
                    for i in 0..=chars - n {
                        let (from, to) = (starts[i], starts[i + n]);
                        let clipped = from.max(inner.start)..to.min(inner.end);
                        let span = if clipped.start < clipped.end {
                            token.start + clipped.start - 1..token.start + clipped.end - 1
                        } else {
                            let at = token.start + clipped.start.min(inner.end) - 1;
                            at..at
                        };
                        found.push(Occurrence {
                            bucket: self.bucket(CHAR_SEED, &padded[from..to]),
                            family: Family::Char,
                            span,
                            token: token.clone(),
                        });
                    }
                }
            }
        }
        found
    }
}

/// Byte ranges of the words `FeatureConfig::words` reads: runs of two or more letters,
/// digits or underscores.
pub fn word_spans(text: &str) -> Vec<Range<usize>> {
    runs(text, |c| c.is_alphanumeric() || c == '_')
        .filter(|run| text[run.clone()].chars().nth(1).is_some())
        .collect()
}

/// Byte ranges of the whitespace-separated tokens character n-grams are taken from.
fn token_spans(text: &str) -> Vec<Range<usize>> {
    runs(text, |c| !c.is_whitespace()).collect()
}

/// Maximal runs of characters that `keep`.
fn runs(text: &str, keep: impl Fn(char) -> bool) -> impl Iterator<Item = Range<usize>> {
    let mut start: Option<usize> = None;
    text.char_indices()
        .map(Some)
        .chain(std::iter::once(None))
        .filter_map(move |item| match item {
            Some((i, c)) if keep(c) => {
                start.get_or_insert(i);
                None
            }
            Some((i, _)) => start.take().map(|s| s..i),
            None => start.take().map(|s| s..text.len()),
        })
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

    /// `occurrences` counted by bucket is `extract` before the sublinear weighting.
    fn occurrence_counts(config: &FeatureConfig, text: &str) -> FeatureCounts {
        let mut counts: HashMap<u32, (Family, u32)> = HashMap::new();
        for occurrence in config.occurrences(text) {
            counts
                .entry(occurrence.bucket)
                .or_insert((occurrence.family, 0))
                .1 += 1;
        }
        counts
            .into_iter()
            .map(|(bucket, (family, count))| (bucket, (family, 1.0 + libm::logf(count as f32))))
            .collect()
    }

    #[test]
    fn occurrences_are_the_extracted_features_with_their_places() {
        let config = FeatureConfig::default();
        for text in [
            "I can't LOG-in to v2, ΣΊΣΥΦΟΣ  said: İstanbul café!!",
            "refund refund refund",
            "a b c",
            "",
            "  \t\n ",
        ] {
            assert_eq!(
                occurrence_counts(&config, text),
                config.extract(text),
                "{text:?}"
            );
            let lowered = text.to_lowercase();
            for occurrence in config.occurrences(text) {
                assert!(occurrence.span.end <= lowered.len());
                assert!(lowered.is_char_boundary(occurrence.span.start));
                assert!(lowered.is_char_boundary(occurrence.span.end));
                assert!(occurrence.token.start <= occurrence.span.start);
                assert!(occurrence.span.end <= occurrence.token.end);
            }
        }
        let words: Vec<String> = word_spans("I can't LOG-in to v2")
            .into_iter()
            .map(|span| "I can't LOG-in to v2"[span].to_lowercase())
            .collect();
        assert_eq!(words, FeatureConfig::words("I can't LOG-in to v2"));
    }

    #[test]
    fn a_character_ngram_covers_its_letters_without_the_padding() {
        let config = FeatureConfig {
            word_ngrams: 1,
            char_min: 3,
            char_max: 3,
            ..FeatureConfig::default()
        };
        let spans: Vec<_> = config
            .occurrences("x ab")
            .into_iter()
            .filter(|o| o.family == Family::Char)
            .map(|o| (o.span, o.token))
            .collect();
        // " x " covers x; " ab" covers a and b, "ab " too.
        assert_eq!(spans, [(0..1, 0..1), (2..4, 2..4), (2..4, 2..4)]);
    }

    proptest::proptest! {
        #[test]
        fn occurrences_and_extract_agree_on_any_text(text in "\\PC{0,60}") {
            let config = FeatureConfig { hash_bits: 12, ..FeatureConfig::default() };
            proptest::prop_assert_eq!(occurrence_counts(&config, &text), config.extract(&text));
        }
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
