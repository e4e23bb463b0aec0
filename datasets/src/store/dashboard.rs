//! Store methods of the web workbench: accounts and login sessions, the ticket browser's
//! filtered pages, and the dashboard's aggregates. Like `common.rs`, the SQL exists once and
//! expands inside each backend's `impl Store`; the two places the dialects differ (full-text
//! search and the calendar day of a timestamp) come from a small dialect module per backend.

use super::capability::store_capability;
use crate::error::StoreError;
use crate::error::StoreResult;
use crate::ids::ProjectId;
use crate::ids::TagId;
use crate::label::LabelSource;
use crate::ticket::LabelledTicket;
use crate::user::{Role, User, Username};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The most tickets one page of the browser shows.
pub const MAX_BROWSE_PAGE: u32 = 200;

/// What the ticket browser asks for. Every filter is optional; they combine with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketFilter {
    /// Words that must all occur in the subject or body (full-text, whole words).
    pub text: Option<String>,
    /// Tickets a keyword rule would match: any `include` phrase and no `exclude` phrase.
    pub rule: Option<crate::tag::KeywordRules>,
    /// Tickets carrying this tag (a present label from any source, or from `label_source`).
    pub tag: Option<TagId>,
    /// The help desk the ticket came from.
    pub source: Option<String>,
    /// Tickets with a present label from this source (on `tag` when given).
    pub label_source: Option<LabelSource>,
    /// Tickets with a model label whose confidence is in this range (on `tag` when given).
    pub min_confidence: Option<f32>,
    pub max_confidence: Option<f32>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// Tickets with this entity stored (of its kind, and of its value in any case).
    pub entity: Option<crate::text::entities::EntityFilter>,
    pub offset: u32,
    /// Page size, at most `MAX_BROWSE_PAGE`.
    pub limit: u32,
}

impl TicketFilter {
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, MAX_BROWSE_PAGE)
    }

    /// Checks the filters against `crate::limits`.
    pub fn validate(&self) -> Result<(), crate::error::ValidationError> {
        use crate::limits;
        if let Some(text) = &self.text {
            limits::check_chars("q", text, limits::MAX_SEARCH_CHARS)?;
        }
        if let Some(rule) = &self.rule {
            rule.validate()?;
        }
        if let Some(source) = &self.source {
            limits::check_chars("source", source, limits::MAX_KEY_CHARS)?;
        }
        for (field, at) in [("from", &self.from), ("until", &self.until)] {
            if let Some(at) = at {
                limits::check_date(field, at)?;
            }
        }
        Ok(())
    }
}

/// One page of the browser; `has_more` says whether a next page exists (no total count,
/// which would cost a full scan on every page).
#[derive(Debug, Clone, PartialEq)]
pub struct TicketPage {
    pub tickets: Vec<LabelledTicket>,
    pub has_more: bool,
}

/// How many tickets carry a tag (present from any source, unless a person removed it).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TagCount {
    pub tag_id: i64,
    pub name: String,
    pub color: String,
    pub archived: bool,
    pub tickets: i64,
}

/// Tickets created on one day (UTC, `YYYY-MM-DD`) that carry a tag.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TagVolume {
    pub day: String,
    pub tag_id: i64,
    pub tickets: i64,
}

/// What people did with the tags a model applied, per tag.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TagOutcome {
    pub tag_id: i64,
    /// Tickets the model gave this tag.
    pub auto_applied: i64,
    /// … of which a person kept the tag.
    pub confirmed: i64,
    /// … of which a person removed it.
    pub corrected: i64,
}

/// Which tickets a text sample takes, by one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagCondition {
    /// Every ticket.
    Any,
    /// Tickets with the tag in force: a present label from any source that no person removed.
    With(TagId),
    /// Tickets without it in force.
    Without(TagId),
}

/// A sample of ticket texts: the newest `limit` tickets created in `[from, until)` that meet
/// `tag`. Key phrases are counted on such samples, so their cost is bounded by `limit`, not by
/// the project's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextSample {
    pub tag: TagCondition,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub limit: u32,
}

