//! The store methods whose SQL both databases accept word for word (`$n` parameters,
//! `ON CONFLICT`, `RETURNING`). The macro expands inside each backend's `impl Store`, where
//! `Db` names the sqlx database and `self.pool` its pool, so the SQL exists once and each
//! backend is still a plain, concrete type.

use crate::error::StoreError;
use crate::ids::{ProjectId, TagId};
use crate::label::Label;
use crate::label::tags_in_force;
use crate::names::TagName;
use crate::project::{LabelMode, Project};
use crate::tag::Tag;
use crate::ticket::{LabelledTicket, Ticket};
use std::collections::{HashMap, HashSet};

macro_rules! project_columns {
    () => {
        "id, name, label_mode, languages, created_at"
    };
}
macro_rules! tag_columns {
    () => {
        "id, project_id, name, description, color, keywords, archived, created_at"
    };
}
macro_rules! ticket_columns {
    () => {
        "id, project_id, source, external_id, subject, body, metadata, split, created_at, updated_at"
    };
}
macro_rules! model_version_columns {
    () => {
        "id, project_id, kind, status, metrics, params, artifact_path, files, training_fingerprint, created_at"
    };
}
macro_rules! api_key_columns {
    () => {
        "id, project_id, name, prefix, key_hash, scopes, created_at, revoked_at"
    };
}
macro_rules! label_select {
    () => {
        "SELECT l.ticket_id, l.tag_id, t.name AS tag, l.source, l.set_by, l.confidence, \
         l.present, l.updated_at FROM labels l JOIN tags t ON t.id = l.tag_id"
    };
}
pub(crate) use {
    api_key_columns, label_select, model_version_columns, project_columns, tag_columns,
    ticket_columns,
};

/// `$from, $from+1, …` for `count` values, to build `IN (…)` lists.
pub(crate) fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Groups labels under their tickets and works out the tags in force.
pub(crate) fn attach_labels(tickets: Vec<Ticket>, labels: Vec<Label>) -> Vec<LabelledTicket> {
    let mut by_ticket: HashMap<_, Vec<Label>> = HashMap::new();
    for label in labels {
        by_ticket.entry(label.ticket_id).or_default().push(label);
    }
    tickets
        .into_iter()
        .map(|ticket| {
            let mut labels = by_ticket.remove(&ticket.id).unwrap_or_default();
            labels.sort_by(|a, b| {
                a.tag
                    .cmp(&b.tag)
                    .then(a.source.as_str().cmp(b.source.as_str()))
            });
            let tags = tags_in_force(&labels);
            LabelledTicket {
                ticket,
                labels,
                tags,
            }
        })
        .collect()
}

/// Resolves tag names a person chose against the project's taxonomy.
pub(crate) fn resolve_tag_names(
    project: &Project,
    taxonomy: &[Tag],
    names: &[TagName],
) -> Result<Vec<TagId>, StoreError> {
    let by_key: HashMap<String, &Tag> = taxonomy.iter().map(|t| (t.name.folded(), t)).collect();
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for name in names {
        // Well-formed names the taxonomy does not take are a conflict with the project's
        // state (409), not a malformed request: adding the tag makes the same request work.
        let tag = by_key.get(&name.folded()).ok_or_else(|| {
            StoreError::Conflict(format!(
                "tags: unknown tag {:?} in project {:?}",
                name.as_str(),
                project.name.as_str()
            ))
        })?;
        if tag.archived {
            return Err(StoreError::Conflict(format!(
                "tags: tag {:?} is archived",
                tag.name.as_str()
            )));
        }
        if seen.insert(tag.id) {
            ids.push(tag.id);
        }
    }
    if project.label_mode == LabelMode::Single && ids.len() > 1 {
        return Err(StoreError::Conflict(format!(
            "tags: project {:?} is single-label: give at most one tag",
            project.name.as_str()
        )));
    }
    Ok(ids)
}

pub(crate) fn tag_conflict(name: &TagName) -> impl FnOnce() -> String + '_ {
    move || {
        format!(
            "a tag named {:?} already exists in this project",
            name.as_str()
        )
    }
}

pub(crate) fn project_not_found(id: ProjectId) -> StoreError {
    StoreError::NotFound(format!("project {id}"))
}

