use super::*;

impl Backend {
    /// Puts `target` in service in this transaction, retiring the version it replaces.
    pub(crate) async fn switch_promoted(
        tx: &mut sqlx::Transaction<'static, Db>,
        project: ProjectId,
        target: ModelVersionId,
        action: PromotionAction,
        actor: &crate::audit::Actor,
    ) -> StoreResult<Promotion> {
        let history_name = actor.history_name();
        crate::limits::check_chars("actor", &history_name, crate::limits::MAX_ACTOR_CHARS)?;
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM model_versions WHERE project_id = $1 AND id = $2",
        )
        .bind(project)
        .bind(target)
        .fetch_optional(&mut **tx)
        .await?;
        match status.as_deref() {
            None => {
                return Err(StoreError::NotFound(format!(
                    "model version {target} of project {project}"
                )));
            }
            Some("promoted") => {
                return Err(StoreError::Conflict(format!(
                    "model version {target} is already in service"
                )));
            }
            Some(_) => {}
        }
        let previous: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM model_versions WHERE project_id = $1 AND status = 'promoted'",
        )
        .bind(project)
        .fetch_optional(&mut **tx)
        .await?;
        sqlx::query("UPDATE model_versions SET status = 'retired' WHERE project_id = $1 AND status = 'promoted'")
            .bind(project)
            .execute(&mut **tx)
            .await?;
        sqlx::query("UPDATE model_versions SET status = 'promoted' WHERE id = $1")
            .bind(target)
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                conflict_on_unique(e, || {
                    "another promotion of this project happened at the same time".into()
                })
            })?;
        if let Some(notify) = PROMOTION_NOTIFY {
            // Delivered at commit: servers listening swap at once instead of at their next poll.
            sqlx::query(notify).bind(project).execute(&mut **tx).await?;
        }
        let at = Utc::now();
        sqlx::query(
            "INSERT INTO model_promotions (project_id, version_id, previous_version_id, action, actor, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(project)
        .bind(target)
        .bind(previous)
        .bind(action.as_str())
        .bind(&history_name)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        let audit_action = match action {
            PromotionAction::Promote => crate::audit::AuditAction::ModelPromote,
            PromotionAction::Rollback => crate::audit::AuditAction::ModelRollback,
        };
        let entry = crate::audit::NewAuditEntry::new(
            actor,
            audit_action,
            Some(project),
            format!("model version {target}"),
            serde_json::json!({ "version": target.0, "previous": previous }),
        );
        bind_audit_entry(&entry).fetch_one(&mut **tx).await?;
        Ok(Promotion {
            project_id: project,
            version: target,
            previous: previous.map(ModelVersionId),
            action,
            actor: history_name,
            at,
        })
    }
}

impl RegistryStore for Backend {
    #[tracing::instrument(skip_all, fields(project = %project))]
    async fn create_model_version(
        &self,
        project: ProjectId,
        version: &NewModelVersion,
    ) -> StoreResult<ModelVersion> {
        self.project(project).await?;
        let row: ModelVersionRow = sqlx::query_as(const_str::concat!(
            "INSERT INTO model_versions (project_id, kind, status, metrics, params, artifact_path, files, \
             training_fingerprint, created_at) VALUES ($1, $2, 'candidate', $3, $4, $5, $6, $7, $8) RETURNING ",
            MODEL_VERSION_COLUMNS
        ))
        .bind(project)
        .bind(version.kind.as_str())
        .bind(Json(&version.metrics))
        .bind(Json(&version.params))
        .bind(&version.artifact_path)
        .bind(Json(&version.files))
        .bind(&version.training_fingerprint)
        .bind(Utc::now())
        .fetch_one(&self.pool)
        .await?;
        row.try_into()
    }

    async fn model_versions(&self, project: ProjectId) -> StoreResult<Vec<ModelVersion>> {
        let rows: Vec<ModelVersionRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            MODEL_VERSION_COLUMNS,
            " FROM model_versions WHERE project_id = $1 ORDER BY id DESC"
        ))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }

    #[tracing::instrument(skip_all, fields(project = %project, version = %version))]
    async fn model_version(
        &self,
        project: ProjectId,
        version: ModelVersionId,
    ) -> StoreResult<ModelVersion> {
        let row: Option<ModelVersionRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            MODEL_VERSION_COLUMNS,
            " FROM model_versions WHERE project_id = $1 AND id = $2"
        ))
        .bind(project)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| {
            StoreError::NotFound(format!("model version {version} of project {project}"))
        })?
        .try_into()
    }

    #[tracing::instrument(skip_all, fields(project = %project, version = %version))]
    async fn set_model_metrics(
        &self,
        project: ProjectId,
        version: ModelVersionId,
        metrics: &serde_json::Value,
    ) -> StoreResult<()> {
        let updated =
            sqlx::query("UPDATE model_versions SET metrics = $1 WHERE project_id = $2 AND id = $3")
                .bind(Json(metrics))
                .bind(project)
                .bind(version)
                .execute(self.writer())
                .await?
                .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound(format!(
                "model version {version} of project {project}"
            )));
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(project = %project, version = %version))]
    async fn promote_model_version(
        &self,
        project: ProjectId,
        version: ModelVersionId,
        actor: impl Into<crate::audit::Actor> + Send,
    ) -> StoreResult<Promotion> {
        let actor: crate::audit::Actor = actor.into();
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        let promotion =
            Self::switch_promoted(&mut tx, project, version, PromotionAction::Promote, &actor)
                .await?;
        tx.commit().await?;
        Ok(promotion)
    }

    #[tracing::instrument(skip_all, fields(project = %project))]
    async fn rollback_model_version(
        &self,
        project: ProjectId,
        actor: impl Into<crate::audit::Actor> + Send,
    ) -> StoreResult<Promotion> {
        let actor: crate::audit::Actor = actor.into();
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        // The version in service came in by its latest promotion; roll back to what it replaced.
        let previous: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT p.previous_version_id FROM model_promotions p \
             JOIN model_versions v ON v.id = p.version_id AND v.status = 'promoted' \
             WHERE p.project_id = $1 ORDER BY p.id DESC LIMIT 1",
        )
        .bind(project)
        .fetch_optional(&mut *tx)
        .await?;
        let target = match previous {
            None => {
                return Err(StoreError::Conflict(format!(
                    "project {project} has no promoted model to roll back"
                )));
            }
            Some(None) => {
                return Err(StoreError::Conflict(
                    "the model in service was the first one promoted: there is nothing to roll back to".into(),
                ));
            }
            Some(Some(id)) => ModelVersionId(id),
        };
        let promotion =
            Self::switch_promoted(&mut tx, project, target, PromotionAction::Rollback, &actor)
                .await?;
        tx.commit().await?;
        Ok(promotion)
    }

    async fn promoted_model_version(
        &self,
        project: ProjectId,
    ) -> StoreResult<Option<ModelVersion>> {
        let row: Option<ModelVersionRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            MODEL_VERSION_COLUMNS,
            " FROM model_versions WHERE project_id = $1 AND status = 'promoted'"
        ))
        .bind(project)
        .fetch_optional(&self.pool)
        .await?;
        row.map(ModelVersion::try_from).transpose()
    }

    async fn model_promotions(&self, project: ProjectId) -> StoreResult<Vec<Promotion>> {
        let rows: Vec<PromotionRow> = sqlx::query_as(
            "SELECT project_id, version_id, previous_version_id, action, actor, at FROM model_promotions \
             WHERE project_id = $1 ORDER BY id DESC",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }
}
