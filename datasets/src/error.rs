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
    #[error("server secret: {0}")]
    Secret(String),
}

impl From<NameError> for StoreError {
    fn from(error: NameError) -> Self {
        Self::Invalid(error.into())
    }
}

/// What a `StoreError` means for whoever asked, so every edge (API, pages, CLI) answers it
/// the same way and none reports a client's mistake as an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The thing asked for does not exist.
    NotFound,
    /// The request clashes with what is stored (a unique name, a concurrent change).
    Conflict,
    /// The input breaks a rule; resending it unchanged fails again.
    Invalid,
    /// The database cannot be reached or is overloaded right now; the same request may
    /// succeed later.
    Unavailable,
    /// The database's disk is full: nothing can be written until an operator frees space;
    /// then the same request succeeds (the connection that saw the error is discarded).
    StorageFull,
    /// A defect or a fault nobody can fix by retrying.
    Internal,
}

impl StoreError {
    /// Classifies the error; see `StoreErrorKind`.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            Self::NotFound(_) => StoreErrorKind::NotFound,
            Self::Conflict(_) => StoreErrorKind::Conflict,
            Self::Invalid(_) => StoreErrorKind::Invalid,
            Self::UnsupportedUrl(_) | Self::Migrate(_) | Self::Secret(_) => {
                StoreErrorKind::Internal
            }
            Self::Database(error) => database_error_kind(error),
        }
    }
}

fn database_error_kind(error: &sqlx::Error) -> StoreErrorKind {
    use sqlx::error::ErrorKind;
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => StoreErrorKind::Unavailable,
        sqlx::Error::RowNotFound => StoreErrorKind::NotFound,
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation | ErrorKind::ExclusionViolation => StoreErrorKind::Conflict,
            ErrorKind::ForeignKeyViolation
            | ErrorKind::NotNullViolation
            | ErrorKind::CheckViolation => StoreErrorKind::Invalid,
            _ => database_code_kind(db.code().as_deref().unwrap_or_default()),
        },
        _ => StoreErrorKind::Internal,
    }
}

/// Errors by their code: a five-character SQLSTATE on PostgreSQL, a (shorter) numeric
/// extended result code on SQLite.
fn database_code_kind(code: &str) -> StoreErrorKind {
    if code.len() < 5
        && let Ok(extended) = code.parse::<u32>()
    {
        // SQLite: disk full (13); busy and locked after the busy timeout ran out, out of
        // memory, disk I/O failed, file cannot be opened.
        return match extended & 0xff {
            13 => StoreErrorKind::StorageFull,
            5 | 6 | 7 | 10 | 14 => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::Internal,
        };
    }
    match code {
        // PostgreSQL: disk_full.
        "53100" => StoreErrorKind::StorageFull,
        // PostgreSQL: class 08 connection exceptions, 53 insufficient resources, 57P0x the
        // server shutting down or starting, 40001/40P01 serialization failure and deadlock
        // (the transaction was rolled back and may be retried).
        _ if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P0") => {
            StoreErrorKind::Unavailable
        }
        "40001" | "40P01" => StoreErrorKind::Unavailable,
        // PostgreSQL class 22, data exceptions: the input, not the server. Validation
        // should catch these first; this is the backstop.
        _ if code.starts_with("22") => StoreErrorKind::Invalid,
        _ => StoreErrorKind::Internal,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreachable_or_overloaded_databases_are_unavailable() {
        assert_eq!(
            StoreError::Database(sqlx::Error::PoolTimedOut).kind(),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            StoreError::Database(sqlx::Error::Protocol("bad".into())).kind(),
            StoreErrorKind::Internal
        );
        assert_eq!(database_code_kind("08006"), StoreErrorKind::Unavailable);
        assert_eq!(database_code_kind("5"), StoreErrorKind::Unavailable);
        assert_eq!(database_code_kind("517"), StoreErrorKind::Unavailable);
        assert_eq!(database_code_kind("1"), StoreErrorKind::Internal);
        assert_eq!(database_code_kind("53300"), StoreErrorKind::Unavailable);
        assert_eq!(database_code_kind("13"), StoreErrorKind::StorageFull);
        assert_eq!(database_code_kind("53100"), StoreErrorKind::StorageFull);
        assert_eq!(database_code_kind("22021"), StoreErrorKind::Invalid);
        assert_eq!(database_code_kind("42P01"), StoreErrorKind::Internal);
        assert_eq!(
            StoreError::Invalid(ValidationError::field("x", "y")).kind(),
            StoreErrorKind::Invalid
        );
    }
}
