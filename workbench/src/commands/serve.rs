//! `tagger serve`: the server against the configured database.

use crate::app::Application;
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::state::AppState;
use anyhow::Context;
use std::sync::Arc;

pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    apply_args(&mut config, args);
    let store = super::open_store(&config).await?;
    let application = bind(store, config).await?;
    println!("tagger serving on http://{}/", application.local_addr()?);
    application.run_until_stopped().await?;
    Ok(())
}

/// `--addr` and `--data-dir` override the configuration.
pub fn apply_args(config: &mut Config, args: ServeArgs) {
    if let Some(addr) = args.addr {
        config.addr = addr;
    }
    if let Some(data_dir) = args.data_dir {
        config.data_dir = data_dir;
    }
}

pub async fn bind(store: datasets::AnyStore, config: Config) -> anyhow::Result<Application> {
    let addr = config.addr;
    let state = AppState {
        store,
        config: Arc::new(config),
    };
    Application::bind(state, addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}
