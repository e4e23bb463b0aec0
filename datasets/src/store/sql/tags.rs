use super::*;

impl TagStore for Backend {
    #[tracing::instrument(skip_all, fields(project = %project))]
    async fn create_tag(&self, project: ProjectId, tag: &NewTag) -> StoreResult<Tag> {
        tag.validate()?;
        self.project(project).await?;
        // One transaction, so the group found is the group the tag joins.
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        let group = Self::tag_group_id_in(&mut tx, project, tag.group.as_ref()).await?;
        let row: TagRow = sqlx::query_as(const_str::concat!(
            "INSERT INTO tags (project_id, name, name_key, description, color, keywords, archived, group_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $8) RETURNING ",
            TAG_COLUMNS
        ))
        .bind(project)
        .bind(tag.name.as_str())
        .bind(tag.name.folded())
        .bind(&tag.description)
        .bind(&tag.color)
        .bind(Json(&tag.keywords))
        .bind(group)
        .bind(Utc::now())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, tag_conflict(&tag.name)))?;
        tx.commit().await?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(project = %project, tag = %tag))]
    async fn update_tag(
        &self,
        project: ProjectId,
        tag: TagId,
        update: &TagUpdate,
    ) -> StoreResult<Tag> {
        update.validate()?;
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        let current: Option<TagRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            TAG_COLUMNS,
            " FROM tags WHERE id = $1 AND project_id = $2"
        ))
        .bind(tag)
        .bind(project)
        .fetch_optional(&mut *tx)
        .await?;
        let current: Tag = current
            .ok_or_else(|| StoreError::NotFound(format!("tag {tag} in project {project}")))?
            .try_into()?;
        let mut changed = update.apply_to(&current);
        if let Some(group) = &update.group {
            changed.group_id = Self::tag_group_id_in(&mut tx, project, Some(group)).await?;
        }
        sqlx::query(
            "UPDATE tags SET name = $1, name_key = $2, description = $3, color = $4, keywords = $5, \
             archived = $6, group_id = $7 WHERE id = $8",
        )
        .bind(changed.name.as_str())
        .bind(changed.name.folded())
        .bind(&changed.description)
        .bind(&changed.color)
        .bind(Json(&changed.keywords))
        .bind(changed.archived)
        .bind(changed.group_id)
        .bind(tag)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, tag_conflict(&changed.name)))?;
        tx.commit().await?;
        Ok(changed)
    }

    async fn list_tags(&self, project: ProjectId) -> StoreResult<Vec<Tag>> {
        let rows: Vec<TagRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            TAG_COLUMNS,
            " FROM tags WHERE project_id = $1 ORDER BY name_key"
        ))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }

    #[tracing::instrument(skip_all, fields(project = %project, from = %from, into = %into))]
    async fn merge_tags(
        &self,
        project: ProjectId,
        from: TagId,
        into: TagId,
        actor: impl Into<crate::audit::Actor> + Send,
    ) -> StoreResult<crate::tag_merge::TagMerge> {
        let audit_actor: crate::audit::Actor = actor.into();
        let history_name = audit_actor.history_name();
        let actor = history_name.as_str();
        if actor.trim().is_empty() {
            return Err(ValidationError::field("actor", "is empty").into());
        }
        crate::limits::check_chars("actor", actor, crate::limits::MAX_ACTOR_CHARS)?;
        // The path's tag missing is a 404; what the body names clashing with the
        // taxonomy (itself, another project's tag, an archived tag) is a conflict.
        if from == into {
            return Err(StoreError::Conflict(
                "into: a tag cannot be merged into itself".into(),
            ));
        }
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        let rows: Vec<TagRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            TAG_COLUMNS,
            " FROM tags WHERE project_id = $1 AND id IN ($2, $3)"
        ))
        .bind(project)
        .bind(from)
        .bind(into)
        .fetch_all(&mut *tx)
        .await?;
        let tags: Vec<Tag> = convert_all(rows)?;
        let find = |id: TagId| {
            tags.iter()
                .find(|t| t.id == id)
                .cloned()
                .ok_or_else(|| StoreError::NotFound(format!("tag {id} in project {project}")))
        };
        let source = find(from)?;
        let target = find(into).map_err(|_| {
            StoreError::Conflict(format!("into: project {project} has no tag {into}"))
        })?;
        if target.archived {
            return Err(StoreError::Conflict(format!(
                "tag {:?} is archived: restore it before merging into it",
                target.name.as_str()
            )));
        }
        let set_by = crate::tag_merge::merge_actor(actor, &source.name, &target.name);
        let now = Utc::now();
        let (tickets, combined): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(DISTINCT a.ticket_id), \
             COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM labels b WHERE b.ticket_id = a.ticket_id \
             AND b.tag_id = $2 AND b.source = a.source) THEN 1 ELSE 0 END), 0) \
             FROM labels a WHERE a.tag_id = $1",
        )
        .bind(from)
        .bind(into)
        .fetch_one(&mut *tx)
        .await?;
        // History first, while both tags' rows are as they were: every label of `from`
        // goes; on `into`, a label appears where the ticket had none from that source,
        // and a person's "not this tag" turns into the tag when they had given `from`
        // (the merged tag means either of the two).
        sqlx::query(
            "INSERT INTO label_events (ticket_id, tag_id, source, set_by, confidence, action, at) \
             SELECT a.ticket_id, a.tag_id, a.source, $2, CAST(NULL AS REAL), 'removed', $3 \
             FROM labels a WHERE a.tag_id = $1 ORDER BY a.ticket_id, a.source",
        )
        .bind(from)
        .bind(&set_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO label_events (ticket_id, tag_id, source, set_by, confidence, action, at) \
             SELECT a.ticket_id, $2, a.source, $3, a.confidence, \
             CASE WHEN a.present THEN 'added' ELSE 'removed' END, $4 \
             FROM labels a LEFT JOIN labels b ON b.ticket_id = a.ticket_id AND b.tag_id = $2 \
             AND b.source = a.source \
             WHERE a.tag_id = $1 AND (b.ticket_id IS NULL OR (a.present AND NOT b.present)) \
             ORDER BY a.ticket_id, a.source",
        )
        .bind(from)
        .bind(into)
        .bind(&set_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Labels both tags had: present if either was; a model keeps its higher score.
        sqlx::query(
            "UPDATE labels SET present = TRUE, updated_at = $3, \
             set_by = (SELECT a.set_by FROM labels a WHERE a.ticket_id = labels.ticket_id \
             AND a.tag_id = $1 AND a.source = labels.source), \
             confidence = (SELECT a.confidence FROM labels a WHERE a.ticket_id = labels.ticket_id \
             AND a.tag_id = $1 AND a.source = labels.source) \
             WHERE tag_id = $2 AND NOT present AND EXISTS (SELECT 1 FROM labels a \
             WHERE a.ticket_id = labels.ticket_id AND a.tag_id = $1 AND a.source = labels.source AND a.present)",
        )
        .bind(from)
        .bind(into)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE labels SET confidence = (SELECT a.confidence FROM labels a \
             WHERE a.ticket_id = labels.ticket_id AND a.tag_id = $1 AND a.source = labels.source) \
             WHERE tag_id = $2 AND present AND confidence IS NOT NULL AND EXISTS (SELECT 1 FROM labels a \
             WHERE a.ticket_id = labels.ticket_id AND a.tag_id = $1 AND a.source = labels.source \
             AND a.present AND a.confidence > labels.confidence)",
        )
        .bind(from)
        .bind(into)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(
            "INSERT INTO labels (ticket_id, tag_id, source, set_by, confidence, present, updated_at) \
             SELECT a.ticket_id, $2, a.source, a.set_by, a.confidence, a.present, a.updated_at \
             FROM labels a WHERE a.tag_id = $1 AND NOT EXISTS (SELECT 1 FROM labels b \
             WHERE b.ticket_id = a.ticket_id AND b.tag_id = $2 AND b.source = a.source)",
        )
        .bind(from)
        .bind(into)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM labels WHERE tag_id = $1")
            .bind(from)
            .execute(&mut *tx)
            .await?;
        let rules = crate::tag_merge::merged_rules(&target.keywords, &source.keywords);
        // The merged tag keeps within the limits a client's own rules must (the transaction
        // rolls back otherwise), so a merge cannot build an unbounded rule set.
        rules.validate()?;
        sqlx::query("UPDATE tags SET keywords = $1 WHERE id = $2")
            .bind(Json(&rules))
            .bind(into)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE tags SET archived = TRUE WHERE id = $1")
            .bind(from)
            .execute(&mut *tx)
            .await?;
        let entry = crate::audit::NewAuditEntry::new(
            &audit_actor,
            crate::audit::AuditAction::TagMerge,
            Some(project),
            format!("tag {from} {:?}", source.name.as_str()),
            serde_json::json!({
                "from": { "id": from.0, "name": source.name.as_str() },
                "into": { "id": into.0, "name": target.name.as_str() },
                "tickets": tickets,
                "labels_moved": moved,
            }),
        );
        bind_audit_entry(&entry).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(crate::tag_merge::TagMerge {
            from: Tag {
                archived: true,
                ..source
            },
            into: Tag {
                keywords: rules,
                ..target
            },
            tickets: tickets.max(0) as u64,
            labels_moved: moved,
            labels_combined: combined.max(0) as u64,
        })
    }
}
