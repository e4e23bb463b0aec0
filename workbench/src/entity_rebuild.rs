//! Re-extracting stored entities: after the upgrade that added them (every project's tickets
//! wait), and after a project's glossary changed. A server works through what waits in the
//! background, at start and then every minute (a glossary changed through another process
//! is picked up there); `tagger entities rebuild` does it in the foreground. Each step is one
//! short transaction of `BATCH` tickets, so tagging and labelling go on in between.

use datasets::AnyStore;
use datasets::store::prelude::*;
use std::time::Duration;

/// Tickets per step: big enough that a million tickets take minutes, small enough that a
/// step holds SQLite's write lock for a moment only.
pub const BATCH: u32 = 500;

/// How often a server looks for rebuilds other processes asked for.
const POLL: Duration = Duration::from_secs(60);

/// What a run re-extracted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Tickets whose entities were extracted again.
    pub tickets: u64,
    /// Project rebuilds finished.
    pub projects: u64,
}

/// Works through every waiting rebuild until none waits.
pub async fn run_pending(store: &AnyStore) -> datasets::StoreResult<Rebuilt> {
    let mut rebuilt = Rebuilt::default();
    while let Some(step) = store.rebuild_entities_step(BATCH).await? {
        rebuilt.tickets += step.tickets;
        if step.done {
            rebuilt.projects += 1;
            tracing::info!(project = %step.project, "ticket entities extracted again");
        }
    }
    Ok(rebuilt)
}

/// Runs the waiting rebuilds now, in the background (a glossary just changed).
pub fn spawn_now(store: AnyStore) {
    tokio::spawn(async move {
        if let Err(error) = run_pending(&store).await {
            tracing::warn!(%error, "could not extract ticket entities again; the next look retries");
        }
    });
}

/// The server's background loop: what waits at start, then a look every minute.
pub fn spawn_loop(store: AnyStore) {
    tokio::spawn(async move {
        loop {
            if let Err(error) = run_pending(&store).await {
                tracing::warn!(%error, "could not extract ticket entities again; retrying later");
            }
            tokio::time::sleep(POLL).await;
        }
    });
}
