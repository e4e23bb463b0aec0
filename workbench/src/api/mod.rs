//! The JSON API under `/v1` and the health endpoints. Handlers are thin: they parse,
//! call the store, and map errors.

mod auth;
mod error;
mod health;
mod models;
pub mod openapi;
pub mod projects;
mod review;
mod tagging;
mod tickets;
mod training;

pub use error::{ApiError, ApiJson, ApiPath, ApiQuery};
pub use tagging::MAX_TAG_BATCH;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;

/// The largest request body, in bytes: a full batch of tickets of ordinary size fits; a batch
/// of maximum-size bodies must be split.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Every route with its summary, in the order they are documented.
pub fn routes() -> openapi::Routes {
    openapi::Routes::new()
        .add(
            "GET",
            "/healthz",
            "The process is alive.",
            false,
            health::alive,
        )
        .add(
            "GET",
            "/readyz",
            "Ready: the database answers; models in service per project.",
            false,
            health::ready,
        )
        .add(
            "GET",
            "/metrics",
            "Prometheus metrics.",
            false,
            health::metrics,
        )
        .add(
            "GET",
            "/v1/openapi.json",
            "This document.",
            false,
            openapi_document,
        )
        .add(
            "GET",
            "/v1/projects",
            "Projects with ticket and tag counts.",
            false,
            projects::list,
        )
        .add(
            "POST",
            "/v1/projects",
            "Create a project (default taxonomy unless tags are given).",
            false,
            projects::create,
        )
        .add(
            "GET",
            "/v1/projects/{project}",
            "One project.",
            false,
            projects::show,
        )
        .add(
            "GET",
            "/v1/projects/{project}/tags",
            "The taxonomy.",
            false,
            projects::list_tags,
        )
        .add(
            "POST",
            "/v1/projects/{project}/tags",
            "Add a tag.",
            false,
            projects::create_tag,
        )
        .add(
            "PATCH",
            "/v1/projects/{project}/tags/{tag}",
            "Rename, describe, recolour, archive a tag or edit its keyword rules.",
            false,
            projects::update_tag,
        )
        .add(
            "POST",
            "/v1/projects/{project}/tags/{tag}/merge",
            "Merge this tag into another ({\"into\": tag id}): its labels move, its rules are appended, it is archived.",
            true,
            projects::merge_tag,
        )
        .add(
            "GET",
            "/v1/projects/{project}/tickets",
            "Search tickets.",
            false,
            tickets::search,
        )
        .add(
            "POST",
            "/v1/projects/{project}/tickets",
            "Ingest one ticket (idempotent on source and external id).",
            false,
            tickets::ingest_one,
        )
        .add(
            "POST",
            "/v1/projects/{project}/tickets/batch",
            "Ingest a batch of tickets, all or nothing.",
            false,
            tickets::ingest_batch,
        )
        .add(
            "POST",
            "/v1/projects/{project}/tickets/ingest",
            "Ingest a ticket and tag it with the promoted model.",
            true,
            tagging::ingest_and_tag,
        )
        .add(
            "GET",
            "/v1/projects/{project}/tickets/{ticket}",
            "A ticket with its labels.",
            false,
            tickets::show,
        )
        .add(
            "PUT",
            "/v1/projects/{project}/tickets/{ticket}/labels",
            "Set the tags a person gives a ticket.",
            false,
            tickets::set_labels,
        )
        .add(
            "GET",
            "/v1/projects/{project}/tickets/{ticket}/history",
            "Every label change of a ticket.",
            false,
            tickets::history,
        )
        .add(
            "POST",
            "/v1/projects/{project}/tag",
            "Tag one text with the promoted model.",
            true,
            tagging::tag_one,
        )
        .add(
            "POST",
            "/v1/projects/{project}/tag/batch",
            "Tag up to 64 texts.",
            true,
            tagging::tag_batch,
        )
        .add(
            "GET",
            "/v1/projects/{project}/models",
            "Model versions and promotion history.",
            true,
            models::list,
        )
        .add(
            "POST",
            "/v1/projects/{project}/models/rollback",
            "Put back the version the promoted one replaced.",
            true,
            models::rollback,
        )
        .add(
            "POST",
            "/v1/projects/{project}/models/{version}/promote",
            "Promote a version (guarded unless forced).",
            true,
            models::promote,
        )
        .add(
            "POST",
            "/v1/projects/{project}/models/{version}/evaluate",
            "Evaluate a version again on today's held-out tickets (queued; 202).",
            true,
            models::evaluate,
        )
        .add(
            "GET",
            "/v1/projects/{project}/training-runs",
            "Training runs, newest first, with progress and outcome.",
            true,
            training::list,
        )
        .add(
            "POST",
            "/v1/projects/{project}/training-runs",
            "Queue a training run (kind and optional hyper-parameters).",
            true,
            training::submit,
        )
        .add(
            "GET",
            "/v1/projects/{project}/training-runs/{run}",
            "One training run.",
            true,
            training::show,
        )
        .add(
            "POST",
            "/v1/projects/{project}/training-runs/{run}/cancel",
            "Cancel a queued run, or stop a running one at its next epoch.",
            true,
            training::cancel,
        )
        .add(
            "GET",
            "/v1/projects/{project}/review-queue",
            "Lease the next tickets to label (count, user, lease_seconds), each with score, strategy and reason.",
            false,
            review::lease,
        )
        .add(
            "POST",
            "/v1/projects/{project}/review-queue/score",
            "Recompute the review queue now with a strategy (default margin).",
            true,
            review::score,
        )
        .add(
            "POST",
            "/v1/projects/{project}/review-queue/{ticket}/release",
            "Give a leased ticket back (skip).",
            false,
            review::release,
        )
        .add(
            "GET",
            "/v1/projects/{project}/agreement",
            "Per-tag agreement (Cohen's or Fleiss' kappa) between people who labelled the same tickets, with the tickets they disagree on.",
            true,
            review::agreement,
        )
        .add(
            "GET",
            "/v1/projects/{project}/review-settings",
            "The project's review settings: the share of labelled tickets a second person labels again.",
            true,
            review::settings,
        )
        .add(
            "PUT",
            "/v1/projects/{project}/review-settings",
            "Change the review settings ({\"double_label_share\": 0 to 1}).",
            true,
            review::update_settings,
        )
        .add(
            "GET",
            "/v1/projects/{project}/disagreements",
            "Tickets people labelled differently and no adjudicator has settled: each person's answer and the disputed tags.",
            true,
            review::disagreements,
        )
        .add(
            "POST",
            "/v1/projects/{project}/disagreements/{ticket}/adjudicate",
            "Settle a disagreement: the given tags become the ticket's labels ({\"tags\": [...], \"user\": \"...\"}).",
            true,
            review::adjudicate,
        )
}

async fn openapi_document() -> axum::Json<serde_json::Value> {
    axum::Json(openapi::document(&routes().endpoints))
}

/// The API routes.
pub fn router() -> Router<AppState> {
    let (router, _) = routes().into_parts();
    router.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}
