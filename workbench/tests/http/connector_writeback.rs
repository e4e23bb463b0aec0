//! Write-back end to end, on both databases: a signed delivery is stored and tagged, the
//! worker's connector queue writes the applied tags to a local fake of the help desk (the
//! documented method, path, authentication and body), and the webhook our write causes is
//! recognised as our echo: no second write, no imported labels. Then the vendor's answers:
//! `429` with `Retry-After` (waited for, then written), `401` (failed at once with the
//! vendor's reason), a help desk that is down and comes back, and write-back switched off.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use connectors::System;
use datasets::connector::{
    Connector, ConnectorName, ConnectorSettings, NewConnector, WriteBack, WriteBackStatus,
};
use datasets::store::prelude::*;
use datasets::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use trainer::jobs::{JobQueue, QueueSettings, WorkerState};
use workbench::config::Config;
use workbench::credentials::{CredentialKey, Credentials};

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const SECRET: &str = "a-webhook-secret-of-some-length";
const USER: &str = "agent@acme.example";
const TOKEN: &str = "api-token-1234";
/// Keyword rules of the demo taxonomy apply Billing ("charged twice", "invoice") and
/// Feature Request ("please add"), whatever the small model thinks.
const SUBJECT: &str = "Charged twice on my invoice";
const BODY: &str = "Please add a way to merge invoices, I was charged twice.";

/// One request the fake help desk received.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    authorization: Option<String>,
    body: Value,
    at: Instant,
}

