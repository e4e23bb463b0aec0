//! Reading ticket files one record at a time: CSV (RFC 4180) and JSON Lines. Only the
//! current record is in memory, so a 1 GB file imports in constant memory. Problems with a
//! record are reported with its line number and never stop the reader; problems with the
//! file as a whole (empty, missing columns) stop it before anything is written.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read};
use std::str::FromStr;

/// The formats `tagger import` and `tagger export` speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Jsonl,
}

impl FileFormat {
    /// Guesses the format from a file name: `.jsonl`/`.ndjson` is JSON Lines, anything else CSV.
    pub fn from_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson") => Self::Jsonl,
            _ => Self::Csv,
        }
    }
}

impl FromStr for FileFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(Self::Csv),
            "jsonl" => Ok(Self::Jsonl),
            other => Err(format!("unknown format {other:?} (expected csv or jsonl)")),
        }
    }
}

/// Which fields of a record to read, by column name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap {
    pub text: Vec<String>,
    pub label: Option<String>,
    pub id: Option<String>,
    /// Columns that each give the tags of one tag group (`ImportOptions::group_columns`
    /// names the groups, in the same order).
    pub groups: Vec<String>,
}

/// One record's fields, still untrusted.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// The line the record starts on, counting the header as line 1.
    pub line: u64,
    pub texts: Vec<String>,
    /// The label cell: a string, or for JSON Lines possibly a list.
    pub labels: LabelCell,
    /// The cells of `ColumnMap::groups`, in its order.
    pub group_labels: Vec<LabelCell>,
    pub id: Option<String>,
    /// The reserved columns `source`, `split` and `created_at`, as an export writes them.
    pub reserved: ReservedFields,
    /// Every other column, kept as metadata.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Columns with a fixed meaning when a file has them (and they are not named as text,
/// label or id columns): they make an export re-import as the same tickets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReservedFields {
    pub source: Option<String>,
    pub split: Option<String>,
    pub created_at: Option<String>,
}

impl ReservedFields {
    /// Takes `value` if `name` is a reserved column; gives it back otherwise.
    fn take(&mut self, name: &str, value: String) -> Option<String> {
        let slot = match name {
            "source" => &mut self.source,
            "split" => &mut self.split,
            "created_at" => &mut self.created_at,
            _ => return Some(value),
        };
        if !value.trim().is_empty() {
            *slot = Some(value.trim().to_string());
        }
        None
    }
}

/// What a record's label column held.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelCell {
    Missing,
    Text(String),
    List(Vec<String>),
}

/// A record that could not be read, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    pub line: u64,
    pub reason: String,
}

/// A file that cannot be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    #[error("the file is empty: expected a header row naming the columns")]
    Empty,
    #[error("column {column:?} not found; the file's columns are: {available}")]
    MissingColumn { column: String, available: String },
    #[error("the same column {0:?} is named twice in the options")]
    DuplicateColumn(String),
    #[error("no text column given: name at least one with --text-column")]
    NoTextColumn,
    #[error("reading the file failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("reading the CSV failed at line {line}: {reason}")]
    Csv { line: u64, reason: String },
}

/// Records or per-record problems, in file order.
pub type RecordResult = Result<RawRecord, RowProblem>;

/// Opens a reader of the chosen format. CSV headers are checked here.
pub fn open_records<R: Read + Send + 'static>(
    input: R,
    format: FileFormat,
    columns: ColumnMap,
) -> Result<Box<dyn Iterator<Item = Result<RecordResult, FileProblem>> + Send>, FileProblem> {
    check_options(&columns)?;
    match format {
        FileFormat::Csv => Ok(Box::new(CsvRecords::new(input, columns)?)),
        FileFormat::Jsonl => Ok(Box::new(JsonlRecords::new(input, columns))),
    }
}

fn check_options(columns: &ColumnMap) -> Result<(), FileProblem> {
    if columns.text.is_empty() {
        return Err(FileProblem::NoTextColumn);
    }
    let mut named: Vec<&String> = columns.text.iter().collect();
    named.extend(columns.label.iter());
    named.extend(columns.id.iter());
    named.extend(columns.groups.iter());
    for (i, name) in named.iter().enumerate() {
        if named[..i].contains(name) {
            return Err(FileProblem::DuplicateColumn((*name).clone()));
        }
    }
    Ok(())
}

