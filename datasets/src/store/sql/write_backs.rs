use super::*;
use crate::connector::{WriteBack, WriteBackAttempt, WriteBackQueued, WriteBackStatus};
use crate::ids::{ConnectorId, TicketId, WriteBackId};
use crate::store::writeback_store::*;

impl WriteBackStore for Backend {
    #[tracing::instrument(skip_all, fields(connector = %connector, ticket = %ticket))]
    async fn queue_writeback(
        &self,
        connector: ConnectorId,
        external_id: &str,
        ticket: TicketId,
        labels: &[String],
    ) -> StoreResult<WriteBackQueued> {
        let now = Utc::now();
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
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
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
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

    async fn writebacks(&self, connector: ConnectorId, limit: u32) -> StoreResult<Vec<WriteBack>> {
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
}
