//! `tagger demo`: the workbench on an embedded SQLite file with a synthetic demo project,
//! so one command shows the whole product on a laptop.

use crate::cli::ServeArgs;
use crate::config::Config;
use anyhow::Context;
use datasets::split::DEFAULT_SPLIT_SEED;
use datasets::store::prelude::*;
use datasets::{AnyStore, ProjectName};

/// The demo project's name.
pub const DEMO_PROJECT: &str = "Demo";
/// The demo's admin account; its password is new on every start and printed.
pub const DEMO_ADMIN: &str = "admin";
/// How many tickets the demo project gets.
pub const DEMO_TICKETS: usize = 2400;

pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    super::serve::apply_args(&mut config, args);
    // One command runs everything: training jobs too.
    config.with_worker = true;
    let store = super::open_store(&config).await?;
    let created = install_demo_project(&store).await?;
    // A fresh password on every start: the store keeps only its hash, so this is the one
    // moment it can be shown.
    let password = super::users::random_password()?;
    let admin = datasets::Username::parse(DEMO_ADMIN)?;
    super::users::add_user(&store, &admin, datasets::Role::Admin, &password, true).await?;
    let first_model = start_first_model(&store, &config).await?;
    let application = super::serve::bind(store, config).await?;
    let url = format!("http://{}/", application.local_addr()?);
    if created {
        println!("created the demo project {DEMO_PROJECT:?} with {DEMO_TICKETS} synthetic tickets");
    }
    if let Some(run) = first_model {
        println!(
            "training the first model (run #{}): it is promoted and the review queue filled in a few seconds",
            run.id
        );
    }
    println!("tagger is serving the demo at {url}");
    println!("  log in as {DEMO_ADMIN} with password {password}");
    println!("  JSON API: {url}v1/projects");
    application.run_until_stopped().await?;
    Ok(())
}

/// A demo nobody has trained yet has no model and an empty review queue: queue a first
/// `ngram` run that promotes itself (the review queue is scored when it ends), so the pages
/// have something to show at once. Returns the run when one was queued.
async fn start_first_model(
    store: &AnyStore,
    config: &Config,
) -> anyhow::Result<Option<datasets::TrainingRun>> {
    let name = ProjectName::parse(DEMO_PROJECT)?;
    let Some(project) = store.project_by_name(&name).await? else {
        return Ok(None);
    };
    if store.promoted_model_version(project.id).await?.is_some()
        || !store.training_runs(project.id, 1).await?.is_empty()
    {
        return Ok(None);
    }
    let queue = crate::worker::open_queue(store, config).await?;
    let params = trainer::jobs::TrainingParams {
        auto_promote: Some(true),
        ..Default::default()
    };
    let run = trainer::jobs::submit_training(
        store,
        &queue,
        project.id,
        inference::ModelKind::Ngram,
        &params,
        "demo",
    )
    .await
    .context("cannot queue the demo's first training run")?;
    Ok(Some(run))
}

/// Creates the demo project unless it exists.
pub async fn install_demo_project(store: &AnyStore) -> anyhow::Result<bool> {
    let name = ProjectName::parse(DEMO_PROJECT)?;
    if store.project_by_name(&name).await?.is_some() {
        return Ok(false);
    }
    // Type and Priority beside the topics (issue 18): one prediction per group.
    datasets::demo_project::install_grouped_demo_project(
        store,
        &name,
        DEMO_TICKETS,
        DEFAULT_SPLIT_SEED,
    )
    .await
    .context("cannot create the demo project")?;
    let project = store
        .project_by_name(&name)
        .await?
        .context("the demo project vanished after it was created")?;
    seed_double_labelling(store, project.id, DEMO_DOUBLE_LABELLED)
        .await
        .context("cannot record the demo's double-labelled tickets")?;
    Ok(true)
}

/// Demo tickets two synthetic labellers answered.
const DEMO_DOUBLE_LABELLED: u32 = 60;

