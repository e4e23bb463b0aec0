//! Projects and their taxonomy.

use super::auth::{Authorized, InstanceAdmin, scope};
use super::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use datasets::demo::default_taxonomy;
use datasets::store::prelude::*;
use datasets::{
    AnyStore, AuditAction, LabelMode, NewTag, Project, ProjectName, ProjectSummary, Tag, TagId,
    TagMerge, TagUpdate,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use utoipa::ToSchema;

/// Finds a project by the name in the path.
pub async fn find_project(store: &AnyStore, name: &str) -> Result<Project, ApiError> {
    let parsed = ProjectName::parse(name).map_err(|e| ApiError::invalid(e.to_string()))?;
    store
        .project_by_name(&parsed)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("project {name:?} not found")))
}

/// Every project: an instance-admin key sees them all, a project key none but its own.
pub async fn list(
    State(state): State<AppState>,
    _admin: InstanceAdmin,
) -> Result<ApiJson<Vec<ProjectSummary>>, ApiError> {
    Ok(ApiJson(state.store.list_projects().await?))
}

pub async fn show(authorized: Authorized<scope::Read>) -> Result<ApiJson<Project>, ApiError> {
    Ok(ApiJson(authorized.project))
}

/// A new project.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    name: ProjectName,
    #[serde(default)]
    label_mode: LabelMode,
    /// Tags to start with (names unique regardless of case); the default taxonomy when absent.
    tags: Option<Vec<NewTag>>,
}

/// A created project with its taxonomy.
#[derive(Serialize, ToSchema)]
pub struct CreatedProject {
    project: Project,
    tags: Vec<Tag>,
}

pub async fn create(
    State(state): State<AppState>,
    admin: InstanceAdmin,
    ApiJson(request): ApiJson<CreateProject>,
) -> Result<(StatusCode, ApiJson<CreatedProject>), ApiError> {
    let tags = request.tags.unwrap_or_else(default_taxonomy);
    let (project, created) =
        create_project_with_tags(&state.store, &request.name, request.label_mode, &tags)
            .await
            .map_err(|error| match error {
                CreateProjectError::Tags(message) => ApiError::invalid(message),
                CreateProjectError::DuplicateTag(message)
                | CreateProjectError::UnknownGroup(message) => {
                    ApiError::new(StatusCode::CONFLICT, "conflict", message)
                }
                CreateProjectError::Store(error) => error.into(),
            })?;
    crate::audit_trail::project_created(&state.store, &admin.audit_actor(), &project, &created)
        .await;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedProject {
            project,
            tags: created,
        }),
    ))
}

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateProjectError {
    #[error("{0}")]
    Tags(String),
    /// Two tags of the request share a name (as the taxonomy compares names): a clash, like
    /// adding a tag whose name is taken.
    #[error("{0}")]
    DuplicateTag(String),
    /// A tag names a group the new project does not have (it has only its default group):
    /// a clash with the project's state, as naming an unknown group on an existing project.
    #[error("{0}")]
    UnknownGroup(String),
    #[error(transparent)]
    Store(#[from] datasets::StoreError),
}

/// Creates a project with its taxonomy (the API's and the admin page's way). Every tag is
/// checked before anything is created, so a bad taxonomy leaves no half-made project.
pub async fn create_project_with_tags(
    store: &AnyStore,
    name: &ProjectName,
    mode: LabelMode,
    tags: &[NewTag],
) -> Result<(Project, Vec<Tag>), CreateProjectError> {
    let mut seen = HashSet::new();
    for tag in tags {
        tag.validate()
            .map_err(|e| CreateProjectError::Tags(e.to_string()))?;
        // A new project has only its default group, so a tag naming another would fail
        // after the project was made.
        if let Some(group) = &tag.group
            && group.folded() != datasets::tag_group::DEFAULT_GROUP_NAME.to_lowercase()
        {
            return Err(CreateProjectError::UnknownGroup(format!(
                "tag {:?} names group {:?}: a new project has only its default group {:?}; add groups once the project exists",
                tag.name.as_str(),
                group.as_str(),
                datasets::tag_group::DEFAULT_GROUP_NAME
            )));
        }
        if !seen.insert(tag.name.folded()) {
            return Err(CreateProjectError::DuplicateTag(format!(
                "tag {:?} is listed twice",
                tag.name.as_str()
            )));
        }
    }
    let project = store.create_project(name, mode).await?;
    let mut created = Vec::with_capacity(tags.len());
    for tag in tags {
        created.push(store.create_tag(project.id, tag).await?);
    }
    Ok((project, created))
}

/// The body of `PUT …/languages`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLanguages {
    languages: Vec<datasets::Language>,
}

