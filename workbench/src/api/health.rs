//! `/healthz` says the process is alive; `/readyz` that it can serve (database reachable).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use datasets::Store;
use serde_json::{Value, json};

pub async fn alive() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

/// Ready when the database answers. Projects without a promoted model are ready too
/// ("no model yet" is a state, not a failure); a failed swap is shown per project.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "database": state.store.backend_name(),
                "models": state.tagging.statuses(),
            })),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"status": "unavailable", "database": state.store.backend_name(), "reason": "database unreachable"}),
                ),
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