struct CsvRecords<R: Read> {
    reader: csv::Reader<R>,
    headers: Vec<String>,
    text_index: Vec<usize>,
    label_index: Option<usize>,
    group_index: Vec<usize>,
    id_index: Option<usize>,
    record: csv::ByteRecord,
}

impl<R: Read> CsvRecords<R> {
    fn new(input: R, columns: ColumnMap) -> Result<Self, FileProblem> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            // Only LF ends a record, so csv's line count is exact for CRLF files too (with
            // CRLF as terminator it counts the LF on the next record, one line early); the
            // CR it leaves on the last field is stripped in `field`.
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(input);
        let headers: Vec<String> = reader
            .byte_headers()
            .map_err(|e| csv_problem(&e))?
            .iter()
            .map(|h| {
                String::from_utf8_lossy(h)
                    .trim()
                    .trim_start_matches('\u{feff}')
                    .to_string()
            })
            .collect();
        if headers.is_empty() || headers.iter().all(String::is_empty) {
            return Err(FileProblem::Empty);
        }
        let find = |column: &String| {
            headers
                .iter()
                .position(|h| h == column)
                .ok_or_else(|| FileProblem::MissingColumn {
                    column: column.clone(),
                    available: headers.join(", "),
                })
        };
        let text_index = columns
            .text
            .iter()
            .map(find)
            .collect::<Result<Vec<_>, _>>()?;
        let label_index = columns.label.as_ref().map(find).transpose()?;
        let id_index = columns.id.as_ref().map(find).transpose()?;
        let group_index = columns
            .groups
            .iter()
            .map(find)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            reader,
            headers,
            text_index,
            label_index,
            group_index,
            id_index,
            record: csv::ByteRecord::new(),
        })
    }

    fn field(&self, index: usize, line: u64) -> Result<String, RowProblem> {
        let bytes = self.record.get(index).unwrap_or_default();
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        String::from_utf8(bytes.to_vec()).map_err(|e| RowProblem {
            line,
            reason: format!(
                "column {:?} is not valid UTF-8 (bad byte at offset {})",
                self.headers[index],
                e.utf8_error().valid_up_to()
            ),
        })
    }

    fn convert(&self, line: u64) -> RecordResult {
        let texts = self
            .text_index
            .iter()
            .map(|&i| self.field(i, line))
            .collect::<Result<Vec<_>, _>>()?;
        let labels = match self.label_index {
            Some(i) => LabelCell::Text(self.field(i, line)?),
            None => LabelCell::Missing,
        };
        let group_labels = self
            .group_index
            .iter()
            .map(|&i| self.field(i, line).map(LabelCell::Text))
            .collect::<Result<Vec<_>, _>>()?;
        let id = self.id_index.map(|i| self.field(i, line)).transpose()?;
        let mut metadata = serde_json::Map::new();
        let mut reserved = ReservedFields::default();
        for (i, header) in self.headers.iter().enumerate() {
            let used = self.text_index.contains(&i)
                || self.label_index == Some(i)
                || self.group_index.contains(&i)
                || self.id_index == Some(i);
            if used || header.is_empty() {
                continue;
            }
            let Some(value) = reserved.take(header, self.field(i, line)?) else {
                continue;
            };
            // An exported file carries metadata as one JSON column; merge it back.
            if header == "metadata"
                && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&value)
            {
                metadata.extend(map);
                continue;
            }
            if !value.is_empty() {
                metadata.insert(header.clone(), serde_json::Value::String(value));
            }
        }
        Ok(RawRecord {
            line,
            texts,
            labels,
            group_labels,
            id,
            reserved,
            metadata,
        })
    }
}

fn csv_problem(error: &csv::Error) -> FileProblem {
    let line = error.position().map_or(0, csv::Position::line);
    match error.kind() {
        csv::ErrorKind::Io(e) => FileProblem::Io(std::io::Error::new(e.kind(), e.to_string())),
        _ => FileProblem::Csv {
            line,
            reason: error.to_string(),
        },
    }
}

