//! A run's progress as people read it: one percentage over the whole run that never goes
//! backwards, and a time estimate for the stage in progress (embedding, training) measured
//! from that stage's own start — the embedding of thousands of tickets and the epochs that
//! follow have nothing in common in speed, so one rate over both misleads.

use crate::run::Progress;
use std::time::Instant;

/// Where each stage sits in the run's one percentage. Runs that embed (the encoder kinds)
/// spend about half their time embedding; the others go straight to training.
const EMBEDDING_END: f64 = 50.0;
const TRAINING_END: f64 = 92.0;
/// `ngram` model selection takes most of a run's fitting: the folds of every candidate.
const SELECTING_END: f64 = 80.0;
const REFITTING: f64 = 92.0;
const EVALUATING: f64 = 96.0;

/// Turns a run's progress events into the reports the store keeps.
#[derive(Debug)]
pub struct ProgressTracker {
    started: Instant,
    stage: &'static str,
    stage_started: Instant,
    /// When the last event came: a stage begins when the one before it ended.
    last_event: Instant,
    embeds: bool,
    percent: f64,
}

impl Default for ProgressTracker {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl ProgressTracker {
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            stage: "starting",
            stage_started: started,
            last_event: started,
            embeds: false,
            percent: 0.0,
        }
    }

    fn enter(&mut self, stage: &'static str) {
        if self.stage != stage {
            self.stage = stage;
            self.stage_started = self.last_event;
        }
    }

    /// The report for one event, at `now`.
    pub fn report(&mut self, event: &Progress, now: Instant) -> serde_json::Value {
        let stage = match event {
            Progress::Loaded { .. } => "loaded",
            Progress::Embedding { .. } => "embedding",
            Progress::Embedded(_) => "embedded",
            Progress::Selecting { .. } => "selecting",
            Progress::Epoch(_) | Progress::Step(_) => "training",
            Progress::Refitting { .. } => "refitting",
            Progress::Evaluating => "evaluating",
        };
        // A refit reports epochs again: they stay in the refitting stage.
        let stage = if self.stage == "refitting" && stage == "training" {
            "refitting"
        } else {
            stage
        };
        self.enter(stage);
        self.last_event = now;
        if matches!(event, Progress::Embedding { .. } | Progress::Embedded(_)) {
            self.embeds = true;
        }
        let fraction = |done: usize, total: usize| {
            if total == 0 {
                0.0
            } else {
                (done as f64 / total as f64).clamp(0.0, 1.0)
            }
        };
        // (the stage's share done, where the stage starts and ends in the whole run)
        let training_start = if self.embeds { EMBEDDING_END } else { 0.0 };
        let (done, start, end) = match (stage, event) {
            (_, Progress::Loaded { .. }) => (0.0, 0.0, 0.0),
            (_, Progress::Embedding { done, total }) => {
                (fraction(*done, *total), 0.0, EMBEDDING_END)
            }
            (_, Progress::Embedded(_)) => (1.0, 0.0, EMBEDDING_END),
            ("refitting", _) => (0.0, REFITTING, EVALUATING),
            (_, Progress::Selecting { tried, candidates }) => {
                (fraction(*tried, *candidates), training_start, SELECTING_END)
            }
            (_, Progress::Epoch(epoch)) => (
                fraction(epoch.epoch, epoch.epochs),
                training_start,
                TRAINING_END,
            ),
            (_, Progress::Step(step)) => (
                fraction(step.step, step.steps),
                training_start,
                TRAINING_END,
            ),
            (_, Progress::Refitting { .. }) => (0.0, REFITTING, EVALUATING),
            (_, Progress::Evaluating) => (0.0, EVALUATING, 100.0),
        };
        self.percent = self.percent.max(start + done * (end - start));
        let in_stage = now.duration_since(self.stage_started).as_secs_f64();
        // Only once the stage has measurably begun: a rate from nothing is a guess.
        let eta_seconds = (done > 0.0 && done < 1.0).then(|| in_stage / done * (1.0 - done));
        let mut report = match event {
            Progress::Loaded {
                train,
                validation,
                test,
                tags,
                held_out,
            } => serde_json::json!({
                "train": train, "validation": validation, "test": test, "tags": tags,
                "held_out": held_out,
            }),
            Progress::Embedding { done, total } => {
                serde_json::json!({ "step": done, "steps": total })
            }
            Progress::Embedded(report) => serde_json::json!({
                "computed": report.computed, "cached": report.cached,
            }),
            Progress::Epoch(epoch) => serde_json::json!({
                "step": epoch.epoch, "steps": epoch.epochs,
                "loss": epoch.train_loss, "validation_loss": epoch.validation_loss,
            }),
            Progress::Step(step) => serde_json::json!({
                "step": step.step, "steps": step.steps, "epoch": step.epoch, "loss": step.loss,
            }),
            Progress::Selecting { tried, candidates } => {
                serde_json::json!({ "step": tried, "steps": candidates })
            }
            Progress::Refitting { epochs } => serde_json::json!({ "steps": epochs }),
            Progress::Evaluating => serde_json::json!({}),
        };
        report["stage"] = stage.into();
        report["percent"] = ((self.percent * 10.0).round() / 10.0).into();
        report["elapsed_seconds"] = now.duration_since(self.started).as_secs_f64().into();
        report["stage_elapsed_seconds"] = in_stage.into();
        if let Some(eta) = eta_seconds {
            report["eta_seconds"] = eta.into();
        }
        report
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
    use super::*;
    use crate::encoder_head::EmbeddingReport;
    use crate::examples::HeldOut;
    use crate::ngram::EpochReport;
    use std::time::Duration;

    fn epoch(epoch: usize, epochs: usize) -> Progress {
        Progress::Epoch(EpochReport {
            epoch,
            epochs,
            train_loss: 0.5,
            validation_loss: 0.6,
        })
    }

    fn loaded() -> Progress {
        Progress::Loaded {
            train: 10,
            validation: 2,
            test: 3,
            tags: 2,
            held_out: HeldOut::TestSplit,
        }
    }

    #[test]
    fn the_percentage_never_goes_back_between_stages_and_ends_before_100_until_done() {
        let start = Instant::now();
        let mut tracker = ProgressTracker::new(start);
        let mut last = 0.0;
        let mut at = start;
        let events = [
            loaded(),
            Progress::Embedding {
                done: 500,
                total: 1000,
            },
            Progress::Embedding {
                done: 999,
                total: 1000,
            },
            epoch(1, 30),
            epoch(29, 30),
            Progress::Refitting { epochs: 12 },
            epoch(1, 12),
            epoch(12, 12),
            Progress::Evaluating,
        ];
        for event in &events {
            at += Duration::from_secs(1);
            let report = tracker.report(event, at);
            let percent = report["percent"].as_f64().unwrap();
            assert!(percent >= last, "{event:?}: {percent} after {last}");
            assert!(percent < 100.0);
            last = percent;
        }
        assert!(last >= 96.0);
    }

    #[test]
    fn the_estimate_is_for_the_stage_in_progress_from_its_own_start() {
        let start = Instant::now();
        let mut tracker = ProgressTracker::new(start);
        tracker.report(&loaded(), start);
        // Embedding: 100 of 1000 in 10 s → 90 s left.
        let embedding = tracker.report(
            &Progress::Embedding {
                done: 100,
                total: 1000,
            },
            start + Duration::from_secs(10),
        );
        assert_eq!(embedding["eta_seconds"].as_f64().unwrap().round(), 90.0);
        assert_eq!(embedding["percent"].as_f64().unwrap(), 5.0);
        // Embedding ends after 600 s; 5 of 10 epochs 20 s later → 20 s left, not a rate
        // polluted by the embedding's 600 s.
        tracker.report(
            &Progress::Embedded(EmbeddingReport {
                computed: 1000,
                cached: 0,
                seconds: 600.0,
            }),
            start + Duration::from_secs(600),
        );
        let training = tracker.report(&epoch(5, 10), start + Duration::from_secs(620));
        assert_eq!(training["eta_seconds"].as_f64().unwrap().round(), 20.0);
        assert_eq!(training["stage"], "training");
        assert_eq!(training["percent"].as_f64().unwrap(), 71.0);
        assert_eq!(training["elapsed_seconds"].as_f64().unwrap(), 620.0);
    }

    #[test]
    fn a_run_without_embeddings_uses_the_whole_bar_for_training() {
        let start = Instant::now();
        let mut tracker = ProgressTracker::new(start);
        let half = tracker.report(&epoch(5, 10), start + Duration::from_secs(5));
        assert_eq!(half["percent"].as_f64().unwrap(), 46.0);
    }
}
