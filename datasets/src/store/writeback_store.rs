//! The write-back queue: which of our tags go to which help-desk ticket, and what became of
//! each write. A narrow capability beside `ConnectorStore`: the webhook queues writes, the
//! write-back job reads and settles them, the pages list them. The SQL is the same on both
//! backends.

use super::capability::store_capability;
use crate::connector::{WriteBack, WriteBackAttempt, WriteBackQueued};
use crate::error::{StoreError, StoreResult};
use crate::ids::{ConnectorId, TicketId, WriteBackId};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

/// The most write-backs one listing returns.
pub const MAX_WRITEBACKS_PAGE: u32 = 500;

store_capability! {
    /// Write-backs of our tags to help desks.
    pub trait WriteBackStore {
        /// In one transaction: the labels not yet written (nor being written) to the vendor's
        /// ticket are marked as ours and join its pending write, or start a new one.
        async fn queue_writeback(
            &self,
            connector: ConnectorId,
            external_id: &str,
            ticket: TicketId,
            labels: &[String],
        ) -> StoreResult<WriteBackQueued>;
        async fn writeback(&self, id: WriteBackId) -> StoreResult<Option<WriteBack>>;
        /// Records an attempt. A failed write's labels are no longer counted as ours.
        async fn record_writeback_attempt(
            &self,
            id: WriteBackId,
            attempt: &WriteBackAttempt,
        ) -> StoreResult<WriteBack>;
        /// The connector's write-backs, newest first.
        async fn writebacks(
            &self,
            connector: ConnectorId,
            limit: u32,
        ) -> StoreResult<Vec<WriteBack>>;
        /// A page of the connector's write-backs older than `before` (all when `None`), newest
        /// first (keyset paging).
        async fn writebacks_before(
            &self,
            connector: ConnectorId,
            before: Option<WriteBackId>,
            limit: u32,
        ) -> StoreResult<Vec<WriteBack>>;
        /// Pending write-backs due before `before`, oldest first: the ones whose job was lost
        /// (a queue push that failed) are found here and queued again.
        async fn overdue_writebacks(
            &self,
            before: DateTime<Utc>,
            limit: u32,
        ) -> StoreResult<Vec<WriteBack>>;
    }
}

pub(crate) const SELECT_WRITEBACKS: &str = "SELECT id, connector_id, external_id, ticket_id, labels, status, \
     attempts, last_error, next_attempt_at, created_at, updated_at FROM connector_writebacks ";
pub(crate) const SELECT_WRITEBACK: &str = const_str::concat!(SELECT_WRITEBACKS, "WHERE id = $1");
pub(crate) const SELECT_RECENT_WRITEBACKS: &str = const_str::concat!(
    SELECT_WRITEBACKS,
    "WHERE connector_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
);
pub(crate) const SELECT_OVERDUE_WRITEBACKS: &str = const_str::concat!(
    SELECT_WRITEBACKS,
    "WHERE status = 'pending' AND next_attempt_at < $1 ORDER BY next_attempt_at, id LIMIT $2"
);
pub(crate) const SELECT_WRITTEN_LABELS: &str = "SELECT written_labels FROM connector_tickets \
     WHERE connector_id = $1 AND external_id = $2";
pub(crate) const UPDATE_WRITTEN_LABELS: &str = "UPDATE connector_tickets SET written_labels = $1 \
     WHERE connector_id = $2 AND external_id = $3";
pub(crate) const SELECT_PENDING: &str = "SELECT id, labels FROM connector_writebacks \
     WHERE connector_id = $1 AND external_id = $2 AND status = 'pending'";
pub(crate) const JOIN_PENDING: &str =
    "UPDATE connector_writebacks SET labels = $1, updated_at = $2 WHERE id = $3";
pub(crate) const INSERT_WRITEBACK: &str = "INSERT INTO connector_writebacks \
     (connector_id, external_id, ticket_id, labels, status, attempts, last_error, \
     next_attempt_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, 'pending', 0, NULL, $5, $5, $5) RETURNING id";
// A written write keeps the error of the attempt before it (a 429 waited out), for the log.
pub(crate) const SETTLE_WRITEBACK: &str = "UPDATE connector_writebacks SET status = $1, \
     attempts = attempts + 1, last_error = COALESCE($2, last_error), next_attempt_at = $3, updated_at = $4 \
     WHERE id = $5 AND status = 'pending'";

#[derive(sqlx::FromRow)]
pub(crate) struct WriteBackRow {
    pub(crate) id: i64,
    pub(crate) connector_id: i64,
    pub(crate) external_id: String,
    pub(crate) ticket_id: i64,
    pub(crate) labels: Json<Vec<String>>,
    pub(crate) status: String,
    pub(crate) attempts: i32,
    pub(crate) last_error: Option<String>,
    pub(crate) next_attempt_at: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl TryFrom<WriteBackRow> for WriteBack {
    type Error = StoreError;
    fn try_from(row: WriteBackRow) -> Result<Self, StoreError> {
        Ok(WriteBack {
            id: WriteBackId(row.id),
            connector_id: ConnectorId(row.connector_id),
            external_id: row.external_id,
            ticket_id: TicketId(row.ticket_id),
            labels: row.labels.0,
            status: row.status.parse().map_err(|e: String| {
                StoreError::Database(sqlx::Error::Decode(
                    format!("stored write-back status is invalid: {e}").into(),
                ))
            })?,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            last_error: row.last_error,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// `labels` without those in `known` or repeated, in their order.
pub(crate) fn new_labels(labels: &[String], known: &[String]) -> Vec<String> {
    let mut fresh: Vec<String> = Vec::new();
    for label in labels {
        let label = label.trim();
        if !label.is_empty()
            && !known.iter().any(|k| k == label)
            && !fresh.iter().any(|f| f == label)
        {
            fresh.push(label.to_string());
        }
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_labels_not_yet_ours_are_new() {
        let known = vec!["billing".to_string()];
        let labels: Vec<String> = ["billing", " refund ", "refund", "", "Billing"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(new_labels(&labels, &known), vec!["refund", "Billing"]);
    }
}
