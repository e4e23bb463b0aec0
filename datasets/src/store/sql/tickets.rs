use super::*;
use crate::ids::TagId;
use crate::ticket::LabelledTicket;

impl Backend {
    /// Inserts or updates one ticket (idempotent on source and external id) in `tx`, with
    /// its entities found with `glossary` (the project's, read in the same transaction).
    pub(crate) async fn upsert_ticket_in(
        tx: &mut sqlx::Transaction<'static, Db>,
        project: ProjectId,
        ticket: &NewTicket,
        glossary: &crate::text::glossary::Glossary,
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
        Self::write_entities_in(
            tx,
            project,
            TicketId(id),
            (ticket.subject.as_str(), ticket.body.as_str()),
            glossary,
        )
        .await?;
        Ok(UpsertedTicket {
            id: TicketId(id),
            created: existing.is_none(),
        })
    }

    /// Loads the labels of these tickets in one query.
    pub(crate) async fn with_labels(
        &self,
        tickets: Vec<Ticket>,
    ) -> StoreResult<Vec<LabelledTicket>> {
        if tickets.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "{} WHERE l.ticket_id IN ({})",
            LABEL_SELECT,
            placeholders(1, tickets.len())
        );
        let mut statement = sqlx::query_as::<Db, LabelRow>(sqlx::AssertSqlSafe(sql));
        for ticket in &tickets {
            statement = statement.bind(ticket.id);
        }
        let labels = convert_all(statement.fetch_all(&self.pool).await?)?;
        Ok(attach_labels(tickets, labels))
    }
}

/// `AND id IN (tickets with this entity)` for a query whose `$1` is the project: one range of
/// `ticket_entities_lookup`. `kind` and `value` are the numbers of their parameters.
fn entity_condition(kind: usize, value: Option<usize>) -> String {
    let value = value.map_or_else(String::new, |n| format!(" AND e.value_key = ${n}"));
    format!(
        " AND id IN (SELECT e.ticket_id FROM ticket_entities e \
         WHERE e.project_id = $1 AND e.kind = ${kind}{value})"
    )
}

impl TicketStore for Backend {
    #[tracing::instrument(skip_all, fields(project = %project, tickets = tickets.len()))]
    async fn upsert_tickets(
        &self,
        project: ProjectId,
        tickets: &[NewTicket],
    ) -> StoreResult<Vec<UpsertedTicket>> {
        for ticket in tickets {
            ticket.validate()?;
        }
        self.project(project).await?;
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        let mut stored = Vec::with_capacity(tickets.len());
        let now = Utc::now();
        let glossary = Self::glossary_in(&mut tx, project).await?;
        for ticket in tickets {
            stored.push(Self::upsert_ticket_in(&mut tx, project, ticket, &glossary, now).await?);
        }
        tx.commit().await?;
        Ok(stored)
    }

