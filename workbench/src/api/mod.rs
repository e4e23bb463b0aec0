//! The JSON API under `/v1` and the health endpoints. Handlers are thin: they parse,
//! call the store, and map errors.

mod auth;
mod error;
mod health;
mod models;
mod projects;
mod tagging;
mod tickets;

pub use error::{ApiError, ApiJson, ApiPath, ApiQuery};
pub use tagging::MAX_TAG_BATCH;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post, put};

/// The largest request body, in bytes: a full batch of tickets of ordinary size fits; a batch
/// of maximum-size bodies must be split.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The API routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/v1/projects/{project}/tag", post(tagging::tag_one))
        .route("/v1/projects/{project}/tag/batch", post(tagging::tag_batch))
        .route(
            "/v1/projects/{project}/tickets/ingest",
            post(tagging::ingest_and_tag),
        )
        .route("/v1/projects/{project}/models", get(models::list))
        .route(
            "/v1/projects/{project}/models/rollback",
            post(models::rollback),
        )
        .route(
            "/v1/projects/{project}/models/{version}/promote",
            post(models::promote),
        )
        .route("/v1/projects", get(projects::list).post(projects::create))
        .route("/v1/projects/{project}", get(projects::show))
        .route(
            "/v1/projects/{project}/tags",
            get(projects::list_tags).post(projects::create_tag),
        )
        .route(
            "/v1/projects/{project}/tags/{tag}",
            patch(projects::update_tag),
        )
        .route(
            "/v1/projects/{project}/tickets",
            get(tickets::search).post(tickets::ingest_one),
        )
        .route(
            "/v1/projects/{project}/tickets/batch",
            post(tickets::ingest_batch),
        )
        .route(
            "/v1/projects/{project}/tickets/{ticket}",
            get(tickets::show),
        )
        .route(
            "/v1/projects/{project}/tickets/{ticket}/labels",
            put(tickets::set_labels),
        )
        .route(
            "/v1/projects/{project}/tickets/{ticket}/history",
            get(tickets::history),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}
