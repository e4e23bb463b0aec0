//! The connectors' storage: connectors with sealed credentials, the log of deliveries with
//! their dedupe keys, and per delivered ticket the vendor's change time and the labels our
//! write-back wrote. A narrow capability: the webhook and the CLI ask for `ConnectorStore`,
//! not the whole `Store`. The SQL is the same on both backends.

use super::capability::store_capability;
use super::{PgStore, SqliteStore};
use crate::connector::{
    ClaimedTicket, Connector, ConnectorName, ConnectorSettings, ConnectorTicket,
    ConnectorTicketStored, ConnectorTicketWrite, DeliveryClaim, DeliveryRecord, DeliveryStatus,
    NewConnector, System,
};
use crate::error::{StoreError, StoreResult};
use crate::ids::{ConnectorId, DeliveryId, ProjectId, TagId, TicketId};
use crate::ticket::UpsertedTicket;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use std::collections::{HashMap, HashSet};

/// The most deliveries one listing returns.
pub const MAX_DELIVERIES_PAGE: u32 = 500;

store_capability! {
    /// Connectors, their deliveries and the tickets they delivered.
    pub trait ConnectorStore {
        /// Creates a connector; a name already taken (case ignored) is a conflict.
        async fn create_connector(&self, connector: &NewConnector) -> StoreResult<Connector>;
        /// Every connector, by name.
        async fn connectors(&self) -> StoreResult<Vec<Connector>>;
        async fn connector_by_name(&self, name: &ConnectorName) -> StoreResult<Option<Connector>>;
        /// Saves a connector's edited address, settings and sealed credentials (its name, system
        /// and project stay); the stored connector as it is now.
        async fn update_connector(&self, connector: &Connector) -> StoreResult<Connector>;
        /// Deletes a connector with its delivery log; the tickets it delivered stay.
        async fn remove_connector(&self, name: &ConnectorName) -> StoreResult<Connector>;
        /// Records a verified delivery under its dedupe key, or finds it already recorded. A
        /// delivery still `received` (claimed, never finished) for longer than `abandoned_after`
        /// was dropped by a process that died mid-way: it is claimed afresh, so the vendor's retry
        /// is not lost as a "duplicate".
        async fn claim_delivery(
            &self,
            connector: ConnectorId,
            dedupe_key: &str,
            event: &str,
            abandoned_after: chrono::Duration,
        ) -> StoreResult<DeliveryClaim>;
        /// Forgets a claimed delivery whose processing failed, so the vendor's retry is processed.
        async fn release_delivery(&self, delivery: DeliveryId) -> StoreResult<()>;
        /// Records what became of a claimed delivery.
        async fn finish_delivery(
            &self,
            delivery: DeliveryId,
            status: DeliveryStatus,
            ticket: Option<TicketId>,
        ) -> StoreResult<()>;
        /// The connector's deliveries, newest first.
        async fn deliveries(
            &self,
            connector: ConnectorId,
            limit: u32,
        ) -> StoreResult<Vec<DeliveryRecord>>;
        /// A page of the connector's deliveries older than `before` (all when `None`), newest
        /// first: keyset paging, so a page never repeats or skips a delivery logged meanwhile.
        async fn deliveries_before(
            &self,
            connector: ConnectorId,
            before: Option<DeliveryId>,
            limit: u32,
        ) -> StoreResult<Vec<DeliveryRecord>>;
        /// What is stored of the ticket the vendor knows as `external_id`.
        async fn connector_ticket(
            &self,
            connector: ConnectorId,
            external_id: &str,
        ) -> StoreResult<Option<ConnectorTicket>>;
        /// After the ticket was ingested, in one transaction: its imported labels become
        /// `imported` (those the help desk carries, set by `connector:<name>`), and the vendor's
        /// change time is kept (the newer of the stored and the given one).
        async fn record_connector_ticket(
            &self,
            connector: &Connector,
            external_id: &str,
            ticket: TicketId,
            vendor_updated_at: Option<DateTime<Utc>>,
            imported: &[TagId],
        ) -> StoreResult<()>;
        /// Stores a help desk's tickets in one transaction, each as `record_connector_ticket`
        /// would after an ingest: the ticket (idempotent on the connector and its vendor id), its
        /// model labels when given, its imported labels and the vendor's change time. A ticket
        /// whose stored change time is newer is left as it is (`Stale`). One answer per ticket,
        /// in order.
        async fn store_connector_tickets(
            &self,
            connector: &Connector,
            tickets: &[ConnectorTicketWrite],
        ) -> StoreResult<Vec<ConnectorTicketStored>>;
        /// Claims a delivery as `claim_delivery` does and, when it is new, stores its ticket as
        /// `store_connector_tickets` does, in one transaction: a live delivery costs one commit
        /// less, and a claim is never left without its ticket.
        async fn claim_and_store_delivery(
            &self,
            connector: &Connector,
            dedupe_key: &str,
            event: &str,
            abandoned_after: chrono::Duration,
            write: &ConnectorTicketWrite,
        ) -> StoreResult<ClaimedTicket>;
        /// The connector a stored ticket came from, with the help desk's id for it.
        async fn ticket_connector(
            &self,
            ticket: TicketId,
        ) -> StoreResult<Option<(Connector, String)>>;
        /// Remembers the labels a write-back wrote to the help desk, so the webhook it causes is
        /// recognised as our own echo.
        async fn record_written_labels(
            &self,
            connector: ConnectorId,
            external_id: &str,
            labels: &[String],
        ) -> StoreResult<()>;
    }
}

