//! Training from the workbench: start a run (ML engineers and admins), follow its progress
//! live, cancel it. The run is a queued job; whichever worker takes it writes its progress
//! to the store, which these pages read. Live updates poll a small JSON document from
//! `static/training.js`; without JavaScript the run page refreshes itself.

use super::auth::{CsrfForm, CurrentUser};
use super::{WebError, WebResult, load_project, non_empty, redirect_with_flash, render_page};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Response};
use datasets::{Role, RunStatus, Store, TrainingRun, TrainingRunId};
use inference::ModelKind;
use minijinja::context;
use minijinja::value::Serde;
use serde::Deserialize;
use trainer::jobs::{JobError, TrainingParams, submit_training};

/// How many runs the list shows.
const LISTED_RUNS: u32 = 30;

fn number(progress: &serde_json::Value, key: &str) -> Option<f64> {
    progress.get(key).and_then(serde_json::Value::as_f64)
}

/// A run as the pages and the live JSON show it.
fn run_view(run: &TrainingRun) -> serde_json::Value {
    let p = &run.progress;
    let (step, steps) = (number(p, "step"), number(p, "steps"));
    let percent = match (step, steps) {
        (Some(step), Some(steps)) if steps > 0.0 => Some((step / steps * 100.0).min(100.0)),
        _ => None,
    };
    let stage = p.get("stage").and_then(serde_json::Value::as_str);
    let summary = match (run.status, stage) {
        (RunStatus::Queued, _) => "waiting for a worker".to_string(),
        (RunStatus::Running, Some("training")) => format!(
            "epoch {} of at most {} · loss {:.4} (validation {:.4})",
            step.unwrap_or(0.0),
            steps.unwrap_or(0.0),
            number(p, "loss").unwrap_or(f64::NAN),
            number(p, "validation_loss").unwrap_or(f64::NAN),
        ),
        (RunStatus::Running, Some("embedding")) => format!(
            "embedding tickets: {} of {}",
            step.unwrap_or(0.0),
            steps.unwrap_or(0.0)
        ),
        (RunStatus::Running, Some(stage)) => stage.to_string(),
        (RunStatus::Running, None) => "starting".to_string(),
        (RunStatus::Succeeded, _) => "finished".to_string(),
        (RunStatus::Failed, _) => "failed".to_string(),
        (RunStatus::Cancelled, _) => "cancelled".to_string(),
    };
    serde_json::json!({
        "id": run.id.0,
        "kind": run.kind,
        "status": run.status.as_str(),
        "final": run.status.is_final(),
        "summary": summary,
        "percent": percent,
        "eta_seconds": number(p, "eta_seconds").filter(|_| run.status == RunStatus::Running),
        "elapsed_seconds": number(p, "elapsed_seconds"),
        "attempts": run.attempts,
        "worker": run.worker,
        "error": run.error,
        "version_id": run.version_id.map(|v| v.0),
        "requested_by": run.requested_by,
        "params_text": run.params.to_string(),
        "cancel_requested": run.cancel_requested,
        "created": run.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
    })
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
) -> WebResult {
    let project = load_project(&state, project).await?;
    let runs: Vec<serde_json::Value> = state
        .store
        .training_runs(project.id, LISTED_RUNS)
        .await?
        .iter()
        .map(run_view)
        .collect();
    render_page(
        &state,
        &user,
        Some(&project),
        "training",
        "training.html",
        context! {
            runs => Serde(&runs),
            queue_available => state.jobs.is_some(),
            kinds => Serde(kind_choices()),
            retrain_after => state.config.retrain_after_labels,
        },
    )
    .await
}

/// The kinds the start form offers, from the one registry; the default is selected.
fn kind_choices() -> Vec<serde_json::Value> {
    ModelKind::ALL
        .into_iter()
        .map(|kind| {
            serde_json::json!({
                "name": kind.as_str(),
                "summary": kind.info().summary,
                "selected": kind == ModelKind::default(),
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct StartForm {
    csrf: Option<String>,
    kind: Option<String>,
    epochs: Option<String>,
    learning_rate: Option<String>,
    target_precision: Option<String>,
}

fn parse_field<T: std::str::FromStr>(name: &str, value: Option<&str>) -> WebResult<Option<T>> {
    value
        .map(|v| {
            v.parse()
                .map_err(|_| WebError::BadRequest(format!("{name} must be a number, not {v:?}")))
        })
        .transpose()
}

pub async fn start(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Form(form): Form<StartForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::MlEngineer)?;
    let project = load_project(&state, project).await?;
    let kind = match non_empty(&form.kind) {
        Some(name) => name
            .parse()
            .map_err(|error: datasets::UnknownModelKind| WebError::BadRequest(error.to_string()))?,
        None => ModelKind::default(),
    };
    let params = TrainingParams {
        epochs: parse_field("epochs", non_empty(&form.epochs))?,
        learning_rate: parse_field("learning rate", non_empty(&form.learning_rate))?,
        target_precision: parse_field("target precision", non_empty(&form.target_precision))?,
        ..TrainingParams::default()
    };
    let Some(queue) = &state.jobs else {
        return Err(WebError::Conflict("this server has no job queue".into()));
    };
    let back = format!("/p/{}/training", project.id);
    let run = match submit_training(
        &state.store,
        queue,
        project.id,
        kind,
        &params,
        &format!("web:{}", user.username()),
    )
    .await
    {
        Ok(run) => run,
        Err(JobError::Params(reason)) => {
            return Ok(redirect_with_flash(
                &back,
                "error",
                &format!("Not started: {reason}"),
            ));
        }
        Err(JobError::Store(error)) => return Err(error.into()),
        Err(other) => return Err(WebError::Internal(other.to_string())),
    };
    Ok(redirect_with_flash(
        &format!("{back}/{}", run.id),
        "ok",
        &format!("Training run #{} queued.", run.id),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, run)): Path<(i64, i64)>,
) -> WebResult {
    let project = load_project(&state, project).await?;
    let run = state
        .store
        .training_run(project.id, TrainingRunId(run))
        .await?;
    let version = match run.version_id {
        Some(id) => Some(super::models::version_row(
            &state.store.model_version(project.id, id).await?,
        )),
        None => None,
    };
    render_page(
        &state,
        &user,
        Some(&project),
        "training",
        "training_run.html",
        context! {
            run => Serde(run_view(&run)),
            version => version,
        },
    )
    .await
}

/// The run as JSON, for the page's live updates.
pub async fn progress(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path((project, run)): Path<(i64, i64)>,
) -> WebResult<Response> {
    let project = load_project(&state, project).await?;
    let run = state
        .store
        .training_run(project.id, TrainingRunId(run))
        .await?;
    Ok(Json(run_view(&run)).into_response())
}

pub async fn cancel(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, run)): Path<(i64, i64)>,
    Form(form): Form<CsrfForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::MlEngineer)?;
    let project = load_project(&state, project).await?;
    let back = format!("/p/{}/training/{run}", project.id);
    let cancelled = state
        .store
        .cancel_training_run(project.id, TrainingRunId(run))
        .await?;
    let message = if cancelled.status == RunStatus::Cancelled {
        "Cancelled."
    } else {
        "Asked to stop: the worker stops at the end of the current epoch."
    };
    Ok(redirect_with_flash(&back, "ok", message))
}
