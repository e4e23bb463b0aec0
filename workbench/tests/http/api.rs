//! The JSON API end to end: requests through the real router on a fresh database, checking
//! status codes and the `{error: {code, message}}` shape of every failure. Requests carry
//! the key their route needs (`api_auth.rs` checks the refusals).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use datasets::store::prelude::*;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use datasets::test_db::TestDatabase;
use datasets::{AnyStore, ProjectName};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use tower::ServiceExt;
use workbench::app::{Application, app};
use workbench::config::Config;
use workbench::state::AppState;

struct TestApp {
    router: axum::Router,
    store: AnyStore,
    /// Creates and lists projects.
    admin_key: String,
    /// A key with every scope per project, by folded name, made on first use.
    project_keys: Mutex<HashMap<String, String>>,
    _database: TestDatabase,
}

impl TestApp {
    async fn new() -> Self {
        let database = TestDatabase::sqlite().unwrap();
        let store = database.store().await.unwrap();
        let state = AppState::new(
            store.clone(),
            Config {
                max_batch: 5,
                ..Config::default()
            },
        );
        Self {
            router: app(state),
            admin_key: support::instance_admin_key(&store, "tests").await,
            store,
            project_keys: Mutex::new(HashMap::new()),
            _database: database,
        }
    }

    /// The key a request to `uri` needs: the instance-admin key for `/v1/projects`, the
    /// project's own key below it. For a project that does not exist, a key of another one
    /// (the answer is then about the project, not the key); none when there is no project.
    async fn key_for(&self, uri: &str) -> Option<String> {
        let Some(rest) = uri.strip_prefix("/v1/projects/") else {
            return uri
                .starts_with("/v1/projects")
                .then(|| self.admin_key.clone());
        };
        let name = rest.split(['/', '?']).next().unwrap();
        let folded = name.to_lowercase();
        if let Some(key) = self.project_keys.lock().unwrap().get(&folded) {
            return Some(key.clone());
        }
        let project = match ProjectName::parse(name) {
            Ok(parsed) => self.store.project_by_name(&parsed).await.unwrap(),
            Err(_) => None,
        };
        match project {
            Some(project) => {
                let key = support::project_key(&self.store, project.id, "tests").await;
                self.project_keys
                    .lock()
                    .unwrap()
                    .insert(folded, key.clone());
                Some(key)
            }
            None => self.project_keys.lock().unwrap().values().next().cloned(),
        }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.send(support::json_request(method, uri, None, body.as_ref()))
            .await
    }

    /// Sends a request as built, adding the key its path needs.
    async fn send(&self, mut request: Request<Body>) -> (StatusCode, Value) {
        if let Some(key) = self.key_for(&request.uri().to_string()).await {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {key}").parse().unwrap());
        }
        support::send_json(&self.router, request).await
    }

    async fn with_project(self) -> Self {
        let (status, _) = self
            .call(Method::POST, "/v1/projects", Some(json!({"name": "Acme"})))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        self
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::new().await;
    let (status, body) = app.call(Method::GET, "/healthz", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("alive"))
    );
    let (status, body) = app.call(Method::GET, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["database"], "sqlite");
}

#[tokio::test]
async fn a_new_project_gets_the_default_taxonomy_and_its_name_is_unique() {
    let app = TestApp::new().await.with_project().await;
    let (status, tags) = app.call(Method::GET, "/v1/projects/acme/tags", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = tags
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 10);
    assert!(names.contains(&"Feature Request") && names.contains(&"Data Loss"));
    let (status, body) = app
        .call(Method::POST, "/v1/projects", Some(json!({"name": "ACME"})))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "conflict")
    );
    let (_, projects) = app.call(Method::GET, "/v1/projects", None).await;
    assert_eq!(projects[0]["tags"], 10);
}