/// Expands to the `Store` methods shared by both backends.
macro_rules! common_store_methods {
    () => {
        async fn ping(&self) -> StoreResult<()> {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        }

        async fn create_project(&self, name: &ProjectName, mode: LabelMode) -> StoreResult<Project> {
            let row: ProjectRow = sqlx::query_as(concat!(
                "INSERT INTO projects (name, name_key, label_mode, created_at) VALUES ($1, $2, $3, $4) RETURNING ",
                project_columns!()
            ))
            .bind(name.as_str())
            .bind(name.folded())
            .bind(mode.as_str())
            .bind(Utc::now())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                conflict_on_unique(e, || format!("a project named {:?} already exists", name.as_str()))
            })?;
            row.try_into()
        }

        async fn project(&self, id: ProjectId) -> StoreResult<Project> {
            let row: Option<ProjectRow> =
                sqlx::query_as(concat!("SELECT ", project_columns!(), " FROM projects WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            row.ok_or_else(|| project_not_found(id))?.try_into()
        }

        async fn project_by_name(&self, name: &ProjectName) -> StoreResult<Option<Project>> {
            let row: Option<ProjectRow> = sqlx::query_as(concat!(
                "SELECT ",
                project_columns!(),
                " FROM projects WHERE name_key = $1"
            ))
            .bind(name.folded())
            .fetch_optional(&self.pool)
            .await?;
            row.map(Project::try_from).transpose()
        }

        async fn set_project_languages(
            &self,
            project: ProjectId,
            languages: &[$crate::language::Language],
        ) -> StoreResult<Project> {
            let row: Option<ProjectRow> = sqlx::query_as(concat!(
                "UPDATE projects SET languages = $2 WHERE id = $1 RETURNING ",
                project_columns!()
            ))
            .bind(project)
            .bind($crate::language::Language::join(languages))
            .fetch_optional(&self.pool)
            .await?;
            row.ok_or_else(|| project_not_found(project))?.try_into()
        }

        async fn list_projects(&self) -> StoreResult<Vec<ProjectSummary>> {
            let rows: Vec<ProjectSummaryRow> = sqlx::query_as(
                "SELECT p.id, p.name, p.label_mode, p.languages, p.created_at, \
                 (SELECT count(*) FROM tickets t WHERE t.project_id = p.id) AS tickets, \
                 (SELECT count(*) FROM tags g WHERE g.project_id = p.id) AS tags \
                 FROM projects p ORDER BY p.name_key",
            )
            .fetch_all(&self.pool)
            .await?;
            convert_all(rows)
        }

        async fn create_tag(&self, project: ProjectId, tag: &NewTag) -> StoreResult<Tag> {
            tag.validate()?;
            self.project(project).await?;
            let row: TagRow = sqlx::query_as(concat!(
                "INSERT INTO tags (project_id, name, name_key, description, color, keywords, archived, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7) RETURNING ",
                tag_columns!()
            ))
            .bind(project)
            .bind(tag.name.as_str())
            .bind(tag.name.folded())
            .bind(&tag.description)
            .bind(&tag.color)
            .bind(Json(&tag.keywords))
            .bind(Utc::now())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| conflict_on_unique(e, tag_conflict(&tag.name)))?;
            row.try_into()
        }

        async fn update_tag(&self, project: ProjectId, tag: TagId, update: &TagUpdate) -> StoreResult<Tag> {
            update.validate()?;
            let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
            let current: Option<TagRow> = sqlx::query_as(concat!(
                "SELECT ",
                tag_columns!(),
                " FROM tags WHERE id = $1 AND project_id = $2"
            ))
            .bind(tag)
            .bind(project)
            .fetch_optional(&mut *tx)
            .await?;
            let current: Tag = current
                .ok_or_else(|| StoreError::NotFound(format!("tag {tag} in project {project}")))?
                .try_into()?;
            let changed = update.apply_to(&current);
            sqlx::query(
                "UPDATE tags SET name = $1, name_key = $2, description = $3, color = $4, keywords = $5, \
                 archived = $6 WHERE id = $7",
            )
            .bind(changed.name.as_str())
            .bind(changed.name.folded())
            .bind(&changed.description)
            .bind(&changed.color)
            .bind(Json(&changed.keywords))
            .bind(changed.archived)
            .bind(tag)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_on_unique(e, tag_conflict(&changed.name)))?;
            tx.commit().await?;
            Ok(changed)
        }

        async fn list_tags(&self, project: ProjectId) -> StoreResult<Vec<Tag>> {
            let rows: Vec<TagRow> = sqlx::query_as(concat!(
                "SELECT ",
                tag_columns!(),
                " FROM tags WHERE project_id = $1 ORDER BY name_key"
            ))
            .bind(project)
            .fetch_all(&self.pool)
            .await?;
            convert_all(rows)
        }

        async fn upsert_tickets(&self, project: ProjectId, tickets: &[NewTicket]) -> StoreResult<Vec<UpsertedTicket>> {
            for ticket in tickets {
                ticket.validate()?;
            }
            self.project(project).await?;
            let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
            let mut stored = Vec::with_capacity(tickets.len());
            let now = Utc::now();
            for ticket in tickets {
                stored.push(Self::upsert_ticket_in(&mut tx, project, ticket, now).await?);
            }
            tx.commit().await?;
            Ok(stored)
        }

        async fn upsert_ticket_with_model_labels(
            &self,
            project: ProjectId,
            ticket: &NewTicket,
            version: ModelVersionId,
            tags: &[(TagId, f32)],
        ) -> StoreResult<UpsertedTicket> {
            ticket.validate()?;
            self.project(project).await?;
            self.check_tags_in_project(project, tags).await?;
            let now = Utc::now();
            let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
            let stored = Self::upsert_ticket_in(&mut tx, project, ticket, now).await?;
            Self::write_model_labels_in(&mut tx, stored, version, tags, now).await?;
            tx.commit().await?;
            Ok(stored)
        }

        async fn ticket(&self, project: ProjectId, ticket: TicketId) -> StoreResult<LabelledTicket> {
            let row: Option<TicketRow> = sqlx::query_as(concat!(
                "SELECT ",
                ticket_columns!(),
                " FROM tickets WHERE id = $1 AND project_id = $2"
            ))
            .bind(ticket)
            .bind(project)
            .fetch_optional(&self.pool)
            .await?;
            let row = row.ok_or_else(|| StoreError::NotFound(format!("ticket {ticket} in project {project}")))?;
            let mut labelled = self.with_labels(vec![row.try_into()?]).await?;
            labelled
                .pop()
                .ok_or_else(|| StoreError::NotFound(format!("ticket {ticket}")))
        }

        async fn search_tickets(&self, project: ProjectId, query: &TicketQuery) -> StoreResult<Vec<LabelledTicket>> {
            query.validate()?;
            let mut sql = String::from(concat!("SELECT ", ticket_columns!(), " FROM tickets WHERE project_id = $1"));
            let mut texts: Vec<String> = Vec::new();
            if let Some(text) = query.text.as_deref().filter(|t| !t.trim().is_empty()) {
                let pattern = format!(
                    "%{}%",
                    text.trim().to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
                );
                texts.push(pattern);
                let n = texts.len() + 1;
                sql.push_str(&format!(
                    " AND (lower(subject) LIKE ${n} ESCAPE '\\' OR lower(body) LIKE ${n} ESCAPE '\\')"
                ));
            }
            if let Some(tag) = &query.tag {
                texts.push(tag.folded());
                let n = texts.len() + 1;
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM labels l JOIN tags g ON g.id = l.tag_id \
                     WHERE l.ticket_id = tickets.id AND l.present AND g.name_key = ${n})"
                ));
            }
            if let Some(split) = query.split {
                texts.push(split.as_str().to_string());
                sql.push_str(&format!(" AND split = ${}", texts.len() + 1));
            }
            if let Some(source) = &query.source {
                texts.push(source.clone());
                sql.push_str(&format!(" AND source = ${}", texts.len() + 1));
            }
            if query.unlabelled {
                sql.push_str(" AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.ticket_id = tickets.id)");
            }
            sql.push_str(&format!(
                " ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {}",
                query.effective_limit(),
                query.offset.unwrap_or(0)
            ));
            let mut statement = sqlx::query_as::<Db, TicketRow>(sqlx::AssertSqlSafe(sql)).bind(project);
            for text in texts {
                statement = statement.bind(text);
            }
            let rows = statement.fetch_all(&self.pool).await?;
            self.with_labels(convert_all(rows)?).await
        }

        async fn tickets_after(&self, project: ProjectId, after: Option<TicketId>, limit: u32) -> StoreResult<Vec<LabelledTicket>> {
            let rows: Vec<TicketRow> = sqlx::query_as(concat!(
                "SELECT ",
                ticket_columns!(),
                " FROM tickets WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(project)
            .bind(after.map_or(0, |id| id.0))
            .bind(i64::from(limit.min(MAX_PAGE)))
            .fetch_all(&self.pool)
            .await?;
            self.with_labels(convert_all(rows)?).await
        }

        async fn record_human_answer(
            &self,
            project: ProjectId,
            ticket: TicketId,
            tags: &[TagName],
            user: &str,
            kind: $crate::review::AnswerKind,
        ) -> StoreResult<LabelledTicket> {
            use $crate::review::AnswerKind;
            if user.trim().is_empty() {
                return Err(ValidationError::field("user", "is empty").into());
            }
            $crate::limits::check_chars("user", user, $crate::limits::MAX_ACTOR_CHARS)?;
            $crate::limits::check_count("tags", tags.len(), $crate::limits::MAX_TAGS_PER_ANSWER, "tags in one answer")?;
            let project_row = self.project(project).await?;
            let taxonomy = self.list_tags(project).await?;
            let chosen = resolve_tag_names(&project_row, &taxonomy, tags)?;
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
                let action = if present { LabelAction::Added } else { LabelAction::Removed };
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
            let answer: Vec<&str> = taxonomy.iter().filter(|t| chosen.contains(&t.id)).map(|t| t.name.as_str()).collect();
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
            let existing = UpsertedTicket { id: ticket, created: false };
            Self::write_model_labels_in(&mut tx, existing, version, tags, Utc::now()).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn label_history(&self, project: ProjectId, ticket: TicketId) -> StoreResult<Vec<LabelEvent>> {
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

        async fn create_model_version(&self, project: ProjectId, version: &NewModelVersion) -> StoreResult<ModelVersion> {
            self.project(project).await?;
            let row: ModelVersionRow = sqlx::query_as(concat!(
                "INSERT INTO model_versions (project_id, kind, status, metrics, params, artifact_path, files, \
                 training_fingerprint, created_at) VALUES ($1, $2, 'candidate', $3, $4, $5, $6, $7, $8) RETURNING ",
                model_version_columns!()
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
            let rows: Vec<ModelVersionRow> = sqlx::query_as(concat!(
                "SELECT ",
                model_version_columns!(),
                " FROM model_versions WHERE project_id = $1 ORDER BY id DESC"
            ))
            .bind(project)
            .fetch_all(&self.pool)
            .await?;
            convert_all(rows)
        }

        async fn model_version(&self, project: ProjectId, version: ModelVersionId) -> StoreResult<ModelVersion> {
            let row: Option<ModelVersionRow> = sqlx::query_as(concat!(
                "SELECT ",
                model_version_columns!(),
                " FROM model_versions WHERE project_id = $1 AND id = $2"
            ))
            .bind(project)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
            row.ok_or_else(|| StoreError::NotFound(format!("model version {version} of project {project}")))?
                .try_into()
        }

        async fn set_model_metrics(&self, project: ProjectId, version: ModelVersionId, metrics: &serde_json::Value) -> StoreResult<()> {
            let updated = sqlx::query("UPDATE model_versions SET metrics = $1 WHERE project_id = $2 AND id = $3")
                .bind(Json(metrics))
                .bind(project)
                .bind(version)
                .execute(self.writer())
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound(format!("model version {version} of project {project}")));
            }
            Ok(())
        }

        async fn promote_model_version(
            &self,
            project: ProjectId,
            version: ModelVersionId,
            actor: impl Into<$crate::audit::Actor> + Send,
        ) -> StoreResult<Promotion> {
            let actor: $crate::audit::Actor = actor.into();
            let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
            let promotion = Self::switch_promoted(&mut tx, project, version, PromotionAction::Promote, &actor).await?;
            tx.commit().await?;
            Ok(promotion)
        }

        async fn rollback_model_version(
            &self,
            project: ProjectId,
            actor: impl Into<$crate::audit::Actor> + Send,
        ) -> StoreResult<Promotion> {
            let actor: $crate::audit::Actor = actor.into();
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
                None => return Err(StoreError::Conflict(format!("project {project} has no promoted model to roll back"))),
                Some(None) => {
                    return Err(StoreError::Conflict(
                        "the model in service was the first one promoted: there is nothing to roll back to".into(),
                    ));
                }
                Some(Some(id)) => ModelVersionId(id),
            };
            let promotion = Self::switch_promoted(&mut tx, project, target, PromotionAction::Rollback, &actor).await?;
            tx.commit().await?;
            Ok(promotion)
        }

        async fn promoted_model_version(&self, project: ProjectId) -> StoreResult<Option<ModelVersion>> {
            let row: Option<ModelVersionRow> = sqlx::query_as(concat!(
                "SELECT ",
                model_version_columns!(),
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

        async fn create_api_key(&self, grant: &KeyGrant, name: &str) -> StoreResult<CreatedApiKey> {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(ValidationError::field("name", "must be 1 to 100 characters").into());
            }
            // An instance-admin key has no scopes: the empty text marks it in the table too.
            let scopes = match grant {
                KeyGrant::Project { project_id, scopes } => {
                    if scopes.is_empty() {
                        return Err(ValidationError::field("scopes", "a project key needs at least one scope").into());
                    }
                    self.project(*project_id).await?;
                    scopes.to_string()
                }
                KeyGrant::InstanceAdmin => String::new(),
            };
            let (secret, prefix) = crate::api_key::generate()
                .map_err(|e| StoreError::Conflict(format!("no randomness for a key: {e}")))?;
            let row: ApiKeyRow = sqlx::query_as(concat!(
                "INSERT INTO api_keys (project_id, name, prefix, key_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
                api_key_columns!()
            ))
            .bind(grant.project_id())
            .bind(name)
            .bind(&prefix)
            .bind(crate::api_key::hash(&secret))
            .bind(scopes)
            .bind(Utc::now())
            .fetch_one(&self.pool)
            .await?;
            Ok(CreatedApiKey { key: row.try_into()?, secret })
        }

        async fn api_keys(&self, project: Option<ProjectId>) -> StoreResult<Vec<ApiKey>> {
            let rows: Vec<ApiKeyRow> = sqlx::query_as(concat!(
                "SELECT ",
                api_key_columns!(),
                " FROM api_keys WHERE project_id IS NOT DISTINCT FROM $1 ORDER BY id"
            ))
            .bind(project)
            .fetch_all(&self.pool)
            .await?;
            convert_all(rows)
        }

        async fn revoke_api_key(&self, project: Option<ProjectId>, key: i64) -> StoreResult<ApiKey> {
            let row: Option<ApiKeyRow> = sqlx::query_as(concat!(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) \
                 WHERE project_id IS NOT DISTINCT FROM $2 AND id = $3 RETURNING ",
                api_key_columns!()
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
            let row: Option<ApiKeyRow> = sqlx::query_as(concat!(
                "SELECT ",
                api_key_columns!(),
                " FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL"
            ))
            .bind(prefix)
            .fetch_optional(&self.pool)
            .await?;
            row.filter(|row| crate::api_key::hashes_match(&row.key_hash, &crate::api_key::hash(key)))
                .map(ApiKey::try_from)
                .transpose()
        }
    };
}
pub(crate) use common_store_methods;

/// Expands to the inherent helpers the shared methods use.
macro_rules! common_store_helpers {
    () => {
        /// Inserts or updates one ticket (idempotent on source and external id) in `tx`.
        pub(super) async fn upsert_ticket_in(
            tx: &mut sqlx::Transaction<'static, Db>,
            project: ProjectId,
            ticket: &NewTicket,
            now: chrono::DateTime<Utc>,
        ) -> StoreResult<UpsertedTicket> {
            let existing: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM tickets WHERE project_id = $1 AND source = $2 AND external_id = $3",
            )
            .bind(project)
            .bind(&ticket.source)
            .bind(&ticket.external_id)
            .fetch_optional(&mut **tx)
            .await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO tickets (project_id, source, external_id, subject, body, metadata, split, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (project_id, source, external_id) DO UPDATE SET subject = excluded.subject, \
                 body = excluded.body, metadata = excluded.metadata, updated_at = excluded.updated_at \
                 RETURNING id",
            )
            .bind(project)
            .bind(&ticket.source)
            .bind(&ticket.external_id)
            .bind(&ticket.subject)
            .bind(&ticket.body)
            .bind(Json(&ticket.metadata))
            .bind(ticket.split.as_str())
            .bind(ticket.created_at.unwrap_or(now))
            .bind(now)
            .fetch_one(&mut **tx)
            .await?;
            Ok(UpsertedTicket {
                id: TicketId(id),
                created: existing.is_none(),
            })
        }

        /// Replaces a ticket's model labels with `tags` from `version` in `tx`, with their
        /// history (tags the caller has checked belong to the ticket's project).
        pub(super) async fn write_model_labels_in(
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
            for old in current.into_iter().map(TagId).filter(|tag| !new_tags.contains(tag)) {
                sqlx::query("DELETE FROM labels WHERE ticket_id = $1 AND tag_id = $2 AND source = 'model'")
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
        async fn check_tags_in_project(&self, project: ProjectId, tags: &[(TagId, f32)]) -> StoreResult<()> {
            let taxonomy: HashSet<TagId> = self.list_tags(project).await?.iter().map(|t| t.id).collect();
            if let Some((unknown, _)) = tags.iter().find(|(tag, _)| !taxonomy.contains(tag)) {
                return Err(ValidationError::field("tags", format!("tag {unknown} is not in project {project}")).into());
            }
            Ok(())
        }

        /// Puts `target` in service in this transaction, retiring the version it replaces.
        async fn switch_promoted(
            tx: &mut sqlx::Transaction<'static, Db>,
            project: ProjectId,
            target: ModelVersionId,
            action: PromotionAction,
            actor: &$crate::audit::Actor,
        ) -> StoreResult<Promotion> {
            let history_name = actor.history_name();
            $crate::limits::check_chars("actor", &history_name, $crate::limits::MAX_ACTOR_CHARS)?;
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM model_versions WHERE project_id = $1 AND id = $2")
                    .bind(project)
                    .bind(target)
                    .fetch_optional(&mut **tx)
                    .await?;
            match status.as_deref() {
                None => return Err(StoreError::NotFound(format!("model version {target} of project {project}"))),
                Some("promoted") => {
                    return Err(StoreError::Conflict(format!("model version {target} is already in service")));
                }
                Some(_) => {}
            }
            let previous: Option<i64> =
                sqlx::query_scalar("SELECT id FROM model_versions WHERE project_id = $1 AND status = 'promoted'")
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
                .map_err(|e| conflict_on_unique(e, || "another promotion of this project happened at the same time".into()))?;
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
                PromotionAction::Promote => $crate::audit::AuditAction::ModelPromote,
                PromotionAction::Rollback => $crate::audit::AuditAction::ModelRollback,
            };
            let entry = $crate::audit::NewAuditEntry::new(
                actor,
                audit_action,
                Some(project),
                format!("model version {target}"),
                serde_json::json!({ "version": target.0, "previous": previous }),
            );
            $crate::store::audit_store::bind_audit_entry!(&entry).fetch_one(&mut **tx).await?;
            Ok(Promotion {
                project_id: project,
                version: target,
                previous: previous.map(ModelVersionId),
                action,
                actor: history_name,
                at,
            })
        }

        /// Loads the labels of these tickets in one query.
        async fn with_labels(&self, tickets: Vec<Ticket>) -> StoreResult<Vec<LabelledTicket>> {
            if tickets.is_empty() {
                return Ok(Vec::new());
            }
            let sql = format!(
                "{} WHERE l.ticket_id IN ({})",
                label_select!(),
                placeholders(1, tickets.len())
            );
            let mut statement = sqlx::query_as::<Db, LabelRow>(sqlx::AssertSqlSafe(sql));
            for ticket in &tickets {
                statement = statement.bind(ticket.id);
            }
            let labels = convert_all(statement.fetch_all(&self.pool).await?)?;
            Ok(attach_labels(tickets, labels))
        }
    };
}
pub(crate) use common_store_helpers;

/// Which imported labels of a ticket go and which come, given the old and new sets.
pub(crate) fn label_changes(old: &[TagId], new: &[TagId]) -> (Vec<TagId>, Vec<TagId>) {
    let removed = old.iter().filter(|t| !new.contains(t)).copied().collect();
    let added = new.iter().filter(|t| !old.contains(t)).copied().collect();
    (removed, added)
}

/// Keeps the last row for each (source, external id): a file that lists a ticket twice
/// means its later line.
pub(crate) fn last_row_per_key(rows: Vec<super::ImportRow>) -> Vec<super::ImportRow> {
    let mut position: HashMap<(String, String), usize> = HashMap::new();
    let mut kept: Vec<Option<super::ImportRow>> = Vec::with_capacity(rows.len());
    for row in rows {
        let key = (row.ticket.source.clone(), row.ticket.external_id.clone());
        if let Some(&earlier) = position.get(&key) {
            kept[earlier] = None;
        }
        position.insert(key, kept.len());
        kept.push(Some(row));
    }
    kept.into_iter().flatten().collect()
}
