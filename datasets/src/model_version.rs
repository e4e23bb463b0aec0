//! Model versions as the store knows them: what kind of model, where its files are and
//! their hashes, its lifecycle state and its held-out metrics.

use crate::ids::{ModelVersionId, ProjectId};
use crate::model_kind::ModelKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A trained model of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelVersion {
    pub id: ModelVersionId,
    pub project_id: ProjectId,
    pub kind: ModelKind,
    /// `candidate`, `promoted` or `retired`.
    pub status: String,
    /// The held-out evaluation.
    pub metrics: serde_json::Value,
    pub params: serde_json::Value,
    /// The directory holding the model's files.
    pub artifact_path: String,
    /// File name → SHA-256, checked on every load.
    pub files: BTreeMap<String, String>,
    /// SHA-256 over the tickets and labels it was trained on.
    pub training_fingerprint: String,
    pub created_at: DateTime<Utc>,
}

/// What a finished training run records.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NewModelVersion {
    pub kind: ModelKind,
    pub metrics: serde_json::Value,
    pub params: serde_json::Value,
    pub artifact_path: String,
    pub files: BTreeMap<String, String>,
    pub training_fingerprint: String,
}
