//! `tagger export`: a project's tickets with the tags in force, one per CSV row or JSON line,
//! read page by page so memory stays flat. E-mail addresses, phone numbers and card numbers
//! are masked unless the caller keeps them ([`Personal`]). The CSV re-imports with
//! `--text-column subject --text-column body --label-column tags --label-separator ";"
//! --id-column external_id`.
//!
//! A project with tag groups (more than its default group) also gets its tags by group: a
//! CSV column per group, named after the group (`group:NAME` when the name is one of the
//! fixed columns), the group's tags joined with ";"; and in JSON Lines an object `groups`
//! from each group's name to its tags. Both re-import with `--group-column NAME=COLUMN`.

use crate::import::FileFormat;
use crate::names::TagName;
use crate::store::{TagGroupStore, TagStore, TicketStore};
use crate::tag_group::TagGroup;
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
pub async fn export_project<S: TicketStore + TagStore + TagGroupStore, W: Write>(
    store: &S,
    project: ProjectId,
    format: FileFormat,
    personal: Personal,
    output: W,
) -> Result<u64, ExportError> {
    let groups = ExportGroups::read(store, project).await?;
    let mut sink = match format {
        FileFormat::Csv => {
            let mut writer = csv::Writer::from_writer(output);
            let mut header: Vec<String> = CSV_HEADER.iter().map(|c| c.to_string()).collect();
            header.push("metadata".into());
            header.extend(groups.groups.iter().map(group_column));
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
                Personal::Kept => sink.write(ticket, &groups)?,
                Personal::Masked => sink.write(&masked(ticket), &groups)?,
            }
            written += 1;
        }
    }
    sink.finish()?;
    Ok(written)
}

/// The project's groups as an export shows them: none for a project with only its default
/// group (its export stays as it was before groups), else every group with its tags.
struct ExportGroups {
    groups: Vec<TagGroup>,
    /// Each tag's group by folded tag name.
    group_of: std::collections::HashMap<String, crate::ids::TagGroupId>,
}

impl ExportGroups {
    async fn read<S: TagStore + TagGroupStore>(
        store: &S,
        project: ProjectId,
    ) -> Result<Self, StoreError> {
        let groups = store.list_tag_groups(project).await?;
        if groups.len() < 2 {
            return Ok(Self {
                groups: Vec::new(),
                group_of: Default::default(),
            });
        }
        let group_of = store
            .list_tags(project)
            .await?
            .into_iter()
            .map(|tag| (tag.name.folded(), tag.group_id))
            .collect();
        Ok(Self { groups, group_of })
    }

    /// The ticket's tags group by group, in the groups' order.
    fn split<'a>(&self, tags: &'a [TagName]) -> Vec<(&TagGroup, Vec<&'a str>)> {
        self.groups
            .iter()
            .map(|group| {
                let of_group = tags
                    .iter()
                    .filter(|t| self.group_of.get(&t.folded()) == Some(&group.id))
                    .map(TagName::as_str)
                    .collect();
                (group, of_group)
            })
            .collect()
    }
}

/// A group's CSV column: its name, or `group:NAME` when the name is a fixed column's.
pub fn group_column(group: &TagGroup) -> String {
    let name = group.name.as_str();
    let fixed = CSV_HEADER
        .iter()
        .chain(["metadata"].iter())
        .any(|column| column.eq_ignore_ascii_case(name));
    if fixed {
        format!("group:{name}")
    } else {
        name.to_string()
    }
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
    fn write(
        &mut self,
        labelled: &LabelledTicket,
        groups: &ExportGroups,
    ) -> Result<(), ExportError> {
        let ticket = &labelled.ticket;
        let tags: Vec<&str> = labelled.tags.iter().map(|t| t.as_str()).collect();
        let by_group = groups.split(&labelled.tags);
        match self {
            Sink::Csv(writer) => {
                let mut record: Vec<String> = vec![
                    ticket.source.clone(),
                    ticket.external_id.clone(),
                    ticket.subject.clone(),
                    ticket.body.clone(),
                    tags.join(CSV_TAG_SEPARATOR),
                    ticket.split.as_str().to_string(),
                    ticket.created_at.to_rfc3339(),
                    ticket.metadata.to_string(),
                ];
                record.extend(
                    by_group
                        .iter()
                        .map(|(_, tags)| tags.join(CSV_TAG_SEPARATOR)),
                );
                writer.write_record(&record)?;
            }
            Sink::Jsonl(writer) => {
                let mut line = serde_json::json!({
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
                if !by_group.is_empty()
                    && let Some(fields) = line.as_object_mut()
                {
                    let object: serde_json::Map<String, serde_json::Value> = by_group
                        .iter()
                        .map(|(group, tags)| (group.name.to_string(), serde_json::json!(tags)))
                        .collect();
                    fields.insert("groups".into(), serde_json::Value::Object(object));
                }
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
