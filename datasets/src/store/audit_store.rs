//! The audit log's storage: append an entry, list entries newest first. A narrow capability
//! (the audit page and `GET /v1/audit` need nothing else); the store's own transactions that
//! know their actor (promotion, rollback, tag merge) append with `bind_audit_entry` (in `sql/audit.rs`) inside
//! the transaction. The SQL is the same on both backends.

use super::capability::store_capability;
use crate::audit::{AuditEntry, AuditFilter, NewAuditEntry};
use crate::error::StoreResult;
use crate::ids::ProjectId;
use chrono::{DateTime, Utc};
use sqlx::types::Json;

store_capability! {
    /// The audit log.
    pub trait AuditStore {
        /// Appends an entry (for a change already made: see the module note).
        async fn record_audit(&self, entry: &NewAuditEntry) -> StoreResult<AuditEntry>;
        /// Entries matching `filter`, newest first.
        async fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>>;
    }
}

pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log \
     (at, actor, actor_name, action, project_id, target, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
pub(crate) const SELECT_AUDIT: &str = "SELECT id, at, actor, actor_name, action, project_id, target, details \
     FROM audit_log WHERE id = $1";
// Each filter is optional: a NULL parameter matches every row. The id cursor keeps pages
// stable while entries are appended.
pub(crate) const SELECT_AUDIT_PAGE: &str = "SELECT id, at, actor, actor_name, action, project_id, target, \
     details FROM audit_log \
     WHERE ($1 IS NULL OR action = $1) AND ($2 IS NULL OR actor = $2) \
     AND ($3 IS NULL OR project_id = $3) AND ($4 IS NULL OR id < $4) \
     ORDER BY id DESC LIMIT $5";

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub(crate) id: i64,
    pub(crate) at: DateTime<Utc>,
    pub(crate) actor: String,
    pub(crate) actor_name: String,
    pub(crate) action: String,
    pub(crate) project_id: Option<i64>,
    pub(crate) target: String,
    pub(crate) details: Json<serde_json::Value>,
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
