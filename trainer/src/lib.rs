//! Learning from labelled tickets: training runs, calibration, thresholds and honest
//! evaluation on the held-out split.

pub mod active;
pub mod calibrate;
pub mod encoder_head;
pub mod evaluate;
pub mod examples;
pub mod finetune;
pub mod jobs;
mod lbfgs;
pub mod ngram;
pub mod ngram_selection;
pub mod progress;
mod random;
pub mod run;
pub mod setfit;
pub mod thresholds;

pub use evaluate::Evaluation;
pub use run::{
    Progress, TrainError, TrainOutcome, TrainRequest, evaluate_version, evaluate_version_with,
    find_version, load_version, train,
};
