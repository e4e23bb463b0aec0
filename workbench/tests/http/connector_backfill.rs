//! Backfill end to end against local fakes of each help desk's paginated API, on both
//! databases: every page read (Zendesk's cursor export, Jira's search with page tokens,
//! ServiceNow's Table API by offset), deleted tickets skipped, the help desk's labels that
//! match project tags imported, nothing written back; a backfill stopped by a refusal
//! resumes from the page after the last one stored; a `429` is waited out. Then the
//! `tagger connectors backfill` command.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use connectors::System;
use datasets::connector::{
    BackfillStatus, Connector, ConnectorName, ConnectorSettings, NewConnector,
};
use datasets::store::prelude::*;
use datasets::*;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use workbench::config::Config;
use workbench::connector_backfill::BackfillError;
use workbench::connector_jobs::ConnectorRunner;
use workbench::credentials::{CredentialKey, Credentials};

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// Tickets in the fake help desk's history; every 50th is deleted (Zendesk).
const HISTORY: usize = 250;

/// A scripted answer: status and headers.
type Scripted = (u16, Vec<(&'static str, &'static str)>);

/// A fake help desk with `HISTORY` tickets, paging as the vendor does; scripted answers
/// (status, headers) go first.
#[derive(Clone)]
struct FakeHistory {
    system: System,
    requests: Arc<Mutex<Vec<(Method, String, Value)>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
}

fn ticket_labels(i: usize) -> Vec<&'static str> {
    if i.is_multiple_of(3) {
        vec!["billing", "vip"]
    } else {
        vec![]
    }
}

impl FakeHistory {
    fn new(system: System) -> Self {
        Self {
            system,
            requests: Arc::default(),
            script: Arc::default(),
        }
    }

    fn requests(&self) -> Vec<(Method, String, Value)> {
        self.requests.lock().unwrap().clone()
    }

    fn then_answer(&self, status: u16, headers: Vec<(&'static str, &'static str)>) {
        self.script.lock().unwrap().push_back((status, headers));
    }

    fn answer(&self, method: Method, uri: Uri, body: Bytes) -> Response {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        self.requests
            .lock()
            .unwrap()
            .push((method, uri.to_string(), body.clone()));
        if let Some((status, headers)) = self.script.lock().unwrap().pop_front() {
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                axum::Json(json!({"error": "scripted", "errorMessages": ["scripted refusal"]})),
            )
                .into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            return response;
        }
        let query: std::collections::HashMap<String, String> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let page = 100;
        match self.system {
            System::Zendesk => {
                // The cursor is the page number as text.
                let start: usize = query.get("cursor").map_or(0, |c| {
                    c.trim_start_matches("page").parse::<usize>().unwrap() * page
                });
                let end = (start + page).min(HISTORY);
                let tickets: Vec<Value> = (start..end)
                    .map(|i| json!({"id": i + 1, "subject": format!("Ticket {i}"),
                        "description": "I was charged twice for the invoice", "tags": ticket_labels(i),
                        "status": if i % 50 == 49 { "deleted" } else { "open" },
                        "updated_at": "2025-11-03T10:00:00Z", "created_at": "2025-11-02T09:14:00Z"}))
                    .collect();
                axum::Json(
                    json!({"tickets": tickets, "after_cursor": format!("page{}", end / page),
                    "end_of_stream": end >= HISTORY}),
                )
                .into_response()
            }
            System::Jira => {
                let start: usize = body["nextPageToken"]
                    .as_str()
                    .map_or(0, |t| t.parse::<usize>().unwrap());
                let end = (start + page).min(HISTORY);
                let issues: Vec<Value> = (start..end)
                    .map(|i| json!({"id": format!("{}", 10000 + i), "key": format!("SUP-{i}"), "fields": {
                        "summary": format!("Issue {i}"), "description": null, "labels": ticket_labels(i),
                        "created": "2025-11-02T09:14:00.000+0000", "updated": "2025-11-03T10:00:00.000+0000"}}))
                    .collect();
                let mut answer = json!({"issues": issues, "isLast": end >= HISTORY});
                if end < HISTORY {
                    answer["nextPageToken"] = json!(end.to_string());
                }
                axum::Json(answer).into_response()
            }
            System::ServiceNow => {
                let start: usize = query["sysparm_offset"].parse().unwrap();
                let limit: usize = query["sysparm_limit"].parse().unwrap();
                let end = (start + limit).min(HISTORY);
                let records: Vec<Value> = (start..end)
                    .map(|i| json!({"sys_id": format!("sys{i:04}"), "number": format!("INC{i:07}"),
                        "short_description": format!("Incident {i}"), "description": "Since Monday",
                        "category": if i.is_multiple_of(3) { "billing" } else { "network" },
                        "sys_created_on": "2025-11-02 09:14:00", "sys_updated_on": "2025-11-03 10:00:00"}))
                    .collect();
                let mut response = axum::Json(json!({"result": records})).into_response();
                response
                    .headers_mut()
                    .insert("x-total-count", HISTORY.to_string().parse().unwrap());
                response
            }
        }
    }

    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = self.clone();
        let router = axum::Router::new().fallback(
            move |method: Method, uri: Uri, _headers: HeaderMap, body: Bytes| {
                let fake = fake.clone();
                async move { fake.answer(method, uri, body) }
            },
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        base
    }
}

