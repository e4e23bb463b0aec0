//! Model versions: the list with held-out figures, a side-by-side comparison of two versions
//! with per-tag deltas, and promote / roll back for ML engineers and admins, through the same
//! guard as the API and the CLI.

use super::auth::{CsrfForm, CurrentUser};
use super::charts::{XySeries, xy_chart};
use super::confusion;
use super::{WebResult, load_project, non_empty, redirect_with_flash, render_page};
use crate::state::AppState;
use axum::extract::{Form, Path, Query, State};
use datasets::registry::check_guard;
use datasets::store::prelude::*;
use datasets::{ModelKind, ModelVersion, ModelVersionId, Role};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::BTreeMap;

fn figure(metrics: &serde_json::Value, path: &[&str]) -> Option<f64> {
    let mut value = metrics;
    for key in path {
        value = value.get(key)?;
    }
    value.as_f64()
}

/// Per-tag precision, recall, F1 and support from a version's stored evaluation.
fn per_tag(metrics: &serde_json::Value) -> BTreeMap<String, [f64; 4]> {
    metrics
        .get("per_tag")
        .and_then(serde_json::Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|t| {
                    Some((
                        t.get("tag")?.as_str()?.to_string(),
                        [
                            t.get("precision")?.as_f64()?,
                            t.get("recall")?.as_f64()?,
                            t.get("f1")?.as_f64()?,
                            t.get("support")?.as_f64()?,
                        ],
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn version_row(version: &ModelVersion) -> Value {
    let m = &version.metrics;
    context! {
        id => version.id.0,
        kind => version.kind.as_str(),
        status => version.status.as_str(),
        created => version.created_at.format("%Y-%m-%d %H:%M").to_string(),
        accuracy => figure(m, &["accuracy"]),
        micro_f1 => figure(m, &["micro_f1"]),
        macro_f1 => figure(m, &["macro_f1"]),
        ece => figure(m, &["ece"]),
        auto_share => figure(m, &["coverage", "auto_tagged_share"]),
        auto_precision => figure(m, &["coverage", "precision"]),
        review_share => figure(m, &["coverage", "review_share"]),
        examples => figure(m, &["examples"]),
    }
}

/// One point of the learning curve: a version's held-out figures against the labelled
/// tickets it learned from.
#[derive(Debug, Clone, PartialEq)]
struct CurvePoint {
    version: i64,
    kind: ModelKind,
    status: String,
    created: String,
    /// Train and validation examples: tickets with labels from people (by hand or imported).
    labels: u64,
    /// Of which labelled in the workbench; unknown for versions trained before it was recorded.
    by_hand: Option<u64>,
    test_examples: Option<u64>,
    macro_f1: f64,
    accuracy: Option<f64>,
}

fn count(params: &serde_json::Value, key: &str) -> Option<u64> {
    params.get(key)?.as_u64()
}

/// The versions that recorded what they learned from and a macro-F1, fewest labels first.
fn learning_curve(versions: &[ModelVersion]) -> Vec<CurvePoint> {
    let mut points: Vec<CurvePoint> = versions
        .iter()
        .filter_map(|v| {
            Some(CurvePoint {
                version: v.id.0,
                kind: v.kind,
                status: v.status.clone(),
                created: v.created_at.format("%Y-%m-%d %H:%M").to_string(),
                labels: count(&v.params, "train_examples")?
                    + count(&v.params, "validation_examples")?,
                by_hand: count(&v.params, "labelled_by_hand"),
                test_examples: count(&v.params, "test_examples"),
                macro_f1: figure(&v.metrics, &["macro_f1"])?,
                accuracy: figure(&v.metrics, &["accuracy"]),
            })
        })
        .collect();
    points.sort_by_key(|p| (p.labels, p.version));
    points
}

const CURVE_COLOURS: [&str; 6] = [
    "#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2",
];

/// Macro-F1 and accuracy against labels, one pair of lines per model kind (kinds differ too
/// much to share a line).
fn learning_curve_chart(points: &[CurvePoint]) -> String {
    let mut kinds: Vec<&str> = points.iter().map(|p| p.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut series = Vec::new();
    for kind in kinds {
        let of_kind = || points.iter().filter(move |p| p.kind.as_str() == kind);
        series.push(XySeries {
            name: format!("{kind} macro-F1"),
            color: CURVE_COLOURS[series.len() % CURVE_COLOURS.len()].to_string(),
            points: of_kind().map(|p| (p.labels as f64, p.macro_f1)).collect(),
        });
        series.push(XySeries {
            name: format!("{kind} accuracy"),
            color: CURVE_COLOURS[series.len() % CURVE_COLOURS.len()].to_string(),
            points: of_kind()
                .filter_map(|p| Some((p.labels as f64, p.accuracy?)))
                .collect(),
        });
    }
    xy_chart(
        "Learning curve: held-out figures against labelled tickets learned from",
        "labelled tickets learned from (train + validation)",
        "held-out figure",
        &series,
    )
}

fn curve_rows(points: &[CurvePoint]) -> Vec<Value> {
    points
        .iter()
        .map(|p| {
            context! {
                version => p.version,
                kind => p.kind.as_str(),
                status => p.status.as_str(),
                labels => p.labels,
                by_hand => p.by_hand,
                imported => p.by_hand.map(|h| p.labels.saturating_sub(h)),
                test_examples => p.test_examples,
                macro_f1 => p.macro_f1,
                accuracy => p.accuracy,
            }
        })
        .collect()
}

/// The table behind the learning curve, as CSV.
pub async fn learning_curve_csv(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(project): Path<i64>,
) -> WebResult {
    let project = load_project(&state, project).await?;
    let points = learning_curve(&state.store.model_versions(project.id).await?);
    let optional = |value: Option<u64>| value.map_or_else(String::new, |v| v.to_string());
    let mut out = String::from(
        "version,kind,status,created,labels_learned_from,labelled_by_hand,imported,test_examples,macro_f1,accuracy\n",
    );
    for p in &points {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{:.4},{}\n",
            p.version,
            super::csv::cell(p.kind.as_str()),
            super::csv::cell(&p.status),
            p.created,
            p.labels,
            optional(p.by_hand),
            optional(p.by_hand.map(|h| p.labels.saturating_sub(h))),
            optional(p.test_examples),
            p.macro_f1,
            p.accuracy.map_or_else(String::new, |a| format!("{a:.4}")),
        ));
    }
    Ok(super::csv::download(out, "learning-curve.csv"))
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
) -> WebResult {
    let project = load_project(&state, project).await?;
    let versions = state.store.model_versions(project.id).await?;
    let curve = learning_curve(&versions);
    let history: Vec<Value> = state
        .store
        .model_promotions(project.id)
        .await?
        .iter()
        .map(|p| {
            context! {
                at => p.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                action => p.action.as_str(),
                version => p.version.0,
                previous => p.previous.map(|v| v.0),
                actor => p.actor.as_str(),
            }
        })
        .collect();
    let rows: Vec<Value> = versions.iter().map(version_row).collect();
    render_page(
        &state,
        &user,
        Some(&project),
        "models",
        "models.html",
        context! {
            versions => rows,
            history => history,
            margin => state.config.promotion_guard_margin,
            serving => state.tagging.serving(project.id).map(|s| s.version.0),
            curve => curve_rows(&curve),
            curve_chart => (!curve.is_empty()).then(|| Value::from_safe_string(learning_curve_chart(&curve))),
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct CompareQuery {
    a: Option<String>,
    b: Option<String>,
}

fn version_param(name: &str, value: Option<&str>) -> WebResult<ModelVersionId> {
    super::id_field(value, || format!("choose version {name} to compare")).map(ModelVersionId)
}

pub async fn compare(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Query(query): Query<CompareQuery>,
) -> WebResult {
    let project = load_project(&state, project).await?;
    let a = state
        .store
        .model_version(project.id, version_param("A", query.a.as_deref())?)
        .await?;
    let b = state
        .store
        .model_version(project.id, version_param("B", query.b.as_deref())?)
        .await?;
    let tags_a = per_tag(&a.metrics);
    let tags_b = per_tag(&b.metrics);
    let mut names: Vec<&String> = tags_a.keys().chain(tags_b.keys()).collect();
    names.sort();
    names.dedup();
    let rows: Vec<Value> = names
        .iter()
        .map(|name| {
            let fa = tags_a.get(*name);
            let fb = tags_b.get(*name);
            let delta = |i: usize| match (fa, fb) {
                (Some(x), Some(y)) => Some(y[i] - x[i]),
                _ => None,
            };
            context! {
                tag => name.as_str(),
                a => fa.map(|f| f.to_vec()),
                b => fb.map(|f| f.to_vec()),
                delta => [delta(0), delta(1), delta(2)],
            }
        })
        .collect();
    let summary_keys = [
        ("Accuracy", vec!["accuracy"], true),
        ("Micro-F1", vec!["micro_f1"], true),
        ("Macro-F1", vec!["macro_f1"], true),
        ("Calibration error (ECE)", vec!["ece"], false),
        (
            "Auto-tagged share",
            vec!["coverage", "auto_tagged_share"],
            true,
        ),
        (
            "Precision of auto tags",
            vec!["coverage", "precision"],
            true,
        ),
        ("Sent to review", vec!["coverage", "review_share"], false),
    ];
    let summary: Vec<Value> = summary_keys
        .iter()
        .map(|(label, path, higher_is_better)| {
            let x = figure(&a.metrics, path);
            let y = figure(&b.metrics, path);
            context! {
                label => *label,
                a => x,
                b => y,
                delta => x.zip(y).map(|(x, y)| y - x),
                higher_is_better => higher_is_better,
            }
        })
        .collect();
    let single = project.label_mode == datasets::LabelMode::Single;
    let confusions = [
        confusion(format!("A #{}", a.id), &a, single),
        confusion(format!("B #{}", b.id), &b, single),
    ];
    let versions: Vec<Value> = state
        .store
        .model_versions(project.id)
        .await?
        .iter()
        .map(|v| context! { id => v.id.0, kind => v.kind.as_str(), status => v.status.as_str() })
        .collect();
    render_page(
        &state,
        &user,
        Some(&project),
        "models",
        "compare.html",
        context! {
            a => version_row(&a),
            b => version_row(&b),
            summary => summary,
            tags => rows,
            confusions => confusions,
            single => single,
            versions => versions,
        },
    )
    .await
}

/// Tags up to which the compare page also prints the whole matrix as a table; past that a
/// table of zeros is unreadable and the heat-map and the pairs say it better.
const FULL_TABLE_TAGS: usize = 12;

/// One version's confusion as the compare page shows it: for one tag per ticket the most
/// confused pairs and a heat-map of the tags with errors (and the full table while it is
/// small); for several, the per-tag `[tp, fp, fn, tn]` rows.
fn confusion(label: String, version: &ModelVersion, single: bool) -> Value {
    // Rows follow the model's own tag order, which `per_tag` lists.
    let names: Vec<String> = version
        .metrics
        .get("per_tag")
        .and_then(serde_json::Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|t| Some(t.get("tag")?.as_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let recorded = version
        .metrics
        .get("confusion")
        .cloned()
        .unwrap_or_default();
    // A model with one head per tag group records per-tag [tp, fp, fn, tn] cells, even in a
    // single-label project.
    let grouped = version.metrics.get("groups").is_some();
    let square = (single && !grouped)
        .then(|| confusion::square_matrix(&recorded))
        .flatten();
    let Some(matrix) = square else {
        return context! {
            label => label,
            matrix => Value::from(Serde(recorded)),
            names => names,
        };
    };
    let pairs: Vec<Value> = confusion::confused_pairs(&matrix, &names, confusion::PAIRS_SHOWN)
        .iter()
        .map(|p| {
            context! {
                truth => p.truth.as_str(),
                predicted => p.predicted.as_str(),
                truth_query => super::encode_component(&p.truth),
                predicted_query => super::encode_component(&p.predicted),
                count => p.count,
                share_of_truth => p.share_of_truth,
                share_of_errors => p.share_of_errors,
            }
        })
        .collect();
    let heat_map = confusion::heat_map(&matrix, &names, confusion::HEAT_MAP_TAGS);
    context! {
        label => label,
        tags => matrix.len(),
        errors => matrix.iter().enumerate().map(|(i, row)| row.iter().sum::<usize>() - row[i]).sum::<usize>(),
        examples => matrix.iter().flatten().sum::<usize>(),
        pairs => pairs,
        heat_map => heat_map.as_ref().map(|h| Value::from_safe_string(h.svg.clone())),
        heat_map_tags => heat_map.as_ref().map(|h| h.tags),
        heat_map_left_out => heat_map.as_ref().map(|h| h.left_out),
        matrix => (matrix.len() <= FULL_TABLE_TAGS).then(|| Value::from(Serde(&matrix))),
        names => names,
    }
}

#[derive(Debug, Deserialize)]
pub struct PromoteForm {
    csrf: Option<String>,
    /// Present when the person chose to override the guard.
    force: Option<String>,
}

pub async fn promote(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, version)): Path<(i64, i64)>,
    Form(form): Form<PromoteForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::MlEngineer)?;
    let project = load_project(&state, project).await?;
    let candidate = state
        .store
        .model_version(project.id, ModelVersionId(version))
        .await?;
    let back = format!("/p/{}/models", project.id);
    if form.force.is_none() {
        let promoted = state.store.promoted_model_version(project.id).await?;
        if let Err(refusal) = check_guard(
            &candidate,
            promoted.as_ref(),
            state.config.promotion_guard_margin,
        ) {
            return Ok(redirect_with_flash(
                &back,
                "error",
                &format!("Not promoted: {refusal}"),
            ));
        }
    }
    let promotion = state
        .store
        .promote_model_version(project.id, candidate.id, user.actor())
        .await?;
    Ok(redirect_with_flash(
        &back,
        "ok",
        &swap_message(&state, promotion).await,
    ))
}

pub async fn rollback(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::MlEngineer)?;
    let project = load_project(&state, project).await?;
    let promotion = state
        .store
        .rollback_model_version(project.id, user.actor())
        .await?;
    Ok(redirect_with_flash(
        &format!("/p/{}/models", project.id),
        "ok",
        &swap_message(&state, promotion).await,
    ))
}

/// Swaps this process to the new version at once (others follow within their watch
/// interval) and says what happened.
async fn swap_message(state: &AppState, promotion: datasets::Promotion) -> String {
    // The review queue follows the model in service.
    state.model_changed(promotion.project_id);
    let verb = match promotion.action {
        datasets::PromotionAction::Promote => "promoted",
        datasets::PromotionAction::Rollback => "rolled back to",
    };
    match state
        .tagging
        .sync_project(&state.store, promotion.project_id)
        .await
    {
        Ok(_) => format!("Version {} {verb}; it is in service.", promotion.version),
        Err(error) => format!(
            "Version {} {verb}, but this server could not load it yet: {error}",
            promotion.version
        ),
    }
}
