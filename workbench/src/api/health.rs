//! `/healthz` says the process is alive; `/readyz` that it can serve (database reachable).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use datasets::store::prelude::*;
use inference::service::ProjectStatus;
use serde::Serialize;
use utoipa::ToSchema;

/// The answer of `/healthz`.
#[derive(Serialize, ToSchema)]
pub struct Alive {
    /// Always `alive`.
    status: &'static str,
}

pub async fn alive() -> Json<Alive> {
    Json(Alive { status: "alive" })
}

/// The answer of `/readyz`, ready or not.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// `sqlite` or `postgres`.
    database: &'static str,
    /// When ready: each project's version in service and its last swap error.
    #[serde(skip_serializing_if = "Option::is_none")]
    models: Option<Vec<ProjectStatus>>,
    /// When unavailable: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// Ready when the database answers. Projects without a promoted model are ready too
/// ("no model yet" is a state, not a failure); a failed swap is shown per project.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = state.store.backend_name();
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Readiness {
                status: "ready",
                database,
                models: Some(state.tagging.statuses()),
                reason: None,
            }),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Readiness {
                    status: "unavailable",
                    database,
                    models: None,
                    reason: Some("database unreachable"),
                }),
            )
        }
    }
}

/// Prometheus metrics: HTTP requests and the tagging service.
pub async fn metrics(
    State(state): State<AppState>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let mut out = String::new();
    state.http_metrics.render(&mut out);
    state.tagging.render_metrics(&mut out);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
}
