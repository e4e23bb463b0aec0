//! Storing a demo project: the default taxonomy with its descriptions, colours and keyword
//! rules, and `count` synthetic tickets with their labels and a stratified split, written in
//! one transaction so an interrupted start leaves no half project. Used by `tagger demo` and by
//! every test that needs a realistic labelled project.

use crate::StoreError;
use crate::demo::{DemoTicket, default_taxonomy, generate, generate_grouped, grouped_taxonomy};
use crate::error::StoreResult;
use crate::ids::TagId;
use crate::names::ProjectName;
use crate::project::{LabelMode, Project};
use crate::split::{DEFAULT_TEST_FRACTION, StratifiedSplitter};
use crate::store::{ImportRow, ImportWriter, Store};
use crate::tag::TagUpdate;
use crate::ticket::NewTicket;

/// Creates the project; single-label projects keep each ticket's first tag.
///
/// The project has the plain demo taxonomy in its one default group, as before tag groups
/// (the tests that train on it depend on that); `tagger demo` uses
/// `install_grouped_demo_project`.
pub async fn install_demo_project<S: Store>(
    store: &S,
    name: &ProjectName,
    mode: LabelMode,
    count: usize,
    seed: u64,
) -> StoreResult<Project> {
    let mut writer = store.begin_import(name, Some(mode), "demo").await?;
    for tag in default_taxonomy() {
        writer.create_tag(&tag.name).await?;
    }
    let tickets = generate(count, seed, chrono::Utc::now());
    write_demo_tickets(&mut writer, tickets, mode, seed).await?;
    let project = writer.project().clone();
    writer.commit().await?;
    // An import names tags only; descriptions, colours and keyword rules come after.
    let stored = store.list_tags(project.id).await?;
    for tag in default_taxonomy() {
        if let Some(existing) = stored.iter().find(|t| t.name == tag.name) {
            let update = TagUpdate {
                description: Some(tag.description),
                color: Some(tag.color),
                keywords: Some(tag.keywords),
                ..TagUpdate::default()
            };
            store.update_tag(project.id, existing.id, &update).await?;
        }
    }
    Ok(project)
}

/// Creates the grouped demo project (`crate::demo::grouped_taxonomy`): a multi-label project
/// whose default group is renamed Topics, with the single-choice groups Type and Priority,
/// and `count` tickets from `crate::demo::generate_grouped`.
pub async fn install_grouped_demo_project<S: Store>(
    store: &S,
    name: &ProjectName,
    count: usize,
    seed: u64,
) -> StoreResult<Project> {
    let mut writer = store
        .begin_import(name, Some(LabelMode::Multi), "demo")
        .await?;
    let taxonomy = grouped_taxonomy();
    let default_group = writer
        .groups()
        .iter()
        .find(|g| g.is_default)
        .map(|g| g.id)
        .ok_or_else(|| StoreError::NotFound("the demo project's default tag group".into()))?;
    for demo_group in &taxonomy {
        let group = if demo_group.is_default {
            default_group
        } else {
            writer.create_tag_group(&demo_group.group).await?.id
        };
        for tag in &demo_group.tags {
            writer.create_tag_in(&tag.name, group).await?;
        }
    }
    let tickets = generate_grouped(count, seed, chrono::Utc::now());
    write_demo_tickets(&mut writer, tickets, LabelMode::Multi, seed).await?;
    let project = writer.project().clone();
    writer.commit().await?;
    let stored = store.list_tags(project.id).await?;
    for demo_group in taxonomy {
        if demo_group.is_default {
            store
                .rename_tag_group(project.id, default_group, &demo_group.group.name)
                .await?;
        }
        for tag in demo_group.tags {
            if let Some(existing) = stored.iter().find(|t| t.name == tag.name) {
                let update = TagUpdate {
                    description: Some(tag.description),
                    color: Some(tag.color),
                    keywords: Some(tag.keywords),
                    ..TagUpdate::default()
                };
                store.update_tag(project.id, existing.id, &update).await?;
            }
        }
    }
    Ok(project)
}

/// Writes demo tickets with their labels and a stratified split (by each ticket's first
/// tag) through the one batch ingest path.
async fn write_demo_tickets<W: ImportWriter>(
    writer: &mut W,
    tickets: Vec<DemoTicket>,
    mode: LabelMode,
    seed: u64,
) -> StoreResult<()> {
    let mut splitter = StratifiedSplitter::new(seed, DEFAULT_TEST_FRACTION);
    let mut rows = Vec::with_capacity(tickets.len());
    for ticket in tickets {
        let mut tags: Vec<TagId> = ticket
            .tags
            .iter()
            .map(|tag| {
                writer.tags().get(&tag.folded()).copied().ok_or_else(|| {
                    StoreError::NotFound(format!("demo tag {tag} in the default taxonomy"))
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        if mode == LabelMode::Single {
            tags.truncate(1);
        }
        let split = splitter.assign(ticket.tags.first().map(|t| t.as_str()), &ticket.external_id);
        rows.push(ImportRow {
            ticket: NewTicket {
                source: "demo".into(),
                external_id: ticket.external_id,
                subject: ticket.subject,
                body: ticket.body,
                metadata: ticket.metadata,
                created_at: Some(ticket.created_at),
                split,
            },
            tags,
            verdict: None,
        });
    }
    // The one batch ingest path; the demo's project has no model yet.
    crate::ingest::write_batch(writer, rows, &crate::ingest::Untagged)
        .await
        .map_err(|error| match error {
            crate::ingest::BatchError::Store(error) => error,
            crate::ingest::BatchError::Tagging(error) => StoreError::Conflict(error.to_string()),
        })
}
