//! Model versions as the store knows them: what kind of model, its lifecycle state and metrics.

use crate::ids::{ModelVersionId, ProjectId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A trained model of a project. Training and serving add their own details as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub id: ModelVersionId,
    pub project_id: ProjectId,
    /// `ngram`, `encoder-head` or `finetune`.
    pub kind: String,
    /// `candidate`, `promoted` or `retired`.
    pub status: String,
    pub metrics: serde_json::Value,
    pub created_at: DateTime<Utc>,
}