/// Two synthetic labellers (`demo-ana`, then `demo-ben` blind, through the real second-opinion
/// path) answer the project's first `count` tickets (at most 500), ben one time in six
/// differently, so the Agreement page has kappa figures and disagreements to settle from the
/// first start (the web benchmark uses it too). Afterwards a tenth of labelled tickets gets a
/// second opinion.
pub async fn seed_double_labelling(
    store: &AnyStore,
    project: datasets::ProjectId,
    count: u32,
) -> anyhow::Result<()> {
    use datasets::ReviewSettings;
    let every = ReviewSettings {
        double_label_share: 1.0,
    };
    store.set_review_settings(project, &every).await?;
    let taxonomy = store.list_tags(project).await?;
    let groups = store.list_tag_groups(project).await?;
    let tickets = store.tickets_after(project, None, count).await?;
    for ticket in &tickets {
        store
            .set_human_labels(project, ticket.ticket.id, &ticket.tags, "demo-ana")
            .await?;
    }
    let second = store
        .lease_review_tickets(project, "demo-ben", count, 60)
        .await?;
    for (i, entry) in second.iter().enumerate() {
        let Some(ticket) = tickets.iter().find(|t| t.ticket.id == entry.ticket_id) else {
            continue;
        };
        let mut tags = ticket.tags.clone();
        // One answer in six differs: a tag left out, or one added.
        if i % 6 == 0 {
            if tags.len() > 1 {
                tags.pop();
            } else if let Some(extra) = taxonomy.iter().find(|t| {
                !t.archived && !tags.contains(&t.name) && may_add(&groups, &taxonomy, &tags, t)
            }) {
                tags.push(extra.name.clone());
            }
        }
        store
            .set_human_labels(project, entry.ticket_id, &tags, "demo-ben")
            .await?;
    }
    store
        .set_review_settings(
            project,
            &ReviewSettings {
                double_label_share: 0.1,
            },
        )
        .await?;
    Ok(())
}

/// Whether `tag` can join `chosen` without a second tag of a single-choice group (which the
/// store refuses).
fn may_add(
    groups: &[datasets::TagGroup],
    taxonomy: &[datasets::Tag],
    chosen: &[datasets::TagName],
    tag: &datasets::Tag,
) -> bool {
    let single = groups
        .iter()
        .any(|g| g.id == tag.group_id && g.choice == datasets::GroupChoice::Single);
    !single
        || !taxonomy
            .iter()
            .any(|t| t.group_id == tag.group_id && chosen.contains(&t.name))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
    use super::*;

    #[tokio::test]
    async fn the_demo_starts_with_double_labelled_tickets_and_disagreements_to_settle() {
        let database = datasets::test_db::TestDatabase::sqlite().unwrap();
        let store = database.store().await.unwrap();
        assert!(install_demo_project(&store).await.unwrap());
        // A second start finds the project and adds nothing.
        assert!(!install_demo_project(&store).await.unwrap());
        let project = store
            .project_by_name(&ProjectName::parse(DEMO_PROJECT).unwrap())
            .await
            .unwrap()
            .unwrap();
        let answers = store.multi_rater_submissions(project.id).await.unwrap();
        assert_eq!(answers.len(), 2 * DEMO_DOUBLE_LABELLED as usize);
        let disagreements = trainer::active::kappa::open_disagreements(&answers);
        assert_eq!(disagreements.len(), DEMO_DOUBLE_LABELLED as usize / 6);
        assert_eq!(
            store.review_settings(project.id).await.unwrap(),
            datasets::ReviewSettings {
                double_label_share: 0.1
            }
        );
        // The second answers were blind second opinions: nothing is left waiting.
        let stats = store.review_queue_stats(project.id).await.unwrap();
        assert_eq!(stats.second_opinions_open, 0);
        // Type and Priority beside the topics, each labelled ticket with one of each.
        let groups = store.list_tag_groups(project.id).await.unwrap();
        let shown: Vec<(&str, datasets::GroupChoice)> =
            groups.iter().map(|g| (g.name.as_str(), g.choice)).collect();
        assert_eq!(
            shown,
            [
                ("Topics", datasets::GroupChoice::Multi),
                ("Type", datasets::GroupChoice::Single),
                ("Priority", datasets::GroupChoice::Single),
            ]
        );
        let taxonomy = store.list_tags(project.id).await.unwrap();
        let group_of = |name: &datasets::TagName| {
            let tag = taxonomy.iter().find(|t| &t.name == name).unwrap();
            groups
                .iter()
                .find(|g| g.id == tag.group_id)
                .unwrap()
                .name
                .to_string()
        };
        let tickets = store.tickets_after(project.id, None, 500).await.unwrap();
        let labelled: Vec<_> = tickets.iter().filter(|t| !t.tags.is_empty()).collect();
        assert!(labelled.len() > 300, "{}", labelled.len());
        let mut with_priority = 0;
        for ticket in &labelled {
            let named: Vec<String> = ticket.tags.iter().map(group_of).collect();
            assert!(
                named.iter().filter(|g| *g == "Type").count() <= 1,
                "{named:?}"
            );
            let priorities: Vec<&datasets::TagName> = ticket
                .tags
                .iter()
                .filter(|t| group_of(t) == "Priority")
                .collect();
            assert!(priorities.len() <= 1, "{named:?}");
            if let [priority] = priorities.as_slice() {
                with_priority += 1;
                assert_eq!(
                    ticket.ticket.metadata["priority"].as_str().unwrap(),
                    priority.as_str().to_lowercase()
                );
            }
        }
        // The double labelling changed a few; the generator gives every labelled one a level.
        assert!(with_priority * 10 > labelled.len() * 9, "{with_priority}");
    }
}
