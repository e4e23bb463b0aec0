use super::*;
use crate::ids::TagGroupId;
use crate::names::TagGroupName;
use crate::store::tag_groups::*;
use crate::tag_group::{NewTagGroup, TagGroup};
use sqlx::Transaction;

impl Backend {
    /// The id of the group `name` names in the project, or of the project's default group;
    /// a name the project does not have is a conflict with its taxonomy (409), as an unknown
    /// tag name is.
    pub(crate) async fn tag_group_id_in(
        tx: &mut Transaction<'static, Db>,
        project: ProjectId,
        name: Option<&TagGroupName>,
    ) -> StoreResult<TagGroupId> {
        let found: Option<i64> = match name {
            Some(name) => {
                sqlx::query_scalar(
                    "SELECT id FROM tag_groups WHERE project_id = $1 AND name_key = $2",
                )
                .bind(project)
                .bind(name.folded())
                .fetch_optional(&mut **tx)
                .await?
            }
            None => {
                sqlx::query_scalar("SELECT id FROM tag_groups WHERE project_id = $1 AND is_default")
                    .bind(project)
                    .fetch_optional(&mut **tx)
                    .await?
            }
        };
        found.map(TagGroupId).ok_or_else(|| match name {
            Some(name) => StoreError::Conflict(format!(
                "group: project {project} has no tag group named {:?}",
                name.as_str()
            )),
            None => project_not_found(project),
        })
    }
}

impl Backend {
    /// The project's groups in listing order, read inside a transaction (an import's).
    pub(crate) async fn tag_groups_in(
        tx: &mut Transaction<'static, Db>,
        project: ProjectId,
    ) -> StoreResult<Vec<TagGroup>> {
        let rows: Vec<TagGroupRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            TAG_GROUP_COLUMNS,
            " FROM tag_groups WHERE project_id = $1 ORDER BY position, id"
        ))
        .bind(project)
        .fetch_all(&mut **tx)
        .await?;
        convert_all(rows)
    }

    /// Adds a group after the others inside a transaction (an import's); the same statement
    /// as `create_tag_group`.
    pub(crate) async fn create_tag_group_in(
        tx: &mut Transaction<'static, Db>,
        project: ProjectId,
        group: &NewTagGroup,
    ) -> StoreResult<TagGroup> {
        let row: TagGroupRow = sqlx::query_as(const_str::concat!(
            "INSERT INTO tag_groups (project_id, name, name_key, choice, position, is_default) \
             VALUES ($1, $2, $3, $4, \
             (SELECT COALESCE(MAX(position), -1) + 1 FROM tag_groups WHERE project_id = $1), FALSE) \
             RETURNING ",
            TAG_GROUP_COLUMNS
        ))
        .bind(project)
        .bind(group.name.as_str())
        .bind(group.name.folded())
        .bind(group.choice.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| conflict_on_unique(e, group_conflict(&group.name)))?;
        row.try_into()
    }

    /// Adds a tag an import found, with no description or rules yet, to `group`.
    pub(crate) async fn create_import_tag_in(
        tx: &mut Transaction<'static, Db>,
        project: ProjectId,
        name: &TagName,
        group: TagGroupId,
    ) -> StoreResult<TagId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tags (project_id, name, name_key, description, color, keywords, archived, group_id, created_at) \
             VALUES ($1, $2, $3, '', $4, '{}', FALSE, $5, $6) RETURNING id",
        )
        .bind(project)
        .bind(name.as_str())
        .bind(name.folded())
        .bind(crate::tag::DEFAULT_TAG_COLOR)
        .bind(group)
        .bind(Utc::now())
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| conflict_on_unique(e, tag_conflict(name)))?;
        Ok(TagId(id))
    }
}

impl TagGroupStore for Backend {
    async fn list_tag_groups(&self, project: ProjectId) -> StoreResult<Vec<TagGroup>> {
        let rows: Vec<TagGroupRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            TAG_GROUP_COLUMNS,
            " FROM tag_groups WHERE project_id = $1 ORDER BY position, id"
        ))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }

    #[tracing::instrument(skip_all, fields(project = %project))]
    async fn create_tag_group(
        &self,
        project: ProjectId,
        group: &NewTagGroup,
    ) -> StoreResult<TagGroup> {
        self.project(project).await?;
        let row: TagGroupRow = sqlx::query_as(const_str::concat!(
            "INSERT INTO tag_groups (project_id, name, name_key, choice, position, is_default) \
             VALUES ($1, $2, $3, $4, \
             (SELECT COALESCE(MAX(position), -1) + 1 FROM tag_groups WHERE project_id = $1), FALSE) \
             RETURNING ",
            TAG_GROUP_COLUMNS
        ))
        .bind(project)
        .bind(group.name.as_str())
        .bind(group.name.folded())
        .bind(group.choice.as_str())
        .fetch_one(self.writer())
        .await
        .map_err(|e| conflict_on_unique(e, group_conflict(&group.name)))?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(project = %project, group = %group))]
    async fn rename_tag_group(
        &self,
        project: ProjectId,
        group: TagGroupId,
        name: &TagGroupName,
    ) -> StoreResult<TagGroup> {
        let row: Option<TagGroupRow> = sqlx::query_as(const_str::concat!(
            "UPDATE tag_groups SET name = $1, name_key = $2 WHERE id = $3 AND project_id = $4 \
             RETURNING ",
            TAG_GROUP_COLUMNS
        ))
        .bind(name.as_str())
        .bind(name.folded())
        .bind(group)
        .bind(project)
        .fetch_optional(self.writer())
        .await
        .map_err(|e| conflict_on_unique(e, group_conflict(name)))?;
        row.ok_or_else(|| group_not_found(project, group))?
            .try_into()
    }

    #[tracing::instrument(skip_all, fields(project = %project, group = %group))]
    async fn delete_tag_group(
        &self,
        project: ProjectId,
        group: TagGroupId,
    ) -> StoreResult<TagGroup> {
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        let row: Option<TagGroupRow> = sqlx::query_as(const_str::concat!(
            "SELECT ",
            TAG_GROUP_COLUMNS,
            " FROM tag_groups WHERE id = $1 AND project_id = $2"
        ))
        .bind(group)
        .bind(project)
        .fetch_optional(&mut *tx)
        .await?;
        let found: TagGroup = row
            .ok_or_else(|| group_not_found(project, group))?
            .try_into()?;
        if found.is_default {
            return Err(StoreError::Conflict(format!(
                "tag group {:?} is the project's default group: new tags go there, so it cannot be deleted",
                found.name.as_str()
            )));
        }
        let tags: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tags WHERE group_id = $1")
            .bind(group)
            .fetch_one(&mut *tx)
            .await?;
        if tags > 0 {
            return Err(StoreError::Conflict(format!(
                "tag group {:?} still has {tags} tag(s), archived ones included: move them to another group first",
                found.name.as_str()
            )));
        }
        sqlx::query("DELETE FROM tag_groups WHERE id = $1")
            .bind(group)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(found)
    }
}

fn group_not_found(project: ProjectId, group: TagGroupId) -> StoreError {
    StoreError::NotFound(format!("tag group {group} in project {project}"))
}
