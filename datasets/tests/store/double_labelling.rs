//! Double labelling on both backends: a configurable share of labelled tickets goes to a
//! second, different person, blind and without changing the labels; disagreements wait for an
//! adjudicator, whose answer sets the labels and is not counted as a rater.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
use datasets::*;

use crate::support;
use support::{project_with_tickets, tag};

/// Project "Acme" with `count` tickets and the given double-labelled share.
async fn project(store: &AnyStore, count: usize, share: f64) -> (Project, Vec<TicketId>) {
    let (project, tickets) = project_with_tickets(store, "Acme", count).await;
    store
        .set_review_settings(
            project.id,
            &ReviewSettings {
                double_label_share: share,
            },
        )
        .await
        .unwrap();
    (project, tickets)
}

fn human_tags(ticket: &LabelledTicket) -> Vec<String> {
    ticket
        .labels
        .iter()
        .filter(|l| l.source == LabelSource::Human && l.present)
        .map(|l| l.tag.as_str().to_string())
        .collect()
}

async fn a_sampled_ticket_goes_to_a_second_person_never_back_to_the_first(store: AnyStore) {
    let (project, tickets) = project(&store, 2, 1.0).await;
    store
        .set_human_labels(project.id, tickets[0], &[tag("Bug")], "ana")
        .await
        .unwrap();
    assert_eq!(
        store
            .review_queue_stats(project.id)
            .await
            .unwrap()
            .second_opinions_open,
        1
    );
    // The first labeller is not handed it; someone else is, first, with the reason.
    assert!(
        store
            .lease_review_tickets(project.id, "ana", 5, 600)
            .await
            .unwrap()
            .is_empty()
    );
    let batch = store
        .lease_review_tickets(project.id, "bo", 5, 600)
        .await
        .unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].ticket_id, tickets[0]);
    assert_eq!(batch[0].strategy, SECOND_OPINION_STRATEGY);
    assert!(batch[0].reason.contains("second opinion"));
    // While bo holds it, cy does not get it.
    assert!(
        store
            .lease_review_tickets(project.id, "cy", 5, 600)
            .await
            .unwrap()
            .is_empty()
    );
    // bo's different answer is recorded but the labels stay ana's.
    let after = store
        .set_human_labels(project.id, tickets[0], &[tag("Billing")], "bo")
        .await
        .unwrap();
    assert_eq!(human_tags(&after), ["Bug"]);
    let answers = store
        .ticket_submissions(project.id, tickets[0])
        .await
        .unwrap();
    let kinds: Vec<(String, AnswerKind)> =
        answers.iter().map(|a| (a.set_by.clone(), a.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("ana".to_string(), AnswerKind::Answer),
            ("bo".to_string(), AnswerKind::SecondOpinion)
        ]
    );
    // Answered: nobody else is asked, and bo's own second answer does not draw a third.
    assert_eq!(
        store
            .review_queue_stats(project.id)
            .await
            .unwrap()
            .second_opinions_open,
        0
    );
    assert!(
        store
            .lease_review_tickets(project.id, "cy", 5, 600)
            .await
            .unwrap()
            .is_empty()
    );
    // bo changing their answer later (undo) stays a second opinion.
    let again = store
        .set_human_labels(project.id, tickets[0], &[tag("Bug")], "bo")
        .await
        .unwrap();
    assert_eq!(human_tags(&again), ["Bug"]);
    let multi = store.multi_rater_submissions(project.id).await.unwrap();
    assert_eq!(multi.len(), 3);
    assert!(multi.iter().all(|a| a.ticket_id == tickets[0]));
}

