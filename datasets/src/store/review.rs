//! The review queue's SQL, the same on both databases. The macro expands inside each
//! backend's `impl Store` (where `Db` names the sqlx database and `self.pool` its pool); its
//! one argument is the row-locking clause of the lease query: PostgreSQL skips rows another
//! transaction is leasing (`FOR UPDATE SKIP LOCKED`), SQLite needs nothing because it has one
//! writer at a time.
//!
//! A ticket a person has labelled leaves the queue at once because every read excludes
//! tickets with a human label. Double labelling keeps its own table (`second_opinions`):
//! its tickets are handed out first, never to the person who labelled them first.

use super::capability::store_capability;
use crate::error::StoreError;
use crate::error::StoreResult;
use crate::ids::ProjectId;
use crate::ids::TicketId;
use crate::review::{MAX_LEASE_COUNT, MAX_LEASE_SECONDS, NewQueueEntry, QueueEntry};
use crate::review::{ReviewQueueStats, ReviewSettings};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// The SQL condition "no person has labelled this queue row's ticket" (alias `q`): no human
/// label row and no recorded answer (an answer of "no tags" leaves only the latter).
pub(crate) const NOT_HUMAN_LABELLED: &str = "NOT EXISTS (SELECT 1 FROM labels l WHERE l.ticket_id = q.ticket_id AND l.source = 'human') \
     AND NOT EXISTS (SELECT 1 FROM label_submissions s WHERE s.ticket_id = q.ticket_id)";
pub(crate) const QUEUE_COLUMNS: &str =
    "ticket_id, rank, score, strategy, reason, leased_by, lease_expires_ms";

/// A queue row as both databases return it.
#[derive(sqlx::FromRow)]
pub(crate) struct QueueRow {
    pub(crate) ticket_id: i64,
    pub(crate) rank: i64,
    pub(crate) score: f32,
    pub(crate) strategy: String,
    pub(crate) reason: String,
    pub(crate) leased_by: Option<String>,
    pub(crate) lease_expires_ms: Option<i64>,
}

impl From<QueueRow> for QueueEntry {
    fn from(row: QueueRow) -> Self {
        QueueEntry {
            ticket_id: TicketId(row.ticket_id),
            rank: row.rank,
            score: row.score,
            strategy: row.strategy,
            reason: row.reason,
            leased_by: row.leased_by,
            lease_expires_at: row
                .lease_expires_ms
                .and_then(DateTime::from_timestamp_millis),
        }
    }
}

/// A second-opinion row as the lease statements return it.
#[derive(sqlx::FromRow)]
pub(crate) struct SecondOpinionRow {
    pub(crate) ticket_id: i64,
    pub(crate) leased_by: Option<String>,
    pub(crate) lease_expires_ms: Option<i64>,
}

/// Second-opinion tickets as queue entries, ahead of every ranked one (rank 0): they are few,
/// and the agreement figures wait on them.
pub(crate) fn second_opinion_entries(rows: Vec<SecondOpinionRow>) -> Vec<QueueEntry> {
    rows.into_iter()
        .map(|row| QueueEntry {
            ticket_id: TicketId(row.ticket_id),
            rank: 0,
            score: 0.0,
            strategy: crate::review::SECOND_OPINION_STRATEGY.to_string(),
            reason: "second opinion: someone else labelled this ticket; your independent answer \
                     measures how much labellers agree (it does not change their labels)"
                .to_string(),
            leased_by: row.leased_by,
            lease_expires_at: row
                .lease_expires_ms
                .and_then(DateTime::from_timestamp_millis),
        })
        .collect()
}

/// A stored answer as both databases return it.
pub(crate) type SubmissionRow = (
    i64,
    String,
    sqlx::types::Json<Vec<String>>,
    DateTime<Utc>,
    String,
);

pub(crate) fn submissions(rows: Vec<SubmissionRow>) -> Vec<crate::review::LabelSubmission> {
    rows.into_iter()
        .map(
            |(ticket, set_by, tags, at, kind)| crate::review::LabelSubmission {
                ticket_id: TicketId(ticket),
                set_by,
                tags: tags.0,
                at,
                kind: crate::review::AnswerKind::parse(&kind),
            },
        )
        .collect()
}

/// Entries in rank order; leases that have run out are shown as free.
pub(crate) fn queue_entries(rows: Vec<QueueRow>, now_ms: i64) -> Vec<QueueEntry> {
    let mut entries: Vec<QueueEntry> = rows
        .into_iter()
        .map(|mut row| {
            if row.lease_expires_ms.is_some_and(|at| at <= now_ms) {
                row.leased_by = None;
                row.lease_expires_ms = None;
            }
            QueueEntry::from(row)
        })
        .collect();
    entries.sort_by_key(|e| e.rank);
    entries
}

