//! The review queue page: one ticket at a time from the active-learning queue (leased to
//! this person so nobody else gets it), why it was chosen, the model in service's
//! confidence for every tag, its tags pre-selected when their confidence reaches the tag's
//! threshold. Enter confirms, number keys toggle
//! tags, `s` skips, `u` reopens the last labelled ticket, `/` jumps to search (app.js);
//! without JavaScript it is a plain form. Double-labelled tickets come first and are shown
//! blind (without the first person's labels).
//!
//! Tags are shown under their tag groups (Type, Priority, Topics…), each with the model's
//! pick for the group and its confidence; a single-choice group's boxes behave as one choice
//! (app.js), and a form that still names two of its tags is sent back with the store's
//! reason as the form's error.

use super::auth::{CsrfForm, CurrentUser};
use super::tickets::{asks_to_explain, record_label_form, tag_chip};
use super::why::{self, Offer};
use super::{WebResult, load_project, non_empty, redirect_with_flash, render_page};
use crate::state::AppState;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use datasets::store::prelude::*;
use datasets::{AnswerKind, LabelSource, Role, SECOND_OPINION_STRATEGY, TicketId};
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::HashMap;

/// How long a ticket shown to a labeller stays theirs.
pub const LEASE_SECONDS: u32 = 15 * 60;
/// A model tag is pre-selected at or above this confidence when the promoted version has no
/// threshold of its own for the tag.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

#[derive(Debug, Deserialize)]
pub struct ReviewQuery {
    /// Reopen this (already labelled) ticket: the `u` key.
    ticket: Option<String>,
    /// The ticket labelled just before, offered for undo.
    last: Option<String>,
    /// `true`: show the words behind the suggested tags even for an encoder model.
    explain: Option<String>,
}

/// Letters that choose tags after the first nine; `s` (skip) and `u` (undo) are taken.
const LETTER_KEYS: &str = "abcdefghijklmnopqrtvwxyz";

