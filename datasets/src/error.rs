//! The errors the store and the importers return; the binary adds context at its edges.

use crate::names::NameError;

/// Input that breaks a rule of the domain; safe to show to the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
}

impl ValidationError {
    pub fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Field {
            field,
            reason: reason.into(),
        }
    }
}

/// Anything a `Store` call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<NameError> for StoreError {
    fn from(error: NameError) -> Self {
        Self::Invalid(error.into())
    }
}

/// Short alias used throughout the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// Turns a unique-constraint violation into a `Conflict` with a message a person understands.
pub(crate) fn conflict_on_unique(
    error: sqlx::Error,
    message: impl FnOnce() -> String,
) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(error),
    }
}
