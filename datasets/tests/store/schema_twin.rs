//! The two migrated schemas side by side: a fresh SQLite and a fresh PostgreSQL database are
//! migrated, read back from their catalogues, and compared table by table — columns (with a
//! type mapping), nullability, primary keys, indexes (unique or not, partial or not) and
//! foreign keys (with their delete action). A column added to one backend's migration and
//! forgotten in the other fails here, whether or not a behaviour test touches it.
//!
//! Differences that are deliberate are listed in `ALLOWED` with the reason; an entry that no
//! longer matches anything fails too, so the list cannot go stale. Defaults, CHECK
//! constraints and triggers are not compared (the behaviour suites cover what they do).
//!
//! Needs `TEST_DATABASE_URL` (CI sets it); without it the test says so and passes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::test_db::TestDatabase;
use sqlx::{Connection, Row};
use std::collections::{BTreeMap, BTreeSet};

/// Differences between the backends that are by design: (the difference as `drifts`
/// words it, why).
const ALLOWED: &[(&str, &str)] = &[
    (
        "table tickets_fts is only in SQLite",
        "full-text search: an external-content FTS5 table kept in step by triggers in SQLite",
    ),
    (
        "table tickets: column search_vector is only in PostgreSQL",
        "full-text search: the stored tsvector PostgreSQL searches (migration 0006)",
    ),
    (
        "table tickets: index (search_vector) is only in PostgreSQL",
        "full-text search: the GIN index over that tsvector",
    ),
    (
        "table tag_day_count_changes is only in PostgreSQL",
        "dashboard counts: concurrent PostgreSQL writers append changes instead of queueing \
         on shared counter rows; SQLite has one writer and updates the counts directly",
    ),
    (
        "table project_day_count_changes is only in PostgreSQL",
        "dashboard counts: as tag_day_count_changes",
    ),
];

/// How the two backends spell one kind of value. SQLite has five storage classes, so JSON
/// and timestamps are TEXT there (JSON text, RFC 3339 UTC) and booleans 0/1 integers.
fn same_type(sqlite: &str, postgres: &str) -> bool {
    matches!(
        (sqlite.to_ascii_uppercase().as_str(), postgres),
        ("INTEGER", "bigint" | "integer" | "smallint" | "boolean")
            | ("BOOLEAN", "boolean")
            | ("REAL", "real" | "double precision")
            | ("TEXT", "text" | "jsonb" | "timestamp with time zone")
            | ("BLOB", "bytea")
    )
}

#[derive(Debug, Default)]
struct Schema {
    tables: BTreeMap<String, Table>,
}

#[derive(Debug, Default)]
struct Table {
    /// Column name → (declared type, nullable).
    columns: BTreeMap<String, (String, bool)>,
    primary_key: Vec<String>,
    indexes: BTreeSet<Index>,
    foreign_keys: BTreeSet<ForeignKey>,
}

/// An index by what it does, not by its name (SQLite names the ones behind UNIQUE
/// constraints itself).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Index {
    columns: Vec<String>,
    unique: bool,
    partial: bool,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    columns: Vec<String>,
    table: String,
    references: Vec<String>,
    on_delete: String,
}

impl std::fmt::Display for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "index ({})", self.columns.join(", "))?;
        if self.unique {
            write!(f, " unique")?;
        }
        if self.partial {
            write!(f, " partial")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for ForeignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "foreign key ({}) → {} ({}) on delete {}",
            self.columns.join(", "),
            self.table,
            self.references.join(", "),
            self.on_delete
        )
    }
}

const EXPRESSION: &str = "<expression>";

