//! Tickets: the one upsert every ingest path writes through, reads by id, search, pages
//! for export and training, and the ticket browser. Their SQL is in `sql/tickets.rs`.

use super::capability::store_capability;
use super::dashboard as web;
use super::rows::corrupt;
use crate::error::{StoreError, StoreResult};
use crate::ids::{ModelVersionId, ProjectId, TagId, TicketId};
use crate::ticket::{LabelledTicket, NewTicket, Ticket, TicketQuery, UpsertedTicket};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

store_capability! {
    /// Tickets: writes and reads.
    pub trait TicketStore {
        /// Stores tickets, updating those whose (source, external id) is already stored.
        async fn upsert_tickets(
            &self,
            project: ProjectId,
            tickets: &[NewTicket],
        ) -> StoreResult<Vec<UpsertedTicket>>;
        async fn ticket(&self, project: ProjectId, ticket: TicketId) -> StoreResult<LabelledTicket>;
        async fn search_tickets(
            &self,
            project: ProjectId,
            query: &TicketQuery,
        ) -> StoreResult<Vec<LabelledTicket>>;
        /// Tickets in id order after `after`, for export and training.
        async fn tickets_after(
            &self,
            project: ProjectId,
            after: Option<TicketId>,
            limit: u32,
        ) -> StoreResult<Vec<LabelledTicket>>;
        /// Stores one ticket together with the tags a model version applied to it, in one
        /// transaction: a ticket is never stored without its verdict (the one ingest write).
        async fn upsert_ticket_with_model_labels(
            &self,
            project: ProjectId,
            ticket: &NewTicket,
            version: ModelVersionId,
            tags: &[(TagId, f32)],
        ) -> StoreResult<UpsertedTicket>;
        /// One page of the ticket browser, newest first.
        async fn browse_tickets(
            &self,
            project: ProjectId,
            filter: &web::TicketFilter,
        ) -> StoreResult<web::TicketPage>;
        /// The help desks the project's tickets came from.
        async fn ticket_sources(&self, project: ProjectId) -> StoreResult<Vec<String>>;
        /// The newest `limit` tickets created in `[from, until)`, with whether a tag is in force.
        async fn ticket_fits(
            &self,
            project: ProjectId,
            from: chrono::DateTime<chrono::Utc>,
            until: chrono::DateTime<chrono::Utc>,
            limit: u32,
        ) -> StoreResult<Vec<web::TicketFit>>;
    }
}

pub(crate) const TICKET_COLUMNS: &str =
    "id, project_id, source, external_id, subject, body, metadata, split, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct TicketRow {
    pub(crate) id: i64,
    pub(crate) project_id: i64,
    pub(crate) source: String,
    pub(crate) external_id: String,
    pub(crate) subject: String,
    pub(crate) body: String,
    pub(crate) metadata: Json<serde_json::Value>,
    pub(crate) split: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl TryFrom<TicketRow> for Ticket {
    type Error = StoreError;
    fn try_from(row: TicketRow) -> Result<Self, StoreError> {
        Ok(Ticket {
            id: TicketId(row.id),
            project_id: ProjectId(row.project_id),
            source: row.source,
            external_id: row.external_id,
            subject: row.subject,
            body: row.body,
            metadata: row.metadata.0,
            split: row.split.parse().map_err(|e| corrupt("split", e))?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}
