//! Why a model could not be loaded or used.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file {} is missing", .path.display())]
    Missing { path: PathBuf },
    #[error("cannot read or write {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "model file {file} does not match the hash recorded when it was trained (expected {expected}, found {actual}): it was changed or damaged"
    )]
    HashMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("model file {file} is corrupt: {reason}")]
    Corrupt { file: String, reason: String },
    #[error("the model has no training data: {0}")]
    NoTrainingData(String),
}

impl ModelError {
    pub fn corrupt(file: &str, reason: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            file: file.to_string(),
            reason: reason.to_string(),
        }
    }
}