async fn sqlite_schema(url: &str) -> Schema {
    let mut db = sqlx::SqliteConnection::connect(url).await.unwrap();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    // FTS5's shadow tables (tickets_fts_data, …) belong to their virtual table.
    let virtual_tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut schema = Schema::default();
    for name in names {
        if virtual_tables
            .iter()
            .any(|v| name != *v && name.starts_with(&format!("{v}_")))
        {
            continue;
        }
        let mut table = Table::default();
        let columns = sqlx::query(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?) ORDER BY pk, cid",
        )
        .bind(&name)
        .fetch_all(&mut db)
        .await
        .unwrap();
        for column in columns {
            let (column_name, ty): (String, String) = (column.get(0), column.get(1));
            let (not_null, pk): (i64, i64) = (column.get(2), column.get(3));
            // A primary-key column is never NULL, whatever the pragma says of INTEGER
            // PRIMARY KEY (a rowid alias).
            table
                .columns
                .insert(column_name.clone(), (ty, not_null == 0 && pk == 0));
            if pk > 0 {
                table.primary_key.push(column_name);
            }
        }
        let indexes = sqlx::query(
            "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?) ORDER BY name",
        )
        .bind(&name)
        .fetch_all(&mut db)
        .await
        .unwrap();
        for index in indexes {
            let (index_name, unique, origin, partial): (String, i64, String, i64) =
                (index.get(0), index.get(1), index.get(2), index.get(3));
            if origin == "pk" {
                continue;
            }
            let columns: Vec<Option<String>> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                    .bind(&index_name)
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
            table.indexes.insert(Index {
                columns: columns
                    .into_iter()
                    .map(|c| c.unwrap_or_else(|| EXPRESSION.into()))
                    .collect(),
                unique: unique != 0,
                partial: partial != 0,
            });
        }
        let keys = sqlx::query(
            "SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list(?) \
             ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(&mut db)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for key in keys {
            let id: i64 = key.get(0);
            let entry = by_id.entry(id).or_insert_with(|| ForeignKey {
                columns: Vec::new(),
                table: key.get(1),
                references: Vec::new(),
                on_delete: key.get(4),
            });
            entry.columns.push(key.get(2));
            // `to` is NULL when the key names only the table: its primary key.
            entry
                .references
                .push(key.get::<Option<String>, _>(3).unwrap_or_default());
        }
        table.foreign_keys = by_id.into_values().collect();
        schema.tables.insert(name, table);
    }
    // Foreign keys that name only the table point at its primary key.
    let primary_keys: BTreeMap<String, Vec<String>> = schema
        .tables
        .iter()
        .map(|(name, table)| (name.clone(), table.primary_key.clone()))
        .collect();
    for table in schema.tables.values_mut() {
        table.foreign_keys = std::mem::take(&mut table.foreign_keys)
            .into_iter()
            .map(|mut key| {
                if key.references.iter().all(String::is_empty) {
                    key.references = primary_keys.get(&key.table).cloned().unwrap_or_default();
                }
                key
            })
            .collect();
    }
    db.close().await.unwrap();
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut schema = Schema::default();
    for name in names {
        let mut table = Table::default();
        let columns = sqlx::query(
            "SELECT column_name::text, data_type::text, is_nullable = 'YES' \
             FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(&name)
        .fetch_all(&mut db)
        .await
        .unwrap();
        for column in columns {
            table
                .columns
                .insert(column.get(0), (column.get(1), column.get(2)));
        }
        let indexes = sqlx::query(
            "SELECT ix.indisprimary, ix.indisunique, ix.indpred IS NOT NULL, \
               array(SELECT coalesce(a.attname::text, $2) \
                     FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
                     LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                     ORDER BY k.n) \
             FROM pg_index ix \
             JOIN pg_class t ON t.oid = ix.indrelid \
             JOIN pg_namespace ns ON ns.oid = t.relnamespace \
             WHERE ns.nspname = 'public' AND t.relname = $1",
        )
        .bind(&name)
        .bind(EXPRESSION)
        .fetch_all(&mut db)
        .await
        .unwrap();
        for index in indexes {
            let (primary, unique, partial, columns): (bool, bool, bool, Vec<String>) =
                (index.get(0), index.get(1), index.get(2), index.get(3));
            if primary {
                table.primary_key = columns;
            } else {
                table.indexes.insert(Index {
                    columns,
                    unique,
                    partial,
                });
            }
        }
        let keys = sqlx::query(
            "SELECT ref.relname::text, con.confdeltype::text, \
               array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, n) \
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum \
                     ORDER BY k.n), \
               array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, n) \
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum \
                     ORDER BY k.n) \
             FROM pg_constraint con \
             JOIN pg_class t ON t.oid = con.conrelid \
             JOIN pg_class ref ON ref.oid = con.confrelid \
             JOIN pg_namespace ns ON ns.oid = t.relnamespace \
             WHERE con.contype = 'f' AND ns.nspname = 'public' AND t.relname = $1",
        )
        .bind(&name)
        .fetch_all(&mut db)
        .await
        .unwrap();
        for key in keys {
            let action: String = key.get(1);
            let on_delete = match action.as_str() {
                "a" => "NO ACTION",
                "r" => "RESTRICT",
                "c" => "CASCADE",
                "n" => "SET NULL",
                "d" => "SET DEFAULT",
                other => panic!("unknown delete action {other:?}"),
            };
            table.foreign_keys.insert(ForeignKey {
                columns: key.get(2),
                table: key.get(0),
                references: key.get(3),
                on_delete: on_delete.into(),
            });
        }
        schema.tables.insert(name, table);
    }
    db.close().await.unwrap();
    schema
}

