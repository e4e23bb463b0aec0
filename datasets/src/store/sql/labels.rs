use super::*;

impl Backend {
    /// Replaces a ticket's model labels with `tags` from `version` in `tx`, with their
    /// history (tags the caller has checked belong to the ticket's project).
    pub(crate) async fn write_model_labels_in(
        tx: &mut sqlx::Transaction<'static, Db>,
        stored: UpsertedTicket,
        version: ModelVersionId,
        tags: &[(TagId, f32)],
        now: chrono::DateTime<Utc>,
    ) -> StoreResult<()> {
        let ticket = stored.id;
        let set_by = format!("model:{version}");
        let new_tags: HashSet<TagId> = tags.iter().map(|(tag, _)| *tag).collect();
        // A ticket created in this transaction has no labels yet: one read less per new
        // ticket (a backfill page stores a thousand).
        let current: Vec<i64> = if stored.created {
            Vec::new()
        } else {
            sqlx::query_scalar(
                "SELECT tag_id FROM labels WHERE ticket_id = $1 AND source = 'model' ORDER BY tag_id",
            )
            .bind(ticket)
            .fetch_all(&mut **tx)
            .await?
        };
        for old in current
            .into_iter()
            .map(TagId)
            .filter(|tag| !new_tags.contains(tag))
        {
            sqlx::query(
                "DELETE FROM labels WHERE ticket_id = $1 AND tag_id = $2 AND source = 'model'",
            )
            .bind(ticket)
            .bind(old)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO label_events (ticket_id, tag_id, source, set_by, confidence, action, at) \
                 VALUES ($1, $2, 'model', $3, NULL, 'removed', $4)",
            )
            .bind(ticket)
            .bind(old)
            .bind(&set_by)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        // In tag order, so the history of one write never follows the order of the
        // model's scores (which near-ties can change between CPUs).
        let mut tags = tags.to_vec();
        tags.sort_by_key(|(tag, _)| *tag);
        for (tag, confidence) in &tags {
            sqlx::query(
                "INSERT INTO labels (ticket_id, tag_id, source, set_by, confidence, present, updated_at) \
                 VALUES ($1, $2, 'model', $3, $4, TRUE, $5) \
                 ON CONFLICT (ticket_id, tag_id, source) DO UPDATE SET set_by = excluded.set_by, \
                 confidence = excluded.confidence, present = TRUE, updated_at = excluded.updated_at",
            )
            .bind(ticket)
            .bind(*tag)
            .bind(&set_by)
            .bind(*confidence)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO label_events (ticket_id, tag_id, source, set_by, confidence, action, at) \
                 VALUES ($1, $2, 'model', $3, $4, 'added', $5)",
            )
            .bind(ticket)
            .bind(*tag)
            .bind(&set_by)
            .bind(*confidence)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Refuses tags that are not in the project's taxonomy.
    pub(crate) async fn check_tags_in_project(
        &self,
        project: ProjectId,
        tags: &[(TagId, f32)],
    ) -> StoreResult<()> {
        let taxonomy: HashSet<TagId> = self
            .list_tags(project)
            .await?
            .iter()
            .map(|t| t.id)
            .collect();
        if let Some((unknown, _)) = tags.iter().find(|(tag, _)| !taxonomy.contains(tag)) {
            return Err(ValidationError::field(
                "tags",
                format!("tag {unknown} is not in project {project}"),
            )
            .into());
        }
        Ok(())
    }
}

impl LabelStore for Backend {
    async fn set_human_labels(
        &self,
        project: ProjectId,
        ticket: TicketId,
        tags: &[TagName],
        user: &str,
    ) -> StoreResult<LabelledTicket> {
        self.record_human_answer(
            project,
            ticket,
            tags,
            user,
            crate::review::AnswerKind::Answer,
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(project = %project, ticket = %ticket))]
    async fn record_human_answer(
        &self,
        project: ProjectId,
        ticket: TicketId,
        tags: &[TagName],
        user: &str,
        kind: crate::review::AnswerKind,
    ) -> StoreResult<LabelledTicket> {
        use crate::review::AnswerKind;
        if user.trim().is_empty() {
            return Err(ValidationError::field("user", "is empty").into());
        }
        crate::limits::check_chars("user", user, crate::limits::MAX_ACTOR_CHARS)?;
        crate::limits::check_count(
            "tags",
            tags.len(),
            crate::limits::MAX_TAGS_PER_ANSWER,
            "tags in one answer",
        )?;
        let project_row = self.project(project).await?;
        let taxonomy = self.list_tags(project).await?;
        let groups = self.list_tag_groups(project).await?;
        let chosen = resolve_tag_names(&project_row, &taxonomy, &groups, tags)?;
        let current = self.ticket(project, ticket).await?;
        let settings = self.review_settings(project).await?;
        let now = Utc::now();
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        // The holder of a second-opinion lease answers blind and for the record only: the
        // labels stay as the first person left them until an adjudicator decides. Their
        // later answers on the ticket (undo, reopen) stay second opinions too.
        let second_opinion = kind != AnswerKind::Adjudication
            && sqlx::query_scalar::<Db, i64>(
                "SELECT ticket_id FROM second_opinions WHERE ticket_id = $1 AND first_by <> $2 \
                 AND ((leased_by = $2 AND answered_at IS NULL) OR answered_by = $2)",
            )
            .bind(ticket)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let kind = if second_opinion {
            AnswerKind::SecondOpinion
        } else if kind == AnswerKind::SecondOpinion {
            AnswerKind::Answer
        } else {
            kind
        };
        let human_present: HashMap<TagId, bool> = current
            .labels
            .iter()
            .filter(|l| l.source == LabelSource::Human)
            .map(|l| (l.tag_id, l.present))
            .collect();
        let mut changes: Vec<(TagId, bool)> = chosen
            .iter()
            .filter(|tag| human_present.get(tag) != Some(&true))
            .map(|tag| (*tag, true))
            .collect();
        let mentioned: HashSet<TagId> = current.labels.iter().map(|l| l.tag_id).collect();
        let mut rejected: Vec<TagId> = mentioned
            .into_iter()
            .filter(|tag| !chosen.contains(tag) && human_present.get(tag) != Some(&false))
            .collect();
        rejected.sort();
        changes.extend(rejected.into_iter().map(|tag| (tag, false)));
        if second_opinion {
            changes.clear();
        }
        for (tag, present) in changes {
            sqlx::query(
                "INSERT INTO labels (ticket_id, tag_id, source, set_by, confidence, present, updated_at) \
                 VALUES ($1, $2, 'human', $3, NULL, $4, $5) \
                 ON CONFLICT (ticket_id, tag_id, source) DO UPDATE SET set_by = excluded.set_by, \
                 confidence = NULL, present = excluded.present, updated_at = excluded.updated_at",
            )
            .bind(ticket)
            .bind(tag)
            .bind(user)
            .bind(present)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let action = if present {
                LabelAction::Added
            } else {
                LabelAction::Removed
            };
            sqlx::query(
                "INSERT INTO label_events (ticket_id, tag_id, source, set_by, confidence, action, at) \
                 VALUES ($1, $2, 'human', $3, NULL, $4, $5)",
            )
            .bind(ticket)
            .bind(tag)
            .bind(user)
            .bind(action.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The whole answer, and out of the review queue at once, even with no tags (issue 6).
        let answer: Vec<&str> = taxonomy
            .iter()
            .filter(|t| chosen.contains(&t.id))
            .map(|t| t.name.as_str())
            .collect();
        sqlx::query("INSERT INTO label_submissions (ticket_id, set_by, tags, at, kind) VALUES ($1, $2, $3, $4, $5)")
            .bind(ticket)
            .bind(user)
            .bind(Json(&answer))
            .bind(now)
            .bind(kind.as_str())
            .execute(&mut *tx)
            .await?;
        if second_opinion {
            sqlx::query(
                "UPDATE second_opinions SET answered_by = $2, answered_at = $3, leased_by = NULL, \
                 lease_expires_ms = NULL WHERE ticket_id = $1",
            )
            .bind(ticket)
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        } else if kind == AnswerKind::Answer && settings.samples(ticket) {
            // Only the ticket's first labeller draws it into the double-labelled sample.
            sqlx::query(
                "INSERT INTO second_opinions (ticket_id, project_id, first_by, requested_at) \
                 SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM label_submissions s \
                 WHERE s.ticket_id = $1 AND s.set_by <> $3) ON CONFLICT (ticket_id) DO NOTHING",
            )
            .bind(ticket)
            .bind(project)
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM review_queue WHERE ticket_id = $1")
            .bind(ticket)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.ticket(project, ticket).await
    }

    #[tracing::instrument(skip_all, fields(project = %project, ticket = %ticket, version = %version))]
    async fn set_model_labels(
        &self,
        project: ProjectId,
        ticket: TicketId,
        version: ModelVersionId,
        tags: &[(TagId, f32)],
    ) -> StoreResult<()> {
        self.ticket(project, ticket).await?;
        self.check_tags_in_project(project, tags).await?;
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        let existing = UpsertedTicket {
            id: ticket,
            created: false,
        };
        Self::write_model_labels_in(&mut tx, existing, version, tags, Utc::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(project = %project, ticket = %ticket))]
    async fn label_history(
        &self,
        project: ProjectId,
        ticket: TicketId,
    ) -> StoreResult<Vec<LabelEvent>> {
        self.ticket(project, ticket).await?;
        let rows: Vec<LabelEventRow> = sqlx::query_as(
            "SELECT e.ticket_id, t.name AS tag, e.source, e.set_by, e.confidence, e.action, e.at \
             FROM label_events e JOIN tags t ON t.id = e.tag_id WHERE e.ticket_id = $1 ORDER BY e.id",
        )
        .bind(ticket)
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }
}
