//! Tickets: what arrives from a help desk, stored once per (project, source, external id).

use crate::error::ValidationError;
use crate::ids::{ProjectId, TicketId};
use crate::label::Label;
use crate::limits;
use crate::names::TagName;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

pub use crate::limits::{MAX_BODY_BYTES, MAX_KEY_CHARS, MAX_SUBJECT_CHARS};

/// Which half of the dataset a ticket belongs to; fixed when the ticket is first stored, so
/// every model version is evaluated on the same held-out tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
        }
    }
}

impl FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Self::Train),
            "test" => Ok(Self::Test),
            other => Err(format!("unknown split {other:?} (expected train or test)")),
        }
    }
}

/// A stored ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ticket {
    pub id: TicketId,
    pub project_id: ProjectId,
    pub source: String,
    pub external_id: String,
    pub subject: String,
    pub body: String,
    /// Requester, product, priority and whatever else the source system sent.
    pub metadata: serde_json::Value,
    pub split: Split,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Subject and body as one text, the way every model reads a ticket: training, serving,
/// scoring and evaluation all build their input here, so they can never drift apart. Both
/// are normalised (`crate::text`: HTML to text, quoted replies, signatures and long traces
/// cut, whitespace collapsed); the stored ticket keeps its raw text.
pub fn model_text(subject: &str, body: &str) -> String {
    format!(
        "{}\n{}",
        crate::text::normalise_subject(subject),
        crate::text::normalise_body(body)
    )
}

impl Ticket {
    /// This ticket's [`model_text`].
    pub fn text(&self) -> String {
        model_text(&self.subject, &self.body)
    }
}

impl NewTicket {
    /// This ticket's [`model_text`], the same as once it is stored.
    pub fn text(&self) -> String {
        model_text(&self.subject, &self.body)
    }
}

/// A ticket as it arrives, before it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTicket {
    pub source: String,
    pub external_id: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    #[serde(default = "empty_object")]
    pub metadata: serde_json::Value,
    /// When the ticket was created in its source system; now when absent.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Used only when the ticket is first stored; a stored ticket keeps its split.
    pub split: Split,
}

/// Replaces NUL characters, which neither database can store in text, with U+FFFD. Real
/// tickets get them from pasted binary logs; the rest of the text is worth keeping.
pub fn replace_nul_characters(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text
    }
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl NewTicket {
    /// Checks the ticket against `crate::limits` and the rules of the domain.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_key("source", &self.source)?;
        validate_key("external_id", &self.external_id)?;
        limits::check_chars("subject", &self.subject, MAX_SUBJECT_CHARS)?;
        if self.body.len() > MAX_BODY_BYTES {
            return Err(ValidationError::field(
                "body",
                format!(
                    "{} bytes is over the limit of {} KiB",
                    self.body.len(),
                    MAX_BODY_BYTES / 1024
                ),
            ));
        }
        limits::check_no_nul("body", &self.body)?;
        if self.subject.trim().is_empty() && self.body.trim().is_empty() {
            return Err(ValidationError::field(
                "subject",
                "subject and body are both empty",
            ));
        }
        limits::check_metadata(&self.metadata)?;
        if let Some(created_at) = &self.created_at {
            limits::check_date("created_at", created_at)?;
        }
        Ok(())
    }
}

fn validate_key(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::field(field, "is empty"));
    }
    limits::check_chars(field, value, MAX_KEY_CHARS)
}

/// The result of storing one ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpsertedTicket {
    pub id: TicketId,
    /// False when a ticket with the same key was already stored and has been updated.
    pub created: bool,
}

/// A ticket with its labels and the tags that currently apply to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LabelledTicket {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub labels: Vec<Label>,
    /// The tags in force: a person's labels win over imported ones, which win over the model's.
    pub tags: Vec<TagName>,
}

impl LabelledTicket {
    /// The ticket as a second labeller must see it: without anyone's human labels (their
    /// answer has to be independent), tags in force recomputed from the other sources.
    pub fn without_human_labels(mut self) -> LabelledTicket {
        self.labels
            .retain(|label| label.source != crate::label::LabelSource::Human);
        self.tags = crate::label::tags_in_force(&self.labels);
        self
    }
}

/// Filters for listing tickets; all are optional and combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TicketQuery {
    /// Case-insensitive substring of subject or body.
    pub text: Option<String>,
    /// Tickets carrying this tag (from any label source).
    pub tag: Option<TagName>,
    pub split: Option<Split>,
    pub source: Option<String>,
    /// Only tickets with no label at all.
    #[serde(default)]
    pub unlabelled: bool,
    /// Tickets with this entity (`kind` or `kind:value`).
    #[serde(default)]
    pub entity: Option<crate::text::entities::EntityFilter>,
    /// Newest first; at most this many (capped at 500).
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

impl TicketQuery {
    pub const MAX_LIMIT: u32 = 500;

    pub fn effective_limit(&self) -> i64 {
        i64::from(self.limit.unwrap_or(50).min(Self::MAX_LIMIT))
    }

    /// Checks the filters against `crate::limits`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(text) = &self.text {
            limits::check_chars("q", text, limits::MAX_SEARCH_CHARS)?;
        }
        if let Some(source) = &self.source {
            limits::check_chars("source", source, MAX_KEY_CHARS)?;
        }
        Ok(())
    }
}
