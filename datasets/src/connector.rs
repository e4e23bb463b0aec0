//! Connectors as stored: which help desk, where it lives, how its labels map to the project's
//! tags, its credentials (sealed by the caller: the store never sees them in clear), the
//! tickets it delivered and the log of its deliveries.

use crate::error::ValidationError;
use crate::ids::{ConnectorId, DeliveryId, ProjectId, TicketId, WriteBackId};
use chrono::{DateTime, Utc};
pub use connectors::{LabelMapping, System};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest connector name: it is part of the webhook's URL.
pub const MAX_CONNECTOR_NAME_CHARS: usize = 64;
/// The longest base URL.
pub const MAX_BASE_URL_CHARS: usize = 2048;

/// A connector's name: unique on the server (case ignored) and safe in a URL path, because
/// the vendor posts to `/v1/connectors/{name}/webhook`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectorName(String);

impl ConnectorName {
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_CONNECTOR_NAME_CHARS {
            return Err(ValidationError::field(
                "name",
                format!("a connector name has 1 to {MAX_CONNECTOR_NAME_CHARS} characters"),
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ValidationError::field(
                "name",
                "a connector name has only letters, digits, '-', '_' and '.' (it is part of a URL)",
            ));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as uniqueness compares it.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The `source` of the tickets this connector delivers.
    pub fn ticket_source(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ConnectorName {
    type Error = ValidationError;
    fn try_from(name: String) -> Result<Self, ValidationError> {
        Self::parse(&name)
    }
}

impl From<ConnectorName> for String {
    fn from(name: ConnectorName) -> String {
        name.0
    }
}

/// What a connector is set to do, kept as JSON so a new setting needs no migration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorSettings {
    /// The ServiceNow table its records live in (`incident` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Whether the model's tags are written back to the help desk.
    #[serde(default)]
    pub write_back: bool,
    /// The ServiceNow field our tags are written to (`u_auto_tags` when unset);
    /// `work_notes` appends a work note instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The most requests a minute sent to the help desk (100 when unset): under the
    /// vendor's own limit, so a backlog never locks the customer's other integrations out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Project tags ↔ the vendor's tags or labels.
    #[serde(default)]
    pub mapping: LabelMapping,
    /// Whether a person's tags set in the workbench or the API are written back too (on when
    /// unset; only while write-back is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrections: Option<bool>,
    /// Fields beside the tags/labels/category whose values are imported as labels where they
    /// match project tags (Jira `issuetype`, `priority`, `components`; ServiceNow
    /// `subcategory`, `priority`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import_fields: Vec<String>,
}

impl ConnectorSettings {
    /// Whether people's corrections are written back.
    pub fn writes_corrections(&self) -> bool {
        self.write_back && self.corrections.unwrap_or(true)
    }
}

/// A connector to create.
#[derive(Clone, PartialEq, Eq)]
pub struct NewConnector {
    pub project_id: ProjectId,
    pub name: ConnectorName,
    pub system: System,
    pub base_url: String,
    pub settings: ConnectorSettings,
    /// The credentials, already sealed with the server's key.
    pub sealed_credentials: Vec<u8>,
}

impl NewConnector {
    pub fn validate(&self) -> Result<(), ValidationError> {
        let url = self.base_url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.chars().count() > MAX_BASE_URL_CHARS
            || url.chars().any(char::is_whitespace)
        {
            return Err(ValidationError::field(
                "base_url",
                format!(
                    "an http:// or https:// URL of at most {MAX_BASE_URL_CHARS} characters, without spaces"
                ),
            ));
        }
        if self.sealed_credentials.is_empty() {
            return Err(ValidationError::field("credentials", "are missing"));
        }
        if let Some(table) = &self.settings.table
            && (table.is_empty() || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(ValidationError::field(
                "table",
                "a ServiceNow table name has only letters, digits and '_'",
            ));
        }
        Ok(())
    }
}

/// A stored connector.
#[derive(Clone, PartialEq, Eq)]
pub struct Connector {
    pub id: ConnectorId,
    pub project_id: ProjectId,
    pub name: ConnectorName,
    pub system: System,
    pub base_url: String,
    pub settings: ConnectorSettings,
    /// Sealed credentials; only the server's key opens them.
    pub sealed_credentials: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

// Sealed or not, credentials stay out of logs.
impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("id", &self.id)
            .field("project_id", &self.project_id)
            .field("name", &self.name)
            .field("system", &self.system)
            .field("base_url", &self.base_url)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for NewConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewConnector")
            .field("name", &self.name)
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Claimed and being processed.
    Received,
    /// Its ticket was stored.
    Stored,
    /// Not about a ticket: acknowledged and dropped.
    Ignored,
    /// Older than the ticket already stored: changed nothing.
    Stale,
    /// A reference to a ticket that has to be fetched from the help desk.
    AwaitingFetch,
}

stored_enum!(DeliveryStatus, "delivery status", {
    Received => "received",
    Stored => "stored",
    Ignored => "ignored",
    Stale => "stale",
    AwaitingFetch => "awaiting_fetch",
});

/// One logged delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub connector_id: ConnectorId,
    pub dedupe_key: String,
    pub event: String,
    pub status: DeliveryStatus,
    pub ticket_id: Option<TicketId>,
    pub received_at: DateTime<Utc>,
}

/// The outcome of claiming a delivery's dedupe key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryClaim {
    /// First time seen: process it.
    New(DeliveryId),
    /// Seen before (a vendor's retry or a duplicate): store nothing.
    Duplicate(DeliveryRecord),
}

/// The outcome of claiming a delivery and storing its ticket together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimedTicket {
    /// First time seen: claimed, and its ticket stored (or left as it was, when `Stale`).
    New {
        delivery: DeliveryId,
        stored: ConnectorTicketStored,
    },
    /// Seen before (a vendor's retry or a duplicate): nothing stored.
    Duplicate(DeliveryRecord),
}

