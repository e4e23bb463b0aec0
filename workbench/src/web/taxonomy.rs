//! The taxonomy editor: every user sees the tags; only admins add, rename, describe, colour,
//! archive and set keyword rules. A rule's preview (which existing tickets it would match) is
//! a GET form, so it works without JavaScript.

use super::auth::CurrentUser;
use super::tickets::preview_rows;
use super::{WebError, WebResult, load_project, non_empty, redirect_with_flash, render_page};
use crate::state::AppState;
use axum::extract::{Form, Path, Query, State};
use datasets::{KeywordRules, NewTag, Role, Store, TagId, TagName, TagUpdate};
use minijinja::{Value, context};
use serde::Deserialize;

/// Phrases typed one per line (or separated by commas).
fn phrases(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split(['\n', ','])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
) -> WebResult {
    let project = load_project(&state, project).await?;
    let counts = state.store.tag_counts(project.id).await?;
    let tags: Vec<Value> = state
        .store
        .list_tags(project.id)
        .await?
        .iter()
        .map(|t| {
            context! {
                id => t.id.0,
                name => t.name.as_str(),
                description => t.description.as_str(),
                color => t.color.as_str(),
                archived => t.archived,
                include => t.keywords.include.join(", "),
                exclude => t.keywords.exclude.join(", "),
                tickets => counts.iter().find(|c| c.tag_id == t.id.0).map_or(0, |c| c.tickets),
            }
        })
        .collect();
    render_page(
        &state,
        &user,
        Some(&project),
        "taxonomy",
        "taxonomy.html",
        context! { tags => tags },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    csrf: Option<String>,
    name: String,
    description: Option<String>,
    color: Option<String>,
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
    let name = TagName::parse(&form.name).map_err(|e| WebError::BadRequest(e.to_string()))?;
    let mut tag = NewTag::named(name);
    if let Some(description) = non_empty(&form.description) {
        tag.description = description.to_string();
    }
    if let Some(color) = non_empty(&form.color) {
        tag.color = color.to_string();
    }
    let created = state.store.create_tag(project.id, &tag).await?;
    Ok(redirect_with_flash(
        &format!("/p/{}/taxonomy/{}", project.id, created.id),
        "ok",
        &format!("Tag {} added.", created.name),
    ))
}

/// The edit page's query: a preview of rules typed but not yet saved.
#[derive(Debug, Default, Deserialize)]
pub struct PreviewQuery {
    include: Option<String>,
    exclude: Option<String>,
}

pub async fn edit(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, tag)): Path<(i64, i64)>,
    Query(preview): Query<PreviewQuery>,
) -> WebResult {
    let project = load_project(&state, project).await?;
    let taxonomy = state.store.list_tags(project.id).await?;
    let tag = taxonomy
        .iter()
        .find(|t| t.id == TagId(tag))
        .ok_or_else(|| WebError::NotFound(format!("tag {tag}")))?;
    let previewing = preview.include.is_some() || preview.exclude.is_some();
    let rules = if previewing {
        KeywordRules {
            include: phrases(preview.include.as_deref()),
            exclude: phrases(preview.exclude.as_deref()),
        }
    } else {
        tag.keywords.clone()
    };
    let (matches, more) = preview_rows(&state, project.id, rules.clone(), &taxonomy).await?;
    render_page(
        &state,
        &user,
        Some(&project),
        "taxonomy",
        "tag.html",
        context! {
            tag => context! {
                id => tag.id.0,
                name => tag.name.as_str(),
                description => tag.description.as_str(),
                color => tag.color.as_str(),
                archived => tag.archived,
            },
            include => rules.include.join("\n"),
            exclude => rules.exclude.join("\n"),
            previewing => previewing,
            matches => matches,
            more => more,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct UpdateForm {
    csrf: Option<String>,
    name: Option<String>,
    description: Option<String>,
    color: Option<String>,
    include: Option<String>,
    exclude: Option<String>,
    /// `archive` or `restore`; absent leaves it as it is.
    archive: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, tag)): Path<(i64, i64)>,
    Form(form): Form<UpdateForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let project = load_project(&state, project).await?;
    let name = non_empty(&form.name)
        .map(|n| TagName::parse(n).map_err(|e| WebError::BadRequest(e.to_string())))
        .transpose()?;
    let archived = match form.archive.as_deref() {
        Some("archive") => Some(true),
        Some("restore") => Some(false),
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "unknown archive action {other:?}"
            )));
        }
        None => None,
    };
    let keywords = (form.include.is_some() || form.exclude.is_some()).then(|| KeywordRules {
        include: phrases(form.include.as_deref()),
        exclude: phrases(form.exclude.as_deref()),
    });
    let update = TagUpdate {
        name,
        description: form.description.map(|d| d.trim().to_string()),
        color: non_empty(&form.color).map(str::to_string),
        keywords,
        archived,
    };
    let changed = state
        .store
        .update_tag(project.id, TagId(tag), &update)
        .await?;
    Ok(redirect_with_flash(
        &format!("/p/{}/taxonomy/{}", project.id, changed.id),
        "ok",
        &format!("Tag {} saved.", changed.name),
    ))
}

#[derive(Debug, Deserialize)]
pub struct MergeForm {
    csrf: Option<String>,
    from: Option<String>,
    into: Option<String>,
}

fn tag_param(name: &str, value: Option<&str>) -> WebResult<TagId> {
    value
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(TagId)
        .ok_or_else(|| WebError::BadRequest(format!("choose the tag {name}")))
}

/// Merges one tag into another (admins): its labels move, its rules are appended, it is
/// archived; all in one transaction in the store.
pub async fn merge(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Form(form): Form<MergeForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let project = load_project(&state, project).await?;
    let from = tag_param("to merge", form.from.as_deref())?;
    let into = tag_param("to merge into", form.into.as_deref())?;
    let merged = state
        .store
        .merge_tags(project.id, from, into, &format!("web:{}", user.username()))
        .await?;
    Ok(redirect_with_flash(
        &format!("/p/{}/taxonomy", project.id),
        "ok",
        &format!(
            "{} merged into {}: tickets {}, labels moved {}, combined {}. {} is archived.",
            merged.from.name,
            merged.into.name,
            merged.tickets,
            merged.labels_moved,
            merged.labels_combined,
            merged.from.name
        ),
    ))
}
