//! The binary's logs: one filter (`log`, `TAGGER_LOG`) and one shape (`log_format`,
//! `TAGGER_LOG_FORMAT`): text for a person, one JSON object per line for a log collector.
//! Logs go to standard error, so a command's output on standard out stays clean.

use crate::config::Config;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured only at a terminal.
    #[default]
    Text,
    /// One JSON object per line, with the event's fields at the top level and the spans it
    /// happened in (request, job, store call) under `span` and `spans`.
    Json,
}

/// The variable that chose the filter before `TAGGER_LOG` was the only one.
const RETIRED_FILTER_VARIABLE: &str = "TAGGER_LOG_FILTER";

/// Installs the global subscriber for the configuration's filter and format.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log)
        .with_context(|| format!("invalid log filter {:?} (log, TAGGER_LOG)", config.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        // Colours only for a person at a terminal: a log file or a collector would keep the
        // escape codes as text.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    }
    .map_err(|error| anyhow::anyhow!("cannot install the logger: {error}"))?;
    if std::env::var_os(RETIRED_FILTER_VARIABLE).is_some() {
        tracing::warn!(
            "{RETIRED_FILTER_VARIABLE} is no longer read; the log filter is TAGGER_LOG (same syntax)"
        );
    }
    Ok(())
}
