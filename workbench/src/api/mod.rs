//! The JSON API under `/v1` and the health endpoints. Handlers are thin: they parse,
//! call the store, and map errors.

mod audit;
pub mod auth;
mod connector_webhooks;
mod connectors_log;
mod error;
mod health;
mod models;
pub mod openapi;
pub mod projects;
mod review;
mod schemas;
pub(crate) mod tag_groups;
mod tagging;
mod tickets;
mod training;

pub use error::{ApiError, ApiJson, ApiPath, ApiQuery, from_json_bytes, from_json_value};
pub use tagging::MAX_TAG_BATCH;

use crate::state::AppState;
use auth::Access;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use datasets::Scope;
use openapi::Answer;

/// The largest request body, in bytes: a full batch of tickets of ordinary size fits; a batch
/// of maximum-size bodies must be split.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

const OK: StatusCode = StatusCode::OK;
/// Link parameters: the id in the answer names what the linked operation acts on.
const TICKET_ID: &[(&str, &str)] = &[("ticket", "$response.body#/id")];
const TAG_ID: &[(&str, &str)] = &[("tag", "$response.body#/id")];
const RUN_ID: &[(&str, &str)] = &[("run", "$response.body#/id")];
const GROUP_ID: &[(&str, &str)] = &[("group", "$response.body#/id")];

