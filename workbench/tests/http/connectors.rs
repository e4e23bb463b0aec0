//! Connector webhooks end to end over the real router, on both databases: signed deliveries
//! from Zendesk, Jira and ServiceNow are stored at once and tagged by a queued job,
//! refused without a valid signature, deduplicated, kept in the vendor's order, ignored when
//! not about tickets, and our own write-back's echo is not taken for people's labels. Then
//! the `tagger connectors` commands.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use connectors::System;
use datasets::connector::{
    Connector, ConnectorName, ConnectorSettings, DeliveryClaim, DeliveryStatus, NewConnector,
};
use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::*;
use serde_json::{Value, json};
use workbench::app::app;
use workbench::config::Config;
use workbench::credentials::{CredentialKey, Credentials};
use workbench::state::AppState;

/// The server's credentials key in these tests (64 hex digits).
const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const SECRET: &str = "a-webhook-secret-of-some-length";

struct TestApp {
    router: axum::Router,
    store: AnyStore,
    project: Project,
}

impl TestApp {
    /// Project "Acme" with the demo taxonomy (no tickets, no model).
    async fn new(store: AnyStore) -> Self {
        let project = store
            .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
            .await
            .unwrap();
        for tag in datasets::demo::default_taxonomy() {
            store.create_tag(project.id, &tag).await.unwrap();
        }
        Self::with_project(store, project)
    }

    fn with_project(store: AnyStore, project: Project) -> Self {
        let config = Config {
            encryption_key: Some(KEY.into()),
            ..Config::default()
        };
        Self {
            router: app(AppState::new(store.clone(), config)),
            store,
            project,
        }
    }

    async fn connector(&self, name: &str, system: System) -> Connector {
        let key = CredentialKey::parse(KEY).unwrap();
        let credentials = Credentials {
            webhook_secret: SECRET.into(),
            user: None,
            token: None,
        };
        self.store
            .create_connector(&NewConnector {
                project_id: self.project.id,
                name: ConnectorName::parse(name).unwrap(),
                system,
                base_url: "https://acme.example".into(),
                settings: ConnectorSettings::default(),
                sealed_credentials: key.seal(name, &credentials).unwrap(),
            })
            .await
            .unwrap()
    }

    async fn post(
        &self,
        name: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/connectors/{name}/webhook"))
            .header("content-type", "application/json");
        for (header, value) in headers {
            request = request.header(*header, value);
        }
        support::send_json(
            &self.router,
            request.body(Body::from(body.to_vec())).unwrap(),
        )
        .await
    }

    async fn tickets(&self) -> Vec<LabelledTicket> {
        self.store
            .search_tickets(self.project.id, &TicketQuery::default())
            .await
            .unwrap()
    }
}

