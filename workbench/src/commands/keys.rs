//! `tagger keys`: per-project API keys.

use crate::cli::KeysCommand;
use datasets::{AnyStore, Store};

pub async fn run(store: &AnyStore, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { project, name } => {
            let project = super::find_project(store, &project).await?;
            let created = store.create_api_key(project.id, &name).await?;
            println!("{}", created.secret);
            eprintln!(
                "API key {} ({:?}) for project {:?}: the line above is the only time it is shown; \
                 send it as `Authorization: Bearer <key>`",
                created.key.id,
                created.key.name,
                project.name.as_str()
            );
        }
        KeysCommand::List { project } => {
            let project = super::find_project(store, &project).await?;
            println!(
                "{:>4}  {:<32} {:<14} {:<20} STATUS",
                "ID", "NAME", "KEY", "CREATED"
            );
            for key in store.api_keys(project.id).await? {
                let status = key.revoked_at.map_or_else(
                    || "active".to_string(),
                    |at| format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                );
                println!(
                    "{:>4}  {:<32} tt_{}_… {:<20} {status}",
                    key.id,
                    key.name,
                    key.prefix,
                    key.created_at.format("%Y-%m-%d %H:%M")
                );
            }
        }
        KeysCommand::Revoke { project, id } => {
            let project = super::find_project(store, &project).await?;
            let key = store.revoke_api_key(project.id, id).await?;
            println!("revoked API key {} ({:?})", key.id, key.name);
        }
    }
    Ok(())
}
