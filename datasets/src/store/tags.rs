//! A project's taxonomy: create, edit, list and merge tags. Their SQL is in `sql/tags.rs`
//! (merging in `sql/tag_merge.rs`).

use super::capability::store_capability;
use super::rows::corrupt;
use crate::error::{StoreError, StoreResult};
use crate::ids::{ProjectId, TagGroupId, TagId};
use crate::names::TagName;
use crate::tag::{KeywordRules, NewTag, Tag, TagUpdate};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

store_capability! {
    /// A project's tags.
    pub trait TagStore {
        /// Adds a tag to the group `tag.group` names, or to the project's default group.
        async fn create_tag(&self, project: ProjectId, tag: &NewTag) -> StoreResult<Tag>;
        /// Changes a tag; `update.group` moves it to another group of its project.
        async fn update_tag(
            &self,
            project: ProjectId,
            tag: TagId,
            update: &TagUpdate,
        ) -> StoreResult<Tag>;
        /// All tags of the project, archived ones included, by name.
        async fn list_tags(&self, project: ProjectId) -> StoreResult<Vec<Tag>>;
        /// Merges tag `from` into `into` in one transaction: every label of `from` (all sources)
        /// moves to `into`, a ticket with both keeps one label per source (present if either
        /// was), the label history records the merge by `actor`, `from`'s keyword rules are
        /// appended to `into`'s, and `from` is archived.
        async fn merge_tags(
            &self,
            project: ProjectId,
            from: TagId,
            into: TagId,
            actor: impl Into<crate::audit::Actor> + Send,
        ) -> StoreResult<crate::tag_merge::TagMerge>;
    }
}

pub(crate) const TAG_COLUMNS: &str =
    "id, project_id, name, description, color, keywords, archived, group_id, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct TagRow {
    pub(crate) id: i64,
    pub(crate) project_id: i64,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) color: String,
    pub(crate) keywords: Json<KeywordRules>,
    pub(crate) archived: bool,
    pub(crate) group_id: i64,
    pub(crate) created_at: DateTime<Utc>,
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
            group_id: TagGroupId(row.group_id),
            created_at: row.created_at,
        })
    }
}
