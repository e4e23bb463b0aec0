//! Where each connector's backfill stands: the next page's cursor and the counts, written
//! after every page so a stopped backfill resumes. A narrow capability: only the backfill and
//! the pages that show it ask for it. The SQL is the same on both backends.

use super::capability::store_capability;
use crate::connector::{Backfill, BackfillStatus};
use crate::error::{StoreError, StoreResult};
use crate::ids::ConnectorId;
use chrono::{DateTime, Utc};

store_capability! {
    /// Connectors' backfills.
    pub trait BackfillStore {
        async fn backfill(&self, connector: ConnectorId) -> StoreResult<Option<Backfill>>;
        /// Starts a backfill from `since`, or resumes the one that stopped with the same `since`
        /// (running or failed); a finished one, or one from another date, starts over.
        async fn start_backfill(
            &self,
            connector: ConnectorId,
            since: DateTime<Utc>,
        ) -> StoreResult<Backfill>;
        /// Records a stored page: its counts, and the next page's cursor (`None`: done).
        async fn record_backfill_page(
            &self,
            connector: ConnectorId,
            next: Option<&str>,
            tickets: u64,
            skipped: u64,
        ) -> StoreResult<Backfill>;
        /// Records why the backfill stopped; running it again resumes from the stored cursor.
        async fn fail_backfill(&self, connector: ConnectorId, error: &str) -> StoreResult<Backfill>;
    }
}

pub(crate) const SELECT_BACKFILL: &str = "SELECT connector_id, since, cursor, status, pages, tickets, \
     skipped, error, started_at, updated_at FROM connector_backfills WHERE connector_id = $1";
pub(crate) const RESTART_BACKFILL: &str = "INSERT INTO connector_backfills \
     (connector_id, since, cursor, status, pages, tickets, skipped, error, started_at, updated_at) \
     VALUES ($1, $2, NULL, 'running', 0, 0, 0, NULL, $3, $3) \
     ON CONFLICT (connector_id) DO UPDATE SET since = excluded.since, cursor = NULL, \
     status = 'running', pages = 0, tickets = 0, skipped = 0, error = NULL, \
     started_at = excluded.started_at, updated_at = excluded.updated_at";
pub(crate) const RESUME_BACKFILL: &str = "UPDATE connector_backfills SET status = 'running', \
     error = NULL, updated_at = $1 WHERE connector_id = $2";
pub(crate) const RECORD_PAGE: &str = "UPDATE connector_backfills SET cursor = $1, status = $2, \
     pages = pages + 1, tickets = tickets + $3, skipped = skipped + $4, updated_at = $5 \
     WHERE connector_id = $6";
pub(crate) const FAIL_BACKFILL: &str = "UPDATE connector_backfills SET status = 'failed', error = $1, \
     updated_at = $2 WHERE connector_id = $3";

#[derive(sqlx::FromRow)]
pub(crate) struct BackfillRow {
    pub(crate) connector_id: i64,
    pub(crate) since: DateTime<Utc>,
    pub(crate) cursor: Option<String>,
    pub(crate) status: String,
    pub(crate) pages: i64,
    pub(crate) tickets: i64,
    pub(crate) skipped: i64,
    pub(crate) error: Option<String>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl TryFrom<BackfillRow> for Backfill {
    type Error = StoreError;
    fn try_from(row: BackfillRow) -> Result<Self, StoreError> {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(Backfill {
            connector_id: ConnectorId(row.connector_id),
            since: row.since,
            cursor: row.cursor,
            status: row.status.parse::<BackfillStatus>().map_err(|e| {
                StoreError::Database(sqlx::Error::Decode(
                    format!("stored backfill status is invalid: {e}").into(),
                ))
            })?,
            pages: count(row.pages),
            tickets: count(row.tickets),
            skipped: count(row.skipped),
            error: row.error,
            started_at: row.started_at,
            updated_at: row.updated_at,
        })
    }
}

pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
