//! The model registry: versions, their metrics, promotion and rollback. Their SQL is in
//! `sql/registry.rs`.

use super::capability::store_capability;
use super::rows::corrupt;
use crate::error::{StoreError, StoreResult};
use crate::ids::{ModelVersionId, ProjectId};
use crate::model_version::{ModelVersion, NewModelVersion};
use crate::registry::Promotion;
use chrono::{DateTime, Utc};
use sqlx::types::Json;

store_capability! {
    /// Model versions and which one serves.
    pub trait RegistryStore {
        /// Records a finished training run as a candidate version.
        async fn create_model_version(
            &self,
            project: ProjectId,
            version: &NewModelVersion,
        ) -> StoreResult<ModelVersion>;
        /// The project's versions, newest first.
        async fn model_versions(&self, project: ProjectId) -> StoreResult<Vec<ModelVersion>>;
        async fn model_version(
            &self,
            project: ProjectId,
            version: ModelVersionId,
        ) -> StoreResult<ModelVersion>;
        /// Replaces a version's stored evaluation.
        async fn set_model_metrics(
            &self,
            project: ProjectId,
            version: ModelVersionId,
            metrics: &serde_json::Value,
        ) -> StoreResult<()>;
        /// Puts a version in service, retiring the one it replaces; recorded with the actor in
        /// the promotion history and the audit log, in the same transaction.
        async fn promote_model_version(
            &self,
            project: ProjectId,
            version: ModelVersionId,
            actor: impl Into<crate::audit::Actor> + Send,
        ) -> StoreResult<Promotion>;
        /// Puts back the version the one in service replaced (recorded like a promotion).
        async fn rollback_model_version(
            &self,
            project: ProjectId,
            actor: impl Into<crate::audit::Actor> + Send,
        ) -> StoreResult<Promotion>;
        async fn promoted_model_version(
            &self,
            project: ProjectId,
        ) -> StoreResult<Option<ModelVersion>>;
        /// Promotions and rollbacks, newest first.
        async fn model_promotions(&self, project: ProjectId) -> StoreResult<Vec<Promotion>>;
    }
}

pub(crate) const MODEL_VERSION_COLUMNS: &str = "id, project_id, kind, status, metrics, params, artifact_path, files, training_fingerprint, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ModelVersionRow {
    pub(crate) id: i64,
    pub(crate) project_id: i64,
    pub(crate) kind: String,
    pub(crate) status: String,
    pub(crate) metrics: Json<serde_json::Value>,
    pub(crate) params: Json<serde_json::Value>,
    pub(crate) artifact_path: String,
    pub(crate) files: Json<std::collections::BTreeMap<String, String>>,
    pub(crate) training_fingerprint: String,
    pub(crate) created_at: DateTime<Utc>,
}

impl TryFrom<ModelVersionRow> for ModelVersion {
    type Error = StoreError;

    fn try_from(row: ModelVersionRow) -> Result<Self, StoreError> {
        Ok(ModelVersion {
            id: ModelVersionId(row.id),
            project_id: ProjectId(row.project_id),
            kind: row.kind.parse().map_err(|e| corrupt("model kind", e))?,
            status: row.status,
            metrics: row.metrics.0,
            params: row.params.0,
            artifact_path: row.artifact_path,
            files: row.files.0,
            training_fingerprint: row.training_fingerprint,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PromotionRow {
    pub(crate) project_id: i64,
    pub(crate) version_id: i64,
    pub(crate) previous_version_id: Option<i64>,
    pub(crate) action: String,
    pub(crate) actor: String,
    pub(crate) at: DateTime<Utc>,
}

impl TryFrom<PromotionRow> for Promotion {
    type Error = StoreError;
    fn try_from(row: PromotionRow) -> Result<Self, StoreError> {
        Ok(Promotion {
            project_id: ProjectId(row.project_id),
            version: ModelVersionId(row.version_id),
            previous: row.previous_version_id.map(ModelVersionId),
            action: row
                .action
                .parse()
                .map_err(|e| corrupt("promotion action", e))?,
            actor: row.actor,
            at: row.at,
        })
    }
}
