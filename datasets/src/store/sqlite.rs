//! The embedded backend: one SQLite file, WAL mode, so `tagger demo` needs no server.

use super::common::*;
use super::{ImportCounts, ImportRow, ImportWriter, SchemaStore, Store};
use crate::error::{StoreError, StoreResult};
use crate::ids::TagGroupId;
use crate::ids::{ProjectId, TagId};
use crate::label::LabelAction;
use crate::names::{ProjectName, TagName};
use crate::project::{LabelMode, Project};
use crate::tag_group::{NewTagGroup, TagGroup};
use chrono::Utc;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// The shared SQL of `sql/`, compiled for this backend: `Db`, `Backend` and the constants below
/// are what it asks of each backend.
#[path = "sql/mod.rs"]
// Loading `sql/` once per backend is the design, not an accident.
#[allow(clippy::duplicate_mod)]
mod sql;

type Db = Sqlite;
type Backend = SqliteStore;
/// The full-text search and calendar-day SQL of SQLite.
use super::dashboard::sqlite_dialect as dialect;

/// How a write transaction starts. SQLite's default (deferred) takes the write lock only at
/// the first write, and fails with "database is locked" at once, without waiting, when
/// another connection wrote since this one's first read (the job queue's heartbeats do, every
/// few seconds); an immediate transaction takes the lock up front and waits its turn.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
/// SQLite has no notifications: servers notice promotions by polling.
const PROMOTION_NOTIFY: Option<&str> = None;
/// The review queue's lease query needs no row lock: SQLite has one writer at a time.
const REVIEW_LOCK: &str = "";
/// Statements run at the start of a delivery's settling transaction: none on SQLite.
const SETTLE_SETTINGS: &[&str] = &[];

/// The store on a SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection that every write transaction of this process takes in turn. SQLite has
    /// one writer at a time; writers on several connections wait for it in SQLite's busy
    /// handler, which sleeps 1, 2, 5 … 50, 100 ms between tries, so under a steady write load
    /// a few unlucky writers waited 100 ms and more while the lock was free most of the
    /// time. Waiting for this pool's connection is a queue instead: first come, first
    /// served, woken the moment the last writer commits.
    writer: SqlitePool,
}

impl SqliteStore {
    /// The connection pool, for the job queue that shares this database.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The pool of write transactions: one connection, taken in turn. The job queue writes
    /// through it too (every poll, lock and acknowledgement is a write), so its writers queue
    /// with the store's instead of meeting them in SQLite's busy handler.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Opens (and creates if missing) the database at a `sqlite://` URL.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .after_release(|connection, _| Box::pin(super::pool_hygiene::fit_for_reuse(connection)))
            .connect_with(options.clone())
            .await?;
        // Still a busy timeout of its own: other processes (a `tagger worker`, an import) and
        // the job queue write through connections of their own.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .after_release(|connection, _| Box::pin(super::pool_hygiene::fit_for_reuse(connection)))
            .connect_with(options)
            .await?;
        Ok(Self { pool, writer })
    }
}

impl SchemaStore for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        let mut migrator = sqlx::migrate!("../migrations/sqlite");
        // The job queue (apalis) records its own migrations in the same table on SQLite.
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl Store for SqliteStore {
    type Import = SqliteImport;

    async fn begin_import(
        &self,
        project: &ProjectName,
        create: Option<LabelMode>,
        set_by: &str,
    ) -> StoreResult<SqliteImport> {
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        let (project_row, taxonomy) = Self::import_target_in(&mut tx, project, create).await?;
        Ok(SqliteImport {
            pool: self.writer.clone(),
            tx: Some(tx),
            taxonomy,
            project: project_row,
            set_by: set_by.to_string(),
            counts: ImportCounts::default(),
        })
    }
}

/// How many rows one import transaction writes on SQLite before it commits and lets other
/// writers in: about 10–20 ms of holding the database's single write lock.
pub const SQLITE_IMPORT_COMMIT_ROWS: usize = 200;

/// A bulk import into SQLite. SQLite has one writer at a time, so one transaction for the
/// whole import would make every other write (the API's, the workbench's, the job queue's)
/// wait for it and fail at the busy timeout. Instead the rows are committed in transactions
/// of `SQLITE_IMPORT_COMMIT_ROWS`, and after each the import stays off the lock for as long
/// as it held it: writers waiting in SQLite's busy handler (which retries every few to
/// 100 ms) find the lock free at least half of the time, so none waits long, and the import
/// still runs at half its full speed.
pub struct SqliteImport {
    pool: SqlitePool,
    /// `None` only between a commit and the next batch's `BEGIN`.
    tx: Option<Transaction<'static, Sqlite>>,
    project: Project,
    taxonomy: ImportTaxonomy,
    set_by: String,
    counts: ImportCounts,
}

