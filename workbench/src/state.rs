//! What every request handler can reach.

use crate::config::Config;
use datasets::AnyStore;
use std::sync::Arc;

/// Shared state of the server; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: AnyStore,
    pub config: Arc<Config>,
}
