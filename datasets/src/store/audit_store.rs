//! The audit log's storage: append an entry, list entries newest first. A narrow capability
//! (the audit page and `GET /v1/audit` need nothing else); the store's own transactions that
//! know their actor (promotion, rollback, tag merge) append with `bind_audit_entry!` inside
//! the transaction. The SQL is the same on both backends.

use super::any::AnyStore;
use super::{PgStore, SqliteStore};
use crate::audit::{AuditEntry, AuditFilter, MAX_AUDIT_PAGE, NewAuditEntry};
use crate::error::{StoreError, StoreResult};
use crate::ids::ProjectId;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use std::future::Future;

/// The audit log.
pub trait AuditStore {
    /// Appends an entry (for a change already made: see the module note).
    fn record_audit(
        &self,
        entry: &NewAuditEntry,
    ) -> impl Future<Output = StoreResult<AuditEntry>> + Send;
    /// Entries matching `filter`, newest first.
    fn audit_entries(
        &self,
        filter: &AuditFilter,
    ) -> impl Future<Output = StoreResult<Vec<AuditEntry>>> + Send;
}

pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log \
     (at, actor, actor_name, action, project_id, target, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
const SELECT_AUDIT: &str = "SELECT id, at, actor, actor_name, action, project_id, target, details \
     FROM audit_log WHERE id = $1";
// Each filter is optional: a NULL parameter matches every row. The id cursor keeps pages
// stable while entries are appended.
const SELECT_AUDIT_PAGE: &str = "SELECT id, at, actor, actor_name, action, project_id, target, \
     details FROM audit_log \
     WHERE ($1 IS NULL OR action = $1) AND ($2 IS NULL OR actor = $2) \
     AND ($3 IS NULL OR project_id = $3) AND ($4 IS NULL OR id < $4) \
     ORDER BY id DESC LIMIT $5";

/// `sqlx::query(INSERT_AUDIT)` with the entry bound, recorded now; `.fetch_one(executor)`
/// answers the new id. A macro, not a function, so it binds into either backend's
/// transaction.
macro_rules! bind_audit_entry {
    ($entry:expr) => {{
        let entry: &$crate::audit::NewAuditEntry = $entry;
        sqlx::query_scalar::<_, i64>($crate::store::audit_store::INSERT_AUDIT)
            .bind(chrono::Utc::now())
            .bind(entry.actor.audit_id())
            .bind(entry.actor.display_name())
            .bind(entry.action.as_str())
            .bind(entry.project)
            .bind(entry.target.as_str())
            .bind(sqlx::types::Json(&entry.details))
    }};
}
pub(crate) use bind_audit_entry;

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    actor_name: String,
    action: String,
    project_id: Option<i64>,
    target: String,
    details: Json<serde_json::Value>,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        AuditEntry {
            id: row.id,
            at: row.at,
            actor: row.actor,
            actor_name: row.actor_name,
            action: row.action,
            project_id: row.project_id.map(ProjectId),
            target: row.target,
            details: row.details.0,
        }
    }
}

macro_rules! audit_store_methods {
    () => {
        #[tracing::instrument(skip_all, fields(action = entry.action.as_str()))]
        async fn record_audit(&self, entry: &NewAuditEntry) -> StoreResult<AuditEntry> {
            let id = bind_audit_entry!(entry).fetch_one(self.pool()).await?;
            let row: AuditRow = sqlx::query_as(SELECT_AUDIT)
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("audit entry {id}")))?;
            Ok(row.into())
        }

        #[tracing::instrument(skip_all)]
        async fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
            let rows: Vec<AuditRow> = sqlx::query_as(SELECT_AUDIT_PAGE)
                .bind(filter.action.map(|action| action.as_str()))
                .bind(filter.actor.as_deref())
                .bind(filter.project)
                .bind(filter.before)
                .bind(i64::from(filter.limit.clamp(1, MAX_AUDIT_PAGE)))
                .fetch_all(self.pool())
                .await?;
            Ok(rows.into_iter().map(AuditEntry::from).collect())
        }
    };
}

impl AuditStore for SqliteStore {
    audit_store_methods!();
}

impl AuditStore for PgStore {
    audit_store_methods!();
}

impl AuditStore for AnyStore {
    async fn record_audit(&self, entry: &NewAuditEntry) -> StoreResult<AuditEntry> {
        match self {
            AnyStore::Sqlite(store) => store.record_audit(entry).await,
            AnyStore::Postgres(store) => store.record_audit(entry).await,
        }
    }
    async fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        match self {
            AnyStore::Sqlite(store) => store.audit_entries(filter).await,
            AnyStore::Postgres(store) => store.audit_entries(filter).await,
        }
    }
}
