//! The web workbench's store methods (accounts, sessions, the ticket browser, dashboard
//! aggregates) on SQLite and on PostgreSQL (when `TEST_DATABASE_URL` is set).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{Duration, TimeZone, Utc};
use datasets::store::prelude::*;
use datasets::store::{TicketFilter, TicketPage};
use datasets::*;

datasets::on_both_backends!(
    usernames_are_unique_regardless_of_case_and_credentials_come_back,
    a_session_is_found_by_its_hash_until_it_expires_or_is_deleted,
    a_new_password_ends_the_users_sessions,
    browsing_filters_by_words_tag_source_label_source_confidence_and_date,
    a_keyword_rule_preview_matches_any_include_and_no_exclude,
    browsing_pages_never_repeat_a_ticket,
    dashboard_counts_volumes_and_corrections,
);

fn new_user(name: &str, role: Role) -> NewUser {
    NewUser {
        username: Username::parse(name).unwrap(),
        role,
        password_hash: format!("$argon2id$fake-hash-of-{name}"),
    }
}

async fn usernames_are_unique_regardless_of_case_and_credentials_come_back(store: AnyStore) {
    let alice = store
        .create_user(&new_user("Alice", Role::Admin))
        .await
        .unwrap();
    assert_eq!(alice.role, Role::Admin);
    let error = store
        .create_user(&new_user("alice", Role::Labeler))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
    let found = store
        .user_credentials(&Username::parse("ALICE").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user, alice);
    assert_eq!(found.password_hash, "$argon2id$fake-hash-of-Alice");
    assert!(
        store
            .user_credentials(&Username::parse("bob").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let changed = store.set_user_role(alice.id, Role::Labeler).await.unwrap();
    assert_eq!(changed.role, Role::Labeler);
    assert_eq!(store.users().await.unwrap(), vec![changed]);
}

fn session_for(user: &User, token_hash: &str, expires_in: Duration) -> NewSession {
    NewSession {
        user_id: user.id,
        token_hash: token_hash.into(),
        csrf_token: format!("csrf-{token_hash}"),
        expires_at: Utc::now() + expires_in,
    }
}

async fn a_session_is_found_by_its_hash_until_it_expires_or_is_deleted(store: AnyStore) {
    let user = store
        .create_user(&new_user("carol", Role::MlEngineer))
        .await
        .unwrap();
    store
        .create_session(&session_for(&user, "h1", Duration::hours(1)))
        .await
        .unwrap();
    let session = store.session("h1", Utc::now()).await.unwrap().unwrap();
    assert_eq!(session.user, user);
    assert_eq!(session.csrf_token, "csrf-h1");
    assert!(store.session("h2", Utc::now()).await.unwrap().is_none());
    // Past its expiry the session no longer authenticates.
    assert!(
        store
            .session("h1", Utc::now() + Duration::hours(2))
            .await
            .unwrap()
            .is_none()
    );
    store.delete_session("h1").await.unwrap();
    assert!(store.session("h1", Utc::now()).await.unwrap().is_none());
}

async fn a_new_password_ends_the_users_sessions(store: AnyStore) {
    let user = store
        .create_user(&new_user("dave", Role::Labeler))
        .await
        .unwrap();
    store
        .create_session(&session_for(&user, "d1", Duration::hours(1)))
        .await
        .unwrap();
    store
        .set_user_password(user.id, "$argon2id$new")
        .await
        .unwrap();
    assert!(store.session("d1", Utc::now()).await.unwrap().is_none());
    let credentials = store
        .user_credentials(&user.username)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.password_hash, "$argon2id$new");
    assert!(matches!(
        store.set_user_password(9999, "$x").await.unwrap_err(),
        StoreError::NotFound(_)
    ));
}

fn ticket(id: &str, source: &str, subject: &str, body: &str, day: u32) -> NewTicket {
    NewTicket {
        source: source.into(),
        external_id: id.into(),
        subject: subject.into(),
        body: body.into(),
        metadata: serde_json::json!({}),
        created_at: Some(Utc.with_ymd_and_hms(2026, 3, day, 12, 0, 0).unwrap()),
        split: Split::Train,
    }
}

/// Four tickets over four days with model and human labels:
/// 1 billing (model 0.9), 2 billing (model 0.4, a person removed it) + login (human),
/// 3 login (model 0.8), 4 nothing.
async fn labelled_project(store: &AnyStore) -> (Project, Vec<TicketId>, Tag, Tag) {
    let project = store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let billing = store
        .create_tag(
            project.id,
            &NewTag::named(TagName::parse("billing").unwrap()),
        )
        .await
        .unwrap();
    let login = store
        .create_tag(project.id, &NewTag::named(TagName::parse("login").unwrap()))
        .await
        .unwrap();
    let stored = store
        .upsert_tickets(
            project.id,
            &[
                ticket(
                    "1",
                    "zendesk",
                    "Invoice is wrong",
                    "charged twice this month",
                    1,
                ),
                ticket(
                    "2",
                    "zendesk",
                    "Cannot log in",
                    "password reset mail never came",
                    2,
                ),
                ticket(
                    "3",
                    "jira",
                    "Login page slow",
                    "the sso login takes a minute",
                    3,
                ),
                ticket(
                    "4",
                    "jira",
                    "Feature idea",
                    "<script>alert(1)</script> dark mode",
                    4,
                ),
            ],
        )
        .await
        .unwrap();
    let ids: Vec<TicketId> = stored.iter().map(|t| t.id).collect();
    let version = store
        .create_model_version(project.id, &NewModelVersion::default())
        .await
        .unwrap();
    store
        .set_model_labels(project.id, ids[0], version.id, &[(billing.id, 0.9)])
        .await
        .unwrap();
    store
        .set_model_labels(project.id, ids[1], version.id, &[(billing.id, 0.4)])
        .await
        .unwrap();
    store
        .set_model_labels(project.id, ids[2], version.id, &[(login.id, 0.8)])
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
    (project, ids, billing, login)
}

fn ids_of(page: &TicketPage) -> Vec<TicketId> {
    page.tickets.iter().map(|t| t.ticket.id).collect()
}

async fn browsing_filters_by_words_tag_source_label_source_confidence_and_date(store: AnyStore) {
    let (project, ids, billing, login) = labelled_project(&store).await;
    let browse = |filter: TicketFilter| {
        let store = store.clone();
        async move {
            store
                .browse_tickets(
                    project.id,
                    &TicketFilter {
                        limit: 50,
                        ..filter
                    },
                )
                .await
                .unwrap()
        }
    };
    // Newest first.
    assert_eq!(
        ids_of(&browse(TicketFilter::default()).await),
        vec![ids[3], ids[2], ids[1], ids[0]]
    );
    let words = browse(TicketFilter {
        text: Some("LOGIN".into()),
        ..TicketFilter::default()
    })
    .await;
    assert_eq!(ids_of(&words), vec![ids[2]]);
    let both_words = browse(TicketFilter {
        text: Some("password mail".into()),
        ..TicketFilter::default()
    })
    .await;
    assert_eq!(ids_of(&both_words), vec![ids[1]]);
    // Query syntax typed by a person is only words.
    let syntax = browse(TicketFilter {
        text: Some("\"dark\" * (MODE".into()),
        ..TicketFilter::default()
    })
    .await;
    assert_eq!(ids_of(&syntax), vec![ids[3]]);
    // Ticket 2's billing label was removed by a person: not present any more from a person,
    // but the model's label is still present.
    let tagged = browse(TicketFilter {
        tag: Some(login.id),
        ..TicketFilter::default()
    })
    .await;
    assert_eq!(ids_of(&tagged), vec![ids[2], ids[1]]);
    let by_human = browse(TicketFilter {
        label_source: Some(LabelSource::Human),
        ..TicketFilter::default()
    })
    .await;
    assert_eq!(ids_of(&by_human), vec![ids[1]]);
    let source = browse(TicketFilter {
        source: Some("jira".into()),
        ..TicketFilter::default()
    })
    .await;
    assert_eq!(ids_of(&source), vec![ids[3], ids[2]]);
    let confident = browse(TicketFilter {
        tag: Some(billing.id),
        min_confidence: Some(0.5),
        ..TicketFilter::default()
    })
    .await;
    assert_eq!(ids_of(&confident), vec![ids[0]]);
    let doubtful = browse(TicketFilter {
        max_confidence: Some(0.5),
        ..TicketFilter::default()
    })
    .await;
    assert_eq!(ids_of(&doubtful), vec![ids[1]]);
    let dated = browse(TicketFilter {
        from: Some(Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()),
        until: Some(Utc.with_ymd_and_hms(2026, 3, 4, 0, 0, 0).unwrap()),
        ..TicketFilter::default()
    })
    .await;
    assert_eq!(ids_of(&dated), vec![ids[2], ids[1]]);
    assert_eq!(store.project_list().await.unwrap(), vec![project.clone()]);
    assert_eq!(
        store.ticket_sources(project.id).await.unwrap(),
        vec!["jira".to_string(), "zendesk".to_string()]
    );
}

async fn a_keyword_rule_preview_matches_any_include_and_no_exclude(store: AnyStore) {
    let (project, ids, _, _) = labelled_project(&store).await;
    let preview = |include: &[&str], exclude: &[&str]| {
        let store = store.clone();
        let rule = KeywordRules {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        };
        async move {
            let page = store
                .browse_tickets(
                    project.id,
                    &TicketFilter {
                        rule: Some(rule),
                        limit: 50,
                        ..TicketFilter::default()
                    },
                )
                .await
                .unwrap();
            ids_of(&page)
        }
    };
    assert_eq!(
        preview(&["password reset", "invoice"], &[]).await,
        vec![ids[1], ids[0]]
    );
    assert_eq!(preview(&["login", "log in"], &["sso"]).await, vec![ids[1]]);
    assert_eq!(preview(&["login"], &[]).await, vec![ids[2]]);
    // A phrase matches only in order.
    assert_eq!(
        preview(&["reset password"], &[]).await,
        Vec::<TicketId>::new()
    );
    assert_eq!(preview(&[], &["sso"]).await, Vec::<TicketId>::new());
}

async fn browsing_pages_never_repeat_a_ticket(store: AnyStore) {
    let project = store
        .create_project(&ProjectName::parse("Paged").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let tickets: Vec<NewTicket> = (0..25)
        .map(|i| {
            ticket(
                &i.to_string(),
                "api",
                &format!("ticket {i}"),
                "same body",
                1 + i % 5,
            )
        })
        .collect();
    store.upsert_tickets(project.id, &tickets).await.unwrap();
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let page = store
            .browse_tickets(
                project.id,
                &TicketFilter {
                    offset,
                    limit: 10,
                    ..TicketFilter::default()
                },
            )
            .await
            .unwrap();
        seen.extend(ids_of(&page));
        if !page.has_more {
            break;
        }
        offset += 10;
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 25);
    assert_eq!(unique.len(), 25);
}

async fn dashboard_counts_volumes_and_corrections(store: AnyStore) {
    let (project, _, billing, login) = labelled_project(&store).await;
    let counts = store.tag_counts(project.id).await.unwrap();
    let count_of = |tag: &Tag| {
        counts
            .iter()
            .find(|c| c.tag_id == tag.id.0)
            .unwrap()
            .tickets
    };
    // billing: ticket 1 only (a person removed it from ticket 2); login: tickets 2 and 3.
    assert_eq!(count_of(&billing), 1);
    assert_eq!(count_of(&login), 2);
    assert_eq!(counts[0].name, "login");

    let volume = store
        .tag_volume(
            project.id,
            Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap(),
        )
        .await
        .unwrap();
    let days: Vec<(String, i64, i64)> = volume
        .iter()
        .map(|v| (v.day.clone(), v.tag_id, v.tickets))
        .collect();
    assert_eq!(
        days,
        // Ticket 2's billing is not counted: a person removed it (as in the counts above).
        vec![
            ("2026-03-02".to_string(), login.id.0, 1),
            ("2026-03-03".to_string(), login.id.0, 1),
        ]
    );

    let outcomes = store.tag_outcomes(project.id).await.unwrap();
    let billing_outcome = outcomes.iter().find(|o| o.tag_id == billing.id.0).unwrap();
    assert_eq!(
        (
            billing_outcome.auto_applied,
            billing_outcome.confirmed,
            billing_outcome.corrected
        ),
        (2, 0, 1)
    );
    let totals = store.labelling_totals(project.id).await.unwrap();
    assert_eq!(
        (totals.tickets, totals.auto_tagged, totals.human_labelled),
        (4, 3, 1)
    );
}
