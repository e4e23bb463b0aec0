use super::*;
use crate::store::entity_store::*;
use crate::text::entities::{Entity, EntityKind, ticket_entities};
use crate::text::glossary::{Glossary, term_key};

impl Backend {
    /// The project's glossary, read in `tx` so a ticket write extracts with the glossary of
    /// its own snapshot.
    pub(crate) async fn glossary_in(
        tx: &mut sqlx::Transaction<'static, Db>,
        project: ProjectId,
    ) -> StoreResult<Glossary> {
        let terms: Vec<String> = sqlx::query_scalar(SELECT_GLOSSARY)
            .bind(project)
            .fetch_all(&mut **tx)
            .await?;
        Glossary::new(&terms).map_err(|error| corrupt("glossary", error))
    }

    /// Replaces the entities of one ticket with those of its subject and body.
    pub(crate) async fn write_entities_in(
        tx: &mut sqlx::Transaction<'static, Db>,
        project: ProjectId,
        ticket: TicketId,
        (subject, body): (&str, &str),
        glossary: &Glossary,
    ) -> StoreResult<()> {
        sqlx::query(DELETE_TICKET_ENTITIES)
            .bind(ticket)
            .execute(&mut **tx)
            .await?;
        let entities = ticket_entities(subject, body, glossary);
        for (kind, value, key, position) in entity_rows(&entities) {
            sqlx::query(INSERT_TICKET_ENTITY)
                .bind(ticket)
                .bind(project)
                .bind(kind)
                .bind(value)
                .bind(key)
                .bind(position)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn request_rebuild_in(
        tx: &mut sqlx::Transaction<'static, Db>,
        project: ProjectId,
    ) -> StoreResult<()> {
        sqlx::query(REQUEST_REBUILD)
            .bind(project)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl EntityStore for Backend {
    #[tracing::instrument(skip_all, fields(project = %project))]
    async fn glossary(&self, project: ProjectId) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(SELECT_GLOSSARY)
            .bind(project)
            .fetch_all(&self.pool)
            .await?)
    }

    #[tracing::instrument(skip_all, fields(project = %project, terms = glossary.terms().len()))]
    async fn set_glossary(&self, project: ProjectId, glossary: &Glossary) -> StoreResult<bool> {
        self.project(project).await?;
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        let before: Vec<String> = sqlx::query_scalar(SELECT_GLOSSARY)
            .bind(project)
            .fetch_all(&mut *tx)
            .await?;
        if before == glossary.terms() {
            return Ok(false);
        }
        sqlx::query(DELETE_GLOSSARY)
            .bind(project)
            .execute(&mut *tx)
            .await?;
        for (position, term) in glossary.terms().iter().enumerate() {
            sqlx::query(INSERT_GLOSSARY_TERM)
                .bind(project)
                .bind(i32::try_from(position).unwrap_or(i32::MAX))
                .bind(term)
                .bind(term_key(term))
                .execute(&mut *tx)
                .await?;
        }
        Self::request_rebuild_in(&mut tx, project).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(project = %project, ticket = %ticket))]
    async fn stored_entities(
        &self,
        project: ProjectId,
        ticket: TicketId,
    ) -> StoreResult<Vec<Entity>> {
        let rows: Vec<(String, String)> = sqlx::query_as(SELECT_TICKET_ENTITIES)
            .bind(ticket)
            .bind(project)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(kind, text)| {
                Ok(Entity {
                    kind: kind
                        .parse::<EntityKind>()
                        .map_err(|error| corrupt("entity kind", error))?,
                    text,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn request_entity_rebuild(&self, project: Option<ProjectId>) -> StoreResult<u64> {
        let projects: Vec<ProjectId> = match project {
            Some(project) => vec![self.project(project).await?.id],
            None => sqlx::query_scalar::<_, i64>("SELECT id FROM projects ORDER BY id")
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(ProjectId)
                .collect(),
        };
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        for project in &projects {
            Self::request_rebuild_in(&mut tx, *project).await?;
        }
        tx.commit().await?;
        Ok(projects.len() as u64)
    }

    #[tracing::instrument(skip_all)]
    async fn rebuild_entities_step(&self, limit: u32) -> StoreResult<Option<RebuildStep>> {
        // Servers look every minute: when nothing waits, a read says so without queueing
        // for SQLite's write lock.
        let waiting: Option<i64> =
            sqlx::query_scalar("SELECT project_id FROM entity_rebuilds LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        if waiting.is_none() {
            return Ok(None);
        }
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        // REVIEW_LOCK is the backend's "skip what another transaction holds" (PostgreSQL:
        // SKIP LOCKED on `q`): two servers rebuild two projects, not one twice.
        let request: Option<(i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT q.project_id, q.after_ticket_id, q.generation FROM entity_rebuilds q \
             ORDER BY q.project_id LIMIT 1 {REVIEW_LOCK}"
        )))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((project, after, generation)) = request else {
            return Ok(None);
        };
        let project = ProjectId(project);
        let glossary = Self::glossary_in(&mut tx, project).await?;
        let tickets: Vec<(i64, String, String)> = sqlx::query_as(REBUILD_TICKETS)
            .bind(project)
            .bind(after)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&mut *tx)
            .await?;
        for (ticket, subject, body) in &tickets {
            Self::write_entities_in(
                &mut tx,
                project,
                TicketId(*ticket),
                (subject.as_str(), body.as_str()),
                &glossary,
            )
            .await?;
        }
        let done = tickets.len() < limit.max(1) as usize;
        match tickets.last() {
            Some((last, _, _)) if !done => {
                sqlx::query(ADVANCE_REBUILD)
                    .bind(project)
                    .bind(generation)
                    .bind(*last)
                    .execute(&mut *tx)
                    .await?;
            }
            _ => {
                sqlx::query(FINISH_REBUILD)
                    .bind(project)
                    .bind(generation)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(Some(RebuildStep {
            project,
            tickets: tickets.len() as u64,
            done,
        }))
    }
}
