//! Model selection for `ngram`: before training, each candidate setting (regularisation,
//! n-gram families and ranges) is fitted on k-fold splits of the project's own labelled
//! training tickets (never the test split) and judged on the held-out folds by accuracy where
//! a ticket has one tag, by loss otherwise (`judged_by_accuracy`); the number of epochs comes
//! from the same folds' early stopping (the lowest held-out loss). The request's own setting stays the choice unless a candidate beats
//! it by more than the noise of the folds (the one-standard-error rule). The search runs in a
//! fixed order within a budget counted in weight updates, not seconds, so the same data and
//! seed always choose the same setting whatever the machine's load.

use crate::examples::{Example, fold_of};
use crate::ngram::{
    HeldOutScore, NgramParams, NgramSolver, Outcome, VectorisedSet, build_vocabulary,
    fit_vectorised, held_out_outcomes, held_out_score, judged_by_accuracy,
};
use inference::features::FeatureConfig;
use inference::heads::Heads;
use inference::ngram::NgramModel;
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// Folds of the search. Three keep each fit at two thirds of the tickets (close to the
/// final model's) for a third of the work of ten.
pub const SELECTION_FOLDS: usize = 3;
/// The budget to ask for (`--selection-budget`), in millions of weight updates (one update:
/// one feature of one ticket times one output, in one epoch). A few thousand tickets over a
/// few tags try every candidate well within it (Ticket Tagger issues: about 500); a project
/// of 10,000 short tickets over 77 tags reaches it after two or three candidates (each
/// about 4,000–6,000).
pub const SUGGESTED_SELECTION_BUDGET: u64 = 10_000;
/// Below this many labelled tickets per fold the held-out accuracy is too coarse to choose
/// by: the request's own setting is kept.
const MIN_TICKETS_PER_FOLD: usize = 10;
/// L2 penalties tried on the best family, by decades from practically none (the default)
/// to one that underfits: at 1e-3 the lazy per-update penalty pulls rare n-grams' weights
/// to nothing between their occurrences (on BANKING77 its held-out accuracy is about 0.7 points below the others').
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
    /// Mean over the folds of the share of held-out tickets whose best-scored tag is right,
    /// at each fold's best epoch.
    pub accuracy: f64,
    /// Mean held-out cross-entropy at each fold's best epoch.
    pub loss: f64,
    /// Each fold's best epoch (early stopping's choice: the lowest held-out loss),
    /// averaged and rounded.
    pub epochs: usize,
    /// Weight updates this candidate took, over its folds.
    pub updates: u64,
    /// Its mean gain over the choice at the time, paired on the same held-out tickets (a
    /// share of tickets for single-label projects, loss for the others); none for the
    /// first candidate.
    #[serde(default)]
    pub gain: Option<f64>,
    /// The standard error of that gain: a candidate is chosen only when its gain exceeds it.
    #[serde(default)]
    pub standard_error: Option<f64>,
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
    /// Whether the budget is used up (the first candidate is always tried).
    fn spent(&self) -> bool {
        self.updates >= self.budget_updates && !self.trials.is_empty()
    }

    /// Adds a finished trial, compared with the choice so far (whose outcomes are
    /// `choice_outcomes`, replaced when it wins); whether it is now the choice.
    fn record(&mut self, tried: Tried, choice_outcomes: &mut Vec<Outcome>, heads: &Heads) -> bool {
        let Tried {
            mut trial,
            outcomes,
        } = tried;
        self.updates += trial.updates;
        let wins = if self.trials.is_empty() {
            true
        } else {
            let (gain, standard_error) = paired_gain(&outcomes, choice_outcomes, heads);
            trial.gain = Some(gain);
            trial.standard_error = Some(standard_error);
            clearly_better(gain, standard_error)
        };
        if wins {
            self.chosen = self.trials.len();
            *choice_outcomes = outcomes;
        }
        self.trials.push(trial);
        wins
    }

    fn report(&self, candidates: usize) -> SelectionReport {
        SelectionReport {
            tried: self.trials.len(),
            candidates,
        }
    }

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
            solver: NgramSolver::Adagrad,
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

/// Progress of the search: after every epoch of every fold fit, and once per candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectionReport {
    /// Candidates finished.
    pub tried: usize,
    /// Candidates planned.
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

