//! Faults answered honestly and recovered from at once (issue 13, finding 6): writes refused
//! while SQLite's disk is full are a 507 that says so, never a 500, and the first write
//! after space returns succeeds — no connection that saw the error is reused. On
//! PostgreSQL, connections killed under the pool are replaced without a 500.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use datasets::store::prelude::*;

use axum::http::{Method, StatusCode};
use datasets::test_db::TestDatabase;
use datasets::*;
use serde_json::json;
use support::WebApp;

/// Sets `PRAGMA max_page_count` on every connection of the store's pools, the reading one and
/// the one for writes (a per-connection setting): `None` caps the file at its current size,
/// as a full disk would.
async fn set_page_limit(store: &AnyStore, limit: Option<i64>) {
    let AnyStore::Sqlite(sqlite) = store else {
        unreachable!("a SQLite store")
    };
    let mut connections = Vec::new();
    for pool in [sqlite.pool(), sqlite.writer()] {
        for _ in 0..pool.options().get_max_connections() {
            connections.push(pool.acquire().await.unwrap());
        }
    }
    for connection in &mut connections {
        let limit = match limit {
            Some(limit) => limit,
            None => sqlx::query_scalar("PRAGMA page_count")
                .fetch_one(&mut **connection)
                .await
                .unwrap(),
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA max_page_count = {limit}"
        )))
        .execute(&mut **connection)
        .await
        .unwrap();
    }
}

fn ticket(number: usize) -> serde_json::Value {
    json!({
        "external_id": format!("T-{number}"),
        "subject": format!("Printer {number} jams"),
        // Big enough that every ticket needs new pages.
        "body": format!("{number} ").repeat(3000),
    })
}

#[tokio::test]
async fn writes_refused_on_a_full_disk_are_507_and_succeed_as_soon_as_there_is_room() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let app = WebApp::on(store.clone()).await;
    let project = store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let key = support::project_key(&store, project.id, "ingest").await;
    let uri = "/v1/projects/Acme/tickets";

    set_page_limit(&store, None).await;
    let mut refused = 0;
    let mut number = 0;
    while refused < 12 {
        number += 1;
        assert!(number < 200, "the capped database never filled up");
        let (status, body) = app
            .json(Method::POST, uri, Some(&key), ticket(number))
            .await;
        match status {
            StatusCode::CREATED => {}
            StatusCode::INSUFFICIENT_STORAGE => {
                assert_eq!(body["error"]["code"], "storage_full", "{body}");
                refused += 1;
            }
            other => panic!("a full disk answered {other}: {body}"),
        }
    }

    // Space again: the very next writes succeed, on every connection of the pool.
    set_page_limit(&store, Some(1 << 30)).await;
    for next in 0..40 {
        let (status, body) = app
            .json(Method::POST, uri, Some(&key), ticket(1000 + next))
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "write {next} after space returned: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_killed_under_the_pool_are_replaced_without_a_500() {
    let Some(database) = TestDatabase::postgres("killed_connections").await.unwrap() else {
        return;
    };
    let store = database.store().await.unwrap();
    let app = WebApp::on(store.clone()).await;
    let project = store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let key = support::project_key(&store, project.id, "ingest").await;
    let uri = "/v1/projects/Acme/tickets";
    for number in 0..8 {
        let (status, _) = app
            .json(Method::POST, uri, Some(&key), ticket(number))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }

    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&database.url)
        .await
        .unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the pool had connections to kill");

    for number in 100..120 {
        let (status, body) = app
            .json(Method::POST, uri, Some(&key), ticket(number))
            .await;
        assert_eq!(status, StatusCode::CREATED, "after the kill: {body}");
    }
    drop(admin);
    database.drop_database().await.unwrap();
}
