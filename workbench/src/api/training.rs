//! Training runs over HTTP: queue one, follow its progress, cancel it. The run itself is
//! done by whichever worker takes the job (`tagger worker`, `serve --with-worker`, `demo`).

use super::auth::{Authorized, scope};
use super::{ApiError, ApiJson, ApiPath, from_json_bytes};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use datasets::store::prelude::*;
use datasets::{TrainingRun, TrainingRunId};
use inference::ModelKind;
use serde::Deserialize;
use trainer::jobs::{JobError, TrainingParams, submit_training};
use utoipa::ToSchema;

/// How many runs a listing returns.
const LISTED_RUNS: u32 = 50;

/// A training run to queue.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TrainingRunRequest)]
pub struct TrainingRequest {
    /// One of `ModelKind::ALL`'s names; parsed here so an unknown one is a 422 that lists
    /// the kinds (serde's own message would be a 400 about a variant).
    #[schema(value_type = ModelKind)]
    kind: String,
    /// Optional hyper-parameters; any left out take the kind's default.
    #[serde(default)]
    params: TrainingParams,
}

pub async fn submit(
    State(state): State<AppState>,
    authorized: Authorized<scope::Train>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, ApiJson<TrainingRun>), ApiError> {
    let request: TrainingRequest = from_json_bytes(&body)?;
    let kind: ModelKind = request
        .kind
        .parse()
        .map_err(|error: datasets::UnknownModelKind| ApiError::invalid(error.to_string()))?;
    let Some(queue) = &state.jobs else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server has no job queue",
        ));
    };
    let run = submit_training(
        &state.store,
        queue,
        authorized.project.id,
        kind,
        &request.params,
        &authorized.actor(),
    )
    .await
    .map_err(|error| match error {
        JobError::Params(reason) => ApiError::invalid(reason),
        JobError::Store(error) => error.into(),
        other => {
            tracing::error!(error = %other, "could not queue a training job");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the job queue is unavailable; try again",
            )
        }
    })?;
    Ok((StatusCode::ACCEPTED, ApiJson(run)))
}

pub async fn list(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
) -> Result<ApiJson<Vec<TrainingRun>>, ApiError> {
    Ok(ApiJson(
        state
            .store
            .training_runs(authorized.project.id, LISTED_RUNS)
            .await?,
    ))
}

pub async fn show(
    State(state): State<AppState>,
    authorized: Authorized<scope::Read>,
    ApiPath((_, run)): ApiPath<(String, i64)>,
) -> Result<ApiJson<TrainingRun>, ApiError> {
    Ok(ApiJson(
        state
            .store
            .training_run(authorized.project.id, TrainingRunId(run))
            .await?,
    ))
}

pub async fn cancel(
    State(state): State<AppState>,
    authorized: Authorized<scope::Train>,
    ApiPath((_, run)): ApiPath<(String, i64)>,
) -> Result<ApiJson<TrainingRun>, ApiError> {
    Ok(ApiJson(
        state
            .store
            .cancel_training_run(authorized.project.id, TrainingRunId(run))
            .await?,
    ))
}
