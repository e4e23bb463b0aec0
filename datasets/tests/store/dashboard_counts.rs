//! The dashboard counts kept current by triggers (migration 0006) equal a recount from the
//! labels after every kind of write — ingest, model labels, bulk import, a person's relabel,
//! removals, archiving — and under concurrent writers, on SQLite and on PostgreSQL (when
//! `TEST_DATABASE_URL` is set).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{DateTime, Duration, TimeZone, Utc};
use datasets::store::prelude::*;
use datasets::store::{ImportRow, LabellingTotals, TagCount, TagOutcome, TagVolume};
use datasets::*;

datasets::on_both_backends!(
    counts_equal_a_recount_after_ingest_import_relabel_removal_and_archive,
    counts_equal_a_recount_after_concurrent_writers_label_the_same_tickets,
    counts_follow_the_definitions_of_the_dashboard,
);

/// Everything the dashboard reads from the counts.
#[derive(Debug, PartialEq)]
struct Figures {
    counts: Vec<TagCount>,
    volume: Vec<TagVolume>,
    outcomes: Vec<TagOutcome>,
    totals: LabellingTotals,
}

async fn figures(store: &AnyStore, project: ProjectId) -> Figures {
    Figures {
        counts: store.tag_counts(project).await.unwrap(),
        volume: store
            .tag_volume(
                project,
                start() - Duration::days(1),
                start() + Duration::days(60),
            )
            .await
            .unwrap(),
        outcomes: store.tag_outcomes(project).await.unwrap(),
        totals: store.labelling_totals(project).await.unwrap(),
    }
}

