//! `tagger models`: the model registry from the command line. Running servers pick up a
//! promotion or rollback within their watch interval and swap without dropping a request.

use crate::cli::ModelsCommand;
use crate::config::Config;
use anyhow::Context;
use datasets::registry::check_guard;
use datasets::store::prelude::*;
use datasets::{Actor, AnyStore, ModelVersionId};

/// The command line as the actor: the history keeps the name given (or the OS user), the
/// audit log says `cli` because nothing authenticated that name.
fn actor(given: Option<String>) -> Actor {
    Actor::Cli(given.or_else(|| std::env::var("USER").ok()))
}

fn figure(metrics: &serde_json::Value, key: &str) -> String {
    metrics
        .get(key)
        .and_then(serde_json::Value::as_f64)
        .map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

/// The review queue and the newest tickets follow the model in service, as after a promotion
/// in the workbench; a worker (`tagger worker`, `serve --with-worker`) runs the jobs. The
/// promotion itself has happened, so a queue that cannot be reached is only reported.
async fn queue_follow_ups(store: &AnyStore, config: &Config, project: datasets::ProjectId) {
    let queued = match crate::worker::open_queue(store, config).await {
        Ok(queue) => {
            crate::worker::queue_model_follow_ups(&queue, project, config.retag_after_promotion)
                .await
                .map_err(anyhow::Error::from)
        }
        Err(error) => Err(error),
    };
    match queued {
        Ok(()) if config.retag_after_promotion > 0 => println!(
            "queued: the review queue is ranked again and the newest {} tickets nobody labelled are tagged with it, when a worker runs",
            config.retag_after_promotion
        ),
        Ok(()) => println!("queued: the review queue is ranked again when a worker runs"),
        Err(error) => eprintln!("warning: could not queue the rescoring and re-tagging: {error:#}"),
    }
}

pub async fn run(store: &AnyStore, config: &Config, command: ModelsCommand) -> anyhow::Result<()> {
    match command {
        ModelsCommand::List { project } => {
            let project = super::find_project(store, &project).await?;
            println!(
                "{:>4}  {:<13} {:<10} {:>8} {:>8} {:>8} {:>7}  CREATED",
                "ID", "KIND", "STATUS", "HELD-OUT", "ACCURACY", "MACRO-F1", "ECE"
            );
            for version in store.model_versions(project.id).await? {
                println!(
                    "{:>4}  {:<13} {:<10} {:>8} {:>8} {:>8} {:>7}  {}",
                    version.id,
                    version.kind,
                    version.status,
                    datasets::registry::held_out_examples(&version),
                    figure(&version.metrics, "accuracy"),
                    figure(&version.metrics, "macro_f1"),
                    figure(&version.metrics, "ece"),
                    version.created_at.format("%Y-%m-%d %H:%M")
                );
            }
            let history = store.model_promotions(project.id).await?;
            if !history.is_empty() {
                println!("\nhistory (newest first):");
                for promotion in history {
                    let previous = promotion
                        .previous
                        .map_or_else(|| "none".to_string(), |v| v.to_string());
                    println!(
                        "  {}  {:<8} version {} (replacing {previous}) by {}",
                        promotion.at.format("%Y-%m-%d %H:%M:%S"),
                        promotion.action.as_str(),
                        promotion.version,
                        promotion.actor
                    );
                }
            }
        }
        ModelsCommand::Promote {
            project,
            version,
            force,
            actor: who,
        } => {
            let project = super::find_project(store, &project).await?;
            let candidate = store
                .model_version(project.id, ModelVersionId(version))
                .await?;
            if !force {
                let promoted = store.promoted_model_version(project.id).await?;
                check_guard(&candidate, promoted.as_ref(), config.promotion_guard_margin)?;
            }
            // Load it here first: a version that cannot serve is better refused than promoted.
            let taxonomy = store.list_tags(project.id).await?;
            let groups = store.list_tag_groups(project.id).await?;
            let artifacts = super::models::open_artifacts(config)?;
            let local = super::models::fetch(&artifacts, &candidate).await?;
            inference::service::load_and_check(&local, &taxonomy, &groups).with_context(|| {
                format!("version {version} cannot serve, so it was not promoted")
            })?;
            let promotion = store
                .promote_model_version(project.id, candidate.id, actor(who))
                .await?;
            println!(
                "promoted version {} of {:?}{}",
                promotion.version,
                project.name.as_str(),
                promotion
                    .previous
                    .map_or_else(String::new, |p| format!(" (version {p} retired)"))
            );
            queue_follow_ups(store, config, project.id).await;
        }
        ModelsCommand::Rollback {
            project,
            actor: who,
        } => {
            let project = super::find_project(store, &project).await?;
            let promotion = store.rollback_model_version(project.id, actor(who)).await?;
            println!(
                "rolled back {:?} to version {}{}",
                project.name.as_str(),
                promotion.version,
                promotion
                    .previous
                    .map_or_else(String::new, |p| format!(" (version {p} retired)"))
            );
            queue_follow_ups(store, config, project.id).await;
        }
        // Dispatched before a database is opened (commands/mod.rs); kept whole here.
        ModelsCommand::Pull(args) => super::pull::run(args).await?,
    }
    Ok(())
}