#[tokio::test]
async fn a_project_with_a_duplicate_tag_is_refused_and_not_created() {
    let app = TestApp::new().await;
    let request = json!({"name": "Dup", "tags": [{"name": "Bug"}, {"name": "bug "}]});
    let (status, body) = app.call(Method::POST, "/v1/projects", Some(request)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["message"], "tag \"bug\" is listed twice");
    let (status, projects) = app.call(Method::GET, "/v1/projects", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(projects, json!([]), "no project was created");
}

#[tokio::test]
async fn a_project_whose_tag_names_a_group_it_does_not_have_is_a_conflict_and_not_created() {
    let app = TestApp::new().await;
    // A new project has only its default group ("Tags", in any case).
    let request = json!({"name": "Grouped", "tags": [{"name": "Bug", "group": "Type"}]});
    let (status, body) = app.call(Method::POST, "/v1/projects", Some(request)).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );
    let (_, projects) = app.call(Method::GET, "/v1/projects", None).await;
    assert_eq!(projects, json!([]), "no project was created");
    let request = json!({"name": "Plain", "tags": [{"name": "Bug", "group": "tags"}]});
    let (status, body) = app.call(Method::POST, "/v1/projects", Some(request)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn tags_are_validated_on_create_and_update() {
    let app = TestApp::new().await.with_project().await;
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects/Acme/tags",
            Some(json!({"name": "billing"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "conflict")
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects/Acme/tags",
            Some(json!({"name": "   "})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tag name is empty")
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects/Acme/tags",
            Some(json!({"name": "Outage", "color": "javascript:alert(1)"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
    );
    let (status, created) = app
        .call(
            Method::POST,
            "/v1/projects/Acme/tags",
            Some(json!({"name": "Outage", "description": "Service down", "keywords": {"include": ["down"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let uri = format!("/v1/projects/Acme/tags/{}", created["id"]);
    let (status, updated) = app
        .call(
            Method::PATCH,
            &uri,
            Some(json!({"name": "Incident", "archived": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (updated["name"].as_str(), updated["archived"].as_bool()),
        (Some("Incident"), Some(true))
    );
    assert_eq!(updated["description"], "Service down");
}

#[tokio::test]
async fn ingesting_twice_updates_the_same_ticket() {
    let app = TestApp::new().await.with_project().await;
    let ticket = json!({"source": "zendesk", "external_id": "42", "subject": "Cannot log in", "body": "Password reset fails"});
    let (status, first) = app
        .call(
            Method::POST,
            "/v1/projects/Acme/tickets",
            Some(ticket.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut edited = ticket;
    edited["subject"] = json!("Cannot log in at all");
    let (status, second) = app
        .call(Method::POST, "/v1/projects/Acme/tickets", Some(edited))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["created"], false);
    let (_, found) = app
        .call(Method::GET, "/v1/projects/Acme/tickets?q=at%20all", None)
        .await;
    assert_eq!(found["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(found["tickets"][0]["metadata"], json!({}));
}

#[tokio::test]
async fn a_batch_is_stored_whole_and_limited_in_size() {
    let app = TestApp::new().await.with_project().await;
    let tickets: Vec<Value> = (0..3)
        .map(|i| json!({"external_id": format!("B-{i}"), "subject": format!("Ticket {i}")}))
        .collect();
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects/Acme/tickets/batch",
            Some(json!({"tickets": tickets})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 3);

    let too_many: Vec<Value> = (0..6)
        .map(|i| json!({"external_id": format!("C-{i}"), "subject": "x"}))
        .collect();
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects/Acme/tickets/batch",
            Some(json!({"tickets": too_many})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    let one_bad =
        json!({"tickets": [{"external_id": "D-1", "subject": "fine"}, {"external_id": "D-2"}]});
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects/Acme/tickets/batch",
            Some(one_bad),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
    );
    let (_, all) = app
        .call(Method::GET, "/v1/projects/Acme/tickets?limit=100", None)
        .await;
    assert_eq!(
        all["tickets"].as_array().unwrap().len(),
        3,
        "nothing of the bad batch is stored"
    );
}

#[tokio::test]
async fn a_ten_megabyte_body_is_refused_with_the_limit_named() {
    let app = TestApp::new().await.with_project().await;
    let ticket = json!({"external_id": "big", "subject": "Logs attached", "body": "x".repeat(10 * 1024 * 1024)});
    let (status, body) = app
        .call(Method::POST, "/v1/projects/Acme/tickets", Some(ticket))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over the limit of 256 KiB")
    );
}

#[tokio::test]
async fn malformed_requests_get_clear_errors() {
    let app = TestApp::new().await.with_project().await;
    let broken = Request::builder()
        .method(Method::POST)
        .uri("/v1/projects/Acme/tickets")
        .header("content-type", "application/json")
        .body(Body::from("{\"external_id\": "))
        .unwrap();
    let (status, body) = app.send(broken).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let no_type = Request::builder()
        .method(Method::POST)
        .uri("/v1/projects/Acme/tickets")
        .body(Body::from("{}"))
        .unwrap();
    let (status, body) = app.send(no_type).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects/Acme/tickets",
            Some(json!({"external_id": "1", "subjct": "typo"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `subjct`")
    );
    let (status, body) = app
        .call(Method::GET, "/v1/projects/Acme/tickets/not-a-number", None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (status, body) = app
        .call(
            Method::GET,
            "/v1/projects/Acme/tickets?split=validation",
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (status, body) = app
        .call(Method::GET, "/v1/projects/Nobody/tickets", None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn labels_set_by_a_person_are_checked_against_the_taxonomy_and_kept_in_history() {
    let app = TestApp::new().await.with_project().await;
    let (_, ticket) = app
        .call(
            Method::POST,
            "/v1/projects/Acme/tickets",
            Some(json!({"external_id": "7", "subject": "Refund"})),
        )
        .await;
    let labels = format!("/v1/projects/Acme/tickets/{}/labels", ticket["id"]);
    let (status, body) = app
        .call(Method::PUT, &labels, Some(json!({"tags": ["Refunds"]})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["error"]["message"],
        "tags: unknown tag \"Refunds\" in project \"Acme\""
    );
    let (status, body) = app
        .call(
            Method::PUT,
            &labels,
            Some(json!({"tags": ["billing", "Question"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tags"], json!(["Billing", "Question"]));
    let (_, history) = app
        .call(
            Method::GET,
            &format!("/v1/projects/Acme/tickets/{}/history", ticket["id"]),
            None,
        )
        .await;
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[0]["set_by"], "api-key:tests");
    let (_, tagged) = app
        .call(Method::GET, "/v1/projects/Acme/tickets?tag=Billing", None)
        .await;
    assert_eq!(tagged["tickets"][0]["id"], ticket["id"]);
}

#[tokio::test]
async fn the_server_answers_over_a_real_socket_on_postgres() {
    let Some(database) =
        TestDatabase::postgres("the_server_answers_over_a_real_socket_on_postgres")
            .await
            .unwrap()
    else {
        return;
    };
    let store = database.store().await.unwrap();
    let admin_key = support::instance_admin_key(&store, "tests").await;
    let state = AppState::new(store.clone(), Config::default());
    let application = Application::bind(state, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", application.local_addr().unwrap());
    let server = tokio::spawn(application.run_until_stopped());
    let client = reqwest::Client::new();
    let ready: Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"], "postgres");
    let created = client
        .post(format!("{base}/v1/projects"))
        .bearer_auth(&admin_key)
        .json(&json!({"name": "Socket"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let socket = store
        .project_by_name(&ProjectName::parse("Socket").unwrap())
        .await
        .unwrap()
        .unwrap();
    let key = support::project_key(&store, socket.id, "tests").await;
    let ingested = client
        .post(format!("{base}/v1/projects/Socket/tickets"))
        .bearer_auth(&key)
        .json(&json!({"external_id": "1", "subject": "Hello", "body": "It <script>works</script>"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ingested.status(), StatusCode::CREATED);
    let id = ingested.json::<Value>().await.unwrap()["id"].clone();
    let ticket: Value = client
        .get(format!("{base}/v1/projects/Socket/tickets/{id}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ticket["body"], "It <script>works</script>");
    server.abort();
    database.drop_database().await.unwrap();
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_that_exist() {
    let app = TestApp::new().await;
    let (status, document) = app.call(Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = document["paths"].as_object().unwrap();
    let documented: usize = paths
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    let endpoints = workbench::api::routes().endpoints;
    assert_eq!(documented, endpoints.len());
    for endpoint in &endpoints {
        assert!(
            paths[endpoint.path]
                .get(endpoint.method.to_lowercase())
                .is_some()
        );
        // Every documented route is really routed: anything but 404/405 (an empty request
        // is refused for other reasons, which is fine here).
        let uri = endpoint
            .path
            .replace("{project}", "Nobody")
            .replace("{tag}", "1")
            .replace("{ticket}", "1")
            .replace("{version}", "1");
        let method: Method = endpoint.method.parse().unwrap();
        let (status, body) = app.call(method, &uri, None).await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {}",
            endpoint.method,
            endpoint.path
        );
        if status == StatusCode::NOT_FOUND {
            // A 404 from a handler (unknown project) has our error body; the router's has none.
            assert_eq!(
                body["error"]["code"], "not_found",
                "{} {} is not routed",
                endpoint.method, endpoint.path
            );
        }
    }
    // And a path that is not documented is not routed: a JSON body that says so.
    let (status, body) = app.call(Method::GET, "/v1/undocumented", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "no_endpoint", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/openapi.json")
    );
    // A routed path with a method it does not take: 405 with a JSON body too.
    let (status, body) = app.call(Method::DELETE, "/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
}

#[tokio::test]
async fn the_model_kinds_documented_and_accepted_are_the_registered_ones() {
    let app = TestApp::new().await.with_project().await;
    let registered: Vec<&str> = datasets::ModelKind::names().collect();
    assert_eq!(registered, ["ngram", "encoder-head", "finetune", "setfit"]);

    // The OpenAPI document names the training request's body and lists every kind.
    let (_, document) = app.call(Method::GET, "/v1/openapi.json", None).await;
    let body = &document["paths"]["/v1/projects/{project}/training-runs"]["post"]["requestBody"];
    assert_eq!(
        body["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/TrainingRunRequest"
    );
    let schema = &document["components"]["schemas"]["ModelKind"];
    assert_eq!(schema["enum"], json!(registered));
    for kind in &registered {
        assert!(schema["description"].as_str().unwrap().contains(kind));
    }

    // The API guide's line for the route lists the same kinds, no more.
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
    let line = guide
        .lines()
        .find(|line| line.starts_with("| `POST /v1/projects/{project}/training-runs`"))
        .expect("the guide documents the route");
    let kinds_text = line
        .split(r#"{"kind": "#)
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the line shows the kind");
    let documented: Vec<&str> = kinds_text
        .split(r"\|")
        .map(|kind| kind.trim_matches('"'))
        .collect();
    assert_eq!(documented, registered);

    // Every registered kind passes validation (this app has no job queue, so it stops
    // there with 503); any other name is a 422 that lists the kinds.
    for kind in &registered {
        let (status, body) = app
            .call(
                Method::POST,
                "/v1/projects/Acme/training-runs",
                Some(json!({"kind": kind})),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{kind}: {body}");
    }
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects/Acme/training-runs",
            Some(json!({"kind": "bert"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "invalid");
    let message = body["error"]["message"].as_str().unwrap();
    for kind in &registered {
        assert!(message.contains(kind), "{message}");
    }
}

/// The `x-request-id` a response carries for a GET of `uri` sent with `sent` (if any).
async fn request_id_echoed(app: &TestApp, uri: &str, sent: Option<&str>) -> String {
    let mut request = Request::builder().uri(uri);
    if let Some(id) = sent {
        request = request.header("x-request-id", id);
    }
    let response = app
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    response
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("{uri}: no x-request-id in {:?}", response.headers()))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn every_response_carries_the_callers_request_id_or_a_new_one() {
    let app = TestApp::new().await;
    // A well-formed id from the caller comes back as it was sent, on API, page and 404 alike.
    for uri in ["/healthz", "/v1/projects", "/login", "/no/such/route"] {
        assert_eq!(
            request_id_echoed(&app, uri, Some("caller-id.42:a_b")).await,
            "caller-id.42:a_b",
            "{uri}"
        );
    }
    // None sent: a fresh one per request.
    let first = request_id_echoed(&app, "/healthz", None).await;
    let second = request_id_echoed(&app, "/healthz", None).await;
    for id in [&first, &second] {
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    assert_ne!(first, second);
    // One that could forge log fields, or is too long, is replaced rather than echoed.
    for bad in ["two words", "quote\"d", &"x".repeat(129)] {
        let echoed = request_id_echoed(&app, "/healthz", Some(bad)).await;
        assert_ne!(echoed, bad);
        assert_eq!(echoed.len(), 32, "{echoed}");
    }
}
