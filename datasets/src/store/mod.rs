//! The `Store`: everything the product keeps, on SQLite (embedded default) or PostgreSQL
//! (production), chosen by the database URL. Both backends run the same SQL where the two
//! dialects agree (see `common.rs`) and their own where speed needs it (bulk import).

pub mod any;
pub mod audit_store;
pub mod backfill_store;
mod common;
pub mod connector_store;
mod pool_hygiene;
mod postgres;
mod review;
mod rows;
pub mod server_secrets;
mod sqlite;
mod tag_merge;
mod training_runs;
pub mod web;
pub mod webhook_store;
pub mod writeback_store;

pub use any::{AnyImport, AnyStore};
pub use audit_store::AuditStore;
pub use backfill_store::BackfillStore;
pub use connector_store::ConnectorStore;
pub use postgres::{PgImport, PgStore};
pub use server_secrets::ServerSecrets;
pub use sqlite::{SqliteImport, SqliteStore};
pub use web::{
    LabellingTotals, MAX_BROWSE_PAGE, TagCount, TagOutcome, TagVolume, TicketFilter, TicketFit,
    TicketPage,
};
pub use webhook_store::WebhookStore;
pub use writeback_store::WriteBackStore;

use crate::api_key::{ApiKey, CreatedApiKey, KeyGrant};
use crate::error::StoreResult;
use crate::ids::{ModelVersionId, ProjectId, TagId, TicketId};
use crate::label::LabelEvent;
use crate::model_version::{ModelVersion, NewModelVersion};
use crate::names::{ProjectName, TagName};
use crate::project::{LabelMode, Project, ProjectSummary};
use crate::registry::Promotion;
use crate::review::{AnswerKind, NewQueueEntry, QueueEntry, ReviewQueueStats, ReviewSettings};
use crate::tag::{NewTag, Tag, TagUpdate};
use crate::ticket::{LabelledTicket, NewTicket, TicketQuery, UpsertedTicket};
use std::collections::HashMap;
use std::future::Future;

/// How many tickets one page of `tickets_after` may hold.
pub const MAX_PAGE: u32 = 5000;

/// One row of a bulk import: a ticket and the tags the file gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    pub ticket: NewTicket,
    pub tags: Vec<TagId>,
}

/// Counts reported when an import commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    pub created: u64,
    pub updated: u64,
    pub labels: u64,
}

/// A bulk import in progress. Each `write` is committed in one or more short transactions
/// (SQLite has a single write lock; holding it for a whole import would lock every other
/// writer out), so rows become visible batch by batch; dropping the writer rolls back only
/// what was written since the last commit (the project and tags it created before the first
/// `write` included).
pub trait ImportWriter: Send {
    /// The project being imported into (created inside this transaction when new).
    fn project(&self) -> &Project;
    /// The project's tags, keyed by their case-folded name.
    fn tags(&self) -> &HashMap<String, TagId>;
    /// Adds a tag found in the file.
    fn create_tag(&mut self, name: &TagName) -> impl Future<Output = StoreResult<TagId>> + Send;
    /// Stores a batch of rows and commits them: upserts the tickets and replaces their
    /// imported labels.
    fn write(&mut self, rows: Vec<ImportRow>) -> impl Future<Output = StoreResult<()>> + Send;
    /// Commits what is left (tags created since the last `write`).
    fn commit(self) -> impl Future<Output = StoreResult<ImportCounts>> + Send;
}