/// The first stage's candidates in the order they are tried: the n-gram families at the
/// requested L2, `base` (the request's own setting) first. The second stage tries L2 on the
/// best of them (`regularisation_stage`). After `base`, the families go from fewest
/// features to most, so that a budget cut leaves out the costliest fits. Each is there for
/// a kind of text, not for a dataset:
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
    // The request's setting; by default word 1–2 + character 3–5, the features of the
    // TF-IDF baselines the kind is measured against.
    let mut candidates = vec![Candidate {
        features: base.features,
        l2: base.l2,
    }];
    for candidate in [
        // Words alone: long technical tickets (logs, code, traces) whose character n-grams
        // are mostly noise; the cheapest fit.
        with(2, 0, 0),
        // Word unigrams with characters: too few tickets for word pairs to recur.
        with(1, 3, 5),
        // Character 2–5: short texts, typos, inflections and compounds, where pieces
        // shorter than three letters still carry meaning; the most features.
        with(2, 2, 5),
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

/// One fold's tickets as vectors of the vocabulary its training part gives one set of
/// n-gram families. Built once per fold and family and shared by every L2 tried with
/// that family: for short tickets, extracting and hashing the n-grams costs about as much
/// as a few epochs.
struct FoldVectors<'a> {
    /// The untrained model: vocabulary, IDF and starting weights.
    fresh: NgramModel,
    train: VectorisedSet<'a>,
    held_out: VectorisedSet<'a>,
}

