//! `tagger import`: streams a CSV or JSON Lines file of tickets into a project in one
//! transaction. A file reader on its own thread hands records to the async writer through a
//! small bounded channel, so memory stays flat whatever the file's size.
//!
//! Tag groups: `ImportOptions::group_columns` names, for some of the project's tag groups, the
//! column that gives each ticket's tags of that group (`--group-column Priority=priority`):
//! one tag for a single-choice group (the whole cell), several for a multi-choice group (the
//! cell split by the label separator, or a JSON list). A group the project does not have is
//! created as single-choice when tags may be created (a new project, or `--create-tags`);
//! otherwise the import fails before it writes anything. A value naming a tag of another
//! group, or a second tag of a single-choice group (from any column), is a bad row.
//!
//! Bad rows: in `abort` mode (the default) the first bad row rolls everything back and is
//! reported; in `skip` mode bad rows are reported with their line number and reason, and
//! every good row is imported.

mod reader;

pub use reader::{
    ColumnMap, FileFormat, FileProblem, LabelCell, RawRecord, RowProblem, open_records,
};

use crate::error::StoreError;
use crate::ids::{TagGroupId, TagId};
use crate::ingest::{BatchError, VerdictError, Verdicts, write_batch};
use crate::names::TagGroupName;
use crate::names::{ProjectName, TagName};
use crate::project::LabelMode;
use crate::split::{DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, StratifiedSplitter};
use crate::store::{ImportRow, ImportWriter, Store};
use crate::tag_group::{GroupChoice, NewTagGroup, TagGroup};
use crate::ticket::{NewTicket, Split, replace_nul_characters};
use serde::Serialize;
use std::io::Read;
use std::str::FromStr;

/// How many rows go to the database in one statement batch.
pub const BATCH_ROWS: usize = 1000;
/// How many row problems a report keeps in full; the rest are only counted.
pub const MAX_REPORTED_PROBLEMS: usize = 1000;

/// Which split imported tickets go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitChoice {
    Train,
    Test,
    /// Seeded and stratified by each ticket's first tag.
    Auto,
}

impl FromStr for SplitChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Self::Train),
            "test" => Ok(Self::Test),
            "auto" => Ok(Self::Auto),
            other => Err(format!(
                "unknown split {other:?} (expected train, test or auto)"
            )),
        }
    }
}

/// What to do with a row that cannot be imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRow {
    /// Roll the whole import back and report the row.
    #[default]
    Abort,
    /// Report the row and import the rest.
    Skip,
}

impl FromStr for OnBadRow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "abort" => Ok(Self::Abort),
            "skip" => Ok(Self::Skip),
            other => Err(format!("unknown choice {other:?} (expected abort or skip)")),
        }
    }
}

/// One `--group-column GROUP=COLUMN`: the column that gives the tags of one tag group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupColumn {
    pub group: TagGroupName,
    pub column: String,
}

impl FromStr for GroupColumn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (group, column) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not GROUP=COLUMN (e.g. Priority=priority)"))?;
        let column = column.trim();
        if column.is_empty() {
            return Err(format!("{s:?} names no column after '='"));
        }
        Ok(Self {
            group: TagGroupName::parse(group.trim())
                .map_err(|e| format!("group {group:?}: {e}"))?,
            column: column.to_string(),
        })
    }
}

/// Everything `tagger import` takes.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub project: ProjectName,
    pub format: FileFormat,
    pub columns: ColumnMap,
    /// Splits a label cell into several tags; without it the whole cell is one tag.
    pub label_separator: Option<String>,
    /// Columns that give the tags of one tag group each (see the module's documentation);
    /// `import_file` reads them itself, so `columns.groups` is left empty.
    pub group_columns: Vec<GroupColumn>,
    /// Where the tickets came from; with no id column, ids are `file name:line`.
    pub source: String,
    /// Used in `file name:line` ids and in the labels' `set_by`.
    pub file_name: String,
    pub split: SplitChoice,
    pub on_bad_row: OnBadRow,
    /// Allow tags the existing project does not have yet (a new project always may).
    pub create_tags: bool,
    /// Label mode of a project the import creates; by default single-label unless a
    /// separator is given.
    pub label_mode: Option<LabelMode>,
    pub seed: u64,
    pub test_fraction: f64,
}

