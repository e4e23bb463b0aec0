//! Why a model scores a tag as it does: for each tag asked about, the words of the model text
//! that pushed its score most. `ngram` models are linear in their features, so their
//! explanation is exact: every feature's weight × value, handed to the words it was read
//! from, plus the bias, is the logit. Encoder models are not; their words are weighed by
//! occlusion (each word removed in turn, all the variants scored in one batch, the drop in
//! the tag's logit is the word's contribution), over the first `MAX_OCCLUDED_WORDS` words.
//!
//! Words are the ones the n-gram features read (`features::word_spans`: runs of two or more
//! letters, digits or underscores); their places are character offsets in the model text.

use crate::ModelError;
use crate::features::{Family, Occurrence, word_spans};
use crate::model::{Scorer, TaggingModel};
use crate::ngram::NgramModel;
use serde::Serialize;
use std::collections::HashMap;
use std::ops::Range;

/// Words listed per tag unless the caller asks for another number.
pub const DEFAULT_TOP_WORDS: usize = 5;

/// The most words occlusion removes, one at a time, from the start of the text: one forward
/// pass each, in one batch. 64 words cover most tickets' words within the encoder's budget
/// of 128 word pieces; past it, words are not weighed (see `Explanation::words_examined`).
pub const MAX_OCCLUDED_WORDS: usize = 64;

/// How the contributions were measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExplanationMethod {
    /// Feature weight × value, summed per word: with the bias they add up to the logit.
    Exact,
    /// The drop in the tag's logit when the word is removed from the text.
    Occlusion,
}

/// One word's share in a tag's score.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WordContribution {
    /// The word as written in the model text.
    pub phrase: String,
    /// Its first character and one past its last, counted in characters (Unicode scalar
    /// values) of the model text.
    pub start: usize,
    pub end: usize,
    /// Positive: pushed the tag's logit up.
    pub contribution: f32,
}

/// Why a model scores one of its outputs as it does on one text.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    /// The model output (index into the card's tags).
    #[serde(skip)]
    pub output: usize,
    pub method: ExplanationMethod,
    /// The tag's raw score on the whole text.
    pub logit: f32,
    /// `exact` only: the tag's bias; `bias` + every word's contribution = `logit`.
    pub bias: Option<f32>,
    /// The words with the largest contributions, largest first.
    pub words: Vec<WordContribution>,
    /// `exact` only: what the words not listed contribute together, so that `bias`, the
    /// listed contributions and `rest` add up to `logit`.
    pub rest: Option<f32>,
    /// Words in the model text.
    pub words_total: usize,
    /// Words weighed: all of them for `exact`, at most `MAX_OCCLUDED_WORDS` for `occlusion`.
    pub words_examined: usize,
}

/// Why a text could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("the model has {outputs} outputs; output {output} does not exist")]
    UnknownOutput { output: usize, outputs: usize },
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl TaggingModel {
    /// For each of `outputs`, the `top_k` words of `text` (the model text) that pushed its
    /// score most: exact for `ngram`, occlusion for the encoder kinds.
    pub fn explain(
        &self,
        text: &str,
        outputs: &[usize],
        top_k: usize,
    ) -> Result<Vec<Explanation>, ExplainError> {
        let count = self.card.tags.len();
        if let Some(&output) = outputs.iter().find(|&&output| output >= count) {
            return Err(ExplainError::UnknownOutput {
                output,
                outputs: count,
            });
        }
        match &self.scorer {
            Scorer::Ngram(model) => Ok(exact(model, text, outputs, top_k)),
            Scorer::EncoderHead(_) => occlusion(self, text, outputs, top_k, MAX_OCCLUDED_WORDS),
        }
    }
}

/// A word (or a token without words) of the text, in bytes of the lower-cased text.
struct Unit {
    lowered: Range<usize>,
}

/// Maps byte offsets of `text.to_lowercase()` back to character offsets of `text`: lower-
/// casing can change a character's length (`İ` becomes two characters), never the order.
struct Places {
    /// Per byte of the lower-cased text (and one past its end): the character of `text` it
    /// came from.
    character: Vec<usize>,
    characters: usize,
}

