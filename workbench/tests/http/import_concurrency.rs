//! A long import does not stall the API's writers (issue 13, finding 10). On SQLite, one
//! transaction for a whole import held the database's only write lock for its whole length,
//! and every API write waited out the 10 s busy timeout and got a 503. Imports now commit in
//! short batches and stay off the lock between them; this test imports many thousands of
//! tickets in one task while another writes through the API, and every write must succeed
//! well inside the busy timeout. A correctness bound, not a benchmark: 2 s.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use datasets::store::prelude::*;

use axum::http::{Method, StatusCode};
use datasets::import::{ColumnMap, FileFormat, ImportOptions, import_file};
use datasets::*;
use serde_json::json;
use std::time::{Duration, Instant};
use support::WebApp;

const IMPORTED: usize = 20_000;
const WRITE_BOUND: Duration = Duration::from_secs(2);

fn generated_csv(rows: usize) -> Vec<u8> {
    let tags = ["Bug", "Billing", "Question", "Feature Request"];
    let mut csv = String::from("id,subject,body,tags\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "IMP-{i},Ticket {i} about printer {},\"The printer on floor {} shows error {} again\",{}\n",
            i % 97,
            i % 7,
            i % 13,
            tags[i % tags.len()]
        ));
    }
    csv.into_bytes()
}

async fn api_writes_succeed_at_once_during_a_long_import(store: AnyStore) {
    let app = WebApp::on(store.clone()).await;
    let project = store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Single)
        .await
        .unwrap();
    let key = support::project_key(&store, project.id, "writer").await;

    let mut options = ImportOptions::new(
        project.name.clone(),
        FileFormat::Csv,
        ColumnMap {
            text: vec!["subject".into(), "body".into()],
            label: Some("tags".into()),
            id: Some("id".into()),
            groups: Vec::new(),
        },
        "generated.csv",
    );
    options.create_tags = true;
    let importer = store.clone();
    let import = tokio::spawn(async move {
        import_file(
            &importer,
            std::io::Cursor::new(generated_csv(IMPORTED)),
            &options,
            &datasets::ingest::Untagged,
        )
        .await
    });

    let mut took = Vec::new();
    while !import.is_finished() {
        let number = took.len();
        let started = Instant::now();
        let (status, body) = app
            .json(
                Method::POST,
                "/v1/projects/Acme/tickets",
                Some(&key),
                json!({"external_id": format!("API-{number}"), "subject": format!("Written during the import {number}")}),
            )
            .await;
        let elapsed = started.elapsed();
        assert_eq!(status, StatusCode::CREATED, "write {number}: {body}");
        assert!(
            elapsed < WRITE_BOUND,
            "write {number} waited {elapsed:?} for the import"
        );
        took.push(elapsed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = import.await.unwrap().unwrap();
    assert_eq!(report.created, IMPORTED as u64);
    assert!(
        took.len() >= 5,
        "the import ended before the writers could overlap it ({} writes)",
        took.len()
    );
    let worst = took.iter().max().unwrap();
    eprintln!(
        "{} API writes during an import of {IMPORTED} tickets; slowest {worst:?}",
        took.len()
    );
}

datasets::on_both_backends!(api_writes_succeed_at_once_during_a_long_import);
