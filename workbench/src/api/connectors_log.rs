//! A connector's logs over HTTP, for a key of its project with the `admin` scope: the
//! deliveries its webhook received (`GET …/connectors/{name}/deliveries`) and the writes of
//! our tags to its help desk (`GET …/connectors/{name}/write-backs`). Newest first, a page at
//! a time: `next_cursor` is the next page's `?cursor=`, absent on the last one. The cursor is
//! keyset (the oldest id shown), so entries logged meanwhile never shift a page.

use super::auth::{Authorized, scope};
use super::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use datasets::connector::{Connector, ConnectorName, DeliveryRecord, WriteBack};
use datasets::{ConnectorStore, DeliveryId, TicketId, WriteBackId, WriteBackStore};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Entries a page holds when `limit` is not given.
const DEFAULT_PAGE: u32 = 50;
/// The most entries one page holds.
const MAX_PAGE: u32 = 500;

/// A log's page.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Entries per page, newest first (50 unless given).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Where the page starts: the `next_cursor` of the page before; the first page without.
    #[param(pattern = "^b[1-9][0-9]{0,17}$")]
    cursor: Option<String>,
}

/// One delivery the connector's webhook received and verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryEntry {
    pub id: i64,
    /// The vendor's event (`created`, `updated`, or its own name for events we ignore).
    pub event: String,
    /// `received` (being processed), `stored`, `ignored`, `stale` or `awaiting_fetch`.
    pub status: String,
    /// The ticket it stored, if any.
    pub ticket_id: Option<i64>,
    pub received_at: DateTime<Utc>,
}

/// One page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryEntry>,
    /// The `cursor` of the next page; absent (null) after the last one.
    pub next_cursor: Option<String>,
}

/// One write of our tags to a ticket of the connector's help desk.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteBackEntry {
    pub id: i64,
    /// The help desk's id of the ticket.
    pub external_id: String,
    pub ticket_id: i64,
    /// The labels the write adds, in the help desk's format.
    pub labels: Vec<String>,
    /// `pending`, `written` or `failed`.
    pub status: String,
    pub attempts: u32,
    /// The help desk's reason for the last failure or retry.
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One page of write-backs.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteBackPage {
    pub write_backs: Vec<WriteBackEntry>,
    /// The `cursor` of the next page; absent (null) after the last one.
    pub next_cursor: Option<String>,
}

impl From<DeliveryRecord> for DeliveryEntry {
    fn from(delivery: DeliveryRecord) -> Self {
        Self {
            id: delivery.id.0,
            event: delivery.event,
            status: delivery.status.as_str().to_string(),
            ticket_id: delivery.ticket_id.map(|TicketId(id)| id),
            received_at: delivery.received_at,
        }
    }
}

impl From<WriteBack> for WriteBackEntry {
    fn from(write: WriteBack) -> Self {
        Self {
            id: write.id.0,
            external_id: write.external_id,
            ticket_id: write.ticket_id.0,
            labels: write.labels,
            status: write.status.as_str().to_string(),
            attempts: write.attempts,
            last_error: write.last_error,
            next_attempt_at: write.next_attempt_at,
            created_at: write.created_at,
            updated_at: write.updated_at,
        }
    }
}

/// The page asked for: its size, and the id the entries must be older than.
fn page(params: &LogParams) -> Result<(u32, Option<i64>), ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!("limit: must be 1 to {MAX_PAGE}")));
    }
    let before = params
        .cursor
        .as_deref()
        .map(|cursor| {
            cursor
                .strip_prefix('b')
                .and_then(|id| id.parse::<i64>().ok())
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "cursor: not a cursor this server gave (use `next_cursor` as is)",
                    )
                })
        })
        .transpose()?;
    Ok((limit, before))
}

/// The next page's cursor: the oldest id shown, when the page was full.
fn next_cursor(shown: usize, limit: u32, oldest: Option<i64>) -> Option<String> {
    (shown == limit as usize)
        .then(|| oldest.map(|id| format!("b{id}")))
        .flatten()
}

/// The connector called `name` in the key's project; another project's is not found, so
/// names cannot be probed across projects.
async fn project_connector(
    state: &AppState,
    authorized: &Authorized<scope::Admin>,
    name: &str,
) -> Result<Connector, ApiError> {
    let not_found = || ApiError::not_found(format!("no connector named {name:?} in this project"));
    let name = ConnectorName::parse(name).map_err(|_| not_found())?;
    state
        .store
        .connector_by_name(&name)
        .await?
        .filter(|connector| connector.project_id == authorized.project.id)
        .ok_or_else(not_found)
}

/// The connector's deliveries, newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiPath((_, name)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<LogParams>,
) -> Result<ApiJson<DeliveryPage>, ApiError> {
    let (limit, before) = page(&params)?;
    let connector = project_connector(&state, &authorized, &name).await?;
    let deliveries = state
        .store
        .deliveries_before(connector.id, before.map(DeliveryId), limit)
        .await?;
    let next_cursor = next_cursor(
        deliveries.len(),
        limit,
        deliveries.last().map(|delivery| delivery.id.0),
    );
    Ok(ApiJson(DeliveryPage {
        deliveries: deliveries.into_iter().map(DeliveryEntry::from).collect(),
        next_cursor,
    }))
}

/// The connector's write-backs, newest first, failures with the help desk's reason.
pub async fn write_backs(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiPath((_, name)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<LogParams>,
) -> Result<ApiJson<WriteBackPage>, ApiError> {
    let (limit, before) = page(&params)?;
    let connector = project_connector(&state, &authorized, &name).await?;
    let writes = state
        .store
        .writebacks_before(connector.id, before.map(WriteBackId), limit)
        .await?;
    let next_cursor = next_cursor(writes.len(), limit, writes.last().map(|write| write.id.0));
    Ok(ApiJson(WriteBackPage {
        write_backs: writes.into_iter().map(WriteBackEntry::from).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(limit: Option<u32>, cursor: Option<&str>) -> LogParams {
        LogParams {
            limit,
            cursor: cursor.map(str::to_string),
        }
    }

    #[test]
    fn cursors_are_read_back_and_strangers_refused() {
        assert_eq!(page(&params(None, None)).unwrap(), (50, None));
        assert_eq!(page(&params(Some(3), Some("b17"))).unwrap(), (3, Some(17)));
        for bad in ["17", "b", "b-1", "b0", "bx", "p17"] {
            assert!(page(&params(None, Some(bad))).is_err(), "{bad}");
        }
        assert!(page(&params(Some(0), None)).is_err());
        assert!(page(&params(Some(501), None)).is_err());
        assert_eq!(next_cursor(3, 3, Some(9)), Some("b9".into()));
        assert_eq!(next_cursor(2, 3, Some(9)), None);
    }
}