/// The key that toggles the `index`-th tag on the review page: 1–9, then letters; the
/// tags past those are reached through the page's tag filter.
fn choice_key(index: usize) -> Option<String> {
    if index < 9 {
        Some((index + 1).to_string())
    } else {
        LETTER_KEYS.chars().nth(index - 9).map(String::from)
    }
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Query(query): Query<ReviewQuery>,
) -> WebResult {
    let project = load_project(&state, project).await?;
    let reopen = non_empty(&query.ticket).and_then(|t| t.parse::<i64>().ok());
    let (ticket_id, entry) = match reopen {
        Some(id) => (Some(TicketId(id)), None),
        None => {
            let leased = state
                .store
                .lease_review_tickets(project.id, user.username(), 1, LEASE_SECONDS)
                .await?;
            let entry = leased.into_iter().next();
            (entry.as_ref().map(|e| e.ticket_id), entry)
        }
    };
    let stats = state.store.review_queue_stats(project.id).await?;
    let taxonomy = state.store.list_tags(project.id).await?;
    let groups = state.store.list_tag_groups(project.id).await?;
    let mut page = context! {
        stats => context! { pending => stats.pending, leased => stats.leased, labelled_since_scoring => stats.labelled_since_scoring, second_opinions_open => stats.second_opinions_open },
        last => non_empty(&query.last).and_then(|t| t.parse::<i64>().ok()),
        ticket => Value::from(()),
    };
    if let Some(ticket_id) = ticket_id {
        let mut ticket = state.store.ticket(project.id, ticket_id).await?;
        // A second opinion is answered blind: the first person's labels are hidden. Reopening
        // one shows the user's own second answer.
        let mut own_second_answer: Option<Vec<String>> = None;
        let second_opinion = match &entry {
            Some(entry) => entry.strategy == SECOND_OPINION_STRATEGY,
            None => {
                let answers = state
                    .store
                    .ticket_submissions(project.id, ticket_id)
                    .await?;
                own_second_answer = answers
                    .into_iter()
                    .rev()
                    .find(|a| a.set_by == user.username())
                    .filter(|a| a.kind == AnswerKind::SecondOpinion)
                    .map(|a| a.tags);
                own_second_answer.is_some()
            }
        };
        if second_opinion {
            ticket = ticket.without_human_labels();
        }
        let thresholds: HashMap<String, f32> = state
            .store
            .promoted_model_version(project.id)
            .await?
            .and_then(|v| v.metrics.get("per_tag")?.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| {
                Some((
                    t.get("tag")?.as_str()?.to_string(),
                    t.get("threshold")?.as_f64()? as f32,
                ))
            })
            .collect();
        let human: Vec<_> = ticket
            .labels
            .iter()
            .filter(|l| l.source == LabelSource::Human)
            .collect();
        // A second opinion is blind to the model too: its guess would steer the answer.
        let offer = match second_opinion {
            true => Offer::Nothing,
            false => Offer::for_project(&state, project.id, asks_to_explain(&query.explain)),
        };
        let (live, why, why_link) = match offer {
            Offer::Nothing if second_opinion => (Live::default(), None, None),
            Offer::Nothing => (
                live_scores(&state, project.id, &ticket.ticket).await,
                None,
                None,
            ),
            Offer::Link => (
                live_scores(&state, project.id, &ticket.ticket).await,
                None,
                Some(format!("/p/{}/review?explain=true", project.id)),
            ),
            Offer::Explain => {
                // One pass tags and explains: the suggestions and their words agree.
                let tagged =
                    why::explain_ticket(&state, project.id, ticket.ticket.text(), &[]).await;
                let why = tagged
                    .as_ref()
                    .and_then(|tagged| tagged.explanation.as_ref())
                    .filter(|explained| !explained.tags.is_empty())
                    .map(|explained| why::view(explained, &taxonomy));
                let live = tagged.map(Live::from).unwrap_or_default();
                (live, why, None)
            }
        };
        // Keys follow the order the tags are shown in: group by group.
        let shown = super::label_groups::active_by_group(&groups, &taxonomy);
        let mut index = 0;
        let mut grouped: Vec<(&datasets::TagGroup, Vec<Value>)> = Vec::new();
        for (group, tags) in &shown {
            let mut group_choices = Vec::with_capacity(tags.len());
            for t in tags {
                let i = index;
                index += 1;
                let model = ticket
                    .labels
                    .iter()
                    .find(|l| l.tag_id == t.id && l.source == LabelSource::Model && l.present);
                let live = live.scores.get(t.name.as_str());
                // The model in service's view now, else what a model stored when it tagged
                // the ticket.
                let confidence = match live {
                    Some(score) => Some(score.probability),
                    None => model.and_then(|l| l.confidence),
                };
                let threshold = thresholds
                    .get(t.name.as_str())
                    .copied()
                    .unwrap_or(DEFAULT_THRESHOLD);
                // A person's earlier answer wins (reopened tickets); else the model's tags
                // at or above threshold; else the tags in force (imported, rules).
                let checked = if let Some(own) = &own_second_answer {
                    own.iter().any(|name| name == t.name.as_str())
                } else if human.is_empty() {
                    match (live, confidence) {
                        (Some(score), _) => score.applied,
                        (None, Some(c)) => c >= threshold,
                        (None, None) => ticket.tags.contains(&t.name),
                    }
                } else {
                    human.iter().any(|l| l.tag_id == t.id && l.present)
                };
                group_choices.push(context! {
                    key => choice_key(i),
                    name => t.name.as_str(),
                    color => t.color.as_str(),
                    confidence => confidence,
                    checked => checked,
                });
            }
            grouped.push((*group, group_choices));
        }
        let choices_count = index;
        // One heading per group, with the model's pick: the live verdict's group when this
        // server serves a model, else the stored model labels.
        let stored: HashMap<datasets::TagId, f32> = ticket
            .labels
            .iter()
            .filter(|l| l.source == LabelSource::Model && l.present)
            .filter_map(|l| Some((l.tag_id, l.confidence?)))
            .collect();
        let group_views: Vec<Value> = grouped
            .into_iter()
            .map(|(group, choices)| {
                let tags = shown
                    .iter()
                    .find(|(g, _)| g.id == group.id)
                    .map(|(_, tags)| tags.as_slice())
                    .unwrap_or_default();
                let pick = if second_opinion {
                    None
                } else {
                    super::label_groups::group_pick(group, tags, &live.groups, &stored)
                };
                super::label_groups::group_view(group, pick, choices, shown.len())
            })
            .collect();
        page = context! {
            ticket => context! {
                id => ticket.ticket.id.0,
                subject => ticket.ticket.subject.as_str(),
                body => ticket.ticket.body.as_str(),
                source => ticket.ticket.source.as_str(),
                created => ticket.ticket.created_at.format("%Y-%m-%d %H:%M").to_string(),
                tags => ticket.tags.iter().map(|n| tag_chip(n, &taxonomy)).collect::<Vec<_>>(),
            },
            entry => entry.map(|e| context! { reason => e.reason, strategy => e.strategy, score => e.score, rank => e.rank }),
            reopened => reopen.is_some(),
            why => why,
            why_link => why_link,
            second_opinion => second_opinion,
            groups => group_views,
            choices_count => choices_count,
            single => super::label_groups::one_single_group(&groups),
            ..page
        };
    }
    if ticket_id.is_none() {
        // An empty queue of an empty project says how tickets get in, not "nothing waits".
        let tickets = state.store.labelling_totals(project.id).await?.tickets;
        page = context! { project_tickets => tickets, ..page };
    }
    render_page(&state, &user, Some(&project), "review", "review.html", page).await
}