/// The counts as kept on write must equal the counts recounted from scratch.
async fn assert_counts_match_recount(store: &AnyStore, project: ProjectId, step: &str) {
    let kept = figures(store, project).await;
    store.rebuild_dashboard_counts(project).await.unwrap();
    let recounted = figures(store, project).await;
    assert_eq!(kept, recounted, "after {step}");
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

fn ticket(external_id: usize) -> NewTicket {
    NewTicket {
        source: if external_id.is_multiple_of(3) {
            "jira"
        } else {
            "zendesk"
        }
        .into(),
        external_id: external_id.to_string(),
        subject: format!("ticket {external_id}"),
        body: "body".into(),
        metadata: serde_json::json!({}),
        // Spread over ten days, several tickets a day.
        created_at: Some(start() + Duration::hours(7 * external_id as i64)),
        split: Split::Train,
    }
}

async fn project_with_tags(store: &AnyStore, names: &[&str]) -> (Project, Vec<Tag>) {
    let project = store
        .create_project(&ProjectName::parse("Counts").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let mut tags = Vec::new();
    for name in names {
        tags.push(
            store
                .create_tag(project.id, &NewTag::named(TagName::parse(name).unwrap()))
                .await
                .unwrap(),
        );
    }
    (project, tags)
}

async fn counts_equal_a_recount_after_ingest_import_relabel_removal_and_archive(store: AnyStore) {
    let (project, tags) = project_with_tags(&store, &["billing", "login", "bug"]).await;
    let (billing, login, bug) = (&tags[0], &tags[1], &tags[2]);
    assert_counts_match_recount(&store, project.id, "an empty project").await;

    let stored = store
        .upsert_tickets(project.id, &(0..30).map(ticket).collect::<Vec<_>>())
        .await
        .unwrap();
    let ids: Vec<TicketId> = stored.iter().map(|t| t.id).collect();
    assert_counts_match_recount(&store, project.id, "ingest").await;
    // Storing the same tickets again changes nothing.
    store
        .upsert_tickets(project.id, &(0..30).map(ticket).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_counts_match_recount(&store, project.id, "a repeated ingest").await;

    let version = store
        .create_model_version(project.id, &NewModelVersion::default())
        .await
        .unwrap();
    for (i, id) in ids.iter().enumerate() {
        let labels: Vec<(TagId, f32)> = match i % 4 {
            0 => vec![(billing.id, 0.9)],
            1 => vec![(login.id, 0.7), (bug.id, 0.4)],
            2 => vec![(bug.id, 0.6)],
            _ => vec![],
        };
        store
            .set_model_labels(project.id, *id, version.id, &labels)
            .await
            .unwrap();
    }
    assert_counts_match_recount(&store, project.id, "model labels").await;
    // A new version replaces some tags (removes the old model label, adds another).
    for id in ids.iter().take(8) {
        store
            .set_model_labels(project.id, *id, version.id, &[(login.id, 0.55)])
            .await
            .unwrap();
    }
    assert_counts_match_recount(&store, project.id, "model labels replaced").await;

    // A bulk import: new tickets and imported labels on stored ones, then a second import
    // that takes some imported labels away again.
    let mut import = store
        .begin_import(&project.name, None, "tickets.csv")
        .await
        .unwrap();
    import
        .write(
            (20..40)
                .map(|i| ImportRow {
                    verdict: None,
                    ticket: ticket(i),
                    tags: if i.is_multiple_of(2) {
                        vec![billing.id, bug.id]
                    } else {
                        vec![login.id]
                    },
                })
                .collect(),
        )
        .await
        .unwrap();
    import.commit().await.unwrap();
    assert_counts_match_recount(&store, project.id, "an import").await;
    let mut import = store
        .begin_import(&project.name, None, "tickets.csv")
        .await
        .unwrap();
    import
        .write(
            (20..30)
                .map(|i| ImportRow {
                    verdict: None,
                    ticket: ticket(i),
                    tags: vec![bug.id],
                })
                .collect(),
        )
        .await
        .unwrap();
    import.commit().await.unwrap();
    assert_counts_match_recount(&store, project.id, "an import that removes labels").await;

    // People confirm, correct, remove and change their minds.
    let answers: [(usize, Vec<&Tag>); 6] = [
        (0, vec![billing]),
        (1, vec![bug]),
        (2, vec![]),
        (5, vec![login, billing]),
        (21, vec![]),
        (22, vec![login]),
    ];
    for (i, answer) in &answers {
        let names: Vec<TagName> = answer.iter().map(|t| t.name.clone()).collect();
        store
            .set_human_labels(project.id, ids[*i], &names, "alice")
            .await
            .unwrap();
    }
    assert_counts_match_recount(&store, project.id, "a person's labels").await;
    store
        .set_human_labels(project.id, ids[2], std::slice::from_ref(&bug.name), "bob")
        .await
        .unwrap();
    store
        .set_human_labels(project.id, ids[0], &[], "bob")
        .await
        .unwrap();
    assert_counts_match_recount(&store, project.id, "a relabel").await;
    // The model relabels tickets a person already answered.
    for i in [0, 1, 2, 5] {
        store
            .set_model_labels(project.id, ids[i], version.id, &[(bug.id, 0.8)])
            .await
            .unwrap();
    }
    assert_counts_match_recount(&store, project.id, "model labels over a person's").await;

    let archive = TagUpdate {
        archived: Some(true),
        ..TagUpdate::default()
    };
    store
        .update_tag(project.id, login.id, &archive)
        .await
        .unwrap();
    assert_counts_match_recount(&store, project.id, "archiving a tag").await;
    // Archived tags keep their counts (the dashboard shows them apart).
    let counts = store.tag_counts(project.id).await.unwrap();
    let archived = counts.iter().find(|c| c.tag_id == login.id.0).unwrap();
    assert!(archived.archived);
    assert!(archived.tickets > 0);
}

async fn counts_equal_a_recount_after_concurrent_writers_label_the_same_tickets(store: AnyStore) {
    let (project, tags) = project_with_tags(&store, &["a", "b", "c"]).await;
    let ids: Vec<TicketId> = store
        .upsert_tickets(project.id, &(0..12).map(ticket).collect::<Vec<_>>())
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    let version = store
        .create_model_version(project.id, &NewModelVersion::default())
        .await
        .unwrap();
    // A model and two people write labels of the same tickets at the same time; on
    // PostgreSQL their transactions overlap.
    let mut writers = Vec::new();
    for writer in 0..3 {
        let store = store.clone();
        let ids = ids.clone();
        let tags = tags.clone();
        writers.push(tokio::spawn(async move {
            for round in 0..4 {
                for (i, id) in ids.iter().enumerate() {
                    let pick = &tags[(i + round + writer) % tags.len()];
                    if writer == 0 {
                        store
                            .set_model_labels(project.id, *id, version.id, &[(pick.id, 0.5)])
                            .await
                            .unwrap();
                    } else {
                        let answer = if (i + round).is_multiple_of(3) {
                            vec![]
                        } else {
                            vec![pick.name.clone()]
                        };
                        store
                            .set_human_labels(project.id, *id, &answer, &format!("person{writer}"))
                            .await
                            .unwrap();
                    }
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_counts_match_recount(&store, project.id, "concurrent writers").await;
}

/// Exact figures on a small project, so the counts and the recount cannot both be wrong the
/// same way.
async fn counts_follow_the_definitions_of_the_dashboard(store: AnyStore) {
    let (project, tags) = project_with_tags(&store, &["billing", "login"]).await;
    let (billing, login) = (&tags[0], &tags[1]);
    // Tickets 0..4 are created 7 hours apart: 0, 1 and 2 on 1 March, 3 and 4 on 2 March.
    let ids: Vec<TicketId> = store
        .upsert_tickets(project.id, &(0..5).map(ticket).collect::<Vec<_>>())
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    let version = store
        .create_model_version(project.id, &NewModelVersion::default())
        .await
        .unwrap();
    for (i, tag) in [(0, billing), (1, billing), (2, login), (4, billing)] {
        store
            .set_model_labels(project.id, ids[i], version.id, &[(tag.id, 0.9)])
            .await
            .unwrap();
    }
    // A person keeps billing on 0, removes it from 1 (gives login instead).
    store
        .set_human_labels(
            project.id,
            ids[0],
            std::slice::from_ref(&billing.name),
            "alice",
        )
        .await
        .unwrap();
    store
        .set_human_labels(
            project.id,
            ids[1],
            std::slice::from_ref(&login.name),
            "alice",
        )
        .await
        .unwrap();

    let counts = store.tag_counts(project.id).await.unwrap();
    let count = |tag: &Tag| {
        counts
            .iter()
            .find(|c| c.tag_id == tag.id.0)
            .unwrap()
            .tickets
    };
    assert_eq!(
        count(billing),
        2,
        "tickets 0 and 4; a person removed it from 1"
    );
    assert_eq!(count(login), 2, "tickets 1 and 2");

    let volume = store
        .tag_volume(project.id, start(), start() + Duration::days(2))
        .await
        .unwrap();
    let rows: Vec<(&str, i64, i64)> = volume
        .iter()
        .map(|v| (v.day.as_str(), v.tag_id, v.tickets))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("2026-03-01", billing.id.0, 1),
            ("2026-03-01", login.id.0, 2),
            ("2026-03-02", billing.id.0, 1),
        ]
    );
    // Only the first day.
    let first_day = store
        .tag_volume(project.id, start(), start() + Duration::hours(2))
        .await
        .unwrap();
    assert!(first_day.iter().all(|v| v.day == "2026-03-01"));

    let outcomes = store.tag_outcomes(project.id).await.unwrap();
    let billing_outcome = outcomes.iter().find(|o| o.tag_id == billing.id.0).unwrap();
    assert_eq!(
        (
            billing_outcome.auto_applied,
            billing_outcome.confirmed,
            billing_outcome.corrected
        ),
        (3, 1, 1)
    );
    let totals = store.labelling_totals(project.id).await.unwrap();
    assert_eq!(
        (totals.tickets, totals.auto_tagged, totals.human_labelled),
        (5, 4, 2)
    );
    // The same figures for the tickets of a period (whole days, as the volume counts).
    let between = |from, until| store.labelling_totals_between(project.id, from, until);
    let first_day = between(start(), start() + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(
        (
            first_day.tickets,
            first_day.auto_tagged,
            first_day.human_labelled
        ),
        (3, 3, 2),
        "tickets 0, 1 and 2"
    );
    let second_day = between(start() + Duration::days(1), start() + Duration::days(2))
        .await
        .unwrap();
    assert_eq!(
        (
            second_day.tickets,
            second_day.auto_tagged,
            second_day.human_labelled
        ),
        (2, 1, 0),
        "tickets 3 and 4"
    );
    let later = between(start() + Duration::days(5), start() + Duration::days(9))
        .await
        .unwrap();
    assert_eq!(later.tickets, 0);
}
