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

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "database": state.store.backend_name(), "model": null})),
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
