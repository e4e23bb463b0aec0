//! Store methods of the web workbench: accounts and login sessions, the ticket browser's
//! filtered pages, and the dashboard's aggregates. Like `common.rs`, the SQL exists once and
//! expands inside each backend's `impl Store`; the two places the dialects differ (full-text
//! search and the calendar day of a timestamp) come from a small dialect module per backend.

use crate::error::StoreError;
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
    id: i64,
    username: String,
    role: String,
    created_at: DateTime<Utc>,
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
fn words(text: &str) -> Vec<String> {
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

/// Expands to the web workbench's `Store` methods; `$dialect` is `sqlite_dialect` or
/// `postgres_dialect`.
macro_rules! web_store_methods {
    ($dialect:ident) => {
        async fn create_user(&self, user: &crate::user::NewUser) -> StoreResult<crate::user::User> {
            if user.password_hash.is_empty() {
                return Err(ValidationError::field("password", "no password hash given").into());
            }
            let row: super::web::UserRow = sqlx::query_as(
                "INSERT INTO users (username, username_key, role, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id, username, role, created_at",
            )
            .bind(user.username.as_str())
            .bind(user.username.folded())
            .bind(user.role.as_str())
            .bind(&user.password_hash)
            .bind(Utc::now())
            .fetch_one(self.writer())
            .await
            .map_err(|e| {
                conflict_on_unique(e, || format!("a user named {:?} already exists", user.username.as_str()))
            })?;
            row.try_into()
        }

        async fn user_credentials(
            &self,
            username: &crate::user::Username,
        ) -> StoreResult<Option<crate::user::UserCredentials>> {
            let row: Option<super::web::CredentialsRow> = sqlx::query_as(
                "SELECT id, username, role, created_at, password_hash FROM users WHERE username_key = $1",
            )
            .bind(username.folded())
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| {
                Ok(crate::user::UserCredentials {
                    user: row.user.try_into()?,
                    password_hash: row.password_hash,
                })
            })
            .transpose()
        }

        async fn users(&self) -> StoreResult<Vec<crate::user::User>> {
            let rows: Vec<super::web::UserRow> =
                sqlx::query_as("SELECT id, username, role, created_at FROM users ORDER BY username_key")
                    .fetch_all(&self.pool)
                    .await?;
            convert_all(rows)
        }

        async fn set_user_role(&self, user: i64, role: crate::user::Role) -> StoreResult<crate::user::User> {
            let row: Option<super::web::UserRow> = sqlx::query_as(
                "UPDATE users SET role = $1 WHERE id = $2 RETURNING id, username, role, created_at",
            )
            .bind(role.as_str())
            .bind(user)
            .fetch_optional(self.writer())
            .await?;
            row.ok_or_else(|| StoreError::NotFound(format!("user {user}")))?.try_into()
        }

        async fn set_user_password(&self, user: i64, password_hash: &str) -> StoreResult<()> {
            if password_hash.is_empty() {
                return Err(ValidationError::field("password", "no password hash given").into());
            }
            let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
            let updated = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(password_hash)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("user {user}")));
            }
            // A new password ends every session opened with the old one.
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn create_session(&self, session: &crate::user::NewSession) -> StoreResult<()> {
            let now = Utc::now();
            // Expired sessions go whenever someone logs in, so the table never grows unbounded.
            sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
                .bind(now)
                .execute(self.writer())
                .await?;
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&session.token_hash)
            .bind(session.user_id)
            .bind(&session.csrf_token)
            .bind(now)
            .bind(session.expires_at)
            .execute(self.writer())
            .await?;
            Ok(())
        }

        async fn session(
            &self,
            token_hash: &str,
            now: chrono::DateTime<Utc>,
        ) -> StoreResult<Option<crate::user::Session>> {
            let row: Option<super::web::SessionRow> = sqlx::query_as(
                "SELECT u.id, u.username, u.role, u.created_at, s.csrf_token, s.expires_at \
                 FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| {
                Ok(crate::user::Session {
                    user: row.user.try_into()?,
                    csrf_token: row.csrf_token,
                    expires_at: row.expires_at,
                })
            })
            .transpose()
        }

        async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(self.writer())
                .await?;
            Ok(())
        }

        async fn browse_tickets(
            &self,
            project: ProjectId,
            filter: &super::web::TicketFilter,
        ) -> StoreResult<super::web::TicketPage> {
            filter.validate()?;
            enum Bind {
                Text(String),
                Number(i64),
                Real(f32),
                Time(chrono::DateTime<Utc>),
            }
            let mut binds: Vec<Bind> = Vec::new();
            let mut sql = String::from(concat!("SELECT ", ticket_columns!(), " FROM tickets WHERE project_id = $1"));
            let next = |binds: &mut Vec<Bind>, value: Bind| {
                binds.push(value);
                binds.len() + 1
            };
            if let Some(query) = filter.text.as_deref().and_then(super::web::$dialect::all_words) {
                let n = next(&mut binds, Bind::Text(query));
                sql.push_str(&format!(" AND {}", super::web::$dialect::text_condition(n)));
            }
            if let Some(rules) = &filter.rule {
                match super::web::$dialect::rule(rules) {
                    Some(query) => {
                        let n = next(&mut binds, Bind::Text(query));
                        sql.push_str(&format!(" AND {}", super::web::$dialect::text_condition(n)));
                    }
                    // A rule without a usable include phrase matches nothing.
                    None => sql.push_str(" AND 1 = 0"),
                }
            }
            if let Some(source) = &filter.source {
                let n = next(&mut binds, Bind::Text(source.clone()));
                sql.push_str(&format!(" AND source = ${n}"));
            }
            if let Some(from) = filter.from {
                let n = next(&mut binds, Bind::Time(from));
                sql.push_str(&format!(" AND created_at >= ${n}"));
            }
            if let Some(until) = filter.until {
                let n = next(&mut binds, Bind::Time(until));
                sql.push_str(&format!(" AND created_at < ${n}"));
            }
            let confidence = filter.min_confidence.is_some() || filter.max_confidence.is_some();
            if filter.tag.is_some() || filter.label_source.is_some() || confidence {
                // IN builds the matching ticket set once from labels_tag_source.
                let mut labels = match filter.tag {
                    Some(tag) => {
                        let n = next(&mut binds, Bind::Number(tag.0));
                        format!(" AND id IN (SELECT l.ticket_id FROM labels l WHERE l.tag_id = ${n} AND l.present")
                    }
                    // The project's tags lead the index (labels_tag_source), so even a filter
                    // that matches nothing costs one index range per tag, not a probe per ticket.
                    None => {
                        let n = next(&mut binds, Bind::Number(project.0));
                        format!(
                            " AND id IN (SELECT l.ticket_id FROM labels l WHERE l.tag_id IN \
                             (SELECT g.id FROM tags g WHERE g.project_id = ${n}) AND l.present"
                        )
                    }
                };
                if let Some(source) = filter.label_source {
                    let n = next(&mut binds, Bind::Text(source.as_str().to_string()));
                    labels.push_str(&format!(" AND l.source = ${n}"));
                }
                if let Some(min) = filter.min_confidence {
                    let n = next(&mut binds, Bind::Real(min));
                    labels.push_str(&format!(" AND l.confidence >= ${n}"));
                }
                if let Some(max) = filter.max_confidence {
                    let n = next(&mut binds, Bind::Real(max));
                    labels.push_str(&format!(" AND l.confidence <= ${n}"));
                }
                labels.push(')');
                sql.push_str(&labels);
            }
            let limit = filter.effective_limit();
            // One row more than the page tells whether a next page exists.
            sql.push_str(&format!(
                " ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {}",
                limit + 1,
                filter.offset
            ));
            let mut statement = sqlx::query_as::<Db, TicketRow>(sqlx::AssertSqlSafe(sql)).bind(project);
            for bind in binds {
                statement = match bind {
                    Bind::Text(value) => statement.bind(value),
                    Bind::Number(value) => statement.bind(value),
                    Bind::Real(value) => statement.bind(value),
                    Bind::Time(value) => statement.bind(value),
                };
            }
            let mut rows = statement.fetch_all(&self.pool).await?;
            let has_more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            Ok(super::web::TicketPage {
                tickets: self.with_labels(convert_all(rows)?).await?,
                has_more,
            })
        }

        async fn project_list(&self) -> StoreResult<Vec<crate::project::Project>> {
            let rows: Vec<ProjectRow> =
                sqlx::query_as(concat!("SELECT ", project_columns!(), " FROM projects ORDER BY name_key"))
                    .fetch_all(&self.pool)
                    .await?;
            convert_all(rows)
        }

        async fn ticket_sources(&self, project: ProjectId) -> StoreResult<Vec<String>> {
            // A loose index scan: one index seek per distinct source instead of reading every
            // ticket (tickets_project_source_created), on both databases.
            Ok(sqlx::query_scalar(
                "WITH RECURSIVE s (source) AS ( \
                 SELECT MIN(source) FROM tickets WHERE project_id = $1 \
                 UNION ALL SELECT (SELECT MIN(t.source) FROM tickets t WHERE t.project_id = $1 AND t.source > s.source) \
                 FROM s WHERE s.source IS NOT NULL) \
                 SELECT source FROM s WHERE source IS NOT NULL ORDER BY source",
            )
                .bind(project)
                .fetch_all(&self.pool)
                .await?)
        }

        async fn tag_counts(&self, project: ProjectId) -> StoreResult<Vec<super::web::TagCount>> {
            super::web::$dialect::fold_count_changes(&self.pool, project).await?;
            let sql = format!(
                "SELECT g.id AS tag_id, g.name, g.color, g.archived, COALESCE(c.tickets, 0) AS tickets \
                 FROM tags g LEFT JOIN (SELECT tag_id, CAST(SUM(tickets) AS BIGINT) AS tickets FROM {} c \
                 WHERE project_id = $1 GROUP BY tag_id) c ON c.tag_id = g.id \
                 WHERE g.project_id = $1 ORDER BY tickets DESC, g.name_key",
                super::web::$dialect::TAG_DAY_COUNTS
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(project)
                .fetch_all(&self.pool)
                .await?)
        }

        async fn tag_volume(
            &self,
            project: ProjectId,
            from: chrono::DateTime<Utc>,
            until: chrono::DateTime<Utc>,
        ) -> StoreResult<Vec<super::web::TagVolume>> {
            super::web::$dialect::fold_count_changes(&self.pool, project).await?;
            let (first, end) = super::web::day_range(from, until);
            let sql = format!(
                "SELECT day, tag_id, CAST(SUM(tickets) AS BIGINT) AS tickets FROM {} c \
                 WHERE project_id = $1 AND day >= $2 AND day < $3 \
                 GROUP BY day, tag_id HAVING SUM(tickets) <> 0 ORDER BY day, tag_id",
                super::web::$dialect::TAG_DAY_COUNTS
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(project)
                .bind(first)
                .bind(end)
                .fetch_all(&self.pool)
                .await?)
        }

        async fn tag_outcomes(&self, project: ProjectId) -> StoreResult<Vec<super::web::TagOutcome>> {
            super::web::$dialect::fold_count_changes(&self.pool, project).await?;
            let sql = format!(
                "SELECT tag_id, CAST(SUM(auto_applied) AS BIGINT) AS auto_applied, \
                 CAST(SUM(confirmed) AS BIGINT) AS confirmed, CAST(SUM(corrected) AS BIGINT) AS corrected \
                 FROM {} c WHERE project_id = $1 GROUP BY tag_id HAVING SUM(auto_applied) > 0 ORDER BY tag_id",
                super::web::$dialect::TAG_DAY_COUNTS
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(project)
                .fetch_all(&self.pool)
                .await?)
        }

        async fn labelling_totals(&self, project: ProjectId) -> StoreResult<super::web::LabellingTotals> {
            super::web::$dialect::fold_count_changes(&self.pool, project).await?;
            let sql = format!(
                "SELECT CAST(COALESCE(SUM(tickets), 0) AS BIGINT) AS tickets, \
                 CAST(COALESCE(SUM(auto_tagged), 0) AS BIGINT) AS auto_tagged, \
                 CAST(COALESCE(SUM(human_labelled), 0) AS BIGINT) AS human_labelled \
                 FROM {} c WHERE project_id = $1",
                super::web::$dialect::PROJECT_DAY_COUNTS
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(project)
                .fetch_one(&self.pool)
                .await?)
        }

        async fn labelling_totals_between(
            &self,
            project: ProjectId,
            from: chrono::DateTime<Utc>,
            until: chrono::DateTime<Utc>,
        ) -> StoreResult<super::web::LabellingTotals> {
            super::web::$dialect::fold_count_changes(&self.pool, project).await?;
            let (first, end) = super::web::day_range(from, until);
            let sql = format!(
                "SELECT CAST(COALESCE(SUM(tickets), 0) AS BIGINT) AS tickets, \
                 CAST(COALESCE(SUM(auto_tagged), 0) AS BIGINT) AS auto_tagged, \
                 CAST(COALESCE(SUM(human_labelled), 0) AS BIGINT) AS human_labelled \
                 FROM {} c WHERE project_id = $1 AND day >= $2 AND day < $3",
                super::web::$dialect::PROJECT_DAY_COUNTS
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(project)
                .bind(first)
                .bind(end)
                .fetch_one(&self.pool)
                .await?)
        }

        async fn ticket_fits(
            &self,
            project: ProjectId,
            from: chrono::DateTime<Utc>,
            until: chrono::DateTime<Utc>,
            limit: u32,
        ) -> StoreResult<Vec<super::web::TicketFit>> {
            // Walks the newest tickets of the period (tickets_project_created) and probes each
            // one's labels by the primary key: cost grows with `limit`, not with the project.
            Ok(sqlx::query_as(
                "SELECT t.id, t.subject, t.body, t.created_at, \
                 EXISTS (SELECT 1 FROM labels l WHERE l.ticket_id = t.id AND l.present \
                   AND NOT EXISTS (SELECT 1 FROM labels h WHERE h.ticket_id = t.id AND h.tag_id = l.tag_id \
                   AND h.source = 'human' AND NOT h.present)) AS tagged \
                 FROM tickets t WHERE t.project_id = $1 AND t.created_at >= $2 AND t.created_at < $3 \
                 ORDER BY t.created_at DESC, t.id DESC LIMIT $4",
            )
            .bind(project)
            .bind(from)
            .bind(until)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
        }

        async fn rebuild_dashboard_counts(&self, project: ProjectId) -> StoreResult<()> {
            self.project(project).await?;
            let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
            for statement in super::web::$dialect::REBUILD_PREPARE {
                sqlx::query(sqlx::AssertSqlSafe(*statement))
                    .bind(project)
                    .execute(&mut *tx)
                    .await?;
            }
            // The same recount as migration 0006: flags per (ticket, tag), summed per day.
            let day = super::web::$dialect::DAY;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO tag_day_counts (project_id, tag_id, day, tickets, auto_applied, confirmed, corrected) \
                 SELECT t.project_id, k.tag_id, {day}, SUM(k.p * (1 - k.hr)), SUM(k.mp), SUM(k.mp * k.hp), SUM(k.mp * k.hr) \
                 FROM (SELECT l.ticket_id, l.tag_id, \
                   MAX(CASE WHEN l.present THEN 1 ELSE 0 END) AS p, \
                   MAX(CASE WHEN l.source = 'human' AND NOT l.present THEN 1 ELSE 0 END) AS hr, \
                   MAX(CASE WHEN l.source = 'human' AND l.present THEN 1 ELSE 0 END) AS hp, \
                   MAX(CASE WHEN l.source = 'model' AND l.present THEN 1 ELSE 0 END) AS mp \
                   FROM labels l WHERE l.tag_id IN (SELECT id FROM tags WHERE project_id = $1) \
                   GROUP BY l.ticket_id, l.tag_id) k \
                 JOIN tickets t ON t.id = k.ticket_id \
                 GROUP BY t.project_id, k.tag_id, {day}"
            )))
            .bind(project)
            .execute(&mut *tx)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO project_day_counts (project_id, day, tickets, auto_tagged, human_labelled) \
                 SELECT t.project_id, {day}, COUNT(*), \
                 SUM(CASE WHEN EXISTS (SELECT 1 FROM labels l WHERE l.ticket_id = t.id AND l.source = 'model' AND l.present) THEN 1 ELSE 0 END), \
                 SUM(CASE WHEN EXISTS (SELECT 1 FROM labels l WHERE l.ticket_id = t.id AND l.source = 'human') THEN 1 ELSE 0 END) \
                 FROM tickets t WHERE t.project_id = $1 GROUP BY t.project_id, {day}"
            )))
            .bind(project)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }
    };
}
pub(crate) use web_store_methods;

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
