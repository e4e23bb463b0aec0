//! Issue 13, findings 4 and 5: what a client sends is bounded (`datasets::limits`) and bad
//! input is refused as `Invalid` the same way on SQLite and on PostgreSQL (when
//! `TEST_DATABASE_URL` is set), never left for the database to fail on.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use datasets::store::prelude::*;

use datasets::limits::*;
use datasets::store::ServerSecrets;
use datasets::*;
use support::{project_with_tickets, tag};

datasets::on_both_backends!(
    a_tag_with_too_many_keywords_is_refused_naming_the_limit,
    oversized_metadata_and_strings_are_refused,
    nul_characters_are_refused_in_every_text_field,
    dates_outside_years_one_to_9999_are_refused,
    search_filters_with_nul_or_too_long_text_are_refused,
    labels_from_an_oversized_actor_or_answer_are_refused,
    the_server_secret_is_created_once_and_kept,
    a_merge_that_would_exceed_the_keyword_limit_changes_nothing,
);

fn year(year: i32) -> chrono::DateTime<chrono::Utc> {
    chrono::NaiveDate::from_ymd_opt(year, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

fn ticket(external_id: &str) -> NewTicket {
    NewTicket {
        source: "api".into(),
        external_id: external_id.into(),
        subject: "Refund".into(),
        body: "please".into(),
        metadata: serde_json::json!({}),
        created_at: None,
        split: Split::Train,
    }
}

/// The store refused the input as invalid, with a message that contains `needle`.
fn assert_invalid<T: std::fmt::Debug>(result: StoreResult<T>, needle: &str) {
    match result {
        Err(StoreError::Invalid(error)) => {
            let message = error.to_string();
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected an invalid-input error with {needle:?}, got {other:?}"),
    }
}

async fn a_tag_with_too_many_keywords_is_refused_naming_the_limit(store: AnyStore) {
    let (project, _) = project_with_tickets(&store, "Acme", 0).await;
    let mut new = NewTag::named(tag("Refunds"));
    new.keywords.include = (0..100_000).map(|n| format!("word {n}")).collect();
    assert_invalid(
        store.create_tag(project.id, &new).await,
        &format!("the limit is {MAX_KEYWORDS_PER_TAG}"),
    );
    new.keywords.include.truncate(MAX_KEYWORDS_PER_TAG);
    let created = store.create_tag(project.id, &new).await.unwrap();
    let update = TagUpdate {
        keywords: Some(KeywordRules {
            include: vec!["x".into(); MAX_KEYWORDS_PER_TAG + 1],
            exclude: Vec::new(),
        }),
        ..TagUpdate::default()
    };
    assert_invalid(
        store.update_tag(project.id, created.id, &update).await,
        "keywords",
    );
    let long_phrase = TagUpdate {
        description: Some("d".repeat(MAX_DESCRIPTION_CHARS + 1)),
        ..TagUpdate::default()
    };
    assert_invalid(
        store.update_tag(project.id, created.id, &long_phrase).await,
        "description",
    );
}

async fn oversized_metadata_and_strings_are_refused(store: AnyStore) {
    let (project, _) = project_with_tickets(&store, "Acme", 0).await;
    let mut big_metadata = ticket("big-metadata");
    big_metadata.metadata = serde_json::json!({"blob": "m".repeat(5 * 1024 * 1024)});
    assert_invalid(
        store.upsert_tickets(project.id, &[big_metadata]).await,
        "metadata",
    );
    let mut deep = serde_json::json!("leaf");
    for _ in 0..1000 {
        deep = serde_json::json!({ "a": deep });
    }
    let mut deep_metadata = ticket("deep-metadata");
    deep_metadata.metadata = deep;
    assert_invalid(
        store.upsert_tickets(project.id, &[deep_metadata]).await,
        "nests deeper",
    );
    let megabyte = "k".repeat(1024 * 1024);
    assert_invalid(
        store.upsert_tickets(project.id, &[ticket(&megabyte)]).await,
        "external_id",
    );
    let mut long_source = ticket("long-source");
    long_source.source = megabyte.clone();
    assert_invalid(
        store.upsert_tickets(project.id, &[long_source]).await,
        "source",
    );
    let mut long_subject = ticket("long-subject");
    long_subject.subject = megabyte;
    assert_invalid(
        store.upsert_tickets(project.id, &[long_subject]).await,
        "subject",
    );
    // At the limits themselves, everything is stored.
    let mut largest = ticket(&"k".repeat(MAX_KEY_CHARS));
    largest.source = "s".repeat(MAX_KEY_CHARS);
    largest.subject = "s".repeat(MAX_SUBJECT_CHARS);
    largest.metadata = serde_json::json!({"blob": "m".repeat(MAX_METADATA_BYTES - 20)});
    store.upsert_tickets(project.id, &[largest]).await.unwrap();
}

async fn nul_characters_are_refused_in_every_text_field(store: AnyStore) {
    let (project, _) = project_with_tickets(&store, "Acme", 0).await;
    let nul = "a\u{0}b";
    let mut cases = Vec::new();
    cases.push(("external_id", ticket(nul)));
    let mut source = ticket("nul-source");
    source.source = nul.into();
    cases.push(("source", source));
    let mut body = ticket("nul-body");
    body.body = nul.into();
    cases.push(("body", body));
    let mut value = ticket("nul-metadata-value");
    value.metadata = serde_json::json!({"requester": nul});
    cases.push(("metadata", value));
    let mut key = ticket("nul-metadata-key");
    key.metadata = serde_json::json!({ nul: 1 });
    cases.push(("metadata", key));
    for (field, bad) in cases {
        assert_invalid(store.upsert_tickets(project.id, &[bad]).await, field);
    }
    let mut rules = NewTag::named(tag("Refunds"));
    rules.keywords.exclude.push(nul.into());
    assert_invalid(store.create_tag(project.id, &rules).await, "NUL");
    let mut described = NewTag::named(tag("Refunds"));
    described.description = nul.into();
    assert_invalid(store.create_tag(project.id, &described).await, "NUL");
    // Nothing of the refused input was stored.
    let all = store
        .search_tickets(project.id, &TicketQuery::default())
        .await
        .unwrap();
    assert!(all.is_empty(), "{all:?}");
}

async fn dates_outside_years_one_to_9999_are_refused(store: AnyStore) {
    let (project, _) = project_with_tickets(&store, "Acme", 0).await;
    let mut ancient = ticket("ancient");
    ancient.created_at = Some(year(-5000));
    assert_invalid(
        store.upsert_tickets(project.id, &[ancient]).await,
        "year -5000",
    );
    let mut far = ticket("far");
    far.created_at = Some(year(10_000));
    assert_invalid(store.upsert_tickets(project.id, &[far]).await, "created_at");
    let mut first = ticket("first");
    first.created_at = Some(year(1));
    store.upsert_tickets(project.id, &[first]).await.unwrap();
}

async fn search_filters_with_nul_or_too_long_text_are_refused(store: AnyStore) {
    let (project, _) = project_with_tickets(&store, "Acme", 2).await;
    for query in [
        TicketQuery {
            text: Some("in\u{0}voice".into()),
            ..TicketQuery::default()
        },
        TicketQuery {
            source: Some("api\u{0}".into()),
            ..TicketQuery::default()
        },
        TicketQuery {
            text: Some("q".repeat(MAX_SEARCH_CHARS + 1)),
            ..TicketQuery::default()
        },
    ] {
        assert_invalid(store.search_tickets(project.id, &query).await, "");
    }
    let filter = datasets::store::TicketFilter {
        text: Some("in\u{0}voice".into()),
        limit: 10,
        ..Default::default()
    };
    assert_invalid(store.browse_tickets(project.id, &filter).await, "NUL");
    let filter = datasets::store::TicketFilter {
        from: Some(year(-5000)),
        limit: 10,
        ..Default::default()
    };
    assert_invalid(store.browse_tickets(project.id, &filter).await, "from");
}

async fn labels_from_an_oversized_actor_or_answer_are_refused(store: AnyStore) {
    let (project, tickets) = project_with_tickets(&store, "Acme", 1).await;
    let huge_user = "u".repeat(1024 * 1024);
    assert_invalid(
        store
            .set_human_labels(project.id, tickets[0], &[tag("Bug")], &huge_user)
            .await,
        "user",
    );
    assert_invalid(
        store
            .set_human_labels(project.id, tickets[0], &[tag("Bug")], "a\u{0}b")
            .await,
        "user",
    );
    let many = vec![tag("Bug"); MAX_TAGS_PER_ANSWER + 1];
    assert_invalid(
        store
            .set_human_labels(project.id, tickets[0], &many, "alice")
            .await,
        "tags",
    );
    store
        .set_human_labels(project.id, tickets[0], &[tag("Bug")], "alice")
        .await
        .unwrap();
}

async fn the_server_secret_is_created_once_and_kept(store: AnyStore) {
    let first = store.server_secret("login_csrf").await.unwrap();
    assert_eq!(first.len(), datasets::store::server_secrets::SECRET_BYTES);
    let (again, other) = tokio::join!(
        store.server_secret("login_csrf"),
        store.server_secret("something_else")
    );
    assert_eq!(again.unwrap(), first);
    assert_ne!(other.unwrap(), first);
}

async fn a_merge_that_would_exceed_the_keyword_limit_changes_nothing(store: AnyStore) {
    let (project, _) = project_with_tickets(&store, "Acme", 0).await;
    let mut created = Vec::new();
    for name in ["Refunds", "Chargebacks"] {
        let mut new = NewTag::named(tag(name));
        new.keywords.include = (0..150).map(|n| format!("{name} {n}")).collect();
        created.push(store.create_tag(project.id, &new).await.unwrap());
    }
    assert_invalid(
        store
            .merge_tags(project.id, created[1].id, created[0].id, "alice")
            .await,
        &format!("the limit is {MAX_KEYWORDS_PER_TAG}"),
    );
    let tags = store.list_tags(project.id).await.unwrap();
    let refunds = tags.iter().find(|t| t.id == created[0].id).unwrap();
    let chargebacks = tags.iter().find(|t| t.id == created[1].id).unwrap();
    assert_eq!(refunds.keywords.include.len(), 150);
    assert!(!chargebacks.archived);
}