struct Setup {
    store: AnyStore,
    project: Project,
    connector: Connector,
    runner: ConnectorRunner,
}

impl Setup {
    async fn new(store: AnyStore, system: System, base_url: &str) -> Self {
        let project = store
            .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
            .await
            .unwrap();
        for tag in datasets::demo::default_taxonomy() {
            store.create_tag(project.id, &tag).await.unwrap();
        }
        let name = format!("{}-history", system.as_str());
        let credentials = Credentials {
            webhook_secret: "a-webhook-secret".into(),
            user: Some("agent@acme.example".into()),
            token: Some("token".into()),
        };
        let connector = store
            .create_connector(&NewConnector {
                project_id: project.id,
                name: ConnectorName::parse(&name).unwrap(),
                system,
                base_url: base_url.into(),
                settings: ConnectorSettings {
                    // On, to show a backfill never writes history back.
                    write_back: true,
                    requests_per_minute: Some(6000),
                    table: (system == System::ServiceNow).then(|| "incident".into()),
                    ..ConnectorSettings::default()
                },
                sealed_credentials: CredentialKey::parse(KEY)
                    .unwrap()
                    .seal(&name, &credentials)
                    .unwrap(),
            })
            .await
            .unwrap();
        let config = Config {
            encryption_key: Some(KEY.into()),
            ..Config::default()
        };
        let runner = ConnectorRunner::new(store.clone(), config).unwrap();
        Self {
            store,
            project,
            connector,
            runner,
        }
    }

    async fn backfill(&self) -> Result<datasets::connector::Backfill, BackfillError> {
        let mut pages_seen = Vec::new();
        let outcome = workbench::connector_backfill::run(
            &self.runner,
            &self.store,
            self.runner.tagging(),
            &self.connector,
            chrono::DateTime::UNIX_EPOCH,
            |state| pages_seen.push(state.pages),
        )
        .await;
        // Progress is reported after every page, in order.
        assert!(
            pages_seen.windows(2).all(|w| w[0] + 1 == w[1]),
            "{pages_seen:?}"
        );
        outcome
    }

    async fn tickets(&self) -> Vec<LabelledTicket> {
        self.store
            .search_tickets(
                self.project.id,
                &TicketQuery {
                    limit: Some(1000),
                    ..TicketQuery::default()
                },
            )
            .await
            .unwrap()
    }
}