/// Request headers, name and value.
type Headers = Vec<(&'static str, String)>;

/// The headers a vendor signs a body with, using `secret`.
fn signed(system: System, secret: &str, body: &[u8]) -> Headers {
    match system {
        System::Zendesk => {
            let timestamp = "2026-01-05T10:00:00Z";
            vec![
                ("x-zendesk-webhook-signature-timestamp", timestamp.into()),
                (
                    "x-zendesk-webhook-signature",
                    connectors::sign_zendesk(secret.as_bytes(), timestamp, body),
                ),
            ]
        }
        System::Jira => vec![(
            "x-hub-signature",
            connectors::sign_jira(secret.as_bytes(), body),
        )],
        System::ServiceNow => {
            let timestamp = "1767607200";
            vec![
                ("x-tagger-timestamp", timestamp.into()),
                (
                    "x-tagger-signature",
                    connectors::sign_servicenow(secret.as_bytes(), timestamp, body),
                ),
            ]
        }
    }
}

fn jira_issue(event: &str, id: &str, summary: &str, labels: &[&str], updated: &str) -> Vec<u8> {
    json!({"timestamp": 1_767_607_200_000_i64, "webhookEvent": event,
           "issue": {"id": id, "key": format!("SUP-{id}"), "fields": {
               "summary": summary, "description": "My card was charged twice for the invoice.",
               "labels": labels, "updated": updated, "created": "2026-01-05T10:00:00.000+0000"}}})
    .to_string()
    .into_bytes()
}

fn servicenow_record(subject: &str, updated: &str) -> Vec<u8> {
    json!({"event": "incident.updated", "table": "incident", "sys_id": "9d385017c611228701d22104cc95c371",
           "number": "INC0010042", "short_description": subject, "description": "Since Monday",
           "category": "network", "sys_updated_on": updated})
    .to_string()
    .into_bytes()
}

async fn a_signed_delivery_is_stored_tagged_and_its_matching_labels_imported(store: AnyStore) {
    let project = datasets::demo_project::install_demo_project(
        &store,
        &ProjectName::parse("Acme").unwrap(),
        LabelMode::Multi,
        400,
        5,
    )
    .await
    .unwrap();
    let models = tempfile::tempdir().unwrap();
    let mut request = trainer::TrainRequest::default();
    request.ngram.epochs = 4;
    let version = trainer::train(&store, &project, &request, models.path(), |_| {})
        .await
        .unwrap()
        .version;
    store
        .promote_model_version(project.id, version.id, "test")
        .await
        .unwrap();
    let queue = trainer::jobs::JobQueue::open(&store, &trainer::jobs::QueueSettings::default())
        .await
        .unwrap();
    let mut app = TestApp::with_project(store, project);
    let config = Config {
        encryption_key: Some(KEY.into()),
        ..Config::default()
    };
    app.router = workbench::app::app(
        AppState::new(app.store.clone(), config.clone()).with_jobs(queue.clone()),
    );
    app.connector("jira-acme", System::Jira).await;
    let body = jira_issue(
        "jira:issue_created",
        "10042",
        "Charged twice this month",
        &["billing", "vip"],
        "2026-01-05T10:00:00.000+0000",
    );
    let (status, answer) = app
        .post("jira-acme", &signed(System::Jira, SECRET, &body), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "stored");
    assert_eq!(answer["tagging"], "queued", "tagged later, by a job");
    assert_eq!(
        answer["imported_labels"], 1,
        "billing matches a tag, vip does not"
    );
    let ticket_id = TicketId(answer["ticket_id"].as_i64().unwrap());
    let untagged = app.store.ticket(app.project.id, ticket_id).await.unwrap();
    assert!(
        untagged
            .labels
            .iter()
            .all(|l| l.source != LabelSource::Model),
        "no model ran while the help desk waited: {:?}",
        untagged.labels
    );
    let ticket =
        run_worker_until_tagged(&app.store, &queue, config, app.project.id, ticket_id).await;
    assert_eq!(ticket.ticket.source, "jira-acme");
    assert_eq!(ticket.ticket.external_id, "10042");
    assert_eq!(ticket.ticket.subject, "Charged twice this month");
    assert_eq!(ticket.ticket.metadata["reference"], "SUP-10042");
    let imported: Vec<(&str, &str)> = ticket
        .labels
        .iter()
        .filter(|l| l.source == LabelSource::Import)
        .map(|l| (l.tag.as_str(), l.set_by.as_str()))
        .collect();
    assert_eq!(imported, vec![("Billing", "connector:jira-acme")]);
    let model_set_by = format!("model:{}", version.id);
    assert!(
        ticket
            .labels
            .iter()
            .filter(|l| l.source == LabelSource::Model)
            .all(|l| l.set_by == model_set_by),
        "{:?}",
        ticket.labels
    );
    assert!(
        ticket.labels.iter().any(|l| l.source == LabelSource::Model),
        "tagged"
    );
    let connector = app
        .store
        .connector_by_name(&ConnectorName::parse("jira-acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    let log = app.store.deliveries(connector.id, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, datasets::connector::DeliveryStatus::Stored);
    assert_eq!(log[0].event, "created");
    assert_eq!(log[0].ticket_id, Some(ticket.ticket.id));
}

/// Runs a worker until the ticket has the model's labels (its tagging job ran); the ticket.
async fn run_worker_until_tagged(
    store: &AnyStore,
    queue: &trainer::jobs::JobQueue,
    config: Config,
    project: ProjectId,
    ticket: TicketId,
) -> LabelledTicket {
    let runner = workbench::connector_jobs::ConnectorRunner::new(store.clone(), config).unwrap();
    let models = tempfile::tempdir().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(trainer::jobs::run_worker(
        queue.clone(),
        trainer::jobs::WorkerState {
            store: store.clone(),
            artifacts: inference::artifact_store::ArtifactStore::local(
                models.path().join("models"),
            ),
            name: "connectors-test".into(),
            stopping: Default::default(),
            guard_margin: 0.02,
            retag_after_promotion: 0,
            connector_jobs: Some(std::sync::Arc::new(runner)),
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let tagged = loop {
        let labelled = store.ticket(project, ticket).await.unwrap();
        if labelled
            .labels
            .iter()
            .any(|l| l.source == LabelSource::Model)
        {
            break labelled;
        }
        assert!(std::time::Instant::now() < deadline, "never tagged");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
    tagged
}

async fn a_delivery_with_a_missing_or_wrong_signature_is_refused_and_nothing_stored(
    store: AnyStore,
) {
    let app = TestApp::new(store).await;
    let connector = app.connector("zendesk-acme", System::Zendesk).await;
    let body = json!({"type": "zen:event-type:ticket.created", "id": "01J", "subject": "zen:ticket:7",
                      "detail": {"id": "7", "subject": "Refund please", "description": "Twice", "tags": []}})
    .to_string()
    .into_bytes();
    let good = signed(System::Zendesk, SECRET, &body);
    let cases: Vec<(&str, Headers, Vec<u8>, &str)> = vec![
        ("no signature", vec![], body.clone(), "zendesk-acme"),
        (
            "only the timestamp",
            vec![good[0].clone()],
            body.clone(),
            "zendesk-acme",
        ),
        (
            "another secret",
            signed(System::Zendesk, "not-the-secret", &body),
            body.clone(),
            "zendesk-acme",
        ),
        (
            "a changed body",
            good.clone(),
            body.replace_bytes(),
            "zendesk-acme",
        ),
        (
            "a moved timestamp",
            vec![
                (
                    "x-zendesk-webhook-signature-timestamp",
                    "2026-01-05T10:00:01Z".into(),
                ),
                good[1].clone(),
            ],
            body.clone(),
            "zendesk-acme",
        ),
        (
            "garbage",
            vec![
                ("x-zendesk-webhook-signature", "%%%".into()),
                good[0].clone(),
            ],
            body.clone(),
            "zendesk-acme",
        ),
        ("an unknown connector", good.clone(), body.clone(), "nobody"),
        (
            "a name that cannot be a connector",
            good.clone(),
            body.clone(),
            "a%20b",
        ),
    ];
    for (case, headers, body, name) in cases {
        let (status, answer) = app.post(name, &headers, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthorized", "{case}");
    }
    assert!(app.tickets().await.is_empty());
    assert!(
        app.store
            .deliveries(connector.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let (status, answer) = app.post("zendesk-acme", &good, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(app.tickets().await.len(), 1);
}

/// A byte of the body changed (the signature was made over the original).
trait ReplaceBytes {
    fn replace_bytes(&self) -> Vec<u8>;
}

impl ReplaceBytes for Vec<u8> {
    fn replace_bytes(&self) -> Vec<u8> {
        String::from_utf8_lossy(self)
            .replace("Refund please", "Refund pleas3")
            .into_bytes()
    }
}

async fn a_redelivery_makes_no_second_ticket_and_no_second_log_entry(store: AnyStore) {
    let app = TestApp::new(store).await;
    let jira = app.connector("jira-acme", System::Jira).await;
    let body = jira_issue(
        "jira:issue_created",
        "1",
        "Export times out",
        &[],
        "2026-01-05T10:00:00.000+0000",
    );
    let mut headers = signed(System::Jira, SECRET, &body);
    headers.push(("x-atlassian-webhook-identifier", "delivery-1".into()));
    let (status, first) = app.post("jira-acme", &headers, &body).await;
    assert_eq!(
        (status, first["status"].as_str()),
        (StatusCode::OK, Some("stored")),
        "{first}"
    );
    // Jira's retry, possibly half an hour later: same identifier, same body, a retry count.
    headers.push(("x-atlassian-webhook-retry", "1".into()));
    let (status, again) = app.post("jira-acme", &headers, &body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["ticket_id"], first["ticket_id"]);
    assert_eq!(app.tickets().await.len(), 1);
    assert_eq!(app.store.deliveries(jira.id, 10).await.unwrap().len(), 1);

    // ServiceNow sends no delivery id: the same bytes are the same delivery.
    let snow = app.connector("snow-acme", System::ServiceNow).await;
    let record = servicenow_record("VPN drops", "2026-01-05 10:00:00");
    let headers = signed(System::ServiceNow, SECRET, &record);
    let (status, first) = app.post("snow-acme", &headers, &record).await;
    assert_eq!(
        (status, first["status"].as_str()),
        (StatusCode::OK, Some("stored")),
        "{first}"
    );
    let (_, again) = app.post("snow-acme", &headers, &record).await;
    assert_eq!(again["status"], "duplicate");
    assert_eq!(app.tickets().await.len(), 2);
    assert_eq!(app.store.deliveries(snow.id, 10).await.unwrap().len(), 1);
}

async fn an_older_update_arriving_after_a_newer_one_changes_nothing(store: AnyStore) {
    let app = TestApp::new(store).await;
    app.connector("snow-acme", System::ServiceNow).await;
    let newer = servicenow_record("VPN drops every 10 minutes", "2026-01-05 10:05:00");
    let older = servicenow_record("VPN drops", "2026-01-05 10:00:00");
    let (_, stored) = app
        .post(
            "snow-acme",
            &signed(System::ServiceNow, SECRET, &newer),
            &newer,
        )
        .await;
    assert_eq!(stored["status"], "stored", "{stored}");
    let (status, late) = app
        .post(
            "snow-acme",
            &signed(System::ServiceNow, SECRET, &older),
            &older,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{late}");
    assert_eq!(late["status"], "stale");
    assert_eq!(late["ticket_id"], stored["ticket_id"]);
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].ticket.subject, "VPN drops every 10 minutes");
    // A later change still lands.
    let latest = servicenow_record("VPN fixed?", "2026-01-05 11:00:00");
    let (_, answer) = app
        .post(
            "snow-acme",
            &signed(System::ServiceNow, SECRET, &latest),
            &latest,
        )
        .await;
    assert_eq!(answer["status"], "stored", "{answer}");
    assert_eq!(app.tickets().await[0].ticket.subject, "VPN fixed?");
}

async fn events_that_are_not_about_tickets_are_acknowledged_and_ignored(store: AnyStore) {
    let app = TestApp::new(store).await;
    let zendesk = app.connector("zendesk-acme", System::Zendesk).await;
    let user_deleted = json!({"type": "zen:event-type:user.deleted", "account_id": 1, "id": "01K",
                              "detail": {"id": "361"}})
    .to_string()
    .into_bytes();
    let (status, answer) = app
        .post(
            "zendesk-acme",
            &signed(System::Zendesk, SECRET, &user_deleted),
            &user_deleted,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "ignored");
    assert_eq!(answer["event"], "zen:event-type:user.deleted");

    let jira = app.connector("jira-acme", System::Jira).await;
    let comment = br#"{"webhookEvent":"comment_created","comment":{"id":"1"}}"#.to_vec();
    let (status, answer) = app
        .post(
            "jira-acme",
            &signed(System::Jira, SECRET, &comment),
            &comment,
        )
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );

    // A trigger body naming only the ticket: acknowledged, logged for fetching.
    let trigger = br#"{"ticket_id":"4821","event":"ticket.created"}"#.to_vec();
    let (status, answer) = app
        .post(
            "zendesk-acme",
            &signed(System::Zendesk, SECRET, &trigger),
            &trigger,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "awaiting_fetch");

    // Signed but not a delivery we understand: a clear 400, nothing logged.
    let nonsense = br#"{"hello":"world"}"#.to_vec();
    let (status, answer) = app
        .post(
            "zendesk-acme",
            &signed(System::Zendesk, SECRET, &nonsense),
            &nonsense,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    assert!(app.tickets().await.is_empty());
    let statuses: Vec<&str> = app
        .store
        .deliveries(zendesk.id, 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.status.as_str())
        .collect();
    assert_eq!(statuses, vec!["awaiting_fetch", "ignored"]);
    assert_eq!(app.store.deliveries(jira.id, 10).await.unwrap().len(), 1);
}

async fn the_echo_of_our_own_write_back_does_not_become_labels(store: AnyStore) {
    let app = TestApp::new(store).await;
    let connector = app.connector("jira-acme", System::Jira).await;
    let created = jira_issue(
        "jira:issue_created",
        "5",
        "Charged twice",
        &[],
        "2026-01-05T10:00:00.000+0000",
    );
    let (_, first) = app
        .post(
            "jira-acme",
            &signed(System::Jira, SECRET, &created),
            &created,
        )
        .await;
    assert_eq!(first["status"], "stored", "{first}");
    // Our write-back added the model's tag `billing`; Jira answers with an update carrying it.
    app.store
        .record_written_labels(connector.id, "5", &["billing".to_string()])
        .await
        .unwrap();
    let echo = jira_issue(
        "jira:issue_updated",
        "5",
        "Charged twice",
        &["billing"],
        "2026-01-05T10:01:00.000+0000",
    );
    let (_, answer) = app
        .post("jira-acme", &signed(System::Jira, SECRET, &echo), &echo)
        .await;
    assert_eq!(answer["status"], "stored", "{answer}");
    assert_eq!(answer["imported_labels"], 0);
    // A person then adds `bug` in Jira: that one is theirs and is imported.
    let person = jira_issue(
        "jira:issue_updated",
        "5",
        "Charged twice",
        &["billing", "bug"],
        "2026-01-05T10:02:00.000+0000",
    );
    let (_, answer) = app
        .post("jira-acme", &signed(System::Jira, SECRET, &person), &person)
        .await;
    assert_eq!(answer["imported_labels"], 1, "{answer}");
    let ticket = &app.tickets().await[0];
    let labels: Vec<(&str, LabelSource)> = ticket
        .labels
        .iter()
        .map(|l| (l.tag.as_str(), l.source))
        .collect();
    assert_eq!(labels, vec![("Bug", LabelSource::Import)]);
    assert!(ticket.labels.iter().all(|l| l.source != LabelSource::Human));
}

async fn real_captured_payloads_are_accepted_through_the_endpoint(store: AnyStore) {
    let app = TestApp::new(store).await;
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/tests/fixtures");
    for (system, name, file) in [
        (System::Jira, "jira-acme", "jira/webhook-issue-created.json"),
        (
            System::Zendesk,
            "zendesk-acme",
            "zendesk/gozendesk-get-ticket.json",
        ),
        (
            System::ServiceNow,
            "snow-acme",
            "servicenow/create_change_request.json",
        ),
    ] {
        app.connector(name, system).await;
        let body = std::fs::read(fixtures.join(file)).unwrap();
        let (status, answer) = app.post(name, &signed(system, SECRET, &body), &body).await;
        assert_eq!(status, StatusCode::OK, "{file}: {answer}");
        assert_eq!(answer["status"], "stored", "{file}: {answer}");
    }
    assert_eq!(app.tickets().await.len(), 3);
}

async fn a_delivery_abandoned_mid_way_is_claimed_again_not_taken_for_a_duplicate(store: AnyStore) {
    let app = TestApp::new(store).await;
    let connector = app.connector("jira-acme", System::Jira).await;
    let minute = chrono::Duration::seconds(60);
    let claim = |after| {
        app.store
            .claim_delivery(connector.id, "identifier:1", "created", after)
    };
    let DeliveryClaim::New(first) = claim(minute).await.unwrap() else {
        panic!("a new key is new");
    };
    // The process died before finishing: a retry within the minute is a duplicate...
    assert!(matches!(claim(minute).await.unwrap(), DeliveryClaim::Duplicate(d) if d.id == first));
    // ...and one after it is processed again, under the same log entry.
    assert_eq!(
        claim(chrono::Duration::zero()).await.unwrap(),
        DeliveryClaim::New(first)
    );
    app.store
        .finish_delivery(first, DeliveryStatus::Stored, None)
        .await
        .unwrap();
    assert!(matches!(
        claim(chrono::Duration::zero()).await.unwrap(),
        DeliveryClaim::Duplicate(d) if d.status == DeliveryStatus::Stored
    ));
}

/// `GET` with a key; the status and JSON answer.
async fn get_json(router: &axum::Router, uri: &str, key: &str) -> (StatusCode, Value) {
    support::call_api(router, Method::GET, uri, Some(key), None).await
}

/// An admin key of the project pages through the connector's deliveries and write-backs,
/// newest first; a key without `admin`, or another project's connector, sees nothing.
async fn the_connector_logs_are_paged_for_the_projects_admins(store: AnyStore) {
    let app = TestApp::new(store).await;
    let jira = app.connector("jira-acme", System::Jira).await;
    for id in 1..=5 {
        let body = jira_issue(
            "jira:issue_created",
            &id.to_string(),
            "Export times out",
            &[],
            "2026-01-05T10:00:00.000+0000",
        );
        let (status, answer) = app
            .post("jira-acme", &signed(System::Jira, SECRET, &body), &body)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let ticket = app.tickets().await[0].ticket.id;
    for external_id in ["1", "2", "3"] {
        app.store
            .queue_writeback(
                jira.id,
                external_id,
                ticket,
                &[format!("label-{external_id}")],
            )
            .await
            .unwrap();
    }
    let admin = crate::support::project_key(&app.store, app.project.id, "admin").await;
    let base = "/v1/projects/Acme/connectors/jira-acme";
    let (status, first) =
        get_json(&app.router, &format!("{base}/deliveries?limit=2"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let mut seen: Vec<i64> = Vec::new();
    let mut page = first;
    loop {
        for delivery in page["deliveries"].as_array().unwrap() {
            assert_eq!(delivery["status"], "stored", "{delivery}");
            assert_eq!(delivery["event"], "created", "{delivery}");
            seen.push(delivery["id"].as_i64().unwrap());
        }
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        let (status, next) = get_json(
            &app.router,
            &format!("{base}/deliveries?limit=2&cursor={cursor}"),
            &admin,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{next}");
        page = next;
    }
    let mut newest_first = seen.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seen, newest_first);
    assert_eq!(seen.len(), 5, "every delivery once: {seen:?}");

    let (status, writes) = get_json(&app.router, &format!("{base}/write-backs"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{writes}");
    let labels: Vec<&str> = writes["write_backs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|write| write["labels"][0].as_str().unwrap())
        .collect();
    assert_eq!(labels, vec!["label-3", "label-2", "label-1"]);
    assert_eq!(writes["write_backs"][0]["status"], "pending");
    assert!(writes["next_cursor"].is_null(), "{writes}");

    let (status, refused) =
        get_json(&app.router, &format!("{base}/deliveries?cursor=p2"), &admin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let reader = app
        .store
        .create_api_key(
            &KeyGrant::Project {
                project_id: app.project.id,
                scopes: "read".parse().unwrap(),
            },
            "reader",
        )
        .await
        .unwrap()
        .secret;
    let (status, _) = get_json(&app.router, &format!("{base}/deliveries"), &reader).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other = app
        .store
        .create_project(&ProjectName::parse("Other").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let other_admin = crate::support::project_key(&app.store, other.id, "other").await;
    let (status, _) = get_json(
        &app.router,
        "/v1/projects/Other/connectors/jira-acme/deliveries",
        &other_admin,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another project's connector");
}

async fn an_oversized_body_is_refused(store: AnyStore) {
    let app = TestApp::new(store).await;
    app.connector("jira-acme", System::Jira).await;
    let body = vec![b' '; workbench::connector_deliveries::MAX_WEBHOOK_BYTES + 1];
    let (status, answer) = app
        .post("jira-acme", &signed(System::Jira, SECRET, &body), &body)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(app.tickets().await.is_empty());
}

/// Jira's issue type and components become imported labels where the connector was set to
/// import them and they match project tags; its priority, not chosen, does not.
async fn chosen_jira_fields_are_imported_as_labels(store: AnyStore) {
    let test = TestApp::new(store).await;
    let mut connector = test.connector("jira-acme", System::Jira).await;
    let issue = |id: &str| {
        json!({"timestamp": 1_767_607_200_000_i64, "webhookEvent": "jira:issue_created",
               "issue": {"id": id, "key": format!("SUP-{id}"), "fields": {
                   "summary": "Export fails", "description": null, "labels": [],
                   "issuetype": {"id": "10004", "name": "Bug"},
                   "priority": {"name": "Billing"},
                   "components": [{"name": "Billing"}, {"name": "Mobile"}],
                   "updated": "2026-01-05T10:00:00.000+0000"}}})
        .to_string()
        .into_bytes()
    };
    let imported = |answer: &Value| answer["imported_labels"].as_u64().unwrap();
    let body = issue("1");
    let (status, answer) = test
        .post("jira-acme", &signed(System::Jira, SECRET, &body), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(imported(&answer), 0, "no field chosen: labels only");

    connector.settings.import_fields = vec!["issuetype".into(), "components".into()];
    test.store.update_connector(&connector).await.unwrap();
    let body = issue("2");
    let (status, answer) = test
        .post("jira-acme", &signed(System::Jira, SECRET, &body), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(imported(&answer), 2, "{answer}");
    let ticket = test
        .store
        .ticket(
            test.project.id,
            TicketId(answer["ticket_id"].as_i64().unwrap()),
        )
        .await
        .unwrap();
    let mut names: Vec<&str> = ticket
        .labels
        .iter()
        .filter(|l| l.source == LabelSource::Import)
        .map(|l| l.tag.as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["Billing", "Bug"]);
}

/// The Connectors page's edit on each database: the address and settings change, the name
/// and system stay, and an invalid address or an unknown connector is refused.
async fn a_connector_is_edited_in_place(store: AnyStore) {
    let test = TestApp::new(store).await;
    let mut connector = test.connector("desk", System::Zendesk).await;
    connector.base_url = "https://new.example".into();
    connector.settings.write_back = true;
    connector.settings.requests_per_minute = Some(30);
    let saved = test.store.update_connector(&connector).await.unwrap();
    assert_eq!(saved.base_url, "https://new.example");
    assert!(saved.settings.write_back);
    assert_eq!(saved.settings.requests_per_minute, Some(30));
    assert_eq!(
        (saved.name.as_str(), saved.system),
        ("desk", System::Zendesk)
    );
    let mut invalid = saved.clone();
    invalid.base_url = "not a url".into();
    assert!(matches!(
        test.store.update_connector(&invalid).await,
        Err(StoreError::Invalid(_))
    ));
    let mut unknown = saved.clone();
    unknown.id = datasets::ConnectorId(saved.id.0 + 100);
    assert!(matches!(
        test.store.update_connector(&unknown).await,
        Err(StoreError::NotFound(_))
    ));
    let stored = test
        .store
        .connector_by_name(&saved.name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, saved);
}

datasets::on_both_backends!(
    a_connector_is_edited_in_place,
    chosen_jira_fields_are_imported_as_labels,
    a_signed_delivery_is_stored_tagged_and_its_matching_labels_imported,
    a_delivery_with_a_missing_or_wrong_signature_is_refused_and_nothing_stored,
    a_redelivery_makes_no_second_ticket_and_no_second_log_entry,
    an_older_update_arriving_after_a_newer_one_changes_nothing,
    events_that_are_not_about_tickets_are_acknowledged_and_ignored,
    the_echo_of_our_own_write_back_does_not_become_labels,
    real_captured_payloads_are_accepted_through_the_endpoint,
    a_delivery_abandoned_mid_way_is_claimed_again_not_taken_for_a_duplicate,
    an_oversized_body_is_refused,
    the_connector_logs_are_paged_for_the_projects_admins,
);

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn tagger(database_url: &str, data_dir: &std::path::Path, args: &[&str]) -> Run {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tagger"))
        .arg("--database-url")
        .arg(database_url)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("TAGGER_ENCRYPTION_KEY")
        .env("TAGGER_LOG", "warn")
        .output()
        .unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn the_cli_adds_lists_and_removes_connectors(database: &TestDatabase) {
    let store = database.store().await.unwrap();
    store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let url = database.url.as_str();
    let token = "jira-api-token-0123456789";
    let add = tagger(
        url,
        data_dir.path(),
        &[
            "connectors",
            "add",
            "--project",
            "Acme",
            "--system",
            "jira",
            "--name",
            "jira-acme",
            "--base-url",
            "https://acme.atlassian.net",
            "--webhook-secret",
            SECRET,
            "--user",
            "bot@acme.example",
            "--token",
            token,
            "--write-back",
            "on",
        ],
    );
    assert!(add.ok, "{}", add.stderr);
    assert_eq!(add.stdout.trim(), "/v1/connectors/jira-acme/webhook");
    assert!(
        data_dir.path().join("encryption.key").exists(),
        "a laptop gets a generated key"
    );

    let snow = tagger(
        url,
        data_dir.path(),
        &[
            "connectors",
            "add",
            "--project",
            "Acme",
            "--system",
            "servicenow",
            "--name",
            "snow",
            "--base-url",
            "https://acme.service-now.com",
            "--webhook-secret",
            "another-secret-value",
        ],
    );
    assert!(snow.ok, "{}", snow.stderr);

    for (args, message) in [
        (vec!["--system", "freshdesk", "--name", "x"], "freshdesk"),
        (
            vec!["--system", "jira", "--name", "jira-ACME"],
            "already exists",
        ),
        (vec!["--system", "jira", "--name", "a b"], "name"),
        (
            vec!["--system", "jira", "--name", "y", "--table", "incident"],
            "ServiceNow",
        ),
    ] {
        let mut all = vec![
            "connectors",
            "add",
            "--project",
            "Acme",
            "--base-url",
            "https://x.example",
            "--webhook-secret",
            "s3cret-value",
        ];
        all.extend(args);
        let refused = tagger(url, data_dir.path(), &all);
        assert!(!refused.ok, "{all:?} was accepted");
        assert!(
            refused.stderr.contains(message),
            "{all:?}: {}",
            refused.stderr
        );
    }

    let list = tagger(url, data_dir.path(), &["connectors", "list"]);
    assert!(list.ok, "{}", list.stderr);
    assert!(
        list.stdout.contains("jira-acme") && list.stdout.contains("Acme"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("incident"),
        "servicenow's default table: {}",
        list.stdout
    );
    assert!(list.stdout.contains("bot@acme.example"), "{}", list.stdout);
    for secret in [SECRET, token, "another-secret-value"] {
        assert!(
            !list.stdout.contains(secret) && !list.stderr.contains(secret),
            "{secret} shown"
        );
    }
    let stored = store
        .connector_by_name(&ConnectorName::parse("jira-acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.settings.write_back);
    assert!(
        !stored
            .sealed_credentials
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "sealed at rest"
    );

    let writebacks = tagger(
        url,
        data_dir.path(),
        &["connectors", "writebacks", "--name", "jira-acme"],
    );
    assert!(
        writebacks.ok && writebacks.stdout.contains("no write-backs yet"),
        "{}{}",
        writebacks.stdout,
        writebacks.stderr
    );
    let field_on_jira = tagger(
        url,
        data_dir.path(),
        &[
            "connectors",
            "add",
            "--project",
            "Acme",
            "--system",
            "jira",
            "--name",
            "jira-2",
            "--base-url",
            "https://acme.atlassian.net",
            "--webhook-secret",
            "s3cret-value",
            "--field",
            "u_auto_tags",
        ],
    );
    assert!(
        !field_on_jira.ok && field_on_jira.stderr.contains("field is for ServiceNow"),
        "{}",
        field_on_jira.stderr
    );
    let removed = tagger(
        url,
        data_dir.path(),
        &["connectors", "remove", "--name", "jira-acme"],
    );
    assert!(removed.ok, "{}", removed.stderr);
    let again = tagger(
        url,
        data_dir.path(),
        &["connectors", "remove", "--name", "jira-acme"],
    );
    assert!(
        !again.ok && again.stderr.contains("not found"),
        "{}",
        again.stderr
    );
    let list = tagger(url, data_dir.path(), &["connectors", "list"]);
    assert!(
        !list.stdout.contains("jira-acme") && list.stdout.contains("snow"),
        "{}",
        list.stdout
    );
}

#[tokio::test]
async fn the_cli_adds_lists_and_removes_connectors_on_sqlite() {
    the_cli_adds_lists_and_removes_connectors(&TestDatabase::sqlite().unwrap()).await;
}

#[tokio::test]
async fn the_cli_adds_lists_and_removes_connectors_on_postgres() {
    let Some(database) = TestDatabase::postgres("cli_connectors").await.unwrap() else {
        return;
    };
    the_cli_adds_lists_and_removes_connectors(&database).await;
    database.drop_database().await.unwrap();
}
