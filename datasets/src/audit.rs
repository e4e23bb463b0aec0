//! The audit log: who changed what an operator must be able to account for — promotions and
//! rollbacks, API keys, the taxonomy, accounts, connectors and outgoing webhooks. Entries are
//! written by the store in the same transaction as the change where the store call is one
//! transaction that knows its actor (promotion, rollback, tag merge), and by the caller right
//! after the change otherwise; they are never updated or deleted.

use crate::api_key::ApiKey;
use crate::ids::ProjectId;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "&'static str")]
pub enum AuditAction {
    ProjectCreate,
    ProjectLanguages,
    ProjectGlossary,
    ModelPromote,
    ModelRollback,
    KeyCreate,
    KeyRevoke,
    TagCreate,
    TagRename,
    TagRules,
    TagUpdate,
    TagArchive,
    TagMerge,
    GroupCreate,
    GroupRename,
    GroupDelete,
    UserCreate,
    UserRole,
    UserPassword,
    ConnectorAdd,
    ConnectorRemove,
    WebhookAdd,
    WebhookRemove,
}

stored_enum!(AuditAction, "audit action", {
    ProjectCreate => "project.create",
    ProjectLanguages => "project.languages",
    ProjectGlossary => "project.glossary",
    ModelPromote => "model.promote",
    ModelRollback => "model.rollback",
    KeyCreate => "key.create",
    KeyRevoke => "key.revoke",
    TagCreate => "tag.create",
    TagRename => "tag.rename",
    TagRules => "tag.rules",
    TagUpdate => "tag.update",
    TagArchive => "tag.archive",
    TagMerge => "tag.merge",
    GroupCreate => "group.create",
    GroupRename => "group.rename",
    GroupDelete => "group.delete",
    UserCreate => "user.create",
    UserRole => "user.role",
    UserPassword => "user.password",
    ConnectorAdd => "connector.add",
    ConnectorRemove => "connector.remove",
    WebhookAdd => "webhook.add",
    WebhookRemove => "webhook.remove",
});

impl From<AuditAction> for &'static str {
    fn from(action: AuditAction) -> Self {
        action.as_str()
    }
}

/// Who made a change: the one value both the audit log and the histories that name an actor
/// (promotions, label events) are written from, so they cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person signed in to the workbench, by username.
    User(String),
    /// A request made with an API key (never its secret).
    ApiKey { id: i64, name: String },
    /// The `tagger` command line, with the name `--actor` gave (or the OS user) if any: the
    /// command line is trusted, not authenticated, so the log says `cli` whatever the name.
    Cli(Option<String>),
    /// Anything else, by the name given: the product's own jobs (the retraining policy) and
    /// tests.
    Named(String),
}

impl Actor {
    /// The actor of a request made with `key`.
    pub fn api_key(key: &ApiKey) -> Self {
        Self::ApiKey {
            id: key.id,
            name: key.name.clone(),
        }
    }

    /// The name histories record (`model_promotions.actor`, label events): unchanged from
    /// before the audit log, so existing histories read the same.
    pub fn history_name(&self) -> String {
        match self {
            Self::User(name) => format!("web:{name}"),
            Self::ApiKey { name, .. } => format!("api-key:{name}"),
            Self::Cli(Some(name)) => name.clone(),
            Self::Cli(None) => "cli".into(),
            Self::Named(name) => name.clone(),
        }
    }

    /// The audit log's `actor`: `user:<username>`, `api-key:<key id>`, `cli`, or the name.
    /// Key ids, not names, because names need not be unique.
    pub fn audit_id(&self) -> String {
        match self {
            Self::User(name) => format!("user:{name}"),
            Self::ApiKey { id, .. } => format!("api-key:{id}"),
            Self::Cli(_) => "cli".into(),
            Self::Named(name) => name.clone(),
        }
    }

    /// A readable name to show beside `audit_id` (the username, the key's name, …).
    pub fn display_name(&self) -> String {
        match self {
            Self::User(name) | Self::ApiKey { name, .. } | Self::Named(name) => name.clone(),
            Self::Cli(Some(name)) => name.clone(),
            Self::Cli(None) => "cli".into(),
        }
    }
}

impl From<&str> for Actor {
    fn from(name: &str) -> Self {
        Self::Named(name.to_string())
    }
}

impl From<&String> for Actor {
    fn from(name: &String) -> Self {
        Self::Named(name.clone())
    }
}

impl From<String> for Actor {
    fn from(name: String) -> Self {
        Self::Named(name)
    }
}

impl From<&Actor> for Actor {
    fn from(actor: &Actor) -> Self {
        actor.clone()
    }
}

/// One change to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub actor: Actor,
    pub action: AuditAction,
    /// The project the change belongs to; `None` for instance-wide things (accounts,
    /// instance-admin keys).
    pub project: Option<ProjectId>,
    /// What was changed, as a person reads it: `tag 12 "Billing"`, `key 7 "crm"`, `user ana`.
    pub target: String,
    /// The change itself (old and new values, scopes, …); never a secret.
    pub details: serde_json::Value,
}

impl NewAuditEntry {
    pub fn new(
        actor: &Actor,
        action: AuditAction,
        project: Option<ProjectId>,
        target: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        Self {
            actor: actor.clone(),
            action,
            project,
            target: target.into(),
            details,
        }
    }
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `user:<username>`, `api-key:<key id>`, `cli`, or a job's name.
    pub actor: String,
    /// The username, key name or name behind `actor`.
    pub actor_name: String,
    pub action: String,
    pub project_id: Option<ProjectId>,
    pub target: String,
    pub details: serde_json::Value,
}

/// The most entries one page of the log holds.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<AuditAction>,
    /// An exact `actor` (`user:ana`, `api-key:7`, `cli`).
    pub actor: Option<String>,
    pub project: Option<ProjectId>,
    /// Only entries older than this id: the cursor of the next page.
    pub before: Option<i64>,
    /// At most this many (capped at `MAX_AUDIT_PAGE`).
    pub limit: u32,
}