impl SqliteImport {
    /// The open transaction, begun (waiting for the write lock) if the last was committed.
    async fn transaction(&mut self) -> StoreResult<&mut Transaction<'static, Sqlite>> {
        if self.tx.is_none() {
            self.tx = Some(self.pool.begin_with(BEGIN_WRITE).await?);
        }
        self.tx
            .as_mut()
            .ok_or_else(|| StoreError::Conflict("the import's transaction is closed".into()))
    }

    /// Commits what is written so far and stays off the write lock for `held`.
    async fn commit_batch(&mut self, held: Duration) -> StoreResult<()> {
        if let Some(tx) = self.tx.take() {
            tx.commit().await?;
        }
        tokio::time::sleep(held.min(MAX_IMPORT_PAUSE)).await;
        Ok(())
    }

    async fn write_row(
        tx: &mut Transaction<'static, Sqlite>,
        project: ProjectId,
        set_by: &str,
        counts: &mut ImportCounts,
        (row, glossary): (&ImportRow, &crate::text::glossary::Glossary),
        now: chrono::DateTime<Utc>,
    ) -> StoreResult<()> {
        // The same upsert as every other ingest path.
        let stored = SqliteStore::upsert_ticket_in(tx, project, &row.ticket, glossary, now).await?;
        let id = stored.id.0;
        let old: Vec<TagId> = if !stored.created {
            counts.updated += 1;
            sqlx::query_scalar(
                "SELECT tag_id FROM labels WHERE ticket_id = $1 AND source = 'import'",
            )
            .bind(id)
            .fetch_all(&mut **tx)
            .await?
        } else {
            counts.created += 1;
            Vec::new()
        };
        let (removed, added) = label_changes(&old, &row.tags);
        for tag in removed {
            sqlx::query(
                "DELETE FROM labels WHERE ticket_id = $1 AND tag_id = $2 AND source = 'import'",
            )
            .bind(id)
            .bind(tag)
            .execute(&mut **tx)
            .await?;
            Self::record_event(tx, set_by, id, tag, LabelAction::Removed, now).await?;
        }
        for tag in added {
            sqlx::query(
                "INSERT INTO labels (ticket_id, tag_id, source, set_by, confidence, present, updated_at) \
                 VALUES ($1, $2, 'import', $3, NULL, TRUE, $4)",
            )
            .bind(id)
            .bind(tag)
            .bind(set_by)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            Self::record_event(tx, set_by, id, tag, LabelAction::Added, now).await?;
            counts.labels += 1;
        }
        if let Some(verdict) = &row.verdict {
            SqliteStore::write_model_labels_in(tx, stored, verdict.version, &verdict.tags, now)
                .await?;
        }
        Ok(())
    }

    async fn record_event(
        tx: &mut Transaction<'static, Sqlite>,
        set_by: &str,
        ticket: i64,
        tag: TagId,
        action: LabelAction,
        now: chrono::DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO label_events (ticket_id, tag_id, source, set_by, confidence, action, at) \
             VALUES ($1, $2, 'import', $3, NULL, $4, $5)",
        )
        .bind(ticket)
        .bind(tag)
        .bind(set_by)
        .bind(action.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// The longest pause between two import transactions (a batch that held the lock longer,
/// on a slow disk, does not slow the import further).
const MAX_IMPORT_PAUSE: Duration = Duration::from_millis(200);

impl ImportWriter for SqliteImport {
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
        let project = self.project.id;
        let tx = self.transaction().await?;
        let id = SqliteStore::create_import_tag_in(tx, project, name, group).await?;
        self.taxonomy.tags.insert(name.folded(), id);
        self.taxonomy.group_of.insert(id, group);
        Ok(id)
    }

    async fn create_tag_group(&mut self, group: &NewTagGroup) -> StoreResult<TagGroup> {
        let project = self.project.id;
        let tx = self.transaction().await?;
        let created = SqliteStore::create_tag_group_in(tx, project, group).await?;
        self.taxonomy.groups.push(created.clone());
        Ok(created)
    }

    async fn write(&mut self, rows: Vec<ImportRow>) -> StoreResult<()> {
        let now = Utc::now();
        let project = self.project.id;
        for chunk in rows.chunks(SQLITE_IMPORT_COMMIT_ROWS) {
            let started = std::time::Instant::now();
            let set_by = self.set_by.clone();
            let mut counts = self.counts;
            let tx = self.transaction().await?;
            let glossary = SqliteStore::glossary_in(tx, project).await?;
            for row in chunk {
                Self::write_row(tx, project, &set_by, &mut counts, (row, &glossary), now).await?;
            }
            self.counts = counts;
            self.commit_batch(started.elapsed()).await?;
        }
        Ok(())
    }

    async fn commit(mut self) -> StoreResult<ImportCounts> {
        if let Some(tx) = self.tx.take() {
            tx.commit().await?;
        }
        Ok(self.counts)
    }
}