async fn with_no_share_nothing_is_double_labelled(store: AnyStore) {
    let (project, tickets) = project(&store, 20, 0.0).await;
    for ticket in &tickets {
        store
            .set_human_labels(project.id, *ticket, &[tag("Bug")], "ana")
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .review_queue_stats(project.id)
            .await
            .unwrap()
            .second_opinions_open,
        0
    );
    assert!(
        store
            .lease_review_tickets(project.id, "bo", 5, 600)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .multi_rater_submissions(project.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn the_share_decides_how_many_labelled_tickets_are_drawn(store: AnyStore) {
    let (project, tickets) = project(&store, 200, 0.25).await;
    for ticket in &tickets {
        store
            .set_human_labels(project.id, *ticket, &[], "ana")
            .await
            .unwrap();
    }
    let settings = store.review_settings(project.id).await.unwrap();
    let expected = tickets.iter().filter(|t| settings.samples(**t)).count() as u64;
    let open = store
        .review_queue_stats(project.id)
        .await
        .unwrap()
        .second_opinions_open;
    assert_eq!(open, expected);
    assert!((25..=75).contains(&open), "{open} of 200 at 25%");
    // A second labelling by someone else (a correction on the ticket page, no lease) does not
    // draw a ticket again: only the first labeller's answer samples.
    store
        .set_review_settings(
            project.id,
            &ReviewSettings {
                double_label_share: 1.0,
            },
        )
        .await
        .unwrap();
    for ticket in &tickets {
        store
            .set_human_labels(project.id, *ticket, &[tag("Bug")], "bo")
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .review_queue_stats(project.id)
            .await
            .unwrap()
            .second_opinions_open,
        open
    );
}

async fn second_opinion_leases_expire_and_skips_go_to_someone_else(store: AnyStore) {
    let (project, tickets) = project(&store, 1, 1.0).await;
    store
        .set_human_labels(project.id, tickets[0], &[tag("Bug")], "ana")
        .await
        .unwrap();
    let held = store
        .lease_review_tickets(project.id, "bo", 1, 1)
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    // bo's lease ran out: cy gets it, skips it, and is not handed it again; dee is.
    let taken = store
        .lease_review_tickets(project.id, "cy", 1, 600)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    store
        .release_review_lease(project.id, tickets[0], "cy")
        .await
        .unwrap();
    assert!(
        store
            .lease_review_tickets(project.id, "cy", 1, 600)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .lease_review_tickets(project.id, "dee", 1, 600)
            .await
            .unwrap()
            .len(),
        1
    );
    // An answer without the lease (cy on the ticket page) is a plain correction.
    let corrected = store
        .set_human_labels(project.id, tickets[0], &[tag("Billing")], "cy")
        .await
        .unwrap();
    assert_eq!(human_tags(&corrected), ["Billing"]);
}

async fn an_adjudication_sets_the_labels_and_is_not_a_rater(store: AnyStore) {
    let (project, tickets) = project(&store, 1, 1.0).await;
    store
        .set_human_labels(project.id, tickets[0], &[tag("Bug")], "ana")
        .await
        .unwrap();
    store
        .lease_review_tickets(project.id, "bo", 1, 600)
        .await
        .unwrap();
    store
        .set_human_labels(project.id, tickets[0], &[tag("Billing")], "bo")
        .await
        .unwrap();
    let settled = store
        .record_human_answer(
            project.id,
            tickets[0],
            &[tag("Bug"), tag("Billing")],
            "judge",
            AnswerKind::Adjudication,
        )
        .await
        .unwrap();
    let mut labels = human_tags(&settled);
    labels.sort();
    assert_eq!(labels, ["Billing", "Bug"]);
    let answers = store.multi_rater_submissions(project.id).await.unwrap();
    assert_eq!(
        answers.last().map(|a| (a.set_by.as_str(), a.kind)),
        Some(("judge", AnswerKind::Adjudication))
    );
    // An adjudicator's answer alone never makes a ticket "multi-rater".
    let (other, others) = project_with_tickets(&store, "Other", 1).await;
    store
        .set_human_labels(other.id, others[0], &[tag("Bug")], "ana")
        .await
        .unwrap();
    store
        .record_human_answer(
            other.id,
            others[0],
            &[tag("Billing")],
            "judge",
            AnswerKind::Adjudication,
        )
        .await
        .unwrap();
    assert!(
        store
            .multi_rater_submissions(other.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn review_settings_are_validated_and_default_to_off(store: AnyStore) {
    let project = store
        .create_project(&ProjectName::parse("Fresh").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    assert_eq!(
        store.review_settings(project.id).await.unwrap(),
        ReviewSettings::default()
    );
    for bad in [-0.5, 1.01] {
        assert!(matches!(
            store
                .set_review_settings(
                    project.id,
                    &ReviewSettings {
                        double_label_share: bad
                    }
                )
                .await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert!(matches!(
        store.review_settings(ProjectId(999_999)).await,
        Err(StoreError::NotFound(_))
    ));
}

datasets::on_both_backends!(
    a_sampled_ticket_goes_to_a_second_person_never_back_to_the_first,
    with_no_share_nothing_is_double_labelled,
    the_share_decides_how_many_labelled_tickets_are_drawn,
    second_opinion_leases_expire_and_skips_go_to_someone_else,
    an_adjudication_sets_the_labels_and_is_not_a_rater,
    review_settings_are_validated_and_default_to_off,
);
