//! Issue 13, findings 4 and 5 over HTTP: oversized and malformed input (NUL characters,
//! impossible dates, 100,000 keywords, megabytes of metadata) is answered 422 with a message
//! naming the limit, on SQLite and on PostgreSQL alike (when `TEST_DATABASE_URL` is set),
//! never 503 "database unavailable".
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use datasets::store::prelude::*;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use datasets::test_db::TestDatabase;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use workbench::app::app;
use workbench::config::Config;
use workbench::state::AppState;

/// The router and the key every request carries.
struct Api {
    router: axum::Router,
    key: String,
}

async fn call(api: &Api, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {}", api.key));
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Sends a request that must be refused as invalid, naming `needle` in the message.
async fn assert_refused(api: &Api, method: Method, uri: &str, body: Option<Value>, needle: &str) {
    let (status, answer) = call(api, method, uri, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {answer}");
    assert_eq!(answer["error"]["code"], "invalid", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

async fn bad_input_is_refused_as_invalid(database: TestDatabase) {
    let store = database.store().await.unwrap();
    let mut api = Api {
        router: app(AppState::new(store.clone(), Config::default())),
        key: support::instance_admin_key(&store, "tests").await,
    };
    let (status, _) = call(
        &api,
        Method::POST,
        "/v1/projects",
        Some(json!({"name": "Acme", "tags": []})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let acme = store
        .project_by_name(&datasets::ProjectName::parse("Acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    api.key = support::project_key(&store, acme.id, "tests").await;
    let tickets = "/v1/projects/Acme/tickets";
    let ticket = |extra: Value| {
        let mut ticket = json!({"external_id": "T-1", "subject": "Refund", "body": "please"});
        for (key, value) in extra.as_object().unwrap() {
            ticket[key] = value.clone();
        }
        Some(ticket)
    };
    assert_refused(
        &api,
        Method::POST,
        tickets,
        ticket(json!({"external_id": "a\u{0}b"})),
        "external_id",
    )
    .await;
    assert_refused(
        &api,
        Method::POST,
        tickets,
        ticket(json!({"source": "a\u{0}b"})),
        "source",
    )
    .await;
    assert_refused(
        &api,
        Method::POST,
        tickets,
        ticket(json!({"metadata": {"who": "a\u{0}b"}})),
        "NUL",
    )
    .await;
    assert_refused(
        &api,
        Method::POST,
        tickets,
        ticket(json!({"metadata": {"blob": "m".repeat(5 * 1024 * 1024)}})),
        "KiB",
    )
    .await;
    assert_refused(
        &api,
        Method::POST,
        tickets,
        ticket(json!({"external_id": "x".repeat(1024 * 1024)})),
        "256 characters",
    )
    .await;
    assert_refused(
        &api,
        Method::POST,
        tickets,
        ticket(json!({"created_at": "-5000-01-01T00:00:00Z"})),
        "year -5000",
    )
    .await;
    assert_refused(
        &api,
        Method::GET,
        &format!("{tickets}?q=in%00voice"),
        None,
        "NUL",
    )
    .await;
    assert_refused(
        &api,
        Method::GET,
        &format!("{tickets}?source=api%00"),
        None,
        "NUL",
    )
    .await;
    let keywords: Vec<String> = (0..100_000).map(|n| format!("word {n}")).collect();
    assert_refused(
        &api,
        Method::POST,
        "/v1/projects/Acme/tags",
        Some(json!({"name": "Refunds", "keywords": {"include": keywords}})),
        "the limit is 200",
    )
    .await;
    // Nothing refused was stored; a good ticket still is.
    let (status, found) = call(&api, Method::GET, tickets, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["tickets"].as_array().unwrap().len(), 0, "{found}");
    let (status, _) = call(&api, Method::POST, tickets, ticket(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    database.drop_database().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_as_invalid_on_sqlite() {
    bad_input_is_refused_as_invalid(TestDatabase::sqlite().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_as_invalid_on_postgres() {
    let Some(database) = TestDatabase::postgres("bad_input_is_refused_as_invalid")
        .await
        .unwrap()
    else {
        return;
    };
    bad_input_is_refused_as_invalid(database).await;
}
