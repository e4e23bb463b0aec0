//! The write-back queue: which of our tags go to which help-desk ticket, and what became of
//! each write. A narrow capability beside `ConnectorStore`: the webhook queues writes, the
//! write-back job reads and settles them, the pages list them. The SQL is the same on both
//! backends.

use super::any::AnyStore;
use super::{PgStore, SqliteStore};
use crate::connector::{WriteBack, WriteBackAttempt, WriteBackQueued, WriteBackStatus};
use crate::error::{StoreError, StoreResult};
use crate::ids::{ConnectorId, TicketId, WriteBackId};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use std::future::Future;

/// The most write-backs one listing returns.
pub const MAX_WRITEBACKS_PAGE: u32 = 500;

/// Write-backs of our tags to help desks.
pub trait WriteBackStore {
    /// In one transaction: the labels not yet written (nor being written) to the vendor's
    /// ticket are marked as ours and join its pending write, or start a new one.
    fn queue_writeback(
        &self,
        connector: ConnectorId,
        external_id: &str,
        ticket: TicketId,
        labels: &[String],
    ) -> impl Future<Output = StoreResult<WriteBackQueued>> + Send;
    fn writeback(
        &self,
        id: WriteBackId,
    ) -> impl Future<Output = StoreResult<Option<WriteBack>>> + Send;
    /// Records an attempt. A failed write's labels are no longer counted as ours.
    fn record_writeback_attempt(
        &self,
        id: WriteBackId,
        attempt: &WriteBackAttempt,
    ) -> impl Future<Output = StoreResult<WriteBack>> + Send;
    /// The connector's write-backs, newest first.
    fn writebacks(
        &self,
        connector: ConnectorId,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<WriteBack>>> + Send;
    /// A page of the connector's write-backs older than `before` (all when `None`), newest
    /// first (keyset paging).
    fn writebacks_before(
        &self,
        connector: ConnectorId,
        before: Option<WriteBackId>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<WriteBack>>> + Send;
    /// Pending write-backs due before `before`, oldest first: the ones whose job was lost
    /// (a queue push that failed) are found here and queued again.
    fn overdue_writebacks(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<WriteBack>>> + Send;
}

macro_rules! select_writebacks {
    ($rest:literal) => {
        concat!(
            "SELECT id, connector_id, external_id, ticket_id, labels, status, attempts, \
             last_error, next_attempt_at, created_at, updated_at FROM connector_writebacks ",
            $rest
        )
    };
}
const SELECT_WRITEBACK: &str = select_writebacks!("WHERE id = $1");
const SELECT_RECENT_WRITEBACKS: &str =
    select_writebacks!("WHERE connector_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3");
const SELECT_OVERDUE_WRITEBACKS: &str = select_writebacks!(
    "WHERE status = 'pending' AND next_attempt_at < $1 ORDER BY next_attempt_at, id LIMIT $2"
);
const SELECT_WRITTEN_LABELS: &str = "SELECT written_labels FROM connector_tickets \
     WHERE connector_id = $1 AND external_id = $2";
const UPDATE_WRITTEN_LABELS: &str = "UPDATE connector_tickets SET written_labels = $1 \
     WHERE connector_id = $2 AND external_id = $3";
const SELECT_PENDING: &str = "SELECT id, labels FROM connector_writebacks \
     WHERE connector_id = $1 AND external_id = $2 AND status = 'pending'";
const JOIN_PENDING: &str =
    "UPDATE connector_writebacks SET labels = $1, updated_at = $2 WHERE id = $3";
const INSERT_WRITEBACK: &str = "INSERT INTO connector_writebacks \
     (connector_id, external_id, ticket_id, labels, status, attempts, last_error, \
     next_attempt_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, 'pending', 0, NULL, $5, $5, $5) RETURNING id";
// A written write keeps the error of the attempt before it (a 429 waited out), for the log.
const SETTLE_WRITEBACK: &str = "UPDATE connector_writebacks SET status = $1, \
     attempts = attempts + 1, last_error = COALESCE($2, last_error), next_attempt_at = $3, updated_at = $4 \
     WHERE id = $5 AND status = 'pending'";

#[derive(sqlx::FromRow)]
struct WriteBackRow {
    id: i64,
    connector_id: i64,
    external_id: String,
    ticket_id: i64,
    labels: Json<Vec<String>>,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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
fn new_labels(labels: &[String], known: &[String]) -> Vec<String> {
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

macro_rules! writeback_store_methods {
    ($begin_write:expr) => {
        #[tracing::instrument(skip_all, fields(connector = %connector, ticket = %ticket))]
        async fn queue_writeback(
            &self,
            connector: ConnectorId,
            external_id: &str,
            ticket: TicketId,
            labels: &[String],
        ) -> StoreResult<WriteBackQueued> {
            let now = Utc::now();
            let mut tx = self.writer().begin_with($begin_write).await?;
            let written: Option<Json<Vec<String>>> = sqlx::query_scalar(SELECT_WRITTEN_LABELS)
                .bind(connector)
                .bind(external_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(Json(mut written)) = written else {
                return Err(StoreError::NotFound(format!(
                    "ticket {external_id:?} of connector {connector}"
                )));
            };
            let fresh = new_labels(labels, &written);
            if fresh.is_empty() {
                return Ok(WriteBackQueued::Nothing);
            }
            written.extend(fresh.iter().cloned());
            sqlx::query(UPDATE_WRITTEN_LABELS)
                .bind(Json(&written))
                .bind(connector)
                .bind(external_id)
                .execute(&mut *tx)
                .await?;
            let pending: Option<(i64, Json<Vec<String>>)> = sqlx::query_as(SELECT_PENDING)
                .bind(connector)
                .bind(external_id)
                .fetch_optional(&mut *tx)
                .await?;
            let queued = match pending {
                Some((id, Json(mut labels))) => {
                    labels.extend(fresh);
                    sqlx::query(JOIN_PENDING)
                        .bind(Json(&labels))
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    WriteBackQueued::Joined(WriteBackId(id))
                }
                None => {
                    let id: i64 = sqlx::query_scalar(INSERT_WRITEBACK)
                        .bind(connector)
                        .bind(external_id)
                        .bind(ticket)
                        .bind(Json(&fresh))
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                    WriteBackQueued::New(WriteBackId(id))
                }
            };
            tx.commit().await?;
            Ok(queued)
        }

        #[tracing::instrument(skip_all, fields(writeback = %id))]
        async fn writeback(&self, id: WriteBackId) -> StoreResult<Option<WriteBack>> {
            let row: Option<WriteBackRow> = sqlx::query_as(SELECT_WRITEBACK)
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
            row.map(WriteBack::try_from).transpose()
        }

        #[tracing::instrument(skip_all, fields(writeback = %id))]
        async fn record_writeback_attempt(
            &self,
            id: WriteBackId,
            attempt: &WriteBackAttempt,
        ) -> StoreResult<WriteBack> {
            let now = Utc::now();
            let mut tx = self.writer().begin_with($begin_write).await?;
            let row: Option<WriteBackRow> = sqlx::query_as(SELECT_WRITEBACK)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let current = row
                .map(WriteBack::try_from)
                .transpose()?
                .ok_or_else(|| StoreError::NotFound(format!("write-back {id}")))?;
            if current.status != WriteBackStatus::Pending {
                // Settled by another attempt (a duplicate job): keep what it recorded.
                return Ok(current);
            }
            let (status, error, next) = match attempt {
                WriteBackAttempt::Written => (WriteBackStatus::Written, None, now),
                WriteBackAttempt::Retry { at, reason } => {
                    (WriteBackStatus::Pending, Some(reason.as_str()), *at)
                }
                WriteBackAttempt::Failed { reason } => {
                    (WriteBackStatus::Failed, Some(reason.as_str()), now)
                }
            };
            sqlx::query(SETTLE_WRITEBACK)
                .bind(status.as_str())
                .bind(error)
                .bind(next)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if status == WriteBackStatus::Failed {
                let written: Option<Json<Vec<String>>> = sqlx::query_scalar(SELECT_WRITTEN_LABELS)
                    .bind(current.connector_id)
                    .bind(&current.external_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(Json(written)) = written {
                    let kept: Vec<&String> = written
                        .iter()
                        .filter(|label| !current.labels.contains(label))
                        .collect();
                    sqlx::query(UPDATE_WRITTEN_LABELS)
                        .bind(Json(&kept))
                        .bind(current.connector_id)
                        .bind(&current.external_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let row: WriteBackRow = sqlx::query_as(SELECT_WRITEBACK)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            row.try_into()
        }

        async fn writebacks(
            &self,
            connector: ConnectorId,
            limit: u32,
        ) -> StoreResult<Vec<WriteBack>> {
            self.writebacks_before(connector, None, limit).await
        }

        #[tracing::instrument(skip_all, fields(connector = %connector))]
        async fn writebacks_before(
            &self,
            connector: ConnectorId,
            before: Option<WriteBackId>,
            limit: u32,
        ) -> StoreResult<Vec<WriteBack>> {
            let rows: Vec<WriteBackRow> = sqlx::query_as(SELECT_RECENT_WRITEBACKS)
                .bind(connector)
                .bind(before.map_or(i64::MAX, |id| id.0))
                .bind(i64::from(limit.min(MAX_WRITEBACKS_PAGE)))
                .fetch_all(self.pool())
                .await?;
            rows.into_iter().map(WriteBack::try_from).collect()
        }

        #[tracing::instrument(skip_all)]
        async fn overdue_writebacks(
            &self,
            before: DateTime<Utc>,
            limit: u32,
        ) -> StoreResult<Vec<WriteBack>> {
            let rows: Vec<WriteBackRow> = sqlx::query_as(SELECT_OVERDUE_WRITEBACKS)
                .bind(before)
                .bind(i64::from(limit.min(MAX_WRITEBACKS_PAGE)))
                .fetch_all(self.pool())
                .await?;
            rows.into_iter().map(WriteBack::try_from).collect()
        }
    };
}

impl WriteBackStore for SqliteStore {
    // An immediate transaction takes SQLite's write lock up front (see sqlite.rs).
    writeback_store_methods!("BEGIN IMMEDIATE");
}

impl WriteBackStore for PgStore {
    writeback_store_methods!("BEGIN");
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call.await,
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

impl WriteBackStore for AnyStore {
    async fn queue_writeback(
        &self,
        connector: ConnectorId,
        external_id: &str,
        ticket: TicketId,
        labels: &[String],
    ) -> StoreResult<WriteBackQueued> {
        dispatch!(self, store => store.queue_writeback(connector, external_id, ticket, labels))
    }
    async fn writeback(&self, id: WriteBackId) -> StoreResult<Option<WriteBack>> {
        dispatch!(self, store => store.writeback(id))
    }
    async fn record_writeback_attempt(
        &self,
        id: WriteBackId,
        attempt: &WriteBackAttempt,
    ) -> StoreResult<WriteBack> {
        dispatch!(self, store => store.record_writeback_attempt(id, attempt))
    }
    async fn writebacks_before(
        &self,
        connector: ConnectorId,
        before: Option<WriteBackId>,
        limit: u32,
    ) -> StoreResult<Vec<WriteBack>> {
        dispatch!(self, store => store.writebacks_before(connector, before, limit))
    }
    async fn writebacks(&self, connector: ConnectorId, limit: u32) -> StoreResult<Vec<WriteBack>> {
        dispatch!(self, store => store.writebacks(connector, limit))
    }
    async fn overdue_writebacks(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<WriteBack>> {
        dispatch!(self, store => store.overdue_writebacks(before, limit))
    }
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
