//! Model selection for `ngram`: before training, each candidate setting (regularisation,
//! n-gram families and ranges) is fitted on k-fold splits of the project's own labelled
//! training tickets (never the test split) and judged by its held-out accuracy; the number
//! of epochs comes from the same folds' early stopping. The search runs in a fixed order
//! within a budget counted in weight updates, not seconds, so the same data and seed always
//! choose the same setting whatever the machine's load.

use crate::examples::{Example, fold_of};
use crate::ngram::{NgramParams, VectorisedSet, build_vocabulary, fit_vectorised};
use inference::features::FeatureConfig;
use inference::heads::Heads;
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;

/// Folds of the search. Three keep each fit at two thirds of the tickets (close to the
/// final model's) for a third of the work of ten.
pub const SELECTION_FOLDS: usize = 3;
/// The budget to ask for (`--selection-budget`), in millions of weight updates (one update: one feature of one ticket
/// times one output, in one epoch). About 25–40 s of search on 2 cores for a project of
/// 10,000 short tickets over 77 tags, seconds for a few thousand tickets over a few tags.
pub const SUGGESTED_SELECTION_BUDGET: u64 = 40_000;
/// Below this many labelled tickets per fold the held-out accuracy is too coarse to choose
/// by: the request's own setting is kept.
const MIN_TICKETS_PER_FOLD: usize = 10;
/// L2 penalties tried, from none to strong (the default first).
const L2_GRID: [f32; 4] = [1e-6, 1e-5, 1e-4, 1e-3];

/// One setting the search may choose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub features: FeatureConfig,
    pub l2: f32,
}

/// How one candidate did on the folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The n-gram families, e.g. "word 1–2 + char 3–5".
    pub features: String,
    pub word_ngrams: u8,
    pub char_min: u8,
    pub char_max: u8,
    pub l2: f32,
    /// Mean over the folds of the share of held-out tickets whose best-scored tag is right.
    pub accuracy: f64,
    /// Mean held-out cross-entropy at each fold's best epoch.
    pub loss: f64,
    /// Each fold's best epoch (lowest held-out loss), averaged and rounded.
    pub epochs: usize,
    /// Weight updates this candidate took, over its folds.
    pub updates: u64,
}

/// What the search tried and chose; recorded in the model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub folds: usize,
    /// Labelled tickets the folds were cut from.
    pub tickets: usize,
    /// Weight updates allowed (the budget in millions, times a million), and used.
    pub budget_updates: u64,
    pub updates: u64,
    /// Candidates left untried because the budget ran out (then a bigger budget may choose
    /// differently).
    pub untried: usize,
    /// Index into `trials` of the chosen one.
    pub chosen: usize,
    pub trials: Vec<Trial>,
}

impl Selection {
    /// The chosen trial.
    pub fn choice(&self) -> &Trial {
        &self.trials[self.chosen]
    }

    /// `params` with the chosen setting: features, L2, and the epochs to train for.
    pub fn apply(&self, params: &NgramParams) -> NgramParams {
        let choice = self.choice();
        NgramParams {
            features: FeatureConfig {
                word_ngrams: choice.word_ngrams,
                char_min: choice.char_min,
                char_max: choice.char_max,
                ..params.features
            },
            l2: choice.l2,
            epochs: choice.epochs,
            ..*params
        }
    }

    /// One line for people: what was chosen, on what evidence.
    pub fn summary(&self) -> String {
        let choice = self.choice();
        let cut = if self.untried > 0 {
            format!("; budget reached, {} candidate(s) untried", self.untried)
        } else {
            String::new()
        };
        format!(
            "chose {}, L2 {:e}, {} epochs by {}-fold cross-validation on {} tickets \
             (held-out accuracy {:.3}; {} candidates tried, {:.0} of {:.0} M weight updates{cut})",
            choice.features,
            choice.l2,
            choice.epochs,
            self.folds,
            self.tickets,
            choice.accuracy,
            self.trials.len(),
            self.updates as f64 / 1e6,
            self.budget_updates as f64 / 1e6,
        )
    }
}

