use super::*;
use crate::connector::{Backfill, BackfillStatus};
use crate::ids::ConnectorId;
use crate::store::backfill_store::*;

impl BackfillStore for Backend {
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
    async fn fail_backfill(&self, connector: ConnectorId, error: &str) -> StoreResult<Backfill> {
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
}
