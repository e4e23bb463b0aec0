use super::*;

impl ApiKeyStore for Backend {
    async fn create_api_key(&self, grant: &KeyGrant, name: &str) -> StoreResult<CreatedApiKey> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ValidationError::field("name", "must be 1 to 100 characters").into());
        }
        // An instance-admin key has no scopes: the empty text marks it in the table too.
        let scopes = match grant {
            KeyGrant::Project { project_id, scopes } => {
                if scopes.is_empty() {
                    return Err(ValidationError::field(
                        "scopes",
                        "a project key needs at least one scope",
                    )
                    .into());
                }
                self.project(*project_id).await?;
                scopes.to_string()
            }
            KeyGrant::InstanceAdmin => String::new(),
        };
        let (secret, prefix) = crate::api_key::generate()
            .map_err(|e| StoreError::Conflict(format!("no randomness for a key: {e}")))?;
        let row: ApiKeyRow = sqlx::query_as(const_str::concat!(
            "INSERT INTO api_keys (project_id, name, prefix, key_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            API_KEY_COLUMNS
        ))
        .bind(grant.project_id())
        .bind(name)
        .bind(&prefix)
        .bind(crate::api_key::hash(&secret))
        .bind(scopes)
        .bind(Utc::now())
        .fetch_one(&self.pool)
        .await?;
        Ok(CreatedApiKey {
            key: row.try_into()?,
            secret,
        })
    }

    async fn api_keys(&self, project: Option<ProjectId>) -> StoreResult<Vec<ApiKey>> {
        let rows: Vec<ApiKeyRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            API_KEY_COLUMNS,
            " FROM api_keys WHERE project_id IS NOT DISTINCT FROM $1 ORDER BY id"
        ))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }

    async fn revoke_api_key(&self, project: Option<ProjectId>, key: i64) -> StoreResult<ApiKey> {
        let row: Option<ApiKeyRow> = sqlx::query_as(const_str::concat!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) \
             WHERE project_id IS NOT DISTINCT FROM $2 AND id = $3 RETURNING ",
            API_KEY_COLUMNS
        ))
        .bind(Utc::now())
        .bind(project)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => row.try_into(),
            None => Err(StoreError::NotFound(match project {
                Some(project) => format!("API key {key} of project {project}"),
                None => format!("instance-admin API key {key}"),
            })),
        }
    }

    async fn authenticate_api_key(&self, key: &str) -> StoreResult<Option<ApiKey>> {
        let Some(prefix) = crate::api_key::prefix_of(key) else {
            return Ok(None);
        };
        let row: Option<ApiKeyRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            API_KEY_COLUMNS,
            " FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL"
        ))
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        row.filter(|row| crate::api_key::hashes_match(&row.key_hash, &crate::api_key::hash(key)))
            .map(ApiKey::try_from)
            .transpose()
    }
}