impl ImportOptions {
    /// Options with the defaults `tagger import` uses.
    pub fn new(
        project: ProjectName,
        format: FileFormat,
        columns: ColumnMap,
        file_name: &str,
    ) -> Self {
        Self {
            project,
            format,
            columns,
            label_separator: None,
            group_columns: Vec::new(),
            source: "import".into(),
            file_name: file_name.into(),
            split: SplitChoice::Auto,
            on_bad_row: OnBadRow::Abort,
            create_tags: false,
            label_mode: None,
            seed: DEFAULT_SPLIT_SEED,
            test_fraction: DEFAULT_TEST_FRACTION,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    pub project: String,
    pub project_created: bool,
    pub rows_read: u64,
    pub created: u64,
    pub updated: u64,
    pub labels: u64,
    pub train: u64,
    pub test: u64,
    pub tags_created: Vec<String>,
    /// Tag groups the import created (for `group_columns` the project did not have).
    pub groups_created: Vec<String>,
    /// Rows left out (skip mode), the first `MAX_REPORTED_PROBLEMS` of them.
    pub skipped: Vec<RowProblem>,
    pub skipped_count: u64,
}

/// Why an import failed. Batches committed before the failure stay (see `import_file`);
/// a bad row says how many rows that was.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    File(#[from] FileProblem),
    #[error("line {}: {} ({})", .problem.line, .problem.reason, bad_row_outcome(*.imported))]
    BadRow {
        problem: RowProblem,
        /// Rows of earlier batches, already committed.
        imported: u64,
    },
    /// A group column names a group the project does not have, and tags may not be created.
    #[error(
        "project {project:?} has no tag group named {group:?}: add it on the Taxonomy page, or allow creating tags (--create-tags) to have the import create it as a single-choice group"
    )]
    UnknownGroup { project: String, group: String },
    #[error("tag group {0:?} is given two columns")]
    GroupTwice(String),
    #[error("the file has a header but no rows")]
    NoRows,
    #[error("every row was bad; nothing was imported (first: line {}: {})", .0.line, .0.reason)]
    AllRowsBad(RowProblem),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The project's model failed on a batch; the batches before it were imported.
    #[error(transparent)]
    Tagging(#[from] VerdictError),
}

fn bad_row_outcome(imported: u64) -> String {
    if imported == 0 {
        "nothing was imported; use --on-bad-row skip to import the other rows".into()
    } else {
        format!(
            "the {imported} rows before it were imported; fix the line and import the file \
             again (stored tickets are updated, not duplicated), or use --on-bad-row skip"
        )
    }
}

