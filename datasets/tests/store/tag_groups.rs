//! Tag groups on SQLite and on PostgreSQL (when `TEST_DATABASE_URL` is set): every project
//! has one default group following its label mode, where new tags go; groups are created,
//! renamed and deleted (only when empty) under unique names; tags join and move between
//! groups; a single-choice group gives a ticket one tag; and migration 0017 puts the tags of
//! an existing database into each project's default group.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::*;
use sqlx::Connection;

fn tag(name: &str) -> TagName {
    TagName::parse(name).unwrap()
}

fn group_name(name: &str) -> TagGroupName {
    TagGroupName::parse(name).unwrap()
}

fn in_group(name: &str, group: &str) -> NewTag {
    NewTag {
        group: Some(group_name(group)),
        ..NewTag::named(tag(name))
    }
}

async fn project(store: &AnyStore, name: &str, mode: LabelMode) -> Project {
    store
        .create_project(&ProjectName::parse(name).unwrap(), mode)
        .await
        .unwrap()
}

fn conflict(error: StoreError) -> String {
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    error.to_string()
}

datasets::on_both_backends!(
    a_new_project_has_one_default_group_following_its_label_mode,
    groups_are_created_renamed_and_deleted_under_unique_names,
    tags_join_the_named_group_or_the_default_and_move_between_groups,
    a_single_choice_group_gives_a_ticket_at_most_one_tag,
);

async fn a_new_project_has_one_default_group_following_its_label_mode(store: AnyStore) {
    for (name, mode, choice) in [
        ("Multi", LabelMode::Multi, GroupChoice::Multi),
        ("Single", LabelMode::Single, GroupChoice::Single),
    ] {
        let project = project(&store, name, mode).await;
        let groups = store.list_tag_groups(project.id).await.unwrap();
        assert_eq!(groups.len(), 1, "{groups:?}");
        let default = &groups[0];
        assert!(default.is_default);
        assert_eq!(default.choice, choice);
        assert_eq!(default.project_id, project.id);
        let bug = store
            .create_tag(project.id, &NewTag::named(tag("Bug")))
            .await
            .unwrap();
        assert_eq!(bug.group_id, default.id);
        assert_eq!(
            store.list_tags(project.id).await.unwrap()[0].group_id,
            default.id
        );
    }
    // Tags an import creates join the default group too.
    let mut import = store
        .begin_import(
            &ProjectName::parse("Imported").unwrap(),
            Some(LabelMode::Multi),
            "test",
        )
        .await
        .unwrap();
    let project_id = import.project().id;
    import.create_tag(&tag("Login")).await.unwrap();
    import.commit().await.unwrap();
    let groups = store.list_tag_groups(project_id).await.unwrap();
    let tags = store.list_tags(project_id).await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(tags[0].group_id, groups[0].id);
}