/// What the store remembers of a ticket a connector delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorTicket {
    pub ticket_id: TicketId,
    /// The vendor's change time of the delivery last stored.
    pub vendor_updated_at: Option<DateTime<Utc>>,
    /// The labels our write-back wrote to the vendor or is writing: a webhook carrying them
    /// is our own echo, and they are never queued again.
    pub written_labels: Vec<String>,
}

/// A help desk's ticket to store, with what its connector knows of it.
#[derive(Debug, Clone)]
pub struct ConnectorTicketWrite {
    pub ticket: crate::NewTicket,
    /// The vendor's change time: a ticket stored with a newer one is left as it is.
    pub vendor_updated_at: Option<DateTime<Utc>>,
    /// The project tags the vendor's labels stand for (imported labels, set by the connector).
    pub imported: Vec<crate::TagId>,
    /// The model's verdict when the ticket is tagged as it is stored (a backfill): the
    /// version and the applied tags with their probabilities. `None`: tagged later by a job.
    pub model_labels: Option<(crate::ModelVersionId, Vec<(crate::TagId, f32)>)>,
}

/// What storing a help desk's ticket did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorTicketStored {
    /// Stored (created or updated).
    Stored(crate::UpsertedTicket),
    /// A newer version was stored already: nothing changed.
    Stale(crate::TicketId),
}

/// Where a write-back stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteBackStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The vendor has the tags.
    Written,
    /// Given up, with the reason in `last_error`.
    Failed,
}

stored_enum!(WriteBackStatus, "write-back status", {
    Pending => "pending",
    Written => "written",
    Failed => "failed",
});

/// One write of our tags to a help desk's ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBack {
    pub id: WriteBackId,
    pub connector_id: ConnectorId,
    pub external_id: String,
    pub ticket_id: TicketId,
    /// The vendor labels this write adds.
    pub labels: Vec<String>,
    pub status: WriteBackStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What queueing labels for a write-back did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteBackQueued {
    /// Every label was written or is being written already.
    Nothing,
    /// A new write: its job is to be queued.
    New(WriteBackId),
    /// The labels joined a write already pending (its job is queued).
    Joined(WriteBackId),
}

/// Where a backfill stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillStatus {
    Running,
    Done,
    /// Stopped on a fault, with the reason; running it again resumes.
    Failed,
}

stored_enum!(BackfillStatus, "backfill status", {
    Running => "running",
    Done => "done",
    Failed => "failed",
});

/// A connector's backfill of the help desk's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    pub connector_id: ConnectorId,
    /// Tickets created since then are read.
    pub since: DateTime<Utc>,
    /// The next page's cursor; `None` before the first page (and after the last).
    pub cursor: Option<String>,
    pub status: BackfillStatus,
    pub pages: u64,
    pub tickets: u64,
    pub skipped: u64,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What became of one attempt at a write-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBackAttempt {
    Written,
    /// Try again at `at`, for `reason` (rate limit, a fault that may heal).
    Retry {
        at: DateTime<Utc>,
        reason: String,
    },
    /// Given up: the labels are forgotten as written, so a later model may queue them again.
    Failed {
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn connector_names_are_url_safe() {
        assert!(ConnectorName::parse("acme-zendesk_2.eu").is_ok());
        assert_eq!(
            ConnectorName::parse(" Acme ").map(|n| n.folded()),
            Ok("acme".into())
        );
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(65)] {
            assert!(ConnectorName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settings_read_with_defaults() {
        let settings: ConnectorSettings = serde_json::from_str("{}").unwrap_or_default();
        assert!(!settings.write_back);
        assert_eq!(settings.table, None);
        assert_eq!(
            DeliveryStatus::from_str("awaiting_fetch"),
            Ok(DeliveryStatus::AwaitingFetch)
        );
    }
}
