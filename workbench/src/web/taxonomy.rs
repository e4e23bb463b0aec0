//! The taxonomy editor: every user sees the tags; only admins add, rename, describe, colour,
//! archive and set keyword rules. A rule's preview (which existing tickets it would match) is
//! the edit form posted with its Preview button, so it works without JavaScript, keeps every
//! typed field, and never puts the form's CSRF token in a URL. A refused save (a name already
//! taken, an invalid name) shows the form again as typed, with the reason.

use super::auth::CurrentUser;
use super::tickets::preview_rows;
use super::{WebError, WebResult, load_project, non_empty, redirect_with_flash, render_page};
use crate::state::AppState;
use axum::extract::{Form, Path, Query, State};
use datasets::store::prelude::*;
use datasets::{KeywordRules, NewTag, Role, TagGroupName, TagId, TagName, TagUpdate};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

/// Phrases typed one per line (or separated by commas).
fn phrases(text: Option<&str>) -> Vec<String> {
    super::list_field(text, &['\n', ','])
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
) -> WebResult {
    let project = load_project(&state, project).await?;
    let counts = state.store.tag_counts(project.id).await?;
    let groups = state.store.list_tag_groups(project.id).await?;
    let taxonomy = state.store.list_tags(project.id).await?;
    let group_name = |id| {
        groups
            .iter()
            .find(|g| g.id == id)
            .map_or("", |g| g.name.as_str())
    };
    let group_rows: Vec<Value> = groups
        .iter()
        .map(|g| {
            context! {
                id => g.id.0,
                name => g.name.as_str(),
                choice => g.choice.as_str(),
                is_default => g.is_default,
                tags => taxonomy.iter().filter(|t| t.group_id == g.id).count(),
            }
        })
        .collect();
    let tags: Vec<Value> = taxonomy
        .iter()
        .map(|t| {
            context! {
                group => group_name(t.group_id),
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
        context! { tags => tags, groups => group_rows },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    csrf: Option<String>,
    name: String,
    description: Option<String>,
    color: Option<String>,
    /// The group's name; the default group when absent.
    group: Option<String>,
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
    tag.group = non_empty(&form.group)
        .map(|g| TagGroupName::parse(g).map_err(|e| WebError::BadRequest(e.to_string())))
        .transpose()?;
    let created = state.store.create_tag(project.id, &tag).await?;
    crate::audit_trail::record(
        &state.store,
        &user.actor(),
        datasets::AuditAction::TagCreate,
        Some(project.id),
        crate::audit_trail::tag_target(&created),
        serde_json::json!({ "name": created.name.as_str(), "color": created.color }),
    )
    .await;
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
    let tag = find_tag(&taxonomy, TagId(tag))?;
    let previewing = preview.include.is_some() || preview.exclude.is_some();
    let mut shown = TagFormValues::stored(tag);
    if previewing {
        shown.include = phrases(preview.include.as_deref()).join("\n");
        shown.exclude = phrases(preview.exclude.as_deref()).join("\n");
    }
    render_tag_page(&state, &user, &project, &taxonomy, tag, &shown, previewing).await
}

fn find_tag(taxonomy: &[datasets::Tag], id: TagId) -> WebResult<&datasets::Tag> {
    taxonomy
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| WebError::NotFound(format!("tag {}", id.0)))
}

/// What the edit form shows: the stored tag, or what a person typed (a preview, or a save
/// that was refused — the typed values are never lost).
#[derive(Debug, Clone, Serialize)]
struct TagFormValues {
    name: String,
    description: String,
    color: String,
    include: String,
    exclude: String,
    /// Why the last save was refused, shown above the form.
    error: Option<String>,
}

impl TagFormValues {
    fn stored(tag: &datasets::Tag) -> Self {
        Self {
            name: tag.name.as_str().to_string(),
            description: tag.description.clone(),
            color: tag.color.clone(),
            include: tag.keywords.include.join("\n"),
            exclude: tag.keywords.exclude.join("\n"),
            error: None,
        }
    }

    fn typed(tag: &datasets::Tag, form: &UpdateForm) -> Self {
        let stored = Self::stored(tag);
        let keep = |typed: &Option<String>, stored: String| typed.clone().unwrap_or(stored);
        Self {
            name: keep(&form.name, stored.name),
            description: keep(&form.description, stored.description),
            color: keep(&form.color, stored.color),
            include: keep(&form.include, stored.include),
            exclude: keep(&form.exclude, stored.exclude),
            error: None,
        }
    }
}

async fn render_tag_page(
    state: &AppState,
    user: &CurrentUser,
    project: &datasets::Project,
    taxonomy: &[datasets::Tag],
    tag: &datasets::Tag,
    shown: &TagFormValues,
    previewing: bool,
) -> WebResult {
    let rules = KeywordRules {
        include: phrases(Some(&shown.include)),
        exclude: phrases(Some(&shown.exclude)),
    };
    let (matches, more) = preview_rows(state, project.id, rules, taxonomy).await?;
    let phrases = super::key_phrases::for_tag(state, project.id, tag.id).await?;
    render_page(
        state,
        user,
        Some(project),
        "taxonomy",
        "tag.html",
        context! {
            tag => context! {
                id => tag.id.0,
                name => tag.name.as_str(),
                color => tag.color.as_str(),
                archived => tag.archived,
            },
            form => Serde(shown),
            previewing => previewing,
            matches => matches,
            more => more,
            phrases => super::key_phrases::view(&phrases, project.id, Some(tag.name.as_str())),
            phrase_sample => super::key_phrases::SAMPLE,
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
    /// Present when the Preview button sent the form: show what the typed rules match,
    /// save nothing. A POST, so the form's CSRF token never ends up in a URL.
    preview: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, tag)): Path<(i64, i64)>,
    Form(form): Form<UpdateForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    let project = load_project(&state, project).await?;
    if form.preview.is_some() {
        let taxonomy = state.store.list_tags(project.id).await?;
        let tag = find_tag(&taxonomy, TagId(tag))?;
        let shown = TagFormValues::typed(tag, &form);
        return render_tag_page(&state, &user, &project, &taxonomy, tag, &shown, true).await;
    }
    super::require(&user, Role::Admin)?;
    match save_tag(&state, &user, &project, TagId(tag), &form).await {
        Ok(changed) => Ok(redirect_with_flash(
            &format!("/p/{}/taxonomy/{}", project.id, changed.id),
            "ok",
            &format!("Tag {} saved.", changed.name),
        )),
        // A refused save shows the form again as it was typed, with the reason.
        Err(error @ (WebError::BadRequest(_) | WebError::Conflict(_))) => {
            let status = error.status();
            let taxonomy = state.store.list_tags(project.id).await?;
            let stored = find_tag(&taxonomy, TagId(tag))?;
            let mut shown = TagFormValues::typed(stored, &form);
            shown.error = Some(error.to_string());
            let mut page =
                render_tag_page(&state, &user, &project, &taxonomy, stored, &shown, false).await?;
            *page.status_mut() = status;
            Ok(page)
        }
        Err(other) => Err(other),
    }
}

async fn save_tag(
    state: &AppState,
    user: &CurrentUser,
    project: &datasets::Project,
    tag: TagId,
    form: &UpdateForm,
) -> WebResult<datasets::Tag> {
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
        description: form.description.as_ref().map(|d| d.trim().to_string()),
        color: non_empty(&form.color).map(str::to_string),
        keywords,
        archived,
        group: None,
    };
    Ok(
        crate::audit_trail::update_tag(&state.store, &user.actor(), project.id, tag, &update)
            .await?,
    )
}

#[derive(Debug, Deserialize)]
pub struct MergeForm {
    csrf: Option<String>,
    from: Option<String>,
    into: Option<String>,
}

fn tag_param(name: &str, value: Option<&str>) -> WebResult<TagId> {
    super::id_field(value, || format!("choose the tag {name}")).map(TagId)
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
        .merge_tags(project.id, from, into, user.actor())
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