    #[tracing::instrument(skip_all, fields(project = %project, version = %version))]
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
        let glossary = Self::glossary_in(&mut tx, project).await?;
        let stored = Self::upsert_ticket_in(&mut tx, project, ticket, &glossary, now).await?;
        Self::write_model_labels_in(&mut tx, stored, version, tags, now).await?;
        tx.commit().await?;
        Ok(stored)
    }

    #[tracing::instrument(skip_all, fields(project = %project, ticket = %ticket))]
    async fn ticket(&self, project: ProjectId, ticket: TicketId) -> StoreResult<LabelledTicket> {
        let row: Option<TicketRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            TICKET_COLUMNS,
            " FROM tickets WHERE id = $1 AND project_id = $2"
        ))
        .bind(ticket)
        .bind(project)
        .fetch_optional(&self.pool)
        .await?;
        let row = row
            .ok_or_else(|| StoreError::NotFound(format!("ticket {ticket} in project {project}")))?;
        let mut labelled = self.with_labels(vec![row.try_into()?]).await?;
        labelled
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("ticket {ticket}")))
    }

    #[tracing::instrument(skip_all, fields(project = %project))]
    async fn search_tickets(
        &self,
        project: ProjectId,
        query: &TicketQuery,
    ) -> StoreResult<Vec<LabelledTicket>> {
        query.validate()?;
        let mut sql = String::from(const_str::concat!(
            "SELECT ",
            TICKET_COLUMNS,
            " FROM tickets WHERE project_id = $1"
        ));
        let mut texts: Vec<String> = Vec::new();
        if let Some(text) = query.text.as_deref().filter(|t| !t.trim().is_empty()) {
            let pattern = format!(
                "%{}%",
                text.trim()
                    .to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
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
        if let Some(entity) = &query.entity {
            texts.push(entity.kind.as_str().to_string());
            let kind = texts.len() + 1;
            let value = entity.value_key().map(|key| {
                texts.push(key);
                texts.len() + 1
            });
            sql.push_str(&entity_condition(kind, value));
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

    #[tracing::instrument(skip_all, fields(project = %project))]
    async fn tickets_after(
        &self,
        project: ProjectId,
        after: Option<TicketId>,
        limit: u32,
    ) -> StoreResult<Vec<LabelledTicket>> {
        let rows: Vec<TicketRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            TICKET_COLUMNS,
            " FROM tickets WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(project)
        .bind(after.map_or(0, |id| id.0))
        .bind(i64::from(limit.min(MAX_PAGE)))
        .fetch_all(&self.pool)
        .await?;
        self.with_labels(convert_all(rows)?).await
    }

    #[tracing::instrument(skip_all, fields(project = %project))]
    async fn browse_tickets(
        &self,
        project: ProjectId,
        filter: &crate::store::dashboard::TicketFilter,
    ) -> StoreResult<crate::store::dashboard::TicketPage> {
        filter.validate()?;
        enum Bind {
            Text(String),
            Number(i64),
            Real(f32),
            Time(chrono::DateTime<Utc>),
        }
        let mut binds: Vec<Bind> = Vec::new();
        let mut sql = String::from(const_str::concat!(
            "SELECT ",
            TICKET_COLUMNS,
            " FROM tickets WHERE project_id = $1"
        ));
        let next = |binds: &mut Vec<Bind>, value: Bind| {
            binds.push(value);
            binds.len() + 1
        };
        if let Some(query) = filter.text.as_deref().and_then(dialect::all_words) {
            let n = next(&mut binds, Bind::Text(query));
            sql.push_str(&format!(" AND {}", dialect::text_condition(n)));
        }
        if let Some(rules) = &filter.rule {
            match dialect::rule(rules) {
                Some(query) => {
                    let n = next(&mut binds, Bind::Text(query));
                    sql.push_str(&format!(" AND {}", dialect::text_condition(n)));
                }
                // A rule without a usable include phrase matches nothing.
                None => sql.push_str(" AND 1 = 0"),
            }
        }
        if let Some(source) = &filter.source {
            let n = next(&mut binds, Bind::Text(source.clone()));
            sql.push_str(&format!(" AND source = ${n}"));
        }
        if let Some(from) = filter.from {
            let n = next(&mut binds, Bind::Time(from));
            sql.push_str(&format!(" AND created_at >= ${n}"));
        }
        if let Some(until) = filter.until {
            let n = next(&mut binds, Bind::Time(until));
            sql.push_str(&format!(" AND created_at < ${n}"));
        }
        if let Some(entity) = &filter.entity {
            let kind = next(&mut binds, Bind::Text(entity.kind.as_str().to_string()));
            let value = entity
                .value_key()
                .map(|key| next(&mut binds, Bind::Text(key)));
            sql.push_str(&entity_condition(kind, value));
        }
        let confidence = filter.min_confidence.is_some() || filter.max_confidence.is_some();
        if filter.tag.is_some() || filter.label_source.is_some() || confidence {
            // IN builds the matching ticket set once from labels_tag_source.
            let mut labels = match filter.tag {
                Some(tag) => {
                    let n = next(&mut binds, Bind::Number(tag.0));
                    format!(
                        " AND id IN (SELECT l.ticket_id FROM labels l WHERE l.tag_id = ${n} AND l.present"
                    )
                }
                // The project's tags lead the index (labels_tag_source), so even a filter
                // that matches nothing costs one index range per tag, not a probe per ticket.
                None => {
                    let n = next(&mut binds, Bind::Number(project.0));
                    format!(
                        " AND id IN (SELECT l.ticket_id FROM labels l WHERE l.tag_id IN \
                         (SELECT g.id FROM tags g WHERE g.project_id = ${n}) AND l.present"
                    )
                }
            };
            if let Some(source) = filter.label_source {
                let n = next(&mut binds, Bind::Text(source.as_str().to_string()));
                labels.push_str(&format!(" AND l.source = ${n}"));
            }
            if let Some(min) = filter.min_confidence {
                let n = next(&mut binds, Bind::Real(min));
                labels.push_str(&format!(" AND l.confidence >= ${n}"));
            }
            if let Some(max) = filter.max_confidence {
                let n = next(&mut binds, Bind::Real(max));
                labels.push_str(&format!(" AND l.confidence <= ${n}"));
            }
            labels.push(')');
            sql.push_str(&labels);
        }
        let limit = filter.effective_limit();
        // One row more than the page tells whether a next page exists.
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {}",
            limit + 1,
            filter.offset
        ));
        let mut statement = sqlx::query_as::<Db, TicketRow>(sqlx::AssertSqlSafe(sql)).bind(project);
        for bind in binds {
            statement = match bind {
                Bind::Text(value) => statement.bind(value),
                Bind::Number(value) => statement.bind(value),
                Bind::Real(value) => statement.bind(value),
                Bind::Time(value) => statement.bind(value),
            };
        }
        let mut rows = statement.fetch_all(&self.pool).await?;
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok(crate::store::dashboard::TicketPage {
            tickets: self.with_labels(convert_all(rows)?).await?,
            has_more,
        })
    }

    async fn ticket_sources(&self, project: ProjectId) -> StoreResult<Vec<String>> {
        // A loose index scan: one index seek per distinct source instead of reading every
        // ticket (tickets_project_source_created), on both databases.
        Ok(sqlx::query_scalar(
            "WITH RECURSIVE s (source) AS ( \
             SELECT MIN(source) FROM tickets WHERE project_id = $1 \
             UNION ALL SELECT (SELECT MIN(t.source) FROM tickets t WHERE t.project_id = $1 AND t.source > s.source) \
             FROM s WHERE s.source IS NOT NULL) \
             SELECT source FROM s WHERE source IS NOT NULL ORDER BY source",
        )
            .bind(project)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn ticket_fits(
        &self,
        project: ProjectId,
        from: chrono::DateTime<Utc>,
        until: chrono::DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<crate::store::dashboard::TicketFit>> {
        // Walks the newest tickets of the period (tickets_project_created) and probes each
        // one's labels by the primary key: cost grows with `limit`, not with the project.
        Ok(sqlx::query_as(
            "SELECT t.id, t.subject, t.body, t.created_at, \
             EXISTS (SELECT 1 FROM labels l WHERE l.ticket_id = t.id AND l.present \
               AND NOT EXISTS (SELECT 1 FROM labels h WHERE h.ticket_id = t.id AND h.tag_id = l.tag_id \
               AND h.source = 'human' AND NOT h.present)) AS tagged \
             FROM tickets t WHERE t.project_id = $1 AND t.created_at >= $2 AND t.created_at < $3 \
             ORDER BY t.created_at DESC, t.id DESC LIMIT $4",
        )
        .bind(project)
        .bind(from)
        .bind(until)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}
