//! The tagging API end to end: API keys, tagging with the promoted model, ingest and tag,
//! promotion hot-swapping in a running server, a broken new version never replacing a
//! working one, and the metrics that show it.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use datasets::store::prelude::*;

use axum::http::{Method, StatusCode};
use datasets::test_db::TestDatabase;
use datasets::{AnyStore, LabelMode, LabelSource, Project, ProjectName};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use workbench::app::app;
use workbench::config::Config;
use workbench::state::AppState;

async fn demo_project(store: &AnyStore, name: &str) -> Project {
    let name = ProjectName::parse(name).unwrap();
    datasets::demo_project::install_demo_project(store, &name, LabelMode::Multi, 500, 5)
        .await
        .unwrap()
}

async fn train_version(
    store: &AnyStore,
    project: &Project,
    models: &std::path::Path,
) -> datasets::ModelVersion {
    let mut request = trainer::TrainRequest::default();
    request.ngram.epochs = 4;
    trainer::train(store, project, &request, models, |_| {})
        .await
        .unwrap()
        .version
}

struct Harness {
    router: axum::Router,
    store: AnyStore,
    project: Project,
    key: String,
    models: tempfile::TempDir,
    _database: TestDatabase,
}

impl Harness {
    async fn new() -> Self {
        Self::on(TestDatabase::sqlite().unwrap()).await
    }

    async fn on(database: TestDatabase) -> Self {
        let store = database.store().await.unwrap();
        let project = demo_project(&store, "Acme").await;
        let key = support::project_key(&store, project.id, "tests").await;
        let state = AppState::new(store.clone(), Config::default());
        Self {
            router: app(state),
            store,
            project,
            key,
            models: tempfile::tempdir().unwrap(),
            _database: database,
        }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        support::call_api(&self.router, method, uri, key, body).await
    }

    async fn tag(&self, subject: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/v1/projects/Acme/tag",
            Some(&self.key),
            Some(json!({"subject": subject, "body": "Please help, it happened again today."})),
        )
        .await
    }
}

#[tokio::test]
async fn api_keys_are_required_and_checked_against_the_project() {
    let harness = Harness::new().await;
    let body = Some(json!({"subject": "x"}));
    let (status, error) = harness
        .call(Method::POST, "/v1/projects/Acme/tag", None, body.clone())
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, _) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tag",
            Some("tt_00000000_000000000000000000000000000000000000000000000000"),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let other = harness
        .store
        .create_project(&ProjectName::parse("Other").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let other_key = harness
        .store
        .create_api_key(
            &datasets::KeyGrant::Project {
                project_id: other.id,
                scopes: datasets::Scopes::all(),
            },
            "other",
        )
        .await
        .unwrap();
    let (status, error) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tag",
            Some(&other_key.secret),
            body.clone(),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    let revoked = harness
        .store
        .create_api_key(
            &datasets::KeyGrant::Project {
                project_id: harness.project.id,
                scopes: datasets::Scopes::all(),
            },
            "old",
        )
        .await
        .unwrap();
    harness
        .store
        .revoke_api_key(Some(harness.project.id), revoked.key.id)
        .await
        .unwrap();
    let (status, _) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tag",
            Some(&revoked.secret),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A valid key, but nothing promoted yet: a clear answer, not a crash.
    let (status, error) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tag",
            Some(&harness.key),
            body,
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_model"))
    );
}