/// Every route with its summary, who may call it, what it takes and what it answers (the
/// handler's own request and response types), in the order they are documented.
pub fn routes() -> openapi::Routes {
    openapi::Routes::new()
        .add(
            "GET",
            "/healthz",
            "The process is alive.",
            Access::Open,
            health::alive,
        )
        .answers::<health::Alive>(OK)
        .add(
            "GET",
            "/readyz",
            "Ready: the database answers; models in service per project.",
            Access::Open,
            health::ready,
        )
        .answers::<health::Readiness>(OK)
        .answers::<health::Readiness>(StatusCode::SERVICE_UNAVAILABLE)
        .add(
            "GET",
            "/metrics",
            "Prometheus metrics.",
            Access::Open,
            health::metrics,
        )
        .answers_without_json(OK, Answer::Text)
        .add(
            "GET",
            "/v1/openapi.json",
            "This document.",
            Access::Open,
            openapi_document,
        )
        .answers_object(OK)
        .add(
            "POST",
            "/v1/connectors/{name}/webhook",
            "A help desk's webhook delivery (Zendesk, Jira, ServiceNow), authenticated by the connector's HMAC signature over the raw body.",
            Access::VendorSignature,
            connector_webhooks::webhook,
        )
        .answers_object(OK)
        .answers_object(StatusCode::ACCEPTED)
        .fails(&[StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE, StatusCode::UNPROCESSABLE_ENTITY, StatusCode::CONFLICT])
        .add(
            "GET",
            "/v1/projects/{project}/connectors/{name}/deliveries",
            "The connector's webhook deliveries, newest first (?cursor=, ?limit=).",
            Access::Project(Scope::Admin),
            connectors_log::deliveries,
        )
        .query::<connectors_log::LogParams>()
        .answers::<connectors_log::DeliveryPage>(OK)
        .fails(&[StatusCode::UNPROCESSABLE_ENTITY])
        .add(
            "GET",
            "/v1/projects/{project}/connectors/{name}/write-backs",
            "The connector's write-backs of our tags to its help desk, newest first, failures with the help desk's reason (?cursor=, ?limit=).",
            Access::Project(Scope::Admin),
            connectors_log::write_backs,
        )
        .query::<connectors_log::LogParams>()
        .answers::<connectors_log::WriteBackPage>(OK)
        .fails(&[StatusCode::UNPROCESSABLE_ENTITY])
        .add(
            "GET",
            "/v1/projects",
            "Projects with ticket and tag counts.",
            Access::InstanceAdmin,
            projects::list,
        )
        .answers_list::<datasets::ProjectSummary>(OK)
        .add(
            "POST",
            "/v1/projects",
            "Create a project (default taxonomy unless tags are given).",
            Access::InstanceAdmin,
            projects::create,
        )
        .body::<projects::CreateProject>()
        .answers::<projects::CreatedProject>(StatusCode::CREATED)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "GET",
            "/v1/audit",
            "The audit log, newest first (?action=, ?actor=, ?project=, ?before= cursor, ?limit=): promotions, rollbacks, keys, taxonomy, users, connectors, webhooks.",
            Access::InstanceAdmin,
            audit::instance,
        )
        .answers_object(OK)
        .fails(&[StatusCode::UNPROCESSABLE_ENTITY])
        .add(
            "GET",
            "/v1/projects/{project}/audit",
            "The project's audit log entries, newest first (?action=, ?actor=, ?before= cursor, ?limit=).",
            Access::Project(Scope::Admin),
            audit::project,
        )
        .answers_object(OK)
        .fails(&[StatusCode::UNPROCESSABLE_ENTITY])
        .add(
            "GET",
            "/v1/projects/{project}",
            "One project.",
            Access::Project(Scope::Read),
            projects::show,
        )
        .answers::<datasets::Project>(OK)
        .add(
            "PUT",
            "/v1/projects/{project}/languages",
            "Set the languages the project's model serves ({\"languages\": [\"eng\", …]}, ISO 639-3; [] for all): a ticket detected in another goes to review as unsupported_language.",
            Access::Project(Scope::Admin),
            projects::set_languages,
        )
        .body::<projects::SetLanguages>()
        .answers::<datasets::Project>(OK)
        .add(
            "GET",
            "/v1/projects/{project}/glossary",
            "The project's glossary: product and component names, found in tickets as entities of kind product.",
            Access::Project(Scope::Read),
            projects::glossary,
        )
        .answers::<projects::GlossaryTerms>(OK)
        .add(
            "PUT",
            "/v1/projects/{project}/glossary",
            "Replace the glossary ({\"terms\": [\"Acme Sync\", …]}, at most 500 terms of 100 characters; matched as whole words in any case); the project's tickets' entities are extracted again in the background.",
            Access::Project(Scope::Admin),
            projects::set_glossary,
        )
        .body::<projects::GlossaryTerms>()
        .answers::<projects::GlossaryTerms>(OK)
        .add(
            "GET",
            "/v1/projects/{project}/tags",
            "The taxonomy.",
            Access::Project(Scope::Read),
            projects::list_tags,
        )
        .answers_list::<datasets::Tag>(OK)
        .add(
            "POST",
            "/v1/projects/{project}/tags",
            "Add a tag.",
            Access::Project(Scope::Admin),
            projects::create_tag,
        )
        .body::<datasets::NewTag>()
        .answers::<datasets::Tag>(StatusCode::CREATED)
        .link("UpdateTag", "PATCH", "/v1/projects/{project}/tags/{tag}", TAG_ID)
        .link("MergeTag", "POST", "/v1/projects/{project}/tags/{tag}/merge", TAG_ID)
        .link("GetTagKeyPhrases", "GET", "/v1/projects/{project}/tags/{tag}/key-phrases", TAG_ID)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "PATCH",
            "/v1/projects/{project}/tags/{tag}",
            "Rename, describe, recolour, archive a tag, edit its keyword rules or move it to another group ({\"group\": name}).",
            Access::Project(Scope::Admin),
            projects::update_tag,
        )
        .body::<datasets::TagUpdate>()
        .answers::<datasets::Tag>(OK)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "POST",
            "/v1/projects/{project}/tags/{tag}/merge",
            "Merge this tag into another ({\"into\": tag id}): its labels move, its rules are appended, it is archived.",
            Access::Project(Scope::Admin),
            projects::merge_tag,
        )
        .body::<projects::MergeRequest>()
        .answers::<datasets::TagMerge>(OK)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "GET",
            "/v1/projects/{project}/tags/{tag}/key-phrases",
            "The words and phrases that set the tag's tickets apart from the project's other tickets, strongest first.",
            Access::Project(Scope::Read),
            projects::tag_key_phrases,
        )
        .answers::<projects::TagKeyPhrases>(OK)
        .add(
            "GET",
            "/v1/projects/{project}/tag-groups",
            "The taxonomy's tag groups, each single-choice (a ticket gets at most one of its tags) or multi-choice.",
            Access::Project(Scope::Read),
            tag_groups::list,
        )
        .answers_list::<datasets::TagGroup>(OK)
        .add(
            "POST",
            "/v1/projects/{project}/tag-groups",
            "Add a tag group ({\"name\", \"choice\": \"single\"|\"multi\"}).",
            Access::Project(Scope::Admin),
            tag_groups::create,
        )
        .body::<datasets::NewTagGroup>()
        .answers::<datasets::TagGroup>(StatusCode::CREATED)
        .link("RenameTagGroup", "PATCH", "/v1/projects/{project}/tag-groups/{group}", GROUP_ID)
        .link("DeleteTagGroup", "DELETE", "/v1/projects/{project}/tag-groups/{group}", GROUP_ID)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "PATCH",
            "/v1/projects/{project}/tag-groups/{group}",
            "Rename a tag group ({\"name\"}).",
            Access::Project(Scope::Admin),
            tag_groups::rename,
        )
        .body::<tag_groups::RenameTagGroup>()
        .answers::<datasets::TagGroup>(OK)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "DELETE",
            "/v1/projects/{project}/tag-groups/{group}",
            "Delete an empty tag group (not the default group); answers the group deleted.",
            Access::Project(Scope::Admin),
            tag_groups::delete,
        )
        .answers::<datasets::TagGroup>(OK)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "GET",
            "/v1/projects/{project}/tickets",
            "Search tickets.",
            Access::Project(Scope::Read),
            tickets::search,
        )
        .query::<tickets::SearchParams>()
        .answers::<tickets::TicketPage>(OK)
        .add(
            "POST",
            "/v1/projects/{project}/tickets",
            "Ingest one ticket (idempotent on source and external id).",
            Access::Project(Scope::Tag),
            tickets::ingest_one,
        )
        .body::<tickets::IngestTicket>()
        .answers::<tickets::Ingested>(OK)
        .answers::<tickets::Ingested>(StatusCode::CREATED)
        .link("GetTicket", "GET", "/v1/projects/{project}/tickets/{ticket}", TICKET_ID)
        .link("SetTicketLabels", "PUT", "/v1/projects/{project}/tickets/{ticket}/labels", TICKET_ID)
        .link("GetTicketHistory", "GET", "/v1/projects/{project}/tickets/{ticket}/history", TICKET_ID)
        .link("AdjudicateTicket", "POST", "/v1/projects/{project}/disagreements/{ticket}/adjudicate", TICKET_ID)
        .link("ReleaseTicket", "POST", "/v1/projects/{project}/review-queue/{ticket}/release", TICKET_ID)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "POST",
            "/v1/projects/{project}/tickets/batch",
            "Ingest a batch of tickets, all or nothing.",
            Access::Project(Scope::Tag),
            tickets::ingest_batch,
        )
        .body::<tickets::IngestBatch>()
        .answers::<tickets::BatchIngested>(OK)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "POST",
            "/v1/projects/{project}/tickets/ingest",
            "Ingest a ticket and tag it with the promoted model.",
            Access::Project(Scope::Tag),
            tagging::ingest_and_tag,
        )
        .body::<tickets::IngestTicket>()
        .query::<tagging::ExplainParams>()
        .answers::<tagging::IngestedAndTagged>(OK)
        .answers::<tagging::IngestedAndTagged>(StatusCode::CREATED)
        .link("GetTicket", "GET", "/v1/projects/{project}/tickets/{ticket}", TICKET_ID)
        .link("SetTicketLabels", "PUT", "/v1/projects/{project}/tickets/{ticket}/labels", TICKET_ID)
        .link("GetTicketHistory", "GET", "/v1/projects/{project}/tickets/{ticket}/history", TICKET_ID)
        .link("AdjudicateTicket", "POST", "/v1/projects/{project}/disagreements/{ticket}/adjudicate", TICKET_ID)
        .link("ReleaseTicket", "POST", "/v1/projects/{project}/review-queue/{ticket}/release", TICKET_ID)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "GET",
            "/v1/projects/{project}/tickets/{ticket}",
            "A ticket with its labels.",
            Access::Project(Scope::Read),
            tickets::show,
        )
        .answers::<datasets::LabelledTicket>(OK)
        .add(
            "PUT",
            "/v1/projects/{project}/tickets/{ticket}/labels",
            "Set the tags a person gives a ticket ({\"tags\": [...]}); the labeller is the key.",
            Access::Project(Scope::Label),
            tickets::set_labels,
        )
        .body::<tickets::SetLabels>()
        .answers::<datasets::LabelledTicket>(OK)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "GET",
            "/v1/projects/{project}/tickets/{ticket}/history",
            "Every label change of a ticket.",
            Access::Project(Scope::Read),
            tickets::history,
        )
        .answers_list::<datasets::LabelEvent>(OK)
        .add(
            "POST",
            "/v1/projects/{project}/tag",
            "Tag one text with the promoted model.",
            Access::Project(Scope::Tag),
            tagging::tag_one,
        )
        .body::<tagging::TagRequest>()
        .query::<tagging::ExplainParams>()
        .answers::<inference::service::Tagged>(OK)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "POST",
            "/v1/projects/{project}/tag/batch",
            "Tag up to 64 texts.",
            Access::Project(Scope::Tag),
            tagging::tag_batch,
        )
        .body::<tagging::TagBatchRequest>()
        .query::<tagging::ExplainParams>()
        .answers::<tagging::TaggedBatch>(OK)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "GET",
            "/v1/projects/{project}/models",
            "Model versions and promotion history.",
            Access::Project(Scope::Read),
            models::list,
        )
        .answers::<models::Registry>(OK)
        .add(
            "POST",
            "/v1/projects/{project}/models/rollback",
            "Put back the version the promoted one replaced.",
            Access::Project(Scope::Train),
            models::rollback,
        )
        .answers::<models::PromotionResult>(OK)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "POST",
            "/v1/projects/{project}/models/{version}/promote",
            "Promote a version (guarded unless forced).",
            Access::Project(Scope::Train),
            models::promote,
        )
        .optional_body::<models::PromoteRequest>()
        .answers::<models::PromotionResult>(OK)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "POST",
            "/v1/projects/{project}/models/{version}/evaluate",
            "Evaluate a version again on today's held-out tickets (queued; 202).",
            Access::Project(Scope::Train),
            models::evaluate,
        )
        .answers_without_json(StatusCode::ACCEPTED, Answer::Empty)
        .add(
            "GET",
            "/v1/projects/{project}/training-runs",
            "Training runs, newest first, with progress and outcome.",
            Access::Project(Scope::Read),
            training::list,
        )
        .answers_list::<datasets::TrainingRun>(OK)
        .add(
            "POST",
            "/v1/projects/{project}/training-runs",
            "Queue a training run (kind and optional hyper-parameters).",
            Access::Project(Scope::Train),
            training::submit,
        )
        .body::<training::TrainingRequest>()
        .answers::<datasets::TrainingRun>(StatusCode::ACCEPTED)
        .link("GetTrainingRun", "GET", "/v1/projects/{project}/training-runs/{run}", RUN_ID)
        .link("CancelTrainingRun", "POST", "/v1/projects/{project}/training-runs/{run}/cancel", RUN_ID)
        .add(
            "GET",
            "/v1/projects/{project}/training-runs/{run}",
            "One training run.",
            Access::Project(Scope::Read),
            training::show,
        )
        .answers::<datasets::TrainingRun>(OK)
        .add(
            "POST",
            "/v1/projects/{project}/training-runs/{run}/cancel",
            "Cancel a queued run, or stop a running one at its next epoch.",
            Access::Project(Scope::Train),
            training::cancel,
        )
        .answers::<datasets::TrainingRun>(OK)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "POST",
            "/v1/projects/{project}/review-queue/lease",
            "Lease the next tickets to label to the key's holder ({\"count\", \"lease_seconds\"}, both optional), each with score, strategy and reason.",
            Access::Project(Scope::Label),
            review::lease,
        )
        .optional_body::<review::LeaseRequest>()
        .answers::<review::LeasedBatch>(OK)
        .add(
            "POST",
            "/v1/projects/{project}/review-queue/score",
            "Recompute the review queue now with a strategy (default margin).",
            Access::Project(Scope::Train),
            review::score,
        )
        .optional_body::<review::ScoreRequest>()
        .answers::<trainer::active::ScoreSummary>(OK)
        .add(
            "POST",
            "/v1/projects/{project}/review-queue/{ticket}/release",
            "Give back a ticket leased with this key (skip); another holder's lease is not touched.",
            Access::Project(Scope::Label),
            review::release,
        )
        .optional_body::<review::ReleaseRequest>()
        .answers_without_json(StatusCode::NO_CONTENT, Answer::Empty)
        .fails(&[StatusCode::CONFLICT])
        .add(
            "GET",
            "/v1/projects/{project}/agreement",
            "Per-tag agreement (Cohen's or Fleiss' kappa) between people who labelled the same tickets, with the tickets they disagree on.",
            Access::Project(Scope::Read),
            review::agreement,
        )
        .query::<review::AgreementQuery>()
        .answers::<review::Agreement>(OK)
        .add(
            "GET",
            "/v1/projects/{project}/review-settings",
            "The project's review settings: the share of labelled tickets a second person labels again.",
            Access::Project(Scope::Read),
            review::settings,
        )
        .answers::<datasets::ReviewSettings>(OK)
        .add(
            "PUT",
            "/v1/projects/{project}/review-settings",
            "Change the review settings ({\"double_label_share\": 0 to 1}).",
            Access::Project(Scope::Admin),
            review::update_settings,
        )
        .body::<datasets::ReviewSettings>()
        .answers::<datasets::ReviewSettings>(OK)
        .add(
            "GET",
            "/v1/projects/{project}/disagreements",
            "Tickets people labelled differently and no adjudicator has settled: each person's answer and the disputed tags.",
            Access::Project(Scope::Read),
            review::disagreements,
        )
        .answers_list::<trainer::active::kappa::Disagreement>(OK)
        .add(
            "POST",
            "/v1/projects/{project}/disagreements/{ticket}/adjudicate",
            "Settle a disagreement: the given tags become the ticket's labels ({\"tags\": [...]}); the adjudicator is the key.",
            Access::Project(Scope::Label),
            review::adjudicate,
        )
        .body::<review::Adjudication>()
        .answers::<datasets::LabelledTicket>(OK)
        .fails(&[StatusCode::CONFLICT])
}

async fn openapi_document() -> axum::Json<serde_json::Value> {
    axum::Json(openapi::document(&routes().endpoints))
}

/// The API routes.
pub fn router() -> Router<AppState> {
    let (router, _) = routes().into_parts();
    router.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}
