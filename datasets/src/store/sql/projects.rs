use super::*;
use sqlx::Transaction;

impl Backend {
    /// The project an import writes into, found or (with `create`) created, and its tags and
    /// tag groups, read inside the import's transaction.
    pub(crate) async fn import_target_in(
        tx: &mut Transaction<'static, Db>,
        project: &ProjectName,
        create: Option<LabelMode>,
    ) -> StoreResult<(Project, ImportTaxonomy)> {
        let existing: Option<ProjectRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            PROJECT_COLUMNS,
            " FROM projects WHERE name_key = $1"
        ))
        .bind(project.folded())
        .fetch_optional(&mut **tx)
        .await?;
        let project_row: Project = match (existing, create) {
            (Some(row), _) => row.try_into()?,
            (None, Some(mode)) => {
                let row: ProjectRow = sqlx::query_as(const_str::concat!(
                    "INSERT INTO projects (name, name_key, label_mode, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING ",
                    PROJECT_COLUMNS
                ))
                .bind(project.as_str())
                .bind(project.folded())
                .bind(mode.as_str())
                .bind(Utc::now())
                .fetch_one(&mut **tx)
                .await?;
                row.try_into()?
            }
            (None, None) => {
                return Err(StoreError::NotFound(format!(
                    "project {:?}",
                    project.as_str()
                )));
            }
        };
        let tag_rows: Vec<TagRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            TAG_COLUMNS,
            " FROM tags WHERE project_id = $1"
        ))
        .bind(project_row.id)
        .fetch_all(&mut **tx)
        .await?;
        let tags: Vec<Tag> = convert_all(tag_rows)?;
        let groups = Self::tag_groups_in(tx, project_row.id).await?;
        let taxonomy = ImportTaxonomy {
            tags: tags.iter().map(|t| (t.name.folded(), t.id)).collect(),
            group_of: tags.iter().map(|t| (t.id, t.group_id)).collect(),
            groups,
        };
        Ok((project_row, taxonomy))
    }
}

impl ProjectStore for Backend {
    async fn create_project(&self, name: &ProjectName, mode: LabelMode) -> StoreResult<Project> {
        let row: ProjectRow = sqlx::query_as(const_str::concat!(
            "INSERT INTO projects (name, name_key, label_mode, created_at) VALUES ($1, $2, $3, $4) RETURNING ",
            PROJECT_COLUMNS
        ))
        .bind(name.as_str())
        .bind(name.folded())
        .bind(mode.as_str())
        .bind(Utc::now())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            conflict_on_unique(e, || format!("a project named {:?} already exists", name.as_str()))
        })?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(project = %id))]
    async fn project(&self, id: ProjectId) -> StoreResult<Project> {
        let row: Option<ProjectRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            PROJECT_COLUMNS,
            " FROM projects WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| project_not_found(id))?.try_into()
    }

    async fn project_by_name(&self, name: &ProjectName) -> StoreResult<Option<Project>> {
        let row: Option<ProjectRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            PROJECT_COLUMNS,
            " FROM projects WHERE name_key = $1"
        ))
        .bind(name.folded())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Project::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(project = %project))]
    async fn set_project_languages(
        &self,
        project: ProjectId,
        languages: &[crate::language::Language],
    ) -> StoreResult<Project> {
        let row: Option<ProjectRow> = sqlx::query_as(const_str::concat!(
            "UPDATE projects SET languages = $2 WHERE id = $1 RETURNING ",
            PROJECT_COLUMNS
        ))
        .bind(project)
        .bind(crate::language::Language::join(languages))
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| project_not_found(project))?.try_into()
    }

    async fn list_projects(&self) -> StoreResult<Vec<ProjectSummary>> {
        let rows: Vec<ProjectSummaryRow> = sqlx::query_as(
            "SELECT p.id, p.name, p.label_mode, p.languages, p.created_at, \
             (SELECT count(*) FROM tickets t WHERE t.project_id = p.id) AS tickets, \
             (SELECT count(*) FROM tags g WHERE g.project_id = p.id) AS tags \
             FROM projects p ORDER BY p.name_key",
        )
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }

    async fn project_list(&self) -> StoreResult<Vec<crate::project::Project>> {
        let rows: Vec<ProjectRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            PROJECT_COLUMNS,
            " FROM projects ORDER BY name_key"
        ))
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }
}
