//! `tagger export`: a project's tickets with the tags in force, one per CSV row or JSON line,
//! read page by page so memory stays flat. E-mail addresses, phone numbers and card numbers
//! are masked unless the caller keeps them ([`Personal`]). The CSV re-imports with
//! `--text-column subject --text-column body --label-column tags --label-separator ";"
//! --id-column external_id`.

use crate::import::FileFormat;
use crate::store::TicketStore;
use crate::text::entities::mask_personal;
use crate::ticket::LabelledTicket;
use crate::{ProjectId, StoreError};
use std::io::Write;

/// How many tickets are read from the store at a time.
const PAGE: u32 = 1000;
/// Joins tags in a CSV cell.
pub const CSV_TAG_SEPARATOR: &str = ";";

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the CSV failed: {0}")]
    Csv(#[from] csv::Error),
}

const CSV_HEADER: [&str; 7] = [
    "source",
    "external_id",
    "subject",
    "body",
    "tags",
    "split",
    "created_at",
];

/// Whether an export keeps personal data (e-mail addresses, phone numbers, card numbers) in
/// ticket texts and metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personal {
    /// Masked (`[email]`, `[phone]`, `[card]`): the default, since exports leave the product.
    Masked,
    /// Kept as stored, when an admin asks for it (a backup, a move to another instance).
    Kept,
}

/// Writes every ticket of the project; returns how many.
pub async fn export_project<S: TicketStore, W: Write>(
    store: &S,
    project: ProjectId,
    format: FileFormat,
    personal: Personal,
    output: W,
) -> Result<u64, ExportError> {
    let mut sink = match format {
        FileFormat::Csv => {
            let mut writer = csv::Writer::from_writer(output);
            let mut header = CSV_HEADER.to_vec();
            header.push("metadata");
            writer.write_record(&header)?;
            Sink::Csv(Box::new(writer))
        }
        FileFormat::Jsonl => Sink::Jsonl(std::io::BufWriter::new(output)),
    };
    let mut after = None;
    let mut written = 0;
    loop {
        let page = store.tickets_after(project, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.ticket.id);
        for ticket in &page {
            match personal {
                Personal::Kept => sink.write(ticket)?,
                Personal::Masked => sink.write(&masked(ticket))?,
            }
            written += 1;
        }
    }
    sink.finish()?;
    Ok(written)
}

/// The ticket with personal data masked in its subject, body and metadata's strings.
fn masked(labelled: &LabelledTicket) -> LabelledTicket {
    fn mask_strings(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => *text = mask_personal(text),
            serde_json::Value::Array(items) => items.iter_mut().for_each(mask_strings),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(mask_strings),
            _ => {}
        }
    }
    let mut labelled = labelled.clone();
    let ticket = &mut labelled.ticket;
    ticket.subject = mask_personal(&ticket.subject);
    ticket.body = mask_personal(&ticket.body);
    mask_strings(&mut ticket.metadata);
    labelled
}

enum Sink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Jsonl(std::io::BufWriter<W>),
}

impl<W: Write> Sink<W> {
    fn write(&mut self, labelled: &LabelledTicket) -> Result<(), ExportError> {
        let ticket = &labelled.ticket;
        let tags: Vec<&str> = labelled.tags.iter().map(|t| t.as_str()).collect();
        match self {
            Sink::Csv(writer) => {
                writer.write_record([
                    &ticket.source,
                    &ticket.external_id,
                    &ticket.subject,
                    &ticket.body,
                    &tags.join(CSV_TAG_SEPARATOR),
                    ticket.split.as_str(),
                    &ticket.created_at.to_rfc3339(),
                    &ticket.metadata.to_string(),
                ])?;
            }
            Sink::Jsonl(writer) => {
                let line = serde_json::json!({
                    "id": ticket.id,
                    "source": ticket.source,
                    "external_id": ticket.external_id,
                    "subject": ticket.subject,
                    "body": ticket.body,
                    "tags": tags,
                    "split": ticket.split,
                    "created_at": ticket.created_at,
                    "metadata": ticket.metadata,
                    "labels": labelled.labels,
                });
                serde_json::to_writer(&mut *writer, &line).map_err(std::io::Error::other)?;
                writer.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), ExportError> {
        match self {
            Sink::Csv(mut writer) => writer.flush()?,
            Sink::Jsonl(mut writer) => writer.flush()?,
        }
        Ok(())
    }
}
