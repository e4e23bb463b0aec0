//! Merging one tag into another, on SQLite and on PostgreSQL (when `TEST_DATABASE_URL` is
//! set): labels of every source move without duplicates, the history tells why, keyword
//! rules follow, the merged tag is archived, the per-tag counts stay right, and a refused
//! merge changes nothing.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
use datasets::*;

fn name(text: &str) -> TagName {
    TagName::parse(text).unwrap()
}

fn ticket(external_id: &str) -> NewTicket {
    NewTicket {
        source: "api".into(),
        external_id: external_id.into(),
        subject: format!("subject {external_id}"),
        body: "body".into(),
        metadata: serde_json::json!({}),
        created_at: None,
        split: Split::Train,
    }
}

struct Fixture {
    project: Project,
    billing: Tag,
    payments: Tag,
    other: Tag,
    tickets: Vec<TicketId>,
}

/// Billing (to be merged) and Payments (to receive it) on six tickets:
/// 0 imported Billing · 1 imported Billing and Payments · 2 model Billing 0.9 and Payments 0.4
/// · 3 a person gave Billing and refused the model's Payments · 4 a person gave Other and
/// refused the model's Billing · 5 imported Payments only.
async fn fixture(store: &AnyStore) -> Fixture {
    let project = store
        .create_project(&ProjectName::parse("Merge").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let mut billing = NewTag::named(name("Billing"));
    billing.keywords = KeywordRules {
        include: vec!["invoice".into(), "Refund".into()],
        exclude: vec!["newsletter".into()],
    };
    let billing = store.create_tag(project.id, &billing).await.unwrap();
    let mut payments = NewTag::named(name("Payments"));
    payments.keywords = KeywordRules {
        include: vec!["refund".into(), "card".into()],
        exclude: vec![],
    };
    let payments = store.create_tag(project.id, &payments).await.unwrap();
    let other = store
        .create_tag(project.id, &NewTag::named(name("Other")))
        .await
        .unwrap();

    let mut import = store
        .begin_import(&project.name, None, "tickets.csv")
        .await
        .unwrap();
    let rows = vec![
        store::ImportRow {
            verdict: None,
            ticket: ticket("0"),
            tags: vec![billing.id],
        },
        store::ImportRow {
            verdict: None,
            ticket: ticket("1"),
            tags: vec![billing.id, payments.id],
        },
        store::ImportRow {
            verdict: None,
            ticket: ticket("5"),
            tags: vec![payments.id],
        },
    ];
    import.write(rows).await.unwrap();
    import.commit().await.unwrap();
    let others = store
        .upsert_tickets(project.id, &[ticket("2"), ticket("3"), ticket("4")])
        .await
        .unwrap();
    let imported = store
        .search_tickets(project.id, &TicketQuery::default())
        .await
        .unwrap();
    let find = |external: &str| {
        imported
            .iter()
            .find(|t| t.ticket.external_id == external)
            .unwrap()
            .ticket
            .id
    };
    let (t0, t1, t5) = (find("0"), find("1"), find("5"));
    let (t2, t3, t4) = (others[0].id, others[1].id, others[2].id);
    let version = store
        .create_model_version(project.id, &NewModelVersion::default())
        .await
        .unwrap();
    store
        .set_model_labels(
            project.id,
            t2,
            version.id,
            &[(billing.id, 0.9), (payments.id, 0.4)],
        )
        .await
        .unwrap();
    store
        .set_model_labels(project.id, t3, version.id, &[(payments.id, 0.7)])
        .await
        .unwrap();
    store
        .set_human_labels(project.id, t3, &[name("Billing")], "ana")
        .await
        .unwrap();
    store
        .set_model_labels(project.id, t4, version.id, &[(billing.id, 0.8)])
        .await
        .unwrap();
    store
        .set_human_labels(project.id, t4, &[name("Other")], "ana")
        .await
        .unwrap();
    Fixture {
        project,
        billing,
        payments,
        other,
        tickets: vec![t0, t1, t2, t3, t4, t5],
    }
}

/// A ticket's labels as (tag, source, present, confidence), sorted.
async fn labels_of(
    store: &AnyStore,
    f: &Fixture,
    ticket: TicketId,
) -> Vec<(String, &'static str, bool, Option<f32>)> {
    let mut labels: Vec<_> = store
        .ticket(f.project.id, ticket)
        .await
        .unwrap()
        .labels
        .iter()
        .map(|l| {
            (
                l.tag.as_str().to_string(),
                l.source.as_str(),
                l.present,
                l.confidence,
            )
        })
        .collect();
    labels.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    labels
}

fn owned(
    labels: &[(&str, &'static str, bool, Option<f32>)],
) -> Vec<(String, &'static str, bool, Option<f32>)> {
    labels
        .iter()
        .map(|(tag, source, present, confidence)| (tag.to_string(), *source, *present, *confidence))
        .collect()
}

async fn every_label_moves_and_a_ticket_with_both_tags_keeps_one(store: AnyStore) {
    let f = fixture(&store).await;
    let merge = store
        .merge_tags(f.project.id, f.billing.id, f.payments.id, "web:admin")
        .await
        .unwrap();
    assert_eq!(merge.tickets, 5, "{merge:?}");
    // Moved: ticket 0's import, ticket 4's person's "not Billing" and its model label (no
    // Payments label of the same source); combined: 1 (import), 2 (model), 3 (person).
    assert_eq!(merge.labels_moved, 3, "{merge:?}");
    assert_eq!(merge.labels_combined, 3, "{merge:?}");
    assert!(merge.from.archived);

    let t = &f.tickets;
    assert_eq!(
        labels_of(&store, &f, t[0]).await,
        owned(&[("Payments", "import", true, None)])
    );
    assert_eq!(
        labels_of(&store, &f, t[1]).await,
        owned(&[("Payments", "import", true, None)])
    );
    // The model keeps its higher score of the two.
    assert_eq!(
        labels_of(&store, &f, t[2]).await,
        owned(&[("Payments", "model", true, Some(0.9))])
    );
    // The person gave Billing and refused Payments: the merged tag is either, so it is given.
    assert_eq!(
        labels_of(&store, &f, t[3]).await,
        owned(&[
            ("Payments", "human", true, None),
            ("Payments", "model", true, Some(0.7))
        ])
    );
    // A person's "not Billing" stays a "not" on the merged tag; the model's label moves.
    assert_eq!(
        labels_of(&store, &f, t[4]).await,
        owned(&[
            ("Other", "human", true, None),
            ("Payments", "human", false, None),
            ("Payments", "model", true, Some(0.8))
        ])
    );
    assert_eq!(
        labels_of(&store, &f, t[5]).await,
        owned(&[("Payments", "import", true, None)])
    );
    let in_force = store.ticket(f.project.id, t[3]).await.unwrap().tags;
    assert_eq!(in_force, [name("Payments")]);
    let in_force = store.ticket(f.project.id, t[4]).await.unwrap().tags;
    assert_eq!(in_force, [name("Other")]);

    // Nothing carries the merged tag any more, and searching by it finds nothing.
    let by_billing = store
        .search_tickets(
            f.project.id,
            &TicketQuery {
                tag: Some(name("Billing")),
                ..TicketQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(by_billing.is_empty());
}

async fn the_history_records_the_merge_on_both_tags(store: AnyStore) {
    let f = fixture(&store).await;
    store
        .merge_tags(f.project.id, f.billing.id, f.payments.id, "web:admin")
        .await
        .unwrap();
    let merge_events = |events: Vec<LabelEvent>| -> Vec<(String, LabelSource, LabelAction)> {
        events
            .into_iter()
            .filter(|e| e.set_by == "web:admin, merging Billing into Payments")
            .map(|e| (e.tag.as_str().to_string(), e.source, e.action))
            .collect()
    };
    let t = &f.tickets;
    assert_eq!(
        merge_events(store.label_history(f.project.id, t[0]).await.unwrap()),
        [
            ("Billing".into(), LabelSource::Import, LabelAction::Removed),
            ("Payments".into(), LabelSource::Import, LabelAction::Added),
        ]
    );
    // Already there: only the merged tag's label goes.
    assert_eq!(
        merge_events(store.label_history(f.project.id, t[1]).await.unwrap()),
        [("Billing".into(), LabelSource::Import, LabelAction::Removed)]
    );
    // The person's "not Payments" became Payments.
    assert_eq!(
        merge_events(store.label_history(f.project.id, t[3]).await.unwrap()),
        [
            ("Billing".into(), LabelSource::Human, LabelAction::Removed),
            ("Payments".into(), LabelSource::Human, LabelAction::Added),
        ]
    );
    assert!(merge_events(store.label_history(f.project.id, t[5]).await.unwrap()).is_empty());
    // The earlier history is kept as it was.
    let history = store.label_history(f.project.id, t[3]).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.set_by == "ana" && e.tag.as_str() == "Billing"),
        "{history:?}"
    );
}

async fn rules_follow_the_labels_and_the_merged_tag_is_archived(store: AnyStore) {
    let f = fixture(&store).await;
    let merge = store
        .merge_tags(f.project.id, f.billing.id, f.payments.id, "api-key:ci")
        .await
        .unwrap();
    let taxonomy = store.list_tags(f.project.id).await.unwrap();
    let stored = |id: TagId| taxonomy.iter().find(|t| t.id == id).unwrap().clone();
    let billing = stored(f.billing.id);
    let payments = stored(f.payments.id);
    assert!(billing.archived);
    assert!(!payments.archived);
    assert_eq!(
        payments.keywords,
        KeywordRules {
            include: vec!["refund".into(), "card".into(), "invoice".into()],
            exclude: vec!["newsletter".into()],
        }
    );
    assert_eq!(merge.into, payments);
    assert_eq!(merge.from, billing);
    // A person can no longer choose the merged tag.
    let refused = store
        .set_human_labels(f.project.id, f.tickets[0], &[name("Billing")], "ana")
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
}

async fn per_tag_counts_stay_right_after_a_merge(store: AnyStore) {
    let f = fixture(&store).await;
    let count = |counts: &[store::TagCount], id: TagId| {
        counts
            .iter()
            .find(|c| c.tag_id == id.0)
            .map_or(0, |c| c.tickets)
    };
    let before = store.tag_counts(f.project.id).await.unwrap();
    // Billing: 0, 1, 2, 3 (a person's "not" on 4); Payments: 1, 2, 5 (a person's "not" on 3).
    assert_eq!(count(&before, f.billing.id), 4);
    assert_eq!(count(&before, f.payments.id), 3);
    store
        .merge_tags(f.project.id, f.billing.id, f.payments.id, "web:admin")
        .await
        .unwrap();
    let after = store.tag_counts(f.project.id).await.unwrap();
    assert_eq!(count(&after, f.billing.id), 0);
    assert_eq!(count(&after, f.payments.id), 5);
    assert_eq!(count(&after, f.other.id), 1);
}

async fn refused_merges_change_nothing(store: AnyStore) {
    let f = fixture(&store).await;
    let before: Vec<_> = {
        let mut all = Vec::new();
        for t in &f.tickets {
            all.push(labels_of(&store, &f, *t).await);
        }
        all
    };
    let itself = store
        .merge_tags(f.project.id, f.billing.id, f.billing.id, "web:admin")
        .await;
    assert!(matches!(itself, Err(StoreError::Conflict(_))), "{itself:?}");
    let unknown = store
        .merge_tags(f.project.id, f.billing.id, TagId(999_999), "web:admin")
        .await;
    assert!(
        matches!(unknown, Err(StoreError::Conflict(_))),
        "{unknown:?}"
    );
    // The tag being merged missing is the one thing not found.
    let missing = store
        .merge_tags(f.project.id, TagId(999_999), f.billing.id, "web:admin")
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    // A tag of another project is unknown here.
    let elsewhere = store
        .create_project(&ProjectName::parse("Elsewhere").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let foreign = store
        .create_tag(elsewhere.id, &NewTag::named(name("Payments")))
        .await
        .unwrap();
    let foreign = store
        .merge_tags(f.project.id, f.billing.id, foreign.id, "web:admin")
        .await;
    assert!(
        matches!(foreign, Err(StoreError::Conflict(_))),
        "{foreign:?}"
    );
    // Merging into an archived tag would hide the labels.
    store
        .update_tag(
            f.project.id,
            f.other.id,
            &TagUpdate {
                archived: Some(true),
                ..TagUpdate::default()
            },
        )
        .await
        .unwrap();
    let archived = store
        .merge_tags(f.project.id, f.billing.id, f.other.id, "web:admin")
        .await;
    assert!(
        matches!(archived, Err(StoreError::Conflict(_))),
        "{archived:?}"
    );
    let mut after = Vec::new();
    for t in &f.tickets {
        after.push(labels_of(&store, &f, *t).await);
    }
    assert_eq!(before, after);
    let billing = store
        .list_tags(f.project.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == f.billing.id)
        .unwrap();
    assert!(!billing.archived);
}

datasets::on_both_backends!(
    every_label_moves_and_a_ticket_with_both_tags_keeps_one,
    the_history_records_the_merge_on_both_tags,
    rules_follow_the_labels_and_the_merged_tag_is_archived,
    per_tag_counts_stay_right_after_a_merge,
    refused_merges_change_nothing,
);