/// Sets the languages the project's model serves; this process's model in service follows
/// at once, other processes at their next look at the store.
pub async fn set_languages(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiJson(request): ApiJson<SetLanguages>,
) -> Result<ApiJson<Project>, ApiError> {
    let mut languages = request.languages;
    languages.sort_by_key(|l| l.code());
    languages.dedup();
    let before = authorized.project.languages.clone();
    let project = state
        .store
        .set_project_languages(authorized.project.id, &languages)
        .await?;
    if before != project.languages {
        crate::audit_trail::record(
            &state.store,
            &authorized.audit_actor(),
            AuditAction::ProjectLanguages,
            Some(project.id),
            format!("project {} {:?}", project.id, project.name.as_str()),
            serde_json::json!({ "from": before, "to": project.languages }),
        )
        .await;
    }
    if let Err(error) = state.tagging.sync_project(&state.store, project.id).await {
        // The setting is stored; the watcher applies it on its next look.
        tracing::warn!(project = %project.id, %error, "served languages not applied yet");
    }
    Ok(ApiJson(project))
}

/// A project's glossary: the names of its products and components, found in tickets as
/// entities of kind `product` (whole words, any case).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GlossaryTerms {
    /// In the order written; blank terms are dropped, whitespace inside a term collapsed and
    /// a term repeated in another case kept once.
    #[schema(schema_with = datasets::api_schema::glossary_terms_schema)]
    terms: Vec<String>,
}

pub async fn glossary(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
) -> Result<ApiJson<GlossaryTerms>, ApiError> {
    let terms = state.store.glossary(authorized.project.id).await?;
    Ok(ApiJson(GlossaryTerms { terms }))
}

/// Replaces the glossary; the project's tickets' entities are extracted again in the
/// background.
pub async fn set_glossary(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiJson(request): ApiJson<GlossaryTerms>,
) -> Result<ApiJson<GlossaryTerms>, ApiError> {
    let terms = request.terms;
    let (stored, _) = crate::glossary::replace(
        &state.store,
        &authorized.audit_actor(),
        &authorized.project,
        &terms,
    )
    .await?;
    Ok(ApiJson(GlossaryTerms { terms: stored }))
}

pub async fn list_tags(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
) -> Result<ApiJson<Vec<Tag>>, ApiError> {
    Ok(ApiJson(state.store.list_tags(authorized.project.id).await?))
}

pub async fn create_tag(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiJson(tag): ApiJson<NewTag>,
) -> Result<(StatusCode, ApiJson<Tag>), ApiError> {
    let tag = state.store.create_tag(authorized.project.id, &tag).await?;
    crate::audit_trail::record(
        &state.store,
        &authorized.audit_actor(),
        AuditAction::TagCreate,
        Some(authorized.project.id),
        crate::audit_trail::tag_target(&tag),
        serde_json::json!({ "name": tag.name.as_str(), "color": tag.color }),
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(tag)))
}

pub async fn update_tag(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiPath((_, tag)): ApiPath<(String, i64)>,
    ApiJson(update): ApiJson<TagUpdate>,
) -> Result<ApiJson<Tag>, ApiError> {
    let changed = crate::audit_trail::update_tag(
        &state.store,
        &authorized.audit_actor(),
        authorized.project.id,
        TagId(tag),
        &update,
    )
    .await?;
    if update.group.is_some() {
        super::tag_groups::refresh_served_taxonomy(&state, authorized.project.id).await;
    }
    Ok(ApiJson(changed))
}

/// A tag's key phrases.
#[derive(Serialize, ToSchema)]
pub struct TagKeyPhrases {
    pub tag: datasets::TagName,
    /// The words and two-word phrases the tag's tickets use far more than the project's other
    /// tickets (log-odds ratio with an informative Dirichlet prior, z ≥ 1.96, in 3 or more
    /// of the tag's tickets), strongest first; among the newest 2,000 tickets of each group.
    pub phrases: Vec<datasets::text::key_phrases::KeyPhrase>,
}

/// The tag's key phrases, as its page in the workbench lists them.
pub async fn tag_key_phrases(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
    ApiPath((_, tag)): ApiPath<(String, i64)>,
) -> Result<ApiJson<TagKeyPhrases>, ApiError> {
    let project = authorized.project.id;
    let tag = state
        .store
        .list_tags(project)
        .await?
        .into_iter()
        .find(|t| t.id == TagId(tag))
        .ok_or_else(|| ApiError::not_found(format!("tag {tag} not found")))?;
    let phrases = crate::web::key_phrases::for_tag(&state, project, tag.id).await?;
    Ok(ApiJson(TagKeyPhrases {
        tag: tag.name,
        phrases: phrases.as_ref().clone(),
    }))
}

/// Where a merged tag's labels go.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The tag that receives the labels.
    into: i64,
}

/// Merges the tag in the path into `into`: it moves every label of the tag and archives it.
pub async fn merge_tag(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiPath((_, tag)): ApiPath<(String, i64)>,
    ApiJson(request): ApiJson<MergeRequest>,
) -> Result<ApiJson<TagMerge>, ApiError> {
    Ok(ApiJson(
        state
            .store
            .merge_tags(
                authorized.project.id,
                TagId(tag),
                TagId(request.into),
                authorized.audit_actor(),
            )
            .await?,
    ))
}
