//! Projects and API keys (admins only): create a project with the default taxonomy, edit its
//! glossary (product and component names found in tickets), create a project's API keys
//! with the scopes the admin ticks, or instance-admin keys (the secret is shown once, on the
//! answer to the form, and never stored), and revoke them.

use super::auth::{CsrfForm, CurrentUser};
use super::{WebError, WebResult, non_empty, redirect_with_flash, render_page};
use crate::api::projects::{CreateProjectError, create_project_with_tags};
use crate::state::AppState;
use axum::extract::{Form, Path, State};
use datasets::demo::default_taxonomy;
use datasets::store::prelude::*;
use datasets::{ApiKey, KeyGrant, LabelMode, ProjectId, ProjectName, Role, Scope};
use minijinja::{Value, context};
use serde::Deserialize;

/// A key as the page lists it.
fn key_row(key: &ApiKey) -> Value {
    let scopes: Vec<&str> = match &key.grant {
        KeyGrant::Project { scopes, .. } => scopes.iter().map(Scope::as_str).collect(),
        KeyGrant::InstanceAdmin => vec!["instance-admin"],
    };
    context! {
        id => key.id,
        name => key.name.as_str(),
        prefix => key.prefix.as_str(),
        scopes => scopes,
        created => key.created_at.format("%Y-%m-%d %H:%M").to_string(),
        revoked => key.revoked_at.map(|at| at.format("%Y-%m-%d %H:%M").to_string()),
    }
}

/// The page, with the secret of a key just created when there is one.
async fn page(state: &AppState, user: &CurrentUser, new_key: Option<Value>) -> WebResult {
    let mut projects = Vec::new();
    for project in state.store.project_list().await? {
        let keys: Vec<Value> = state
            .store
            .api_keys(Some(project.id))
            .await?
            .iter()
            .map(key_row)
            .collect();
        let glossary = state.store.glossary(project.id).await?;
        projects.push(context! {
            id => project.id.0,
            name => project.name.as_str(),
            mode => project.label_mode.as_str(),
            keys => keys,
            glossary => glossary.join("\n"),
            glossary_terms => glossary.len(),
        });
    }
    let instance_keys: Vec<Value> = state
        .store
        .api_keys(None)
        .await?
        .iter()
        .map(key_row)
        .collect();
    let scopes: Vec<Value> = Scope::ALL
        .iter()
        .map(|scope| context! { name => scope.as_str(), description => scope.description() })
        .collect();
    render_page(
        state,
        user,
        None,
        "admin",
        "admin_projects.html",
        context! {
            projects => projects,
            instance_keys => instance_keys,
            scopes => scopes,
            new_key => new_key,
        },
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
            CreateProjectError::DuplicateTag(message)
            | CreateProjectError::UnknownGroup(message) => WebError::Conflict(message),
            CreateProjectError::Store(error) => error.into(),
        })?;
    crate::audit_trail::project_created(&state.store, &user.actor(), &project, &tags).await;
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
pub struct GlossaryForm {
    csrf: Option<String>,
    /// One term per line.
    terms: String,
}

/// Replaces a project's glossary; its tickets' entities are extracted again in the
/// background.
pub async fn set_glossary(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Form(form): Form<GlossaryForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let project = state.store.project(ProjectId(project)).await?;
    let terms: Vec<String> = form.terms.lines().map(str::to_string).collect();
    let (stored, changed) =
        crate::glossary::replace(&state.store, &user.actor(), &project, &terms).await?;
    let message = if changed {
        format!(
            "Glossary of {} saved ({} terms); its tickets' entities are being extracted again.",
            project.name.as_str(),
            stored.len()
        )
    } else {
        format!("The glossary of {} is unchanged.", project.name.as_str())
    };
    Ok(redirect_with_flash(
        &format!("/admin/projects#glossary-{}", project.id),
        "ok",
        &message,
    ))
}

/// A key's name from a form: 1 to 100 characters, saying who uses it.
fn key_name(fields: &[(String, String)]) -> Result<&str, WebError> {
    let name = field(fields, "name").unwrap_or_default().trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(WebError::BadRequest(
            "a key needs a name of 1 to 100 characters (say who uses it)".into(),
        ));
    }
    Ok(name)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Creates a key and answers with the page itself (not a redirect), so the secret travels
/// once, in this response, and never in a cookie or a URL. The form's scope checkboxes
/// arrive as repeated `scope` fields, hence the list of pairs.
pub async fn create_key(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Form(fields): Form<Vec<(String, String)>>,
) -> WebResult {
    user.check_csrf(
        field(&fields, "csrf")
            .map(str::trim)
            .filter(|csrf| !csrf.is_empty()),
    )?;
    super::require(&user, Role::Admin)?;
    let project = state.store.project(ProjectId(project)).await?;
    let name = key_name(&fields)?;
    let scopes = fields
        .iter()
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| value.parse::<Scope>())
        .collect::<Result<datasets::Scopes, _>>()
        .map_err(|e| WebError::BadRequest(e.to_string()))?;
    if scopes.is_empty() {
        return Err(WebError::BadRequest(
            "tick at least one scope: what may the key do?".into(),
        ));
    }
    let grant = KeyGrant::Project {
        project_id: project.id,
        scopes,
    };
    let created = state.store.create_api_key(&grant, name).await?;
    crate::audit_trail::key_created(&state.store, &user.actor(), &created.key).await;
    let new_key = context! {
        project => project.name.as_str(),
        name => created.key.name.as_str(),
        secret => created.secret.as_str(),
    };
    page(&state, &user, Some(new_key)).await
}

/// Creates an instance-admin key (creates and lists projects through the API).
pub async fn create_instance_key(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(fields): Form<Vec<(String, String)>>,
) -> WebResult {
    user.check_csrf(
        field(&fields, "csrf")
            .map(str::trim)
            .filter(|csrf| !csrf.is_empty()),
    )?;
    super::require(&user, Role::Admin)?;
    let name = key_name(&fields)?;
    let created = state
        .store
        .create_api_key(&KeyGrant::InstanceAdmin, name)
        .await?;
    crate::audit_trail::key_created(&state.store, &user.actor(), &created.key).await;
    let new_key = context! {
        project => "the instance (instance-admin)",
        name => created.key.name.as_str(),
        secret => created.secret.as_str(),
    };
    page(&state, &user, Some(new_key)).await
}

pub async fn revoke_instance_key(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(key): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let revoked = state.store.revoke_api_key(None, key).await?;
    crate::audit_trail::key_revoked(&state.store, &user.actor(), &revoked).await;
    Ok(redirect_with_flash(
        "/admin/projects",
        "ok",
        &format!("Key {} ({}) revoked.", revoked.name, revoked.prefix),
    ))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, key)): Path<(i64, i64)>,
    Form(form): Form<CsrfForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let revoked = state
        .store
        .revoke_api_key(Some(ProjectId(project)), key)
        .await?;
    crate::audit_trail::key_revoked(&state.store, &user.actor(), &revoked).await;
    Ok(redirect_with_flash(
        "/admin/projects",
        "ok",
        &format!("Key {} ({}) revoked.", revoked.name, revoked.prefix),
    ))
}
