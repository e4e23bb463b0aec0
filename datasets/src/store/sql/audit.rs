use super::*;
use crate::audit::{AuditEntry, AuditFilter, MAX_AUDIT_PAGE, NewAuditEntry};
use crate::store::audit_store::*;

/// `INSERT_AUDIT` with the entry bound, recorded now; `.fetch_one(executor)` answers the
/// new id. The store's own transactions that know their actor append with it.
pub(crate) fn bind_audit_entry(
    entry: &NewAuditEntry,
) -> sqlx::query::QueryScalar<'_, Db, i64, <Db as sqlx::Database>::Arguments> {
    sqlx::query_scalar::<_, i64>(INSERT_AUDIT)
        .bind(Utc::now())
        .bind(entry.actor.audit_id())
        .bind(entry.actor.display_name())
        .bind(entry.action.as_str())
        .bind(entry.project)
        .bind(entry.target.as_str())
        .bind(Json(&entry.details))
}

impl AuditStore for Backend {
    #[tracing::instrument(skip_all, fields(action = entry.action.as_str()))]
    async fn record_audit(&self, entry: &NewAuditEntry) -> StoreResult<AuditEntry> {
        let id = bind_audit_entry(entry).fetch_one(self.pool()).await?;
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
}
