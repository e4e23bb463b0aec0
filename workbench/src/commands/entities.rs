//! `tagger entities rebuild`: extracts the stored entities of a project's tickets (every
//! project's without `--project`) again, now, in the foreground. Servers do the same in the
//! background after an upgrade and after a glossary change; this is for an operator who
//! wants it done before going on, or runs no server.

use anyhow::Context;
use datasets::AnyStore;
use datasets::store::prelude::*;

#[derive(Debug, clap::Subcommand)]
pub enum EntitiesCommand {
    /// Extract the entities of stored tickets again (after an upgrade or a glossary change).
    Rebuild {
        /// Only this project's tickets (default: every project's).
        #[arg(long)]
        project: Option<String>,
    },
}

pub async fn run(store: &AnyStore, command: EntitiesCommand) -> anyhow::Result<()> {
    match command {
        EntitiesCommand::Rebuild { project } => {
            let project = match project {
                Some(name) => Some(super::find_project(store, &name).await?.id),
                None => None,
            };
            store
                .request_entity_rebuild(project)
                .await
                .context("cannot ask for the rebuild")?;
            // Rebuilds other processes asked for are done too: they wait in the same table.
            let rebuilt = crate::entity_rebuild::run_pending(store)
                .await
                .context("cannot extract the entities again")?;
            println!(
                "entities extracted again for {} tickets in {} projects",
                rebuilt.tickets, rebuilt.projects
            );
            Ok(())
        }
    }
}
