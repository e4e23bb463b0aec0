//! Where each connector's backfill stands: the next page's cursor and the counts, written
//! after every page so a stopped backfill resumes. A narrow capability: only the backfill and
//! the pages that show it ask for it. The SQL is the same on both backends.

use super::any::AnyStore;
use super::{PgStore, SqliteStore};
use crate::connector::{Backfill, BackfillStatus};
use crate::error::{StoreError, StoreResult};
use crate::ids::ConnectorId;
use chrono::{DateTime, Utc};
use std::future::Future;

/// Connectors' backfills.
pub trait BackfillStore {
    fn backfill(
        &self,
        connector: ConnectorId,
    ) -> impl Future<Output = StoreResult<Option<Backfill>>> + Send;
    /// Starts a backfill from `since`, or resumes the one that stopped with the same `since`
    /// (running or failed); a finished one, or one from another date, starts over.
    fn start_backfill(
        &self,
        connector: ConnectorId,
        since: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Backfill>> + Send;
    /// Records a stored page: its counts, and the next page's cursor (`None`: done).
    fn record_backfill_page(
        &self,
        connector: ConnectorId,
        next: Option<&str>,
        tickets: u64,
        skipped: u64,
    ) -> impl Future<Output = StoreResult<Backfill>> + Send;
    /// Records why the backfill stopped; running it again resumes from the stored cursor.
    fn fail_backfill(
        &self,
        connector: ConnectorId,
        error: &str,
    ) -> impl Future<Output = StoreResult<Backfill>> + Send;
}

const SELECT_BACKFILL: &str = "SELECT connector_id, since, cursor, status, pages, tickets, \
     skipped, error, started_at, updated_at FROM connector_backfills WHERE connector_id = $1";
const RESTART_BACKFILL: &str = "INSERT INTO connector_backfills \
     (connector_id, since, cursor, status, pages, tickets, skipped, error, started_at, updated_at) \
     VALUES ($1, $2, NULL, 'running', 0, 0, 0, NULL, $3, $3) \
     ON CONFLICT (connector_id) DO UPDATE SET since = excluded.since, cursor = NULL, \
     status = 'running', pages = 0, tickets = 0, skipped = 0, error = NULL, \
     started_at = excluded.started_at, updated_at = excluded.updated_at";
const RESUME_BACKFILL: &str = "UPDATE connector_backfills SET status = 'running', \
     error = NULL, updated_at = $1 WHERE connector_id = $2";
const RECORD_PAGE: &str = "UPDATE connector_backfills SET cursor = $1, status = $2, \
     pages = pages + 1, tickets = tickets + $3, skipped = skipped + $4, updated_at = $5 \
     WHERE connector_id = $6";
const FAIL_BACKFILL: &str = "UPDATE connector_backfills SET status = 'failed', error = $1, \
     updated_at = $2 WHERE connector_id = $3";

#[derive(sqlx::FromRow)]
struct BackfillRow {
    connector_id: i64,
    since: DateTime<Utc>,
    cursor: Option<String>,
    status: String,
    pages: i64,
    tickets: i64,
    skipped: i64,
    error: Option<String>,
    started_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

macro_rules! backfill_store_methods {
    () => {
        #[tracing::instrument(skip_all, fields(connector = %connector))]
        async fn backfill(&self, connector: ConnectorId) -> StoreResult<Option<Backfill>> {
            let row: Option<BackfillRow> = sqlx::query_as(SELECT_BACKFILL)
                .bind(connector)
                .fetch_optional(self.pool())
                .await?;
            row.map(Backfill::try_from).transpose()
        }

        #[tracing::instrument(skip_all, fields(connector = %connector))]
        async fn start_backfill(
            &self,
            connector: ConnectorId,
            since: DateTime<Utc>,
        ) -> StoreResult<Backfill> {
            let now = Utc::now();
            let resumable = self.backfill(connector).await?.is_some_and(|backfill| {
                backfill.since == since && backfill.status != BackfillStatus::Done
            });
            let query = if resumable {
                sqlx::query(RESUME_BACKFILL).bind(now).bind(connector)
            } else {
                sqlx::query(RESTART_BACKFILL)
                    .bind(connector)
                    .bind(since)
                    .bind(now)
            };
            query.execute(self.writer()).await?;
            self.backfill(connector)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("backfill of connector {connector}")))
        }

        #[tracing::instrument(skip_all, fields(connector = %connector))]
        async fn record_backfill_page(
            &self,
            connector: ConnectorId,
            next: Option<&str>,
            tickets: u64,
            skipped: u64,
        ) -> StoreResult<Backfill> {
            let status = if next.is_some() {
                BackfillStatus::Running
            } else {
                BackfillStatus::Done
            };
            sqlx::query(RECORD_PAGE)
                .bind(next)
                .bind(status.as_str())
                .bind(count(tickets))
                .bind(count(skipped))
                .bind(Utc::now())
                .bind(connector)
                .execute(self.writer())
                .await?;
            self.backfill(connector)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("backfill of connector {connector}")))
        }

        #[tracing::instrument(skip_all, fields(connector = %connector))]
        async fn fail_backfill(
            &self,
            connector: ConnectorId,
            error: &str,
        ) -> StoreResult<Backfill> {
            sqlx::query(FAIL_BACKFILL)
                .bind(error)
                .bind(Utc::now())
                .bind(connector)
                .execute(self.writer())
                .await?;
            self.backfill(connector)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("backfill of connector {connector}")))
        }
    };
}

impl BackfillStore for SqliteStore {
    backfill_store_methods!();
}

impl BackfillStore for PgStore {
    backfill_store_methods!();
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call.await,
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

impl BackfillStore for AnyStore {
    async fn backfill(&self, connector: ConnectorId) -> StoreResult<Option<Backfill>> {
        dispatch!(self, store => store.backfill(connector))
    }
    async fn start_backfill(
        &self,
        connector: ConnectorId,
        since: DateTime<Utc>,
    ) -> StoreResult<Backfill> {
        dispatch!(self, store => store.start_backfill(connector, since))
    }
    async fn record_backfill_page(
        &self,
        connector: ConnectorId,
        next: Option<&str>,
        tickets: u64,
        skipped: u64,
    ) -> StoreResult<Backfill> {
        dispatch!(self, store => store.record_backfill_page(connector, next, tickets, skipped))
    }
    async fn fail_backfill(&self, connector: ConnectorId, error: &str) -> StoreResult<Backfill> {
        dispatch!(self, store => store.fail_backfill(connector, error))
    }
}