impl<R: Read> Iterator for CsvRecords<R> {
    type Item = Result<RecordResult, FileProblem>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut record = std::mem::take(&mut self.record);
        let read = self.reader.read_byte_record(&mut record);
        self.record = record;
        match read {
            Ok(false) => None,
            Ok(true) => {
                let line = self.record.position().map_or(0, csv::Position::line);
                Some(Ok(self.convert(line)))
            }
            Err(error) => match error.kind() {
                csv::ErrorKind::UnequalLengths {
                    pos,
                    expected_len,
                    len,
                } => Some(Ok(Err(RowProblem {
                    line: pos.as_ref().map_or(0, csv::Position::line),
                    reason: format!(
                        "malformed CSV: {len} fields where the header has {expected_len} \
                         (an unescaped quote or a stray separator?)"
                    ),
                }))),
                _ => Some(Err(csv_problem(&error))),
            },
        }
    }
}

struct JsonlRecords<R: Read> {
    reader: BufReader<R>,
    columns: ColumnMap,
    line: u64,
    buffer: Vec<u8>,
}

impl<R: Read> JsonlRecords<R> {
    fn new(input: R, columns: ColumnMap) -> Self {
        Self {
            reader: BufReader::with_capacity(256 * 1024, input),
            columns,
            line: 0,
            buffer: Vec::new(),
        }
    }

    fn convert(&self, line: u64) -> RecordResult {
        let problem = |reason: String| RowProblem { line, reason };
        let text = std::str::from_utf8(&self.buffer).map_err(|e| {
            problem(format!(
                "not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ))
        })?;
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| problem(format!("invalid JSON: {e}")))?;
        let serde_json::Value::Object(mut object) = value else {
            return Err(problem("expected a JSON object on each line".into()));
        };
        let mut texts = Vec::with_capacity(self.columns.text.len());
        for column in &self.columns.text {
            match object.remove(column) {
                Some(serde_json::Value::String(s)) => texts.push(s),
                Some(serde_json::Value::Null) | None => {
                    return Err(problem(format!("no field {column:?}")));
                }
                Some(other) => texts.push(other.to_string()),
            }
        }
        let label_cell = |value: Option<serde_json::Value>| match value {
            None | Some(serde_json::Value::Null) => Ok(LabelCell::Missing),
            Some(serde_json::Value::String(s)) => Ok(LabelCell::Text(s)),
            Some(serde_json::Value::Array(items)) => Ok(LabelCell::List(
                items
                    .into_iter()
                    .map(|item| match item {
                        serde_json::Value::String(s) => Ok(s),
                        other => Err(problem(format!("label {other} is not a string"))),
                    })
                    .collect::<Result<_, _>>()?,
            )),
            Some(other) => Err(problem(format!(
                "labels {other} are not a string or a list"
            ))),
        };
        let labels = label_cell(self.columns.label.as_ref().and_then(|c| object.remove(c)))?;
        // An export's `groups` object (group name → tags) is bookkeeping, not metadata; a
        // group column not found at the top level is looked up there.
        let mut nested = match object.get("groups") {
            Some(serde_json::Value::Object(_)) => match object.remove("groups") {
                Some(serde_json::Value::Object(nested)) => nested,
                _ => serde_json::Map::new(),
            },
            _ => serde_json::Map::new(),
        };
        let group_labels = self
            .columns
            .groups
            .iter()
            .map(|c| label_cell(object.remove(c).or_else(|| nested.remove(c))))
            .collect::<Result<Vec<_>, _>>()?;
        let id = match self.columns.id.as_ref().and_then(|c| object.remove(c)) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(other) => Some(other.to_string()),
        };
        let mut reserved = ReservedFields::default();
        for name in ["source", "split", "created_at"] {
            if let Some(serde_json::Value::String(value)) = object.remove(name) {
                reserved.take(name, value);
            }
        }
        // An export's bookkeeping, not the ticket's own metadata.
        object.remove("id");
        object.remove("labels");
        if let Some(serde_json::Value::Object(nested)) = object.remove("metadata") {
            object.extend(nested);
        }
        Ok(RawRecord {
            line,
            texts,
            labels,
            group_labels,
            id,
            reserved,
            metadata: object,
        })
    }
}