/// Imports a file into the store. Rows are written in batches, each committed on its own so
/// a long import never locks other writers out (SQLite has one writer at a time; see
/// docs/operations.md, "Imports and concurrency"). A file that cannot be read or has no rows
/// stores nothing; a bad row in abort mode or a failure stops the import there, keeping the
/// batches already committed — re-importing the same file finishes it, since tickets are
/// upserted by (source, external id) and labels replaced, not added twice.
pub async fn import_file<S: Store, V: Verdicts, R: Read + Send + 'static>(
    store: &S,
    input: R,
    options: &ImportOptions,
    verdicts: &V,
) -> Result<ImportReport, ImportError> {
    let mut columns = options.columns.clone();
    columns.groups = options
        .group_columns
        .iter()
        .map(|g| g.column.clone())
        .collect();
    let records = open_records(input, options.format, columns)?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Vec<_>, FileProblem>>(4);
    // csv and std::io block; keep them off the async workers.
    let reading = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        for record in records {
            match record {
                Ok(record) => {
                    batch.push(record);
                    if batch.len() == BATCH_ROWS
                        && sender
                            .blocking_send(Ok(std::mem::take(&mut batch)))
                            .is_err()
                    {
                        return;
                    }
                }
                Err(problem) => {
                    let _ = sender.blocking_send(Err(problem));
                    return;
                }
            }
        }
        if !batch.is_empty() {
            let _ = sender.blocking_send(Ok(batch));
        }
    });

    let existing = store.project_by_name(&options.project).await?;
    let mode = options
        .label_mode
        .unwrap_or(if options.label_separator.is_some() {
            LabelMode::Multi
        } else {
            LabelMode::Single
        });
    let set_by = format!("import:{}", options.file_name);
    let mut writer = store
        .begin_import(&options.project, Some(mode), &set_by)
        .await?;
    let may_create_tags = existing.is_none() || options.create_tags;
    let mut report = ImportReport {
        project: writer.project().name.to_string(),
        project_created: existing.is_none(),
        ..ImportReport::default()
    };
    // Groups are settled before any row: a group the project lacks fails the import while
    // nothing is written (dropping the writer rolls back a project it created).
    let mut groups: Vec<TagGroup> = Vec::with_capacity(options.group_columns.len());
    for column in &options.group_columns {
        let folded = column.group.folded();
        let found = writer
            .groups()
            .iter()
            .find(|g| g.name.folded() == folded)
            .cloned();
        let group = match found {
            Some(group) => group,
            None if may_create_tags => {
                report.groups_created.push(column.group.to_string());
                writer
                    .create_tag_group(&NewTagGroup {
                        name: column.group.clone(),
                        choice: GroupChoice::Single,
                    })
                    .await?
            }
            None => {
                return Err(ImportError::UnknownGroup {
                    project: writer.project().name.to_string(),
                    group: column.group.to_string(),
                });
            }
        };
        if groups.iter().any(|g| g.id == group.id) {
            return Err(ImportError::GroupTwice(group.name.to_string()));
        }
        groups.push(group);
    }
    let mut converter = RowConverter {
        options,
        splitter: StratifiedSplitter::new(options.seed, options.test_fraction),
        may_create_tags,
        single_label: writer.project().label_mode == LabelMode::Single,
        groups,
    };

    while let Some(batch) = receiver.recv().await {
        let mut rows = Vec::with_capacity(BATCH_ROWS);
        for record in batch? {
            report.rows_read += 1;
            let converted = match record {
                Ok(record) => converter.convert(record, &mut writer, &mut report).await?,
                Err(problem) => Err(problem),
            };
            match converted {
                Ok(row) => {
                    match row.ticket.split {
                        Split::Train => report.train += 1,
                        Split::Test => report.test += 1,
                    }
                    rows.push(row);
                }
                Err(problem) if options.on_bad_row == OnBadRow::Abort => {
                    return Err(ImportError::BadRow {
                        problem,
                        imported: report.train + report.test - rows.len() as u64,
                    });
                }
                Err(problem) => {
                    report.skipped_count += 1;
                    if report.skipped.len() < MAX_REPORTED_PROBLEMS {
                        report.skipped.push(problem);
                    }
                }
            }
        }
        write_batch(&mut writer, rows, verdicts)
            .await
            .map_err(|error| match error {
                BatchError::Store(error) => ImportError::Store(error),
                BatchError::Tagging(error) => ImportError::Tagging(error),
            })?;
    }
    reading
        .await
        .map_err(|e| FileProblem::Io(std::io::Error::other(e.to_string())))?;

    if report.rows_read == 0 {
        return Err(ImportError::NoRows);
    }
    if report.skipped_count == report.rows_read {
        return Err(ImportError::AllRowsBad(report.skipped[0].clone()));
    }
    let counts = writer.commit().await?;
    report.created = counts.created;
    report.updated = counts.updated;
    report.labels = counts.labels;
    Ok(report)
}

/// Turns raw records into rows the store can write, creating tags as allowed.
struct RowConverter<'a> {
    options: &'a ImportOptions,
    splitter: StratifiedSplitter,
    may_create_tags: bool,
    single_label: bool,
    /// The groups of `options.group_columns`, in their order.
    groups: Vec<TagGroup>,
}

