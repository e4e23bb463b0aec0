//! The ticket browser (full-text search and filters, paged by date), the ticket page with its
//! label history, and the labelling form.

use super::auth::CurrentUser;
use super::why::{self, Offer};
use super::{
    WebError, WebResult, encode_component, load_project, non_empty, redirect_with_flash,
    render_page,
};
use crate::state::AppState;
use axum::extract::{Form, Path, Query, State};
use chrono::{DateTime, NaiveDate, Utc};
use datasets::store::TicketFilter;
use datasets::store::prelude::*;
use datasets::text::entities::EntityFilter;
use datasets::{LabelSource, LabelledTicket, Role, Tag, TagName, TicketId};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

/// Tickets per page of the browser.
pub const PAGE_SIZE: u32 = 50;

/// The browser's query string; every field may be empty (a form submits them all).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct BrowseQuery {
    pub q: Option<String>,
    pub tag: Option<String>,
    pub source: Option<String>,
    pub label_source: Option<String>,
    pub min: Option<String>,
    pub max: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// An entity, `kind` or `kind:value` (the ticket page's entity links).
    pub entity: Option<String>,
    pub page: Option<String>,
}

fn parse_confidence(field: &str, value: Option<&str>) -> WebResult<Option<f32>> {
    value
        .map(|v| match v.parse::<f32>() {
            Ok(c) if (0.0..=1.0).contains(&c) => Ok(c),
            _ => Err(WebError::BadRequest(format!(
                "{field} confidence must be a number from 0 to 1, not {v:?}"
            ))),
        })
        .transpose()
}

fn parse_day(field: &str, value: Option<&str>, next_day: bool) -> WebResult<Option<DateTime<Utc>>> {
    value
        .map(|v| {
            let day = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                WebError::BadRequest(format!("{field} must be a date like 2026-03-01, not {v:?}"))
            })?;
            // "to" includes the whole day it names.
            let day = if next_day {
                day.succ_opt().unwrap_or(day)
            } else {
                day
            };
            Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .transpose()
}

impl BrowseQuery {
    /// The store filter, with a clear message for each malformed field.
    pub fn to_filter(&self, taxonomy: &[Tag]) -> WebResult<TicketFilter> {
        let tag = match non_empty(&self.tag) {
            Some(name) => Some(
                taxonomy
                    .iter()
                    .find(|t| t.name.folded() == name.to_lowercase())
                    .map(|t| t.id)
                    .ok_or_else(|| WebError::BadRequest(format!("no tag named {name:?}")))?,
            ),
            None => None,
        };
        let label_source = non_empty(&self.label_source)
            .map(|s| s.parse::<LabelSource>().map_err(WebError::BadRequest))
            .transpose()?;
        let page = match non_empty(&self.page) {
            Some(p) => p
                .parse::<u32>()
                .ok()
                .filter(|p| *p >= 1 && *p <= 10_000)
                .ok_or_else(|| {
                    WebError::BadRequest(format!("page must be a number from 1, not {p:?}"))
                })?,
            None => 1,
        };
        Ok(TicketFilter {
            text: non_empty(&self.q).map(str::to_string),
            rule: None,
            tag,
            source: non_empty(&self.source).map(str::to_string),
            label_source,
            min_confidence: parse_confidence("minimum", non_empty(&self.min))?,
            max_confidence: parse_confidence("maximum", non_empty(&self.max))?,
            from: parse_day("from", non_empty(&self.from), false)?,
            until: parse_day("to", non_empty(&self.to), true)?,
            entity: non_empty(&self.entity)
                .map(|entity| {
                    entity
                        .parse::<EntityFilter>()
                        .map_err(|e| WebError::BadRequest(e.to_string()))
                })
                .transpose()?,
            offset: (page - 1) * PAGE_SIZE,
            limit: PAGE_SIZE,
        })
    }

    fn page_number(&self) -> u32 {
        non_empty(&self.page)
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
    }