#[tokio::test]
async fn promotion_serves_at_once_and_a_broken_version_never_replaces_a_working_one() {
    let harness = Harness::new().await;
    let first = train_version(&harness.store, &harness.project, harness.models.path()).await;
    let uri = format!("/v1/projects/Acme/models/{}/promote", first.id);
    let (status, promoted) = harness
        .call(Method::POST, &uri, Some(&harness.key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["serving"], json!(first.id));
    assert_eq!(promoted["actor"], "api-key:tests");

    let (status, tagged) = harness
        .tag("I was charged twice, I need a refund of the invoice")
        .await;
    assert_eq!(status, StatusCode::OK, "{tagged}");
    assert_eq!(tagged["version"], json!(first.id));
    assert_eq!(tagged["scores"].as_array().unwrap().len(), 10);
    assert!(tagged["needs_review"].is_boolean());
    assert_eq!(
        tagged["review_reason"].is_null(),
        tagged["needs_review"] == json!(false),
        "{tagged}"
    );
    // Texts without a word are never tagged, whatever the model's scores on them.
    for junk in ["🙂", "????", "!!! :-) 42"] {
        let (status, tagged) = harness
            .call(
                Method::POST,
                "/v1/projects/Acme/tag",
                Some(&harness.key),
                Some(json!({ "subject": junk })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tagged}");
        assert_eq!(tagged["applied"], json!([]), "{junk}: {tagged}");
        assert_eq!(tagged["needs_review"], json!(true));
        assert_eq!(tagged["review_reason"], "no_content");
        assert_eq!(tagged["scores"].as_array().unwrap().len(), 10);
    }

    // A second version whose weights were damaged after training: promoted in the
    // registry, but this server keeps serving the first and says why.
    let second = train_version(&harness.store, &harness.project, harness.models.path()).await;
    let weights =
        std::path::Path::new(&second.artifact_path).join(inference::artifact::WEIGHTS_FILE);
    std::fs::write(&weights, b"not a model").unwrap();
    let uri = format!("/v1/projects/Acme/models/{}/promote", second.id);
    let (status, result) = harness
        .call(
            Method::POST,
            &uri,
            Some(&harness.key),
            Some(json!({"force": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["serving"], json!(first.id));
    assert!(
        result["swap_error"]
            .as_str()
            .unwrap()
            .contains("changed or damaged"),
        "{result}"
    );
    let (status, tagged) = harness.tag("The dashboard is very slow to load").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tagged["version"], json!(first.id));

    let (_, ready) = harness.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready["models"][0]["version"], json!(first.id));
    assert!(ready["models"][0]["last_error"].as_str().is_some());

    // Rolling back puts the first version back in the registry too.
    let (status, rolled) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/models/rollback",
            Some(&harness.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rolled}");
    assert_eq!(rolled["version"], json!(first.id));
    assert_eq!(
        harness
            .store
            .promoted_model_version(harness.project.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );

    let (status, metrics) = harness.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains("tagger_model_swaps_total 1"), "{metrics}");
    assert!(metrics.contains("tagger_model_swap_failures_total 1"));
    assert!(metrics.contains(
        "tagger_http_requests_total{route=\"/v1/projects/{project}/tag\",status=\"200\"} 5"
    ));
    assert!(metrics.contains(&format!(
        "tagger_model_version{{project=\"{}\"}} {}",
        harness.project.id, first.id
    )));
}

#[tokio::test]
async fn ingest_and_tag_stores_the_ticket_with_the_models_tags() {
    let harness = Harness::new().await;
    let version = train_version(&harness.store, &harness.project, harness.models.path()).await;
    harness
        .store
        .promote_model_version(harness.project.id, version.id, "test")
        .await
        .unwrap();
    let ticket = json!({
        "source": "zendesk", "external_id": "ZD-1",
        "subject": "Charged twice this month", "body": "My card was charged twice for the invoice. Please refund."
    });
    let (status, body) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tickets/ingest",
            Some(&harness.key),
            Some(ticket.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], json!(version.id));
    let id = datasets::TicketId(body["id"].as_i64().unwrap());
    let stored = harness.store.ticket(harness.project.id, id).await.unwrap();
    // Which tags the model applies depends on its training; what is asserted is that the
    // store holds exactly the applied ones. The API lists them by descending probability,
    // the store by tag name: compared as sets, each order checked on its own.
    let applied: Vec<&str> = body["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let model_labels: Vec<&str> = stored
        .labels
        .iter()
        .filter(|l| l.source == LabelSource::Model)
        .map(|l| l.tag.as_str())
        .collect();
    assert_eq!(
        model_labels.iter().collect::<BTreeSet<_>>(),
        applied.iter().collect::<BTreeSet<_>>()
    );
    assert!(
        model_labels.is_sorted(),
        "store labels by tag name: {model_labels:?}"
    );
    let probabilities: Vec<f64> = body["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["probability"].as_f64().unwrap())
        .collect();
    assert!(
        probabilities.windows(2).all(|pair| pair[0] >= pair[1]),
        "scores by descending probability: {probabilities:?}"
    );
    assert!(
        stored
            .labels
            .iter()
            .all(|l| l.set_by == format!("model:{}", version.id))
    );

    let (status, again) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tickets/ingest",
            Some(&harness.key),
            Some(ticket),
        )
        .await;
    assert_eq!((status, &again["id"]), (StatusCode::OK, &body["id"]));

    let too_many: Vec<Value> = (0..65)
        .map(|i| json!({"subject": format!("t{i}")}))
        .collect();
    let (status, _) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tag/batch",
            Some(&harness.key),
            Some(json!({"tickets": too_many})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, batch) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tag/batch",
            Some(&harness.key),
            Some(
                json!({"tickets": [{"subject": "Login fails"}, {"body": "Export to CSV please"}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(batch["results"].as_array().unwrap().len(), 2);
    let (status, _) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tag",
            Some(&harness.key),
            Some(json!({"subject": " ", "body": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A reply from a German customer that quotes an English answer and pastes a Java trace.
const GERMAN_REPLY: &str = "Guten Tag,\n\nseit dem letzten Update können wir keine Rechnungen mehr \
    herunterladen. Es erscheint nur ein Fehler, und die Zahlung wurde doppelt abgebucht.\n\n\
    Mit freundlichen Grüßen\nJana\n\nOn Mon, Mar 4, 2024 at 2:20 PM Acme Support <support@example.com> wrote:\n\
    > Hello Jana, we refunded the duplicate charge on your invoice.\n> Best regards";

/// The same trouble in English, with a quoted reply chain and a stack trace.
const ENGLISH_REPLY: &str = "Hello,\n\nI was charged twice for the same invoice this month, please \
    refund one payment.\n\njava.lang.IllegalStateException: payment already captured\n\
    \tat com.acme.billing.Charge.capture(Charge.java:42)\n\tat com.acme.billing.Charge.run(Charge.java:17)\n\
    \tat com.acme.billing.Queue.next(Queue.java:88)\n\tat com.acme.billing.Queue.loop(Queue.java:60)\n\
    \tat java.base/java.lang.Thread.run(Thread.java:833)\n\n\
    On Mon, Mar 4, 2024 at 2:20 PM Acme Support <support@example.com> wrote:\n\
    > Das Problem ist behoben, bitte versuchen Sie es erneut.";

async fn unsupported_language_goes_to_review_with_its_reason(database: TestDatabase) {
    let harness = Harness::on(database).await;
    check_unsupported_language(&harness).await;
    harness._database.drop_database().await.unwrap();
}

async fn check_unsupported_language(harness: &Harness) {
    let version = train_version(&harness.store, &harness.project, harness.models.path()).await;
    let uri = format!("/v1/projects/Acme/models/{}/promote", version.id);
    let (status, _) = harness
        .call(Method::POST, &uri, Some(&harness.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ingest = |id: &str, body: &str| json!({"source": "zendesk", "external_id": id, "subject": "Rechnung / invoice", "body": body});
    // No languages listed: a German ticket is tagged like any other, and none is detected.
    let (status, before) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tag",
            Some(&harness.key),
            Some(json!({"body": GERMAN_REPLY})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_ne!(before["review_reason"], "unsupported_language");
    assert!(before.get("language").is_none(), "{before}");

    let (status, project) = harness
        .call(
            Method::PUT,
            "/v1/projects/Acme/languages",
            Some(&harness.key),
            Some(json!({"languages": ["eng", "ENG"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{project}");
    assert_eq!(project["languages"], json!(["eng"]));
    let (status, error) = harness
        .call(
            Method::PUT,
            "/v1/projects/Acme/languages",
            Some(&harness.key),
            Some(json!({"languages": ["english"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");

    let (status, german) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tickets/ingest",
            Some(&harness.key),
            Some(ingest("ZD-de", GERMAN_REPLY)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{german}");
    assert_eq!(german["review_reason"], "unsupported_language", "{german}");
    assert_eq!(german["needs_review"], json!(true));
    assert_eq!(german["applied"], json!([]));
    assert_eq!(german["language"], "deu");
    let id = datasets::TicketId(german["id"].as_i64().unwrap());
    let stored = harness.store.ticket(harness.project.id, id).await.unwrap();
    assert!(stored.labels.is_empty(), "{:?}", stored.labels);
    assert_eq!(stored.ticket.body, GERMAN_REPLY, "the raw text is stored");

    // English new text: its quoted German line is cut before detection, so it is English.
    let (status, english) = harness
        .call(
            Method::POST,
            "/v1/projects/Acme/tickets/ingest",
            Some(&harness.key),
            Some(ingest("ZD-en", ENGLISH_REPLY)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{english}");
    assert_eq!(english["language"], "eng", "{english}");
    assert_ne!(english["review_reason"], "unsupported_language");
    let (_, shown) = harness
        .call(Method::GET, "/v1/projects/Acme", Some(&harness.key), None)
        .await;
    assert_eq!(shown["languages"], json!(["eng"]));
}

#[tokio::test]
async fn on_sqlite_an_unsupported_language_goes_to_review_with_its_reason() {
    unsupported_language_goes_to_review_with_its_reason(TestDatabase::sqlite().unwrap()).await;
}

#[tokio::test]
async fn on_postgres_an_unsupported_language_goes_to_review_with_its_reason() {
    let test = "on_postgres_an_unsupported_language_goes_to_review_with_its_reason";
    if let Some(database) = TestDatabase::postgres(test).await.unwrap() {
        unsupported_language_goes_to_review_with_its_reason(database).await;
    }
}

/// Waits up to 10 s for the server to serve `version`.
async fn wait_for_version(
    state: &AppState,
    project: datasets::ProjectId,
    version: datasets::ModelVersionId,
    what: &str,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while state.tagging.serving(project).map(|s| s.version) != Some(version) {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_server_follows_promotions_made_by_another_process() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo_project(&store, "Acme").await;
    let models = tempfile::tempdir().unwrap();
    let first = train_version(&store, &project, models.path()).await;
    let second = train_version(&store, &project, models.path()).await;
    store
        .promote_model_version(project.id, first.id, "ops")
        .await
        .unwrap();

    let state = AppState::new(store.clone(), Config::default());
    state.tagging.sync_all(&store).await.unwrap();
    assert_eq!(state.tagging.serving(project.id).unwrap().version, first.id);
    let watcher = state
        .tagging
        .spawn_watcher(store.clone(), std::time::Duration::from_millis(50));

    // "Another process" (here: the store directly) promotes the second version.
    store
        .promote_model_version(project.id, second.id, "ops")
        .await
        .unwrap();
    wait_for_version(&state, project.id, second.id, "the watcher never swapped").await;
    watcher.abort();
}

#[tokio::test]
async fn on_postgres_a_promotion_is_heard_at_once_without_polling() {
    let Some(database) =
        TestDatabase::postgres("on_postgres_a_promotion_is_heard_at_once_without_polling")
            .await
            .unwrap()
    else {
        return;
    };
    let store = database.store().await.unwrap();
    let project = demo_project(&store, "Acme").await;
    let models = tempfile::tempdir().unwrap();
    let first = train_version(&store, &project, models.path()).await;
    let second = train_version(&store, &project, models.path()).await;
    store
        .promote_model_version(project.id, first.id, "ops")
        .await
        .unwrap();
    let state = AppState::new(store.clone(), Config::default());
    // A poll interval of an hour: only the notification can make this swap happen in time.
    let watcher = state
        .tagging
        .spawn_watcher(store.clone(), std::time::Duration::from_secs(3600));
    wait_for_version(
        &state,
        project.id,
        first.id,
        "the first sync never happened",
    )
    .await;
    store
        .promote_model_version(project.id, second.id, "ops")
        .await
        .unwrap();
    wait_for_version(
        &state,
        project.id,
        second.id,
        "the notification never arrived",
    )
    .await;
    watcher.abort();
    drop(state);
    database.drop_database().await.unwrap();
}

/// A file imported into a project with a model in service is tagged on the way in, through
/// the same tagging as the API, and each ticket is stored with the model's labels.
async fn an_imported_file_is_tagged_by_the_model_in_service(database: TestDatabase) {
    let harness = Harness::on(database).await;
    let version = train_version(&harness.store, &harness.project, harness.models.path()).await;
    harness
        .store
        .promote_model_version(harness.project.id, version.id, "test")
        .await
        .unwrap();
    let texts = [
        (
            "IMP-1",
            "Charged twice this month",
            "My card was charged twice. Please refund.",
        ),
        (
            "IMP-2",
            "Cannot log in",
            "The password reset link never arrives in my inbox.",
        ),
    ];
    let mut csv = String::from("id,subject,body\n");
    for (id, subject, body) in texts {
        csv.push_str(&format!("{id},{subject},{body}\n"));
    }
    let options = datasets::import::ImportOptions::new(
        ProjectName::parse("Acme").unwrap(),
        datasets::import::FileFormat::Csv,
        datasets::import::ColumnMap {
            text: vec!["subject".into(), "body".into()],
            label: None,
            id: Some("id".into()),
            groups: Vec::new(),
        },
        "history.csv",
    );
    let state = AppState::new(harness.store.clone(), Config::default());
    let verdicts = workbench::ingest::ServiceVerdicts {
        store: &harness.store,
        tagging: &state.tagging,
    };
    let report = datasets::import::import_file(
        &harness.store,
        std::io::Cursor::new(csv.into_bytes()),
        &options,
        &verdicts,
    )
    .await
    .unwrap();
    assert_eq!(report.created, 2);

    let stored = harness
        .store
        .search_tickets(harness.project.id, &datasets::TicketQuery::default())
        .await
        .unwrap();
    for (external_id, subject, body) in texts {
        let ticket = stored
            .iter()
            .find(|t| t.ticket.external_id == external_id)
            .unwrap();
        let (status, verdict) = harness
            .call(
                Method::POST,
                "/v1/projects/Acme/tag",
                Some(&harness.key),
                Some(json!({"subject": subject, "body": body})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{verdict}");
        let applied: BTreeSet<String> = verdict["applied"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let model_labels: Vec<_> = ticket
            .labels
            .iter()
            .filter(|l| l.source == LabelSource::Model)
            .collect();
        let labelled: BTreeSet<String> = model_labels
            .iter()
            .map(|l| l.tag.as_str().to_string())
            .collect();
        assert_eq!(labelled, applied, "{external_id}: {verdict}");
        assert!(
            model_labels
                .iter()
                .all(|l| l.set_by == format!("model:{}", version.id)),
            "{model_labels:?}"
        );
    }
}

#[tokio::test]
async fn on_sqlite_an_imported_file_is_tagged_by_the_model_in_service() {
    an_imported_file_is_tagged_by_the_model_in_service(TestDatabase::sqlite().unwrap()).await;
}

#[tokio::test]
async fn on_postgres_an_imported_file_is_tagged_by_the_model_in_service() {
    let test = "on_postgres_an_imported_file_is_tagged_by_the_model_in_service";
    if let Some(database) = TestDatabase::postgres(test).await.unwrap() {
        an_imported_file_is_tagged_by_the_model_in_service(database).await;
    }
}
