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
use datasets::store::prelude::*;
use datasets::{Role, RunStatus, TrainingRun, TrainingRunId};
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

/// Seconds as people say them: "40 s", "3 min 20 s", "1 h 5 min".
fn duration_text(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    match (total / 3600, total % 3600 / 60, total % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// A run as the pages and the live JSON show it.
fn run_view(run: &TrainingRun) -> serde_json::Value {
    let p = &run.progress;
    let (step, steps) = (number(p, "step"), number(p, "steps"));
    let stage = p.get("stage").and_then(serde_json::Value::as_str);
    // One percentage over the whole run (the worker keeps it from going backwards between
    // stages); reports written before it existed fall back to the stage's own share. An
    // ended run shows a full bar when it succeeded and none otherwise — never an animated
    // empty one.
    let percent = match run.status {
        RunStatus::Succeeded => Some(100.0),
        RunStatus::Failed | RunStatus::Cancelled => None,
        RunStatus::Queued | RunStatus::Running => number(p, "percent").or(match (step, steps) {
            (Some(step), Some(steps)) if steps > 0.0 => Some((step / steps * 100.0).min(100.0)),
            _ => None,
        }),
    };
    let running = run.status == RunStatus::Running;
    // Epoch counts are upper bounds (early stopping); embedding runs to its end.
    let eta_text = number(p, "eta_seconds")
        .filter(|_| running)
        .map(|eta| match stage {
            Some("training") => format!(
                "at most {} left in training (early stopping usually ends sooner)",
                duration_text(eta)
            ),
            Some(stage) => format!("about {} left in {stage}", duration_text(eta)),
            None => format!("about {} left", duration_text(eta)),
        });
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
        "eta_seconds": number(p, "eta_seconds").filter(|_| running),
        "eta_text": eta_text,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
    use super::*;
    use datasets::ProjectId;

    fn run(status: RunStatus, progress: serde_json::Value) -> TrainingRun {
        let now = chrono::Utc::now();
        TrainingRun {
            id: TrainingRunId(1),
            project_id: ProjectId(1),
            kind: "encoder-head".parse().unwrap(),
            params: serde_json::json!({}),
            status,
            progress,
            cancel_requested: false,
            attempts: 1,
            worker: None,
            error: None,
            version_id: None,
            requested_by: "test".into(),
            created_at: now,
            started_at: None,
            updated_at: now,
            finished_at: None,
        }
    }

    #[test]
    fn an_ended_run_shows_a_full_bar_or_none_and_no_estimate() {
        let last = serde_json::json!({"stage": "evaluating", "percent": 96.0, "eta_seconds": 3.0});
        let done = run_view(&run(RunStatus::Succeeded, last.clone()));
        assert_eq!(done["percent"], 100.0);
        assert!(done["eta_text"].is_null());
        for ended in [RunStatus::Failed, RunStatus::Cancelled] {
            let view = run_view(&run(ended, last.clone()));
            assert!(view["percent"].is_null(), "{view}");
            assert!(view["eta_text"].is_null());
        }
    }

    #[test]
    fn a_running_run_shows_the_whole_runs_percentage_and_the_stages_estimate() {
        let embedding = serde_json::json!({
            "stage": "embedding", "step": 300, "steps": 1000, "percent": 15.0, "eta_seconds": 200.0,
        });
        let view = run_view(&run(RunStatus::Running, embedding));
        assert_eq!(
            view["percent"], 15.0,
            "the run's percentage, not the stage's 30%"
        );
        assert_eq!(view["eta_text"], "about 3 min 20 s left in embedding");
        let training = serde_json::json!({
            "stage": "training", "step": 2, "steps": 10, "percent": 58.4, "eta_seconds": 4000.0,
        });
        let view = run_view(&run(RunStatus::Running, training));
        assert_eq!(
            view["eta_text"],
            "at most 1 h 6 min left in training (early stopping usually ends sooner)"
        );
    }
}
