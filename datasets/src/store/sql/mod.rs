//! The SQL both databases accept word for word (`$n` parameters, `ON CONFLICT`, `RETURNING`),
//! one file per aggregate, each implementing its capability for `Backend`.
//!
//! This directory is compiled twice: `sqlite.rs` and `postgres.rs` each declare it as their
//! child module (`#[path = "sql/mod.rs"] mod sql;`) after naming `Db` (the sqlx database),
//! `Backend` (the store type) and the few constants where the dialects differ
//! (`BEGIN_WRITE`, `PROMOTION_NOTIFY`, `REVIEW_LOCK`, `SETTLE_SETTINGS`, the `dialect`
//! module). So each query exists once, in plain Rust that rustfmt and editors read, and each
//! backend is still a concrete type with no generic bounds to satisfy.
//!
//! Rule for writes: a write transaction calls no other store method (on SQLite the writer pool
//! has one connection, and a nested call would wait for itself); helpers that run inside a
//! transaction take it as an argument (`…_in`).

mod api_keys;
mod audit;
mod backfill;
mod connectors;
mod dashboard;
mod entities;
mod labels;
mod projects;
mod registry;
mod review;
mod server_secrets;
mod tag_groups;
mod tags;
mod tickets;
mod training_runs;
mod users;
mod webhooks;
mod write_backs;

pub(crate) use audit::bind_audit_entry;

use super::{BEGIN_WRITE, Backend, Db, PROMOTION_NOTIFY, REVIEW_LOCK, SETTLE_SETTINGS, dialect};
use crate::api_key::{ApiKey, CreatedApiKey, KeyGrant};
use crate::error::{StoreError, StoreResult, ValidationError, conflict_on_unique};
use crate::ids::{ModelVersionId, ProjectId, TagId, TicketId};
use crate::label::{LabelAction, LabelEvent, LabelSource};
use crate::model_version::{ModelVersion, NewModelVersion};
use crate::names::{ProjectName, TagName};
use crate::project::{LabelMode, Project, ProjectSummary};
use crate::registry::{Promotion, PromotionAction};
use crate::store::api_keys::*;
use crate::store::common::*;
use crate::store::labels::*;
use crate::store::projects::*;
use crate::store::registry::*;
use crate::store::rows::*;
use crate::store::tags::*;
use crate::store::tickets::*;
use crate::store::{
    ApiKeyStore, LabelStore, MAX_PAGE, ProjectStore, RegistryStore, ReviewStore, TagGroupStore,
    TagStore, TicketStore, UserStore,
};
use crate::tag::{NewTag, Tag, TagUpdate};
use crate::ticket::{LabelledTicket, NewTicket, Ticket, TicketQuery, UpsertedTicket};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use std::collections::{HashMap, HashSet};
