//! A connection that comes back to the pool still counting a transaction sqlx can no longer
//! end is closed, not handed out again (issue 13, finding 6). SQLite ends a transaction by
//! itself on a full disk or an I/O error, so the `ROLLBACK` sqlx sends for the dropped
//! transaction fails and its count stays at one; a `ROLLBACK` run inside the transaction does
//! exactly the same to that bookkeeping, without needing a full disk.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::AnyStore;
use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::{LabelMode, ProjectName};

#[tokio::test]
async fn a_connection_whose_transaction_sqlite_ended_is_never_reused() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let AnyStore::Sqlite(sqlite) = &store else {
        unreachable!("a SQLite test database")
    };
    let pool = sqlite.pool();
    for _ in 0..8 {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
        drop(tx);
        // The connection goes back in the background; let it arrive before the next turn.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Every connection the pool hands out now can begin a transaction: eight at once
    // (the pool's size) so no poisoned one could hide behind a healthy one.
    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(pool.begin_with("BEGIN").await.unwrap());
    }
    for tx in open {
        tx.rollback().await.unwrap();
    }
    // The same on the one connection kept for writes: the store's next write gets a healthy
    // connection, not the poisoned one.
    let mut tx = sqlite.writer().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
    drop(tx);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // And the store writes.
    store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
}
