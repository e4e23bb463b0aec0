//! The audit log page (admins only): who changed what and when, newest first, filtered by
//! action and actor, a page at a time through an id cursor so appended entries never shift a
//! page being read.

use super::auth::CurrentUser;
use super::{WebError, WebResult, encode_component, non_empty, render_page};
use crate::state::AppState;
use axum::extract::{Query, State};
use datasets::store::prelude::*;
use datasets::{AuditAction, AuditFilter, AuditStore, Role};
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::HashMap;

/// Entries per page.
const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    before: Option<i64>,
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<AuditQuery>,
) -> WebResult {
    super::require(&user, Role::Admin)?;
    let action = non_empty(&query.action)
        .map(str::parse::<AuditAction>)
        .transpose()
        .map_err(WebError::BadRequest)?;
    let actor = non_empty(&query.actor).map(str::to_string);
    let filter = AuditFilter {
        action,
        actor: actor.clone(),
        project: None,
        before: query.before,
        limit: PAGE,
    };
    let entries = state.store.audit_entries(&filter).await?;
    let projects: HashMap<i64, String> = state
        .store
        .project_list()
        .await?
        .into_iter()
        .map(|p| (p.id.0, p.name.as_str().to_string()))
        .collect();
    let rows: Vec<Value> = entries
        .iter()
        .map(|entry| {
            context! {
                at => entry.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                actor => entry.actor.as_str(),
                actor_url => format!("/admin/audit?actor={}", encode_component(&entry.actor)),
                actor_name => entry.actor_name.as_str(),
                action => entry.action.as_str(),
                project => entry.project_id.map(|id| {
                    projects.get(&id.0).cloned().unwrap_or_else(|| format!("project {id}"))
                }),
                target => entry.target.as_str(),
                details => serde_json::to_string(&entry.details).unwrap_or_default(),
            }
        })
        .collect();
    // The next page keeps the filters; the cursor is the oldest id shown.
    let next = (entries.len() == PAGE as usize)
        .then(|| entries.last())
        .flatten()
        .map(|last| {
            let mut url = format!("/admin/audit?before={}", last.id);
            if let Some(action) = action {
                url.push_str(&format!("&action={}", action.as_str()));
            }
            if let Some(actor) = &actor {
                url.push_str(&format!("&actor={}", encode_component(actor)));
            }
            url
        });
    let actions: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
    render_page(
        &state,
        &user,
        None,
        "admin",
        "audit.html",
        context! {
            entries => rows,
            actions => actions,
            action => action.map(AuditAction::as_str),
            actor => actor,
            next => next,
            first_page => query.before.is_none(),
        },
    )
    .await
}