/// Every difference between the two schemas, one sentence each.
fn drifts(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut found = Vec::new();
    let only = |found: &mut Vec<String>, what: String, side: &str| {
        found.push(format!("{what} is only in {side}"));
    };
    for name in sqlite.tables.keys() {
        if !postgres.tables.contains_key(name) {
            only(&mut found, format!("table {name}"), "SQLite");
        }
    }
    for (name, pg) in &postgres.tables {
        let Some(lite) = sqlite.tables.get(name) else {
            only(&mut found, format!("table {name}"), "PostgreSQL");
            continue;
        };
        for (column, (lite_type, lite_null)) in &lite.columns {
            let Some((pg_type, pg_null)) = pg.columns.get(column) else {
                only(
                    &mut found,
                    format!("table {name}: column {column}"),
                    "SQLite",
                );
                continue;
            };
            if !same_type(lite_type, pg_type) {
                found.push(format!(
                    "table {name}: column {column} is {lite_type} in SQLite but {pg_type} in PostgreSQL"
                ));
            }
            if lite_null != pg_null {
                let nullable = |n: bool| if n { "nullable" } else { "NOT NULL" };
                found.push(format!(
                    "table {name}: column {column} is {} in SQLite but {} in PostgreSQL",
                    nullable(*lite_null),
                    nullable(*pg_null)
                ));
            }
        }
        for column in pg.columns.keys() {
            if !lite.columns.contains_key(column) {
                only(
                    &mut found,
                    format!("table {name}: column {column}"),
                    "PostgreSQL",
                );
            }
        }
        if lite.primary_key != pg.primary_key {
            found.push(format!(
                "table {name}: primary key ({}) in SQLite but ({}) in PostgreSQL",
                lite.primary_key.join(", "),
                pg.primary_key.join(", ")
            ));
        }
        for index in lite.indexes.difference(&pg.indexes) {
            only(&mut found, format!("table {name}: {index}"), "SQLite");
        }
        for index in pg.indexes.difference(&lite.indexes) {
            only(&mut found, format!("table {name}: {index}"), "PostgreSQL");
        }
        for key in lite.foreign_keys.difference(&pg.foreign_keys) {
            only(&mut found, format!("table {name}: {key}"), "SQLite");
        }
        for key in pg.foreign_keys.difference(&lite.foreign_keys) {
            only(&mut found, format!("table {name}: {key}"), "PostgreSQL");
        }
    }
    found
}

