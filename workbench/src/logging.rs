//! The binary's logs: one filter (`log`, `TAGGER_LOG`) and one shape (`log_format`,
//! `TAGGER_LOG_FORMAT`): text for a person, one JSON object per line for a log collector.
//! Logs go to standard error, so a command's output on standard out stays clean. E-mail
//! addresses, phone numbers and card numbers are masked in every line, whatever field or
//! message carries them (a file name, a help desk's error, an external id), unless an admin
//! opts out with `log_personal_data` (`TAGGER_LOG_PERSONAL_DATA`).

use crate::config::Config;
use anyhow::Context;
use datasets::text::entities::mask_personal;
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

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

/// A log writer that masks personal data in each line before it reaches `inner`.
#[derive(Debug, Clone)]
pub struct MaskPersonal<M> {
    inner: M,
    /// `false` when an admin opted out: lines pass as they are.
    mask: bool,
}

impl<M> MaskPersonal<M> {
    /// Masks what `inner` receives unless `config.log_personal_data` is set.
    pub fn new(inner: M, config: &Config) -> Self {
        Self {
            inner,
            mask: !config.log_personal_data,
        }
    }
}

/// One event's writer: the formatter hands it the whole formatted line at once.
pub struct MaskedLine<W> {
    inner: W,
    mask: bool,
}

impl<W: Write> Write for MaskedLine<W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if self.mask {
            let masked = mask_personal(&String::from_utf8_lossy(line));
            self.inner.write_all(masked.as_bytes())?;
        } else {
            self.inner.write_all(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for MaskPersonal<M> {
    type Writer = MaskedLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        MaskedLine {
            inner: self.inner.make_writer(),
            mask: self.mask,
        }
    }
}

/// The subscriber for the configuration's filter, format and masking, writing to `writer`
/// (standard error for the binary; a buffer in tests).
pub fn subscriber<W>(
    config: &Config,
    writer: W,
) -> anyhow::Result<Box<dyn tracing::Subscriber + Send + Sync>>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&config.log)
        .with_context(|| format!("invalid log filter {:?} (log, TAGGER_LOG)", config.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(MaskPersonal::new(writer, config));
    let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = match config.log_format {
        // Colours only for a person at a terminal: a log file or a collector would keep the
        // escape codes as text.
        LogFormat::Text => Box::new(builder.with_ansi(std::io::stderr().is_terminal()).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .finish(),
        ),
    };
    Ok(subscriber)
}

/// Installs the global subscriber for the configuration's filter and format.
pub fn init(config: &Config) -> anyhow::Result<()> {
    // `try_init` also forwards the `log` records of dependencies.
    use tracing_subscriber::util::SubscriberInitExt;
    subscriber(config, std::io::stderr)?
        .try_init()
        .map_err(|error| anyhow::anyhow!("cannot install the logger: {error}"))?;
    if std::env::var_os(RETIRED_FILTER_VARIABLE).is_some() {
        tracing::warn!(
            "{RETIRED_FILTER_VARIABLE} is no longer read; the log filter is TAGGER_LOG (same syntax)"
        );
    }
    Ok(())
}
