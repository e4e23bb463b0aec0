//! The schema: migrations and the health check. Each backend implements this capability in
//! its own module, since each migrates from its own directory.

use super::capability::store_capability;
use crate::error::StoreResult;

store_capability! {
    /// The database itself: bringing its schema up to date, and checking that it answers.
    pub trait SchemaStore {
        /// Applies the migrations this build knows and the database lacks.
        async fn migrate(&self) -> StoreResult<()>;
        /// Whether the database answers, for `/readyz`.
        async fn ping(&self) -> StoreResult<()>;
    }
}