/// The folds vectorised for `features`, each fold on its own thread.
fn vectorise_folds<'a>(
    folds: &'a [Fold],
    features: FeatureConfig,
    base: &NgramParams,
    outputs: usize,
) -> Vec<FoldVectors<'a>> {
    let params = NgramParams { features, ..*base };
    let params = &params;
    std::thread::scope(|scope| {
        let handles: Vec<_> = folds
            .iter()
            .map(|fold| {
                scope.spawn(move || {
                    let fresh = build_vocabulary(params, outputs, &fold.train);
                    let train = VectorisedSet::new(&fresh, &fold.train);
                    let held_out = VectorisedSet::new(&fresh, &fold.held_out);
                    FoldVectors {
                        fresh,
                        train,
                        held_out,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// One candidate on one fold: the best epoch's held-out score and per-ticket outcomes,
/// that epoch, the weight updates taken; `None` when asked to stop.
type FoldResult = Option<(HeldOutScore, Vec<Outcome>, usize, u64)>;

fn fit_fold(
    heads: &Heads,
    fold: &FoldVectors,
    params: &NgramParams,
    mut on_epoch: impl FnMut() -> ControlFlow<()>,
) -> FoldResult {
    let width = fold.fresh.width();
    let per_epoch = fold.train.updates_per_epoch(width) + fold.held_out.updates_per_epoch(width);
    let fitted = fit_vectorised(
        heads,
        fold.fresh.clone(),
        &fold.train,
        &fold.held_out,
        params,
        |_| on_epoch(),
    );
    if fitted.stopped {
        return None;
    }
    let outcomes = held_out_outcomes(&fitted.model, &fold.held_out, heads);
    let score = fitted
        .best_score
        .unwrap_or_else(|| held_out_score(&fitted.model, &fold.held_out, heads));
    Some((
        score,
        outcomes,
        fitted.best_epoch,
        per_epoch * fitted.epochs_run as u64,
    ))
}

/// All folds of one candidate at once, one thread each (every fit is deterministic and
/// independent, so the result does not depend on the scheduling; three folds on two cores
/// finish sooner together than two and then one). Every fold epoch is reported through
/// `on_epoch` on the caller's thread, which may say stop: the fits then end after their
/// current epoch and the candidate has no trial.
fn try_candidate(
    heads: &Heads,
    folds: &[FoldVectors],
    candidate: Candidate,
    base: &NgramParams,
    mut on_epoch: impl FnMut() -> ControlFlow<()>,
) -> Option<Tried> {
    let params = NgramParams {
        features: candidate.features,
        l2: candidate.l2,
        ..*base
    };
    let params = &params;
    let stop = AtomicBool::new(false);
    let stop = &stop;
    let results: Vec<FoldResult> = std::thread::scope(|scope| {
        let (epochs, heard) = mpsc::channel::<()>();
        let handles: Vec<_> = folds
            .iter()
            .map(|fold| {
                let epochs = epochs.clone();
                scope.spawn(move || {
                    fit_fold(heads, fold, params, || {
                        // The receiver outlives every fit: a failed send cannot happen.
                        let _ = epochs.send(());
                        if stop.load(Ordering::SeqCst) {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    })
                })
            })
            .collect();
        // The loop ends when every fit has ended and dropped its sender.
        drop(epochs);
        for () in heard {
            // Once stopped, the fits' last epochs are not reported: the caller has gone.
            if !stop.load(Ordering::SeqCst) && on_epoch().is_break() {
                stop.store(true, Ordering::SeqCst);
            }
        }
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let results: Vec<(HeldOutScore, Vec<Outcome>, usize, u64)> =
        results.into_iter().collect::<Option<_>>()?;
    let k = results.len().max(1) as f64;
    let accuracy = results.iter().map(|r| r.0.accuracy).sum::<f64>() / k;
    let loss = results.iter().map(|r| r.0.loss).sum::<f64>() / k;
    let epochs = (results.iter().map(|r| r.2 as f64).sum::<f64>() / k).round() as usize;
    let updates: u64 = results.iter().map(|r| r.3).sum();
    // Folds in order: the same tickets in the same places for every candidate.
    let outcomes = results.into_iter().flat_map(|r| r.1).collect();
    Some(Tried {
        outcomes,
        trial: Trial {
            features: describe(&candidate.features),
            word_ngrams: candidate.features.word_ngrams,
            char_min: candidate.features.char_min,
            char_max: candidate.features.char_max,
            l2: candidate.l2,
            accuracy,
            loss,
            epochs: epochs.max(1),
            updates,
            gain: None,
            standard_error: None,
        },
    })
}

/// A candidate's trial and its outcome on every held-out ticket, folds in order.
struct Tried {
    trial: Trial,
    outcomes: Vec<Outcome>,
}

/// The mean paired gain of `challenger` over `incumbent` on the same held-out tickets (a right
/// best tag where `judged_by_accuracy`, else the negated loss), and the standard error of
/// that mean.
fn paired_gain(challenger: &[Outcome], incumbent: &[Outcome], heads: &Heads) -> (f64, f64) {
    let value = |o: &Outcome| {
        if judged_by_accuracy(heads) {
            f64::from(u8::from(o.right))
        } else {
            -o.loss
        }
    };
    let differences: Vec<f64> = challenger
        .iter()
        .zip(incumbent)
        .map(|(c, i)| value(c) - value(i))
        .collect();
    let n = differences.len() as f64;
    if n < 2.0 {
        return (0.0, 0.0);
    }
    let mean = differences.iter().sum::<f64>() / n;
    let variance = differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (variance / n).sqrt())
}

/// Whether a candidate should replace the current choice: only when it is better by more
/// than one standard error of the paired difference (the one-standard-error rule of
/// Breiman et al. and Hastie et al.). Candidates whose held-out accuracies differ by a few
/// tickets are equal within the folds' noise, and choosing the higher of them would pick a
/// setting by chance; the current choice (the request's own setting first) then stays.
fn clearly_better(gain: f64, standard_error: f64) -> bool {
    // With one ticket changed the gain and its standard error are both 1/n: rounding must
    // not decide, so equals within it are not better.
    gain - standard_error > 1e-12 * (1.0 + gain.abs())
}

/// Chooses `ngram`'s setting on folds of `examples` (the labelled training tickets) within
/// `budget` million weight updates. The candidate that reaches the budget is finished; the
/// ones after it are not tried. `on_progress` hears after every epoch of every fold fit
/// (with the candidates finished so far) and may say stop: the search then ends within an
/// epoch.
pub fn select_ngram(
    heads: &Heads,
    outputs: usize,
    examples: &[Example],
    base: &NgramParams,
    budget: u64,
    mut on_progress: impl FnMut(SelectionReport) -> ControlFlow<()>,
) -> Result<Selection, NoSelection> {
    // The search chooses Adagrad's L2 and epochs, so its candidates and the setting it
    // returns ([`Selection::apply`]) train with Adagrad.
    let base = &NgramParams {
        solver: NgramSolver::Adagrad,
        ..*base
    };
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
    let families = feature_stage(base);
    // Every first-stage candidate has the requested L2; the second stage tries the others
    // on the best family, so its size is known before it starts.
    let planned = families.len() + regularisation_stage(families[0]).len();
    let mut best: Option<(Candidate, Vec<FoldVectors>)> = None;
    let mut choice_outcomes = Vec::new();
    for candidate in families {
        if selection.spent() {
            selection.untried = planned - selection.trials.len();
            return Ok(selection);
        }
        let tried = selection.trials.len();
        let mut report = || {
            on_progress(SelectionReport {
                tried,
                candidates: planned,
            })
        };
        let vectors = vectorise_folds(&folds, candidate.features, base, outputs);
        if report().is_break() {
            return Err(NoSelection::Stopped);
        }
        let tried = try_candidate(heads, &vectors, candidate, base, &mut report)
            .ok_or(NoSelection::Stopped)?;
        // The winner's vectors are kept for the second stage; a loser's are dropped here.
        if selection.record(tried, &mut choice_outcomes, heads) {
            best = Some((candidate, vectors));
        }
        if on_progress(selection.report(planned)).is_break() {
            return Err(NoSelection::Stopped);
        }
    }
    let Some((winner, vectors)) = best else {
        return Ok(selection);
    };
    for candidate in regularisation_stage(winner) {
        if selection.spent() {
            selection.untried = planned - selection.trials.len();
            return Ok(selection);
        }
        let tried = selection.trials.len();
        let report = || {
            on_progress(SelectionReport {
                tried,
                candidates: planned,
            })
        };
        let tried =
            try_candidate(heads, &vectors, candidate, base, report).ok_or(NoSelection::Stopped)?;
        selection.record(tried, &mut choice_outcomes, heads);
        if on_progress(selection.report(planned)).is_break() {
            return Err(NoSelection::Stopped);
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
        // The first candidate's fold epochs, then that candidate done: nothing after it.
        assert_eq!(reports.last().map(|r| r.tried), Some(1));
        assert!(reports.iter().all(|r| r.tried <= 1));
        assert!(selection.summary().contains("untried"));
    }

    #[test]
    fn a_stop_asked_inside_a_fold_fit_ends_the_search_within_an_epoch() {
        let examples = endings_only(90);
        // Fits that would run 10,000 epochs each: only a stop inside them ends the search.
        let params = NgramParams {
            epochs: 10_000,
            patience: 10_000,
            ..NgramParams::default()
        };
        let mut reports = Vec::new();
        let outcome = select_ngram(
            &Heads::SINGLE,
            2,
            &examples,
            &params,
            SUGGESTED_SELECTION_BUDGET,
            |report| {
                reports.push(report);
                if reports.len() >= 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!(outcome, Err(NoSelection::Stopped));
        assert_eq!(reports.len(), 5);
        assert!(reports.iter().all(|r| r.tried == 0), "{reports:?}");
    }

    #[test]
    fn progress_is_reported_for_every_fold_epoch_of_every_candidate() {
        let examples = endings_only(90);
        let params = NgramParams {
            epochs: 3,
            patience: 3,
            ..NgramParams::default()
        };
        let mut reports = Vec::new();
        let selection = select_ngram(
            &Heads::SINGLE,
            2,
            &examples,
            &params,
            SUGGESTED_SELECTION_BUDGET,
            |report| {
                reports.push(report);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        // Per candidate: its folds' epochs, then the candidate done; a new family also
        // reports once its folds are vectorised.
        let families = feature_stage(&params).len();
        let trials = selection.trials.len();
        assert_eq!(
            reports.len(),
            trials * (SELECTION_FOLDS * 3 + 1) + families,
            "{reports:?}"
        );
        assert_eq!(reports.last().map(|r| r.tried), Some(trials));
    }

    #[test]
    fn a_candidate_is_chosen_only_beyond_one_standard_error_of_the_paired_gain() {
        let outcomes = |right: &[bool]| -> Vec<Outcome> {
            right
                .iter()
                .map(|&right| Outcome { right, loss: 0.5 })
                .collect()
        };
        let base: Vec<bool> = (0..100).map(|i| i % 2 == 0).collect();
        // One ticket more right: a gain of 1/n with a standard error of 1/n.
        let mut one = base.clone();
        one[1] = true;
        let (gain, error) = paired_gain(&outcomes(&one), &outcomes(&base), &Heads::SINGLE);
        assert!((gain - 0.01).abs() < 1e-12 && (error - 0.01).abs() < 1e-12);
        assert!(!clearly_better(gain, error));
        // Three more right and two more wrong: a gain, but within its noise.
        let mut mixed = base.clone();
        for i in [1, 3, 5] {
            mixed[i] = true;
        }
        for i in [0, 2] {
            mixed[i] = false;
        }
        let (gain, error) = paired_gain(&outcomes(&mixed), &outcomes(&base), &Heads::SINGLE);
        assert!(gain > 0.0 && !clearly_better(gain, error));
        // Ten more right, none worse: clearly better.
        let mut better = base.clone();
        for i in (1..20).step_by(2) {
            better[i] = true;
        }
        let (gain, error) = paired_gain(&outcomes(&better), &outcomes(&base), &Heads::SINGLE);
        assert!(clearly_better(gain, error), "{gain} {error}");
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
