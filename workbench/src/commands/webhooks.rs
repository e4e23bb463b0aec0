//! `tagger webhooks`: register URLs that receive a project's events (signed), list them with
//! their recent deliveries, remove them. A secret is generated unless one is given, and shown
//! once.

use crate::config::Config;
use crate::credentials::CredentialKey;
use crate::outgoing_webhooks::{sealing_name, secret_box};
use anyhow::Context;
use clap::Subcommand;
use datasets::webhook::{EVENTS, NewWebhook, TICKET_TAGGED};
use datasets::{Actor, AnyStore, AuditAction, WebhookId, WebhookStore};

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Send a project's events to a URL; prints the webhook's id and its signing secret.
    Add {
        #[arg(long)]
        project: String,
        /// Where events are POSTed (https:// in production).
        #[arg(long)]
        url: String,
        /// The events it receives, comma-separated [default: ticket.tagged].
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// The signing secret [default: 32 random bytes, printed once].
        #[arg(long, env = "TAGGER_WEBHOOK_SIGNING_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Every webhook, with its project, URL and events.
    List,
    /// Delete a webhook and its delivery log.
    Remove {
        #[arg(long)]
        id: i64,
    },
    /// A webhook's deliveries, newest first, with their status and last error.
    Deliveries {
        #[arg(long)]
        id: i64,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

pub async fn run(
    store: &AnyStore,
    config: &Config,
    command: WebhooksCommand,
) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::Add {
            project,
            url,
            events,
            secret,
        } => {
            let project = super::find_project(store, &project).await?;
            let events = if events.is_empty() {
                vec![TICKET_TAGGED.to_string()]
            } else {
                events.into_iter().map(|e| e.trim().to_string()).collect()
            };
            let (secret, generated) = match secret {
                Some(secret) if secret.trim().len() >= 16 => (secret, false),
                Some(_) => anyhow::bail!("--secret must be at least 16 characters"),
                None => {
                    let mut bytes = [0u8; 32];
                    getrandom::fill(&mut bytes)
                        .map_err(|e| anyhow::anyhow!("no randomness for a secret: {e}"))?;
                    (hex::encode(bytes), true)
                }
            };
            let key = CredentialKey::load(config).context("cannot load the encryption key")?;
            let webhook = NewWebhook {
                project_id: project.id,
                sealed_secret: key
                    .seal(&sealing_name(project.id, url.trim()), &secret_box(&secret))?,
                url,
                events,
            };
            webhook
                .validate()
                .map_err(|e| anyhow::anyhow!("{e} (known events: {})", EVENTS.join(", ")))?;
            let created = store.create_webhook(&webhook).await?;
            // The URL and events, never the signing secret.
            crate::audit_trail::record(
                store,
                &Actor::Cli(None),
                AuditAction::WebhookAdd,
                Some(created.project_id),
                format!("webhook {}", created.id),
                serde_json::json!({ "url": created.url, "events": created.events }),
            )
            .await;
            println!(
                "webhook {} sends {} to {}",
                created.id,
                created.events.join(","),
                created.url
            );
            if generated {
                println!("signing secret (shown once): {secret}");
            }
            Ok(())
        }
        WebhooksCommand::List => {
            let webhooks = store.webhooks(None).await?;
            if webhooks.is_empty() {
                println!("no webhooks yet: `tagger webhooks add` creates one");
            }
            for webhook in webhooks {
                println!(
                    "{:<6} project {:<6} {:<20} {}",
                    webhook.id,
                    webhook.project_id,
                    webhook.events.join(","),
                    webhook.url
                );
            }
            Ok(())
        }
        WebhooksCommand::Remove { id } => {
            let removed = store.remove_webhook(WebhookId(id)).await?;
            crate::audit_trail::record(
                store,
                &Actor::Cli(None),
                AuditAction::WebhookRemove,
                Some(removed.project_id),
                format!("webhook {}", removed.id),
                serde_json::json!({ "url": removed.url, "events": removed.events }),
            )
            .await;
            println!("removed webhook {} ({})", removed.id, removed.url);
            Ok(())
        }
        WebhooksCommand::Deliveries { id, limit } => {
            let deliveries = store.webhook_deliveries(WebhookId(id), limit).await?;
            if deliveries.is_empty() {
                println!("no deliveries yet");
            }
            for delivery in deliveries {
                println!(
                    "{:<8} {:<14} {:<9} attempts {:<2} HTTP {:<4} {} {}",
                    delivery.id.0,
                    delivery.event,
                    delivery.status.as_str(),
                    delivery.attempts,
                    delivery
                        .last_status
                        .map_or_else(|| "-".to_string(), |s| s.to_string()),
                    delivery.updated_at.format("%Y-%m-%d %H:%M:%S"),
                    delivery.last_error.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
    }
}
