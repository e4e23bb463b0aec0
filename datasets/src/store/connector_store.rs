//! The connectors' storage: connectors with sealed credentials, the log of deliveries with
//! their dedupe keys, and per delivered ticket the vendor's change time and the labels our
//! write-back wrote. A narrow capability: the webhook and the CLI ask for `ConnectorStore`,
//! not the whole `Store`. The SQL is the same on both backends.

use super::any::AnyStore;
use super::{PgStore, SqliteStore};
use crate::connector::{
    ClaimedTicket, Connector, ConnectorName, ConnectorSettings, ConnectorTicket,
    ConnectorTicketStored, ConnectorTicketWrite, DeliveryClaim, DeliveryRecord, DeliveryStatus,
    NewConnector, System,
};
use crate::error::{StoreError, StoreResult, ValidationError, conflict_on_unique};
use crate::ids::{ConnectorId, DeliveryId, ProjectId, TagId, TicketId};
use crate::ticket::UpsertedTicket;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use std::collections::{HashMap, HashSet};
use std::future::Future;

/// The most deliveries one listing returns.
pub const MAX_DELIVERIES_PAGE: u32 = 500;

/// Connectors, their deliveries and the tickets they delivered.
pub trait ConnectorStore {
    /// Creates a connector; a name already taken (case ignored) is a conflict.
    fn create_connector(
        &self,
        connector: &NewConnector,
    ) -> impl Future<Output = StoreResult<Connector>> + Send;
    /// Every connector, by name.
    fn connectors(&self) -> impl Future<Output = StoreResult<Vec<Connector>>> + Send;
    fn connector_by_name(
        &self,
        name: &ConnectorName,
    ) -> impl Future<Output = StoreResult<Option<Connector>>> + Send;
    /// Saves a connector's edited address, settings and sealed credentials (its name, system
    /// and project stay); the stored connector as it is now.
    fn update_connector(
        &self,
        connector: &Connector,
    ) -> impl Future<Output = StoreResult<Connector>> + Send;
    /// Deletes a connector with its delivery log; the tickets it delivered stay.
    fn remove_connector(
        &self,
        name: &ConnectorName,
    ) -> impl Future<Output = StoreResult<Connector>> + Send;

