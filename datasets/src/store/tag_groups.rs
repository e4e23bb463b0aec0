//! Tag groups of a project's taxonomy: list, create, rename and delete them (tags move
//! between groups through `TagStore::update_tag`). Their SQL is in `sql/tag_groups.rs`.

use super::capability::store_capability;
use super::rows::corrupt;
use crate::error::{StoreError, StoreResult};
use crate::ids::{ProjectId, TagGroupId};
use crate::names::TagGroupName;
use crate::tag_group::{NewTagGroup, TagGroup};

store_capability! {
    /// A project's tag groups.
    pub trait TagGroupStore {
        /// The project's groups by position (the default group first unless moved), then id.
        async fn list_tag_groups(&self, project: ProjectId) -> StoreResult<Vec<TagGroup>>;
        /// Adds a group after the others; a name the project already has (in any case) is
        /// a conflict.
        async fn create_tag_group(
            &self,
            project: ProjectId,
            group: &NewTagGroup,
        ) -> StoreResult<TagGroup>;
        async fn rename_tag_group(
            &self,
            project: ProjectId,
            group: TagGroupId,
            name: &TagGroupName,
        ) -> StoreResult<TagGroup>;
        /// Deletes an empty group (no tag, archived ones included); the default group and a
        /// group with tags are a conflict.
        async fn delete_tag_group(&self, project: ProjectId, group: TagGroupId) -> StoreResult<TagGroup>;
    }
}

pub(crate) const TAG_GROUP_COLUMNS: &str = "id, project_id, name, choice, position, is_default";

#[derive(sqlx::FromRow)]
pub(crate) struct TagGroupRow {
    pub(crate) id: i64,
    pub(crate) project_id: i64,
    pub(crate) name: String,
    pub(crate) choice: String,
    pub(crate) position: i64,
    pub(crate) is_default: bool,
}

impl TryFrom<TagGroupRow> for TagGroup {
    type Error = StoreError;
    fn try_from(row: TagGroupRow) -> Result<Self, StoreError> {
        Ok(TagGroup {
            id: TagGroupId(row.id),
            project_id: ProjectId(row.project_id),
            name: TagGroupName::parse(&row.name).map_err(|e| corrupt("tag group name", e))?,
            choice: row.choice.parse().map_err(|e| corrupt("group choice", e))?,
            position: row.position,
            is_default: row.is_default,
        })
    }
}

pub(crate) fn group_conflict(name: &TagGroupName) -> impl FnOnce() -> String + '_ {
    move || {
        format!(
            "a tag group named {:?} already exists in this project",
            name.as_str()
        )
    }
}
