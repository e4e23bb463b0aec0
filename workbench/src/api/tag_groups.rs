//! A project's tag groups over the API: list, create, rename, delete (only when empty).
//! A tag moves between groups with `PATCH …/tags/{tag}` and `{"group": name}`.

use super::auth::{Authorized, scope};
use super::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use datasets::store::prelude::*;
use datasets::{AuditAction, NewTagGroup, TagGroup, TagGroupId, TagGroupName};
use serde::Deserialize;
use utoipa::ToSchema;

/// Gives the model in service the project's taxonomy as it is now, so a verdict follows a
/// group made, renamed or deleted, or a tag moved, at once. A failure to read it only delays
/// that to the next model swap: the change itself is stored.
pub(crate) async fn refresh_served_taxonomy(state: &AppState, project: datasets::ProjectId) {
    let taxonomy = state.store.list_tags(project).await;
    let groups = state.store.list_tag_groups(project).await;
    match (taxonomy, groups) {
        (Ok(taxonomy), Ok(groups)) => state.tagging.refresh_taxonomy(project, &taxonomy, &groups),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%project, %error, "the model in service keeps the old tag groups until its next swap");
        }
    }
}

/// The project's groups, in listing order (the default group first unless moved).
pub async fn list(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
) -> Result<ApiJson<Vec<TagGroup>>, ApiError> {
    Ok(ApiJson(
        state.store.list_tag_groups(authorized.project.id).await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiJson(request): ApiJson<NewTagGroup>,
) -> Result<(StatusCode, ApiJson<TagGroup>), ApiError> {
    let group = state
        .store
        .create_tag_group(authorized.project.id, &request)
        .await?;
    crate::audit_trail::record(
        &state.store,
        &authorized.audit_actor(),
        AuditAction::GroupCreate,
        Some(authorized.project.id),
        crate::audit_trail::group_target(&group),
        serde_json::json!({ "name": group.name.as_str(), "choice": group.choice.as_str() }),
    )
    .await;
    refresh_served_taxonomy(&state, authorized.project.id).await;
    Ok((StatusCode::CREATED, ApiJson(group)))
}

/// The body of `PATCH …/tag-groups/{group}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameTagGroup {
    /// The new name, unique in the project regardless of case.
    name: TagGroupName,
}

pub async fn rename(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiPath((_, group)): ApiPath<(String, i64)>,
    ApiJson(request): ApiJson<RenameTagGroup>,
) -> Result<ApiJson<TagGroup>, ApiError> {
    let renamed = crate::audit_trail::rename_tag_group(
        &state.store,
        &authorized.audit_actor(),
        authorized.project.id,
        TagGroupId(group),
        &request.name,
    )
    .await?;
    refresh_served_taxonomy(&state, authorized.project.id).await;
    Ok(ApiJson(renamed))
}

/// Deletes an empty group; answers the group as it was.
pub async fn delete(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiPath((_, group)): ApiPath<(String, i64)>,
) -> Result<ApiJson<TagGroup>, ApiError> {
    let deleted = crate::audit_trail::delete_tag_group(
        &state.store,
        &authorized.audit_actor(),
        authorized.project.id,
        TagGroupId(group),
    )
    .await?;
    refresh_served_taxonomy(&state, authorized.project.id).await;
    Ok(ApiJson(deleted))
}