/// Progress of the search, once per candidate tried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectionReport {
    pub tried: usize,
    pub candidates: usize,
}

/// Why there was no search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSelection {
    /// Too few labelled tickets for folds to tell candidates apart.
    TooFewTickets,
    /// The caller asked to stop.
    Stopped,
}

/// The feature families of `features`, for people.
pub fn describe(features: &FeatureConfig) -> String {
    let words = match features.word_ngrams {
        0 | 1 => "word 1".to_string(),
        n => format!("word 1–{n}"),
    };
    if features.char_min > 0 && features.char_max >= features.char_min {
        format!("{words} + char {}–{}", features.char_min, features.char_max)
    } else {
        words
    }
}

/// The candidates in the order they are tried, `base` (the request's own setting) first.
/// Two stages: first the families and ranges at `base`'s L2, then L2 at the best of
/// those; the second stage is built from the first's result (`regularisation_stage`).
fn feature_stage(base: &NgramParams) -> Vec<Candidate> {
    let with = |word_ngrams: u8, char_min: u8, char_max: u8| Candidate {
        features: FeatureConfig {
            word_ngrams,
            char_min,
            char_max,
            ..base.features
        },
        l2: base.l2,
    };
    let mut candidates = vec![Candidate {
        features: base.features,
        l2: base.l2,
    }];
    for candidate in [
        // Words alone: long technical tickets whose character n-grams are mostly noise.
        with(2, 0, 0),
        // Shorter character n-grams: short texts, typos and inflections.
        with(2, 2, 5),
        // Unigrams with characters: too few tickets for word pairs to recur.
        with(1, 3, 5),
    ] {
        if !candidates.contains(&candidate) {
            candidates.push(candidate);
        }
    }
    candidates
}

fn regularisation_stage(best: Candidate) -> Vec<Candidate> {
    L2_GRID
        .iter()
        .filter(|l2| **l2 != best.l2)
        .map(|&l2| Candidate { l2, ..best })
        .collect()
}

/// One fold: the tickets a fit learns from and those it is judged on.
struct Fold {
    train: Vec<Example>,
    held_out: Vec<Example>,
}

fn folds_of(examples: &[Example], folds: usize) -> Vec<Fold> {
    (0..folds)
        .map(|fold| {
            let (held_out, train): (Vec<Example>, Vec<Example>) = examples
                .iter()
                .cloned()
                .partition(|e| fold_of(e.ticket, folds) == fold);
            Fold { train, held_out }
        })
        .collect()
}

/// One candidate on one fold: (accuracy, loss, best epoch, weight updates).
fn fit_fold(
    heads: &Heads,
    outputs: usize,
    fold: &Fold,
    candidate: Candidate,
    base: &NgramParams,
) -> (f64, f64, usize, u64) {
    let params = NgramParams {
        features: candidate.features,
        l2: candidate.l2,
        ..*base
    };
    let model = build_vocabulary(&params, outputs, &fold.train);
    let width = model.width();
    let train_set = VectorisedSet::new(&model, &fold.train);
    let held_out_set = VectorisedSet::new(&model, &fold.held_out);
    let per_epoch = train_set.updates_per_epoch(width) + held_out_set.updates_per_epoch(width);
    let fitted = fit_vectorised(heads, model, &train_set, &held_out_set, &params, |_| {
        ControlFlow::Continue(())
    });
    let mut right = 0usize;
    let mut loss = 0.0;
    for (vector, example) in held_out_set.vectors.iter().zip(&fold.held_out) {
        let logits = fitted.model.logits_of_bag(&fitted.model.bag(vector));
        let best = logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, v)| {
                if *v > bv { (i, *v) } else { (bi, bv) }
            })
            .0;
        right += usize::from(example.targets.contains(&best));
        loss += crate::ngram::example_loss(&logits, &example.targets, heads);
    }
    let n = fold.held_out.len().max(1) as f64;
    (
        right as f64 / n,
        loss / n,
        fitted.best_epoch,
        per_epoch * fitted.epochs_run as u64,
    )
}

