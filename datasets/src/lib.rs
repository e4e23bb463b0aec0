//! Domain types of the ticket tagger, the `Store` that keeps them on SQLite or PostgreSQL,
//! import and export of ticket files, and the synthetic demo data.

/// A closed set of states stored as text: `ALL`, `as_str` and `FromStr` from one list, so the
/// stored names and the parser never drift apart.
macro_rules! stored_enum {
    ($name:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == s)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " {:?}"), s))
            }
        }
    };
}

pub mod api_key;
pub mod api_schema;
pub mod audit;
pub mod connector;
pub mod demo;
pub mod demo_project;
pub mod error;
pub mod export;
pub mod ids;
pub mod import;
pub mod ingest;
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
pub mod tag_group;
pub mod tag_merge;
pub mod test_db;
pub mod text;
pub mod ticket;
pub mod training_run;
pub mod user;
pub mod webhook;

pub use api_key::{ApiKey, CreatedApiKey, KeyGrant, Scope, Scopes};
pub use audit::{Actor, AuditAction, AuditEntry, AuditFilter, NewAuditEntry};
pub use error::{StoreError, StoreErrorKind, StoreResult, ValidationError};
pub use ids::{
    ConnectorId, DeliveryId, ModelVersionId, ProjectId, TagGroupId, TagId, TicketId, TrainingRunId,
    WebhookDeliveryId, WebhookId, WriteBackId,
};
pub use label::{Label, LabelAction, LabelEvent, LabelSource};
pub use language::Language;
pub use model_kind::{KindInfo, ModelKind, UnknownModelKind};
pub use model_version::{ModelVersion, NewModelVersion};
pub use names::{NameError, ProjectName, TagGroupName, TagName};
pub use project::{LabelMode, Project, ProjectSummary};
pub use registry::{Promotion, PromotionAction};
pub use review::{
    AnswerKind, LabelSubmission, NewQueueEntry, QueueEntry, ReviewQueueStats, ReviewSettings,
    SECOND_OPINION_STRATEGY,
};
pub use store::AnyStore;
pub use store::prelude::*;
pub use tag::{KeywordRules, NewTag, Tag, TagUpdate};
pub use tag_group::{GroupChoice, NewTagGroup, TagGroup};
pub use tag_merge::TagMerge;
pub use ticket::{LabelledTicket, NewTicket, Split, Ticket, TicketQuery, UpsertedTicket};
pub use training_run::{NewTrainingRun, RunOutcome, RunStatus, TrainingRun};
pub use user::{NewSession, NewUser, Role, Session, User, UserCredentials, Username};
