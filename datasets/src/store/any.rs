//! `AnyStore`: the backend chosen at run time from the database URL's scheme.

use super::{
    ImportCounts, ImportRow, ImportWriter, PgImport, PgStore, SqliteImport, SqliteStore, Store,
};
use crate::api_key::{ApiKey, CreatedApiKey, KeyGrant};
use crate::error::{StoreError, StoreResult};
use crate::ids::{ModelVersionId, ProjectId, TagId, TicketId};
use crate::label::LabelEvent;
use crate::model_version::{ModelVersion, NewModelVersion};
use crate::names::{ProjectName, TagName};
use crate::project::{LabelMode, Project, ProjectSummary};
use crate::registry::Promotion;
use crate::tag::{NewTag, Tag, TagUpdate};
use crate::ticket::{LabelledTicket, NewTicket, TicketQuery, UpsertedTicket};
use std::collections::HashMap;

/// The store behind a `sqlite://` or `postgres://` URL.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Connects to the database the URL names; does not migrate.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteStore::connect(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(PgStore::connect(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl(redact_password(url)))
        }
    }

    /// Connects and applies migrations: what every command does before it starts.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// `sqlite` or `postgres`, for logs and the status page.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A URL with its password replaced, safe for error messages and logs.
pub fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call.await,
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

/// An import into whichever backend the store is.
pub enum AnyImport {
    Sqlite(SqliteImport),
    Postgres(PgImport),
}

macro_rules! dispatch_import {
    ($self:ident, $import:ident => $call:expr) => {
        match $self {
            AnyImport::Sqlite($import) => $call,
            AnyImport::Postgres($import) => $call,
        }
    };
}

impl ImportWriter for AnyImport {
    fn project(&self) -> &Project {
        dispatch_import!(self, import => import.project())
    }

    fn tags(&self) -> &HashMap<String, TagId> {
        dispatch_import!(self, import => import.tags())
    }

    async fn create_tag(&mut self, name: &TagName) -> StoreResult<TagId> {
        dispatch_import!(self, import => import.create_tag(name).await)
    }

    async fn write(&mut self, rows: Vec<ImportRow>) -> StoreResult<()> {
        dispatch_import!(self, import => import.write(rows).await)
    }

    async fn commit(self) -> StoreResult<ImportCounts> {
        dispatch_import!(self, import => import.commit().await)
    }
}

impl Store for AnyStore {
    type Import = AnyImport;

    #[tracing::instrument(name = "store.create_training_run", skip_all, fields(project = %project))]
    async fn create_training_run(
        &self,
        project: ProjectId,
        run: &crate::training_run::NewTrainingRun,
    ) -> StoreResult<crate::training_run::TrainingRun> {
        dispatch!(self, store => store.create_training_run(project, run))
    }

