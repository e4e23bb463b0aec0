//! The production backend: PostgreSQL. Shares its SQL with SQLite where it can and uses
//! `UNNEST` batches for bulk import, so one round trip stores a thousand tickets.

use super::common::*;
use super::{ImportCounts, ImportRow, ImportWriter, SchemaStore, Store};
use crate::error::{StoreError, StoreResult};
use crate::ids::TagGroupId;
use crate::ids::TagId;
use crate::label::LabelAction;
use crate::names::{ProjectName, TagName};
use crate::project::{LabelMode, Project};
use crate::tag_group::{NewTagGroup, TagGroup};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::HashMap;
use std::time::Duration;

/// The shared SQL of `sql/`, compiled for this backend (see the SQLite backend).
#[path = "sql/mod.rs"]
// Loading `sql/` once per backend is the design, not an accident.
#[allow(clippy::duplicate_mod)]
mod sql;

type Db = Postgres;
type Backend = PgStore;
/// The full-text search and calendar-day SQL of PostgreSQL.
use super::dashboard::postgres_dialect as dialect;
/// The review queue's lease query skips rows another transaction is leasing.
const REVIEW_LOCK: &str = "FOR UPDATE OF q SKIP LOCKED";
/// Settling a delivery (its status after the ticket is stored and its job queued) does not
/// wait for PostgreSQL to flush its log: the claim and the ticket were committed durably
/// before, and a settlement lost to a database crash leaves the delivery claimed, which the
/// vendor's retry processes again (idempotently). The webhook answers one flush sooner.
/// SQLite's store runs with `synchronous = NORMAL` already, which flushes at checkpoints.
const SETTLE_SETTINGS: &[&str] = &["SET LOCAL synchronous_commit TO OFF"];

/// The channel on which promotions are announced; see `PgStore::listen_for_promotions`.
pub const PROMOTION_CHANNEL: &str = "tagger_model_promotions";
/// How a write transaction starts (see the SQLite backend for why this is per backend).
const BEGIN_WRITE: &str = "BEGIN";
const PROMOTION_NOTIFY: Option<&str> =
    Some("SELECT pg_notify('tagger_model_promotions', $1::text)");

/// The store on a PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to a `postgres://` URL.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .after_release(|connection, _| Box::pin(super::pool_hygiene::fit_for_reuse(connection)))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// The pool, for components that speak to PostgreSQL directly (job queue, notifications).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool of write transactions: the one pool, since PostgreSQL has no single write
    /// lock to queue for (SQLite's store keeps one connection for writes).
    pub(super) fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// A listener that hears the project id of every promotion and rollback, from any process.
    pub async fn listen_for_promotions(&self) -> StoreResult<sqlx::postgres::PgListener> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(PROMOTION_CHANNEL).await?;
        Ok(listener)
    }
}

