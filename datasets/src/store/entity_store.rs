//! Entities stored with their ticket and the project glossary they are found with. Every
//! ticket write replaces the ticket's entities in its own transaction (`sql/entities.rs`);
//! this capability reads them, edits the glossary and re-extracts a project's tickets
//! batch by batch after an upgrade or a glossary change. The SQL is the same on both backends.

use super::capability::store_capability;
use crate::error::StoreResult;
use crate::ids::{ProjectId, TicketId};
use crate::text::entities::Entity;
use crate::text::glossary::Glossary;

store_capability! {
    /// Ticket entities and project glossaries.
    pub trait EntityStore {
        /// The project's glossary terms, in the order they were written.
        async fn glossary(&self, project: ProjectId) -> StoreResult<Vec<String>>;
        /// Replaces the project's glossary and, when it changed, asks for its tickets'
        /// entities to be extracted again (one transaction). Answers whether it changed.
        async fn set_glossary(&self, project: ProjectId, glossary: &Glossary) -> StoreResult<bool>;
        /// The entities stored with a ticket, as the ticket page shows them.
        async fn stored_entities(&self, project: ProjectId, ticket: TicketId) -> StoreResult<Vec<Entity>>;
        /// Asks for the entities of this project's tickets (every project's when `None`) to
        /// be extracted again; answers how many projects were asked for.
        async fn request_entity_rebuild(&self, project: Option<ProjectId>) -> StoreResult<u64>;
        /// Re-extracts the entities of at most `limit` tickets of one project that waits for
        /// a rebuild, in one transaction; `None` when no project waits.
        async fn rebuild_entities_step(&self, limit: u32) -> StoreResult<Option<RebuildStep>>;
    }
}

/// What one step of an entity rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildStep {
    pub project: ProjectId,
    /// Tickets whose entities were extracted again.
    pub tickets: u64,
    /// Whether the project's rebuild is finished (or was overtaken by a newer request,
    /// which the next step starts from the beginning).
    pub done: bool,
}

pub(crate) const SELECT_GLOSSARY: &str =
    "SELECT term FROM glossary_terms WHERE project_id = $1 ORDER BY position";
pub(crate) const DELETE_GLOSSARY: &str = "DELETE FROM glossary_terms WHERE project_id = $1";
pub(crate) const INSERT_GLOSSARY_TERM: &str =
    "INSERT INTO glossary_terms (project_id, position, term, term_key) VALUES ($1, $2, $3, $4)";
pub(crate) const DELETE_TICKET_ENTITIES: &str = "DELETE FROM ticket_entities WHERE ticket_id = $1";
pub(crate) const INSERT_TICKET_ENTITY: &str = "INSERT INTO ticket_entities \
     (ticket_id, project_id, kind, value, value_key, position) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (ticket_id, kind, value_key) DO NOTHING";
pub(crate) const SELECT_TICKET_ENTITIES: &str = "SELECT e.kind, e.value FROM ticket_entities e \
     JOIN tickets t ON t.id = e.ticket_id \
     WHERE e.ticket_id = $1 AND t.project_id = $2 ORDER BY e.position";
// A new request restarts a rebuild in progress from the first ticket.
pub(crate) const REQUEST_REBUILD: &str = "INSERT INTO entity_rebuilds \
     (project_id, after_ticket_id, generation) VALUES ($1, 0, 1) \
     ON CONFLICT (project_id) DO UPDATE SET after_ticket_id = 0, \
     generation = entity_rebuilds.generation + 1";
pub(crate) const REBUILD_TICKETS: &str = "SELECT id, subject, body FROM tickets \
     WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3";
// Both only touch the request this step read: a newer one (a glossary changed meanwhile)
// keeps its own place.
pub(crate) const ADVANCE_REBUILD: &str = "UPDATE entity_rebuilds SET after_ticket_id = $3 \
     WHERE project_id = $1 AND generation = $2";
pub(crate) const FINISH_REBUILD: &str =
    "DELETE FROM entity_rebuilds WHERE project_id = $1 AND generation = $2";

/// A ticket's entities as rows: (kind, value, value key, position), each (kind, key) once.
pub(crate) fn entity_rows(entities: &[Entity]) -> Vec<(&'static str, &str, String, i32)> {
    let mut rows: Vec<(&'static str, &str, String, i32)> = Vec::with_capacity(entities.len());
    for entity in entities {
        let key = crate::text::entities::value_key(&entity.text);
        let kind = entity.kind.as_str();
        if !rows
            .iter()
            .any(|(k, _, existing, _)| *k == kind && *existing == key)
        {
            let position = i32::try_from(rows.len()).unwrap_or(i32::MAX);
            rows.push((kind, entity.text.as_str(), key, position));
        }
    }
    rows
}
