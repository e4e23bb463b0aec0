//! The audit log over HTTP: every entry for an instance-admin key (`GET /v1/audit`), a
//! project's own entries for a key of that project with the `admin` scope
//! (`GET /v1/projects/{project}/audit`). Newest first, a page at a time: `next_before` is the
//! cursor of the next page (`?before=`), absent on the last one.

use super::auth::{Authorized, InstanceAdmin, scope};
use super::projects::find_project;
use super::{ApiError, ApiJson, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use datasets::audit::MAX_AUDIT_PAGE;
use datasets::{AuditAction, AuditEntry, AuditFilter, AuditStore, ProjectId};
use serde::{Deserialize, Serialize};

/// How many entries a page holds when `limit` is not given.
const DEFAULT_PAGE: u32 = 100;

/// The query of both routes (`project` only on the instance-wide one).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// An action such as `key.create` (`AuditAction`'s names).
    action: Option<String>,
    /// An exact actor: `user:<username>`, `api-key:<key id>`, `cli`.
    actor: Option<String>,
    /// A project's name (instance-wide route only).
    project: Option<String>,
    /// The cursor: entries older than this id.
    before: Option<i64>,
    /// 1 to `MAX_AUDIT_PAGE`.
    limit: Option<u32>,
}

/// One page of the log.
#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next page; absent when this page is the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

fn filter(query: &AuditQuery, project: Option<ProjectId>) -> Result<AuditFilter, ApiError> {
    let action = query
        .action
        .as_deref()
        .map(str::parse::<AuditAction>)
        .transpose()
        .map_err(|error| {
            let known: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
            ApiError::invalid(format!("action: {error} (known: {})", known.join(", ")))
        })?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: must be 1 to {MAX_AUDIT_PAGE}"
        )));
    }
    Ok(AuditFilter {
        action,
        actor: query.actor.clone().filter(|actor| !actor.is_empty()),
        project,
        before: query.before,
        limit,
    })
}

async fn page(state: &AppState, filter: &AuditFilter) -> Result<ApiJson<AuditPage>, ApiError> {
    let entries = state.store.audit_entries(filter).await?;
    let next_before = (entries.len() == filter.limit as usize)
        .then(|| entries.last().map(|entry| entry.id))
        .flatten();
    Ok(ApiJson(AuditPage {
        entries,
        next_before,
    }))
}

/// Every entry (or one project's, with `?project=`).
pub async fn instance(
    State(state): State<AppState>,
    _admin: InstanceAdmin,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<ApiJson<AuditPage>, ApiError> {
    let project = match query.project.as_deref() {
        Some(name) => Some(find_project(&state.store, name).await?.id),
        None => None,
    };
    page(&state, &filter(&query, project)?).await
}

/// The entries of the key's own project.
pub async fn project(
    State(state): State<AppState>,
    authorized: Authorized<scope::Admin>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<ApiJson<AuditPage>, ApiError> {
    if query.project.is_some() {
        return Err(ApiError::invalid(
            "project: not accepted here; the project is the one in the path",
        ));
    }
    page(&state, &filter(&query, Some(authorized.project.id))?).await
}
