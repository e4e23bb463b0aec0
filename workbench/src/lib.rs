//! The `tagger` binary's library: configuration, the CLI commands, the HTTP server and the
//! JSON API. The web workbench pages grow here as their data lands.

pub mod api;
pub mod app;
pub mod audit_trail;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connector_backfill;
pub mod connector_deliveries;
pub mod connector_jobs;
pub mod connector_setup;
pub mod credentials;
pub mod entity_rebuild;
mod fallback;
pub mod glossary;
pub mod http_metrics;
pub mod http_trace;
pub mod ingest;
pub mod logging;
pub mod outgoing_webhooks;
pub mod state;
pub mod web;
pub mod worker;
