//! No `/v1` endpoint without a key: every route of `routes()` but health, metrics and the API
//! document is walked and must refuse a missing, wrong or revoked key (401) and a key of
//! another project, of the wrong kind or without the route's scope (403), and let the right
//! key through. The actor of a write comes from the key; a `user` field is refused. Every
//! test runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use datasets::store::prelude::*;

use axum::http::{Method, StatusCode};
use datasets::*;
use serde_json::{Value, json};
use support::{instance_admin_key, project_key, scoped_key};
use workbench::api::auth::Access;
use workbench::app::app;
use workbench::config::Config;
use workbench::state::AppState;

/// The routes anyone may call.
const OPEN: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"];

struct TestApp {
    router: axum::Router,
    store: AnyStore,
    acme: Project,
}

impl TestApp {
    /// Projects "Acme" (default taxonomy) and "Other".
    async fn new(store: AnyStore) -> Self {
        let acme = store
            .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
            .await
            .unwrap();
        for tag in datasets::demo::default_taxonomy() {
            store.create_tag(acme.id, &tag).await.unwrap();
        }
        store
            .create_project(&ProjectName::parse("Other").unwrap(), LabelMode::Multi)
            .await
            .unwrap();
        Self {
            router: app(AppState::new(store.clone(), Config::default())),
            store,
            acme,
        }
    }

    async fn other_id(&self) -> ProjectId {
        self.store
            .project_by_name(&ProjectName::parse("Other").unwrap())
            .await
            .unwrap()
            .unwrap()
            .id
    }

    /// A request with the `Authorization` header given word for word.
    async fn send(
        &self,
        method: Method,
        uri: &str,
        authorization: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = support::json_request(method, uri, authorization, body.as_ref());
        support::send_json(&self.router, request).await
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let header = key.map(|key| format!("Bearer {key}"));
        self.send(method, uri, header.as_deref(), body).await
    }

