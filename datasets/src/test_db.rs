//! Fresh databases for tests: a new SQLite file, or a new PostgreSQL database on the server
//! named by `TEST_DATABASE_URL`, so tests run in parallel without seeing each other's rows.

use crate::StoreResult;
use crate::store::AnyStore;
use crate::store::SchemaStore;
use sqlx::Connection;
use std::sync::atomic::{AtomicU32, Ordering};

/// The variable naming the PostgreSQL server tests may create databases on.
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    admin_url: Option<String>,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A new, empty SQLite file in a temporary directory.
    pub fn sqlite() -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("tagger.db").display());
        Ok(Self {
            url,
            admin_url: None,
            name: String::new(),
            _dir: Some(dir),
        })
    }

    /// A new, empty PostgreSQL database, or `None` (with a note on stderr) when
    /// `TEST_DATABASE_URL` is not set.
    pub async fn postgres(test: &str) -> StoreResult<Option<Self>> {
        let Ok(admin_url) = std::env::var(TEST_DATABASE_URL) else {
            eprintln!("skipped {test} on PostgreSQL: {TEST_DATABASE_URL} is not set");
            return Ok(None);
        };
        let name = format!(
            "tagger_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_micros() % 1_000_000
        );
        let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let url = replace_database(&admin_url, &name);
        Ok(Some(Self {
            url,
            admin_url: Some(admin_url),
            name,
            _dir: None,
        }))
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> StoreResult<AnyStore> {
        let store = AnyStore::connect(&self.url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Drops a PostgreSQL test database; SQLite files go with their directory.
    pub async fn drop_database(self) -> StoreResult<()> {
        if let Some(admin_url) = &self.admin_url {
            let mut admin = sqlx::PgConnection::connect(admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await?;
        }
        Ok(())
    }
}

/// The same server URL with another database name (query string kept).
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// Runs each listed `async fn(AnyStore)` as two tests of the calling test file:
/// `sqlite::<name>` on a fresh SQLite file and `postgres::<name>` on a fresh PostgreSQL
/// database (skipped, with a note, when `TEST_DATABASE_URL` is not set) — the one way every
/// store suite checks that both backends behave the same.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let database = $crate::test_db::TestDatabase::sqlite().unwrap();
                    super::$test(database.store().await.unwrap()).await;
                }
            )*
        }
        mod postgres {
            $(
                // Two workers: the lease and counting tests race real transactions.
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(database) = $crate::test_db::TestDatabase::postgres(stringify!($test)).await.unwrap() else {
                        return;
                    };
                    super::$test(database.store().await.unwrap()).await;
                    database.drop_database().await.unwrap();
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h", "x"), "postgres://h/x");
    }
}
