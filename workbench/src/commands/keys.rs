//! `tagger keys`: API keys, bound to one project with scopes or instance-admin.

use crate::audit_trail;
use crate::cli::KeysCommand;
use datasets::store::prelude::*;
use datasets::{Actor, AnyStore, KeyGrant, ProjectId, Scopes};

/// The project named on the command line, or `None` for `--instance-admin`.
async fn owner(store: &AnyStore, project: Option<String>) -> anyhow::Result<Option<ProjectId>> {
    Ok(match project {
        Some(name) => Some(super::find_project(store, &name).await?.id),
        None => None,
    })
}

pub async fn run(store: &AnyStore, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            project,
            name,
            scopes,
            instance_admin: _,
        } => {
            let grant = match owner(store, project).await? {
                Some(project_id) => KeyGrant::Project {
                    project_id,
                    scopes: scopes.unwrap_or_else(Scopes::all),
                },
                None => KeyGrant::InstanceAdmin,
            };
            let created = store.create_api_key(&grant, &name).await?;
            audit_trail::key_created(store, &Actor::Cli(None), &created.key).await;
            println!("{}", created.secret);
            let what = match &created.key.grant {
                KeyGrant::Project { scopes, .. } => format!("with scopes {scopes}"),
                KeyGrant::InstanceAdmin => "instance-admin (creates and lists projects)".into(),
            };
            eprintln!(
                "API key {} ({:?}) {what}: the line above is the only time it is shown; \
                 send it as `Authorization: Bearer <key>`",
                created.key.id, created.key.name,
            );
        }
        KeysCommand::List {
            project,
            instance_admin: _,
        } => {
            let project = owner(store, project).await?;
            println!(
                "{:>4}  {:<32} {:<14} {:<28} {:<20} STATUS",
                "ID", "NAME", "KEY", "SCOPES", "CREATED"
            );
            for key in store.api_keys(project).await? {
                let status = key.revoked_at.map_or_else(
                    || "active".to_string(),
                    |at| format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                );
                let scopes = match &key.grant {
                    KeyGrant::Project { scopes, .. } => scopes.to_string(),
                    KeyGrant::InstanceAdmin => "instance-admin".into(),
                };
                println!(
                    "{:>4}  {:<32} tt_{}_… {:<28} {:<20} {status}",
                    key.id,
                    key.name,
                    key.prefix,
                    scopes,
                    key.created_at.format("%Y-%m-%d %H:%M")
                );
            }
        }
        KeysCommand::Revoke {
            project,
            instance_admin: _,
            id,
        } => {
            let project = owner(store, project).await?;
            let key = store.revoke_api_key(project, id).await?;
            audit_trail::key_revoked(store, &Actor::Cli(None), &key).await;
            println!("revoked API key {} ({:?})", key.id, key.name);
        }
    }
    Ok(())
}