    /// This query's string with another page number.
    fn with_page(&self, page: u32) -> String {
        let fields = [
            ("q", &self.q),
            ("tag", &self.tag),
            ("source", &self.source),
            ("label_source", &self.label_source),
            ("min", &self.min),
            ("max", &self.max),
            ("from", &self.from),
            ("to", &self.to),
            ("entity", &self.entity),
        ];
        let mut parts: Vec<String> = fields
            .iter()
            .filter_map(|(key, value)| {
                non_empty(value).map(|v| format!("{key}={}", encode_component(v)))
            })
            .collect();
        parts.push(format!("page={page}"));
        parts.join("&")
    }
}

/// A ticket as a table row shows it.
pub fn ticket_row(ticket: &LabelledTicket, taxonomy: &[Tag]) -> Value {
    let tags: Vec<Value> = ticket
        .tags
        .iter()
        .map(|name| tag_chip(name, taxonomy))
        .collect();
    let confidence = ticket
        .labels
        .iter()
        .filter(|l| l.source == LabelSource::Model && l.present)
        .filter_map(|l| l.confidence)
        .fold(None, |best: Option<f32>, c| {
            Some(best.map_or(c, |b| b.max(c)))
        });
    let body: String = ticket.ticket.body.chars().take(140).collect();
    let human = ticket.labels.iter().any(|l| l.source == LabelSource::Human);
    context! {
        id => ticket.ticket.id.0,
        subject => ticket.ticket.subject.as_str(),
        snippet => body,
        source => ticket.ticket.source.as_str(),
        created => ticket.ticket.created_at.format("%Y-%m-%d %H:%M").to_string(),
        tags => tags,
        confidence => confidence,
        reviewed => human,
    }
}

pub fn tag_chip(name: &TagName, taxonomy: &[Tag]) -> Value {
    let color = taxonomy
        .iter()
        .find(|t| t.name == *name)
        .map_or(datasets::tag::DEFAULT_TAG_COLOR, |t| t.color.as_str());
    context! { name => name.as_str(), color => color }
}

pub async fn browse(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<i64>,
    Query(query): Query<BrowseQuery>,
) -> WebResult {
    let project = load_project(&state, project).await?;
    let taxonomy = state.store.list_tags(project.id).await?;
    let filter = query.to_filter(&taxonomy)?;
    let page = state.store.browse_tickets(project.id, &filter).await?;
    let sources = state.store.ticket_sources(project.id).await?;
    let rows: Vec<Value> = page
        .tickets
        .iter()
        .map(|t| ticket_row(t, &taxonomy))
        .collect();
    let number = query.page_number();
    let tags: Vec<String> = taxonomy
        .iter()
        .map(|t| t.name.as_str().to_string())
        .collect();
    render_page(
        &state,
        &user,
        Some(&project),
        "tickets",
        "tickets.html",
        context! {
            tickets => rows,
            // Whether the empty state is "nothing matches" or "nothing here yet".
            filtered => filter != TicketFilter { offset: filter.offset, limit: filter.limit, ..TicketFilter::default() },
            query => Serde(&query),
            tags => tags,
            sources => sources,
            label_sources => ["human", "import", "rule", "model"],
            entity_kinds => datasets::text::entities::EntityKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            page => number,
            previous => (number > 1).then(|| query.with_page(number - 1)),
            next => page.has_more.then(|| query.with_page(number + 1)),
        },
    )
    .await
}

/// The ticket page's query: `?explain=true` asks for the words behind the tags when the
/// model's explanations are not shown unasked (see `why::explains_unasked`).
#[derive(Debug, Default, Deserialize)]
pub struct TicketQuery {
    pub explain: Option<String>,
}

