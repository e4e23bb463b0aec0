//! `tagger demo`: the workbench on an embedded SQLite file with a synthetic demo project,
//! so one command shows the whole product on a laptop.

use crate::cli::ServeArgs;
use crate::config::Config;
use anyhow::Context;
use datasets::demo::{DemoTicket, default_taxonomy, generate};
use datasets::split::{DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, StratifiedSplitter};
use datasets::store::{ImportRow, ImportWriter};
use datasets::{AnyStore, LabelMode, NewTicket, ProjectName, Store};

/// The demo project's name.
pub const DEMO_PROJECT: &str = "Demo";
/// How many tickets the demo project gets.
pub const DEMO_TICKETS: usize = 2400;

pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    super::serve::apply_args(&mut config, args);
    let store = super::open_store(&config).await?;
    let created = install_demo_project(&store).await?;
    let application = super::serve::bind(store, config).await?;
    let url = format!("http://{}/", application.local_addr()?);
    if created {
        println!("created the demo project {DEMO_PROJECT:?} with {DEMO_TICKETS} synthetic tickets");
    }
    // The web pages arrive with the workbench issue; until then the API is the way in.
    println!("tagger is serving the demo at {url}");
    println!("  projects: {url}v1/projects");
    println!("  tickets:  {url}v1/projects/{DEMO_PROJECT}/tickets");
    application.run_until_stopped().await?;
    Ok(())
}

/// Creates the demo project with its taxonomy and tickets unless it exists; all in one
/// transaction, so an interrupted first start leaves no half project.
pub async fn install_demo_project(store: &AnyStore) -> anyhow::Result<bool> {
    let name = ProjectName::parse(DEMO_PROJECT)?;
    if store.project_by_name(&name).await?.is_some() {
        return Ok(false);
    }
    let mut writer = store
        .begin_import(&name, Some(LabelMode::Multi), "demo")
        .await
        .context("cannot start writing the demo project")?;
    for tag in default_taxonomy() {
        writer.create_tag(&tag.name).await?;
    }
    let mut splitter = StratifiedSplitter::new(DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION);
    let mut rows = Vec::with_capacity(DEMO_TICKETS);
    for ticket in generate(DEMO_TICKETS, DEFAULT_SPLIT_SEED, chrono::Utc::now()) {
        rows.push(demo_row(ticket, &mut splitter, writer.tags())?);
    }
    writer.write(rows).await?;
    writer.commit().await?;
    // Descriptions, colours and keyword rules are not part of an import; set them now.
    let project = store
        .project_by_name(&name)
        .await?
        .context("the demo project vanished")?;
    let stored = store.list_tags(project.id).await?;
    for tag in default_taxonomy() {
        if let Some(existing) = stored.iter().find(|t| t.name == tag.name) {
            let update = datasets::TagUpdate {
                description: Some(tag.description),
                color: Some(tag.color),
                keywords: Some(tag.keywords),
                ..Default::default()
            };
            store.update_tag(project.id, existing.id, &update).await?;
        }
    }
    Ok(true)
}

fn demo_row(
    ticket: DemoTicket,
    splitter: &mut StratifiedSplitter,
    tags: &std::collections::HashMap<String, datasets::TagId>,
) -> anyhow::Result<ImportRow> {
    let tag_ids = ticket
        .tags
        .iter()
        .map(|name| {
            tags.get(&name.folded())
                .copied()
                .with_context(|| format!("demo tag {name} is not in the default taxonomy"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let split = splitter.assign(ticket.tags.first().map(|t| t.as_str()), &ticket.external_id);
    Ok(ImportRow {
        ticket: NewTicket {
            source: "demo".into(),
            external_id: ticket.external_id,
            subject: ticket.subject,
            body: ticket.body,
            metadata: ticket.metadata,
            created_at: Some(ticket.created_at),
            split,
        },
        tags: tag_ids,
    })
}