impl PgStore {
    /// Replaces the entities of a batch of stored tickets ((id, subject, body)) with those
    /// found with `glossary`, in two `UNNEST` statements: the bulk twin of
    /// `write_entities_in`.
    pub(crate) async fn write_entities_bulk_in(
        tx: &mut Transaction<'static, Postgres>,
        project: crate::ids::ProjectId,
        tickets: &[(i64, &str, &str)],
        glossary: &crate::text::glossary::Glossary,
    ) -> StoreResult<()> {
        if tickets.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = tickets.iter().map(|(id, _, _)| *id).collect();
        sqlx::query("DELETE FROM ticket_entities WHERE ticket_id = ANY($1)")
            .bind(&ids)
            .execute(&mut **tx)
            .await?;
        let mut owners = Vec::new();
        let mut kinds = Vec::new();
        let mut values = Vec::new();
        let mut keys = Vec::new();
        let mut positions = Vec::new();
        for (id, subject, body) in tickets {
            let entities = crate::text::entities::ticket_entities(subject, body, glossary);
            for (kind, value, key, position) in super::entity_store::entity_rows(&entities) {
                owners.push(*id);
                kinds.push(kind);
                values.push(value.to_string());
                keys.push(key);
                positions.push(position);
            }
        }
        if owners.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO ticket_entities (ticket_id, project_id, kind, value, value_key, position) \
             SELECT u.ticket_id, $1, u.kind, u.value, u.value_key, u.position \
             FROM UNNEST($2::int8[], $3::text[], $4::text[], $5::text[], $6::int4[]) \
             AS u(ticket_id, kind, value, value_key, position) \
             ON CONFLICT (ticket_id, kind, value_key) DO NOTHING",
        )
        .bind(project)
        .bind(&owners)
        .bind(&kinds)
        .bind(&values)
        .bind(&keys)
        .bind(&positions)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

impl SchemaStore for PgStore {
    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl Store for PgStore {
    type Import = PgImport;

    async fn begin_import(
        &self,
        project: &ProjectName,
        create: Option<LabelMode>,
        set_by: &str,
    ) -> StoreResult<PgImport> {
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        // Two imports into a new project of the same name must not both create it.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("import:{}", project.folded()))
            .execute(&mut *tx)
            .await?;
        let (project_row, taxonomy) = Self::import_target_in(&mut tx, project, create).await?;
        Ok(PgImport {
            pool: self.pool.clone(),
            tx,
            taxonomy,
            project: project_row,
            set_by: set_by.to_string(),
            counts: ImportCounts::default(),
        })
    }
}

/// A bulk import into PostgreSQL: each batch is a handful of `UNNEST` statements, committed
/// on its own like SQLite's (`SqliteImport`), so an import behaves the same on both
/// databases: visible batch by batch, and a failure keeps the batches before it.
pub struct PgImport {
    pool: PgPool,
    tx: Transaction<'static, Postgres>,
    project: Project,
    taxonomy: ImportTaxonomy,
    set_by: String,
    counts: ImportCounts,
}

/// Label changes of one batch, as parallel columns for `UNNEST`.
#[derive(Default)]
struct LabelColumns {
    tickets: Vec<i64>,
    tags: Vec<i64>,
}

impl LabelColumns {
    fn push(&mut self, ticket: i64, tag: TagId) {
        self.tickets.push(ticket);
        self.tags.push(tag.0);
    }
}

impl PgImport {
    async fn upsert_tickets(
        &mut self,
        rows: &[ImportRow],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(i64, bool)>> {
        let mut sources = Vec::with_capacity(rows.len());
        let mut external_ids = Vec::with_capacity(rows.len());
        let mut subjects = Vec::with_capacity(rows.len());
        let mut bodies = Vec::with_capacity(rows.len());
        let mut metadata = Vec::with_capacity(rows.len());
        let mut splits = Vec::with_capacity(rows.len());
        let mut created = Vec::with_capacity(rows.len());
        for row in rows {
            let ticket = &row.ticket;
            sources.push(ticket.source.as_str());
            external_ids.push(ticket.external_id.as_str());
            subjects.push(ticket.subject.as_str());
            bodies.push(ticket.body.as_str());
            metadata.push(ticket.metadata.to_string());
            splits.push(ticket.split.as_str());
            created.push(ticket.created_at.unwrap_or(now));
        }
        let stored: Vec<(i64, String, String, bool)> = sqlx::query_as(
            "INSERT INTO tickets (project_id, source, external_id, subject, body, metadata, split, created_at, updated_at) \
             SELECT $1, u.source, u.external_id, u.subject, u.body, u.metadata::jsonb, u.split, u.created_at, $9 \
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[]) \
             AS u(source, external_id, subject, body, metadata, split, created_at) \
             ON CONFLICT (project_id, source, external_id) DO UPDATE SET subject = excluded.subject, \
             body = excluded.body, metadata = excluded.metadata, updated_at = excluded.updated_at \
             RETURNING id, source, external_id, (xmax = 0) AS inserted",
        )
        .bind(self.project.id)
        .bind(&sources)
        .bind(&external_ids)
        .bind(&subjects)
        .bind(&bodies)
        .bind(&metadata)
        .bind(&splits)
        .bind(&created)
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await?;
        // RETURNING promises no order, so match rows back by their key.
        let by_key: HashMap<(String, String), (i64, bool)> = stored
            .into_iter()
            .map(|(id, source, external_id, inserted)| ((source, external_id), (id, inserted)))
            .collect();
        rows.iter()
            .map(|row| {
                by_key
                    .get(&(row.ticket.source.clone(), row.ticket.external_id.clone()))
                    .copied()
                    .ok_or_else(|| {
                        StoreError::Conflict("a ticket of the batch was not stored".into())
                    })
            })
            .collect()
    }

    async fn insert_events(
        &mut self,
        changes: &LabelColumns,
        action: LabelAction,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if changes.tickets.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO label_events (ticket_id, tag_id, source, set_by, confidence, action, at) \
             SELECT u.ticket_id, u.tag_id, 'import', $3, NULL, $4, $5 \
             FROM UNNEST($1::int8[], $2::int8[]) AS u(ticket_id, tag_id)",
        )
        .bind(&changes.tickets)
        .bind(&changes.tags)
        .bind(&self.set_by)
        .bind(action.as_str())
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

impl ImportWriter for PgImport {
    fn project(&self) -> &Project {
        &self.project
    }

    fn tags(&self) -> &HashMap<String, TagId> {
        &self.taxonomy.tags
    }

    fn groups(&self) -> &[TagGroup] {
        &self.taxonomy.groups
    }

    fn tag_groups(&self) -> &HashMap<TagId, TagGroupId> {
        &self.taxonomy.group_of
    }

    async fn create_tag(&mut self, name: &TagName) -> StoreResult<TagId> {
        let group = self.taxonomy.default_group()?;
        self.create_tag_in(name, group).await
    }

    async fn create_tag_in(&mut self, name: &TagName, group: TagGroupId) -> StoreResult<TagId> {
        let id = PgStore::create_import_tag_in(&mut self.tx, self.project.id, name, group).await?;
        self.taxonomy.tags.insert(name.folded(), id);
        self.taxonomy.group_of.insert(id, group);
        Ok(id)
    }

    async fn create_tag_group(&mut self, group: &NewTagGroup) -> StoreResult<TagGroup> {
        let created = PgStore::create_tag_group_in(&mut self.tx, self.project.id, group).await?;
        self.taxonomy.groups.push(created.clone());
        Ok(created)
    }

    async fn write(&mut self, rows: Vec<ImportRow>) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = last_row_per_key(rows);
        let now = Utc::now();
        let stored = self.upsert_tickets(&rows, now).await?;
        let glossary = PgStore::glossary_in(&mut self.tx, self.project.id).await?;
        let texts: Vec<(i64, &str, &str)> = rows
            .iter()
            .zip(&stored)
            .map(|(row, (id, _))| (*id, row.ticket.subject.as_str(), row.ticket.body.as_str()))
            .collect();
        PgStore::write_entities_bulk_in(&mut self.tx, self.project.id, &texts, &glossary).await?;

        let updated: Vec<i64> = stored
            .iter()
            .filter(|(_, inserted)| !inserted)
            .map(|(id, _)| *id)
            .collect();
        let mut old_labels: HashMap<i64, Vec<TagId>> = HashMap::new();
        if !updated.is_empty() {
            let old: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT ticket_id, tag_id FROM labels WHERE source = 'import' AND ticket_id = ANY($1)",
            )
            .bind(&updated)
            .fetch_all(&mut *self.tx)
            .await?;
            for (ticket, tag) in old {
                old_labels.entry(ticket).or_default().push(TagId(tag));
            }
        }

        // Counted only once the batch is committed.
        let mut batch_counts = self.counts;
        let mut removed = LabelColumns::default();
        let mut added = LabelColumns::default();
        for (row, (id, inserted)) in rows.iter().zip(&stored) {
            if *inserted {
                batch_counts.created += 1;
            } else {
                batch_counts.updated += 1;
            }
            let old = old_labels.remove(id).unwrap_or_default();
            let (gone, new) = label_changes(&old, &row.tags);
            gone.into_iter().for_each(|tag| removed.push(*id, tag));
            new.into_iter().for_each(|tag| added.push(*id, tag));
        }

        if !removed.tickets.is_empty() {
            sqlx::query(
                "DELETE FROM labels l USING UNNEST($1::int8[], $2::int8[]) AS r(ticket_id, tag_id) \
                 WHERE l.ticket_id = r.ticket_id AND l.tag_id = r.tag_id AND l.source = 'import'",
            )
            .bind(&removed.tickets)
            .bind(&removed.tags)
            .execute(&mut *self.tx)
            .await?;
            self.insert_events(&removed, LabelAction::Removed, now)
                .await?;
        }
        if !added.tickets.is_empty() {
            sqlx::query(
                "INSERT INTO labels (ticket_id, tag_id, source, set_by, confidence, present, updated_at) \
                 SELECT u.ticket_id, u.tag_id, 'import', $3, NULL, TRUE, $4 \
                 FROM UNNEST($1::int8[], $2::int8[]) AS u(ticket_id, tag_id)",
            )
            .bind(&added.tickets)
            .bind(&added.tags)
            .bind(&self.set_by)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
            self.insert_events(&added, LabelAction::Added, now).await?;
            batch_counts.labels += added.tickets.len() as u64;
        }
        for (row, (id, inserted)) in rows.iter().zip(&stored) {
            if let Some(verdict) = &row.verdict {
                let stored = crate::ticket::UpsertedTicket {
                    id: crate::ids::TicketId(*id),
                    created: *inserted,
                };
                PgStore::write_model_labels_in(
                    &mut self.tx,
                    stored,
                    verdict.version,
                    &verdict.tags,
                    now,
                )
                .await?;
            }
        }
        // Commit the batch. The next transaction begins first, so the import never has
        // none; PostgreSQL has no single write lock for it to hold.
        let next = self.pool.begin_with(BEGIN_WRITE).await?;
        std::mem::replace(&mut self.tx, next).commit().await?;
        self.counts = batch_counts;
        Ok(())
    }

    async fn commit(self) -> StoreResult<ImportCounts> {
        self.tx.commit().await?;
        Ok(self.counts)
    }
}
