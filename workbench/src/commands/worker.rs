//! `tagger worker`: runs queued training jobs against the configured database until
//! SIGTERM or Ctrl-C, then stops the job in progress at its next epoch and puts it back.

use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = super::open_store(&config).await?;
    let queue = crate::worker::open_queue(&store, &config).await?;
    crate::worker::requeue_lost_jobs(&store, &queue).await;
    let state = crate::worker::worker_state(store, &config, None)?;
    println!("tagger worker {} waiting for training jobs", state.name);
    trainer::jobs::run_worker(queue, state, crate::app::shutdown_signal()).await?;
    println!("tagger worker stopped");
    Ok(())
}