impl<R: Read> Iterator for JsonlRecords<R> {
    type Item = Result<RecordResult, FileProblem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buffer.clear();
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(_) => {
                    self.line += 1;
                    if self.buffer.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(Ok(self.convert(self.line)));
                }
                Err(e) => return Some(Err(FileProblem::Io(e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(text: &[&str], label: Option<&str>) -> ColumnMap {
        ColumnMap {
            text: text.iter().map(|s| s.to_string()).collect(),
            label: label.map(str::to_string),
            id: None,
            groups: Vec::new(),
        }
    }

    fn read_all(input: &'static [u8], format: FileFormat, map: ColumnMap) -> Vec<RecordResult> {
        open_records(input, format, map)
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn csv_with_crlf_and_quotes_reads_each_record_with_its_line() {
        let records = read_all(
            b"text,category\r\n\"hello, world\",a\r\n\"two\r\nlines\",b?\r\n",
            FileFormat::Csv,
            columns(&["text"], Some("category")),
        );
        let first = records[0].as_ref().unwrap();
        assert_eq!(first.line, 2);
        assert_eq!(first.texts, ["hello, world"]);
        let second = records[1].as_ref().unwrap();
        assert_eq!(second.line, 3);
        assert_eq!(second.labels, LabelCell::Text("b?".into()));
    }

    #[test]
    fn a_missing_column_names_the_columns_that_exist() {
        let error = open_records(
            &b"subject,body\nx,y\n"[..],
            FileFormat::Csv,
            columns(&["text"], None),
        )
        .err()
        .unwrap();
        assert_eq!(
            error.to_string(),
            "column \"text\" not found; the file's columns are: subject, body"
        );
    }

    #[test]
    fn an_empty_file_is_refused() {
        let error = open_records(&b""[..], FileFormat::Csv, columns(&["text"], None))
            .err()
            .unwrap();
        assert!(matches!(error, FileProblem::Empty));
    }

    #[test]
    fn non_utf8_bytes_are_a_problem_of_that_row_only() {
        let records = read_all(
            b"text\nfine\nbad \xff byte\nfine again\n",
            FileFormat::Csv,
            columns(&["text"], None),
        );
        assert!(records[0].is_ok());
        let problem = records[1].as_ref().unwrap_err();
        assert_eq!(problem.line, 3);
        assert!(
            problem.reason.contains("not valid UTF-8"),
            "{}",
            problem.reason
        );
        assert!(records[2].is_ok());
    }

    #[test]
    fn a_row_with_too_many_fields_is_reported_and_reading_goes_on() {
        let records = read_all(
            b"text,label\na,b\nc,d,e\nf,g\n",
            FileFormat::Csv,
            columns(&["text"], Some("label")),
        );
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].as_ref().unwrap_err().line, 3);
        assert!(records[2].is_ok());
    }

    #[test]
    fn other_csv_columns_become_metadata() {
        let records = read_all(
            b"text,priority,metadata\nx,high,\"{\"\"product\"\":\"\"App\"\"}\"\n",
            FileFormat::Csv,
            columns(&["text"], None),
        );
        let record = records[0].as_ref().unwrap();
        assert_eq!(record.metadata["priority"], "high");
        assert_eq!(record.metadata["product"], "App");
    }

    #[test]
    fn jsonl_reads_lists_of_labels_and_reports_bad_lines() {
        let records = read_all(
            b"{\"subject\":\"s\",\"body\":\"b\",\"tags\":[\"Bug\",\"Billing\"]}\n\nnot json\n{\"subject\":\"s\"}\n",
            FileFormat::Jsonl,
            columns(&["subject", "body"], Some("tags")),
        );
        assert_eq!(
            records[0].as_ref().unwrap().labels,
            LabelCell::List(vec!["Bug".into(), "Billing".into()])
        );
        assert_eq!(records[1].as_ref().unwrap_err().line, 3);
        let missing = records[2].as_ref().unwrap_err();
        assert_eq!(missing.line, 4);
        assert!(missing.reason.contains("no field \"body\""));
    }
}