/// Whether a page's `explain` field asks for explanations.
pub fn asks_to_explain(explain: &Option<String>) -> bool {
    matches!(non_empty(explain), Some("true" | "1" | "on"))
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, ticket)): Path<(i64, i64)>,
    Query(query): Query<TicketQuery>,
) -> WebResult {
    let project = load_project(&state, project).await?;
    let ticket = state.store.ticket(project.id, TicketId(ticket)).await?;
    let mut history = state
        .store
        .label_history(project.id, ticket.ticket.id)
        .await?;
    // A labeller who may be asked for the blind second opinion this ticket waits for sees no
    // one's labels on it until it is answered: their answer must be their own. The first
    // labeller, ML engineers and admins see everything.
    let blind = !user.session.user.role.includes(Role::MlEngineer)
        && state
            .store
            .open_second_opinion(project.id, ticket.ticket.id)
            .await?
            .is_some_and(|first| first != user.username());
    let ticket = if blind {
        history.retain(|event| event.source != LabelSource::Human);
        ticket.without_human_labels()
    } else {
        ticket
    };
    let taxonomy = state.store.list_tags(project.id).await?;
    let groups = state.store.list_tag_groups(project.id).await?;
    // The checkboxes under the tag groups, each with the model's pick from the confidences it
    // stored when it tagged the ticket (hidden from a labeller answering blind).
    let stored: std::collections::HashMap<datasets::TagId, f32> = ticket
        .labels
        .iter()
        .filter(|l| l.source == LabelSource::Model && l.present)
        .filter_map(|l| Some((l.tag_id, l.confidence?)))
        .collect();
    let shown = super::label_groups::active_by_group(&groups, &taxonomy);
    let group_views: Vec<Value> = shown
        .iter()
        .map(|(group, tags)| {
            let choices = tags
                .iter()
                .map(|t| {
                    context! {
                        name => t.name.as_str(),
                        color => t.color.as_str(),
                        checked => ticket.tags.contains(&t.name),
                    }
                })
                .collect();
            let pick = match blind {
                true => None,
                false => super::label_groups::group_pick(group, tags, &[], &stored),
            };
            super::label_groups::group_view(group, pick, choices, shown.len())
        })
        .collect();
    let labels: Vec<Value> = ticket
        .labels
        .iter()
        .map(|l| {
            context! {
                tag => tag_chip(&l.tag, &taxonomy),
                source => l.source.as_str(),
                set_by => l.set_by.as_str(),
                confidence => l.confidence,
                present => l.present,
                updated => l.updated_at.format("%Y-%m-%d %H:%M").to_string(),
            }
        })
        .collect();
    let events: Vec<Value> = history
        .iter()
        .rev()
        .map(|e| {
            context! {
                tag => e.tag.as_str(),
                source => e.source.as_str(),
                set_by => e.set_by.as_str(),
                confidence => e.confidence,
                action => e.action.as_str(),
                at => e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            }
        })
        .collect();
    let metadata = serde_json::to_string_pretty(&ticket.ticket.metadata).unwrap_or_default();
    // What the models read (quoted replies, signatures and markup removed, traces compacted)
    // and its language, as tagging decides it; the stored text stays as it came.
    let clean = datasets::ticket::model_text(&ticket.ticket.subject, &ticket.ticket.body);
    let language = datasets::language::detect_language(&clean).map(|language| {
        context! {
            name => language.english_name(),
            code => language.code(),
            served => project.languages.is_empty() || project.languages.contains(&language),
        }
    });
    // As stored with the ticket, each a link to the browser filtered by it.
    let entities: Vec<Value> = state
        .store
        .stored_entities(project.id, ticket.ticket.id)
        .await?
        .into_iter()
        .map(|entity| {
            let filter = EntityFilter {
                kind: entity.kind,
                value: Some(entity.text.clone()),
            };
            context! {
                kind => entity.kind.label(),
                text => entity.text,
                link => format!(
                    "/p/{}/tickets?entity={}",
                    project.id,
                    encode_component(&filter.to_string())
                ),
            }
        })
        .collect();
    // The words behind the tags in force (the model's own when none is): not for a labeller
    // answering blind, whom the model's view would steer.
    let (why, why_link) =
        match Offer::for_project(&state, project.id, asks_to_explain(&query.explain)) {
            _ if blind => (None, None),
            Offer::Nothing => (None, None),
            Offer::Link => (
                None,
                Some(format!(
                    "/p/{}/tickets/{}?explain=true",
                    project.id, ticket.ticket.id
                )),
            ),
            Offer::Explain => {
                let tagged =
                    why::explain_ticket(&state, project.id, ticket.ticket.text(), &ticket.tags)
                        .await;
                let view = tagged
                    .and_then(|tagged| tagged.explanation)
                    .filter(|explained| !explained.tags.is_empty())
                    .map(|explained| why::view(&explained, &taxonomy));
                (view, None)
            }
        };
    let phrases =
        super::key_phrases::for_ticket(&state, project.id, ticket.ticket.id, clean.clone()).await?;
    let cleaned = clean.trim()
        != format!(
            "{}\n{}",
            ticket.ticket.subject.trim(),
            ticket.ticket.body.trim()
        )
        .trim();
    render_page(
        &state,
        &user,
        Some(&project),
        "tickets",
        "ticket.html",
        context! {
            ticket => ticket_row(&ticket, &taxonomy),
            body => ticket.ticket.body.as_str(),
            external_id => ticket.ticket.external_id.as_str(),
            split => ticket.ticket.split.as_str(),
            metadata => metadata,
            clean => cleaned.then_some(clean.trim()),
            language => language,
            entities => entities,
            served_languages => project.languages.iter().map(|l| l.english_name()).collect::<Vec<_>>(),
            groups => group_views,
            single => super::label_groups::one_single_group(&groups),
            labels => labels,
            history => events,
            why => why,
            why_link => why_link,
            key_phrases => super::key_phrases::view(&phrases, project.id, None),
        },
    )
    .await
}

