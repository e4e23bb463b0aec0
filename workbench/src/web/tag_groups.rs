//! Tag groups on the taxonomy page (admins): add a group, rename or delete one (only when
//! empty, never the default group), and move a tag to another group. Every change is
//! recorded in the audit log, as the API's are, through `crate::audit_trail`.

use super::auth::CurrentUser;
use super::{WebError, WebResult, load_project, non_empty, redirect_with_flash};
use crate::api::tag_groups::refresh_served_taxonomy;
use crate::state::AppState;
use axum::extract::{Form, Path, State};
use datasets::store::prelude::*;
use datasets::{GroupChoice, NewTagGroup, Role, TagGroupId, TagGroupName, TagId, TagUpdate};
use serde::Deserialize;

fn group_name(raw: Option<&str>) -> WebResult<TagGroupName> {
    TagGroupName::parse(raw.unwrap_or_default()).map_err(|e| WebError::BadRequest(e.to_string()))
}

fn taxonomy_page(project: datasets::ProjectId) -> String {
    format!("/p/{project}/taxonomy")
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    csrf: Option<String>,
    name: Option<String>,
    /// `single` or `multi`.
    choice: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Form(form): Form<CreateForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let project = load_project(&state, project).await?;
    let name = group_name(form.name.as_deref())?;
    let choice: GroupChoice = non_empty(&form.choice)
        .ok_or_else(|| WebError::BadRequest("choose single or multi for the group".into()))?
        .parse()
        .map_err(|e: String| WebError::BadRequest(format!("{e} (expected single or multi)")))?;
    let group = state
        .store
        .create_tag_group(project.id, &NewTagGroup { name, choice })
        .await?;
    crate::audit_trail::record(
        &state.store,
        &user.actor(),
        datasets::AuditAction::GroupCreate,
        Some(project.id),
        crate::audit_trail::group_target(&group),
        serde_json::json!({ "name": group.name.as_str(), "choice": group.choice.as_str() }),
    )
    .await;
    refresh_served_taxonomy(&state, project.id).await;
    Ok(redirect_with_flash(
        &taxonomy_page(project.id),
        "ok",
        &format!(
            "Group {} added ({}-choice).",
            group.name,
            group.choice.as_str()
        ),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    csrf: Option<String>,
    /// `rename` (with `name`) or `delete`.
    action: Option<String>,
    name: Option<String>,
}

/// Renames or deletes a group, as the form's button says.
pub async fn change(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, group)): Path<(i64, i64)>,
    Form(form): Form<ChangeForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let project = load_project(&state, project).await?;
    let group = TagGroupId(group);
    let message = match form.action.as_deref() {
        Some("rename") => {
            let name = group_name(form.name.as_deref())?;
            let renamed = crate::audit_trail::rename_tag_group(
                &state.store,
                &user.actor(),
                project.id,
                group,
                &name,
            )
            .await?;
            format!("Group renamed to {}.", renamed.name)
        }
        Some("delete") => {
            let deleted = crate::audit_trail::delete_tag_group(
                &state.store,
                &user.actor(),
                project.id,
                group,
            )
            .await?;
            format!("Group {} deleted.", deleted.name)
        }
        other => {
            return Err(WebError::BadRequest(format!(
                "unknown group action {:?} (expected rename or delete)",
                other.unwrap_or_default()
            )));
        }
    };
    refresh_served_taxonomy(&state, project.id).await;
    Ok(redirect_with_flash(
        &taxonomy_page(project.id),
        "ok",
        &message,
    ))
}

#[derive(Debug, Deserialize)]
pub struct MoveForm {
    csrf: Option<String>,
    tag: Option<String>,
    group: Option<String>,
}

/// Moves a tag to another group of the project.
pub async fn move_tag(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Form(form): Form<MoveForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let project = load_project(&state, project).await?;
    let tag = TagId(super::id_field(form.tag.as_deref(), || {
        "choose the tag to move".to_string()
    })?);
    let group = group_name(non_empty(&form.group))?;
    let update = TagUpdate {
        group: Some(group.clone()),
        ..TagUpdate::default()
    };
    let moved =
        crate::audit_trail::update_tag(&state.store, &user.actor(), project.id, tag, &update)
            .await?;
    refresh_served_taxonomy(&state, project.id).await;
    Ok(redirect_with_flash(
        &taxonomy_page(project.id),
        "ok",
        &format!("Tag {} moved to group {}.", moved.name, group),
    ))
}