    async fn ingest(&self, key: &str, external_id: &str) -> i64 {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/projects/Acme/tickets",
                Some(key),
                Some(json!({"external_id": external_id, "subject": "Refund please"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    }
}

/// A route's path with its parameters filled in: the project by name, ids as 1.
fn concrete(path: &str) -> String {
    path.replace("{project}", "Acme")
        .replace("{tag}", "1")
        .replace("{ticket}", "1")
        .replace("{version}", "1")
        .replace("{run}", "1")
        .replace("{name}", "acme")
}

/// Every scope but `scope`.
fn all_but(scope: Scope) -> String {
    Scope::ALL
        .iter()
        .filter(|s| **s != scope)
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn assert_refused(what: &str, route: &str, got: (StatusCode, Value), expected: StatusCode) {
    let (status, body) = got;
    assert_eq!(status, expected, "{route} with {what}: {body}");
    let code = if expected == StatusCode::UNAUTHORIZED {
        "unauthorized"
    } else {
        "forbidden"
    };
    assert_eq!(body["error"]["code"], code, "{route} with {what}: {body}");
}

async fn every_route_but_the_open_ones_refuses_requests_without_a_fitting_key(store: AnyStore) {
    let app = TestApp::new(store).await;
    let acme = app.acme.id;
    let full = project_key(&app.store, acme, "full").await;
    let foreign = project_key(&app.store, app.other_id().await, "foreign").await;
    let admin = instance_admin_key(&app.store, "provisioning").await;
    let revoked = app
        .store
        .create_api_key(
            &KeyGrant::Project {
                project_id: acme,
                scopes: Scopes::all(),
            },
            "old",
        )
        .await
        .unwrap();
    app.store
        .revoke_api_key(Some(acme), revoked.key.id)
        .await
        .unwrap();
    let revoked_admin = app
        .store
        .create_api_key(&KeyGrant::InstanceAdmin, "old admin")
        .await
        .unwrap();
    app.store
        .revoke_api_key(None, revoked_admin.key.id)
        .await
        .unwrap();
    let unknown = "tt_00000000_000000000000000000000000000000000000000000000000";

    let endpoints = workbench::api::routes().endpoints;
    let open: Vec<&str> = endpoints
        .iter()
        .filter(|e| e.access == Access::Open)
        .map(|e| e.path)
        .collect();
    assert_eq!(open, OPEN, "exactly these routes are open");
    let mut guarded = 0;
    for endpoint in &endpoints {
        let method: Method = endpoint.method.parse().unwrap();
        let uri = concrete(endpoint.path);
        let route = format!("{} {}", endpoint.method, endpoint.path);
        let call = |authorization: Option<String>| {
            let method = method.clone();
            let uri = uri.clone();
            let app = &app;
            async move { app.send(method, &uri, authorization.as_deref(), None).await }
        };
        let bearer = |key: &str| Some(format!("Bearer {key}"));
        if endpoint.access == Access::Open {
            let (status, _) = call(None).await;
            assert!(status.is_success(), "{route} is open: {status}");
            continue;
        }
        guarded += 1;
        assert_refused("no key", &route, call(None).await, StatusCode::UNAUTHORIZED);
        assert_refused(
            "an unknown key",
            &route,
            call(bearer(unknown)).await,
            StatusCode::UNAUTHORIZED,
        );
        assert_refused(
            "another scheme",
            &route,
            call(Some(format!("Basic {full}"))).await,
            StatusCode::UNAUTHORIZED,
        );
        match endpoint.access {
            Access::Open => unreachable!("open routes were skipped"),
            // No key at all: the vendor's signature is checked (tests/http/connectors.rs).
            Access::VendorSignature => {}
            Access::Project(scope) => {
                assert_refused(
                    "a revoked key",
                    &route,
                    call(bearer(&revoked.secret)).await,
                    StatusCode::UNAUTHORIZED,
                );
                assert_refused(
                    "another project's key",
                    &route,
                    call(bearer(&foreign)).await,
                    StatusCode::FORBIDDEN,
                );
                let unscoped = scoped_key(&app.store, acme, "unscoped", &all_but(scope)).await;
                assert_refused(
                    &format!("a key without `{scope}`"),
                    &route,
                    call(bearer(&unscoped)).await,
                    StatusCode::FORBIDDEN,
                );
                assert_refused(
                    "an instance-admin key",
                    &route,
                    call(bearer(&admin)).await,
                    StatusCode::FORBIDDEN,
                );
                // The key with exactly the route's scope gets past the check (the empty
                // request may still be refused for what it lacks, never for its key).
                let exact = scoped_key(&app.store, acme, "exact", scope.as_str()).await;
                let (status, body) = call(bearer(&exact)).await;
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{route} with a `{scope}` key: {status} {body}"
                );
            }
            Access::InstanceAdmin => {
                assert_refused(
                    "a revoked instance-admin key",
                    &route,
                    call(bearer(&revoked_admin.secret)).await,
                    StatusCode::UNAUTHORIZED,
                );
                assert_refused(
                    "a project's key",
                    &route,
                    call(bearer(&full)).await,
                    StatusCode::FORBIDDEN,
                );
                let (status, body) = call(bearer(&admin)).await;
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{route} with an instance-admin key: {status} {body}"
                );
            }
        }
    }
    assert_eq!(guarded, endpoints.len() - OPEN.len());
}

async fn the_scheme_is_matched_in_any_case(store: AnyStore) {
    let app = TestApp::new(store).await;
    let key = scoped_key(&app.store, app.acme.id, "reader", "read").await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (status, body) = app
            .send(
                Method::GET,
                "/v1/projects/Acme/tags",
                Some(&format!("{scheme} {key}")),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {body}");
    }
}

async fn the_lease_is_a_post_whose_holder_is_the_key_and_only_it_can_release(store: AnyStore) {
    let app = TestApp::new(store).await;
    let acme = app.acme.id;
    let ingest = scoped_key(&app.store, acme, "connector", "tag").await;
    let ana = scoped_key(&app.store, acme, "ana", "label").await;
    let bo = scoped_key(&app.store, acme, "bo", "label").await;
    let first = app.ingest(&ingest, "1").await;
    let second = app.ingest(&ingest, "2").await;
    let entries: Vec<NewQueueEntry> = [first, second]
        .iter()
        .enumerate()
        .map(|(i, ticket)| NewQueueEntry {
            ticket_id: TicketId(*ticket),
            score: 1.0 - i as f32 / 10.0,
            strategy: "margin".into(),
            reason: "unsure".into(),
        })
        .collect();
    app.store
        .replace_review_queue(acme, &entries)
        .await
        .unwrap();

    // The old anonymous GET is gone: reading cannot take work from anyone.
    let (status, _) = app
        .call(
            Method::GET,
            "/v1/projects/Acme/review-queue?user=ana&count=2",
            Some(&ana),
            None,
        )
        .await;
    assert!(
        status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
        "{status}"
    );
    let lease = "/v1/projects/Acme/review-queue/lease";
    let (status, body) = app
        .call(Method::POST, lease, Some(&ana), Some(json!({"user": "bo"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the actor is taken from the API key"),
        "{body}"
    );
    let (status, body) = app
        .call(Method::POST, lease, Some(&ana), Some(json!({"count": 1})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], "api-key:ana");
    assert_eq!(body["tickets"][0]["ticket_id"], first);
    assert_eq!(body["tickets"][0]["leased_by"], "api-key:ana");

    // Bo cannot give back Ana's ticket, neither as himself nor by naming her.
    let release = format!("/v1/projects/Acme/review-queue/{first}/release");
    let (status, body) = app.call(Method::POST, &release, Some(&bo), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            &release,
            Some(&bo),
            Some(json!({"user": "api-key:ana"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // With no body, Bo gets the next ticket only; Ana's stays hers.
    let (status, body) = app.call(Method::POST, lease, Some(&bo), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let leased: Vec<i64> = body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ticket_id"].as_i64().unwrap())
        .collect();
    assert_eq!(leased, [second]);
    let (status, body) = app.call(Method::POST, &release, Some(&ana), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

async fn the_labeller_and_adjudicator_are_the_key_and_a_user_field_is_refused(store: AnyStore) {
    let app = TestApp::new(store).await;
    let acme = app.acme.id;
    let connector = scoped_key(&app.store, acme, "connector", "tag,read").await;
    let ana = scoped_key(&app.store, acme, "ana", "label").await;
    let ticket = app.ingest(&connector, "7").await;
    let labels = format!("/v1/projects/Acme/tickets/{ticket}/labels");
    let (status, body) = app
        .call(
            Method::PUT,
            &labels,
            Some(&ana),
            Some(json!({"tags": ["Billing"], "user": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`user`"),
        "{body}"
    );
    let (status, body) = app
        .call(
            Method::PUT,
            &labels,
            Some(&connector),
            Some(json!({"tags": ["Billing"]})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a tag,read key cannot label: {body}"
    );
    let (status, body) = app
        .call(
            Method::PUT,
            &labels,
            Some(&ana),
            Some(json!({"tags": ["Billing"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, history) = app
        .call(
            Method::GET,
            &format!("/v1/projects/Acme/tickets/{ticket}/history"),
            Some(&connector),
            None,
        )
        .await;
    assert_eq!(history[0]["set_by"], "api-key:ana", "{history}");

    let adjudicate = format!("/v1/projects/Acme/disagreements/{ticket}/adjudicate");
    let (status, body) = app
        .call(
            Method::POST,
            &adjudicate,
            Some(&ana),
            Some(json!({"tags": ["Question"], "user": "lee"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            &adjudicate,
            Some(&ana),
            Some(json!({"tags": ["Question"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, history) = app
        .call(
            Method::GET,
            &format!("/v1/projects/Acme/tickets/{ticket}/history"),
            Some(&connector),
            None,
        )
        .await;
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|event| event["set_by"] == "api-key:ana"),
        "{history}"
    );
}

async fn an_instance_admin_key_creates_projects_and_a_project_key_cannot(store: AnyStore) {
    let app = TestApp::new(store).await;
    let admin = instance_admin_key(&app.store, "provisioning").await;
    let full = project_key(&app.store, app.acme.id, "full").await;
    let request = json!({"name": "Helpdesk"});
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects",
            Some(&full),
            Some(request.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app
        .call(Method::GET, "/v1/projects", Some(&full), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app
        .call(Method::POST, "/v1/projects", Some(&admin), Some(request))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["project"]["name"], "Helpdesk");
    let (status, projects) = app
        .call(Method::GET, "/v1/projects", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{projects}");
    let names: Vec<&str> = projects
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Helpdesk"), "{projects}");
    // The instance-admin key does nothing inside the project it made.
    let (status, body) = app
        .call(
            Method::GET,
            "/v1/projects/Helpdesk/tags",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

async fn the_api_document_states_each_operations_scope(store: AnyStore) {
    let app = TestApp::new(store).await;
    let (status, document) = app.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for endpoint in workbench::api::routes().endpoints {
        let operation = &document["paths"][endpoint.path][endpoint.method.to_lowercase()];
        let expected = match endpoint.access {
            Access::Open | Access::VendorSignature => json!([]),
            Access::Project(scope) => json!([{"apiKey": [scope.as_str()]}]),
            Access::InstanceAdmin => json!([{"apiKey": ["instance-admin"]}]),
        };
        assert_eq!(
            operation["security"], expected,
            "{} {}",
            endpoint.method, endpoint.path
        );
        if endpoint.access != Access::Open {
            assert!(operation["responses"]["401"].is_object());
        }
        if matches!(endpoint.access, Access::Project(_) | Access::InstanceAdmin) {
            assert!(operation["responses"]["403"].is_object());
        }
    }
}

datasets::on_both_backends!(
    every_route_but_the_open_ones_refuses_requests_without_a_fitting_key,
    the_scheme_is_matched_in_any_case,
    the_lease_is_a_post_whose_holder_is_the_key_and_only_it_can_release,
    the_labeller_and_adjudicator_are_the_key_and_a_user_field_is_refused,
    an_instance_admin_key_creates_projects_and_a_project_key_cannot,
    the_api_document_states_each_operations_scope,
);
