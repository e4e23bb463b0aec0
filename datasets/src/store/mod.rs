//! The `Store`: everything the product keeps, on SQLite (embedded default) or PostgreSQL
//! (production), chosen by the database URL. Both backends run the same SQL where the two
//! dialects agree (see `common.rs`) and their own where speed needs it (bulk import).

pub mod any;
pub mod api_keys;
pub mod audit_store;
pub mod backfill_store;
mod capability;
mod common;
pub mod connector_store;
pub mod dashboard;
pub mod entity_store;
pub mod labels;
mod pool_hygiene;
mod postgres;
pub mod projects;
pub mod registry;
pub mod review;
mod rows;
pub mod schema;
pub mod server_secrets;
mod sqlite;
pub mod tag_groups;
pub mod tags;
pub mod tickets;
pub mod training_runs;
pub mod users;
pub mod webhook_store;
pub mod writeback_store;

pub use any::{AnyImport, AnyStore};
pub use api_keys::ApiKeyStore;
pub use audit_store::AuditStore;
pub use backfill_store::BackfillStore;
pub use connector_store::ConnectorStore;
pub use dashboard::DashboardStore;
pub use dashboard::{
    LabellingTotals, MAX_BROWSE_PAGE, TagCount, TagOutcome, TagVolume, TicketFilter, TicketFit,
    TicketPage,
};
pub use entity_store::EntityStore;
pub use labels::LabelStore;
pub use postgres::{PgImport, PgStore};
pub use projects::ProjectStore;
pub use registry::RegistryStore;
pub use review::ReviewStore;
pub use schema::SchemaStore;
pub use server_secrets::ServerSecrets;
pub use sqlite::{SqliteImport, SqliteStore};
pub use tag_groups::TagGroupStore;
pub use tags::TagStore;
pub use tickets::TicketStore;
pub use training_runs::TrainingRunStore;
pub use users::UserStore;
pub use webhook_store::WebhookStore;
pub use writeback_store::WriteBackStore;

use crate::error::StoreResult;
use crate::ids::{TagGroupId, TagId};
use crate::names::{ProjectName, TagName};
use crate::project::{LabelMode, Project};
use crate::tag_group::{NewTagGroup, TagGroup};
use crate::ticket::NewTicket;
use std::collections::HashMap;
use std::future::Future;

/// How many tickets one page of `tickets_after` may hold.
pub const MAX_PAGE: u32 = 5000;

/// One row of a bulk import: a ticket and the tags the file gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    pub ticket: NewTicket,
    pub tags: Vec<TagId>,
    /// The model's verdict, stored with the ticket (see `crate::ingest`).
    pub verdict: Option<crate::ingest::ModelVerdict>,
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
    /// Adds a tag found in the file to the project's default group.
    fn create_tag(&mut self, name: &TagName) -> impl Future<Output = StoreResult<TagId>> + Send;
    /// The project's tag groups in listing order (those the import created included).
    fn groups(&self) -> &[TagGroup];
    /// The group of each of the project's tags.
    fn tag_groups(&self) -> &HashMap<TagId, TagGroupId>;
    /// Adds a tag group the file names; a name the project has is a conflict.
    fn create_tag_group(
        &mut self,
        group: &NewTagGroup,
    ) -> impl Future<Output = StoreResult<TagGroup>> + Send;
    /// Adds a tag found in the file to one of the project's groups.
    fn create_tag_in(
        &mut self,
        name: &TagName,
        group: TagGroupId,
    ) -> impl Future<Output = StoreResult<TagId>> + Send;
    /// Stores a batch of rows and commits them: upserts the tickets and replaces their
    /// imported labels.
    fn write(&mut self, rows: Vec<ImportRow>) -> impl Future<Output = StoreResult<()>> + Send;
    /// Commits what is left (tags created since the last `write`).
    fn commit(self) -> impl Future<Output = StoreResult<ImportCounts>> + Send;
}

/// Everything the product stores, every capability at once: for code that needs many (the
/// server's state, the commands, the worker). Code that needs one capability asks for that
/// one (`&impl TicketStore`). Every multi-row write is one transaction.
pub trait Store:
    SchemaStore
    + ProjectStore
    + TagStore
    + TagGroupStore
    + TicketStore
    + LabelStore
    + RegistryStore
    + ApiKeyStore
    + ReviewStore
    + UserStore
    + DashboardStore
    + TrainingRunStore
    + Clone
    + Send
    + Sync
    + 'static
{
    type Import: ImportWriter;

    /// Starts a bulk import into the named project; creates it when `create` is given.
    fn begin_import(
        &self,
        project: &ProjectName,
        create: Option<LabelMode>,
        set_by: &str,
    ) -> impl Future<Output = StoreResult<Self::Import>> + Send;
}

/// Every capability trait, for code that calls store methods on a concrete store.
pub mod prelude {
    pub use super::{
        ApiKeyStore, AuditStore, BackfillStore, ConnectorStore, DashboardStore, EntityStore,
        ImportWriter, LabelStore, ProjectStore, RegistryStore, ReviewStore, SchemaStore,
        ServerSecrets, Store, TagGroupStore, TagStore, TicketStore, TrainingRunStore, UserStore,
        WebhookStore, WriteBackStore,
    };
}