/// A scripted answer: status, headers and body.
type Scripted = (u16, Vec<(&'static str, String)>, Value);

/// A local fake of a help desk's write API: it checks the basic authentication each vendor
/// documents, answers as the vendor does (Zendesk 200 with the ticket's tags, Jira 204,
/// ServiceNow 200 with the record), or with the scripted answers queued first.
#[derive(Clone)]
struct FakeDesk {
    system: System,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
}

impl FakeDesk {
    fn new(system: System) -> Self {
        Self {
            system,
            received: Arc::default(),
            script: Arc::default(),
        }
    }

    fn then_answer(&self, status: u16, headers: Vec<(&'static str, String)>, body: Value) {
        self.script
            .lock()
            .unwrap()
            .push_back((status, headers, body));
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn expected_authorization(&self) -> String {
        let pair = match self.system {
            System::Zendesk => format!("{USER}/token:{TOKEN}"),
            System::Jira | System::ServiceNow => format!("{USER}:{TOKEN}"),
        };
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    async fn answer(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        self.received.lock().unwrap().push(Received {
            method,
            path: uri.to_string(),
            authorization: authorization.clone(),
            body: body.clone(),
            at: Instant::now(),
        });
        if let Some((status, headers, body)) = self.script.lock().unwrap().pop_front() {
            let mut response =
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            return response;
        }
        if authorization.as_deref() != Some(self.expected_authorization().as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "Couldn't authenticate you"})),
            )
                .into_response();
        }
        match self.system {
            // A trigger webhook named the ticket: it is read over REST.
            System::Zendesk if method_is_get(&self.received.lock().unwrap()) => {
                let id = uri
                    .path()
                    .trim_start_matches("/api/v2/tickets/")
                    .trim_end_matches(".json")
                    .to_string();
                (
                    StatusCode::OK,
                    axum::Json(json!({"ticket": {
                        "id": id.parse::<i64>().unwrap_or(0), "subject": SUBJECT,
                        "description": BODY, "tags": ["vip", "billing"],
                        "status": "new", "updated_at": "2026-01-05T10:00:00Z",
                        "created_at": "2026-01-05T09:59:00Z"}})),
                )
                    .into_response()
            }
            System::Zendesk => {
                let tags = body["tags"].clone();
                (StatusCode::OK, axum::Json(json!({ "tags": tags }))).into_response()
            }
            System::Jira => StatusCode::NO_CONTENT.into_response(),
            System::ServiceNow => {
                (StatusCode::OK, axum::Json(json!({ "result": body }))).into_response()
            }
        }
    }

    /// Serves on `listener` until the test ends.
    fn serve(&self, listener: tokio::net::TcpListener) {
        let desk = self.clone();
        let router = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let desk = desk.clone();
                async move { desk.answer(method, uri, headers, body).await }
            },
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
}

/// Whether the request just recorded is a GET.
fn method_is_get(received: &[Received]) -> bool {
    received.last().is_some_and(|r| r.method == Method::GET)
}

/// The project with a model in service, the server, the queue and a worker whose connector
/// queue writes back.
struct Setup {
    store: AnyStore,
    router: axum::Router,
    connector: Connector,
    queue: JobQueue,
    config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    worker: Option<tokio::task::JoinHandle<Result<(), trainer::jobs::JobError>>>,
    workers_started: usize,
    _models: tempfile::TempDir,
}

impl Setup {
    async fn new(store: AnyStore, system: System, base_url: &str, write_back: bool) -> Self {
        let project = datasets::demo_project::install_demo_project(
            &store,
            &ProjectName::parse("Acme").unwrap(),
            LabelMode::Multi,
            120,
            5,
        )
        .await
        .unwrap();
        let models = tempfile::tempdir().unwrap();
        let mut request = trainer::TrainRequest::default();
        request.ngram.epochs = 2;
        let version = trainer::train(&store, &project, &request, models.path(), |_| {})
            .await
            .unwrap()
            .version;
        store
            .promote_model_version(project.id, version.id, "test")
            .await
            .unwrap();
        let name = format!("{}-acme", system.as_str());
        let credentials = Credentials {
            webhook_secret: SECRET.into(),
            user: Some(USER.into()),
            token: Some(TOKEN.into()),
        };
        let connector = store
            .create_connector(&NewConnector {
                project_id: project.id,
                name: ConnectorName::parse(&name).unwrap(),
                system,
                base_url: base_url.into(),
                settings: ConnectorSettings {
                    write_back,
                    table: (system == System::ServiceNow).then(|| "incident".to_string()),
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
            data_dir: models.path().to_path_buf(),
            ..Config::default()
        };
        let queue = JobQueue::open(
            &store,
            &QueueSettings {
                heartbeat: Duration::from_secs(1),
                missed_heartbeats: 2,
                poll_interval: Duration::from_millis(100),
            },
        )
        .await
        .unwrap();
        let router = workbench::app::app(
            workbench::state::AppState::new(store.clone(), config.clone()).with_jobs(queue.clone()),
        );
        let mut setup = Self {
            store,
            router,
            connector,
            queue,
            config,
            stop: None,
            worker: None,
            workers_started: 0,
            _models: models,
        };
        setup.start_worker();
        setup
    }

    /// The same, with no worker running until `start_worker`: jobs wait in the queue.
    async fn without_worker(store: AnyStore, system: System, base_url: &str) -> Self {
        let mut setup = Self::new(store, system, base_url, true).await;
        setup.stop_worker().await;
        setup
    }

    /// Starts a worker whose connector queue tags, fetches and writes back.
    fn start_worker(&mut self) {
        let runner = workbench::connector_jobs::ConnectorRunner::new(
            self.store.clone(),
            self.config.clone(),
        )
        .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(trainer::jobs::run_worker(
            self.queue.clone(),
            WorkerState {
                store: self.store.clone(),
                artifacts: inference::artifact_store::ArtifactStore::local(
                    self._models.path().join("models"),
                ),
                // A fresh name per start, as a restarted process has (its pid).
                name: format!("writeback-test-{}", self.workers_started),
                stopping: Default::default(),
                guard_margin: 0.02,
                retag_after_promotion: 0,
                connector_jobs: Some(Arc::new(runner)),
            },
            async move {
                let _ = stopped.await;
            },
        ));
        self.stop = Some(stop);
        self.worker = Some(worker);
        self.workers_started += 1;
    }

    async fn stop_worker(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(worker) = self.worker.take() {
            worker.await.unwrap().unwrap();
        }
    }

    /// Posts a delivery signed as the vendor signs it; the JSON answer (asserting 200).
    async fn deliver(&self, body: Vec<u8>) -> Value {
        let (status, answer) = self.deliver_answer(body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }

    /// Posts a delivery signed as the vendor signs it; the status and JSON answer.
    async fn deliver_answer(&self, body: Vec<u8>) -> (StatusCode, Value) {
        let system = self.connector.system;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/connectors/{}/webhook", self.connector.name))
            .header("content-type", "application/json");
        match system {
            System::Zendesk => {
                let timestamp = "2026-01-05T10:00:00Z";
                request = request
                    .header("x-zendesk-webhook-signature-timestamp", timestamp)
                    .header(
                        "x-zendesk-webhook-signature",
                        connectors::sign_zendesk(SECRET.as_bytes(), timestamp, &body),
                    );
            }
            System::Jira => {
                request = request.header(
                    "x-hub-signature",
                    connectors::sign_jira(SECRET.as_bytes(), &body),
                );
            }
            System::ServiceNow => {
                let timestamp = "1767607200";
                request = request.header("x-tagger-timestamp", timestamp).header(
                    "x-tagger-signature",
                    connectors::sign_servicenow(SECRET.as_bytes(), timestamp, &body),
                );
            }
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, answer)
    }

    async fn writebacks(&self) -> Vec<WriteBack> {
        self.store.writebacks(self.connector.id, 50).await.unwrap()
    }

    /// Waits until the connector's newest write-back is settled (written or failed).
    async fn settled(&self, within: Duration) -> WriteBack {
        let deadline = Instant::now() + within;
        loop {
            let writebacks = self.writebacks().await;
            if let Some(newest) = writebacks.first()
                && newest.status != WriteBackStatus::Pending
            {
                return newest.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no write-back settled in {within:?}: {writebacks:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The project tags applied to the delivered ticket by the model (and its rules) as
    /// they are now.
    async fn model_tags(&self, ticket: TicketId) -> Vec<String> {
        let ticket = self
            .store
            .ticket(self.connector.project_id, ticket)
            .await
            .unwrap();
        ticket
            .labels
            .iter()
            .filter(|l| l.source == LabelSource::Model)
            .map(|l| l.tag.as_str().to_string())
            .collect()
    }

    /// The model's tags on the delivered ticket, once its tagging job has run.
    async fn applied_tags(&self, ticket: TicketId) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let tags = self.model_tags(ticket).await;
            if !tags.is_empty() {
                return tags;
            }
            assert!(Instant::now() < deadline, "ticket {ticket} never tagged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) {
        self.stop_worker().await;
    }
}

/// A delivery about the vendor's ticket `id`, carrying `labels`, changed at minute `minute`.
fn delivery(system: System, id: &str, labels: &[&str], minute: u32) -> Vec<u8> {
    let updated = format!("2026-01-05T10:{minute:02}:00Z");
    match system {
        System::Zendesk => json!({
            "type": if minute == 0 { "zen:event-type:ticket.created" } else { "zen:event-type:ticket.tags_changed" },
            "id": format!("01J-{id}-{minute}"),
            "time": updated,
            "subject": format!("zen:ticket:{id}"),
            "detail": {"id": id, "subject": SUBJECT, "description": BODY, "tags": labels,
                       "updated_at": updated}
        }),
        System::Jira => json!({
            "timestamp": 1_767_607_200_000_i64 + i64::from(minute) * 60_000,
            "webhookEvent": if minute == 0 { "jira:issue_created" } else { "jira:issue_updated" },
            "issue": {"id": id, "key": format!("SUP-{id}"), "fields": {
                "summary": SUBJECT, "description": BODY, "labels": labels,
                "updated": format!("2026-01-05T10:{minute:02}:00.000+0000"),
                "created": "2026-01-05T10:00:00.000+0000"}}
        }),
        System::ServiceNow => json!({
            "event": if minute == 0 { "incident.created" } else { "incident.updated" },
            "table": "incident", "sys_id": id, "number": "INC0010042",
            "short_description": SUBJECT, "description": BODY,
            "u_auto_tags": labels.join(","),
            "sys_updated_on": format!("2026-01-05 10:{minute:02}:00")
        }),
    }
    .to_string()
    .into_bytes()
}

/// A fake desk served on a free local port, and its base URL.
async fn served(desk: &FakeDesk) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    desk.serve(listener);
    base
}

async fn a_tagged_delivery_is_written_back_once_and_its_echo_ignored(
    store: AnyStore,
    system: System,
    external_id: &str,
) {
    let desk = FakeDesk::new(system);
    let base = served(&desk).await;
    let setup = Setup::new(store, system, &base, true).await;
    let answer = setup.deliver(delivery(system, external_id, &[], 0)).await;
    assert_eq!(answer["status"], "stored", "{answer}");
    assert_eq!(answer["tagging"], "queued", "{answer}");
    let ticket = TicketId(answer["ticket_id"].as_i64().unwrap());
    let applied = setup.applied_tags(ticket).await;
    assert!(
        applied.iter().any(|t| t == "Billing") && applied.iter().any(|t| t == "Feature Request"),
        "{applied:?}"
    );
    let written = setup.settled(Duration::from_secs(30)).await;
    assert_eq!(written.status, WriteBackStatus::Written, "{written:?}");
    assert_eq!(written.attempts, 1);

    let received = desk.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert_eq!(
        request.authorization.as_deref(),
        Some(desk.expected_authorization().as_str())
    );
    let expected: Vec<String> = applied
        .iter()
        .map(|tag| connectors::vendor_label(system, tag))
        .collect();
    let labels: Vec<String> = match system {
        System::Zendesk => {
            assert_eq!(request.method, Method::PUT);
            assert_eq!(request.path, format!("/api/v2/tickets/{external_id}/tags"));
            serde_json::from_value(request.body["tags"].clone()).unwrap()
        }
        System::Jira => {
            assert_eq!(request.method, Method::PUT);
            assert_eq!(
                request.path,
                format!("/rest/api/3/issue/{external_id}?notifyUsers=false")
            );
            request.body["update"]["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|op| op["add"].as_str().unwrap().to_string())
                .collect()
        }
        System::ServiceNow => {
            assert_eq!(request.method, Method::PATCH);
            assert!(
                request
                    .path
                    .starts_with(&format!("/api/now/table/incident/{external_id}?")),
                "{}",
                request.path
            );
            request.body["u_auto_tags"]
                .as_str()
                .unwrap()
                .split(',')
                .map(str::to_string)
                .collect()
        }
    };
    assert_eq!(labels, expected);
    if system != System::ServiceNow {
        assert!(
            labels.contains(&"feature_request".to_string()),
            "{labels:?}"
        );
    }

    // The help desk tells us of the change our write made: our echo.
    let echo: Vec<&str> = labels.iter().map(String::as_str).collect();
    let answer = setup.deliver(delivery(system, external_id, &echo, 1)).await;
    assert_eq!(answer["status"], "stored", "{answer}");
    assert_eq!(
        answer["imported_labels"], 0,
        "our own tags are not people's labels"
    );
    // The same delivery again (a vendor's retry).
    let again = setup.deliver(delivery(system, external_id, &echo, 1)).await;
    assert_eq!(again["status"], "duplicate", "{again}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        desk.received().len(),
        1,
        "written once: {:?}",
        desk.received()
    );
    assert_eq!(setup.writebacks().await.len(), 1);
    let ticket = setup
        .store
        .ticket(setup.connector.project_id, ticket)
        .await
        .unwrap();
    assert!(
        ticket
            .labels
            .iter()
            .all(|l| l.source != LabelSource::Import && l.source != LabelSource::Human),
        "{:?}",
        ticket.labels
    );
    setup.stop().await;
}

/// The vendor is answered before any model runs: with no worker, the delivered ticket is
/// stored untagged and its tagging job waits in the durable queue (as after a worker killed
/// with `kill -9`); a redelivery queues nothing more. The worker that starts next tags the
/// ticket and writes its tags back, once.
async fn the_webhook_answers_before_tagging_and_the_next_worker_tags_and_writes_back_once(
    store: AnyStore,
) {
    let desk = FakeDesk::new(System::Jira);
    let base = served(&desk).await;
    let mut setup = Setup::without_worker(store, System::Jira, &base).await;
    let body = delivery(System::Jira, "10077", &[], 0);
    let answer = setup.deliver(body.clone()).await;
    assert_eq!(answer["status"], "stored", "{answer}");
    assert_eq!(answer["tagging"], "queued", "{answer}");
    let ticket = TicketId(answer["ticket_id"].as_i64().unwrap());
    let again = setup.deliver(body).await;
    assert_eq!(again["status"], "duplicate", "{again}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        setup.model_tags(ticket).await.is_empty(),
        "tagged without a worker"
    );
    assert!(setup.writebacks().await.is_empty());
    assert!(desk.received().is_empty());

    setup.start_worker();
    let tags = setup.applied_tags(ticket).await;
    let written = setup.settled(Duration::from_secs(30)).await;
    assert_eq!(written.status, WriteBackStatus::Written, "{written:?}");
    assert_eq!(written.ticket_id, ticket);
    let expected: Vec<String> = tags
        .iter()
        .map(|tag| connectors::vendor_label(System::Jira, tag))
        .collect();
    assert_eq!(written.labels, expected);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        desk.received().len(),
        1,
        "written once: {:?}",
        desk.received()
    );
    assert_eq!(setup.writebacks().await.len(), 1);
    setup.stop().await;
}

async fn zendesk_tags_are_written_back_once(store: AnyStore) {
    a_tagged_delivery_is_written_back_once_and_its_echo_ignored(store, System::Zendesk, "35436")
        .await;
}

async fn jira_labels_are_written_back_once(store: AnyStore) {
    a_tagged_delivery_is_written_back_once_and_its_echo_ignored(store, System::Jira, "10042").await;
}

async fn servicenow_fields_are_written_back_once(store: AnyStore) {
    a_tagged_delivery_is_written_back_once_and_its_echo_ignored(
        store,
        System::ServiceNow,
        "9d385017c611228701d22104cc95c371",
    )
    .await;
}

async fn a_rate_limited_write_waits_as_asked_then_succeeds(store: AnyStore) {
    let desk = FakeDesk::new(System::Zendesk);
    desk.then_answer(
        429,
        vec![("retry-after", "2".into()), ("x-rate-limit-remaining", "0".into())],
        json!({"error": "APIRateLimitExceeded", "description": "Number of allowed API requests per minute exceeded"}),
    );
    let base = served(&desk).await;
    let setup = Setup::new(store, System::Zendesk, &base, true).await;
    setup.deliver(delivery(System::Zendesk, "7", &[], 0)).await;
    let written = setup.settled(Duration::from_secs(30)).await;
    assert_eq!(written.status, WriteBackStatus::Written, "{written:?}");
    assert_eq!(written.attempts, 2);
    assert!(
        written
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("429")),
        "{written:?}"
    );
    let received = desk.received();
    assert_eq!(received.len(), 2);
    let waited = received[1].at - received[0].at;
    assert!(waited >= Duration::from_secs(2), "waited only {waited:?}");
    assert_eq!(received[0].body, received[1].body);
    setup.stop().await;
}

async fn a_refused_credential_fails_at_once_with_the_vendors_reason(store: AnyStore) {
    let desk = FakeDesk::new(System::Jira);
    desk.then_answer(
        401,
        vec![],
        json!({"errorMessages": ["You are not authenticated. Authentication required to perform this operation."], "errors": {}}),
    );
    let base = served(&desk).await;
    let setup = Setup::new(store, System::Jira, &base, true).await;
    setup.deliver(delivery(System::Jira, "10042", &[], 0)).await;
    let failed = setup.settled(Duration::from_secs(30)).await;
    assert_eq!(failed.status, WriteBackStatus::Failed, "{failed:?}");
    assert_eq!(failed.attempts, 1);
    assert_eq!(
        failed.last_error.as_deref(),
        Some(
            "jira answered HTTP 401: You are not authenticated. Authentication required to \
             perform this operation."
        )
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(desk.received().len(), 1, "a 401 is not retried");
    // The labels never reached Jira: they are not counted as ours.
    let known = setup
        .store
        .connector_ticket(setup.connector.id, "10042")
        .await
        .unwrap()
        .unwrap();
    assert!(
        known.written_labels.is_empty(),
        "{:?}",
        known.written_labels
    );
    setup.stop().await;
}

async fn a_desk_that_is_down_is_written_once_it_is_back(store: AnyStore) {
    // A port nobody listens on yet.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let desk = FakeDesk::new(System::ServiceNow);
    let setup = Setup::new(store, System::ServiceNow, &format!("http://{addr}"), true).await;
    setup
        .deliver(delivery(System::ServiceNow, "a1b2", &[], 0))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let writebacks = setup.writebacks().await;
        if writebacks.first().is_some_and(|w| w.attempts >= 1) {
            let first = &writebacks[0];
            assert_eq!(first.status, WriteBackStatus::Pending, "{first:?}");
            assert!(
                first
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("servicenow could not be reached")),
                "{first:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{writebacks:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    desk.serve(tokio::net::TcpListener::bind(addr).await.unwrap());
    let written = setup.settled(Duration::from_secs(30)).await;
    assert_eq!(written.status, WriteBackStatus::Written, "{written:?}");
    assert!(written.attempts >= 2);
    assert_eq!(desk.received().len(), 1);
    setup.stop().await;
}

async fn with_write_back_off_nothing_is_sent(store: AnyStore) {
    let desk = FakeDesk::new(System::Zendesk);
    let base = served(&desk).await;
    let setup = Setup::new(store, System::Zendesk, &base, false).await;
    let answer = setup.deliver(delivery(System::Zendesk, "9", &[], 0)).await;
    assert_eq!(answer["tagging"], "queued", "{answer}");
    setup
        .applied_tags(TicketId(answer["ticket_id"].as_i64().unwrap()))
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(setup.writebacks().await.is_empty());
    assert!(desk.received().is_empty());
    setup.stop().await;
}

/// Waits until the connector has `count` write-backs and the newest is settled.
async fn nth_settled(setup: &Setup, count: usize) -> WriteBack {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let writebacks = setup.writebacks().await;
        if writebacks.len() >= count && writebacks[0].status != WriteBackStatus::Pending {
            return writebacks[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no write-back {count}: {writebacks:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A person labels a connector ticket through the API: the tag the model had not applied is
/// written back (only it: what was written is not written again); with corrections switched
/// off, a further correction writes nothing.
async fn a_persons_correction_is_written_back_unless_switched_off(store: AnyStore) {
    let desk = FakeDesk::new(System::Zendesk);
    let base = served(&desk).await;
    let setup = Setup::new(store, System::Zendesk, &base, true).await;
    let answer = setup.deliver(delivery(System::Zendesk, "77", &[], 0)).await;
    let ticket = TicketId(answer["ticket_id"].as_i64().unwrap());
    assert_eq!(
        setup.settled(Duration::from_secs(30)).await.status,
        WriteBackStatus::Written
    );
    let applied = setup.applied_tags(ticket).await;
    let others: Vec<String> = setup
        .store
        .list_tags(setup.connector.project_id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.as_str().to_string())
        .filter(|name| !applied.contains(name))
        .collect();
    let key =
        crate::support::project_key(&setup.store, setup.connector.project_id, "labeller").await;
    let label = |tags: Vec<String>| {
        let router = setup.router.clone();
        let key = key.clone();
        async move {
            let request = Request::builder()
                .method(Method::PUT)
                .uri(format!("/v1/projects/Acme/tickets/{}/labels", ticket.0))
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::from(json!({ "tags": tags }).to_string()))
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    let mut corrected = applied.clone();
    corrected.push(others[0].clone());
    label(corrected.clone()).await;
    let written = nth_settled(&setup, 2).await;
    assert_eq!(written.status, WriteBackStatus::Written, "{written:?}");
    assert_eq!(
        written.labels,
        vec![connectors::vendor_label(System::Zendesk, &others[0])]
    );
    let received = desk.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(
        received[1].body["tags"],
        json!([connectors::vendor_label(System::Zendesk, &others[0])])
    );

    let mut connector = setup.connector.clone();
    connector.settings.corrections = Some(false);
    setup.store.update_connector(&connector).await.unwrap();
    corrected.push(others[1].clone());
    label(corrected).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(setup.writebacks().await.len(), 2);
    assert_eq!(desk.received().len(), 2);
    setup.stop().await;
}

/// A ticket tagged while write-back was off gets its tags written once write-back is on and
/// the model in service tags it again (the re-tag after a promotion).
async fn a_retag_writes_the_new_tags_back(store: AnyStore) {
    let desk = FakeDesk::new(System::Zendesk);
    let base = served(&desk).await;
    let setup = Setup::new(store, System::Zendesk, &base, false).await;
    let answer = setup.deliver(delivery(System::Zendesk, "78", &[], 0)).await;
    let ticket = TicketId(answer["ticket_id"].as_i64().unwrap());
    setup.applied_tags(ticket).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(setup.writebacks().await.is_empty());
    let mut connector = setup.connector.clone();
    connector.settings.write_back = true;
    setup.store.update_connector(&connector).await.unwrap();
    setup
        .queue
        .push_maintenance(trainer::jobs::MaintenanceJob::Retag {
            project_id: setup.connector.project_id,
            limit: 50,
        })
        .await
        .unwrap();
    let written = nth_settled(&setup, 1).await;
    assert_eq!(written.status, WriteBackStatus::Written, "{written:?}");
    assert_eq!(written.ticket_id, ticket);
    let expected: Vec<String> = setup
        .applied_tags(ticket)
        .await
        .iter()
        .map(|tag| connectors::vendor_label(System::Zendesk, tag))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(written.labels, expected);
    setup.stop().await;
}

async fn a_ticket_a_zendesk_trigger_names_is_fetched_stored_tagged_and_written_back(
    store: AnyStore,
) {
    let desk = FakeDesk::new(System::Zendesk);
    let base = served(&desk).await;
    let setup = Setup::new(store, System::Zendesk, &base, true).await;
    let trigger = json!({"ticket_id": "35436", "event": "ticket.created"})
        .to_string()
        .into_bytes();
    let (status, answer) = setup.deliver_answer(trigger).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "awaiting_fetch");
    let written = setup.settled(Duration::from_secs(30)).await;
    assert_eq!(written.status, WriteBackStatus::Written, "{written:?}");
    let received = desk.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0].method, Method::GET);
    assert_eq!(received[0].path, "/api/v2/tickets/35436.json");
    assert_eq!(
        received[0].authorization.as_deref(),
        Some(desk.expected_authorization().as_str())
    );
    assert_eq!(received[1].path, "/api/v2/tickets/35436/tags");
    let log = setup
        .store
        .deliveries(setup.connector.id, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, datasets::connector::DeliveryStatus::Stored);
    let ticket = setup
        .store
        .ticket(setup.connector.project_id, log[0].ticket_id.unwrap())
        .await
        .unwrap();
    assert_eq!(ticket.ticket.external_id, "35436");
    assert_eq!(ticket.ticket.subject, SUBJECT);
    // Zendesk's `billing` tag was set by a person there: an imported label.
    assert!(
        ticket
            .labels
            .iter()
            .any(|l| l.source == LabelSource::Import && l.tag.as_str() == "Billing"),
        "{:?}",
        ticket.labels
    );
    setup.stop().await;
}

async fn a_delivery_whose_job_was_lost_is_queued_again(store: AnyStore) {
    let desk = FakeDesk::new(System::Jira);
    let base = served(&desk).await;
    let setup = Setup::new(store, System::Jira, &base, false).await;
    let receiver = Receiver::default();
    let hook = add_webhook(&setup, &receiver.serve().await).await;
    // Queued as the ingest path queues it, but its job never pushed (a queue outage).
    let queued = setup
        .store
        .queue_webhook_event(
            setup.connector.project_id,
            webhook::TICKET_TAGGED,
            &json!({"ticket": {"id": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.received.lock().unwrap().is_empty());
    let queue = JobQueue::open(&setup.store, &QueueSettings::default())
        .await
        .unwrap();
    let requeued = workbench::outgoing_webhooks::requeue_overdue(
        &setup.store,
        &queue,
        chrono::Utc::now() + chrono::Duration::seconds(1),
    )
    .await
    .unwrap();
    assert_eq!(requeued, 1);
    let delivered = settled_delivery(&setup, hook.id).await;
    assert_eq!(delivered.status, webhook::WebhookDeliveryStatus::Delivered);
    assert_eq!(receiver.received.lock().unwrap().len(), 1);
    setup.stop().await;
}

datasets::on_both_backends!(
    the_webhook_answers_before_tagging_and_the_next_worker_tags_and_writes_back_once,
    a_persons_correction_is_written_back_unless_switched_off,
    a_retag_writes_the_new_tags_back,
    a_persons_labels_are_sent_as_labels_changed,
    a_delivery_whose_job_was_lost_is_queued_again,
    a_tagged_ticket_is_sent_signed_to_the_projects_webhook,
    a_failing_receiver_is_retried_and_a_refusing_one_given_up,
    a_ticket_a_zendesk_trigger_names_is_fetched_stored_tagged_and_written_back,
    zendesk_tags_are_written_back_once,
    jira_labels_are_written_back_once,
    servicenow_fields_are_written_back_once,
    a_rate_limited_write_waits_as_asked_then_succeeds,
    a_refused_credential_fails_at_once_with_the_vendors_reason,
    a_desk_that_is_down_is_written_once_it_is_back,
    with_write_back_off_nothing_is_sent,
);

/// A local receiver of our outgoing webhooks: records each POST, answers the scripted
/// statuses first, then 200.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/tagger", listener.local_addr().unwrap());
        let receiver = self.clone();
        let router = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let receiver = receiver.clone();
            async move {
                receiver
                    .received
                    .lock()
                    .unwrap()
                    .push((headers, String::from_utf8_lossy(&body).into_owned()));
                let status = receiver.script.lock().unwrap().pop_front().unwrap_or(200);
                StatusCode::from_u16(status).unwrap()
            }
        });
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }
}

const SIGNING_SECRET: &str = "whsec-0123456789abcdef";

async fn add_webhook(setup: &Setup, url: &str) -> webhook::Webhook {
    add_webhook_for(setup, url, &[webhook::TICKET_TAGGED]).await
}

async fn add_webhook_for(setup: &Setup, url: &str, events: &[&str]) -> webhook::Webhook {
    let project = setup.connector.project_id;
    setup
        .store
        .create_webhook(&webhook::NewWebhook {
            project_id: project,
            url: url.into(),
            sealed_secret: CredentialKey::parse(KEY)
                .unwrap()
                .seal(
                    &workbench::outgoing_webhooks::sealing_name(project, url),
                    &workbench::outgoing_webhooks::secret_box(SIGNING_SECRET),
                )
                .unwrap(),
            events: events.iter().map(|e| e.to_string()).collect(),
        })
        .await
        .unwrap()
}

/// Waits until the webhook's newest delivery is settled.
async fn settled_delivery(setup: &Setup, webhook: WebhookId) -> webhook::WebhookDelivery {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let deliveries = setup.store.webhook_deliveries(webhook, 10).await.unwrap();
        if let Some(newest) = deliveries.first()
            && newest.status != webhook::WebhookDeliveryStatus::Pending
        {
            return newest.clone();
        }
        assert!(Instant::now() < deadline, "{deliveries:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_tagged_ticket_is_sent_signed_to_the_projects_webhook(store: AnyStore) {
    let desk = FakeDesk::new(System::Jira);
    let base = served(&desk).await;
    let setup = Setup::new(store, System::Jira, &base, false).await;
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let hook = add_webhook(&setup, &url).await;
    let answer = setup.deliver(delivery(System::Jira, "10042", &[], 0)).await;
    let delivered = settled_delivery(&setup, hook.id).await;
    assert_eq!(
        delivered.status,
        webhook::WebhookDeliveryStatus::Delivered,
        "{delivered:?}"
    );
    assert_eq!(delivered.last_status, Some(200));
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (headers, body) = &received[0];
    assert_eq!(headers["x-tagger-event"], "ticket.tagged");
    assert_eq!(headers["x-tagger-delivery"], delivered.id.to_string());
    // The receiver's check, as docs/webhooks.md describes it.
    let signature = headers["x-tagger-signature"].to_str().unwrap();
    let timestamp: i64 = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    assert_eq!(
        signature,
        connectors::sign_outgoing(SIGNING_SECRET.as_bytes(), timestamp, body.as_bytes())
    );
    assert_ne!(
        signature,
        connectors::sign_outgoing(b"another secret", timestamp, body.as_bytes())
    );
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["event"], "ticket.tagged");
    assert_eq!(event["data"]["ticket"]["id"], answer["ticket_id"]);
    assert_eq!(event["data"]["ticket"]["external_id"], "10042");
    assert_eq!(event["data"]["ticket"]["source"], "jira-acme");
    let applied: Vec<&str> = event["data"]["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(applied.contains(&"Billing"), "{event}");
    setup.stop().await;
}

/// A person's labels go to the webhooks that subscribed to `ticket.labels_changed` (with the
/// labels, the tags said absent and who set them), and not to one that did not.
async fn a_persons_labels_are_sent_as_labels_changed(store: AnyStore) {
    let desk = FakeDesk::new(System::Jira);
    let base = served(&desk).await;
    let setup = Setup::new(store, System::Jira, &base, false).await;
    let changes = Receiver::default();
    let changes_url = changes.serve().await;
    let hook = add_webhook_for(&setup, &changes_url, &[webhook::TICKET_LABELS_CHANGED]).await;
    let tagged_only = Receiver::default();
    let tagged_url = tagged_only.serve().await;
    add_webhook(&setup, &tagged_url).await;
    let answer = setup.deliver(delivery(System::Jira, "10043", &[], 0)).await;
    let ticket = answer["ticket_id"].as_i64().unwrap();
    let key =
        crate::support::project_key(&setup.store, setup.connector.project_id, "labeller").await;
    let request = Request::builder()
        .method(Method::PUT)
        .uri(format!("/v1/projects/Acme/tickets/{ticket}/labels"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(json!({ "tags": ["Billing"] }).to_string()))
        .unwrap();
    let response = setup.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let delivered = settled_delivery(&setup, hook.id).await;
    assert_eq!(
        delivered.status,
        webhook::WebhookDeliveryStatus::Delivered,
        "{delivered:?}"
    );
    let received = changes.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "only the labels change: {received:?}");
    let (headers, body) = &received[0];
    assert_eq!(headers["x-tagger-event"], "ticket.labels_changed");
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["data"]["ticket"]["id"], ticket);
    assert_eq!(event["data"]["ticket"]["external_id"], "10043");
    assert_eq!(event["data"]["labels"], json!(["Billing"]));
    assert!(
        event["data"]["by"]
            .as_str()
            .unwrap()
            .starts_with("api-key:"),
        "{event}"
    );
    // The other webhook heard of the tagging, never of the labels.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let others = tagged_only.received.lock().unwrap().clone();
    assert!(
        others
            .iter()
            .all(|(headers, _)| headers["x-tagger-event"] == "ticket.tagged"),
        "{others:?}"
    );
    setup.stop().await;
}

async fn a_failing_receiver_is_retried_and_a_refusing_one_given_up(store: AnyStore) {
    let desk = FakeDesk::new(System::Jira);
    let base = served(&desk).await;
    let setup = Setup::new(store, System::Jira, &base, false).await;
    let flaky = Receiver::default();
    flaky.script.lock().unwrap().push_back(503);
    let flaky_hook = add_webhook(&setup, &flaky.serve().await).await;
    let gone = Receiver::default();
    gone.script.lock().unwrap().extend([410, 410, 410]);
    let gone_hook = add_webhook(&setup, &gone.serve().await).await;
    setup.deliver(delivery(System::Jira, "7", &[], 0)).await;

    let delivered = settled_delivery(&setup, flaky_hook.id).await;
    assert_eq!(delivered.status, webhook::WebhookDeliveryStatus::Delivered);
    assert_eq!(delivered.attempts, 2);
    assert_eq!(flaky.received.lock().unwrap().len(), 2);
    let refused = settled_delivery(&setup, gone_hook.id).await;
    assert_eq!(refused.status, webhook::WebhookDeliveryStatus::Failed);
    assert_eq!(refused.attempts, 1);
    assert_eq!(refused.last_status, Some(410));
    assert!(
        refused
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("the receiver answered HTTP 410")),
        "{refused:?}"
    );
    assert_eq!(gone.received.lock().unwrap().len(), 1);
    setup.stop().await;
}
