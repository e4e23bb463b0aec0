//! The review queue on both backends: ranking, exclusive leases that expire, labelled tickets
//! leaving the queue, skips, and the counts the retraining policy reads.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
use datasets::*;
use std::collections::HashSet;

use crate::support;
use support::{project_with_tickets, tag as tag_name};

fn entry(ticket: TicketId, score: f32) -> NewQueueEntry {
    NewQueueEntry {
        ticket_id: ticket,
        score,
        strategy: "margin".into(),
        reason: format!("margin {:.2} between Bug and Billing", 1.0 - score),
    }
}

fn ids(entries: &[QueueEntry]) -> Vec<TicketId> {
    entries.iter().map(|e| e.ticket_id).collect()
}

async fn the_queue_hands_out_tickets_in_rank_order_with_their_reasons(store: AnyStore) {
    let (project, tickets) = project_with_tickets(&store, "Acme", 4).await;
    // The score job's order is the rank order, whatever the ticket ids.
    let ranked = [tickets[2], tickets[0], tickets[3], tickets[1]];
    let written = store
        .replace_review_queue(
            project.id,
            &ranked.iter().map(|t| entry(*t, 0.9)).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert_eq!(written, 4);
    let batch = store
        .lease_review_tickets(project.id, "ana", 3, 600)
        .await
        .unwrap();
    assert_eq!(ids(&batch), ranked[..3]);
    assert_eq!(batch.iter().map(|e| e.rank).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(batch[0].strategy, "margin");
    assert!(batch[0].reason.contains("between Bug and Billing"));
    assert!((batch[0].score - 0.9).abs() < 1e-6);
    assert!(batch.iter().all(|e| e.leased_by.as_deref() == Some("ana")));
    assert!(
        batch
            .iter()
            .all(|e| e.lease_expires_at.unwrap() > chrono::Utc::now())
    );

    // Asking again gives the same batch (own live leases first), not three new tickets.
    let again = store
        .lease_review_tickets(project.id, "ana", 3, 600)
        .await
        .unwrap();
    assert_eq!(ids(&again), ids(&batch));

    // A rescoring keeps ana's live leases on tickets that stay in the queue.
    store
        .replace_review_queue(
            project.id,
            &[entry(tickets[1], 0.95), entry(tickets[2], 0.5)],
        )
        .await
        .unwrap();
    let bo = store
        .lease_review_tickets(project.id, "bo", 5, 600)
        .await
        .unwrap();
    assert_eq!(ids(&bo), [tickets[1]], "ticket 2 is still ana's");
}

async fn two_labellers_never_hold_the_same_ticket(store: AnyStore) {
    let (project, tickets) = project_with_tickets(&store, "Acme", 40).await;
    store
        .replace_review_queue(
            project.id,
            &tickets.iter().map(|t| entry(*t, 0.5)).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let ana = store
        .lease_review_tickets(project.id, "ana", 5, 600)
        .await
        .unwrap();
    let bo = store
        .lease_review_tickets(project.id, "bo", 5, 600)
        .await
        .unwrap();
    assert_eq!(ids(&ana), tickets[..5]);
    assert_eq!(ids(&bo), tickets[5..10]);

    // Many labellers at once: every ticket goes to one of them only.
    let mut handles = Vec::new();
    for user in 0..6 {
        let store = store.clone();
        let project = project.id;
        handles.push(tokio::spawn(async move {
            store
                .lease_review_tickets(project, &format!("user{user}"), 5, 600)
                .await
                .unwrap()
        }));
    }
    let mut seen: HashSet<TicketId> = ids(&ana).into_iter().chain(ids(&bo)).collect();
    let mut handed = 10;
    for handle in handles {
        for leased in handle.await.unwrap() {
            assert!(
                seen.insert(leased.ticket_id),
                "ticket {} leased twice",
                leased.ticket_id
            );
            handed += 1;
        }
    }
    assert_eq!(handed, seen.len());
    assert!(handed <= 40);
    let stats = store.review_queue_stats(project.id).await.unwrap();
    assert_eq!(stats.leased as usize, handed);
    assert_eq!(stats.pending as usize, 40 - handed);
}

async fn an_expired_lease_can_be_leased_again(store: AnyStore) {
    let (project, tickets) = project_with_tickets(&store, "Acme", 2).await;
    store
        .replace_review_queue(project.id, &[entry(tickets[0], 0.9)])
        .await
        .unwrap();
    // Three seconds: long enough that bo's request comes while it is live even on a
    // loaded machine, short enough to wait out.
    let ana = store
        .lease_review_tickets(project.id, "ana", 1, 3)
        .await
        .unwrap();
    assert_eq!(ids(&ana), [tickets[0]]);
    assert!(
        store
            .lease_review_tickets(project.id, "bo", 1, 600)
            .await
            .unwrap()
            .is_empty(),
        "a live lease is ana's alone"
    );
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let stats = store.review_queue_stats(project.id).await.unwrap();
    assert_eq!((stats.pending, stats.leased), (1, 0));
    let bo = store
        .lease_review_tickets(project.id, "bo", 1, 600)
        .await
        .unwrap();
    assert_eq!(ids(&bo), [tickets[0]]);
    assert_eq!(bo[0].leased_by.as_deref(), Some("bo"));
    // Ana's lease is gone: she cannot give back what bo now holds.
    assert!(matches!(
        store
            .release_review_lease(project.id, tickets[0], "ana")
            .await,
        Err(StoreError::Conflict(_))
    ));
}

async fn a_labelled_ticket_leaves_the_queue_at_once(store: AnyStore) {
    let (project, tickets) = project_with_tickets(&store, "Acme", 3).await;
    store
        .replace_review_queue(
            project.id,
            &tickets.iter().map(|t| entry(*t, 0.5)).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let stats = store.review_queue_stats(project.id).await.unwrap();
    assert_eq!(stats.labelled_since_scoring, 0);
    assert!(stats.scored_at.is_some());
    let ana = store
        .lease_review_tickets(project.id, "ana", 2, 600)
        .await
        .unwrap();
    assert_eq!(ids(&ana), tickets[..2]);
    store
        .set_human_labels(project.id, tickets[0], &[tag_name("Bug")], "ana")
        .await
        .unwrap();
    // Labelled by a person: not in ana's batch any more, not handed to anyone else.
    let ana_again = store
        .lease_review_tickets(project.id, "ana", 2, 600)
        .await
        .unwrap();
    assert_eq!(ids(&ana_again), [tickets[1], tickets[2]]);
    // A person saying "none of these tags" labels it too.
    store
        .set_human_labels(project.id, tickets[2], &[], "ana")
        .await
        .unwrap();
    let stats = store.review_queue_stats(project.id).await.unwrap();
    assert_eq!((stats.pending, stats.leased), (0, 1));
    assert_eq!(
        stats.labelled_since_scoring, 1,
        "no tags means no label event"
    );
    assert!(
        store
            .lease_review_tickets(project.id, "bo", 5, 600)
            .await
            .unwrap()
            .is_empty()
    );
    // Rescoring resets the count of labels since scoring; a ticket answered "no tags" is
    // not handed out again even when a rescoring lists it.
    store
        .replace_review_queue(
            project.id,
            &[entry(tickets[2], 0.9), entry(tickets[1], 0.5)],
        )
        .await
        .unwrap();
    let after_rescoring = store
        .lease_review_tickets(project.id, "bo", 5, 600)
        .await
        .unwrap();
    assert!(after_rescoring.is_empty(), "{after_rescoring:?}");
    store
        .set_human_labels(project.id, tickets[1], &[tag_name("Billing")], "ana")
        .await
        .unwrap();
    let stats = store.review_queue_stats(project.id).await.unwrap();
    assert_eq!(stats.labelled_since_scoring, 1);
    // Every whole answer is kept, "no tags" included, with who gave it.
    let answers = store.label_submissions(project.id).await.unwrap();
    let summary: Vec<(TicketId, &str, Vec<String>)> = answers
        .iter()
        .map(|a| (a.ticket_id, a.set_by.as_str(), a.tags.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (tickets[0], "ana", vec!["Bug".to_string()]),
            (tickets[2], "ana", vec![]),
            (tickets[1], "ana", vec!["Billing".to_string()]),
        ]
    );
}

async fn a_released_ticket_goes_to_someone_else_not_back_to_the_skipper(store: AnyStore) {
    let (project, tickets) = project_with_tickets(&store, "Acme", 2).await;
    store
        .replace_review_queue(
            project.id,
            &[entry(tickets[0], 0.9), entry(tickets[1], 0.8)],
        )
        .await
        .unwrap();
    let ana = store
        .lease_review_tickets(project.id, "ana", 1, 600)
        .await
        .unwrap();
    assert_eq!(ids(&ana), [tickets[0]]);
    assert!(matches!(
        store
            .release_review_lease(project.id, tickets[0], "bo")
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .release_review_lease(project.id, tickets[0], "ana")
        .await
        .unwrap();
    let ana_next = store
        .lease_review_tickets(project.id, "ana", 1, 600)
        .await
        .unwrap();
    assert_eq!(
        ids(&ana_next),
        [tickets[1]],
        "the skipped ticket is not handed back"
    );
    let bo = store
        .lease_review_tickets(project.id, "bo", 1, 600)
        .await
        .unwrap();
    assert_eq!(ids(&bo), [tickets[0]]);
    assert!(matches!(
        store
            .release_review_lease(project.id, TicketId(999_999), "ana")
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn bad_queue_writes_and_lease_requests_are_refused(store: AnyStore) {
    let (project, tickets) = project_with_tickets(&store, "Acme", 2).await;
    let (other, other_tickets) = project_with_tickets(&store, "Other", 1).await;
    let refused = |result: StoreResult<u64>| matches!(result, Err(StoreError::Invalid(_)));
    assert!(refused(
        store
            .replace_review_queue(
                project.id,
                &[entry(tickets[0], 0.5), entry(tickets[0], 0.4)]
            )
            .await
    ));
    assert!(refused(
        store
            .replace_review_queue(project.id, &[entry(tickets[0], f32::NAN)])
            .await
    ));
    assert!(refused(
        store
            .replace_review_queue(project.id, &[entry(other_tickets[0], 0.5)])
            .await
    ));
    // A refused write leaves the previous queue in place.
    store
        .replace_review_queue(project.id, &[entry(tickets[1], 0.5)])
        .await
        .unwrap();
    assert!(refused(
        store
            .replace_review_queue(
                project.id,
                &[entry(tickets[0], 0.5), entry(other_tickets[0], 0.5)]
            )
            .await
    ));
    assert_eq!(
        store.review_queue_stats(project.id).await.unwrap().pending,
        1
    );
    assert_eq!(store.review_queue_stats(other.id).await.unwrap().pending, 0);
    for (user, count, seconds) in [
        ("", 1, 60),
        ("ana", 0, 60),
        ("ana", 1, 0),
        ("ana", 10_000, 60),
    ] {
        assert!(
            matches!(
                store
                    .lease_review_tickets(project.id, user, count, seconds)
                    .await,
                Err(StoreError::Invalid(_))
            ),
            "{user:?} {count} {seconds}"
        );
    }
    assert!(matches!(
        store
            .lease_review_tickets(ProjectId(999_999), "ana", 1, 60)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

datasets::on_both_backends!(
    the_queue_hands_out_tickets_in_rank_order_with_their_reasons,
    two_labellers_never_hold_the_same_ticket,
    an_expired_lease_can_be_leased_again,
    a_labelled_ticket_leaves_the_queue_at_once,
    a_released_ticket_goes_to_someone_else_not_back_to_the_skipper,
    bad_queue_writes_and_lease_requests_are_refused,
);
