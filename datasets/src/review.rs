//! The review queue: the tickets the active-learning engine wants a person to label next,
//! ranked, each with the reason it was chosen, handed out under leases that expire so two
//! labellers never work on the same ticket at once.

use crate::ids::TicketId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest lease a labeller may ask for: a day. A longer one would hide a ticket from
/// everyone else after its holder walked away.
pub const MAX_LEASE_SECONDS: u32 = 24 * 60 * 60;
/// Most tickets one lease request may take.
pub const MAX_LEASE_COUNT: u32 = 500;

/// One ranked ticket of the queue as the score job writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewQueueEntry {
    pub ticket_id: TicketId,
    /// How much labelling this ticket is expected to help; higher is better.
    pub score: f32,
    /// The selection strategy that chose it (`margin`, `entropy`, …).
    pub strategy: String,
    /// Why, in words a labeller understands ("margin 0.03 between Bug and Question").
    pub reason: String,
}

/// A ticket in the queue with its rank (1 = label first) and who holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub ticket_id: TicketId,
    pub rank: i64,
    pub score: f32,
    pub strategy: String,
    pub reason: String,
    pub leased_by: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// Counts the retraining policy and the workbench read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReviewQueueStats {
    /// Entries nobody holds and nobody has labelled.
    pub pending: u64,
    /// Entries under a live lease.
    pub leased: u64,
    /// Tickets of the project a person labelled since the queue was last scored (all of
    /// them when it never was): what the "retrain after N labels" policy counts.
    pub labelled_since_scoring: u64,
    /// When the queue was last replaced by a scoring, if ever.
    pub scored_at: Option<DateTime<Utc>>,
}

/// One whole answer a person gave a ticket (`set_human_labels`), kept even when it changed
/// no label: the record agreement between labellers is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSubmission {
    pub ticket_id: TicketId,
    pub set_by: String,
    /// Tag names as the taxonomy spelled them then; empty for "none of these tags".
    pub tags: Vec<String>,
    pub at: DateTime<Utc>,
}
