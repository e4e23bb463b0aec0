//! Labels: a person's answers, a model's verdicts and the history of both. Their SQL is
//! in `sql/labels.rs`.

use super::capability::store_capability;
use super::rows::corrupt;
use crate::error::{StoreError, StoreResult};
use crate::ids::{ModelVersionId, ProjectId, TagId, TicketId};
use crate::label::{Label, LabelEvent};
use crate::names::TagName;
use crate::review::AnswerKind;
use crate::ticket::LabelledTicket;
use chrono::{DateTime, Utc};

store_capability! {
    /// Labels on tickets, from people and from models.
    pub trait LabelStore {
        /// Sets the complete set of tags a person says the ticket carries; tags that other
        /// sources gave it and the person left out are recorded as rejected. Records the whole
        /// answer (`label_submissions`) and takes the ticket out of the review queue.
        async fn set_human_labels(
            &self,
            project: ProjectId,
            ticket: TicketId,
            tags: &[TagName],
            user: &str,
        ) -> StoreResult<LabelledTicket>;
        /// `set_human_labels` with the answer's kind. An `Answer` from the holder of a live
        /// second-opinion lease is recorded as a `SecondOpinion` and leaves the labels alone; an
        /// ordinary answer may draw the ticket into the double-labelled sample (`ReviewSettings`);
        /// an `Adjudication` sets the labels and is kept out of agreement figures.
        async fn record_human_answer(
            &self,
            project: ProjectId,
            ticket: TicketId,
            tags: &[TagName],
            user: &str,
            kind: AnswerKind,
        ) -> StoreResult<LabelledTicket>;
        /// Replaces the tags a model version applied to a ticket.
        async fn set_model_labels(
            &self,
            project: ProjectId,
            ticket: TicketId,
            version: ModelVersionId,
            tags: &[(TagId, f32)],
        ) -> StoreResult<()>;
        async fn label_history(
            &self,
            project: ProjectId,
            ticket: TicketId,
        ) -> StoreResult<Vec<LabelEvent>>;
    }
}

pub(crate) const LABEL_SELECT: &str = "SELECT l.ticket_id, l.tag_id, t.name AS tag, l.source, l.set_by, l.confidence, \
     l.present, l.updated_at FROM labels l JOIN tags t ON t.id = l.tag_id";

#[derive(sqlx::FromRow)]
pub(crate) struct LabelRow {
    pub(crate) ticket_id: i64,
    pub(crate) tag_id: i64,
    pub(crate) tag: String,
    pub(crate) source: String,
    pub(crate) set_by: String,
    pub(crate) confidence: Option<f32>,
    pub(crate) present: bool,
    pub(crate) updated_at: DateTime<Utc>,
}

impl TryFrom<LabelRow> for Label {
    type Error = StoreError;
    fn try_from(row: LabelRow) -> Result<Self, StoreError> {
        Ok(Label {
            ticket_id: TicketId(row.ticket_id),
            tag_id: TagId(row.tag_id),
            tag: TagName::parse(&row.tag).map_err(|e| corrupt("tag name", e))?,
            source: row.source.parse().map_err(|e| corrupt("label source", e))?,
            set_by: row.set_by,
            confidence: row.confidence,
            present: row.present,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LabelEventRow {
    pub(crate) ticket_id: i64,
    pub(crate) tag: String,
    pub(crate) source: String,
    pub(crate) set_by: String,
    pub(crate) confidence: Option<f32>,
    pub(crate) action: String,
    pub(crate) at: DateTime<Utc>,
}

impl TryFrom<LabelEventRow> for LabelEvent {
    type Error = StoreError;
    fn try_from(row: LabelEventRow) -> Result<Self, StoreError> {
        Ok(LabelEvent {
            ticket_id: TicketId(row.ticket_id),
            tag: TagName::parse(&row.tag).map_err(|e| corrupt("tag name", e))?,
            source: row.source.parse().map_err(|e| corrupt("label source", e))?,
            set_by: row.set_by,
            confidence: row.confidence,
            action: row.action.parse().map_err(|e| corrupt("label action", e))?,
            at: row.at,
        })
    }
}