async fn groups_are_created_renamed_and_deleted_under_unique_names(store: AnyStore) {
    let acme = project(&store, "Acme", LabelMode::Multi).await;
    let other = project(&store, "Other", LabelMode::Multi).await;
    let priority = store
        .create_tag_group(
            acme.id,
            &NewTagGroup {
                name: group_name("Priority"),
                choice: GroupChoice::Single,
            },
        )
        .await
        .unwrap();
    assert_eq!(priority.choice, GroupChoice::Single);
    assert!(!priority.is_default);
    let topics = store
        .create_tag_group(
            acme.id,
            &NewTagGroup {
                name: group_name("Topics"),
                choice: GroupChoice::Multi,
            },
        )
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list_tag_groups(acme.id)
        .await
        .unwrap()
        .iter()
        .map(|g| g.name.to_string())
        .collect();
    assert_eq!(listed, ["Tags", "Priority", "Topics"]);

    // Names are unique per project regardless of case; another project may reuse them.
    let duplicate = store
        .create_tag_group(
            acme.id,
            &NewTagGroup {
                name: group_name("PRIORITY"),
                choice: GroupChoice::Multi,
            },
        )
        .await
        .unwrap_err();
    assert!(conflict(duplicate).contains("PRIORITY"));
    store
        .create_tag_group(
            other.id,
            &NewTagGroup {
                name: group_name("Priority"),
                choice: GroupChoice::Multi,
            },
        )
        .await
        .unwrap();
    let missing_project = store
        .create_tag_group(
            ProjectId(999_999),
            &NewTagGroup {
                name: group_name("X"),
                choice: GroupChoice::Multi,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(missing_project, StoreError::NotFound(_)));

    let renamed = store
        .rename_tag_group(acme.id, topics.id, &group_name("Areas"))
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "Areas");
    assert_eq!(renamed.choice, GroupChoice::Multi);
    conflict(
        store
            .rename_tag_group(acme.id, topics.id, &group_name("priority"))
            .await
            .unwrap_err(),
    );
    // A group is found only in its own project.
    assert!(matches!(
        store
            .rename_tag_group(other.id, topics.id, &group_name("Mine"))
            .await
            .unwrap_err(),
        StoreError::NotFound(_)
    ));

    // The default group stays; a group with a tag (even archived) stays; an empty one goes.
    let default = store.list_tag_groups(acme.id).await.unwrap()[0].clone();
    assert!(
        conflict(
            store
                .delete_tag_group(acme.id, default.id)
                .await
                .unwrap_err()
        )
        .contains("default")
    );
    let low = store
        .create_tag(acme.id, &in_group("Low", "Priority"))
        .await
        .unwrap();
    store
        .update_tag(
            acme.id,
            low.id,
            &TagUpdate {
                archived: Some(true),
                ..TagUpdate::default()
            },
        )
        .await
        .unwrap();
    let refused = conflict(
        store
            .delete_tag_group(acme.id, priority.id)
            .await
            .unwrap_err(),
    );
    assert!(refused.contains("1 tag"), "{refused}");
    assert!(matches!(
        store
            .delete_tag_group(other.id, topics.id)
            .await
            .unwrap_err(),
        StoreError::NotFound(_)
    ));
    let deleted = store.delete_tag_group(acme.id, topics.id).await.unwrap();
    assert_eq!(deleted.name.as_str(), "Areas");
    let left: Vec<TagGroupId> = store
        .list_tag_groups(acme.id)
        .await
        .unwrap()
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(left, [default.id, priority.id]);
    // A new group goes after the others, whatever was deleted.
    let again = store
        .create_tag_group(
            acme.id,
            &NewTagGroup {
                name: group_name("Areas"),
                choice: GroupChoice::Multi,
            },
        )
        .await
        .unwrap();
    assert!(again.position > priority.position);
}

