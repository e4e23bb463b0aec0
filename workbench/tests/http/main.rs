//! The workbench end to end, in one test binary: the router with `oneshot`, real servers on
//! sockets, the `tagger` binary as scripts call it, connectors against fake vendors, and the
//! browser test. One binary links the service once instead of once per file (issue 15).
//! Run one part with a filter: `cargo test -p workbench --test http -- api_auth::`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

mod api;
mod api_auth;
mod api_contract;
mod artifact_store;
mod audit;
mod backup;
mod bad_input;
mod browser;
mod cli;
mod connector_backfill;
mod connector_writeback;
mod connectors;
mod connectors_page;
mod disk_full;
mod entities;
mod explain;
mod group_pages;
mod import_concurrency;
mod key_phrases;
mod login_limits;
mod review_api;
mod snapshots;
mod tag_groups;
mod tagging;
mod web;
mod web_first_hour;
mod web_taxonomy_models;
mod web_training;
mod worker;