/// All folds of one candidate, as many at once as there are cores (each fit is
/// deterministic and independent, so the result does not depend on how they are scheduled;
/// at most that many fold models are in memory at once).
fn try_candidate(
    heads: &Heads,
    outputs: usize,
    folds: &[Fold],
    candidate: Candidate,
    base: &NgramParams,
) -> Trial {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results: Vec<(f64, f64, usize, u64)> = Vec::with_capacity(folds.len());
    for group in folds.chunks(threads.max(1)) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|fold| scope.spawn(move || fit_fold(heads, outputs, fold, candidate, base)))
                .collect();
            for handle in handles {
                match handle.join() {
                    Ok(result) => results.push(result),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        });
    }
    let k = results.len().max(1) as f64;
    let accuracy = results.iter().map(|r| r.0).sum::<f64>() / k;
    let loss = results.iter().map(|r| r.1).sum::<f64>() / k;
    let epochs = (results.iter().map(|r| r.2 as f64).sum::<f64>() / k).round() as usize;
    let updates: u64 = results.iter().map(|r| r.3).sum();
    Trial {
        features: describe(&candidate.features),
        word_ngrams: candidate.features.word_ngrams,
        char_min: candidate.features.char_min,
        char_max: candidate.features.char_max,
        l2: candidate.l2,
        accuracy,
        loss,
        epochs: epochs.max(1),
        updates,
    }
}

/// Higher held-out accuracy wins; then lower loss; then the earlier candidate.
fn better(a: &Trial, b: &Trial) -> bool {
    a.accuracy > b.accuracy || (a.accuracy == b.accuracy && a.loss < b.loss)
}