/// Everything the product stores. Every multi-row write is one transaction.
pub trait Store: Clone + Send + Sync + 'static {
    type Import: ImportWriter;

    /// Applies pending migrations of this backend.
    fn migrate(&self) -> impl Future<Output = StoreResult<()>> + Send;
    /// Whether the database answers, for `/readyz`.
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;

    fn create_project(
        &self,
        name: &ProjectName,
        mode: LabelMode,
    ) -> impl Future<Output = StoreResult<Project>> + Send;
    fn project(&self, id: ProjectId) -> impl Future<Output = StoreResult<Project>> + Send;
    fn project_by_name(
        &self,
        name: &ProjectName,
    ) -> impl Future<Output = StoreResult<Option<Project>>> + Send;
    fn list_projects(&self) -> impl Future<Output = StoreResult<Vec<ProjectSummary>>> + Send;
    /// Sets the languages the project's model serves (none: every ticket is tagged).
    fn set_project_languages(
        &self,
        project: ProjectId,
        languages: &[crate::language::Language],
    ) -> impl Future<Output = StoreResult<Project>> + Send;

    fn create_tag(
        &self,
        project: ProjectId,
        tag: &NewTag,
    ) -> impl Future<Output = StoreResult<Tag>> + Send;
    fn update_tag(
        &self,
        project: ProjectId,
        tag: TagId,
        update: &TagUpdate,
    ) -> impl Future<Output = StoreResult<Tag>> + Send;
    /// All tags of the project, archived ones included, by name.
    fn list_tags(&self, project: ProjectId) -> impl Future<Output = StoreResult<Vec<Tag>>> + Send;
    /// Merges tag `from` into `into` in one transaction: every label of `from` (all sources)
    /// moves to `into`, a ticket with both keeps one label per source (present if either
    /// was), the label history records the merge by `actor`, `from`'s keyword rules are
    /// appended to `into`'s, and `from` is archived.
    fn merge_tags(
        &self,
        project: ProjectId,
        from: TagId,
        into: TagId,
        actor: impl Into<crate::audit::Actor> + Send,
    ) -> impl Future<Output = StoreResult<crate::tag_merge::TagMerge>> + Send;

    /// Stores tickets, updating those whose (source, external id) is already stored.
    fn upsert_tickets(
        &self,
        project: ProjectId,
        tickets: &[NewTicket],
    ) -> impl Future<Output = StoreResult<Vec<UpsertedTicket>>> + Send;
    fn ticket(
        &self,
        project: ProjectId,
        ticket: TicketId,
    ) -> impl Future<Output = StoreResult<LabelledTicket>> + Send;
    fn search_tickets(
        &self,
        project: ProjectId,
        query: &TicketQuery,
    ) -> impl Future<Output = StoreResult<Vec<LabelledTicket>>> + Send;
    /// Tickets in id order after `after`, for export and training.
    fn tickets_after(
        &self,
        project: ProjectId,
        after: Option<TicketId>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<LabelledTicket>>> + Send;

    /// Sets the complete set of tags a person says the ticket carries; tags that other
    /// sources gave it and the person left out are recorded as rejected. Records the whole
    /// answer (`label_submissions`) and takes the ticket out of the review queue.
    fn set_human_labels(
        &self,
        project: ProjectId,
        ticket: TicketId,
        tags: &[TagName],
        user: &str,
    ) -> impl Future<Output = StoreResult<LabelledTicket>> + Send {
        self.record_human_answer(project, ticket, tags, user, AnswerKind::Answer)
    }
    /// `set_human_labels` with the answer's kind. An `Answer` from the holder of a live
    /// second-opinion lease is recorded as a `SecondOpinion` and leaves the labels alone; an
    /// ordinary answer may draw the ticket into the double-labelled sample (`ReviewSettings`);
    /// an `Adjudication` sets the labels and is kept out of agreement figures.
    fn record_human_answer(
        &self,
        project: ProjectId,
        ticket: TicketId,
        tags: &[TagName],
        user: &str,
        kind: AnswerKind,
    ) -> impl Future<Output = StoreResult<LabelledTicket>> + Send;
    /// Stores one ticket together with the tags a model version applied to it, in one
    /// transaction: a ticket is never stored without its verdict (the one ingest write).
    fn upsert_ticket_with_model_labels(
        &self,
        project: ProjectId,
        ticket: &NewTicket,
        version: ModelVersionId,
        tags: &[(TagId, f32)],
    ) -> impl Future<Output = StoreResult<UpsertedTicket>> + Send;
    /// Replaces the tags a model version applied to a ticket.
    fn set_model_labels(
        &self,
        project: ProjectId,
        ticket: TicketId,
        version: ModelVersionId,
        tags: &[(TagId, f32)],
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn label_history(
        &self,
        project: ProjectId,
        ticket: TicketId,
    ) -> impl Future<Output = StoreResult<Vec<LabelEvent>>> + Send;

    /// Records a finished training run as a candidate version.
    fn create_model_version(
        &self,
        project: ProjectId,
        version: &NewModelVersion,
    ) -> impl Future<Output = StoreResult<ModelVersion>> + Send;
    /// The project's versions, newest first.
    fn model_versions(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<Vec<ModelVersion>>> + Send;
    fn model_version(
        &self,
        project: ProjectId,
        version: ModelVersionId,
    ) -> impl Future<Output = StoreResult<ModelVersion>> + Send;
    /// Replaces a version's stored evaluation.
    fn set_model_metrics(
        &self,
        project: ProjectId,
        version: ModelVersionId,
        metrics: &serde_json::Value,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Puts a version in service, retiring the one it replaces; recorded with the actor in
    /// the promotion history and the audit log, in the same transaction.
    fn promote_model_version(
        &self,
        project: ProjectId,
        version: ModelVersionId,
        actor: impl Into<crate::audit::Actor> + Send,
    ) -> impl Future<Output = StoreResult<Promotion>> + Send;
    /// Puts back the version the one in service replaced (recorded like a promotion).
    fn rollback_model_version(
        &self,
        project: ProjectId,
        actor: impl Into<crate::audit::Actor> + Send,
    ) -> impl Future<Output = StoreResult<Promotion>> + Send;
    fn promoted_model_version(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<Option<ModelVersion>>> + Send;
    /// Promotions and rollbacks, newest first.
    fn model_promotions(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<Vec<Promotion>>> + Send;

    /// Creates a key; its secret is in the result and nowhere else. A project key needs at
    /// least one scope.
    fn create_api_key(
        &self,
        grant: &KeyGrant,
        name: &str,
    ) -> impl Future<Output = StoreResult<CreatedApiKey>> + Send;
    /// A project's keys, or the instance-admin keys when `project` is `None`.
    fn api_keys(
        &self,
        project: Option<ProjectId>,
    ) -> impl Future<Output = StoreResult<Vec<ApiKey>>> + Send;
    /// Revokes a key of the project (or an instance-admin key when `project` is `None`).
    fn revoke_api_key(
        &self,
        project: Option<ProjectId>,
        key: i64,
    ) -> impl Future<Output = StoreResult<ApiKey>> + Send;
    /// The live key a client presented, or `None` (unknown, revoked or malformed).
    fn authenticate_api_key(
        &self,
        key: &str,
    ) -> impl Future<Output = StoreResult<Option<ApiKey>>> + Send;

    /// Replaces the project's review queue with a freshly ranked list (the score job's
    /// output, best first); live leases on tickets that stay are kept.
    fn replace_review_queue(
        &self,
        project: ProjectId,
        entries: &[NewQueueEntry],
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Leases up to `count` tickets to `user` for `lease_seconds`: first the user's own live
    /// leases, then the best-ranked entries nobody holds (expired leases count as free);
    /// never a ticket a person has labelled. Two users never get the same ticket while a
    /// lease lives.
    fn lease_review_tickets(
        &self,
        project: ProjectId,
        user: &str,
        count: u32,
        lease_seconds: u32,
    ) -> impl Future<Output = StoreResult<Vec<QueueEntry>>> + Send;
    /// Gives a leased ticket back (skip); the same user is not handed it again at once.
    fn release_review_lease(
        &self,
        project: ProjectId,
        ticket: TicketId,
        user: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Every answer people gave the project's tickets, oldest first.
    fn label_submissions(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<Vec<crate::review::LabelSubmission>>> + Send;
    /// Who gave the first answer of a ticket waiting for a blind second opinion (none: no
    /// second opinion is open on it). Pages hide people's labels of such a ticket from other
    /// labellers until it is answered.
    fn open_second_opinion(
        &self,
        project: ProjectId,
        ticket: TicketId,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;
    /// Every answer given to one ticket, oldest first (empty for a ticket of another project).
    fn ticket_submissions(
        &self,
        project: ProjectId,
        ticket: TicketId,
    ) -> impl Future<Output = StoreResult<Vec<crate::review::LabelSubmission>>> + Send;
    /// Answers of the tickets two or more people answered (adjudications included, so a
    /// caller can tell which disagreements are settled), oldest first: what agreement and the
    /// adjudication list are computed from, without reading every single-rater answer.
    fn multi_rater_submissions(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<Vec<crate::review::LabelSubmission>>> + Send;
    /// The project's review settings (defaults when never set).
    fn review_settings(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<ReviewSettings>> + Send;
    /// Changes the project's review settings; tickets already drawn for a second opinion stay.
    fn set_review_settings(
        &self,
        project: ProjectId,
        settings: &ReviewSettings,
    ) -> impl Future<Output = StoreResult<ReviewSettings>> + Send;
    /// Pending and leased entries, and tickets labelled since the last scoring.
    fn review_queue_stats(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<ReviewQueueStats>> + Send;

    // --- The web workbench (store/web.rs) ---
    /// Creates an account; the password hash is computed by the caller.
    fn create_user(
        &self,
        user: &crate::user::NewUser,
    ) -> impl Future<Output = StoreResult<crate::user::User>> + Send;
    /// The account and its password hash, for a login.
    fn user_credentials(
        &self,
        username: &crate::user::Username,
    ) -> impl Future<Output = StoreResult<Option<crate::user::UserCredentials>>> + Send;
    /// Every account, by name.
    fn users(&self) -> impl Future<Output = StoreResult<Vec<crate::user::User>>> + Send;
    fn set_user_role(
        &self,
        user: i64,
        role: crate::user::Role,
    ) -> impl Future<Output = StoreResult<crate::user::User>> + Send;
    /// Replaces the password hash and ends the user's sessions.
    fn set_user_password(
        &self,
        user: i64,
        password_hash: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Opens a session (and deletes expired ones).
    fn create_session(
        &self,
        session: &crate::user::NewSession,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The live session whose token hashes to `token_hash`.
    fn session(
        &self,
        token_hash: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = StoreResult<Option<crate::user::Session>>> + Send;
    fn delete_session(&self, token_hash: &str) -> impl Future<Output = StoreResult<()>> + Send;
    /// One page of the ticket browser, newest first.
    fn browse_tickets(
        &self,
        project: ProjectId,
        filter: &web::TicketFilter,
    ) -> impl Future<Output = StoreResult<web::TicketPage>> + Send;
    /// Every project, by name, without counts: what the navigation needs on every page.
    fn project_list(&self) -> impl Future<Output = StoreResult<Vec<Project>>> + Send;
    /// The help desks the project's tickets came from.
    fn ticket_sources(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
    /// Every tag with how many tickets carry it, most used first.
    fn tag_counts(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<Vec<web::TagCount>>> + Send;
    /// Tickets per tag per day (UTC) for tickets created on the whole days covering
    /// `[from, until)`; a ticket counts under a tag as in `tag_counts`.
    fn tag_volume(
        &self,
        project: ProjectId,
        from: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = StoreResult<Vec<web::TagVolume>>> + Send;
    /// Per tag: how often a model applied it and how often people kept or removed it.
    fn tag_outcomes(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<Vec<web::TagOutcome>>> + Send;
    fn labelling_totals(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<web::LabellingTotals>> + Send;
    /// The same figures over the tickets created in `[from, until)` (whole UTC days, as
    /// `tag_volume` counts them): the dashboard's tiles for its chosen period.
    fn labelling_totals_between(
        &self,
        project: ProjectId,
        from: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = StoreResult<web::LabellingTotals>> + Send;
    /// Recounts the project's dashboard counts from its labels and tickets, replacing the
    /// ones triggers keep current (a repair; the counts never need it in normal running).
    fn rebuild_dashboard_counts(
        &self,
        project: ProjectId,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The newest `limit` tickets created in `[from, until)`, with whether a tag is in force.
    fn ticket_fits(
        &self,
        project: ProjectId,
        from: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<web::TicketFit>>> + Send;

    /// Queues a training run (the job that runs it is the queue's).
    fn create_training_run(
        &self,
        project: ProjectId,
        run: &crate::training_run::NewTrainingRun,
    ) -> impl Future<Output = StoreResult<crate::training_run::TrainingRun>> + Send;
    fn training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
    ) -> impl Future<Output = StoreResult<crate::training_run::TrainingRun>> + Send;
    /// The project's runs, newest first.
    fn training_runs(
        &self,
        project: ProjectId,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<crate::training_run::TrainingRun>>> + Send;
    /// A worker takes a queued run (or one whose worker died): `running`, one more attempt.
    /// A run that has ended is a conflict.
    fn claim_training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
        worker: &str,
    ) -> impl Future<Output = StoreResult<crate::training_run::TrainingRun>> + Send;
    /// Stores the latest progress; answers whether someone asked to cancel the run.
    fn record_training_progress(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
        progress: &serde_json::Value,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Ends a running run's attempt: succeeded, failed, cancelled, or back to the queue.
    fn finish_training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
        outcome: &crate::training_run::RunOutcome,
    ) -> impl Future<Output = StoreResult<crate::training_run::TrainingRun>> + Send;
    /// Cancels a queued run at once, or asks a running one to stop at its next epoch.
    fn cancel_training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
    ) -> impl Future<Output = StoreResult<crate::training_run::TrainingRun>> + Send;

    /// Starts a bulk import into the named project; creates it when `create` is given.
    fn begin_import(
        &self,
        project: &ProjectName,
        create: Option<LabelMode>,
        set_by: &str,
    ) -> impl Future<Output = StoreResult<Self::Import>> + Send;
}
