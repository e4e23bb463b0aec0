//! Storing a demo project: the default taxonomy with its descriptions, colours and keyword
//! rules, and `count` synthetic tickets with their labels and a stratified split, written in
//! one transaction so an interrupted start leaves no half project. Used by `tagger demo` and by
//! every test that needs a realistic labelled project.

use crate::StoreError;
use crate::demo::{default_taxonomy, generate};
use crate::error::StoreResult;
use crate::names::ProjectName;
use crate::project::{LabelMode, Project};
use crate::split::{DEFAULT_TEST_FRACTION, StratifiedSplitter};
use crate::store::{ImportRow, ImportWriter, Store};
use crate::tag::TagUpdate;
use crate::ticket::NewTicket;

/// Creates the project; single-label projects keep each ticket's first tag.
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
    let mut splitter = StratifiedSplitter::new(seed, DEFAULT_TEST_FRACTION);
    let mut rows = Vec::with_capacity(count);
    for ticket in generate(count, seed, chrono::Utc::now()) {
        let mut tags = ticket
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
    crate::ingest::write_batch(&mut writer, rows, &crate::ingest::Untagged)
        .await
        .map_err(|error| match error {
            crate::ingest::BatchError::Store(error) => error,
            crate::ingest::BatchError::Tagging(error) => StoreError::Conflict(error.to_string()),
        })?;
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