/// Reads a labelling form: the CSRF token, the chosen tags (repeated `tags` fields) and
/// where to go next.
pub struct LabelForm {
    pub csrf: Option<String>,
    pub tags: Vec<String>,
    pub next: Option<String>,
}

impl LabelForm {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = Self {
            csrf: None,
            tags: Vec::new(),
            next: None,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "csrf" => form.csrf = Some(value),
                "tags" => form.tags.push(value),
                "next" => form.next = Some(value),
                _ => {}
            }
        }
        form
    }

    pub fn tag_names(&self) -> WebResult<Vec<TagName>> {
        self.tags
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| TagName::parse(t).map_err(|e| WebError::BadRequest(e.to_string())))
            .collect()
    }
}

/// A labelling form's answer, checked (CSRF token, the role `need`) and recorded as `kind`;
/// the ticket page, the review queue and adjudication all post one. Answers the project and
/// the tags given.
pub async fn record_label_form(
    state: &AppState,
    user: &CurrentUser,
    (project, ticket): (i64, i64),
    pairs: Vec<(String, String)>,
    kind: datasets::AnswerKind,
    need: Role,
) -> WebResult<(datasets::Project, Vec<TagName>)> {
    let form = LabelForm::from_pairs(pairs);
    user.check_csrf(form.csrf.as_deref())?;
    super::require(user, need)?;
    let project = load_project(state, project).await?;
    let tags = form.tag_names()?;
    state
        .store
        .record_human_answer(project.id, TicketId(ticket), &tags, user.username(), kind)
        .await?;
    state.labels_changed(project.id, TicketId(ticket), user.username().to_string());
    Ok((project, tags))
}

pub async fn label(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, ticket)): Path<(i64, i64)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> WebResult {
    let recorded = record_label_form(
        &state,
        &user,
        (project, ticket),
        pairs,
        datasets::AnswerKind::Answer,
        Role::Labeler,
    )
    .await;
    let to = format!("/p/{project}/tickets/{ticket}");
    match super::label_groups::refused_answer(recorded) {
        Ok(_) => Ok(redirect_with_flash(&to, "ok", "Labels saved.")),
        // Two tags of a single-choice group: the form's error, nothing saved.
        Err(Ok(reason)) => Ok(redirect_with_flash(
            &to,
            "error",
            &format!("Labels not saved: {reason}."),
        )),
        Err(Err(error)) => Err(error),
    }
}

/// Used by the taxonomy preview: the first tickets a rule would match.
pub async fn preview_rows(
    state: &AppState,
    project: datasets::ProjectId,
    rule: datasets::KeywordRules,
    taxonomy: &[Tag],
) -> WebResult<(Vec<Value>, bool)> {
    let page = state
        .store
        .browse_tickets(
            project,
            &TicketFilter {
                rule: Some(rule),
                limit: 20,
                ..TicketFilter::default()
            },
        )
        .await?;
    Ok((
        page.tickets
            .iter()
            .map(|t| ticket_row(t, taxonomy))
            .collect(),
        page.has_more,
    ))
}