/// Chooses `ngram`'s setting on folds of `examples` (the labelled training tickets) within
/// `budget` million weight updates. The candidate that reaches the budget is finished; the
/// ones after it are not tried. `on_trial` hears about each candidate and may say stop.
pub fn select_ngram(
    heads: &Heads,
    outputs: usize,
    examples: &[Example],
    base: &NgramParams,
    budget: u64,
    mut on_trial: impl FnMut(SelectionReport) -> ControlFlow<()>,
) -> Result<Selection, NoSelection> {
    let folds = folds_of(examples, SELECTION_FOLDS);
    if folds
        .iter()
        .any(|f| f.held_out.len() < MIN_TICKETS_PER_FOLD || f.train.is_empty())
    {
        return Err(NoSelection::TooFewTickets);
    }
    let mut selection = Selection {
        folds: SELECTION_FOLDS,
        tickets: examples.len(),
        budget_updates: budget.saturating_mul(1_000_000),
        updates: 0,
        untried: 0,
        chosen: 0,
        trials: Vec::new(),
    };
    let mut candidates_of_stage = feature_stage(base);
    let mut best_candidate = candidates_of_stage[0];
    // The second stage's size is known before it starts: every stage-one candidate has the
    // requested L2, and the second tries the others.
    let second_stage = regularisation_stage(best_candidate).len();
    let planned = candidates_of_stage.len() + second_stage;
    for stage in 0..2 {
        if stage == 1 {
            candidates_of_stage = regularisation_stage(best_candidate);
        }
        for (index, candidate) in candidates_of_stage.iter().enumerate() {
            if selection.updates >= selection.budget_updates && !selection.trials.is_empty() {
                selection.untried =
                    candidates_of_stage.len() - index + if stage == 0 { second_stage } else { 0 };
                return Ok(selection);
            }
            let trial = try_candidate(heads, outputs, &folds, *candidate, base);
            selection.updates += trial.updates;
            if selection.trials.is_empty() || better(&trial, selection.choice()) {
                selection.chosen = selection.trials.len();
                best_candidate = *candidate;
            }
            selection.trials.push(trial);
            let report = SelectionReport {
                tried: selection.trials.len(),
                candidates: planned,
            };
            if on_trial(report).is_break() {
                return Err(NoSelection::Stopped);
            }
        }
    }
    Ok(selection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::TicketId;

    fn example(id: i64, text: String, target: usize) -> Example {
        Example {
            ticket: TicketId(id),
            text,
            targets: vec![target],
        }
    }

    /// Letters from a seeded generator, so every stem is a new word.
    fn stem(seed: u64) -> String {
        let mut random = crate::random::Random(seed);
        (0..7)
            .map(|_| char::from(b'a' + (random.next() % 26) as u8))
            .collect()
    }

    /// Tickets of made-up words, each used once, so word features never recur: only the
    /// endings ("…ozq" against "…uvx"), which character n-grams see, tell the tags apart.
    fn endings_only(tickets: i64) -> Vec<Example> {
        (0..tickets)
            .map(|i| {
                let tag = (i % 2) as usize;
                let ending = ["ozq", "uvx"][tag];
                let words: Vec<String> = (0..4)
                    .map(|w| format!("{}{ending}", stem((i * 4 + w) as u64)))
                    .collect();
                example(i, words.join(" "), tag)
            })
            .collect()
    }

    #[test]
    fn selection_picks_character_ngrams_when_only_they_separate_the_tags() {
        let examples = endings_only(120);
        let words_only = NgramParams {
            features: FeatureConfig {
                char_min: 0,
                char_max: 0,
                ..FeatureConfig::default()
            },
            epochs: 10,
            ..NgramParams::default()
        };
        let selection = select_ngram(
            &Heads::SINGLE,
            2,
            &examples,
            &words_only,
            SUGGESTED_SELECTION_BUDGET,
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
        // The request's own setting (words only) is tried first and cannot tell them apart.
        assert_eq!(selection.trials[0].char_max, 0);
        assert!(selection.trials[0].accuracy < 0.7, "{selection:?}");
        let choice = selection.choice();
        assert!(choice.char_min > 0, "{selection:?}");
        assert!(choice.accuracy > 0.9, "{selection:?}");
        let chosen = selection.apply(&words_only);
        assert!(chosen.features.char_min > 0);
        assert_eq!(chosen.epochs, choice.epochs);
    }

    #[test]
    fn selection_is_deterministic_and_records_every_trial() {
        let examples = endings_only(90);
        let params = NgramParams {
            epochs: 5,
            ..NgramParams::default()
        };
        let run = || {
            select_ngram(
                &Heads::SINGLE,
                2,
                &examples,
                &params,
                SUGGESTED_SELECTION_BUDGET,
                |_| ControlFlow::Continue(()),
            )
            .unwrap()
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        assert_eq!(a.untried, 0);
        assert_eq!(
            a.trials.len(),
            feature_stage(&params).len() + L2_GRID.len() - 1
        );
        assert!(a.updates > 0 && a.updates <= a.budget_updates);
    }

    #[test]
    fn a_spent_budget_stops_the_search_after_the_first_candidate() {
        let examples = endings_only(90);
        let params = NgramParams {
            epochs: 5,
            ..NgramParams::default()
        };
        let mut reports = Vec::new();
        let selection = select_ngram(&Heads::SINGLE, 2, &examples, &params, 0, |r| {
            reports.push(r);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(selection.trials.len(), 1);
        assert_eq!(selection.chosen, 0);
        assert_eq!(
            selection.untried,
            feature_stage(&params).len() + L2_GRID.len() - 2
        );
        assert_eq!(reports.len(), 1);
        assert!(selection.summary().contains("untried"));
    }

    #[test]
    fn too_few_tickets_keep_the_requested_setting() {
        let examples = endings_only(12);
        let outcome = select_ngram(
            &Heads::SINGLE,
            2,
            &examples,
            &NgramParams::default(),
            SUGGESTED_SELECTION_BUDGET,
            |_| ControlFlow::Continue(()),
        );
        assert_eq!(outcome, Err(NoSelection::TooFewTickets));
    }
}
