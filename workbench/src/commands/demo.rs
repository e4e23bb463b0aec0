//! `tagger demo`: the workbench on an embedded SQLite file with a synthetic demo project,
//! so one command shows the whole product on a laptop.

use crate::cli::ServeArgs;
use crate::config::Config;
use anyhow::Context;
use datasets::split::DEFAULT_SPLIT_SEED;
use datasets::{AnyStore, LabelMode, ProjectName, Store};

/// The demo project's name.
pub const DEMO_PROJECT: &str = "Demo";
/// How many tickets the demo project gets.
pub const DEMO_TICKETS: usize = 2400;

pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    super::serve::apply_args(&mut config, args);
    // One command runs everything: training jobs too.
    config.with_worker = true;
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

/// Creates the demo project unless it exists.
pub async fn install_demo_project(store: &AnyStore) -> anyhow::Result<bool> {
    let name = ProjectName::parse(DEMO_PROJECT)?;
    if store.project_by_name(&name).await?.is_some() {
        return Ok(false);
    }
    datasets::demo_project::install_demo_project(
        store,
        &name,
        LabelMode::Multi,
        DEMO_TICKETS,
        DEFAULT_SPLIT_SEED,
    )
    .await
    .context("cannot create the demo project")?;
    Ok(true)
}