async fn history_is_read_page_by_page(store: AnyStore, system: System) {
    let fake = FakeHistory::new(system);
    let base = fake.serve().await;
    let setup = Setup::new(store, system, &base).await;
    let done = setup.backfill().await.unwrap();
    assert_eq!(done.status, BackfillStatus::Done);
    assert_eq!(done.pages, 3);
    let deleted = if system == System::Zendesk {
        HISTORY / 50
    } else {
        0
    };
    assert_eq!(done.tickets as usize, HISTORY - deleted);
    assert_eq!(done.skipped as usize, deleted);
    let tickets = setup.tickets().await;
    assert_eq!(tickets.len(), HISTORY - deleted);
    assert!(
        tickets
            .iter()
            .all(|t| t.ticket.source == setup.connector.name.as_str())
    );
    // The help desk's `billing` label (Zendesk tags, Jira labels, the ServiceNow category)
    // is a project tag: imported as training data.
    let billed = tickets
        .iter()
        .filter(|t| {
            t.labels
                .iter()
                .any(|l| l.source == LabelSource::Import && l.tag.as_str() == "Billing")
        })
        .count();
    let expected_billed = (0..HISTORY)
        .filter(|i| i.is_multiple_of(3) && !(system == System::Zendesk && i % 50 == 49))
        .count();
    assert_eq!(billed, expected_billed);
    assert!(
        setup
            .store
            .writebacks(setup.connector.id, 10)
            .await
            .unwrap()
            .is_empty(),
        "history is never written back"
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    match system {
        System::Zendesk => {
            assert!(requests[0].1.contains("start_time=0"), "{}", requests[0].1);
            assert!(requests[1].1.ends_with("cursor=page1"), "{}", requests[1].1);
        }
        System::Jira => {
            assert!(requests.iter().all(|r| r.0 == Method::POST));
            assert_eq!(requests[1].2["nextPageToken"], "100");
        }
        System::ServiceNow => {
            assert!(
                requests[2].1.contains("sysparm_offset=200"),
                "{}",
                requests[2].1
            );
        }
    }
}

async fn zendesk_history_is_read(store: AnyStore) {
    history_is_read_page_by_page(store, System::Zendesk).await;
}

async fn jira_history_is_read(store: AnyStore) {
    history_is_read_page_by_page(store, System::Jira).await;
}

async fn servicenow_history_is_read(store: AnyStore) {
    history_is_read_page_by_page(store, System::ServiceNow).await;
}

async fn a_stopped_backfill_resumes_after_the_last_stored_page(store: AnyStore) {
    let fake = FakeHistory::new(System::Zendesk);
    let base = fake.serve().await;
    let setup = Setup::new(store, System::Zendesk, &base).await;
    // Page 1 is read; then the help desk refuses (a revoked token): the refusal is
    // scripted as page 1 is reported stored.
    let first = workbench::connector_backfill::run(
        &setup.runner,
        &setup.store,
        setup.runner.tagging(),
        &setup.connector,
        chrono::DateTime::UNIX_EPOCH,
        |state| {
            if state.pages == 1 {
                fake.then_answer(401, vec![]);
            }
        },
    )
    .await;
    let Err(BackfillError::HelpDesk(reason)) = first else {
        panic!("{first:?}");
    };
    assert!(reason.contains("HTTP 401"), "{reason}");
    let stopped = setup
        .store
        .backfill(setup.connector.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped.status, BackfillStatus::Failed);
    assert_eq!(stopped.pages, 1);
    assert_eq!(stopped.tickets, 98);
    assert_eq!(stopped.cursor.as_deref(), Some("page1"));
    assert!(stopped.error.as_deref().is_some_and(|e| e.contains("401")));

    let done = setup.backfill().await.unwrap();
    assert_eq!(done.status, BackfillStatus::Done);
    assert_eq!(done.pages, 3);
    assert_eq!(done.tickets as usize, HISTORY - HISTORY / 50);
    let requests = fake.requests();
    // Start, refused page 2, then page 2 and 3 again: page 1 is never read twice.
    assert_eq!(requests.len(), 4, "{requests:?}");
    assert!(requests[0].1.contains("start_time="));
    assert!(requests[2].1.ends_with("cursor=page1"), "{}", requests[2].1);
    assert_eq!(setup.tickets().await.len(), HISTORY - HISTORY / 50);
}

async fn a_rate_limited_page_is_asked_again_after_the_wait(store: AnyStore) {
    let fake = FakeHistory::new(System::ServiceNow);
    fake.then_answer(429, vec![("retry-after", "1")]);
    let base = fake.serve().await;
    let setup = Setup::new(store, System::ServiceNow, &base).await;
    let started = std::time::Instant::now();
    let done = setup.backfill().await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(done.tickets as usize, HISTORY);
    assert_eq!(fake.requests().len(), 4);
}

datasets::on_both_backends!(
    zendesk_history_is_read,
    jira_history_is_read,
    servicenow_history_is_read,
    a_stopped_backfill_resumes_after_the_last_stored_page,
    a_rate_limited_page_is_asked_again_after_the_wait,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_backfills_in_the_foreground() {
    let fake = FakeHistory::new(System::Jira);
    let base = fake.serve().await;
    let database = datasets::test_db::TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let url = database.url.clone();
    let tagger = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tagger"))
            .args([
                "--database-url",
                url.as_str(),
                "--data-dir",
                data.path().to_str().unwrap(),
            ])
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("TAGGER_DATABASE_URL")
            .env("TAGGER_ENCRYPTION_KEY", KEY)
            .env("TAGGER_LOG", "warn")
            .output()
            .unwrap()
    };
    let run = |args: &[&str]| {
        let output = tagger(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), stdout, stderr)
    };
    let (ok, _, stderr) = run(&[
        "connectors",
        "add",
        "--project",
        "Acme",
        "--system",
        "jira",
        "--name",
        "jira-acme",
        "--base-url",
        &base,
        "--webhook-secret",
        "a-webhook-secret",
        "--user",
        "agent@acme.example",
        "--token",
        "token",
    ]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(&[
        "connectors",
        "backfill",
        "--name",
        "jira-acme",
        "--since",
        "2024-01-01",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("{HISTORY} tickets stored")) && stdout.contains("3 pages"),
        "{stdout}"
    );
    let jql = fake.requests()[0].2["jql"].as_str().unwrap().to_string();
    assert!(jql.starts_with("created >= \"2024-01-01 00:00\""), "{jql}");
    let (ok, _, stderr) = run(&[
        "connectors",
        "backfill",
        "--name",
        "jira-acme",
        "--since",
        "last tuesday",
    ]);
    assert!(!ok && stderr.contains("is not a date"), "{stderr}");
}