impl TextSample {
    /// The newest `limit` tickets meeting `tag`, whenever created. (Years 1 to 9999: both
    /// databases store them, and SQLite compares its text timestamps right within them.)
    pub fn any_time(tag: TagCondition, limit: u32) -> Self {
        use chrono::TimeZone;
        TextSample {
            tag,
            from: Utc
                .with_ymd_and_hms(1, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            until: Utc
                .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
                .single()
                .unwrap_or_default(),
            limit,
        }
    }
}

/// One sampled ticket's text.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SampledText {
    pub id: i64,
    pub subject: String,
    pub body: String,
}

/// Project-wide labelling figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, sqlx::FromRow)]
pub struct LabellingTotals {
    pub tickets: i64,
    /// Tickets with at least one tag applied by a model.
    pub auto_tagged: i64,
    /// Tickets a person labelled.
    pub human_labelled: i64,
}

/// A ticket's text and whether any tag is in force on it: what the dashboard's "tickets no
/// tag fits" clusters are computed from.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TicketFit {
    pub id: i64,
    pub subject: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// Some tag is in force: a present label from any source that no person removed.
    pub tagged: bool,
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: i64,
    pub(crate) username: String,
    pub(crate) role: String,
    pub(crate) created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, detail: String| {
            StoreError::Database(sqlx::Error::Decode(
                format!("stored {what} is invalid: {detail}").into(),
            ))
        };
        Ok(User {
            id: row.id,
            username: Username::parse(&row.username)
                .map_err(|e| corrupt("username", e.to_string()))?,
            role: row.role.parse::<Role>().map_err(|e| corrupt("role", e))?,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CredentialsRow {
    #[sqlx(flatten)]
    pub(crate) user: UserRow,
    pub(crate) password_hash: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    #[sqlx(flatten)]
    pub(crate) user: UserRow,
    pub(crate) csrf_token: String,
    pub(crate) expires_at: DateTime<Utc>,
}

/// The whole UTC days (`YYYY-MM-DD`, first and one past the last) that cover `[from, until)`.
pub(crate) fn day_range(from: DateTime<Utc>, until: DateTime<Utc>) -> (String, String) {
    let first = from.date_naive();
    let mut end = until.date_naive();
    if until.time() != chrono::NaiveTime::MIN {
        end = end.succ_opt().unwrap_or(end);
    }
    (
        first.format("%Y-%m-%d").to_string(),
        end.format("%Y-%m-%d").to_string(),
    )
}

/// The words of a search, lower-cased, split where the full-text tokenizers split.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// SQLite FTS5: `tickets_fts` (migrations/sqlite/0004) queried with its own syntax.
pub(crate) mod sqlite_dialect {
    /// The calendar day (UTC) of a timestamp column stored as RFC 3339 text.
    pub(crate) const DAY: &str = "substr(t.created_at, 1, 10)";

    /// Where the dashboard counts are read (migration 0006): triggers add to them in place.
    pub(crate) const TAG_DAY_COUNTS: &str = "tag_day_counts";
    pub(crate) const PROJECT_DAY_COUNTS: &str = "project_day_counts";
    /// Rows the rebuild clears; `BEGIN IMMEDIATE` already keeps every other writer out.
    pub(crate) const REBUILD_PREPARE: &[&str] = &[
        "DELETE FROM tag_day_counts WHERE project_id = $1",
        "DELETE FROM project_day_counts WHERE project_id = $1",
    ];

    /// SQLite's triggers write the counts themselves: nothing waits to be folded in.
    pub(crate) async fn fold_count_changes(
        _pool: &sqlx::SqlitePool,
        _project: crate::ids::ProjectId,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    pub(crate) fn text_condition(param: usize) -> String {
        format!("tickets.id IN (SELECT rowid FROM tickets_fts WHERE tickets_fts MATCH ${param})")
    }

    fn phrase(text: &str) -> Option<String> {
        let words = super::words(text);
        // Each word quoted, so nothing a person types is read as FTS5 syntax.
        (!words.is_empty()).then(|| format!("\"{}\"", words.join(" ")))
    }

    pub(crate) fn all_words(text: &str) -> Option<String> {
        let words = super::words(text);
        (!words.is_empty()).then(|| {
            words
                .iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(" AND ")
        })
    }

    pub(crate) fn rule(rules: &crate::tag::KeywordRules) -> Option<String> {
        let include: Vec<String> = rules.include.iter().filter_map(|p| phrase(p)).collect();
        if include.is_empty() {
            return None;
        }
        let mut query = format!("({})", include.join(" OR "));
        for exclude in rules.exclude.iter().filter_map(|p| phrase(p)) {
            query.push_str(&format!(" NOT {exclude}"));
        }
        Some(query)
    }
}

/// PostgreSQL: the stored `search_vector` column and its GIN index (migration 0006).
pub(crate) mod postgres_dialect {
    pub(crate) const DAY: &str = "to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')";

    /// The folded counts plus the changes not folded yet (migration 0006), so a read is
    /// exact whether or not the fold ran.
    pub(crate) const TAG_DAY_COUNTS: &str = "(SELECT project_id, tag_id, day, tickets, auto_applied, confirmed, corrected \
         FROM tag_day_counts UNION ALL SELECT project_id, tag_id, day, tickets, auto_applied, confirmed, corrected \
         FROM tag_day_count_changes)";
    pub(crate) const PROJECT_DAY_COUNTS: &str = "(SELECT project_id, day, tickets, auto_tagged, human_labelled \
         FROM project_day_counts UNION ALL SELECT project_id, day, tickets, auto_tagged, human_labelled \
         FROM project_day_count_changes)";
    /// The rebuild keeps label and ticket writers out until it commits (SHARE blocks
    /// writes, not reads), and clears the changes waiting to be folded.
    pub(crate) const REBUILD_PREPARE: &[&str] = &[
        "LOCK TABLE tickets, labels IN SHARE MODE",
        "DELETE FROM tag_day_counts WHERE project_id = $1",
        "DELETE FROM tag_day_count_changes WHERE project_id = $1",
        "DELETE FROM project_day_counts WHERE project_id = $1",
        "DELETE FROM project_day_count_changes WHERE project_id = $1",
    ];
    /// Advisory lock class of the fold (any constant; the project id is the object).
    const FOLD_LOCK: i32 = 6;

    /// Moves the project's pending changes into the counts, so reads stay a few hundred rows.
    /// One fold per project at a time; a reader that finds one running skips it (its read
    /// adds the pending changes anyway).
    pub(crate) async fn fold_count_changes(
        pool: &sqlx::PgPool,
        project: crate::ids::ProjectId,
    ) -> Result<(), sqlx::Error> {
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM tag_day_count_changes WHERE project_id = $1) \
             OR EXISTS (SELECT 1 FROM project_day_count_changes WHERE project_id = $1)",
        )
        .bind(project)
        .fetch_one(pool)
        .await?;
        if !pending {
            return Ok(());
        }
        let mut tx = pool.begin().await?;
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, ($2 % 2147483647)::int)")
                .bind(FOLD_LOCK)
                .bind(project)
                .fetch_one(&mut *tx)
                .await?;
        if !locked {
            return Ok(());
        }
        // ORDER BY: every fold takes the count rows in the same order.
        sqlx::query(
            "WITH moved AS (DELETE FROM tag_day_count_changes WHERE project_id = $1 \
             RETURNING project_id, tag_id, day, tickets, auto_applied, confirmed, corrected) \
             INSERT INTO tag_day_counts (project_id, tag_id, day, tickets, auto_applied, confirmed, corrected) \
             SELECT project_id, tag_id, day, SUM(tickets), SUM(auto_applied), SUM(confirmed), SUM(corrected) \
             FROM moved GROUP BY project_id, day, tag_id ORDER BY project_id, day, tag_id \
             ON CONFLICT (project_id, day, tag_id) DO UPDATE SET tickets = tag_day_counts.tickets + excluded.tickets, \
             auto_applied = tag_day_counts.auto_applied + excluded.auto_applied, \
             confirmed = tag_day_counts.confirmed + excluded.confirmed, \
             corrected = tag_day_counts.corrected + excluded.corrected",
        )
        .bind(project)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "WITH moved AS (DELETE FROM project_day_count_changes WHERE project_id = $1 \
             RETURNING project_id, day, tickets, auto_tagged, human_labelled) \
             INSERT INTO project_day_counts (project_id, day, tickets, auto_tagged, human_labelled) \
             SELECT project_id, day, SUM(tickets), SUM(auto_tagged), SUM(human_labelled) \
             FROM moved GROUP BY project_id, day ORDER BY project_id, day \
             ON CONFLICT (project_id, day) DO UPDATE SET tickets = project_day_counts.tickets + excluded.tickets, \
             auto_tagged = project_day_counts.auto_tagged + excluded.auto_tagged, \
             human_labelled = project_day_counts.human_labelled + excluded.human_labelled",
        )
        .bind(project)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    pub(crate) fn text_condition(param: usize) -> String {
        format!("search_vector @@ to_tsquery('simple', ${param})")
    }

    fn phrase(text: &str) -> Option<String> {
        let words = super::words(text);
        // Quoted lexemes: nothing a person types is read as tsquery syntax.
        (!words.is_empty()).then(|| {
            let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
            format!("({})", quoted.join(" <-> "))
        })
    }

    pub(crate) fn all_words(text: &str) -> Option<String> {
        let words = super::words(text);
        (!words.is_empty()).then(|| {
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" & ")
        })
    }

    pub(crate) fn rule(rules: &crate::tag::KeywordRules) -> Option<String> {
        let include: Vec<String> = rules.include.iter().filter_map(|p| phrase(p)).collect();
        if include.is_empty() {
            return None;
        }
        let mut query = format!("({})", include.join(" | "));
        for exclude in rules.exclude.iter().filter_map(|p| phrase(p)) {
            query.push_str(&format!(" & !{exclude}"));
        }
        Some(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tag::KeywordRules;

    #[test]
    fn search_text_cannot_inject_query_syntax() {
        assert_eq!(
            sqlite_dialect::all_words("reset \"pass*\" OR x").unwrap(),
            "\"reset\" AND \"pass\" AND \"or\" AND \"x\""
        );
        assert_eq!(
            postgres_dialect::all_words("it's & broken").unwrap(),
            "'it' & 's' & 'broken'"
        );
        assert!(sqlite_dialect::all_words("*** ''").is_none());
    }

    #[test]
    fn rules_become_any_include_and_no_exclude() {
        let rules = KeywordRules {
            include: vec!["password reset".into(), "login".into()],
            exclude: vec!["sso".into()],
        };
        assert_eq!(
            sqlite_dialect::rule(&rules).unwrap(),
            "(\"password reset\" OR \"login\") NOT \"sso\""
        );
        assert_eq!(
            postgres_dialect::rule(&rules).unwrap(),
            "(('password' <-> 'reset') | ('login')) & !('sso')"
        );
        assert!(sqlite_dialect::rule(&KeywordRules::default()).is_none());
    }
}

store_capability! {
    /// The dashboard's counts and totals, kept on write.
    pub trait DashboardStore {
        /// Every tag with how many tickets carry it, most used first.
        async fn tag_counts(&self, project: ProjectId) -> StoreResult<Vec<TagCount>>;
        /// Tickets per tag per day (UTC) for tickets created on the whole days covering
        /// `[from, until)`; a ticket counts under a tag as in `tag_counts`.
        async fn tag_volume(
            &self,
            project: ProjectId,
            from: chrono::DateTime<chrono::Utc>,
            until: chrono::DateTime<chrono::Utc>,
        ) -> StoreResult<Vec<TagVolume>>;
        /// Per tag: how often a model applied it and how often people kept or removed it.
        async fn tag_outcomes(&self, project: ProjectId) -> StoreResult<Vec<TagOutcome>>;
        async fn labelling_totals(&self, project: ProjectId) -> StoreResult<LabellingTotals>;
        /// The same figures over the tickets created in `[from, until)` (whole UTC days, as
        /// `tag_volume` counts them): the dashboard's tiles for its chosen period.
        async fn labelling_totals_between(
            &self,
            project: ProjectId,
            from: chrono::DateTime<chrono::Utc>,
            until: chrono::DateTime<chrono::Utc>,
        ) -> StoreResult<LabellingTotals>;
        /// Recounts the project's dashboard counts from its labels and tickets, replacing the
        /// ones triggers keep current (a repair; the counts never need it in normal running).
        async fn rebuild_dashboard_counts(&self, project: ProjectId) -> StoreResult<()>;
        /// The texts of a sample of the project's tickets, newest first.
        async fn sample_texts(
            &self,
            project: ProjectId,
            sample: &TextSample,
        ) -> StoreResult<Vec<SampledText>>;
    }
}
