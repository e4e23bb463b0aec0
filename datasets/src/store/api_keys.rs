//! API keys: created with a scope, shown once, stored as a hash, revoked. Their SQL is in
//! `sql/api_keys.rs`.

use super::capability::store_capability;
use super::rows::corrupt;
use crate::api_key::{ApiKey, CreatedApiKey, KeyGrant, Scopes};
use crate::error::{StoreError, StoreResult};
use crate::ids::ProjectId;
use chrono::{DateTime, Utc};

store_capability! {
    /// API keys.
    pub trait ApiKeyStore {
        /// Creates a key; its secret is in the result and nowhere else. A project key needs at
        /// least one scope.
        async fn create_api_key(&self, grant: &KeyGrant, name: &str) -> StoreResult<CreatedApiKey>;
        /// A project's keys, or the instance-admin keys when `project` is `None`.
        async fn api_keys(&self, project: Option<ProjectId>) -> StoreResult<Vec<ApiKey>>;
        /// Revokes a key of the project (or an instance-admin key when `project` is `None`).
        async fn revoke_api_key(&self, project: Option<ProjectId>, key: i64) -> StoreResult<ApiKey>;
        /// The live key a client presented, or `None` (unknown, revoked or malformed).
        async fn authenticate_api_key(&self, key: &str) -> StoreResult<Option<ApiKey>>;
    }
}

pub(crate) const API_KEY_COLUMNS: &str =
    "id, project_id, name, prefix, key_hash, scopes, created_at, revoked_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    pub(crate) id: i64,
    pub(crate) project_id: Option<i64>,
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) key_hash: String,
    pub(crate) scopes: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        let scopes: Scopes = row.scopes.parse().map_err(|e| corrupt("key scopes", e))?;
        let grant = match row.project_id {
            Some(project_id) if !scopes.is_empty() => KeyGrant::Project {
                project_id: ProjectId(project_id),
                scopes,
            },
            None if scopes.is_empty() => KeyGrant::InstanceAdmin,
            _ => return Err(corrupt("key scopes", "they do not fit the key's project")),
        };
        Ok(ApiKey {
            id: row.id,
            grant,
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}
