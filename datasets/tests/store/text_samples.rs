//! Text samples for key phrases (`DashboardStore::sample_texts`): which tickets a tag
//! condition takes (a person's removal wins over any other source's label), the period, the
//! limit and the order, on SQLite and on PostgreSQL (when `TEST_DATABASE_URL` is set).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{DateTime, Duration, TimeZone, Utc};
use datasets::store::dashboard::{SampledText, TagCondition, TextSample};
use datasets::store::prelude::*;
use datasets::*;

datasets::on_both_backends!(samples_take_tickets_by_tag_in_force_period_and_limit_newest_first);

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap()
}

fn ticket(i: i64) -> NewTicket {
    NewTicket {
        source: "api".into(),
        external_id: i.to_string(),
        subject: format!("ticket {i}"),
        body: format!("body {i}"),
        metadata: serde_json::json!({}),
        // One a day.
        created_at: Some(start() + Duration::days(i)),
        split: Split::Train,
    }
}

fn ids(sample: &[SampledText]) -> Vec<i64> {
    sample.iter().map(|t| t.id).collect()
}

async fn samples_take_tickets_by_tag_in_force_period_and_limit_newest_first(store: AnyStore) {
    let project = store
        .create_project(&ProjectName::parse("Samples").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let billing = store
        .create_tag(
            project.id,
            &NewTag::named(TagName::parse("billing").unwrap()),
        )
        .await
        .unwrap();
    let other = store
        .create_project(&ProjectName::parse("Elsewhere").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    store.upsert_tickets(other.id, &[ticket(3)]).await.unwrap();
    let stored = store
        .upsert_tickets(project.id, &(0..10).map(ticket).collect::<Vec<_>>())
        .await
        .unwrap();
    let id = |i: usize| stored[i].id;
    let version = store
        .create_model_version(project.id, &NewModelVersion::default())
        .await
        .unwrap();
    // The model tags 0–5 billing; a person tags 8; a person removes it from 1.
    for i in 0..6 {
        store
            .set_model_labels(project.id, id(i), version.id, &[(billing.id, 0.9)])
            .await
            .unwrap();
    }
    store
        .set_human_labels(
            project.id,
            id(8),
            std::slice::from_ref(&billing.name),
            "ann",
        )
        .await
        .unwrap();
    store
        .set_human_labels(project.id, id(1), &[], "ann")
        .await
        .unwrap();

    let all = |tag| TextSample::any_time(tag, 100);
    let sample = |s: TextSample| {
        let store = store.clone();
        async move { store.sample_texts(project.id, &s).await.unwrap() }
    };
    let expect = |indices: &[usize]| indices.iter().map(|i| id(*i).0).collect::<Vec<_>>();

    let with = sample(all(TagCondition::With(billing.id))).await;
    assert_eq!(
        ids(&with),
        expect(&[8, 5, 4, 3, 2, 0]),
        "newest first, 1 removed"
    );
    assert_eq!(with[0].subject, "ticket 8");
    assert_eq!(with[0].body, "body 8");
    let without = sample(all(TagCondition::Without(billing.id))).await;
    assert_eq!(ids(&without), expect(&[9, 7, 6, 1]));
    let any = sample(all(TagCondition::Any)).await;
    assert_eq!(
        ids(&any),
        expect(&[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]),
        "only this project's"
    );

    // The period is [from, until); the limit keeps the newest.
    let period = TextSample {
        from: start() + Duration::days(2),
        until: start() + Duration::days(5),
        ..all(TagCondition::With(billing.id))
    };
    assert_eq!(ids(&sample(period).await), expect(&[4, 3, 2]));
    let limited = TextSample {
        limit: 2,
        ..all(TagCondition::Any)
    };
    assert_eq!(ids(&sample(limited).await), expect(&[9, 8]));
}
