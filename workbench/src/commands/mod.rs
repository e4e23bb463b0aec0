//! One module per `tagger` command; `run` dispatches.

pub mod connectors;
pub mod demo;
pub mod entities;
mod export;
mod import;
mod keys;
pub mod languages;
mod models;
mod pull;
mod registry;
mod serve;
pub mod users;
mod webhooks;
pub use webhooks::WebhooksCommand;
mod worker;

use crate::cli::{Cli, Command, ModelsCommand};
use crate::config::Config;
use anyhow::Context;
use datasets::AnyStore;
use datasets::store::prelude::*;

/// Runs the parsed command line.
pub async fn run(cli: Cli, mut config: Config) -> anyhow::Result<()> {
    if let Some(url) = cli.database_url {
        config.database_url = Some(url);
    }
    if let Some(data_dir) = cli.data_dir {
        config.data_dir = data_dir;
    }
    match cli.command {
        Command::Demo(args) => demo::run(config, args).await,
        Command::Serve(args) => serve::run(config, args).await,
        Command::Worker => worker::run(config).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            println!("migrations applied ({})", store.backend_name());
            Ok(())
        }
        Command::Import(args) => import::run(&open_store(&config).await?, &config, args).await,
        Command::Export(args) => export::run(&open_store(&config).await?, args).await,
        Command::Projects => list_projects(&open_store(&config).await?).await,
        Command::Languages(args) => languages::run(&open_store(&config).await?, args).await,
        Command::Entities(command) => entities::run(&open_store(&config).await?, command).await,
        Command::Train(args) => models::train(&open_store(&config).await?, &config, args).await,
        Command::Eval(args) => models::eval(&open_store(&config).await?, &config, args).await,
        Command::Predict(args) => models::predict(&open_store(&config).await?, &config, args).await,
        // Needs no database: it fills the encoder cache.
        Command::Models(ModelsCommand::Pull(args)) => pull::run(args).await,
        Command::Models(command) => {
            registry::run(&open_store(&config).await?, &config, command).await
        }
        Command::Keys(command) => keys::run(&open_store(&config).await?, command).await,
        Command::Users(command) => users::run(&open_store(&config).await?, command).await,
        Command::Connectors(command) => {
            self::connectors::run(&open_store(&config).await?, &config, command).await
        }
        Command::Webhooks(command) => {
            webhooks::run(&open_store(&config).await?, &config, command).await
        }
    }
}

/// Connects to the configured database and brings its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<AnyStore> {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    AnyStore::open(&url).await.with_context(|| {
        format!(
            "cannot open the database {}",
            datasets::store::any::redact_password(&url)
        )
    })
}

/// Finds a project by the name a person typed.
pub async fn find_project(store: &AnyStore, name: &str) -> anyhow::Result<datasets::Project> {
    let parsed = datasets::ProjectName::parse(name)?;
    store
        .project_by_name(&parsed)
        .await?
        .with_context(|| format!("project {name:?} not found (see `tagger projects`)"))
}

async fn list_projects(store: &AnyStore) -> anyhow::Result<()> {
    let projects = store.list_projects().await?;
    if projects.is_empty() {
        println!("no projects yet: `tagger import` or `tagger demo` creates one");
        return Ok(());
    }
    println!(
        "{:<32} {:<8} {:>10} {:>6}",
        "PROJECT", "MODE", "TICKETS", "TAGS"
    );
    for summary in projects {
        println!(
            "{:<32} {:<8} {:>10} {:>6}",
            summary.project.name.as_str(),
            summary.project.label_mode.as_str(),
            summary.tickets,
            summary.tags
        );
    }
    Ok(())
}