impl RowConverter<'_> {
    /// The outer error is a database failure (fatal); the inner one a bad row.
    async fn convert<W: ImportWriter>(
        &mut self,
        record: RawRecord,
        writer: &mut W,
        report: &mut ImportReport,
    ) -> Result<Result<ImportRow, RowProblem>, StoreError> {
        let line = record.line;
        let problem = |reason: String| RowProblem { line, reason };
        let names = match self.tag_names(&record.labels) {
            Ok(names) => names,
            Err(reason) => return Ok(Err(problem(reason))),
        };
        if self.single_label && names.len() > 1 {
            return Ok(Err(problem(format!(
                "{} tags given but project {:?} is single-label",
                names.len(),
                writer.project().name.as_str()
            ))));
        }
        let mut tags: Vec<TagId> = Vec::with_capacity(names.len());
        let mut chosen: Vec<(TagId, TagName)> = Vec::with_capacity(names.len());
        // Group columns first: a tag they name is created in its group, so the label column
        // of the same file (an export's `tags`, which repeats every tag) then finds it there
        // instead of creating it in the default group.
        let mut group_names: Vec<TagName> = Vec::new();
        for (group, cell) in self.groups.iter().zip(&record.group_labels) {
            let given = match self.group_tag_names(group, cell) {
                Ok(given) => given,
                Err(reason) => return Ok(Err(problem(reason))),
            };
            for name in given {
                let id = match writer.tags().get(&name.folded()).copied() {
                    Some(id) => {
                        let home = writer.tag_groups().get(&id).copied();
                        if home != Some(group.id) {
                            return Ok(Err(problem(format!(
                                "tag {:?} is in group {:?}, not in {:?}",
                                name.as_str(),
                                group_name(writer.groups(), home),
                                group.name.as_str()
                            ))));
                        }
                        id
                    }
                    None if self.may_create_tags => {
                        report.tags_created.push(name.to_string());
                        writer.create_tag_in(&name, group.id).await?
                    }
                    None => {
                        return Ok(Err(problem(format!(
                            "unknown tag {:?} in group {:?}: project {:?} has no such tag (add it first, or pass --create-tags)",
                            name.as_str(),
                            group.name.as_str(),
                            writer.project().name.as_str()
                        ))));
                    }
                };
                if !tags.contains(&id) {
                    tags.push(id);
                    chosen.push((id, name.clone()));
                    group_names.push(name);
                }
            }
        }
        for name in &names {
            let id = match writer.tags().get(&name.folded()) {
                Some(id) => *id,
                None if self.may_create_tags => {
                    report.tags_created.push(name.to_string());
                    writer.create_tag(name).await?
                }
                None => {
                    return Ok(Err(problem(format!(
                        "unknown tag {:?}: project {:?} has no such tag (add it first, or pass --create-tags)",
                        name.as_str(),
                        writer.project().name.as_str()
                    ))));
                }
            };
            if !tags.contains(&id) {
                tags.push(id);
                chosen.push((id, name.clone()));
            }
        }
        // The split is stratified by the first tag: the label column's, else the groups'.
        let mut names = names;
        names.extend(group_names);
        if let Some(reason) = single_choice_clash(writer.groups(), writer.tag_groups(), &chosen) {
            return Ok(Err(problem(reason)));
        }

        let (subject, body) = match record.texts.as_slice() {
            [only] => (String::new(), only.trim().to_string()),
            [subject, rest @ ..] => (
                subject.trim().to_string(),
                rest.iter()
                    .map(|s| s.trim())
                    .collect::<Vec<_>>()
                    .join("\n\n"),
            ),
            [] => (String::new(), String::new()),
        };
        let external_id = match record.id {
            Some(id) => id.trim().to_string(),
            None => format!("{}:{}", self.options.file_name, line),
        };
        let reserved = record.reserved;
        let split = match (self.options.split, reserved.split.as_deref()) {
            (SplitChoice::Train, _) => Split::Train,
            (SplitChoice::Test, _) => Split::Test,
            // A file that says which split a ticket is in (an export) keeps it.
            (SplitChoice::Auto, Some(given)) => match given.parse() {
                Ok(split) => split,
                Err(reason) => return Ok(Err(problem(reason))),
            },
            (SplitChoice::Auto, None) => self
                .splitter
                .assign(names.first().map(TagName::as_str), &external_id),
        };
        let created_at = match reserved
            .created_at
            .as_deref()
            .map(chrono::DateTime::parse_from_rfc3339)
        {
            None => None,
            Some(Ok(at)) => Some(at.with_timezone(&chrono::Utc)),
            Some(Err(e)) => {
                return Ok(Err(problem(format!(
                    "created_at is not an RFC 3339 date and time: {e}"
                ))));
            }
        };
        let ticket = NewTicket {
            source: reserved
                .source
                .unwrap_or_else(|| self.options.source.clone()),
            external_id,
            subject: replace_nul_characters(subject),
            body: replace_nul_characters(body),
            metadata: serde_json::Value::Object(record.metadata),
            created_at,
            split,
        };
        if let Err(error) = ticket.validate() {
            return Ok(Err(problem(error.to_string())));
        }
        Ok(Ok(ImportRow {
            ticket,
            tags,
            verdict: None,
        }))
    }

    /// The tag names a group column's cell gives: the whole cell for a single-choice group (a
    /// list of more than one is refused), the cell split by the label separator for a
    /// multi-choice one.
    fn group_tag_names(&self, group: &TagGroup, cell: &LabelCell) -> Result<Vec<TagName>, String> {
        let raw: Vec<&str> = match (cell, group.choice, &self.options.label_separator) {
            (LabelCell::Missing, _, _) => Vec::new(),
            (LabelCell::Text(text), GroupChoice::Multi, Some(separator)) => {
                text.split(separator.as_str()).collect()
            }
            (LabelCell::Text(text), _, _) => vec![text.as_str()],
            (LabelCell::List(items), _, _) => items.iter().map(String::as_str).collect(),
        };
        let names = raw
            .into_iter()
            .filter(|name| !name.trim().is_empty())
            .map(|name| TagName::parse(name.trim()).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if group.choice == GroupChoice::Single && names.len() > 1 {
            return Err(format!(
                "group {:?} is single-choice but its column gives {} tags",
                group.name.as_str(),
                names.len()
            ));
        }
        Ok(names)
    }

    fn tag_names(&self, cell: &LabelCell) -> Result<Vec<TagName>, String> {
        let raw: Vec<&str> = match (cell, &self.options.label_separator) {
            (LabelCell::Missing, _) => Vec::new(),
            (LabelCell::Text(text), Some(separator)) => text.split(separator.as_str()).collect(),
            (LabelCell::Text(text), None) => vec![text.as_str()],
            (LabelCell::List(items), _) => items.iter().map(String::as_str).collect(),
        };
        raw.into_iter()
            .filter(|name| !name.trim().is_empty())
            .map(|name| TagName::parse(name).map_err(|e| e.to_string()))
            .collect()
    }
}

/// The name of a group by id, for messages.
fn group_name(groups: &[TagGroup], id: Option<TagGroupId>) -> String {
    id.and_then(|id| groups.iter().find(|g| g.id == id))
        .map_or_else(|| "?".to_string(), |g| g.name.to_string())
}

/// Why `chosen` cannot go together: two of them in one single-choice group (the store
/// refuses such a set from people; an import must not write one either). `None` when they
/// can.
fn single_choice_clash(
    groups: &[TagGroup],
    group_of: &std::collections::HashMap<TagId, TagGroupId>,
    chosen: &[(TagId, TagName)],
) -> Option<String> {
    for (index, (tag, name)) in chosen.iter().enumerate() {
        let Some(group) = group_of.get(tag) else {
            continue;
        };
        let Some(single) = groups
            .iter()
            .find(|g| g.id == *group && g.choice == GroupChoice::Single)
        else {
            continue;
        };
        if let Some((_, other)) = chosen[..index]
            .iter()
            .find(|(other, _)| group_of.get(other) == Some(group))
        {
            return Some(format!(
                "group {:?} is single-choice: give at most one of its tags (got {:?} and {:?})",
                single.name.as_str(),
                other.as_str(),
                name.as_str()
            ));
        }
    }
    None
}
