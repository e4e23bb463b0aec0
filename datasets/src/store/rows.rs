//! What every aggregate's rows share. Each aggregate module keeps its own row types (rows as
//! both databases return them) and their conversion into domain types; enums are stored as
//! text and names re-validated, so a hand-edited database fails loudly, not subtly.

use crate::error::StoreError;

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("stored {what} is invalid: {detail}").into(),
    ))
}

/// Converts every row, failing on the first invalid one.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
