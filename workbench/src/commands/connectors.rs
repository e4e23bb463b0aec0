//! `tagger connectors`: add, list and remove connectors to help desks. Secrets go in on the
//! command line (or the environment) and are sealed at once; they are never printed back.

use crate::config::Config;
use crate::connector_setup::{ConnectorSpec, new_connector};
use crate::credentials::{CredentialKey, masked};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use connectors::System;
use datasets::connector::ConnectorName;
use datasets::store::prelude::*;
use datasets::{Actor, AnyStore, AuditAction, ConnectorStore, WriteBackStore};
use std::fmt;

#[derive(Debug, Subcommand)]
pub enum ConnectorsCommand {
    /// Create a connector and print the URL path its help desk's webhook posts to.
    Add(AddConnector),
    /// Every connector with its project, system and settings; secrets are never shown.
    List,
    /// Delete a connector and its delivery log; the tickets it delivered stay.
    Remove {
        #[arg(long)]
        name: String,
    },
    /// Read the help desk's history into the project, page by page, in the foreground: every
    /// ticket created since the date, tagged and with the help desk's matching labels as
    /// training data (never written back). Resumes a backfill that stopped.
    Backfill {
        #[arg(long)]
        name: String,
        /// Tickets created since this date (YYYY-MM-DD, or an RFC 3339 time) [default: the
        /// stopped backfill's date, else the beginning].
        #[arg(long)]
        since: Option<String>,
    },
    /// The connector's write-backs, newest first: pending, written, or failed with the
    /// help desk's reason.
    Writebacks {
        #[arg(long)]
        name: String,
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// On or off, as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Args)]
pub struct AddConnector {
    /// The project its tickets go to.
    #[arg(long)]
    project: String,
    /// zendesk, jira or servicenow.
    #[arg(long)]
    system: System,
    /// Unique on the server; part of the webhook URL (letters, digits, '-', '_', '.').
    #[arg(long)]
    name: String,
    /// The help desk's address, e.g. https://acme.zendesk.com.
    #[arg(long)]
    base_url: String,
    /// The secret the help desk signs its webhooks with.
    #[arg(long, env = "TAGGER_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: String,
    /// The API user (Zendesk agent e-mail, Jira account e-mail, ServiceNow integration user).
    #[arg(long, requires = "token")]
    user: Option<String>,
    /// The API token (or the ServiceNow user's password).
    #[arg(
        long,
        requires = "user",
        env = "TAGGER_CONNECTOR_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// The ServiceNow table [default: incident].
    #[arg(long)]
    table: Option<String>,
    /// Write the model's tags back to the help desk.
    #[arg(long, value_enum, default_value = "off")]
    write_back: Switch,
    /// With write-back on: whether a person's tags set in the workbench or the API are
    /// written back too.
    #[arg(long, value_enum, default_value = "on")]
    corrections: Switch,
    /// Fields whose values are imported as labels where they match project tags, beside the
    /// tags/labels/category: Jira issuetype, priority, components; ServiceNow subcategory,
    /// priority (comma-separated).
    #[arg(long, value_delimiter = ',')]
    import_fields: Vec<String>,
    /// The ServiceNow field our tags are written to [default: u_auto_tags]; `work_notes`
    /// appends a work note instead.
    #[arg(long)]
    field: Option<String>,
    /// The most requests a minute this connector sends to the help desk [default: 100].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    requests_per_minute: Option<u32>,
}

// The secrets stay out of any debug print of the command line.
impl fmt::Debug for AddConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddConnector")
            .field("project", &self.project)
            .field("system", &self.system)
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("user", &self.user)
            .field("table", &self.table)
            .field("write_back", &self.write_back)
            .field("corrections", &self.corrections)
            .field("import_fields", &self.import_fields)
            .field("field", &self.field)
            .field("requests_per_minute", &self.requests_per_minute)
            .finish_non_exhaustive()
    }
}

/// `connector 3 "zendesk-eu"`.
fn connector_target(connector: &datasets::connector::Connector) -> String {
    format!("connector {} {:?}", connector.id, connector.name.as_str())
}