    #[tracing::instrument(name = "store.training_run", skip_all, fields(project = %project, run = %run))]
    async fn training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
    ) -> StoreResult<crate::training_run::TrainingRun> {
        dispatch!(self, store => store.training_run(project, run))
    }

    async fn training_runs(
        &self,
        project: ProjectId,
        limit: u32,
    ) -> StoreResult<Vec<crate::training_run::TrainingRun>> {
        dispatch!(self, store => store.training_runs(project, limit))
    }

    #[tracing::instrument(name = "store.claim_training_run", skip_all, fields(project = %project, run = %run))]
    async fn claim_training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
        worker: &str,
    ) -> StoreResult<crate::training_run::TrainingRun> {
        dispatch!(self, store => store.claim_training_run(project, run, worker))
    }

    async fn record_training_progress(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
        progress: &serde_json::Value,
    ) -> StoreResult<bool> {
        dispatch!(self, store => store.record_training_progress(project, run, progress))
    }

    #[tracing::instrument(name = "store.finish_training_run", skip_all, fields(project = %project, run = %run))]
    async fn finish_training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
        outcome: &crate::training_run::RunOutcome,
    ) -> StoreResult<crate::training_run::TrainingRun> {
        dispatch!(self, store => store.finish_training_run(project, run, outcome))
    }

    #[tracing::instrument(name = "store.cancel_training_run", skip_all, fields(project = %project, run = %run))]
    async fn cancel_training_run(
        &self,
        project: ProjectId,
        run: crate::ids::TrainingRunId,
    ) -> StoreResult<crate::training_run::TrainingRun> {
        dispatch!(self, store => store.cancel_training_run(project, run))
    }

    async fn migrate(&self) -> StoreResult<()> {
        dispatch!(self, store => store.migrate())
    }

    async fn ping(&self) -> StoreResult<()> {
        dispatch!(self, store => store.ping())
    }

    async fn create_project(&self, name: &ProjectName, mode: LabelMode) -> StoreResult<Project> {
        dispatch!(self, store => store.create_project(name, mode))
    }

    #[tracing::instrument(name = "store.project", skip_all, fields(project = %id))]
    async fn project(&self, id: ProjectId) -> StoreResult<Project> {
        dispatch!(self, store => store.project(id))
    }

    async fn project_by_name(&self, name: &ProjectName) -> StoreResult<Option<Project>> {
        dispatch!(self, store => store.project_by_name(name))
    }

    async fn list_projects(&self) -> StoreResult<Vec<ProjectSummary>> {
        dispatch!(self, store => store.list_projects())
    }

    #[tracing::instrument(name = "store.set_project_languages", skip_all, fields(project = %project))]
    async fn set_project_languages(
        &self,
        project: ProjectId,
        languages: &[crate::language::Language],
    ) -> StoreResult<Project> {
        dispatch!(self, store => store.set_project_languages(project, languages))
    }

    #[tracing::instrument(name = "store.create_tag", skip_all, fields(project = %project))]
    async fn create_tag(&self, project: ProjectId, tag: &NewTag) -> StoreResult<Tag> {
        dispatch!(self, store => store.create_tag(project, tag))
    }

    #[tracing::instrument(name = "store.update_tag", skip_all, fields(project = %project, tag = %tag))]
    async fn update_tag(
        &self,
        project: ProjectId,
        tag: TagId,
        update: &TagUpdate,
    ) -> StoreResult<Tag> {
        dispatch!(self, store => store.update_tag(project, tag, update))
    }

    async fn list_tags(&self, project: ProjectId) -> StoreResult<Vec<Tag>> {
        dispatch!(self, store => store.list_tags(project))
    }

    #[tracing::instrument(name = "store.merge_tags", skip_all, fields(project = %project, from = %from, into = %into))]
    async fn merge_tags(
        &self,
        project: ProjectId,
        from: TagId,
        into: TagId,
        actor: impl Into<crate::audit::Actor> + Send,
    ) -> StoreResult<crate::tag_merge::TagMerge> {
        let actor: crate::audit::Actor = actor.into();
        dispatch!(self, store => store.merge_tags(project, from, into, actor))
    }

    #[tracing::instrument(name = "store.upsert_tickets", skip_all, fields(project = %project, tickets = tickets.len()))]
    async fn upsert_tickets(
        &self,
        project: ProjectId,
        tickets: &[NewTicket],
    ) -> StoreResult<Vec<UpsertedTicket>> {
        dispatch!(self, store => store.upsert_tickets(project, tickets))
    }

    #[tracing::instrument(name = "store.ticket", skip_all, fields(project = %project, ticket = %ticket))]
    async fn ticket(&self, project: ProjectId, ticket: TicketId) -> StoreResult<LabelledTicket> {
        dispatch!(self, store => store.ticket(project, ticket))
    }

    #[tracing::instrument(name = "store.search_tickets", skip_all, fields(project = %project))]
    async fn search_tickets(
        &self,
        project: ProjectId,
        query: &TicketQuery,
    ) -> StoreResult<Vec<LabelledTicket>> {
        dispatch!(self, store => store.search_tickets(project, query))
    }

    #[tracing::instrument(name = "store.tickets_after", skip_all, fields(project = %project))]
    async fn tickets_after(
        &self,
        project: ProjectId,
        after: Option<TicketId>,
        limit: u32,
    ) -> StoreResult<Vec<LabelledTicket>> {
        dispatch!(self, store => store.tickets_after(project, after, limit))
    }

    #[tracing::instrument(name = "store.record_human_answer", skip_all, fields(project = %project, ticket = %ticket))]
    async fn record_human_answer(
        &self,
        project: ProjectId,
        ticket: TicketId,
        tags: &[TagName],
        user: &str,
        kind: crate::review::AnswerKind,
    ) -> StoreResult<LabelledTicket> {
        dispatch!(self, store => store.record_human_answer(project, ticket, tags, user, kind))
    }

    #[tracing::instrument(name = "store.ticket_submissions", skip_all, fields(project = %project, ticket = %ticket))]
    async fn open_second_opinion(
        &self,
        project: ProjectId,
        ticket: TicketId,
    ) -> StoreResult<Option<String>> {
        dispatch!(self, store => store.open_second_opinion(project, ticket))
    }

    async fn ticket_submissions(
        &self,
        project: ProjectId,
        ticket: TicketId,
    ) -> StoreResult<Vec<crate::review::LabelSubmission>> {
        dispatch!(self, store => store.ticket_submissions(project, ticket))
    }

    #[tracing::instrument(name = "store.multi_rater_submissions", skip_all, fields(project = %project))]
    async fn multi_rater_submissions(
        &self,
        project: ProjectId,
    ) -> StoreResult<Vec<crate::review::LabelSubmission>> {
        dispatch!(self, store => store.multi_rater_submissions(project))
    }

    async fn review_settings(
        &self,
        project: ProjectId,
    ) -> StoreResult<crate::review::ReviewSettings> {
        dispatch!(self, store => store.review_settings(project))
    }

    #[tracing::instrument(name = "store.set_review_settings", skip_all, fields(project = %project))]
    async fn set_review_settings(
        &self,
        project: ProjectId,
        settings: &crate::review::ReviewSettings,
    ) -> StoreResult<crate::review::ReviewSettings> {
        dispatch!(self, store => store.set_review_settings(project, settings))
    }

    #[tracing::instrument(name = "store.replace_review_queue", skip_all, fields(project = %project))]
    async fn replace_review_queue(
        &self,
        project: ProjectId,
        entries: &[crate::review::NewQueueEntry],
    ) -> StoreResult<u64> {
        dispatch!(self, store => store.replace_review_queue(project, entries))
    }

    #[tracing::instrument(name = "store.lease_review_tickets", skip_all, fields(project = %project))]
    async fn lease_review_tickets(
        &self,
        project: ProjectId,
        user: &str,
        count: u32,
        lease_seconds: u32,
    ) -> StoreResult<Vec<crate::review::QueueEntry>> {
        dispatch!(self, store => store.lease_review_tickets(project, user, count, lease_seconds))
    }

    #[tracing::instrument(name = "store.release_review_lease", skip_all, fields(project = %project, ticket = %ticket))]
    async fn release_review_lease(
        &self,
        project: ProjectId,
        ticket: TicketId,
        user: &str,
    ) -> StoreResult<()> {
        dispatch!(self, store => store.release_review_lease(project, ticket, user))
    }

    #[tracing::instrument(name = "store.label_submissions", skip_all, fields(project = %project))]
    async fn label_submissions(
        &self,
        project: ProjectId,
    ) -> StoreResult<Vec<crate::review::LabelSubmission>> {
        dispatch!(self, store => store.label_submissions(project))
    }

    #[tracing::instrument(name = "store.review_queue_stats", skip_all, fields(project = %project))]
    async fn review_queue_stats(
        &self,
        project: ProjectId,
    ) -> StoreResult<crate::review::ReviewQueueStats> {
        dispatch!(self, store => store.review_queue_stats(project))
    }

    #[tracing::instrument(name = "store.upsert_ticket_with_model_labels", skip_all, fields(project = %project, version = %version))]
    async fn upsert_ticket_with_model_labels(
        &self,
        project: ProjectId,
        ticket: &NewTicket,
        version: ModelVersionId,
        tags: &[(TagId, f32)],
    ) -> StoreResult<UpsertedTicket> {
        dispatch!(self, store => store.upsert_ticket_with_model_labels(project, ticket, version, tags))
    }

    #[tracing::instrument(name = "store.set_model_labels", skip_all, fields(project = %project, ticket = %ticket, version = %version))]
    async fn set_model_labels(
        &self,
        project: ProjectId,
        ticket: TicketId,
        version: ModelVersionId,
        tags: &[(TagId, f32)],
    ) -> StoreResult<()> {
        dispatch!(self, store => store.set_model_labels(project, ticket, version, tags))
    }

    #[tracing::instrument(name = "store.label_history", skip_all, fields(project = %project, ticket = %ticket))]
    async fn label_history(
        &self,
        project: ProjectId,
        ticket: TicketId,
    ) -> StoreResult<Vec<LabelEvent>> {
        dispatch!(self, store => store.label_history(project, ticket))
    }

    #[tracing::instrument(name = "store.create_model_version", skip_all, fields(project = %project))]
    async fn create_model_version(
        &self,
        project: ProjectId,
        version: &NewModelVersion,
    ) -> StoreResult<ModelVersion> {
        dispatch!(self, store => store.create_model_version(project, version))
    }

    async fn model_versions(&self, project: ProjectId) -> StoreResult<Vec<ModelVersion>> {
        dispatch!(self, store => store.model_versions(project))
    }

    #[tracing::instrument(name = "store.model_version", skip_all, fields(project = %project, version = %version))]
    async fn model_version(
        &self,
        project: ProjectId,
        version: ModelVersionId,
    ) -> StoreResult<ModelVersion> {
        dispatch!(self, store => store.model_version(project, version))
    }

    #[tracing::instrument(name = "store.set_model_metrics", skip_all, fields(project = %project, version = %version))]
    async fn set_model_metrics(
        &self,
        project: ProjectId,
        version: ModelVersionId,
        metrics: &serde_json::Value,
    ) -> StoreResult<()> {
        dispatch!(self, store => store.set_model_metrics(project, version, metrics))
    }

    #[tracing::instrument(name = "store.promote_model_version", skip_all, fields(project = %project, version = %version))]
    async fn promote_model_version(
        &self,
        project: ProjectId,
        version: ModelVersionId,
        actor: impl Into<crate::audit::Actor> + Send,
    ) -> StoreResult<Promotion> {
        let actor: crate::audit::Actor = actor.into();
        dispatch!(self, store => store.promote_model_version(project, version, actor))
    }

    #[tracing::instrument(name = "store.rollback_model_version", skip_all, fields(project = %project))]
    async fn rollback_model_version(
        &self,
        project: ProjectId,
        actor: impl Into<crate::audit::Actor> + Send,
    ) -> StoreResult<Promotion> {
        let actor: crate::audit::Actor = actor.into();
        dispatch!(self, store => store.rollback_model_version(project, actor))
    }

    async fn promoted_model_version(
        &self,
        project: ProjectId,
    ) -> StoreResult<Option<ModelVersion>> {
        dispatch!(self, store => store.promoted_model_version(project))
    }

    async fn model_promotions(&self, project: ProjectId) -> StoreResult<Vec<Promotion>> {
        dispatch!(self, store => store.model_promotions(project))
    }

    async fn create_api_key(&self, grant: &KeyGrant, name: &str) -> StoreResult<CreatedApiKey> {
        dispatch!(self, store => store.create_api_key(grant, name))
    }

    async fn api_keys(&self, project: Option<ProjectId>) -> StoreResult<Vec<ApiKey>> {
        dispatch!(self, store => store.api_keys(project))
    }

    async fn revoke_api_key(&self, project: Option<ProjectId>, key: i64) -> StoreResult<ApiKey> {
        dispatch!(self, store => store.revoke_api_key(project, key))
    }

    async fn authenticate_api_key(&self, key: &str) -> StoreResult<Option<ApiKey>> {
        dispatch!(self, store => store.authenticate_api_key(key))
    }

    async fn create_user(&self, user: &crate::user::NewUser) -> StoreResult<crate::user::User> {
        dispatch!(self, store => store.create_user(user))
    }

    async fn user_credentials(
        &self,
        username: &crate::user::Username,
    ) -> StoreResult<Option<crate::user::UserCredentials>> {
        dispatch!(self, store => store.user_credentials(username))
    }

    async fn users(&self) -> StoreResult<Vec<crate::user::User>> {
        dispatch!(self, store => store.users())
    }

    async fn set_user_role(
        &self,
        user: i64,
        role: crate::user::Role,
    ) -> StoreResult<crate::user::User> {
        dispatch!(self, store => store.set_user_role(user, role))
    }

    async fn set_user_password(&self, user: i64, password_hash: &str) -> StoreResult<()> {
        dispatch!(self, store => store.set_user_password(user, password_hash))
    }

    async fn create_session(&self, session: &crate::user::NewSession) -> StoreResult<()> {
        dispatch!(self, store => store.create_session(session))
    }

    async fn session(
        &self,
        token_hash: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<crate::user::Session>> {
        dispatch!(self, store => store.session(token_hash, now))
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        dispatch!(self, store => store.delete_session(token_hash))
    }

    #[tracing::instrument(name = "store.browse_tickets", skip_all, fields(project = %project))]
    async fn browse_tickets(
        &self,
        project: ProjectId,
        filter: &super::web::TicketFilter,
    ) -> StoreResult<super::web::TicketPage> {
        dispatch!(self, store => store.browse_tickets(project, filter))
    }

    async fn project_list(&self) -> StoreResult<Vec<Project>> {
        dispatch!(self, store => store.project_list())
    }

    async fn ticket_sources(&self, project: ProjectId) -> StoreResult<Vec<String>> {
        dispatch!(self, store => store.ticket_sources(project))
    }

    async fn tag_counts(&self, project: ProjectId) -> StoreResult<Vec<super::web::TagCount>> {
        dispatch!(self, store => store.tag_counts(project))
    }

    async fn tag_volume(
        &self,
        project: ProjectId,
        from: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<super::web::TagVolume>> {
        dispatch!(self, store => store.tag_volume(project, from, until))
    }

    async fn tag_outcomes(&self, project: ProjectId) -> StoreResult<Vec<super::web::TagOutcome>> {
        dispatch!(self, store => store.tag_outcomes(project))
    }

    async fn labelling_totals(
        &self,
        project: ProjectId,
    ) -> StoreResult<super::web::LabellingTotals> {
        dispatch!(self, store => store.labelling_totals(project))
    }

    async fn labelling_totals_between(
        &self,
        project: ProjectId,
        from: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<super::web::LabellingTotals> {
        dispatch!(self, store => store.labelling_totals_between(project, from, until))
    }

    #[tracing::instrument(name = "store.rebuild_dashboard_counts", skip_all, fields(project = %project))]
    async fn rebuild_dashboard_counts(&self, project: ProjectId) -> StoreResult<()> {
        dispatch!(self, store => store.rebuild_dashboard_counts(project))
    }

    async fn ticket_fits(
        &self,
        project: ProjectId,
        from: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> StoreResult<Vec<super::web::TicketFit>> {
        dispatch!(self, store => store.ticket_fits(project, from, until, limit))
    }

    async fn begin_import(
        &self,
        project: &ProjectName,
        create: Option<LabelMode>,
        set_by: &str,
    ) -> StoreResult<AnyImport> {
        match self {
            AnyStore::Sqlite(store) => Ok(AnyImport::Sqlite(
                store.begin_import(project, create, set_by).await?,
            )),
            AnyStore::Postgres(store) => Ok(AnyImport::Postgres(
                store.begin_import(project, create, set_by).await?,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_password("postgres://user:secret@db:5432/x"),
            "postgres://user:***@db:5432/x"
        );
        assert_eq!(
            redact_password("postgres://user@db/x"),
            "postgres://user@db/x"
        );
    }
}
