//! `tagger serve`: the server against the configured database.

use crate::app::Application;
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::state::AppState;
use anyhow::Context;

pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    apply_args(&mut config, args);
    let store = super::open_store(&config).await?;
    let application = bind(store, config).await?;
    println!("tagger serving on http://{}/", application.local_addr()?);
    application.run_until_stopped().await?;
    Ok(())
}

/// `--addr` overrides the configuration (`--data-dir` is every command's: see `commands::run`).
pub fn apply_args(config: &mut Config, args: ServeArgs) {
    if let Some(addr) = args.addr {
        config.addr = addr;
    }
    if args.with_worker {
        config.with_worker = true;
    }
}

/// Binds the server with a running tagging service that serves every project's promoted
/// model and follows promotions made elsewhere.
pub async fn bind(store: datasets::AnyStore, config: Config) -> anyhow::Result<Application> {
    let addr = config.addr;
    let watch = config.model_watch();
    // Every server can queue training jobs; only some also run them.
    let queue = crate::worker::open_queue(&store, &config).await?;
    let with_worker = config.with_worker;
    let artifacts = config
        .artifact_store()
        .context("cannot open the artifact store (artifact_store)")?;
    let state = AppState::with_artifacts(store.clone(), config, artifacts).with_jobs(queue.clone());
    let worker = if with_worker {
        Some(crate::worker::worker_state(
            store.clone(),
            &state.config,
            Some(state.tagging.clone()),
        )?)
    } else {
        None
    };
    if let Err(error) = state.tagging.sync_all(&store).await {
        tracing::warn!(%error, "could not load the promoted models at start-up");
    }
    // Entities waiting to be extracted (after an upgrade, a glossary change) are worked
    // through in the background; the server answers meanwhile.
    crate::entity_rebuild::spawn_loop(store.clone());
    state.tagging.spawn_watcher(store, watch);
    let application = Application::bind(state, addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    Ok(match worker {
        Some(worker) => application.with_worker(queue, worker),
        None => application,
    })
}
