//! Migration 0008 (key scopes) on a database that already has keys: a key made before scopes
//! existed keeps working, with every project scope, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::{KeyGrant, Scopes};
use sqlx::Connection;

/// The last migration before keys had scopes.
const BEFORE_SCOPES: i64 = 7;

/// A project and a key as the schema of migration 0007 stored them.
const INSERT_PROJECT: &str = "INSERT INTO projects (name, name_key, label_mode, created_at) \
     VALUES ('Acme', 'acme', 'multi', $1) RETURNING id";
const INSERT_KEY: &str = "INSERT INTO api_keys (project_id, name, prefix, key_hash, created_at) \
     VALUES ($1, 'connector', $2, $3, $4)";

async fn a_key_made_before_scopes_keeps_every_scope(database: &TestDatabase) {
    let (secret, prefix) = datasets::api_key::generate().unwrap();
    let now = chrono::Utc::now();
    let project_id: i64 = if database.url.starts_with("sqlite") {
        let mut connection = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", database.url))
            .await
            .unwrap();
        sqlx::migrate!("../migrations/sqlite")
            .run_to(BEFORE_SCOPES, &mut connection)
            .await
            .unwrap();
        let id: i64 = sqlx::query_scalar(INSERT_PROJECT)
            .bind(now)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        sqlx::query(INSERT_KEY)
            .bind(id)
            .bind(&prefix)
            .bind(datasets::api_key::hash(&secret))
            .bind(now)
            .execute(&mut connection)
            .await
            .unwrap();
        connection.close().await.unwrap();
        id
    } else {
        let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
        sqlx::migrate!("../migrations/postgres")
            .run_to(BEFORE_SCOPES, &mut connection)
            .await
            .unwrap();
        let id: i64 = sqlx::query_scalar(INSERT_PROJECT)
            .bind(now)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        sqlx::query(INSERT_KEY)
            .bind(id)
            .bind(&prefix)
            .bind(datasets::api_key::hash(&secret))
            .bind(now)
            .execute(&mut connection)
            .await
            .unwrap();
        connection.close().await.unwrap();
        id
    };

    let store = database.store().await.unwrap();
    let key = store.authenticate_api_key(&secret).await.unwrap().unwrap();
    assert_eq!(
        key.grant,
        KeyGrant::Project {
            project_id: datasets::ProjectId(project_id),
            scopes: Scopes::all(),
        }
    );
    assert_eq!(key.name, "connector");
    // New keys after the migration get fresh ids and may be instance-admin keys.
    let admin = store
        .create_api_key(&KeyGrant::InstanceAdmin, "provisioning")
        .await
        .unwrap();
    assert!(admin.key.id > key.id);
}

#[tokio::test]
async fn on_sqlite_a_key_made_before_scopes_keeps_every_scope() {
    let database = TestDatabase::sqlite().unwrap();
    a_key_made_before_scopes_keeps_every_scope(&database).await;
}

#[tokio::test]
async fn on_postgres_a_key_made_before_scopes_keeps_every_scope() {
    let Some(database) =
        TestDatabase::postgres("on_postgres_a_key_made_before_scopes_keeps_every_scope")
            .await
            .unwrap()
    else {
        return;
    };
    a_key_made_before_scopes_keeps_every_scope(&database).await;
    database.drop_database().await.unwrap();
}