/// The path a connector's webhook posts to.
pub fn webhook_path(name: &ConnectorName) -> String {
    format!("/v1/connectors/{name}/webhook")
}

pub async fn run(
    store: &AnyStore,
    config: &Config,
    command: ConnectorsCommand,
) -> anyhow::Result<()> {
    match command {
        ConnectorsCommand::Add(add) => add_connector(store, config, add).await,
        ConnectorsCommand::List => list_connectors(store, config).await,
        ConnectorsCommand::Backfill { name, since } => {
            backfill(store, config, &name, since.as_deref()).await
        }
        ConnectorsCommand::Writebacks { name, limit } => list_writebacks(store, &name, limit).await,
        ConnectorsCommand::Remove { name } => {
            let name = ConnectorName::parse(&name)?;
            let removed = store
                .remove_connector(&name)
                .await
                .with_context(|| format!("cannot remove connector {:?}", name.as_str()))?;
            crate::audit_trail::record(
                store,
                &Actor::Cli(None),
                AuditAction::ConnectorRemove,
                Some(removed.project_id),
                connector_target(&removed),
                serde_json::json!({ "system": removed.system.to_string(), "base_url": removed.base_url }),
            )
            .await;
            println!(
                "removed connector {} ({}); the tickets it delivered stay in the project",
                removed.name, removed.system
            );
            Ok(())
        }
    }
}

async fn add_connector(store: &AnyStore, config: &Config, add: AddConnector) -> anyhow::Result<()> {
    let project = super::find_project(store, &add.project).await?;
    let credentials_missing = add.token.is_none();
    let key = CredentialKey::load(config).context("cannot load the encryption key")?;
    let spec = ConnectorSpec {
        system: add.system,
        name: add.name,
        base_url: add.base_url,
        webhook_secret: add.webhook_secret,
        user: add.user,
        token: add.token,
        table: add.table,
        write_back: add.write_back == Switch::On,
        corrections: Some(add.corrections == Switch::On),
        field: add.field,
        requests_per_minute: add.requests_per_minute,
        import_fields: add.import_fields,
    };
    let connector = new_connector(project.id, spec, &key)?;
    let name = connector.name.clone();
    let created = store
        .create_connector(&connector)
        .await
        .with_context(|| format!("cannot add connector {:?}", name.as_str()))?;
    // The settings, never the credentials (sealed or not).
    crate::audit_trail::record(
        store,
        &Actor::Cli(None),
        AuditAction::ConnectorAdd,
        Some(created.project_id),
        connector_target(&created),
        serde_json::json!({
            "system": created.system.to_string(),
            "base_url": created.base_url,
            "write_back": created.settings.write_back,
        }),
    )
    .await;
    println!("{}", webhook_path(&created.name));
    eprintln!(
        "connector {} ({}) feeds project {:?}: point the help desk's webhook at the path above \
         on this server (docs/connectors.md says how for {})",
        created.name,
        created.system,
        project.name.as_str(),
        created.system
    );
    if created.settings.write_back && credentials_missing {
        eprintln!(
            "write-back is on but the connector has no --user/--token: writes will fail until \
             it is added again with them"
        );
    }
    Ok(())
}

