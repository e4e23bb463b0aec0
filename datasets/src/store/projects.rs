//! Projects: create, read, list, and the languages a project's model serves. Their SQL
//! is in `sql/projects.rs`.

use super::capability::store_capability;
use super::rows::corrupt;
use crate::error::{StoreError, StoreResult};
use crate::ids::ProjectId;
use crate::names::ProjectName;
use crate::project::{LabelMode, Project, ProjectSummary};
use chrono::{DateTime, Utc};

store_capability! {
    /// Projects.
    pub trait ProjectStore {
        async fn create_project(&self, name: &ProjectName, mode: LabelMode) -> StoreResult<Project>;
        async fn project(&self, id: ProjectId) -> StoreResult<Project>;
        async fn project_by_name(&self, name: &ProjectName) -> StoreResult<Option<Project>>;
        async fn list_projects(&self) -> StoreResult<Vec<ProjectSummary>>;
        /// Sets the languages the project's model serves (none: every ticket is tagged).
        async fn set_project_languages(
            &self,
            project: ProjectId,
            languages: &[crate::language::Language],
        ) -> StoreResult<Project>;
        /// Every project, by name, without counts: what the navigation needs on every page.
        async fn project_list(&self) -> StoreResult<Vec<Project>>;
    }
}

pub(crate) const PROJECT_COLUMNS: &str = "id, name, label_mode, languages, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) label_mode: String,
    pub(crate) languages: String,
    pub(crate) created_at: DateTime<Utc>,
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
    pub(crate) project: ProjectRow,
    pub(crate) tickets: i64,
    pub(crate) tags: i64,
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