pub(crate) const INSERT_CONNECTOR: &str = "INSERT INTO connectors \
     (project_id, name, name_key, system, base_url, settings, credentials, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
pub(crate) const SELECT_CONNECTORS: &str = "SELECT id, project_id, name, system, base_url, settings, \
     credentials, created_at FROM connectors ORDER BY name_key";
pub(crate) const SELECT_CONNECTOR_BY_NAME: &str = "SELECT id, project_id, name, system, base_url, \
     settings, credentials, created_at FROM connectors WHERE name_key = $1";
pub(crate) const SELECT_CONNECTOR_BY_ID: &str = "SELECT id, project_id, name, system, base_url, \
     settings, credentials, created_at FROM connectors WHERE id = $1";
pub(crate) const UPDATE_CONNECTOR: &str = "UPDATE connectors SET base_url = $2, settings = $3, \
     credentials = $4 WHERE id = $1";
pub(crate) const TICKET_CONNECTOR: &str = "SELECT connector_id, external_id FROM connector_tickets \
     WHERE ticket_id = $1 ORDER BY connector_id LIMIT 1";
pub(crate) const DELETE_CONNECTOR: &str = "DELETE FROM connectors WHERE id = $1";
pub(crate) const PROJECT_EXISTS: &str = "SELECT id FROM projects WHERE id = $1";

pub(crate) const CLAIM_DELIVERY: &str = "INSERT INTO connector_deliveries \
     (connector_id, dedupe_key, event, status, ticket_id, received_at) \
     VALUES ($1, $2, $3, 'received', NULL, $4) \
     ON CONFLICT (connector_id, dedupe_key) DO NOTHING RETURNING id";
// Only one of several racing retries matches: the first moves `received_at` past the cutoff.
pub(crate) const RECLAIM_ABANDONED_DELIVERY: &str = "UPDATE connector_deliveries SET received_at = $1 \
     WHERE connector_id = $2 AND dedupe_key = $3 AND status = 'received' AND received_at < $4 \
     RETURNING id";
pub(crate) const DELIVERY_COLUMNS_BY_KEY: &str = "SELECT id, connector_id, dedupe_key, event, status, \
     ticket_id, received_at FROM connector_deliveries WHERE connector_id = $1 AND dedupe_key = $2";
pub(crate) const DELETE_DELIVERY: &str = "DELETE FROM connector_deliveries WHERE id = $1";
pub(crate) const FINISH_DELIVERY: &str =
    "UPDATE connector_deliveries SET status = $1, ticket_id = $2 WHERE id = $3";