/// Refuses entries the queue could not rank sensibly.
pub(crate) fn validate_entries(entries: &[NewQueueEntry]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for entry in entries {
        if !seen.insert(entry.ticket_id) {
            return Err(crate::ValidationError::field(
                "entries",
                format!("ticket {} is listed twice", entry.ticket_id),
            )
            .into());
        }
        if !entry.score.is_finite() {
            return Err(crate::ValidationError::field(
                "entries",
                format!(
                    "ticket {} has a score that is not a number",
                    entry.ticket_id
                ),
            )
            .into());
        }
        if entry.strategy.trim().is_empty() {
            return Err(crate::ValidationError::field(
                "entries",
                format!("ticket {} has no strategy", entry.ticket_id),
            )
            .into());
        }
    }
    Ok(())
}

/// Refuses lease requests that are empty, too big, or would never expire in practice.
pub(crate) fn validate_lease(user: &str, count: u32, lease_seconds: u32) -> Result<(), StoreError> {
    if user.trim().is_empty() {
        return Err(crate::ValidationError::field("user", "is empty").into());
    }
    crate::limits::check_chars("user", user, crate::limits::MAX_ACTOR_CHARS)?;
    if count == 0 || count > MAX_LEASE_COUNT {
        return Err(crate::ValidationError::field(
            "count",
            format!("must be 1 to {MAX_LEASE_COUNT}, got {count}"),
        )
        .into());
    }
    if lease_seconds == 0 || lease_seconds > MAX_LEASE_SECONDS {
        return Err(crate::ValidationError::field(
            "lease_seconds",
            format!("must be 1 to {MAX_LEASE_SECONDS}, got {lease_seconds}"),
        )
        .into());
    }
    Ok(())
}

/// Now as Unix milliseconds, the unit lease expiry is stored in.
pub(crate) fn now_millis() -> (DateTime<Utc>, i64) {
    let now = Utc::now();
    (now, now.timestamp_millis())
}

/// Expands to the review-queue methods of `Store`; `REVIEW_LOCK` is the row-locking clause of the
/// candidate query (see the module comment).
pub(crate) const OPEN_SECOND_OPINION: &str = "SELECT first_by FROM second_opinions \
     WHERE project_id = $1 AND ticket_id = $2 AND answered_at IS NULL";

store_capability! {
    /// The review queue: leases, answers, double labelling and its settings.
    pub trait ReviewStore {
        /// Replaces the project's review queue with a freshly ranked list (the score job's
        /// output, best first); live leases on tickets that stay are kept.
        async fn replace_review_queue(
            &self,
            project: ProjectId,
            entries: &[NewQueueEntry],
        ) -> StoreResult<u64>;
        /// Leases up to `count` tickets to `user` for `lease_seconds`: first the user's own live
        /// leases, then the best-ranked entries nobody holds (expired leases count as free);
        /// never a ticket a person has labelled. Two users never get the same ticket while a
        /// lease lives.
        async fn lease_review_tickets(
            &self,
            project: ProjectId,
            user: &str,
            count: u32,
            lease_seconds: u32,
        ) -> StoreResult<Vec<QueueEntry>>;
        /// Gives a leased ticket back (skip); the same user is not handed it again at once.
        async fn release_review_lease(
            &self,
            project: ProjectId,
            ticket: TicketId,
            user: &str,
        ) -> StoreResult<()>;
        /// Every answer people gave the project's tickets, oldest first.
        async fn label_submissions(
            &self,
            project: ProjectId,
        ) -> StoreResult<Vec<crate::review::LabelSubmission>>;
        /// Who gave the first answer of a ticket waiting for a blind second opinion (none: no
        /// second opinion is open on it). Pages hide people's labels of such a ticket from other
        /// labellers until it is answered.
        async fn open_second_opinion(
            &self,
            project: ProjectId,
            ticket: TicketId,
        ) -> StoreResult<Option<String>>;
        /// Every answer given to one ticket, oldest first (empty for a ticket of another project).
        async fn ticket_submissions(
            &self,
            project: ProjectId,
            ticket: TicketId,
        ) -> StoreResult<Vec<crate::review::LabelSubmission>>;
        /// Answers of the tickets two or more people answered (adjudications included, so a
        /// caller can tell which disagreements are settled), oldest first: what agreement and the
        /// adjudication list are computed from, without reading every single-rater answer.
        async fn multi_rater_submissions(
            &self,
            project: ProjectId,
        ) -> StoreResult<Vec<crate::review::LabelSubmission>>;
        /// The project's review settings (defaults when never set).
        async fn review_settings(&self, project: ProjectId) -> StoreResult<ReviewSettings>;
        /// Changes the project's review settings; tickets already drawn for a second opinion stay.
        async fn set_review_settings(
            &self,
            project: ProjectId,
            settings: &ReviewSettings,
        ) -> StoreResult<ReviewSettings>;
        /// Pending and leased entries, and tickets labelled since the last scoring.
        async fn review_queue_stats(&self, project: ProjectId) -> StoreResult<ReviewQueueStats>;
    }
}
