//! Property tests (issue 13) of `tagger import`'s readers: arbitrary bytes as CSV or JSON
//! Lines give records or per-line problems, in line order, and never a panic; what the
//! `csv` and `serde_json` writers produce reads back field for field; and a whole import of
//! hostile rows into SQLite accounts for every row, stored or reported.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::ProjectName;
use datasets::import::{
    ColumnMap, FileFormat, ImportError, ImportOptions, LabelCell, OnBadRow, RawRecord, import_file,
    open_records,
};
use datasets::test_db::TestDatabase;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn format() -> impl Strategy<Value = FileFormat> {
    prop::sample::select(vec![FileFormat::Csv, FileFormat::Jsonl])
}

/// Column maps over a few names, so some exist in generated files and some do not.
fn columns() -> impl Strategy<Value = ColumnMap> {
    let name = prop::sample::select(vec!["text", "subject", "body", "label", "id", "", "x"])
        .prop_map(str::to_string);
    (
        prop::collection::vec(name.clone(), 0..3),
        prop::option::of(name.clone()),
        prop::option::of(name),
    )
        .prop_map(|(text, label, id)| ColumnMap {
            text,
            label,
            id,
            groups: Vec::new(),
        })
}

/// Bytes that look like a ticket file often enough to get past the header.
fn file_bytes() -> impl Strategy<Value = Vec<u8>> {
    let header = prop::sample::select(vec![
        "text,label,id\n",
        "subject,body,label\r\n",
        "\u{feff}text\n",
        "",
    ]);
    let line = prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        any::<Vec<u8>>(),
        Just(b"\"unterminated,quote\n".to_vec()),
        Just(br#"{"text":"t","label":["a",1],"id":7,"metadata":{"k":"v"}}"#.to_vec()),
        Just(br#"{"subject":"s","body":null,"label":{}}"#.to_vec()),
        Just(b"a,b,c,d,e\n".to_vec()),
    ];
    (header, prop::collection::vec(line, 0..12)).prop_map(|(header, lines)| {
        let mut bytes = header.as_bytes().to_vec();
        for line in lines {
            bytes.extend(line);
            bytes.push(b'\n');
        }
        bytes
    })
}

/// Reads every record, stopping at a problem with the whole file as the importer does.
fn read(bytes: Vec<u8>, format: FileFormat, columns: ColumnMap) -> Vec<Result<RawRecord, u64>> {
    let limit = bytes.len() + 2;
    let Ok(records) = open_records(std::io::Cursor::new(bytes), format, columns) else {
        return Vec::new();
    };
    let mut read = Vec::new();
    for record in records {
        let Ok(record) = record else { break };
        read.push(record.map_err(|problem| problem.line));
        // Every record or problem takes at least one line of the file.
        assert!(read.len() <= limit, "the reader does not advance");
    }
    read
}

fn line(record: &Result<RawRecord, u64>) -> u64 {
    match record {
        Ok(record) => record.line,
        Err(line) => *line,
    }
}

/// Text a person might put in a cell: anything but a carriage return, which the reader drops
/// from the end of a line's last field (files written on Windows end lines with CR LF).
fn cell() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| s.replace('\r', ""))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_give_records_or_problems_in_line_order(
        bytes in prop_oneof![file_bytes(), any::<Vec<u8>>()],
        format in format(),
        columns in columns(),
    ) {
        let records = read(bytes, format, columns);
        let first_line = if format == FileFormat::Csv { 2 } else { 1 };
        let mut previous = first_line - 1;
        for record in &records {
            prop_assert!(line(record) > previous, "lines {previous} then {}", line(record));
            previous = line(record);
        }
    }

    #[test]
    fn csv_written_by_the_csv_crate_reads_back_field_for_field(
        rows in prop::collection::vec((cell(), cell(), cell(), cell()), 1..8),
    ) {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(["text", "label", "id", "priority"]).unwrap();
        for (text, label, id, priority) in &rows {
            writer.write_record([text, label, id, priority]).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let columns = ColumnMap { text: vec!["text".into()], label: Some("label".into()), id: Some("id".into()), groups: Vec::new() };
        let records = read(bytes, FileFormat::Csv, columns);
        prop_assert_eq!(records.len(), rows.len());
        for (record, (text, label, id, priority)) in records.iter().zip(&rows) {
            let record = record.as_ref().unwrap();
            prop_assert_eq!(&record.texts, &vec![text.clone()]);
            prop_assert_eq!(&record.labels, &LabelCell::Text(label.clone()));
            prop_assert_eq!(record.id.as_ref(), Some(id));
            let kept = record.metadata.get("priority").and_then(|v| v.as_str());
            prop_assert_eq!(kept, Some(priority.as_str()).filter(|p| !p.is_empty()));
        }
    }

    #[test]
    fn json_lines_written_by_serde_json_read_back_field_for_field(
        rows in prop::collection::vec((cell(), prop::collection::vec(cell(), 0..4), cell()), 1..8),
    ) {
        let mut bytes = Vec::new();
        for (text, labels, id) in &rows {
            serde_json::to_writer(&mut bytes, &serde_json::json!({"text": text, "tags": labels, "key": id, "priority": 1})).unwrap();
            bytes.extend(b"\r\n");
        }
        let columns = ColumnMap { text: vec!["text".into()], label: Some("tags".into()), id: Some("key".into()), groups: Vec::new() };
        let records = read(bytes, FileFormat::Jsonl, columns);
        prop_assert_eq!(records.len(), rows.len());
        for (record, (text, labels, id)) in records.iter().zip(&rows) {
            let record = record.as_ref().unwrap();
            prop_assert_eq!(&record.texts, &vec![text.clone()]);
            prop_assert_eq!(&record.labels, &LabelCell::List(labels.clone()));
            prop_assert_eq!(record.id.as_ref(), Some(id));
            prop_assert_eq!(&record.metadata["priority"], &serde_json::json!(1));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn deeply_nested_json_lines_and_metadata_cells_are_problems_or_records(depth in 0..5000usize) {
        // A stack overflow would abort the import, not fail one row: nesting must be refused
        // before anything walks it recursively.
        let nested = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let jsonl = format!("{{\"text\":\"t\",\"metadata\":{nested}}}\n");
        let columns = ColumnMap { text: vec!["text".into()], label: None, id: None, groups: Vec::new() };
        prop_assert_eq!(read(jsonl.into_bytes(), FileFormat::Jsonl, columns.clone()).len(), 1);
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(["text", "metadata"]).unwrap();
        writer.write_record(["t", nested.as_str()]).unwrap();
        prop_assert_eq!(read(writer.into_inner().unwrap(), FileFormat::Csv, columns).len(), 1);
    }
}

/// Rows as hostile as a file can make them: NULs, blank or over-long text and labels, long
/// label lists, bad dates and splits.
fn hostile_rows() -> impl Strategy<Value = Vec<[String; 5]>> {
    let text = prop_oneof![
        cell(),
        Just(String::new()),
        Just("a\0b".to_string()),
        (900..1100usize).prop_map(|n| "s".repeat(n)),
    ];
    let labels = prop_oneof![
        cell(),
        Just(String::new()),
        prop::collection::vec("[A-Za-z]{1,6}", 0..4).prop_map(|l| l.join("|")),
        (60..70usize).prop_map(|n| "L".repeat(n)),
    ];
    let created_at = prop::sample::select(vec![
        "",
        "2026-01-05T10:00:00Z",
        "not a date",
        "0000-01-01T00:00:00Z",
    ]);
    let split = prop::sample::select(vec!["", "train", "test", "validation"]);
    prop::collection::vec(
        (text.clone(), text, labels, created_at, split).prop_map(
            |(subject, body, labels, created_at, split)| {
                [
                    subject,
                    body,
                    labels,
                    created_at.to_string(),
                    split.to_string(),
                ]
            },
        ),
        1..12,
    )
}

/// Slower (each case is a real import into SQLite), so fewer cases: one database, a project each.
#[test]
fn an_import_of_hostile_rows_stores_or_reports_every_row() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let database = TestDatabase::sqlite().unwrap();
    let store = runtime.block_on(database.store()).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let project = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&hostile_rows(), |rows| {
            let project = project.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer
                .write_record(["subject", "body", "tags", "created_at", "split", "id"])
                .unwrap();
            for (i, row) in rows.iter().enumerate() {
                let id = i.to_string();
                writer
                    .write_record(row.iter().map(String::as_str).chain([id.as_str()]))
                    .unwrap();
            }
            let bytes = writer.into_inner().unwrap();
            let columns = ColumnMap {
                text: vec!["subject".into(), "body".into()],
                label: Some("tags".into()),
                id: Some("id".into()),
                groups: Vec::new(),
            };
            let name = ProjectName::parse(&format!("hostile {project}")).unwrap();
            let mut options = ImportOptions::new(name, FileFormat::Csv, columns, "hostile.csv");
            options.on_bad_row = OnBadRow::Skip;
            options.label_separator = Some("|".into());
            let imported = runtime.block_on(import_file(
                &store,
                std::io::Cursor::new(bytes),
                &options,
                &datasets::ingest::Untagged,
            ));
            match imported {
                Ok(report) => {
                    prop_assert_eq!(report.rows_read, rows.len() as u64);
                    prop_assert_eq!(
                        report.created + report.skipped_count,
                        report.rows_read,
                        "{:?}",
                        report
                    );
                    prop_assert_eq!(report.train + report.test, report.created);
                }
                Err(ImportError::AllRowsBad(problem)) => prop_assert!(!problem.reason.is_empty()),
                Err(other) => prop_assert!(false, "{other}"),
            }
            Ok(())
        })
        .unwrap();
}
