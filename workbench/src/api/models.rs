//! The model registry over HTTP: list versions, promote one (with the guard), roll back.
//! A promotion swaps the model in this process at once; other processes follow within their
//! watch interval.

use super::auth::{Authorized, scope};
use super::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use datasets::registry::check_guard;
use datasets::store::prelude::*;
use datasets::{ModelVersion, ModelVersionId, Promotion};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A project's model versions and promotion history, newest first.
#[derive(Serialize, ToSchema)]
pub struct Registry {
    versions: Vec<ModelVersion>,
    history: Vec<Promotion>,
}

pub async fn list(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
) -> Result<ApiJson<Registry>, ApiError> {
    let project = authorized.project.id;
    Ok(ApiJson(Registry {
        versions: state.store.model_versions(project).await?,
        history: state.store.model_promotions(project).await?,
    }))
}

/// Promotion options (the body may be left out).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// Promote even if the guard would refuse.
    #[serde(default)]
    force: bool,
}

/// A promotion or rollback, and what this server serves now.
#[derive(Serialize, ToSchema)]
pub struct PromotionResult {
    #[serde(flatten)]
    promotion: Promotion,
    /// The version this process now serves (a failed load leaves the previous one serving).
    serving: Option<ModelVersionId>,
    swap_error: Option<String>,
}

async fn swap_now(state: &AppState, promotion: Promotion) -> PromotionResult {
    state.model_changed(promotion.project_id);
    match state
        .tagging
        .sync_project(&state.store, promotion.project_id)
        .await
    {
        Ok(serving) => PromotionResult {
            promotion,
            serving,
            swap_error: None,
        },
        Err(error) => PromotionResult {
            serving: state
                .tagging
                .serving(promotion.project_id)
                .map(|s| s.version),
            promotion,
            swap_error: Some(error.to_string()),
        },
    }
}

pub async fn promote(
    State(state): State<AppState>,
    authorized: Authorized<scope::Train>,
    ApiPath((_, version)): ApiPath<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<ApiJson<PromotionResult>, ApiError> {
    // The body is optional: an empty one means no options.
    let request: PromoteRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PromoteRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?
    };
    let project = authorized.project.id;
    let candidate = state
        .store
        .model_version(project, ModelVersionId(version))
        .await?;
    if !request.force {
        let promoted = state.store.promoted_model_version(project).await?;
        check_guard(
            &candidate,
            promoted.as_ref(),
            state.config.promotion_guard_margin,
        )
        .map_err(|refusal| {
            ApiError::new(StatusCode::CONFLICT, refusal.code(), refusal.to_string())
        })?;
    }
    let promotion = state
        .store
        .promote_model_version(project, candidate.id, authorized.audit_actor())
        .await?;
    Ok(ApiJson(swap_now(&state, promotion).await))
}

/// Queues an evaluation of the version on today's held-out tickets (labels change after
/// training); its stored metrics are replaced when the job has run.
pub async fn evaluate(
    State(state): State<AppState>,
    authorized: Authorized<scope::Train>,
    ApiPath((_, version)): ApiPath<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let project = authorized.project.id;
    let version = state
        .store
        .model_version(project, ModelVersionId(version))
        .await?;
    let Some(queue) = &state.jobs else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server has no job queue",
        ));
    };
    queue
        .push_maintenance(trainer::jobs::MaintenanceJob::Evaluate {
            project_id: project,
            version_id: version.id,
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "could not queue an evaluation");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the job queue is unavailable; try again",
            )
        })?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn rollback(
    State(state): State<AppState>,
    authorized: Authorized<scope::Train>,
) -> Result<(StatusCode, ApiJson<PromotionResult>), ApiError> {
    let promotion = state
        .store
        .rollback_model_version(authorized.project.id, authorized.audit_actor())
        .await?;
    Ok((StatusCode::OK, ApiJson(swap_now(&state, promotion).await)))
}
