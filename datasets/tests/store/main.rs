//! The store suites in one test binary, each run on SQLite and on PostgreSQL (when
//! `TEST_DATABASE_URL` is set): conformance, the schema twin, counts, labelling, reviews,
//! users, and the property tests over imports and inputs. Run one part with a filter:
//! `cargo test -p datasets --test store -- schema_twin::`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

mod api_key_migration;
mod conformance;
mod connector_tickets;
mod dashboard_counts;
mod double_labelling;
mod entities;
mod import_groups;
mod import_properties;
mod input_limits;
mod input_properties;
mod merge_tags;
mod pool_hygiene;
mod review_queue;
mod schema_twin;
mod tag_groups;
mod text_samples;
mod training_runs;
mod users;