pub(crate) const SELECT_DELIVERIES: &str = "SELECT id, connector_id, dedupe_key, event, status, ticket_id, \
     received_at FROM connector_deliveries WHERE connector_id = $1 AND id < $2 \
     ORDER BY id DESC LIMIT $3";

pub(crate) const SELECT_CONNECTOR_TICKET: &str = "SELECT ticket_id, vendor_updated_at, written_labels \
     FROM connector_tickets WHERE connector_id = $1 AND external_id = $2";
pub(crate) const TICKET_PROJECT: &str = "SELECT project_id FROM tickets WHERE id = $1";
pub(crate) const CONNECTOR_TICKET_CHANGED: &str = "SELECT ticket_id, vendor_updated_at FROM connector_tickets \
     WHERE connector_id = $1 AND external_id = $2";
pub(crate) const PROJECT_TAGS: &str = "SELECT id FROM tags WHERE project_id = $1";
// The newer change time wins, so a late, older delivery never moves the clock back.
pub(crate) const UPSERT_CONNECTOR_TICKET: &str = "INSERT INTO connector_tickets \
     (connector_id, external_id, ticket_id, vendor_updated_at, written_labels) \
     VALUES ($1, $2, $3, $4, '[]') \
     ON CONFLICT (connector_id, external_id) DO UPDATE SET ticket_id = excluded.ticket_id, \
     vendor_updated_at = CASE WHEN connector_tickets.vendor_updated_at IS NULL \
     OR excluded.vendor_updated_at > connector_tickets.vendor_updated_at \
     THEN excluded.vendor_updated_at ELSE connector_tickets.vendor_updated_at END";
pub(crate) const UPDATE_WRITTEN_LABELS: &str = "UPDATE connector_tickets SET written_labels = $1 \
     WHERE connector_id = $2 AND external_id = $3";
pub(crate) const SELECT_IMPORT_LABELS: &str = "SELECT tag_id FROM labels WHERE ticket_id = $1 AND source = 'import' AND present ORDER BY tag_id";
pub(crate) const DELETE_IMPORT_LABEL: &str =
    "DELETE FROM labels WHERE ticket_id = $1 AND tag_id = $2 AND source = 'import'";
pub(crate) const UPSERT_IMPORT_LABEL: &str = "INSERT INTO labels \
     (ticket_id, tag_id, source, set_by, confidence, present, updated_at) \
     VALUES ($1, $2, 'import', $3, NULL, TRUE, $4) \
     ON CONFLICT (ticket_id, tag_id, source) DO UPDATE SET set_by = excluded.set_by, \
     confidence = NULL, present = TRUE, updated_at = excluded.updated_at";