    /// Records a verified delivery under its dedupe key, or finds it already recorded. A
    /// delivery still `received` (claimed, never finished) for longer than `abandoned_after`
    /// was dropped by a process that died mid-way: it is claimed afresh, so the vendor's retry
    /// is not lost as a "duplicate".
    fn claim_delivery(
        &self,
        connector: ConnectorId,
        dedupe_key: &str,
        event: &str,
        abandoned_after: chrono::Duration,
    ) -> impl Future<Output = StoreResult<DeliveryClaim>> + Send;
    /// Forgets a claimed delivery whose processing failed, so the vendor's retry is processed.
    fn release_delivery(
        &self,
        delivery: DeliveryId,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Records what became of a claimed delivery.
    fn finish_delivery(
        &self,
        delivery: DeliveryId,
        status: DeliveryStatus,
        ticket: Option<TicketId>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The connector's deliveries, newest first.
    fn deliveries(
        &self,
        connector: ConnectorId,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DeliveryRecord>>> + Send;
    /// A page of the connector's deliveries older than `before` (all when `None`), newest
    /// first: keyset paging, so a page never repeats or skips a delivery logged meanwhile.
    fn deliveries_before(
        &self,
        connector: ConnectorId,
        before: Option<DeliveryId>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DeliveryRecord>>> + Send;

    /// What is stored of the ticket the vendor knows as `external_id`.
    fn connector_ticket(
        &self,
        connector: ConnectorId,
        external_id: &str,
    ) -> impl Future<Output = StoreResult<Option<ConnectorTicket>>> + Send;
    /// After the ticket was ingested, in one transaction: its imported labels become
    /// `imported` (those the help desk carries, set by `connector:<name>`), and the vendor's
    /// change time is kept (the newer of the stored and the given one).
    fn record_connector_ticket(
        &self,
        connector: &Connector,
        external_id: &str,
        ticket: TicketId,
        vendor_updated_at: Option<DateTime<Utc>>,
        imported: &[TagId],
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Stores a help desk's tickets in one transaction, each as `record_connector_ticket`
    /// would after an ingest: the ticket (idempotent on the connector and its vendor id), its
    /// model labels when given, its imported labels and the vendor's change time. A ticket
    /// whose stored change time is newer is left as it is (`Stale`). One answer per ticket,
    /// in order.
    fn store_connector_tickets(
        &self,
        connector: &Connector,
        tickets: &[ConnectorTicketWrite],
    ) -> impl Future<Output = StoreResult<Vec<ConnectorTicketStored>>> + Send;
    /// Claims a delivery as `claim_delivery` does and, when it is new, stores its ticket as
    /// `store_connector_tickets` does, in one transaction: a live delivery costs one commit
    /// less, and a claim is never left without its ticket.
    fn claim_and_store_delivery(
        &self,
        connector: &Connector,
        dedupe_key: &str,
        event: &str,
        abandoned_after: chrono::Duration,
        write: &ConnectorTicketWrite,
    ) -> impl Future<Output = StoreResult<ClaimedTicket>> + Send;
    /// The connector a stored ticket came from, with the help desk's id for it.
    fn ticket_connector(
        &self,
        ticket: TicketId,
    ) -> impl Future<Output = StoreResult<Option<(Connector, String)>>> + Send;
    /// Remembers the labels a write-back wrote to the help desk, so the webhook it causes is
    /// recognised as our own echo.
    fn record_written_labels(
        &self,
        connector: ConnectorId,
        external_id: &str,
        labels: &[String],
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

const INSERT_CONNECTOR: &str = "INSERT INTO connectors \
     (project_id, name, name_key, system, base_url, settings, credentials, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
const SELECT_CONNECTORS: &str = "SELECT id, project_id, name, system, base_url, settings, \
     credentials, created_at FROM connectors ORDER BY name_key";
const SELECT_CONNECTOR_BY_NAME: &str = "SELECT id, project_id, name, system, base_url, \
     settings, credentials, created_at FROM connectors WHERE name_key = $1";
const SELECT_CONNECTOR_BY_ID: &str = "SELECT id, project_id, name, system, base_url, \
     settings, credentials, created_at FROM connectors WHERE id = $1";
const UPDATE_CONNECTOR: &str = "UPDATE connectors SET base_url = $2, settings = $3, \
     credentials = $4 WHERE id = $1";
const TICKET_CONNECTOR: &str = "SELECT connector_id, external_id FROM connector_tickets \
     WHERE ticket_id = $1 ORDER BY connector_id LIMIT 1";
const DELETE_CONNECTOR: &str = "DELETE FROM connectors WHERE id = $1";
const PROJECT_EXISTS: &str = "SELECT id FROM projects WHERE id = $1";

const CLAIM_DELIVERY: &str = "INSERT INTO connector_deliveries \
     (connector_id, dedupe_key, event, status, ticket_id, received_at) \
     VALUES ($1, $2, $3, 'received', NULL, $4) \
     ON CONFLICT (connector_id, dedupe_key) DO NOTHING RETURNING id";
// Only one of several racing retries matches: the first moves `received_at` past the cutoff.
const RECLAIM_ABANDONED_DELIVERY: &str = "UPDATE connector_deliveries SET received_at = $1 \
     WHERE connector_id = $2 AND dedupe_key = $3 AND status = 'received' AND received_at < $4 \
     RETURNING id";
const DELIVERY_COLUMNS_BY_KEY: &str = "SELECT id, connector_id, dedupe_key, event, status, \
     ticket_id, received_at FROM connector_deliveries WHERE connector_id = $1 AND dedupe_key = $2";
const DELETE_DELIVERY: &str = "DELETE FROM connector_deliveries WHERE id = $1";
const FINISH_DELIVERY: &str =
    "UPDATE connector_deliveries SET status = $1, ticket_id = $2 WHERE id = $3";
/// Settling a delivery (its status after the ticket is stored and its job queued) does not
/// wait for PostgreSQL to flush its log: the claim and the ticket were committed durably
/// before, and a settlement lost to a database crash leaves the delivery claimed, which the
/// vendor's retry processes again (idempotently). The webhook answers one flush sooner.
/// SQLite's store runs with `synchronous = NORMAL` already, which flushes at checkpoints.
const PG_SETTLE_WITHOUT_FLUSH: &str = "SET LOCAL synchronous_commit TO OFF";
const NO_SETTINGS: [&str; 0] = [];
const SELECT_DELIVERIES: &str = "SELECT id, connector_id, dedupe_key, event, status, ticket_id, \
     received_at FROM connector_deliveries WHERE connector_id = $1 AND id < $2 \
     ORDER BY id DESC LIMIT $3";

const SELECT_CONNECTOR_TICKET: &str = "SELECT ticket_id, vendor_updated_at, written_labels \
     FROM connector_tickets WHERE connector_id = $1 AND external_id = $2";
const TICKET_PROJECT: &str = "SELECT project_id FROM tickets WHERE id = $1";
const CONNECTOR_TICKET_CHANGED: &str = "SELECT ticket_id, vendor_updated_at FROM connector_tickets \
     WHERE connector_id = $1 AND external_id = $2";
const PROJECT_TAGS: &str = "SELECT id FROM tags WHERE project_id = $1";
// The newer change time wins, so a late, older delivery never moves the clock back.
const UPSERT_CONNECTOR_TICKET: &str = "INSERT INTO connector_tickets \
     (connector_id, external_id, ticket_id, vendor_updated_at, written_labels) \
     VALUES ($1, $2, $3, $4, '[]') \
     ON CONFLICT (connector_id, external_id) DO UPDATE SET ticket_id = excluded.ticket_id, \
     vendor_updated_at = CASE WHEN connector_tickets.vendor_updated_at IS NULL \
     OR excluded.vendor_updated_at > connector_tickets.vendor_updated_at \
     THEN excluded.vendor_updated_at ELSE connector_tickets.vendor_updated_at END";
const UPDATE_WRITTEN_LABELS: &str = "UPDATE connector_tickets SET written_labels = $1 \
     WHERE connector_id = $2 AND external_id = $3";
const SELECT_IMPORT_LABELS: &str = "SELECT tag_id FROM labels WHERE ticket_id = $1 AND source = 'import' AND present ORDER BY tag_id";
const DELETE_IMPORT_LABEL: &str =
    "DELETE FROM labels WHERE ticket_id = $1 AND tag_id = $2 AND source = 'import'";
const UPSERT_IMPORT_LABEL: &str = "INSERT INTO labels \
     (ticket_id, tag_id, source, set_by, confidence, present, updated_at) \
     VALUES ($1, $2, 'import', $3, NULL, TRUE, $4) \
     ON CONFLICT (ticket_id, tag_id, source) DO UPDATE SET set_by = excluded.set_by, \
     confidence = NULL, present = TRUE, updated_at = excluded.updated_at";
const INSERT_LABEL_EVENT: &str = "INSERT INTO label_events \
     (ticket_id, tag_id, source, set_by, confidence, action, at) \
     VALUES ($1, $2, 'import', $3, NULL, $4, $5)";

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("stored {what} is invalid: {detail}").into(),
    ))
}

#[derive(sqlx::FromRow)]
struct ConnectorRow {
    id: i64,
    project_id: i64,
    name: String,
    system: String,
    base_url: String,
    settings: Json<ConnectorSettings>,
    credentials: Vec<u8>,
    created_at: DateTime<Utc>,
}

impl TryFrom<ConnectorRow> for Connector {
    type Error = StoreError;
    fn try_from(row: ConnectorRow) -> Result<Self, StoreError> {
        Ok(Connector {
            id: ConnectorId(row.id),
            project_id: ProjectId(row.project_id),
            name: ConnectorName::parse(&row.name).map_err(|e| corrupt("connector name", e))?,
            system: row
                .system
                .parse::<System>()
                .map_err(|e| corrupt("connector system", e))?,
            base_url: row.base_url,
            settings: row.settings.0,
            sealed_credentials: row.credentials,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    connector_id: i64,
    dedupe_key: String,
    event: String,
    status: String,
    ticket_id: Option<i64>,
    received_at: DateTime<Utc>,
}

impl TryFrom<DeliveryRow> for DeliveryRecord {
    type Error = StoreError;
    fn try_from(row: DeliveryRow) -> Result<Self, StoreError> {
        Ok(DeliveryRecord {
            id: DeliveryId(row.id),
            connector_id: ConnectorId(row.connector_id),
            dedupe_key: row.dedupe_key,
            event: row.event,
            status: row
                .status
                .parse()
                .map_err(|e: String| corrupt("delivery status", e))?,
            ticket_id: row.ticket_id.map(TicketId),
            received_at: row.received_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ConnectorTicketRow {
    ticket_id: i64,
    vendor_updated_at: Option<DateTime<Utc>>,
    written_labels: Json<Vec<String>>,
}

fn connector_conflict(name: &ConnectorName) -> impl FnOnce() -> String + '_ {
    move || format!("a connector named {:?} already exists", name.as_str())
}

fn set_by(connector: &Connector) -> String {
    format!("connector:{}", connector.name)
}

macro_rules! connector_store_methods {
    ($begin_write:expr, $settle_settings:expr) => {
        #[tracing::instrument(skip_all, fields(connector = %connector.name, project = %connector.project_id))]
        async fn create_connector(&self, connector: &NewConnector) -> StoreResult<Connector> {
            connector.validate()?;
            let project: Option<i64> = sqlx::query_scalar(PROJECT_EXISTS)
                .bind(connector.project_id)
                .fetch_optional(self.pool())
                .await?;
            if project.is_none() {
                return Err(StoreError::NotFound(format!("project {}", connector.project_id)));
            }
            let id: i64 = sqlx::query_scalar(INSERT_CONNECTOR)
                .bind(connector.project_id)
                .bind(connector.name.as_str())
                .bind(connector.name.folded())
                .bind(connector.system.as_str())
                .bind(connector.base_url.trim())
                .bind(Json(&connector.settings))
                .bind(connector.sealed_credentials.as_slice())
                .bind(Utc::now())
                .fetch_one(self.writer())
                .await
                .map_err(|e| conflict_on_unique(e, connector_conflict(&connector.name)))?;
            let row: ConnectorRow = sqlx::query_as(SELECT_CONNECTOR_BY_ID)
            .bind(id)
            .fetch_one(self.pool())
            .await?;
            row.try_into()
        }

        #[tracing::instrument(skip_all)]
        async fn connectors(&self) -> StoreResult<Vec<Connector>> {
            let rows: Vec<ConnectorRow> = sqlx::query_as(SELECT_CONNECTORS).fetch_all(self.pool()).await?;
            rows.into_iter().map(Connector::try_from).collect()
        }

        #[tracing::instrument(skip_all, fields(connector = %name))]
        async fn connector_by_name(&self, name: &ConnectorName) -> StoreResult<Option<Connector>> {
            let row: Option<ConnectorRow> = sqlx::query_as(SELECT_CONNECTOR_BY_NAME)
                .bind(name.folded())
                .fetch_optional(self.pool())
                .await?;
            row.map(Connector::try_from).transpose()
        }

        #[tracing::instrument(skip_all, fields(connector = %connector.name))]
        async fn update_connector(&self, connector: &Connector) -> StoreResult<Connector> {
            NewConnector {
                project_id: connector.project_id,
                name: connector.name.clone(),
                system: connector.system,
                base_url: connector.base_url.clone(),
                settings: connector.settings.clone(),
                sealed_credentials: connector.sealed_credentials.clone(),
            }
            .validate()?;
            let updated = sqlx::query(UPDATE_CONNECTOR)
                .bind(connector.id)
                .bind(connector.base_url.trim())
                .bind(Json(&connector.settings))
                .bind(connector.sealed_credentials.as_slice())
                .execute(self.writer())
                .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("connector {:?}", connector.name.as_str())));
            }
            let row: ConnectorRow = sqlx::query_as(SELECT_CONNECTOR_BY_ID)
                .bind(connector.id)
                .fetch_one(self.pool())
                .await?;
            row.try_into()
        }

        #[tracing::instrument(skip_all, fields(ticket = %ticket))]
        async fn ticket_connector(&self, ticket: TicketId) -> StoreResult<Option<(Connector, String)>> {
            let found: Option<(i64, String)> = sqlx::query_as(TICKET_CONNECTOR)
                .bind(ticket)
                .fetch_optional(self.pool())
                .await?;
            let Some((connector, external_id)) = found else {
                return Ok(None);
            };
            let row: Option<ConnectorRow> = sqlx::query_as(SELECT_CONNECTOR_BY_ID)
                .bind(connector)
                .fetch_optional(self.pool())
                .await?;
            Ok(match row {
                Some(row) => Some((row.try_into()?, external_id)),
                None => None,
            })
        }

        #[tracing::instrument(skip_all, fields(connector = %name))]
        async fn remove_connector(&self, name: &ConnectorName) -> StoreResult<Connector> {
            let connector = self
                .connector_by_name(name)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("connector {:?}", name.as_str())))?;
            sqlx::query(DELETE_CONNECTOR)
                .bind(connector.id)
                .execute(self.writer())
                .await?;
            Ok(connector)
        }

        #[tracing::instrument(skip_all, fields(connector = %connector))]
        async fn claim_delivery(
            &self,
            connector: ConnectorId,
            dedupe_key: &str,
            event: &str,
            abandoned_after: chrono::Duration,
        ) -> StoreResult<DeliveryClaim> {
            let mut connection = self.writer().acquire().await?;
            Self::claim_delivery_on(&mut connection, connector, dedupe_key, event, abandoned_after)
                .await
        }

        #[tracing::instrument(skip_all, fields(connector = %connector.name))]
        async fn claim_and_store_delivery(
            &self,
            connector: &Connector,
            dedupe_key: &str,
            event: &str,
            abandoned_after: chrono::Duration,
            write: &ConnectorTicketWrite,
        ) -> StoreResult<ClaimedTicket> {
            write.ticket.validate()?;
            let now = Utc::now();
            let mut tx = self.writer().begin_with($begin_write).await?;
            let claim =
                Self::claim_delivery_on(&mut tx, connector.id, dedupe_key, event, abandoned_after)
                    .await?;
            let delivery = match claim {
                DeliveryClaim::New(delivery) => delivery,
                DeliveryClaim::Duplicate(earlier) => {
                    tx.rollback().await?;
                    return Ok(ClaimedTicket::Duplicate(earlier));
                }
            };
            Self::check_connector_tags_in(&mut tx, connector, std::slice::from_ref(write)).await?;
            let stored = Self::store_connector_ticket_in(&mut tx, connector, write, now).await?;
            tx.commit().await?;
            Ok(ClaimedTicket::New { delivery, stored })
        }

        #[tracing::instrument(skip_all, fields(delivery = %delivery))]
        async fn release_delivery(&self, delivery: DeliveryId) -> StoreResult<()> {
            sqlx::query(DELETE_DELIVERY).bind(delivery).execute(self.writer()).await?;
            Ok(())
        }

        #[tracing::instrument(skip_all, fields(delivery = %delivery, status = status.as_str()))]
        async fn finish_delivery(
            &self,
            delivery: DeliveryId,
            status: DeliveryStatus,
            ticket: Option<TicketId>,
        ) -> StoreResult<()> {
            let mut tx = self.writer().begin_with($begin_write).await?;
            for setting in $settle_settings {
                sqlx::query(setting).execute(&mut *tx).await?;
            }
            sqlx::query(FINISH_DELIVERY)
                .bind(status.as_str())
                .bind(ticket)
                .bind(delivery)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn deliveries(&self, connector: ConnectorId, limit: u32) -> StoreResult<Vec<DeliveryRecord>> {
            self.deliveries_before(connector, None, limit).await
        }

        #[tracing::instrument(skip_all, fields(connector = %connector))]
        async fn deliveries_before(
            &self,
            connector: ConnectorId,
            before: Option<DeliveryId>,
            limit: u32,
        ) -> StoreResult<Vec<DeliveryRecord>> {
            let rows: Vec<DeliveryRow> = sqlx::query_as(SELECT_DELIVERIES)
                .bind(connector)
                .bind(before.map_or(i64::MAX, |id| id.0))
                .bind(i64::from(limit.min(MAX_DELIVERIES_PAGE)))
                .fetch_all(self.pool())
                .await?;
            rows.into_iter().map(DeliveryRecord::try_from).collect()
        }

        #[tracing::instrument(skip_all, fields(connector = %connector))]
        async fn connector_ticket(
            &self,
            connector: ConnectorId,
            external_id: &str,
        ) -> StoreResult<Option<ConnectorTicket>> {
            let row: Option<ConnectorTicketRow> = sqlx::query_as(SELECT_CONNECTOR_TICKET)
                .bind(connector)
                .bind(external_id)
                .fetch_optional(self.pool())
                .await?;
            Ok(row.map(|row| ConnectorTicket {
                ticket_id: TicketId(row.ticket_id),
                vendor_updated_at: row.vendor_updated_at,
                written_labels: row.written_labels.0,
            }))
        }

        #[tracing::instrument(skip_all, fields(connector = %connector.name, ticket = %ticket))]
        async fn record_connector_ticket(
            &self,
            connector: &Connector,
            external_id: &str,
            ticket: TicketId,
            vendor_updated_at: Option<DateTime<Utc>>,
            imported: &[TagId],
        ) -> StoreResult<()> {
            let now = Utc::now();
            let mut tx = self.writer().begin_with($begin_write).await?;
            let project: Option<i64> = sqlx::query_scalar(TICKET_PROJECT)
                .bind(ticket)
                .fetch_optional(&mut *tx)
                .await?;
            if project != Some(connector.project_id.0) {
                return Err(StoreError::NotFound(format!(
                    "ticket {ticket} in project {}",
                    connector.project_id
                )));
            }
            let taxonomy: HashSet<i64> = sqlx::query_scalar(PROJECT_TAGS)
                .bind(connector.project_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            if let Some(unknown) = imported.iter().find(|tag| !taxonomy.contains(&tag.0)) {
                return Err(ValidationError::field(
                    "tags",
                    format!("tag {unknown} is not in project {}", connector.project_id),
                )
                .into());
            }
            // An existing ticket: its imported labels are compared with the ones stored.
            let existing = UpsertedTicket { id: ticket, created: false };
            Self::record_connector_ticket_in(
                &mut tx,
                connector,
                external_id,
                existing,
                vendor_updated_at,
                imported,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }

        #[tracing::instrument(skip_all, fields(connector = %connector.name, tickets = tickets.len()))]
        async fn store_connector_tickets(
            &self,
            connector: &Connector,
            tickets: &[ConnectorTicketWrite],
        ) -> StoreResult<Vec<ConnectorTicketStored>> {
            for write in tickets {
                write.ticket.validate()?;
            }
            let now = Utc::now();
            let mut tx = self.writer().begin_with($begin_write).await?;
            Self::check_connector_tags_in(&mut tx, connector, tickets).await?;
            let stored = Self::store_connector_tickets_in(&mut tx, connector, tickets, now).await?;
            tx.commit().await?;
            Ok(stored)
        }

        #[tracing::instrument(skip_all, fields(connector = %connector))]
        async fn record_written_labels(
            &self,
            connector: ConnectorId,
            external_id: &str,
            labels: &[String],
        ) -> StoreResult<()> {
            let updated = sqlx::query(UPDATE_WRITTEN_LABELS)
                .bind(Json(labels))
                .bind(connector)
                .bind(external_id)
                .execute(self.writer())
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound(format!(
                    "ticket {external_id:?} of connector {connector}"
                )));
            }
            Ok(())
        }
    };
}

/// Expands to the inherent helper both backends' methods share.
macro_rules! connector_store_helpers {
    ($db:ty) => {
        /// On `connection`: claims a delivery's dedupe key (see `claim_delivery`).
        async fn claim_delivery_on(
            connection: &mut <$db as sqlx::Database>::Connection,
            connector: ConnectorId,
            dedupe_key: &str,
            event: &str,
            abandoned_after: chrono::Duration,
        ) -> StoreResult<DeliveryClaim> {
            let now = Utc::now();
            let claimed: Option<i64> = sqlx::query_scalar(CLAIM_DELIVERY)
                .bind(connector)
                .bind(dedupe_key)
                .bind(event)
                .bind(now)
                .fetch_optional(&mut *connection)
                .await?;
            if let Some(id) = claimed {
                return Ok(DeliveryClaim::New(DeliveryId(id)));
            }
            let reclaimed: Option<i64> = sqlx::query_scalar(RECLAIM_ABANDONED_DELIVERY)
                .bind(now)
                .bind(connector)
                .bind(dedupe_key)
                .bind(now - abandoned_after)
                .fetch_optional(&mut *connection)
                .await?;
            if let Some(id) = reclaimed {
                tracing::warn!(delivery = id, "an abandoned delivery is processed again");
                return Ok(DeliveryClaim::New(DeliveryId(id)));
            }
            let row: DeliveryRow = sqlx::query_as(DELIVERY_COLUMNS_BY_KEY)
                .bind(connector)
                .bind(dedupe_key)
                .fetch_one(&mut *connection)
                .await?;
            Ok(DeliveryClaim::Duplicate(row.try_into()?))
        }

        /// In `tx`: refuses writes whose imported or model labels name a tag the connector's
        /// project does not have.
        async fn check_connector_tags_in(
            tx: &mut sqlx::Transaction<'static, $db>,
            connector: &Connector,
            tickets: &[ConnectorTicketWrite],
        ) -> StoreResult<()> {
            let tags: Vec<TagId> = tickets
                .iter()
                .flat_map(|write| {
                    let model = write
                        .model_labels
                        .as_ref()
                        .map(|(_, applied)| applied.as_slice())
                        .unwrap_or_default();
                    write
                        .imported
                        .iter()
                        .copied()
                        .chain(model.iter().map(|(tag, _)| *tag))
                })
                .collect();
            let mut unknown: Option<TagId> = None;
            // Most live deliveries carry no label to check: no taxonomy read for them.
            if !tags.is_empty() {
                let taxonomy: HashSet<i64> = sqlx::query_scalar(PROJECT_TAGS)
                    .bind(connector.project_id)
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .collect();
                unknown = tags.into_iter().find(|tag| !taxonomy.contains(&tag.0));
            }
            if let Some(unknown) = unknown {
                return Err(ValidationError::field(
                    "tags",
                    format!("tag {unknown} is not in project {}", connector.project_id),
                )
                .into());
            }
            Ok(())
        }

        /// In `tx`: one help desk's ticket as `store_connector_tickets` stores it, left as it
        /// is when the stored version is newer.
        async fn store_connector_ticket_in(
            tx: &mut sqlx::Transaction<'static, $db>,
            connector: &Connector,
            write: &ConnectorTicketWrite,
            now: DateTime<Utc>,
        ) -> StoreResult<ConnectorTicketStored> {
            let known: Option<(i64, Option<DateTime<Utc>>)> =
                sqlx::query_as(CONNECTOR_TICKET_CHANGED)
                    .bind(connector.id)
                    .bind(&write.ticket.external_id)
                    .fetch_optional(&mut **tx)
                    .await?;
            if let Some((ticket, Some(known))) = known
                && write
                    .vendor_updated_at
                    .is_some_and(|incoming| incoming < known)
            {
                return Ok(ConnectorTicketStored::Stale(TicketId(ticket)));
            }
            let upserted =
                Self::upsert_ticket_in(tx, connector.project_id, &write.ticket, now).await?;
            if let Some((version, applied)) = &write.model_labels {
                Self::write_model_labels_in(tx, upserted, *version, applied, now).await?;
            }
            Self::record_connector_ticket_in(
                tx,
                connector,
                &write.ticket.external_id,
                upserted,
                write.vendor_updated_at,
                &write.imported,
                now,
            )
            .await?;
            Ok(ConnectorTicketStored::Stored(upserted))
        }

        /// In `tx`: the ticket's imported labels become `imported` (with their history), and
        /// the connector's row for it keeps the newer vendor change time.
        async fn record_connector_ticket_in(
            tx: &mut sqlx::Transaction<'static, $db>,
            connector: &Connector,
            external_id: &str,
            stored: UpsertedTicket,
            vendor_updated_at: Option<DateTime<Utc>>,
            imported: &[TagId],
            now: DateTime<Utc>,
        ) -> StoreResult<()> {
            let ticket = stored.id;
            // A ticket created in this transaction has no labels yet.
            let current: Vec<i64> = if stored.created {
                Vec::new()
            } else {
                sqlx::query_scalar(SELECT_IMPORT_LABELS)
                    .bind(ticket)
                    .fetch_all(&mut **tx)
                    .await?
            };
            let current: Vec<TagId> = current.into_iter().map(TagId).collect();
            let (removed, added) = super::common::label_changes(&current, imported);
            let set_by = set_by(connector);
            for tag in removed {
                sqlx::query(DELETE_IMPORT_LABEL)
                    .bind(ticket)
                    .bind(tag)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(INSERT_LABEL_EVENT)
                    .bind(ticket)
                    .bind(tag)
                    .bind(&set_by)
                    .bind("removed")
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
            }
            for tag in added {
                sqlx::query(UPSERT_IMPORT_LABEL)
                    .bind(ticket)
                    .bind(tag)
                    .bind(&set_by)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(INSERT_LABEL_EVENT)
                    .bind(ticket)
                    .bind(tag)
                    .bind(&set_by)
                    .bind("added")
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
            }
            sqlx::query(UPSERT_CONNECTOR_TICKET)
                .bind(connector.id)
                .bind(external_id)
                .bind(ticket)
                .bind(vendor_updated_at)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    };
}

impl SqliteStore {
    connector_store_helpers!(sqlx::Sqlite);

    /// One statement per row: in-process SQLite runs them as fast as a batch.
    async fn store_connector_tickets_in(
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        connector: &Connector,
        tickets: &[ConnectorTicketWrite],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<ConnectorTicketStored>> {
        let mut stored = Vec::with_capacity(tickets.len());
        for write in tickets {
            stored.push(Self::store_connector_ticket_in(tx, connector, write, now).await?);
        }
        Ok(stored)
    }
}

impl PgStore {
    connector_store_helpers!(sqlx::Postgres);

    /// New tickets in a few statements per page (`UNNEST`): the label triggers that keep the
    /// dashboard's counts run once per statement, so a statement per row costs milliseconds
    /// each. Tickets stored before (and a page naming a ticket twice) take the row-by-row
    /// path, which diffs their labels.
    async fn store_connector_tickets_in(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        connector: &Connector,
        tickets: &[ConnectorTicketWrite],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<ConnectorTicketStored>> {
        let external_ids: Vec<&str> = tickets
            .iter()
            .map(|w| w.ticket.external_id.as_str())
            .collect();
        let unique: HashSet<&str> = external_ids.iter().copied().collect();
        let known: Vec<(String, i64, Option<DateTime<Utc>>)> = sqlx::query_as(PG_KNOWN_TICKETS)
            .bind(connector.id)
            .bind(&external_ids)
            .fetch_all(&mut **tx)
            .await?;
        if unique.len() != tickets.len() || !known.is_empty() {
            let mut stored = Vec::with_capacity(tickets.len());
            for write in tickets {
                stored.push(Self::store_connector_ticket_in(tx, connector, write, now).await?);
            }
            return Ok(stored);
        }
        let mut sources = Vec::with_capacity(tickets.len());
        let mut subjects = Vec::with_capacity(tickets.len());
        let mut bodies = Vec::with_capacity(tickets.len());
        let mut metadata = Vec::with_capacity(tickets.len());
        let mut splits = Vec::with_capacity(tickets.len());
        let mut created = Vec::with_capacity(tickets.len());
        for write in tickets {
            let ticket = &write.ticket;
            sources.push(ticket.source.as_str());
            subjects.push(ticket.subject.as_str());
            bodies.push(ticket.body.as_str());
            metadata.push(ticket.metadata.to_string());
            splits.push(ticket.split.as_str());
            created.push(ticket.created_at.unwrap_or(now));
        }
        let rows: Vec<(i64, String, String, bool)> = sqlx::query_as(PG_UPSERT_TICKETS)
            .bind(connector.project_id)
            .bind(&sources)
            .bind(&external_ids)
            .bind(&subjects)
            .bind(&bodies)
            .bind(&metadata)
            .bind(&splits)
            .bind(&created)
            .bind(now)
            .fetch_all(&mut **tx)
            .await?;
        // RETURNING promises no order: rows are matched back by their key.
        let by_key: HashMap<(String, String), (i64, bool)> = rows
            .into_iter()
            .map(|(id, source, external_id, inserted)| ((source, external_id), (id, inserted)))
            .collect();
        let mut stored = Vec::with_capacity(tickets.len());
        let mut labels = PgLabelRows::default();
        let mut ticket_ids = Vec::with_capacity(tickets.len());
        let mut changed = Vec::with_capacity(tickets.len());
        let set_by = set_by(connector);
        for write in tickets {
            let key = (
                write.ticket.source.clone(),
                write.ticket.external_id.clone(),
            );
            let &(id, inserted) = by_key.get(&key).ok_or_else(|| {
                StoreError::Conflict("a ticket of the page was not stored".into())
            })?;
            let upserted = UpsertedTicket {
                id: TicketId(id),
                created: inserted,
            };
            if inserted {
                if let Some((version, applied)) = &write.model_labels {
                    let model = format!("model:{version}");
                    let mut applied = applied.clone();
                    applied.sort_by_key(|(tag, _)| *tag);
                    for (tag, confidence) in applied {
                        labels.push(id, tag, "model", &model, Some(confidence));
                    }
                }
                for tag in &write.imported {
                    labels.push(id, *tag, "import", &set_by, None);
                }
                ticket_ids.push(id);
                changed.push(write.vendor_updated_at);
            } else {
                // Stored by another writer since the look above: diffed row by row.
                if let Some((version, applied)) = &write.model_labels {
                    Self::write_model_labels_in(tx, upserted, *version, applied, now).await?;
                }
                Self::record_connector_ticket_in(
                    tx,
                    connector,
                    &write.ticket.external_id,
                    upserted,
                    write.vendor_updated_at,
                    &write.imported,
                    now,
                )
                .await?;
            }
            stored.push(ConnectorTicketStored::Stored(upserted));
        }
        labels.insert(tx, now).await?;
        let new_ids: Vec<&str> = tickets
            .iter()
            .zip(&stored)
            .filter(|(_, outcome)| matches!(outcome, ConnectorTicketStored::Stored(t) if t.created))
            .map(|(write, _)| write.ticket.external_id.as_str())
            .collect();
        sqlx::query(PG_UPSERT_CONNECTOR_TICKETS)
            .bind(connector.id)
            .bind(&new_ids)
            .bind(&ticket_ids)
            .bind(&changed)
            .execute(&mut **tx)
            .await?;
        Ok(stored)
    }
}

/// New labels of a page as parallel columns for `UNNEST`, with their history.
#[derive(Default)]
struct PgLabelRows {
    tickets: Vec<i64>,
    tags: Vec<i64>,
    sources: Vec<&'static str>,
    set_by: Vec<String>,
    confidences: Vec<Option<f32>>,
}

impl PgLabelRows {
    fn push(
        &mut self,
        ticket: i64,
        tag: TagId,
        source: &'static str,
        set_by: &str,
        confidence: Option<f32>,
    ) {
        self.tickets.push(ticket);
        self.tags.push(tag.0);
        self.sources.push(source);
        self.set_by.push(set_by.to_string());
        self.confidences.push(confidence);
    }

    async fn insert(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if self.tickets.is_empty() {
            return Ok(());
        }
        for statement in [PG_INSERT_LABELS, PG_INSERT_LABEL_EVENTS] {
            sqlx::query(statement)
                .bind(&self.tickets)
                .bind(&self.tags)
                .bind(&self.sources)
                .bind(&self.set_by)
                .bind(&self.confidences)
                .bind(now)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

const PG_KNOWN_TICKETS: &str = "SELECT external_id, ticket_id, vendor_updated_at \
     FROM connector_tickets WHERE connector_id = $1 AND external_id = ANY($2)";
const PG_UPSERT_TICKETS: &str = "INSERT INTO tickets \
     (project_id, source, external_id, subject, body, metadata, split, created_at, updated_at) \
     SELECT $1, u.source, u.external_id, u.subject, u.body, u.metadata::jsonb, u.split, u.created_at, $9 \
     FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[]) \
     AS u(source, external_id, subject, body, metadata, split, created_at) \
     ON CONFLICT (project_id, source, external_id) DO UPDATE SET subject = excluded.subject, \
     body = excluded.body, metadata = excluded.metadata, updated_at = excluded.updated_at \
     RETURNING id, source, external_id, (xmax = 0) AS inserted";
const PG_INSERT_LABELS: &str = "INSERT INTO labels \
     (ticket_id, tag_id, source, set_by, confidence, present, updated_at) \
     SELECT u.ticket_id, u.tag_id, u.source, u.set_by, u.confidence, TRUE, $6 \
     FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::float4[]) \
     AS u(ticket_id, tag_id, source, set_by, confidence)";
const PG_INSERT_LABEL_EVENTS: &str = "INSERT INTO label_events \
     (ticket_id, tag_id, source, set_by, confidence, action, at) \
     SELECT u.ticket_id, u.tag_id, u.source, u.set_by, u.confidence, 'added', $6 \
     FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::float4[]) \
     AS u(ticket_id, tag_id, source, set_by, confidence)";
const PG_UPSERT_CONNECTOR_TICKETS: &str = "INSERT INTO connector_tickets \
     (connector_id, external_id, ticket_id, vendor_updated_at, written_labels) \
     SELECT $1, u.external_id, u.ticket_id, u.vendor_updated_at, '[]' \
     FROM UNNEST($2::text[], $3::int8[], $4::timestamptz[]) AS u(external_id, ticket_id, vendor_updated_at) \
     ON CONFLICT (connector_id, external_id) DO UPDATE SET ticket_id = excluded.ticket_id, \
     vendor_updated_at = CASE WHEN connector_tickets.vendor_updated_at IS NULL \
     OR excluded.vendor_updated_at > connector_tickets.vendor_updated_at \
     THEN excluded.vendor_updated_at ELSE connector_tickets.vendor_updated_at END";

impl ConnectorStore for SqliteStore {
    // An immediate transaction takes SQLite's write lock up front (see sqlite.rs).
    connector_store_methods!("BEGIN IMMEDIATE", NO_SETTINGS);
}

impl ConnectorStore for PgStore {
    connector_store_methods!("BEGIN", [PG_SETTLE_WITHOUT_FLUSH]);
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call.await,
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

impl ConnectorStore for AnyStore {
    async fn create_connector(&self, connector: &NewConnector) -> StoreResult<Connector> {
        dispatch!(self, store => store.create_connector(connector))
    }
    async fn connectors(&self) -> StoreResult<Vec<Connector>> {
        dispatch!(self, store => store.connectors())
    }
    async fn connector_by_name(&self, name: &ConnectorName) -> StoreResult<Option<Connector>> {
        dispatch!(self, store => store.connector_by_name(name))
    }
    async fn update_connector(&self, connector: &Connector) -> StoreResult<Connector> {
        dispatch!(self, store => store.update_connector(connector))
    }
    async fn ticket_connector(&self, ticket: TicketId) -> StoreResult<Option<(Connector, String)>> {
        dispatch!(self, store => store.ticket_connector(ticket))
    }
    async fn remove_connector(&self, name: &ConnectorName) -> StoreResult<Connector> {
        dispatch!(self, store => store.remove_connector(name))
    }
    async fn claim_delivery(
        &self,
        connector: ConnectorId,
        dedupe_key: &str,
        event: &str,
        abandoned_after: chrono::Duration,
    ) -> StoreResult<DeliveryClaim> {
        dispatch!(self, store => store.claim_delivery(connector, dedupe_key, event, abandoned_after))
    }
    async fn claim_and_store_delivery(
        &self,
        connector: &Connector,
        dedupe_key: &str,
        event: &str,
        abandoned_after: chrono::Duration,
        write: &ConnectorTicketWrite,
    ) -> StoreResult<ClaimedTicket> {
        dispatch!(self, store => store.claim_and_store_delivery(connector, dedupe_key, event, abandoned_after, write))
    }
    async fn release_delivery(&self, delivery: DeliveryId) -> StoreResult<()> {
        dispatch!(self, store => store.release_delivery(delivery))
    }
    async fn finish_delivery(
        &self,
        delivery: DeliveryId,
        status: DeliveryStatus,
        ticket: Option<TicketId>,
    ) -> StoreResult<()> {
        dispatch!(self, store => store.finish_delivery(delivery, status, ticket))
    }
    async fn deliveries(
        &self,
        connector: ConnectorId,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        dispatch!(self, store => store.deliveries(connector, limit))
    }
    async fn deliveries_before(
        &self,
        connector: ConnectorId,
        before: Option<DeliveryId>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        dispatch!(self, store => store.deliveries_before(connector, before, limit))
    }
    async fn connector_ticket(
        &self,
        connector: ConnectorId,
        external_id: &str,
    ) -> StoreResult<Option<ConnectorTicket>> {
        dispatch!(self, store => store.connector_ticket(connector, external_id))
    }
    async fn record_connector_ticket(
        &self,
        connector: &Connector,
        external_id: &str,
        ticket: TicketId,
        vendor_updated_at: Option<DateTime<Utc>>,
        imported: &[TagId],
    ) -> StoreResult<()> {
        dispatch!(self, store => store.record_connector_ticket(connector, external_id, ticket, vendor_updated_at, imported))
    }
    async fn store_connector_tickets(
        &self,
        connector: &Connector,
        tickets: &[ConnectorTicketWrite],
    ) -> StoreResult<Vec<ConnectorTicketStored>> {
        dispatch!(self, store => store.store_connector_tickets(connector, tickets))
    }
    async fn record_written_labels(
        &self,
        connector: ConnectorId,
        external_id: &str,
        labels: &[String],
    ) -> StoreResult<()> {
        dispatch!(self, store => store.record_written_labels(connector, external_id, labels))
    }
}
