//! Rows as both databases return them, and their conversion into domain types. Enums are
//! stored as text and names re-validated, so a hand-edited database fails loudly, not subtly.

use crate::api_key::{ApiKey, KeyGrant, Scopes};
use crate::error::StoreError;
use crate::ids::{ModelVersionId, ProjectId, TagId, TicketId};
use crate::label::{Label, LabelEvent};
use crate::model_version::ModelVersion;
use crate::names::{ProjectName, TagName};
use crate::project::{Project, ProjectSummary};
use crate::registry::Promotion;
use crate::tag::{KeywordRules, Tag};
use crate::ticket::Ticket;
use chrono::{DateTime, Utc};
use sqlx::types::Json;

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("stored {what} is invalid: {detail}").into(),
    ))
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectRow {
    id: i64,
    name: String,
    label_mode: String,
    languages: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<ProjectRow> for Project {
    type Error = StoreError;
    fn try_from(row: ProjectRow) -> Result<Self, StoreError> {
        Ok(Project {
            id: ProjectId(row.id),
            name: ProjectName::parse(&row.name).map_err(|e| corrupt("project name", e))?,
            label_mode: row
                .label_mode
                .parse()
                .map_err(|e| corrupt("label mode", e))?,
            languages: crate::language::Language::parse_list(&row.languages)
                .map_err(|e| corrupt("project languages", e))?,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectSummaryRow {
    #[sqlx(flatten)]
    project: ProjectRow,
    tickets: i64,
    tags: i64,
}

impl TryFrom<ProjectSummaryRow> for ProjectSummary {
    type Error = StoreError;
    fn try_from(row: ProjectSummaryRow) -> Result<Self, StoreError> {
        Ok(ProjectSummary {
            project: row.project.try_into()?,
            tickets: row.tickets,
            tags: row.tags,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TagRow {
    id: i64,
    project_id: i64,
    name: String,
    description: String,
    color: String,
    keywords: Json<KeywordRules>,
    archived: bool,
    created_at: DateTime<Utc>,
}

impl TryFrom<TagRow> for Tag {
    type Error = StoreError;
    fn try_from(row: TagRow) -> Result<Self, StoreError> {
        Ok(Tag {
            id: TagId(row.id),
            project_id: ProjectId(row.project_id),
            name: TagName::parse(&row.name).map_err(|e| corrupt("tag name", e))?,
            description: row.description,
            color: row.color,
            keywords: row.keywords.0,
            archived: row.archived,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TicketRow {
    id: i64,
    project_id: i64,
    source: String,
    external_id: String,
    subject: String,
    body: String,
    metadata: Json<serde_json::Value>,
    split: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<TicketRow> for Ticket {
    type Error = StoreError;
    fn try_from(row: TicketRow) -> Result<Self, StoreError> {
        Ok(Ticket {
            id: TicketId(row.id),
            project_id: ProjectId(row.project_id),
            source: row.source,
            external_id: row.external_id,
            subject: row.subject,
            body: row.body,
            metadata: row.metadata.0,
            split: row.split.parse().map_err(|e| corrupt("split", e))?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LabelRow {
    ticket_id: i64,
    tag_id: i64,
    tag: String,
    source: String,
    set_by: String,
    confidence: Option<f32>,
    present: bool,
    updated_at: DateTime<Utc>,
}

impl TryFrom<LabelRow> for Label {
    type Error = StoreError;
    fn try_from(row: LabelRow) -> Result<Self, StoreError> {
        Ok(Label {
            ticket_id: TicketId(row.ticket_id),
            tag_id: TagId(row.tag_id),
            tag: TagName::parse(&row.tag).map_err(|e| corrupt("tag name", e))?,
            source: row.source.parse().map_err(|e| corrupt("label source", e))?,
            set_by: row.set_by,
            confidence: row.confidence,
            present: row.present,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LabelEventRow {
    ticket_id: i64,
    tag: String,
    source: String,
    set_by: String,
    confidence: Option<f32>,
    action: String,
    at: DateTime<Utc>,
}

impl TryFrom<LabelEventRow> for LabelEvent {
    type Error = StoreError;
    fn try_from(row: LabelEventRow) -> Result<Self, StoreError> {
        Ok(LabelEvent {
            ticket_id: TicketId(row.ticket_id),
            tag: TagName::parse(&row.tag).map_err(|e| corrupt("tag name", e))?,
            source: row.source.parse().map_err(|e| corrupt("label source", e))?,
            set_by: row.set_by,
            confidence: row.confidence,
            action: row.action.parse().map_err(|e| corrupt("label action", e))?,
            at: row.at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ModelVersionRow {
    id: i64,
    project_id: i64,
    kind: String,
    status: String,
    metrics: Json<serde_json::Value>,
    params: Json<serde_json::Value>,
    artifact_path: String,
    files: Json<std::collections::BTreeMap<String, String>>,
    training_fingerprint: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<ModelVersionRow> for ModelVersion {
    type Error = StoreError;

    fn try_from(row: ModelVersionRow) -> Result<Self, StoreError> {
        Ok(ModelVersion {
            id: ModelVersionId(row.id),
            project_id: ProjectId(row.project_id),
            kind: row.kind.parse().map_err(|e| corrupt("model kind", e))?,
            status: row.status,
            metrics: row.metrics.0,
            params: row.params.0,
            artifact_path: row.artifact_path,
            files: row.files.0,
            training_fingerprint: row.training_fingerprint,
            created_at: row.created_at,
        })
    }
}

/// Converts every row, failing on the first invalid one.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct PromotionRow {
    project_id: i64,
    version_id: i64,
    previous_version_id: Option<i64>,
    action: String,
    actor: String,
    at: DateTime<Utc>,
}

impl TryFrom<PromotionRow> for Promotion {
    type Error = StoreError;
    fn try_from(row: PromotionRow) -> Result<Self, StoreError> {
        Ok(Promotion {
            project_id: ProjectId(row.project_id),
            version: ModelVersionId(row.version_id),
            previous: row.previous_version_id.map(ModelVersionId),
            action: row
                .action
                .parse()
                .map_err(|e| corrupt("promotion action", e))?,
            actor: row.actor,
            at: row.at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: i64,
    project_id: Option<i64>,
    name: String,
    prefix: String,
    pub(crate) key_hash: String,
    scopes: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        let scopes: Scopes = row.scopes.parse().map_err(|e| corrupt("key scopes", e))?;
        let grant = match row.project_id {
            Some(project_id) if !scopes.is_empty() => KeyGrant::Project {
                project_id: ProjectId(project_id),
                scopes,
            },
            None if scopes.is_empty() => KeyGrant::InstanceAdmin,
            _ => return Err(corrupt("key scopes", "they do not fit the key's project")),
        };
        Ok(ApiKey {
            id: row.id,
            grant,
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}