#[tokio::test]
async fn the_sqlite_and_postgresql_schemas_are_twins() {
    let Some(pg_database) = TestDatabase::postgres("the_sqlite_and_postgresql_schemas_are_twins")
        .await
        .unwrap()
    else {
        return;
    };
    let lite_database = TestDatabase::sqlite().unwrap();
    // Migrated by the product's own migrate, then read back with plain connections.
    drop(lite_database.store().await.unwrap());
    drop(pg_database.store().await.unwrap());
    let lite = sqlite_schema(&lite_database.url).await;
    let pg = postgres_schema(&pg_database.url).await;
    pg_database.drop_database().await.unwrap();

    // The reading itself must have found the schema, or an empty comparison passes.
    for schema in [&lite, &pg] {
        let tickets = &schema.tables["tickets"];
        assert!(tickets.columns.contains_key("external_id"), "{tickets:?}");
        assert!(!tickets.foreign_keys.is_empty(), "{tickets:?}");
        assert!(tickets.indexes.iter().any(|i| i.unique), "{tickets:?}");
    }

    let found = drifts(&lite, &pg);
    let unexplained: Vec<&String> = found
        .iter()
        .filter(|d| !ALLOWED.iter().any(|(allowed, _)| allowed == d))
        .collect();
    let stale: Vec<&str> = ALLOWED
        .iter()
        .map(|(allowed, _)| *allowed)
        .filter(|allowed| !found.iter().any(|d| d == allowed))
        .collect();
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "schema drift between the SQLite and PostgreSQL migrations:\n  {}\n\
         allowed differences that no longer occur (remove them from ALLOWED):\n  {}",
        unexplained
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        stale.join("\n  ")
    );
}

/// The comparison itself: a schema differing in each compared way is reported in each.
#[test]
fn every_kind_of_drift_is_reported() {
    let mut lite = Schema::default();
    let mut pg = Schema::default();
    let mut table = Table::default();
    table.columns.insert("id".into(), ("INTEGER".into(), false));
    table.primary_key = vec!["id".into()];
    lite.tables.insert("t".into(), table);
    let mut table = Table::default();
    table.columns.insert("id".into(), ("bigint".into(), false));
    table.primary_key = vec!["id".into()];
    pg.tables.insert("t".into(), table);
    assert!(drifts(&lite, &pg).is_empty());

    let lite_t = lite.tables.get_mut("t").unwrap();
    lite_t.columns.insert("a".into(), ("TEXT".into(), true));
    lite_t.indexes.insert(Index {
        columns: vec!["a".into()],
        unique: true,
        partial: false,
    });
    lite_t.foreign_keys.insert(ForeignKey {
        columns: vec!["a".into()],
        table: "u".into(),
        references: vec!["id".into()],
        on_delete: "CASCADE".into(),
    });
    let pg_t = pg.tables.get_mut("t").unwrap();
    pg_t.columns.insert("a".into(), ("bigint".into(), false));
    pg_t.indexes.insert(Index {
        columns: vec!["a".into()],
        unique: false,
        partial: false,
    });
    pg_t.foreign_keys.insert(ForeignKey {
        columns: vec!["a".into()],
        table: "u".into(),
        references: vec!["id".into()],
        on_delete: "NO ACTION".into(),
    });
    pg.tables.insert("extra".into(), Table::default());
    let found = drifts(&lite, &pg);
    for expected in [
        "table extra is only in PostgreSQL",
        "table t: column a is TEXT in SQLite but bigint in PostgreSQL",
        "table t: column a is nullable in SQLite but NOT NULL in PostgreSQL",
        "table t: index (a) unique is only in SQLite",
        "table t: index (a) is only in PostgreSQL",
        "table t: foreign key (a) → u (id) on delete CASCADE is only in SQLite",
        "table t: foreign key (a) → u (id) on delete NO ACTION is only in PostgreSQL",
    ] {
        assert!(
            found.iter().any(|d| d == expected),
            "{expected}: {found:#?}"
        );
    }
    assert_eq!(found.len(), 7, "{found:#?}");
}