impl Places {
    fn new(text: &str, lowered: &str) -> Self {
        let mut character = Vec::with_capacity(lowered.len() + 1);
        let mut characters = 0;
        for (index, c) in text.chars().enumerate() {
            // `str::to_lowercase` lower-cases each character as `char::to_lowercase` does,
            // except a final capital sigma (ς instead of σ: the same length).
            let bytes: usize = c.to_lowercase().map(char::len_utf8).sum();
            character.extend(std::iter::repeat_n(index, bytes));
            characters = index + 1;
        }
        // Equal by the rule above; should a future Unicode table break it, spans are
        // clamped rather than misplaced past the end.
        character.truncate(lowered.len());
        character.resize(lowered.len() + 1, characters);
        Self {
            character,
            characters,
        }
    }

    /// Characters of `text` behind bytes `range` of the lower-cased text.
    fn of(&self, range: &Range<usize>) -> Range<usize> {
        let start = self.character[range.start];
        let end = if range.end > range.start {
            self.character[range.end - 1] + 1
        } else {
            start
        };
        start..end.min(self.characters)
    }
}

/// The substring of `text` at characters `chars`.
fn substring(text: &str, chars: &Range<usize>) -> String {
    text.chars()
        .skip(chars.start)
        .take(chars.end - chars.start)
        .collect()
}

/// Exact contributions of an `ngram` model. Each feature's contribution (its TF-IDF value
/// × its weights through to the tag's logit) is split evenly between its occurrences in the
/// text (a repeated word's count is what made the feature larger), and each occurrence's
/// share goes to the words it was read from: a word to itself, a word pair half to each,
/// a character n-gram evenly to the words it overlaps, or, overlapping none (the `'t` of
/// "can't"), to the nearest word of its token; a token without any word ("I", "!!", "5")
/// stands for itself. Features the model never saw contribute nothing.
fn exact(model: &NgramModel, text: &str, outputs: &[usize], top_k: usize) -> Vec<Explanation> {
    let lowered = text.to_lowercase();
    let places = Places::new(text, &lowered);
    let occurrences = model.shape.features.occurrences(text);
    let mut units: Vec<Unit> = word_spans(&lowered)
        .into_iter()
        .map(|lowered| Unit { lowered })
        .collect();
    let words_total = units.len();
    let mut per_bucket: HashMap<u32, usize> = HashMap::new();
    for occurrence in &occurrences {
        *per_bucket.entry(occurrence.bucket).or_default() += 1;
    }
    // Per row of the vector: its contribution to each output asked about.
    let row_contributions: HashMap<u32, Vec<f32>> = model
        .vectorize(text)
        .into_iter()
        .map(|(row, value)| {
            (
                model.buckets[row as usize],
                row_contribution(model, row, value, outputs),
            )
        })
        .collect();
    let mut totals: Vec<Vec<f32>> = vec![vec![0.0; outputs.len()]; units.len()];
    for occurrence in &occurrences {
        let Some(contribution) = row_contributions.get(&occurrence.bucket) else {
            continue;
        };
        let count = per_bucket.get(&occurrence.bucket).copied().unwrap_or(1) as f32;
        let owners = owners(
            &mut units,
            &mut totals,
            words_total,
            occurrence,
            outputs.len(),
        );
        let share = count * owners.len() as f32;
        for owner in owners {
            for (total, value) in totals[owner].iter_mut().zip(contribution) {
                *total += value / share;
            }
        }
    }
    let logits = model.logits(text);
    outputs
        .iter()
        .enumerate()
        .map(|(column, &output)| {
            let mut words: Vec<WordContribution> = units
                .iter()
                .zip(&totals)
                .map(|(unit, total)| {
                    let chars = places.of(&unit.lowered);
                    WordContribution {
                        phrase: substring(text, &chars),
                        start: chars.start,
                        end: chars.end,
                        contribution: total[column],
                    }
                })
                .collect();
            sort_largest_first(&mut words);
            let rest = words.iter().skip(top_k).map(|w| w.contribution).sum();
            words.truncate(top_k);
            Explanation {
                output,
                method: ExplanationMethod::Exact,
                logit: logits[output],
                bias: Some(model.bias[output]),
                words,
                rest: Some(rest),
                words_total,
                words_examined: words_total,
            }
        })
        .collect()
}