async fn tags_join_the_named_group_or_the_default_and_move_between_groups(store: AnyStore) {
    let acme = project(&store, "Acme", LabelMode::Multi).await;
    let other = project(&store, "Other", LabelMode::Multi).await;
    let priority = store
        .create_tag_group(
            acme.id,
            &NewTagGroup {
                name: group_name("Priority"),
                choice: GroupChoice::Single,
            },
        )
        .await
        .unwrap();
    store
        .create_tag_group(
            other.id,
            &NewTagGroup {
                name: group_name("Elsewhere"),
                choice: GroupChoice::Multi,
            },
        )
        .await
        .unwrap();
    let default = store.list_tag_groups(acme.id).await.unwrap()[0].clone();
    // Named in any case.
    let high = store
        .create_tag(acme.id, &in_group("High", "priority"))
        .await
        .unwrap();
    assert_eq!(high.group_id, priority.id);
    let login = store
        .create_tag(acme.id, &NewTag::named(tag("Login")))
        .await
        .unwrap();
    assert_eq!(login.group_id, default.id);
    // A group of another project, or none at all, is refused and creates nothing.
    for unknown in ["Elsewhere", "Nope"] {
        let message = conflict(
            store
                .create_tag(acme.id, &in_group("Stray", unknown))
                .await
                .unwrap_err(),
        );
        assert!(message.contains(unknown), "{message}");
    }
    assert_eq!(store.list_tags(acme.id).await.unwrap().len(), 2);

    let moved = store
        .update_tag(
            acme.id,
            login.id,
            &TagUpdate {
                group: Some(group_name("Priority")),
                ..TagUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.group_id, priority.id);
    assert_eq!(moved.name.as_str(), "Login");
    let stored = store.list_tags(acme.id).await.unwrap();
    assert!(
        stored.iter().all(|t| t.group_id == priority.id),
        "{stored:?}"
    );
    // An edit that names no group leaves the tag where it is.
    let renamed = store
        .update_tag(
            acme.id,
            login.id,
            &TagUpdate {
                name: Some(tag("Sign-in")),
                ..TagUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.group_id, priority.id);
    conflict(
        store
            .update_tag(
                acme.id,
                login.id,
                &TagUpdate {
                    name: Some(tag("Changed")),
                    group: Some(group_name("Elsewhere")),
                    ..TagUpdate::default()
                },
            )
            .await
            .unwrap_err(),
    );
    // The refused change left the tag as it was.
    let after = store.list_tags(acme.id).await.unwrap();
    assert!(
        after
            .iter()
            .any(|t| t.name.as_str() == "Sign-in" && t.group_id == priority.id)
    );
}

async fn a_single_choice_group_gives_a_ticket_at_most_one_tag(store: AnyStore) {
    let acme = project(&store, "Acme", LabelMode::Multi).await;
    store
        .create_tag_group(
            acme.id,
            &NewTagGroup {
                name: group_name("Priority"),
                choice: GroupChoice::Single,
            },
        )
        .await
        .unwrap();
    for name in ["Low", "High"] {
        store
            .create_tag(acme.id, &in_group(name, "Priority"))
            .await
            .unwrap();
    }
    for name in ["Login", "Billing"] {
        store
            .create_tag(acme.id, &NewTag::named(tag(name)))
            .await
            .unwrap();
    }
    let ticket = store
        .upsert_tickets(
            acme.id,
            &[NewTicket {
                source: "api".into(),
                external_id: "T-1".into(),
                subject: "cannot log in".into(),
                body: "urgent".into(),
                metadata: serde_json::json!({}),
                created_at: None,
                split: Split::Train,
            }],
        )
        .await
        .unwrap()[0]
        .id;
    let refused = conflict(
        store
            .set_human_labels(
                acme.id,
                ticket,
                &[tag("Login"), tag("Low"), tag("high")],
                "ana",
            )
            .await
            .unwrap_err(),
    );
    assert!(
        refused.contains("Priority") && refused.contains("single-choice"),
        "{refused}"
    );
    assert!(store.ticket(acme.id, ticket).await.unwrap().tags.is_empty());
    // One tag of the single-choice group, any number of the multi-choice default group.
    let labelled = store
        .set_human_labels(
            acme.id,
            ticket,
            &[tag("Login"), tag("High"), tag("Billing"), tag("HIGH")],
            "ana",
        )
        .await
        .unwrap();
    let mut tags: Vec<&str> = labelled.tags.iter().map(|t| t.as_str()).collect();
    tags.sort_unstable();
    assert_eq!(tags, ["Billing", "High", "Login"]);
}

/// The last migration before tag groups (0016 is another feature's).
const BEFORE_GROUPS: i64 = 15;

const INSERT_PROJECT: &str = "INSERT INTO projects (name, name_key, label_mode, created_at) \
     VALUES ($1, $2, $3, $4) RETURNING id";
const INSERT_TAG: &str = "INSERT INTO tags (project_id, name, name_key, color, created_at) \
     VALUES ($1, $2, $3, '#000000', $4)";

/// Writes two projects, one per label mode, with two tags each, as the schema before groups
/// stored them, on an open connection of either backend; gives their ids.
macro_rules! projects_before_groups {
    ($connection:expr) => {{
        let now = chrono::Utc::now();
        let mut ids = [0_i64; 2];
        for (slot, (name, mode, tags)) in ids.iter_mut().zip([
            ("Multi", "multi", ["Login", "Billing"]),
            ("Single", "single", ["Bug", "Question"]),
        ]) {
            let id: i64 = sqlx::query_scalar(INSERT_PROJECT)
                .bind(name)
                .bind(name.to_lowercase())
                .bind(mode)
                .bind(now)
                .fetch_one(&mut *$connection)
                .await
                .unwrap();
            for tag in tags {
                sqlx::query(INSERT_TAG)
                    .bind(id)
                    .bind(tag)
                    .bind(tag.to_lowercase())
                    .bind(now)
                    .execute(&mut *$connection)
                    .await
                    .unwrap();
            }
            *slot = id;
        }
        ids
    }};
}

async fn existing_tags_land_in_a_default_group_following_the_label_mode(database: &TestDatabase) {
    let [multi, single] = if database.url.starts_with("sqlite") {
        let mut connection = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", database.url))
            .await
            .unwrap();
        sqlx::migrate!("../migrations/sqlite")
            .run_to(BEFORE_GROUPS, &mut connection)
            .await
            .unwrap();
        let ids = projects_before_groups!(&mut connection);
        connection.close().await.unwrap();
        ids
    } else {
        let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
        sqlx::migrate!("../migrations/postgres")
            .run_to(BEFORE_GROUPS, &mut connection)
            .await
            .unwrap();
        let ids = projects_before_groups!(&mut connection);
        connection.close().await.unwrap();
        ids
    };

    let store = database.store().await.unwrap();
    for (project, choice) in [
        (ProjectId(multi), GroupChoice::Multi),
        (ProjectId(single), GroupChoice::Single),
    ] {
        let groups = store.list_tag_groups(project).await.unwrap();
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert!(groups[0].is_default);
        assert_eq!(groups[0].choice, choice);
        let tags = store.list_tags(project).await.unwrap();
        assert_eq!(tags.len(), 2);
        assert!(tags.iter().all(|t| t.group_id == groups[0].id), "{tags:?}");
        // The migrated project takes new tags and groups as a new one does.
        let new = store
            .create_tag(project, &NewTag::named(tag("Later")))
            .await
            .unwrap();
        assert_eq!(new.group_id, groups[0].id);
    }
    // A single-label project still takes one tag per ticket after the migration.
    let ticket = store
        .upsert_tickets(
            ProjectId(single),
            &[NewTicket {
                source: "api".into(),
                external_id: "T-1".into(),
                subject: "crash".into(),
                body: "it crashed".into(),
                metadata: serde_json::json!({}),
                created_at: None,
                split: Split::Train,
            }],
        )
        .await
        .unwrap()[0]
        .id;
    let refused = conflict(
        store
            .set_human_labels(
                ProjectId(single),
                ticket,
                &[tag("Bug"), tag("Question")],
                "ana",
            )
            .await
            .unwrap_err(),
    );
    assert!(refused.contains("single-label"), "{refused}");
}

#[tokio::test]
async fn on_sqlite_existing_tags_land_in_a_default_group_following_the_label_mode() {
    let database = TestDatabase::sqlite().unwrap();
    existing_tags_land_in_a_default_group_following_the_label_mode(&database).await;
}

#[tokio::test]
async fn on_postgres_existing_tags_land_in_a_default_group_following_the_label_mode() {
    let Some(database) = TestDatabase::postgres(
        "on_postgres_existing_tags_land_in_a_default_group_following_the_label_mode",
    )
    .await
    .unwrap() else {
        return;
    };
    existing_tags_land_in_a_default_group_following_the_label_mode(&database).await;
    database.drop_database().await.unwrap();
}
