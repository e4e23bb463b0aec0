use super::*;
use crate::connector::{
    ClaimedTicket, Connector, ConnectorName, ConnectorTicket, ConnectorTicketStored,
    ConnectorTicketWrite, DeliveryClaim, DeliveryRecord, DeliveryStatus, NewConnector,
};
use crate::ids::{ConnectorId, DeliveryId, TagId, TicketId};
use crate::store::connector_store::*;
use crate::ticket::UpsertedTicket;

impl Backend {
    /// On `connection`: claims a delivery's dedupe key (see `claim_delivery`).
    pub(crate) async fn claim_delivery_on(
        connection: &mut <Db as sqlx::Database>::Connection,
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
    pub(crate) async fn check_connector_tags_in(
        tx: &mut sqlx::Transaction<'static, Db>,
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
    pub(crate) async fn store_connector_ticket_in(
        tx: &mut sqlx::Transaction<'static, Db>,
        connector: &Connector,
        write: &ConnectorTicketWrite,
        now: DateTime<Utc>,
    ) -> StoreResult<ConnectorTicketStored> {
        let known: Option<(i64, Option<DateTime<Utc>>)> = sqlx::query_as(CONNECTOR_TICKET_CHANGED)
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
        let glossary = Self::glossary_in(tx, connector.project_id).await?;
        let upserted =
            Self::upsert_ticket_in(tx, connector.project_id, &write.ticket, &glossary, now).await?;
        Self::settle_connector_ticket_in(tx, connector, write, upserted, now).await?;
        Ok(ConnectorTicketStored::Stored(upserted))
    }

    /// What follows a connector ticket's upsert, row by row: the model's labels, then the
    /// imported labels diffed and the ticket's link to the help desk recorded.
    pub(crate) async fn settle_connector_ticket_in(
        tx: &mut sqlx::Transaction<'static, Db>,
        connector: &Connector,
        write: &ConnectorTicketWrite,
        upserted: UpsertedTicket,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
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
        .await
    }

    /// In `tx`: the ticket's imported labels become `imported` (with their history), and
    /// the connector's row for it keeps the newer vendor change time.
    pub(crate) async fn record_connector_ticket_in(
        tx: &mut sqlx::Transaction<'static, Db>,
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
        let (removed, added) = label_changes(&current, imported);
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
}

impl ConnectorStore for Backend {
    #[tracing::instrument(skip_all, fields(connector = %connector.name, project = %connector.project_id))]
    async fn create_connector(&self, connector: &NewConnector) -> StoreResult<Connector> {
        connector.validate()?;
        let project: Option<i64> = sqlx::query_scalar(PROJECT_EXISTS)
            .bind(connector.project_id)
            .fetch_optional(self.pool())
            .await?;
        if project.is_none() {
            return Err(StoreError::NotFound(format!(
                "project {}",
                connector.project_id
            )));
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
        let rows: Vec<ConnectorRow> = sqlx::query_as(SELECT_CONNECTORS)
            .fetch_all(self.pool())
            .await?;
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
            return Err(StoreError::NotFound(format!(
                "connector {:?}",
                connector.name.as_str()
            )));
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
        Self::claim_delivery_on(
            &mut connection,
            connector,
            dedupe_key,
            event,
            abandoned_after,
        )
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
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
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
        sqlx::query(DELETE_DELIVERY)
            .bind(delivery)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(delivery = %delivery, status = status.as_str()))]
    async fn finish_delivery(
        &self,
        delivery: DeliveryId,
        status: DeliveryStatus,
        ticket: Option<TicketId>,
    ) -> StoreResult<()> {
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        for setting in SETTLE_SETTINGS {
            sqlx::query(*setting).execute(&mut *tx).await?;
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

    async fn deliveries(
        &self,
        connector: ConnectorId,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
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
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
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
        let existing = UpsertedTicket {
            id: ticket,
            created: false,
        };
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
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
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
}