/// What one row of the vector (a feature with TF-IDF value `value`) adds to each output's
/// logit: through the table alone, or through the table and the projection.
fn row_contribution(model: &NgramModel, row: u32, value: f32, outputs: &[usize]) -> Vec<f32> {
    let width = model.width();
    let weights = &model.table[row as usize * width..(row as usize + 1) * width];
    if model.shape.hidden == 0 {
        return outputs
            .iter()
            .map(|&output| value * weights[output])
            .collect();
    }
    let count = model.shape.outputs;
    outputs
        .iter()
        .map(|&output| {
            let through: f32 = weights
                .iter()
                .enumerate()
                .map(|(h, weight)| weight * model.projection[h * count + output])
                .sum();
            value * through
        })
        .collect()
}

/// The units an occurrence's share goes to (see `exact`); adds a unit for a token that has
/// no word. The first `words` units are the words, disjoint and in text order, so the ones a
/// span touches are found by binary search; the units after them are word-less tokens.
fn owners(
    units: &mut Vec<Unit>,
    totals: &mut Vec<Vec<f32>>,
    words: usize,
    occurrence: &Occurrence,
    columns: usize,
) -> Vec<usize> {
    // The words that end after `range` starts and start before it ends: a run.
    let touching = |units: &[Unit], range: &Range<usize>| -> Vec<usize> {
        let first = units[..words].partition_point(|unit| unit.lowered.end <= range.start);
        (first..words)
            .take_while(|&index| units[index].lowered.start < range.end)
            .collect()
    };
    let overlapping = touching(units, &occurrence.span);
    if !overlapping.is_empty() || occurrence.family == Family::Word {
        return overlapping;
    }
    // No word under a character n-gram: the nearest word of its token (words never cross
    // whitespace, so the words touching the token lie within it).
    let distance = |unit: &Unit| {
        if unit.lowered.end <= occurrence.span.start {
            occurrence.span.start - unit.lowered.end
        } else {
            unit.lowered.start.saturating_sub(occurrence.span.end)
        }
    };
    if let Some(index) = touching(units, &occurrence.token)
        .into_iter()
        .min_by_key(|&index| distance(&units[index]))
    {
        return vec![index];
    }
    if let Some(offset) = units[words..]
        .iter()
        .position(|unit| unit.lowered == occurrence.token)
    {
        return vec![words + offset];
    }
    units.push(Unit {
        lowered: occurrence.token.clone(),
    });
    totals.push(vec![0.0; columns]);
    vec![units.len() - 1]
}

/// Largest contribution first; ties in text order, so the order never depends on hashing.
fn sort_largest_first(words: &mut [WordContribution]) {
    words.sort_by(|a, b| {
        b.contribution
            .total_cmp(&a.contribution)
            .then(a.start.cmp(&b.start))
    });
}

/// Occlusion over the first `cap` words: the text, and the text without each of them, scored
/// in one batch (one forward pass per variant, batched by the encoder).
fn occlusion(
    model: &TaggingModel,
    text: &str,
    outputs: &[usize],
    top_k: usize,
    cap: usize,
) -> Result<Vec<Explanation>, ExplainError> {
    let words = word_spans_of_text(text);
    let words_total = words.len();
    let examined: Vec<Range<usize>> = words.into_iter().take(cap).collect();
    let mut variants: Vec<String> = Vec::with_capacity(examined.len() + 1);
    variants.push(text.to_string());
    for word in &examined {
        variants.push(format!("{}{}", &text[..word.start], &text[word.end..]));
    }
    let refs: Vec<&str> = variants.iter().map(String::as_str).collect();
    let logits = model.logits_batch(&refs)?;
    let (full, without) = logits
        .split_first()
        .ok_or_else(|| ModelError::corrupt("encoder", "no scores for the text"))?;
    Ok(outputs
        .iter()
        .map(|&output| {
            let mut contributions: Vec<WordContribution> = examined
                .iter()
                .zip(without)
                .map(|(word, scores)| {
                    let start = text[..word.start].chars().count();
                    let phrase = text[word.clone()].to_string();
                    let end = start + phrase.chars().count();
                    WordContribution {
                        phrase,
                        start,
                        end,
                        contribution: full[output] - scores[output],
                    }
                })
                .collect();
            sort_largest_first(&mut contributions);
            contributions.truncate(top_k);
            Explanation {
                output,
                method: ExplanationMethod::Occlusion,
                logit: full[output],
                bias: None,
                words: contributions,
                rest: None,
                words_total,
                words_examined: examined.len(),
            }
        })
        .collect())
}

