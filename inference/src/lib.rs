//! Models that map ticket text to a score per tag: their architectures, their files on
//! disk (hash-checked), calibration, and the decision of what to apply and what to send to
//! a person. Training lives in `trainer`; this crate is what serving needs.

pub mod artifact;
pub mod artifact_store;
pub mod calibration;
pub mod card;
pub mod decision;
pub mod encoder;
pub mod error;
pub mod explain;
pub mod features;
pub mod heads;
pub mod metrics;
pub mod model;
pub mod ngram;
pub mod out_of_distribution;
pub mod service;
pub mod simd;

pub use card::{ModelCard, ModelKind, TagRef};
pub use decision::{Decider, Decision, GroupVerdict, TagScore, TaxonomyDrift};
pub use error::ModelError;
pub use explain::{Explanation, ExplanationMethod, WordContribution};
pub use model::TaggingModel;
