//! API-key authentication: `Authorization: Bearer tt_…`, checked against the project in the
//! path. A missing, malformed, unknown or revoked key is 401; another project's key is 403.

use super::ApiError;
use super::projects::find_project;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use datasets::{ApiKey, Project, Store};

/// The project a request may act on, proven by its API key.
pub struct AuthorizedProject {
    pub project: Project,
    pub key: ApiKey,
}

impl AuthorizedProject {
    /// Who did it, for the registry's history.
    pub fn actor(&self) -> String {
        format!("api-key:{}", self.key.name)
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl FromRequestParts<AppState> for AuthorizedProject {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send an API key: Authorization: Bearer tt_…"))?;
        let key = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("the Authorization header must be: Bearer tt_…"))?;
        let key = state
            .store
            .authenticate_api_key(key)
            .await?
            .ok_or_else(|| unauthorized("the API key is unknown or revoked"))?;
        let Path(params): Path<Vec<(String, String)>> = Path::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
        let name = params
            .iter()
            .find(|(name, _)| name == "project")
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| ApiError::not_found("no project in the path"))?;
        let project = find_project(&state.store, name).await?;
        if project.id != key.project_id {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this API key belongs to another project, not {name:?}"),
            ));
        }
        Ok(Self { project, key })
    }
}