/// The model in service's verdict on the ticket now: its scores by tag name and its
/// per-group verdicts.
#[derive(Default)]
struct Live {
    scores: HashMap<String, inference::TagScore>,
    groups: Vec<inference::GroupVerdict>,
}

impl From<inference::service::Tagged> for Live {
    fn from(tagged: inference::service::Tagged) -> Self {
        Self {
            scores: tagged
                .decision
                .scores
                .into_iter()
                .map(|score| (score.tag.to_string(), score))
                .collect(),
            groups: tagged.decision.groups,
        }
    }
}

/// The model in service's verdict for the ticket; empty when this server has no model for
/// the project or it cannot answer now (the page then shows stored confidences).
async fn live_scores(
    state: &AppState,
    project: datasets::ProjectId,
    ticket: &datasets::Ticket,
) -> Live {
    if state.tagging.serving(project).is_none() {
        return Live::default();
    }
    match state.tagging.tag(project, vec![ticket.text()], true).await {
        Ok(tagged) => tagged
            .into_iter()
            .next()
            .map(Live::from)
            .unwrap_or_default(),
        Err(error) => {
            tracing::warn!(%error, %project, "no live suggestions for the review page");
            Live::default()
        }
    }
}

pub async fn label(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, ticket)): Path<(i64, i64)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> WebResult {
    // Labelled tickets leave the queue at once (the store drops their entry); the holder of
    // a second-opinion lease is recorded as such by the store.
    let recorded = record_label_form(
        &state,
        &user,
        (project, ticket),
        pairs,
        AnswerKind::Answer,
        Role::Labeler,
    )
    .await;
    let (project, tags) = match super::label_groups::refused_answer(recorded) {
        Ok(recorded) => recorded,
        // Two tags of a single-choice group: the same ticket again, with the reason, and
        // still leased to this person.
        Err(Ok(reason)) => {
            return Ok(redirect_with_flash(
                &format!("/p/{project}/review?ticket={ticket}"),
                "error",
                &format!("#{ticket} not saved: {reason}."),
            ));
        }
        Err(Err(error)) => return Err(error),
    };
    let names: Vec<&str> = tags.iter().map(|t| t.as_str()).collect();
    let message = if names.is_empty() {
        format!("#{ticket}: none of the tags.")
    } else {
        format!("#{ticket}: {}.", names.join(", "))
    };
    Ok(redirect_with_flash(
        &format!("/p/{}/review?last={ticket}", project.id),
        "ok",
        &message,
    ))
}

pub async fn skip(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, ticket)): Path<(i64, i64)>,
    Form(form): Form<CsrfForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Labeler)?;
    let project = load_project(&state, project).await?;
    state
        .store
        .release_review_lease(project.id, TicketId(ticket), user.username())
        .await?;
    Ok(Redirect::to(&format!("/p/{}/review", project.id)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_get_digits_then_letters_that_are_not_shortcuts_already() {
        let keys: Vec<Option<String>> = (0..40).map(choice_key).collect();
        assert_eq!(keys[0].as_deref(), Some("1"));
        assert_eq!(keys[8].as_deref(), Some("9"));
        assert_eq!(keys[9].as_deref(), Some("a"));
        let letters: Vec<String> = keys.iter().flatten().skip(9).cloned().collect();
        assert_eq!(letters.len(), 24);
        assert!(!letters.iter().any(|k| k == "s" || k == "u"));
        assert_eq!(keys[33], None, "past the letters: the filter box");
    }
}
