//! Domain types of the ticket tagger, the `Store` that keeps them on SQLite or PostgreSQL,
//! import and export of ticket files, and the synthetic demo data.

pub mod api_key;
pub mod connector;
pub mod demo;
pub mod demo_project;
pub mod error;
pub mod export;
pub mod ids;
pub mod import;
pub mod label;
pub mod language;
pub mod limits;
pub mod model_kind;
pub mod model_version;
pub mod names;
pub mod project;
pub mod registry;
pub mod review;
pub mod split;
pub mod store;
pub mod tag;
pub mod tag_merge;
pub mod test_db;
pub mod text;
pub mod ticket;
pub mod training_run;
pub mod user;
pub mod webhook;

pub use api_key::{ApiKey, CreatedApiKey, KeyGrant, Scope, Scopes};
pub use error::{StoreError, StoreErrorKind, StoreResult, ValidationError};
pub use ids::{
    ConnectorId, DeliveryId, ModelVersionId, ProjectId, TagId, TicketId, TrainingRunId,
    WebhookDeliveryId, WebhookId, WriteBackId,
};
pub use label::{Label, LabelAction, LabelEvent, LabelSource};
pub use language::Language;
pub use model_kind::{KindInfo, ModelKind, UnknownModelKind};
pub use model_version::{ModelVersion, NewModelVersion};
pub use names::{NameError, ProjectName, TagName};
pub use project::{LabelMode, Project, ProjectSummary};
pub use registry::{Promotion, PromotionAction};
pub use review::{
    AnswerKind, LabelSubmission, NewQueueEntry, QueueEntry, ReviewQueueStats, ReviewSettings,
    SECOND_OPINION_STRATEGY,
};
pub use store::{
    AnyStore, BackfillStore, ConnectorStore, ImportWriter, Store, WebhookStore, WriteBackStore,
};
pub use tag::{KeywordRules, NewTag, Tag, TagUpdate};
pub use tag_merge::TagMerge;
pub use ticket::{LabelledTicket, NewTicket, Split, Ticket, TicketQuery, UpsertedTicket};
pub use training_run::{NewTrainingRun, RunOutcome, RunStatus, TrainingRun};
pub use user::{NewSession, NewUser, Role, Session, User, UserCredentials, Username};