pub(crate) const INSERT_LABEL_EVENT: &str = "INSERT INTO label_events \
     (ticket_id, tag_id, source, set_by, confidence, action, at) \
     VALUES ($1, $2, 'import', $3, NULL, $4, $5)";

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("stored {what} is invalid: {detail}").into(),
    ))
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectorRow {
    pub(crate) id: i64,
    pub(crate) project_id: i64,
    pub(crate) name: String,
    pub(crate) system: String,
    pub(crate) base_url: String,
    pub(crate) settings: Json<ConnectorSettings>,
    pub(crate) credentials: Vec<u8>,
    pub(crate) created_at: DateTime<Utc>,
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
pub(crate) struct DeliveryRow {
    pub(crate) id: i64,
    pub(crate) connector_id: i64,
    pub(crate) dedupe_key: String,
    pub(crate) event: String,
    pub(crate) status: String,
    pub(crate) ticket_id: Option<i64>,
    pub(crate) received_at: DateTime<Utc>,
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
pub(crate) struct ConnectorTicketRow {
    pub(crate) ticket_id: i64,
    pub(crate) vendor_updated_at: Option<DateTime<Utc>>,
    pub(crate) written_labels: Json<Vec<String>>,
}

pub(crate) fn connector_conflict(name: &ConnectorName) -> impl FnOnce() -> String + '_ {
    move || format!("a connector named {:?} already exists", name.as_str())
}

pub(crate) fn set_by(connector: &Connector) -> String {
    format!("connector:{}", connector.name)
}

impl SqliteStore {
    /// One statement per row: in-process SQLite runs them as fast as a batch.
    pub(crate) async fn store_connector_tickets_in(
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
    /// New tickets in a few statements per page (`UNNEST`): the label triggers that keep the
    /// dashboard's counts run once per statement, so a statement per row costs milliseconds
    /// each. Tickets stored before (and a page naming a ticket twice) take the row-by-row
    /// path, which diffs their labels.
    pub(crate) async fn store_connector_tickets_in(
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
        let glossary = Self::glossary_in(tx, connector.project_id).await?;
        let mut texts = Vec::with_capacity(tickets.len());
        for write in tickets {
            let key = (
                write.ticket.source.clone(),
                write.ticket.external_id.clone(),
            );
            if let Some(&(id, _)) = by_key.get(&key) {
                texts.push((
                    id,
                    write.ticket.subject.as_str(),
                    write.ticket.body.as_str(),
                ));
            }
        }
        Self::write_entities_bulk_in(tx, connector.project_id, &texts, &glossary).await?;
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
                Self::settle_connector_ticket_in(tx, connector, write, upserted, now).await?;
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
pub(crate) struct PgLabelRows {
    pub(crate) tickets: Vec<i64>,
    pub(crate) tags: Vec<i64>,
    pub(crate) sources: Vec<&'static str>,
    pub(crate) set_by: Vec<String>,
    pub(crate) confidences: Vec<Option<f32>>,
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

pub(crate) const PG_KNOWN_TICKETS: &str = "SELECT external_id, ticket_id, vendor_updated_at \
     FROM connector_tickets WHERE connector_id = $1 AND external_id = ANY($2)";
pub(crate) const PG_UPSERT_TICKETS: &str = "INSERT INTO tickets \
     (project_id, source, external_id, subject, body, metadata, split, created_at, updated_at) \
     SELECT $1, u.source, u.external_id, u.subject, u.body, u.metadata::jsonb, u.split, u.created_at, $9 \
     FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[]) \
     AS u(source, external_id, subject, body, metadata, split, created_at) \
     ON CONFLICT (project_id, source, external_id) DO UPDATE SET subject = excluded.subject, \
     body = excluded.body, metadata = excluded.metadata, updated_at = excluded.updated_at \
     RETURNING id, source, external_id, (xmax = 0) AS inserted";
pub(crate) const PG_INSERT_LABELS: &str = "INSERT INTO labels \
     (ticket_id, tag_id, source, set_by, confidence, present, updated_at) \
     SELECT u.ticket_id, u.tag_id, u.source, u.set_by, u.confidence, TRUE, $6 \
     FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::float4[]) \
     AS u(ticket_id, tag_id, source, set_by, confidence)";
pub(crate) const PG_INSERT_LABEL_EVENTS: &str = "INSERT INTO label_events \
     (ticket_id, tag_id, source, set_by, confidence, action, at) \
     SELECT u.ticket_id, u.tag_id, u.source, u.set_by, u.confidence, 'added', $6 \
     FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::float4[]) \
     AS u(ticket_id, tag_id, source, set_by, confidence)";
pub(crate) const PG_UPSERT_CONNECTOR_TICKETS: &str = "INSERT INTO connector_tickets \
     (connector_id, external_id, ticket_id, vendor_updated_at, written_labels) \
     SELECT $1, u.external_id, u.ticket_id, u.vendor_updated_at, '[]' \
     FROM UNNEST($2::text[], $3::int8[], $4::timestamptz[]) AS u(external_id, ticket_id, vendor_updated_at) \
     ON CONFLICT (connector_id, external_id) DO UPDATE SET ticket_id = excluded.ticket_id, \
     vendor_updated_at = CASE WHEN connector_tickets.vendor_updated_at IS NULL \
     OR excluded.vendor_updated_at > connector_tickets.vendor_updated_at \
     THEN excluded.vendor_updated_at ELSE connector_tickets.vendor_updated_at END";
