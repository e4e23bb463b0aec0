//! Backfilling a help desk's history: every ticket created since a date, page by page
//! through the vendor's paginated API, each page tagged in one batch when a model is in
//! service and stored in one transaction with the vendor's matching labels imported as
//! training data, but never written back. The cursor is stored after every page, so a
//! backfill stopped by a crash, Ctrl-C or a help desk that kept failing resumes where it
//! stopped. `tagger connectors backfill` runs it in the foreground; a worker runs the same.

use crate::connector_deliveries::store_page;
use crate::connector_jobs::{ConnectorRunner, MAX_WRITE_ATTEMPTS};
use chrono::{DateTime, Utc};
use connectors::WriteOutcome;
use datasets::connector::{Backfill, Connector};
use datasets::{AnyStore, BackfillStore, StoreError};
use inference::service::TaggingService;
use std::time::Duration;

/// Why a backfill stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The help desk refused or kept failing; recorded, and running it again resumes.
    #[error("{0}")]
    HelpDesk(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The first wait after a fault; it doubles with each further one.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Where a backfill asked for without a date starts: the date of the one that stopped
/// (so it resumes), else the beginning of the help desk's history.
pub async fn default_since(
    store: &AnyStore,
    connector: &Connector,
) -> Result<DateTime<Utc>, StoreError> {
    Ok(match store.backfill(connector.id).await? {
        Some(stopped) if stopped.status != datasets::connector::BackfillStatus::Done => {
            stopped.since
        }
        _ => DateTime::UNIX_EPOCH,
    })
}

/// Reads the connector's history created since `since` (resuming a stopped backfill from
/// the same date), calling `progress` after every stored page.
#[tracing::instrument(skip_all, fields(connector = %connector.name))]
pub async fn run(
    runner: &ConnectorRunner,
    store: &AnyStore,
    tagging: &TaggingService,
    connector: &Connector,
    since: DateTime<Utc>,
    mut progress: impl FnMut(&Backfill),
) -> Result<Backfill, BackfillError> {
    let mut state = store.start_backfill(connector.id, since).await?;
    if state.pages > 0 {
        tracing::info!(
            pages = state.pages,
            tickets = state.tickets,
            "backfill resumed"
        );
    }
    progress(&state);
    let table = connector.settings.table.as_deref().unwrap_or("incident");
    loop {
        let cursor = state.cursor.clone();
        let request = connectors::page_request(connector.system, table, since, cursor.as_deref());
        let answer = match page(runner, connector, &request).await {
            Ok(answer) => answer,
            Err(reason) => {
                store.fail_backfill(connector.id, &reason).await?;
                return Err(BackfillError::HelpDesk(reason));
            }
        };
        let parsed = serde_json::from_str::<serde_json::Value>(&answer.body)
            .map_err(|error| format!("{} sent a page that is not JSON: {error}", connector.system))
            .and_then(|json| {
                connectors::parse_page(
                    connector.system,
                    &json,
                    |name| answer.header(name),
                    cursor.as_deref(),
                )
                .map_err(|error| error.to_string())
            });
        let page = match parsed {
            Ok(page) => page,
            Err(reason) => {
                store.fail_backfill(connector.id, &reason).await?;
                return Err(BackfillError::HelpDesk(reason));
            }
        };
        let counts = match store_page(store, tagging, connector, &page.tickets).await {
            Ok(counts) => counts,
            Err(crate::connector_deliveries::DeliveryError::Store(error)) => {
                return Err(error.into());
            }
            // The model failed on this page: stopped and recorded; running it again resumes
            // from this page.
            Err(error) => {
                let reason = format!("the page could not be tagged: {error}");
                store.fail_backfill(connector.id, &reason).await?;
                return Err(BackfillError::HelpDesk(reason));
            }
        };
        let (stored, skipped) = (counts.stored, counts.skipped + page.skipped as u64);
        state = store
            .record_backfill_page(connector.id, page.next.as_deref(), stored, skipped)
            .await?;
        progress(&state);
        if page.next.is_none() {
            tracing::info!(
                pages = state.pages,
                tickets = state.tickets,
                "backfill done"
            );
            return Ok(state);
        }
    }
}

/// One page, waiting out rate limits and retrying faults with backoff; `Err` once the help
/// desk refuses for good or has failed `MAX_WRITE_ATTEMPTS` times in a row.
async fn page(
    runner: &ConnectorRunner,
    connector: &Connector,
    request: &connectors::WriteRequest,
) -> Result<crate::connector_jobs::Answer, String> {
    let mut attempts = 0u32;
    loop {
        let answer = runner
            .call(connector, request, crate::connector_jobs::MAX_PAGE_BYTES)
            .await?;
        attempts += 1;
        let (wait, reason) = match &answer.outcome {
            WriteOutcome::Written => return Ok(answer),
            WriteOutcome::Permanent(reason) => return Err(reason.clone()),
            WriteOutcome::RetryAfter(wait, reason) => (*wait, reason.clone()),
            WriteOutcome::Transient(reason) => (
                FIRST_BACKOFF * 2u32.pow((attempts - 1).min(10)),
                reason.clone(),
            ),
        };
        if attempts >= MAX_WRITE_ATTEMPTS {
            return Err(format!("gave up after {attempts} attempts: {reason}"));
        }
        tracing::info!(%reason, ?wait, "backfill page to be asked again");
        tokio::time::sleep(wait).await;
    }
}