async fn list_connectors(store: &AnyStore, config: &Config) -> anyhow::Result<()> {
    let connectors = store.connectors().await?;
    if connectors.is_empty() {
        println!("no connectors yet: `tagger connectors add` creates one");
        return Ok(());
    }
    // Opening the credentials proves the key still fits; only masks are printed.
    let key = CredentialKey::load(config).context("cannot load the encryption key")?;
    println!(
        "{:<24} {:<20} {:<10} {:<36} {:<10} {:<9} {:<14} {:<24} TOKEN",
        "NAME", "PROJECT", "SYSTEM", "BASE URL", "TABLE", "WRITE", "SECRET", "USER"
    );
    for connector in connectors {
        let project = store.project(connector.project_id).await?;
        let (secret, user, token) =
            match key.open(connector.name.as_str(), &connector.sealed_credentials) {
                Ok(credentials) => (
                    masked(&credentials.webhook_secret),
                    credentials.user.unwrap_or_else(|| "-".into()),
                    credentials
                        .token
                        .as_deref()
                        .map_or_else(|| "-".into(), masked),
                ),
                Err(_) => ("(wrong key)".into(), "?".into(), "?".into()),
            };
        println!(
            "{:<24} {:<20} {:<10} {:<36} {:<10} {:<9} {:<14} {:<24} {token}",
            connector.name.as_str(),
            project.name.as_str(),
            connector.system.as_str(),
            connector.base_url,
            connector.settings.table.as_deref().unwrap_or("-"),
            if connector.settings.write_back {
                "on"
            } else {
                "off"
            },
            secret,
            user,
        );
    }
    Ok(())
}

async fn list_writebacks(store: &AnyStore, name: &str, limit: u32) -> anyhow::Result<()> {
    let name = ConnectorName::parse(name)?;
    let connector = store
        .connector_by_name(&name)
        .await?
        .with_context(|| format!("no connector named {:?}", name.as_str()))?;
    let writebacks = store.writebacks(connector.id, limit).await?;
    if writebacks.is_empty() {
        println!(
            "no write-backs yet{}",
            if connector.settings.write_back {
                ""
            } else {
                " (write-back is off for this connector)"
            }
        );
        return Ok(());
    }
    println!(
        "{:<8} {:<24} {:<8} {:>8} {:<20} {:<30} LAST ERROR",
        "ID", "TICKET", "STATUS", "ATTEMPTS", "UPDATED", "LABELS"
    );
    for writeback in writebacks {
        println!(
            "{:<8} {:<24} {:<8} {:>8} {:<20} {:<30} {}",
            writeback.id.0,
            writeback.external_id,
            writeback.status.as_str(),
            writeback.attempts,
            writeback.updated_at.format("%Y-%m-%d %H:%M:%S"),
            writeback.labels.join(","),
            writeback.last_error.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}

async fn backfill(
    store: &AnyStore,
    config: &Config,
    name: &str,
    since: Option<&str>,
) -> anyhow::Result<()> {
    use datasets::BackfillStore;
    let name = ConnectorName::parse(name)?;
    let connector = store
        .connector_by_name(&name)
        .await?
        .with_context(|| format!("no connector named {:?}", name.as_str()))?;
    let since = match since {
        Some(since) => crate::connector_setup::parse_since(since)
            .map_err(|problem| anyhow::anyhow!("--since {problem}"))?,
        None => crate::connector_backfill::default_since(store, &connector).await?,
    };
    let runner = crate::connector_jobs::ConnectorRunner::new(store.clone(), config.clone())
        .context("cannot set up the help-desk HTTP client")?
        .with_artifacts(
            config
                .artifact_store()
                .context("cannot open the artifact store (artifact_store)")?,
        );
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let outcome = crate::connector_backfill::run(
        &runner,
        store,
        runner.tagging(),
        &connector,
        since,
        |state| {
            bar.set_message(format!(
                "{}: {} pages, {} tickets stored, {} skipped",
                connector.name, state.pages, state.tickets, state.skipped
            ));
        },
    )
    .await;
    bar.finish_and_clear();
    match outcome {
        Ok(done) => {
            println!(
                "backfill of {} done: {} tickets stored, {} skipped, {} pages (created since {})",
                connector.name,
                done.tickets,
                done.skipped,
                done.pages,
                done.since.format("%Y-%m-%d %H:%M:%S UTC")
            );
            Ok(())
        }
        Err(error) => {
            let state = store.backfill(connector.id).await.ok().flatten();
            let so_far = state.map_or_else(String::new, |state| {
                format!(
                    " after {} pages ({} tickets stored)",
                    state.pages, state.tickets
                )
            });
            Err(anyhow::anyhow!(
                "backfill of {} stopped{so_far}: {error}; run the same command again to resume",
                connector.name
            ))
        }
    }
}
