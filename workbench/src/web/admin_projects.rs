//! Projects and API keys (admins only): create a project with the default taxonomy, create
//! a project's API keys (the secret is shown once, on the answer to the form, and never
//! stored), and revoke them.

use super::auth::{CsrfForm, CurrentUser};
use super::{WebError, WebResult, non_empty, redirect_with_flash, render_page};
use crate::api::projects::{CreateProjectError, create_project_with_tags};
use crate::state::AppState;
use axum::extract::{Form, Path, State};
use datasets::demo::default_taxonomy;
use datasets::{LabelMode, ProjectId, ProjectName, Role, Store};
use minijinja::{Value, context};
use serde::Deserialize;

/// The page, with the secret of a key just created when there is one.
async fn page(state: &AppState, user: &CurrentUser, new_key: Option<Value>) -> WebResult {
    let mut projects = Vec::new();
    for project in state.store.project_list().await? {
        let keys: Vec<Value> = state
            .store
            .api_keys(project.id)
            .await?
            .iter()
            .map(|k| {
                context! {
                    id => k.id,
                    name => k.name.as_str(),
                    prefix => k.prefix.as_str(),
                    created => k.created_at.format("%Y-%m-%d %H:%M").to_string(),
                    revoked => k.revoked_at.map(|at| at.format("%Y-%m-%d %H:%M").to_string()),
                }
            })
            .collect();
        projects.push(context! {
            id => project.id.0,
            name => project.name.as_str(),
            mode => project.label_mode.as_str(),
            keys => keys,
        });
    }
    render_page(
        state,
        user,
        None,
        "admin",
        "admin_projects.html",
        context! { projects => projects, new_key => new_key },
    )
    .await
}

pub async fn list(State(state): State<AppState>, user: CurrentUser) -> WebResult {
    super::require(&user, Role::Admin)?;
    page(&state, &user, None).await
}

#[derive(Debug, Deserialize)]
pub struct CreateProjectForm {
    csrf: Option<String>,
    name: String,
    label_mode: String,
}

pub async fn create_project(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<CreateProjectForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let name = ProjectName::parse(&form.name).map_err(|e| WebError::BadRequest(e.to_string()))?;
    let mode: LabelMode = form.label_mode.parse().map_err(WebError::BadRequest)?;
    let (project, tags) = create_project_with_tags(&state.store, &name, mode, &default_taxonomy())
        .await
        .map_err(|error| match error {
            CreateProjectError::Tags(message) => WebError::BadRequest(message),
            CreateProjectError::Store(error) => error.into(),
        })?;
    Ok(redirect_with_flash(
        &format!("/p/{}/taxonomy", project.id),
        "ok",
        &format!(
            "Project {} created with the {} default tags; edit them here.",
            project.name.as_str(),
            tags.len()
        ),
    ))
}

#[derive(Debug, Deserialize)]
pub struct CreateKeyForm {
    csrf: Option<String>,
    name: String,
}

/// Creates a key and answers with the page itself (not a redirect), so the secret travels
/// once, in this response, and never in a cookie or a URL.
pub async fn create_key(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Form(form): Form<CreateKeyForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let project = state.store.project(ProjectId(project)).await?;
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(WebError::BadRequest(
            "a key needs a name of 1 to 100 characters (say who uses it)".into(),
        ));
    }
    let created = state.store.create_api_key(project.id, name).await?;
    let new_key = context! {
        project => project.name.as_str(),
        name => created.key.name.as_str(),
        secret => created.secret.as_str(),
    };
    page(&state, &user, Some(new_key)).await
}

pub async fn revoke_key(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, key)): Path<(i64, i64)>,
    Form(form): Form<CsrfForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let revoked = state.store.revoke_api_key(ProjectId(project), key).await?;
    Ok(redirect_with_flash(
        "/admin/projects",
        "ok",
        &format!("Key {} ({}) revoked.", revoked.name, revoked.prefix),
    ))
}
