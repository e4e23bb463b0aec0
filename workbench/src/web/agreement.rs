//! Label quality: the share of labelled tickets a second person labels again (admins set
//! it), per-tag agreement between labellers (Cohen's kappa), and the adjudication list — the
//! tickets people answered differently — where an ML engineer or admin settles the labels.

use super::auth::CurrentUser;
use super::tickets::{record_label_form, tag_chip};
use super::{WebError, WebResult, load_project, non_empty, redirect_with_flash, render_page};
use crate::state::AppState;
use axum::extract::{Form, Path, State};
use datasets::store::prelude::*;
use datasets::{AnswerKind, ReviewSettings, Role, TagName, TicketId};
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::BTreeSet;
use trainer::active::kappa::{agreement_per_tag, answers_by_ticket, open_disagreements};

/// Disagreements shown on one page: the oldest first, so the list is worked from the top
/// and the next ones appear as these are settled. Each costs a ticket read, so the page
/// stays within its time budget however long the list is.
const SHOWN_DISAGREEMENTS: usize = 20;

/// A tag as a coloured chip; a name the taxonomy no longer has (renamed since the answer)
/// gets the default colour.
fn chip(name: &str, taxonomy: &[datasets::Tag]) -> Value {
    match TagName::parse(name) {
        Ok(tag) => tag_chip(&tag, taxonomy),
        Err(_) => context! { name => name, color => datasets::tag::DEFAULT_TAG_COLOR },
    }
}

/// The share as a person types it: `10`, not `10.0`; `12.5` keeps its decimal.
fn share_percent(share: f64) -> String {
    let percent = share * 100.0;
    if (percent - percent.round()).abs() < 1e-9 {
        format!("{}", percent.round() as i64)
    } else {
        format!("{percent:.1}")
    }
}

/// Landis and Koch's words for a kappa, the reading most labelling guides use.
fn kappa_reading(kappa: Option<f64>) -> &'static str {
    match kappa {
        None => "not enough variation",
        Some(k) if k < 0.0 => "worse than chance",
        Some(k) if k < 0.2 => "slight",
        Some(k) if k < 0.4 => "fair",
        Some(k) if k < 0.6 => "moderate",
        Some(k) if k < 0.8 => "substantial",
        Some(_) => "almost perfect",
    }
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
) -> WebResult {
    // Every person's answers are here: labellers, who may owe a blind second opinion on any
    // of these tickets, do not see them.
    super::require(&user, Role::MlEngineer)?;
    let project = load_project(&state, project).await?;
    let settings = state.store.review_settings(project.id).await?;
    let stats = state.store.review_queue_stats(project.id).await?;
    let taxonomy = state.store.list_tags(project.id).await?;
    let live_tags: Vec<String> = taxonomy
        .iter()
        .filter(|t| !t.archived)
        .map(|t| t.name.as_str().to_string())
        .collect();
    let submissions = state.store.multi_rater_submissions(project.id).await?;
    let answers = answers_by_ticket(&submissions);
    let double_labelled = answers.values().filter(|a| a.len() >= 2).count();
    let per_tag: Vec<Value> = agreement_per_tag(&answers, &live_tags, 2)
        .into_iter()
        .map(|a| {
            context! {
                tag => chip(&a.tag, &taxonomy),
                tickets => a.tickets,
                kappa => a.kappa,
                reading => kappa_reading(a.kappa),
                disagreements => a.disagreements.len(),
            }
        })
        .collect();
    let disagreements = open_disagreements(&submissions);
    let open = disagreements.len();
    let mut shown = Vec::new();
    for disagreement in disagreements.into_iter().take(SHOWN_DISAGREEMENTS) {
        let ticket = state
            .store
            .ticket(project.id, TicketId(disagreement.ticket_id))
            .await?;
        // Pre-selected: what every labeller gave; the adjudicator decides the rest.
        let agreed: BTreeSet<&String> = live_tags
            .iter()
            .filter(|tag| disagreement.answers.values().all(|a| a.contains(*tag)))
            .collect();
        let chips = |tags: &BTreeSet<String>| -> Vec<Value> {
            tags.iter().map(|t| chip(t, &taxonomy)).collect()
        };
        shown.push(context! {
            id => disagreement.ticket_id,
            subject => ticket.ticket.subject.as_str(),
            answers => disagreement.answers.iter().map(|(by, tags)| context! { by => by, tags => chips(tags) }).collect::<Vec<_>>(),
            disputed => chips(&disagreement.disputed_tags),
            last => disagreement.last_answer_at.format("%Y-%m-%d %H:%M").to_string(),
            choices => taxonomy.iter().filter(|t| !t.archived).map(|t| context! {
                name => t.name.as_str(),
                color => t.color.as_str(),
                checked => agreed.contains(&t.name.as_str().to_string()),
            }).collect::<Vec<_>>(),
        });
    }
    let page = context! {
        share_percent => share_percent(settings.double_label_share),
        second_opinions_open => stats.second_opinions_open,
        double_labelled => double_labelled,
        per_tag => per_tag,
        open => open,
        disagreements => shown,
        can_adjudicate => user.session.user.role.includes(Role::MlEngineer),
        single => project.label_mode == datasets::LabelMode::Single,
    };
    render_page(
        &state,
        &user,
        Some(&project),
        "agreement",
        "agreement.html",
        page,
    )
    .await
}

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: Option<String>,
    /// The double-labelled share in percent, 0 to 100.
    share_percent: String,
}

pub async fn update_settings(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Form(form): Form<SettingsForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let project = load_project(&state, project).await?;
    let percent: f64 = form.share_percent.trim().parse().map_err(|_| {
        WebError::BadRequest(format!(
            "the share must be a number from 0 to 100, got {:?}",
            form.share_percent
        ))
    })?;
    let settings = ReviewSettings {
        double_label_share: percent / 100.0,
    };
    state
        .store
        .set_review_settings(project.id, &settings)
        .await?;
    Ok(redirect_with_flash(
        &format!("/p/{}/agreement", project.id),
        "ok",
        &format!("{percent}% of labelled tickets will get a second opinion."),
    ))
}

pub async fn adjudicate(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, ticket)): Path<(i64, i64)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> WebResult {
    let (project, _) = record_label_form(
        &state,
        &user,
        (project, ticket),
        pairs,
        AnswerKind::Adjudication,
        Role::MlEngineer,
    )
    .await?;
    Ok(redirect_with_flash(
        &format!("/p/{}/agreement", project.id),
        "ok",
        &format!("#{ticket} settled."),
    ))
}