/// Byte ranges of the words of `text` itself (not lower-cased): the same words as
/// `word_spans` of the lower-cased text, as occlusion removes them from the text it scores.
fn word_spans_of_text(text: &str) -> Vec<Range<usize>> {
    let lowered = text.to_lowercase();
    let places = Places::new(text, &lowered);
    let starts: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    word_spans(&lowered)
        .iter()
        .map(|span| {
            let chars = places.of(span);
            starts[chars.start]..starts[chars.end]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
    use super::*;
    use crate::card::{CARD_FORMAT, ModelCard, ModelKind, TagRef};
    use crate::encoder::head::{EncoderHeadModel, LinearHead};
    use crate::encoder::hub::HubCache;
    use crate::encoder::testing::{TINY_REPO, TinyBert};
    use crate::encoder::{Encoder, EncoderOptions, WEIGHTS_FILE};
    use crate::features::FeatureConfig;
    use crate::ngram::NgramShape;
    use datasets::{LabelMode, TagId, TagName};
    use std::sync::Arc;

    fn card(kind: ModelKind, tags: &[&str]) -> ModelCard {
        ModelCard {
            format: CARD_FORMAT,
            kind,
            label_mode: LabelMode::Multi,
            groups: Vec::new(),
            tags: tags
                .iter()
                .enumerate()
                .map(|(i, name)| TagRef {
                    id: TagId(i as i64 + 1),
                    name: TagName::parse(name).unwrap(),
                })
                .collect(),
            temperature: 1.0,
            thresholds: vec![0.5; tags.len()],
            params: serde_json::json!({}),
            training_fingerprint: String::new(),
            ngram: None,
            encoder: None,
            out_of_distribution: None,
        }
    }

    /// A deterministic stream of numbers in [-1, 1).
    struct Numbers(u64);

    impl Numbers {
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// An n-gram model with random weights over every feature of `vocabulary`.
    fn random_ngram(vocabulary: &str, hidden: usize, outputs: usize, seed: u64) -> NgramModel {
        let features = FeatureConfig {
            hash_bits: 18,
            ..FeatureConfig::default()
        };
        let mut numbers = Numbers(seed);
        let mut rows = HashMap::new();
        let (mut buckets, mut families, mut idf) = (Vec::new(), Vec::new(), Vec::new());
        for occurrence in features.occurrences(vocabulary) {
            if rows.contains_key(&occurrence.bucket) {
                continue;
            }
            rows.insert(occurrence.bucket, buckets.len() as u32);
            buckets.push(occurrence.bucket);
            families.push(occurrence.family);
            idf.push(2.0 + numbers.next());
        }
        let width = if hidden == 0 { outputs } else { hidden };
        let table = (0..buckets.len() * width).map(|_| numbers.next()).collect();
        let projection = (0..hidden * outputs).map(|_| numbers.next()).collect();
        let bias = (0..outputs).map(|_| numbers.next()).collect();
        NgramModel {
            shape: NgramShape {
                features,
                hidden,
                outputs,
            },
            rows,
            buckets,
            families,
            idf,
            table,
            projection,
            bias,
        }
    }

    fn ngram_model(model: NgramModel, tags: &[&str]) -> TaggingModel {
        let mut card = card(ModelKind::Ngram, tags);
        card.ngram = Some(model.shape);
        TaggingModel {
            card,
            scorer: Scorer::Ngram(model),
        }
    }

    fn sum_of(explanation: &Explanation) -> f32 {
        explanation.bias.unwrap()
            + explanation
                .words
                .iter()
                .map(|w| w.contribution)
                .sum::<f32>()
            + explanation.rest.unwrap()
    }

    fn assert_spans_name_their_words(text: &str, explanation: &Explanation) {
        let chars: Vec<char> = text.chars().collect();
        for word in &explanation.words {
            let at: String = chars[word.start..word.end].iter().collect();
            assert_eq!(at, word.phrase, "{text:?}");
        }
    }

    const VOCABULARY: &str = "refund payment invoice charged twice login password reset \
        locked account export csv report crash app mobile can't log-in ΣΊΣΥΦΟΣ İstanbul";

    #[test]
    fn exact_contributions_and_the_bias_add_up_to_the_logit() {
        for hidden in [0, 3] {
            let model = ngram_model(random_ngram(VOCABULARY, hidden, 3, 7), &["a", "b", "c"]);
            for text in [
                "Refund please: I was charged twice, twice! I can't log-in.",
                "ΣΊΣΥΦΟΣ from İstanbul wants a CSV export report",
                "nothing the model knows",
                "",
            ] {
                let logits = model.logits(text);
                for top_k in [0, 2, usize::MAX] {
                    let explained = model.explain(text, &[0, 1, 2], top_k).unwrap();
                    for explanation in &explained {
                        let logit = logits[explanation.output];
                        assert_eq!(explanation.logit, logit);
                        assert!(
                            (sum_of(explanation) - logit).abs() < 1e-4 * (1.0 + logit.abs()),
                            "hidden {hidden}, {text:?}: {} against {logit}",
                            sum_of(explanation)
                        );
                        assert!(explanation.words.len() <= top_k);
                        assert_spans_name_their_words(text, explanation);
                        assert!(
                            explanation
                                .words
                                .windows(2)
                                .all(|w| w[0].contribution >= w[1].contribution)
                        );
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn exact_contributions_add_up_on_any_text(text in "(\\PC{0,12} ?(refund|twice|can't|log-in|Σ|İ|a) ?){0,6}") {
            let model = ngram_model(random_ngram(VOCABULARY, 0, 2, 11), &["a", "b"]);
            let logits = model.logits(&text);
            for explanation in model.explain(&text, &[0, 1], usize::MAX).unwrap() {
                let logit = logits[explanation.output];
                proptest::prop_assert!((sum_of(&explanation) - logit).abs() < 1e-4 * (1.0 + logit.abs()));
                assert_spans_name_their_words(&text, &explanation);
            }
        }
    }

    /// A tiny linear n-gram model trained by plain gradient descent on the logistic loss, one
    /// sigmoid per tag: enough to learn which words mean which tag.
    fn train_tiny_ngram(examples: &[(&str, usize)], outputs: usize) -> NgramModel {
        let features = FeatureConfig {
            hash_bits: 18,
            ..FeatureConfig::default()
        };
        let mut model = NgramModel {
            shape: NgramShape {
                features,
                hidden: 0,
                outputs,
            },
            rows: HashMap::new(),
            buckets: Vec::new(),
            families: Vec::new(),
            idf: Vec::new(),
            table: Vec::new(),
            projection: Vec::new(),
            bias: vec![0.0; outputs],
        };
        for (text, _) in examples {
            for (bucket, (family, _)) in features.extract(text) {
                if let std::collections::hash_map::Entry::Vacant(entry) = model.rows.entry(bucket) {
                    entry.insert(model.buckets.len() as u32);
                    model.buckets.push(bucket);
                    model.families.push(family);
                    model.idf.push(1.0);
                }
            }
        }
        model.table = vec![0.0; model.buckets.len() * outputs];
        let vectors: Vec<_> = examples.iter().map(|(t, _)| model.vectorize(t)).collect();
        for _ in 0..200 {
            for (vector, (_, tag)) in vectors.iter().zip(examples) {
                let logits = model.logits_of_bag(&model.bag(vector));
                for (output, logit) in logits.iter().enumerate() {
                    let target = if output == *tag { 1.0 } else { 0.0 };
                    let gradient = 1.0 / (1.0 + (-logit).exp()) - target;
                    model.bias[output] -= 0.5 * gradient;
                    for (row, value) in vector {
                        model.table[*row as usize * outputs + output] -= 0.5 * gradient * value;
                    }
                }
            }
        }
        model
    }

    #[test]
    fn a_trained_ngram_models_top_word_for_a_tag_is_the_word_that_means_it() {
        let examples = [
            ("please refund my order", 0),
            ("I want a refund for the order", 0),
            ("refund the charge on my account", 0),
            ("my order shows a refund", 0),
            ("cannot login to my account", 1),
            ("login fails for the order page", 1),
            ("the login page is broken", 1),
            ("please fix login for my team", 1),
        ];
        let model = ngram_model(train_tiny_ngram(&examples, 2), &["billing", "access"]);
        let text = "Hello, my account needs a REFUND for the order please";
        let explained = model.explain(text, &[0, 1], 3).unwrap();
        assert_eq!(explained[0].words[0].phrase, "REFUND", "{explained:?}");
        let at: String = text.chars().skip(26).take(6).collect();
        assert_eq!((explained[0].words[0].start, at.as_str()), (26, "REFUND"));
        assert!(explained[0].words[0].contribution > 0.0);
        let text = "the LOGIN screen of my account";
        let explained = model.explain(text, &[1], 1).unwrap();
        assert_eq!(explained[0].words[0].phrase, "LOGIN", "{explained:?}");
    }

    /// A one-output model whose only weight (1.0, IDF 1) is on the features `keep` picks.
    fn model_of(
        features: FeatureConfig,
        text: &str,
        keep: impl Fn(&Occurrence) -> bool,
    ) -> TaggingModel {
        let mut model = random_ngram("", 0, 1, 1);
        model.shape.features = features;
        for occurrence in features.occurrences(text).iter().filter(|o| keep(o)) {
            if !model.rows.contains_key(&occurrence.bucket) {
                model
                    .rows
                    .insert(occurrence.bucket, model.buckets.len() as u32);
                model.buckets.push(occurrence.bucket);
                model.families.push(occurrence.family);
                model.idf.push(1.0);
                model.table.push(1.0);
            }
        }
        model.bias = vec![0.0];
        ngram_model(model, &["a"])
    }

    fn contributions(model: &TaggingModel, text: &str) -> Vec<(String, f32)> {
        let mut words: Vec<(String, f32)> = model.explain(text, &[0], usize::MAX).unwrap()[0]
            .words
            .iter()
            .filter(|w| w.contribution.abs() > 1e-6)
            .map(|w| (w.phrase.clone(), (w.contribution * 1000.0).round() / 1000.0))
            .collect();
        words.sort_by(|a, b| a.0.cmp(&b.0));
        words
    }

    #[test]
    fn each_ngram_goes_to_the_words_it_was_read_from() {
        let words_only = FeatureConfig {
            hash_bits: 18,
            word_ngrams: 2,
            char_min: 0,
            char_max: 0,
        };
        // A word pair: half to each word (one feature, unit length: 1.0 in all).
        let text = "please refund now";
        let pair = model_of(words_only, text, |o| o.span == (0..13));
        assert_eq!(
            contributions(&pair, text),
            [("please".into(), 0.5), ("refund".into(), 0.5)]
        );
        // A repeated word: its feature (tf 1 + ln 2, the only one: 1.0) split evenly.
        let text = "refund, refund";
        let twice = model_of(words_only, text, |o| o.span == (0..6));
        let explained = twice.explain(text, &[0], usize::MAX).unwrap();
        let shares: Vec<(usize, f32)> = explained[0]
            .words
            .iter()
            .map(|w| (w.start, w.contribution))
            .collect();
        assert_eq!(shares.len(), 2);
        assert!(
            shares.iter().all(|(_, c)| (c - 0.5).abs() < 1e-6),
            "{shares:?}"
        );

        let trigrams = FeatureConfig {
            hash_bits: 18,
            word_ngrams: 1,
            char_min: 3,
            char_max: 3,
        };
        // "'t " lies under no word: it goes to the nearest word of its token, "can".
        let text = "can't stop";
        let tail = model_of(trigrams, text, |o| {
            o.family == Family::Char && o.span == (3..5)
        });
        assert_eq!(contributions(&tail, text), [("can".into(), 1.0)]);
        // "n't" overlaps "can" only ("n"): all of it to "can".
        let across = model_of(trigrams, text, |o| {
            o.family == Family::Char && o.span == (2..5)
        });
        assert_eq!(contributions(&across, text), [("can".into(), 1.0)]);
        // "g-i" of "log-in" overlaps both words: half each.
        let text = "log-in";
        let both = model_of(trigrams, text, |o| {
            o.family == Family::Char && o.span == (2..5)
        });
        assert_eq!(
            contributions(&both, text),
            [("in".into(), 0.5), ("log".into(), 0.5)]
        );
        // A token without words stands for itself: its three trigrams, 1/√3 each.
        let text = "help !!! now";
        let bangs = model_of(trigrams, text, |o| {
            o.family == Family::Char && o.token == (5..8)
        });
        assert_eq!(contributions(&bangs, text), [("!!!".into(), 1.732)]);
    }

    #[test]
    fn an_output_the_model_lacks_is_refused() {
        let model = ngram_model(random_ngram(VOCABULARY, 0, 2, 3), &["a", "b"]);
        assert!(matches!(
            model.explain("refund", &[2], 3),
            Err(ExplainError::UnknownOutput {
                output: 2,
                outputs: 2
            })
        ));
    }

    fn encoder_model(
        bert: TinyBert,
        weights: Option<HashMap<String, candle_core::Tensor>>,
        head: LinearHead,
    ) -> (tempfile::TempDir, TaggingModel) {
        let root = tempfile::tempdir().unwrap();
        let snapshot = bert.write(root.path(), TINY_REPO).unwrap();
        if let Some(weights) = weights {
            candle_core::safetensors::save(&weights, snapshot.join(WEIGHTS_FILE)).unwrap();
        }
        let options = EncoderOptions {
            threads: 1,
            batch_size: 8,
            ..EncoderOptions::default()
        };
        let encoder = Encoder::load(&HubCache::at(root.path()), TINY_REPO, &options).unwrap();
        let tags: Vec<String> = (0..head.outputs).map(|i| format!("tag-{i}")).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let mut card = card(ModelKind::EncoderHead, &tags);
        card.encoder = Some(encoder.spec().clone());
        let model = TaggingModel {
            card,
            scorer: Scorer::EncoderHead(EncoderHeadModel {
                encoder: Arc::new(encoder),
                head,
                centroids: Vec::new(),
            }),
        };
        (root, model)
    }

    #[test]
    fn occlusion_on_a_tiny_random_encoder_is_the_drop_in_logit_without_each_word() {
        let dim = TinyBert::default().hidden;
        let mut numbers = Numbers(5);
        let head = LinearHead {
            dim,
            outputs: 2,
            weight: (0..2 * dim).map(|_| numbers.next()).collect(),
            bias: vec![0.1, -0.2],
        };
        let (_root, model) = encoder_model(TinyBert::default(), None, head);
        let text = "My card was charged twice, please refund the payment";
        let explained = model.explain(text, &[0, 1], usize::MAX).unwrap();
        let full = model.logits(text);
        for explanation in &explained {
            assert_eq!(explanation.method, ExplanationMethod::Occlusion);
            assert_eq!(
                (explanation.words_total, explanation.words_examined),
                (9, 9)
            );
            assert_eq!(explanation.words.len(), 9);
            assert!((explanation.logit - full[explanation.output]).abs() < 1e-5);
            assert_spans_name_their_words(text, explanation);
            for word in &explanation.words {
                // Scored alone, without the batch: the same drop.
                let chars: Vec<char> = text.chars().collect();
                let without: String = chars[..word.start]
                    .iter()
                    .chain(&chars[word.end..])
                    .collect();
                let expected =
                    full[explanation.output] - model.logits(&without)[explanation.output];
                assert!(
                    (word.contribution - expected).abs() < 1e-4,
                    "{}: {} against {expected}",
                    word.phrase,
                    word.contribution
                );
            }
        }
        // A long text: only the first MAX_OCCLUDED_WORDS words are weighed.
        let long = "refund payment ".repeat(40);
        let explained = model.explain(&long, &[0], 3).unwrap();
        assert_eq!(explained[0].words_total, 80);
        assert_eq!(explained[0].words_examined, MAX_OCCLUDED_WORDS);
        assert_eq!(explained[0].words.len(), 3);
        assert!(explained[0].words.iter().all(|w| w.end <= 15 * 32));
    }

    /// A tiny BERT whose layers add nothing (their output projections are zero) and whose
    /// position and type embeddings are zero: a text's embedding is the normalised mean of
    /// its word pieces' own vectors. Every word piece's vector is random with a zero first
    /// component, except `refund`'s, which is large along it; a head reading only that
    /// component then scores "refund" and nothing else.
    fn one_word_decides() -> HashMap<String, candle_core::Tensor> {
        use candle_core::{Device, Tensor};
        let bert = TinyBert::default();
        let mut weights = bert.weights().unwrap();
        let vocabulary = crate::encoder::testing::vocabulary();
        let refund = vocabulary.iter().position(|p| p == "refund").unwrap();
        let h = bert.hidden;
        let mut numbers = Numbers(9);
        let mut table: Vec<f32> = (0..vocabulary.len() * h).map(|_| numbers.next()).collect();
        for piece in 0..vocabulary.len() {
            table[piece * h] = 0.0;
        }
        table[refund * h..(refund + 1) * h].fill(0.0);
        table[refund * h] = 10.0;
        table[refund * h + 1] = -10.0;
        let zeros =
            |shape: &[usize]| Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu).unwrap();
        weights.insert(
            "embeddings.word_embeddings.weight".into(),
            Tensor::from_vec(table, (vocabulary.len(), h), &Device::Cpu).unwrap(),
        );
        weights.insert(
            "embeddings.position_embeddings.weight".into(),
            zeros(&[bert.max_positions, h]),
        );
        weights.insert(
            "embeddings.token_type_embeddings.weight".into(),
            zeros(&[2, h]),
        );
        let ones = Tensor::ones(h, candle_core::DType::F32, &Device::Cpu).unwrap();
        for (name, value) in weights.iter_mut() {
            if name.ends_with("output.dense.weight") || name.ends_with("output.dense.bias") {
                *value = value.zeros_like().unwrap();
            } else if name.ends_with("LayerNorm.weight") {
                *value = ones.clone();
            } else if name.ends_with("LayerNorm.bias") {
                *value = zeros(&[h]);
            }
        }
        weights
    }

    #[test]
    fn occlusion_finds_the_one_word_that_decides_a_tag() {
        let dim = TinyBert::default().hidden;
        let mut weight = vec![0.0; 2 * dim];
        weight[0] = 20.0;
        // The second tag reads another component, which every word moves a little.
        weight[dim + 2] = 20.0;
        let head = LinearHead {
            dim,
            outputs: 2,
            weight,
            bias: vec![0.0, 0.0],
        };
        let (_root, model) = encoder_model(TinyBert::default(), Some(one_word_decides()), head);
        let text = "the payment on my card failed twice, please refund it to my account";
        let explained = model.explain(text, &[0], 3).unwrap();
        let top = &explained[0].words[0];
        assert_eq!(top.phrase, "refund", "{explained:?}");
        assert!(top.contribution > 1.0, "{top:?}");
        assert!(
            explained[0].words[1].contribution < top.contribution / 4.0,
            "{explained:?}"
        );
        // Without the word, no word comes near it.
        let text = "the payment on my card failed twice, please pay it to my account";
        let without = model.explain(text, &[0, 1], 1).unwrap();
        assert!(
            without[0].words[0].contribution < top.contribution / 4.0,
            "{without:?}"
        );
        // The other tag reads a component every word moves: "refund" is not its word.
        let other = model.explain(text, &[1], 1).unwrap();
        assert_ne!(other[0].words[0].phrase, "refund");
    }
}
