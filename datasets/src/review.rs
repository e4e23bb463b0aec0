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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
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
    /// Labelled tickets waiting for a second person's answer (double labelling).
    pub second_opinions_open: u64,
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
    pub kind: AnswerKind,
}

/// What a recorded answer was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnswerKind {
    /// A person labelling a ticket: the labels change to the answer.
    Answer,
    /// The blind second answer of a double-labelled ticket: recorded for agreement, the
    /// labels stay as the first person left them until an adjudicator decides.
    SecondOpinion,
    /// An adjudicator's final word on a ticket people disagreed on: the labels change, and
    /// it is left out of agreement figures (it is not an independent rater).
    Adjudication,
}

impl AnswerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Answer => "answer",
            AnswerKind::SecondOpinion => "second-opinion",
            AnswerKind::Adjudication => "adjudication",
        }
    }

    /// The stored spelling back; an unknown one reads as a plain answer rather than failing
    /// a whole listing.
    pub fn parse(text: &str) -> AnswerKind {
        match text {
            "second-opinion" => AnswerKind::SecondOpinion,
            "adjudication" => AnswerKind::Adjudication,
            _ => AnswerKind::Answer,
        }
    }
}

/// The queue strategy name second-opinion tickets are handed out under.
pub const SECOND_OPINION_STRATEGY: &str = "second-opinion";

/// How a project reviews: the share of labelled tickets a second person labels again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewSettings {
    /// 0 (nobody double-labels) to 1 (every labelled ticket gets a second answer).
    #[schema(minimum = 0, maximum = 1)]
    pub double_label_share: f64,
}

impl Default for ReviewSettings {
    /// Off until someone chooses a share: a team of one person could never answer twice.
    fn default() -> Self {
        ReviewSettings {
            double_label_share: 0.0,
        }
    }
}

impl ReviewSettings {
    /// Refuses shares outside 0..=1 (and NaN).
    pub fn validate(&self) -> Result<(), crate::ValidationError> {
        if (0.0..=1.0).contains(&self.double_label_share) {
            Ok(())
        } else {
            Err(crate::ValidationError::field(
                "double_label_share",
                format!("must be between 0 and 1, got {}", self.double_label_share),
            ))
        }
    }

    /// Whether this ticket is in the double-labelled sample. Deterministic per ticket (a hash
    /// of its id, not a coin toss at labelling time), so the sample is reproducible and a
    /// relabelled ticket does not get a second chance to be drawn.
    pub fn samples(&self, ticket: TicketId) -> bool {
        if self.double_label_share <= 0.0 {
            return false;
        }
        // splitmix64: consecutive ids spread evenly over the range.
        let mut z = (ticket.0 as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z as f64 / u64::MAX as f64) < self.double_label_share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_takes_about_the_configured_share_and_is_stable() {
        let settings = ReviewSettings {
            double_label_share: 0.2,
        };
        let drawn = (1..=10_000)
            .filter(|id| settings.samples(TicketId(*id)))
            .count();
        assert!((1_800..=2_200).contains(&drawn), "{drawn} of 10000");
        assert!(
            (1..=100).all(|id| settings.samples(TicketId(id)) == settings.samples(TicketId(id)))
        );
        let none = ReviewSettings::default();
        assert!((1..=1_000).all(|id| !none.samples(TicketId(id))));
        let all = ReviewSettings {
            double_label_share: 1.0,
        };
        assert!((1..=1_000).all(|id| all.samples(TicketId(id))));
    }

    #[test]
    fn shares_outside_zero_to_one_are_refused() {
        for bad in [-0.1, 1.5, f64::NAN] {
            assert!(
                ReviewSettings {
                    double_label_share: bad
                }
                .validate()
                .is_err()
            );
        }
        assert!(
            ReviewSettings {
                double_label_share: 0.25
            }
            .validate()
            .is_ok()
        );
    }
}
