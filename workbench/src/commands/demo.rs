//! `tagger demo`: the workbench on an embedded SQLite file with a synthetic demo project,
//! so one command shows the whole product on a laptop.

use crate::cli::ServeArgs;
use crate::config::Config;
use anyhow::Context;
use datasets::split::DEFAULT_SPLIT_SEED;
use datasets::{AnyStore, LabelMode, ProjectName, Store};

/// The demo project's name.
pub const DEMO_PROJECT: &str = "Demo";
/// The demo's admin account; its password is new on every start and printed.
pub const DEMO_ADMIN: &str = "admin";
/// How many tickets the demo project gets.
pub const DEMO_TICKETS: usize = 2400;

pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    super::serve::apply_args(&mut config, args);
    // One command runs everything: training jobs too.
    config.with_worker = true;
    let store = super::open_store(&config).await?;
    let created = install_demo_project(&store).await?;
    // A fresh password on every start: the store keeps only its hash, so this is the one
    // moment it can be shown.
    let password = super::users::random_password()?;
    let admin = datasets::Username::parse(DEMO_ADMIN)?;
    super::users::add_user(&store, &admin, datasets::Role::Admin, &password, true).await?;
    let application = super::serve::bind(store, config).await?;
    let url = format!("http://{}/", application.local_addr()?);
    if created {
        println!("created the demo project {DEMO_PROJECT:?} with {DEMO_TICKETS} synthetic tickets");
    }
    println!("tagger is serving the demo at {url}");
    println!("  log in as {DEMO_ADMIN} with password {password}");
    println!("  JSON API: {url}v1/projects");
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
