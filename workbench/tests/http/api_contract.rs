//! The API contract: the OpenAPI document (`/v1/openapi.json`) and the API guide
//! (`docs/api.md`) list the same operations, each with the same success statuses, and every
//! failure status the guide names for an operation is one the document lists. The document
//! itself is checked against the router in `api.rs` and against a running server by
//! `.ci/schemathesis`.
//!
//! Also here: the behaviour Schemathesis checks that the document promises — cursor paging
//! of the ticket search and the bounds of its parameters — on both databases.

use crate::support;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use datasets::store::prelude::*;
use datasets::{AnyStore, LabelMode, NewTicket, ProjectName, Split};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tower::ServiceExt;
use workbench::app::app;
use workbench::config::Config;
use workbench::state::AppState;

/// One row of the guide's endpoint tables: `| `METHOD /path` | key | answers | does |`.
#[derive(Debug)]
struct GuideRow {
    line: usize,
    successes: BTreeSet<u16>,
    /// Failures the row names in the guide's style: "409 `guard`".
    failures: BTreeSet<u16>,
}

fn guide() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap()
}

/// Every operation row of the guide, by (method, path); the query of an example
/// (`?raters=2`) is not part of the path.
fn guide_operations(guide: &str) -> BTreeMap<(String, String), GuideRow> {
    let mut rows = BTreeMap::new();
    for (index, line) in guide.lines().enumerate() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let Some((operation, rest)) = rest.split_once('`') else {
            continue;
        };
        let Some((method, path)) = operation.split_once(' ') else {
            continue;
        };
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method) {
            continue;
        }
        let path = path.split('?').next().unwrap().to_string();
        let cells: Vec<&str> = rest.split(" | ").collect();
        assert!(
            cells.len() >= 4,
            "docs/api.md:{}: an operation row has the columns `method and path | key | answers | does`",
            index + 1
        );
        let successes = cells[2]
            .split(',')
            .map(|status| {
                status.trim().parse::<u16>().unwrap_or_else(|_| {
                    panic!(
                        "docs/api.md:{}: the answers column lists statuses, not {status:?}",
                        index + 1
                    )
                })
            })
            .collect();
        let does = cells[3..].join(" | ");
        let failures = does
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '`')
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|pair| pair[1].starts_with('`'))
            .filter_map(|pair| pair[0].parse::<u16>().ok())
            .filter(|status| (400..600).contains(status))
            .collect();
        let previous = rows.insert(
            (method.to_string(), path),
            GuideRow {
                line: index + 1,
                successes,
                failures,
            },
        );
        assert!(
            previous.is_none(),
            "docs/api.md:{}: {method} {operation} is listed twice",
            index + 1
        );
    }
    rows
}

fn document() -> Value {
    workbench::api::openapi::document(&workbench::api::routes().endpoints)
}

/// The document's operations with their statuses.
fn document_operations(document: &Value) -> BTreeMap<(String, String), BTreeSet<u16>> {
    let mut operations = BTreeMap::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let statuses = operation["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|status| status.parse().unwrap())
                .collect();
            operations.insert((method.to_uppercase(), path.clone()), statuses);
        }
    }
    operations
}

#[test]
fn the_guide_and_the_document_list_the_same_operations_with_the_same_statuses() {
    let guide = guide();
    let rows = guide_operations(&guide);
    let document = document();
    let operations = document_operations(&document);

    let in_guide: BTreeSet<_> = rows.keys().cloned().collect();
    let in_document: BTreeSet<_> = operations.keys().cloned().collect();
    assert_eq!(
        in_guide.difference(&in_document).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "in docs/api.md but not in the document"
    );
    assert_eq!(
        in_document.difference(&in_guide).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "in the document but not in docs/api.md"
    );

    for (operation, row) in &rows {
        let statuses = &operations[operation];
        let successes: BTreeSet<u16> = statuses
            .iter()
            .copied()
            .filter(|status| (200..300).contains(status))
            .collect();
        assert_eq!(
            row.successes, successes,
            "docs/api.md:{}: {} {} answers {:?} in the document",
            row.line, operation.0, operation.1, successes
        );
        let undocumented: Vec<_> = row.failures.difference(statuses).collect();
        assert!(
            undocumented.is_empty(),
            "docs/api.md:{}: {} {} names {undocumented:?}, which the document does not list",
            row.line,
            operation.0,
            operation.1
        );
    }
}

#[test]
fn the_guide_parser_reads_statuses_and_failures() {
    let rows = guide_operations(
        "| `POST /v1/x/{id}?a=1` | `train` | 200, 201 | into itself 422 `invalid`, an archived tag 409 (see), limit ≤ 500 |\n\
         | plain | row |\n",
    );
    let row = &rows[&("POST".to_string(), "/v1/x/{id}".to_string())];
    assert_eq!(row.successes, BTreeSet::from([200, 201]));
    // "409 (see)" is prose, "≤ 500" a number: only "422 `invalid`" names a failure.
    assert_eq!(row.failures, BTreeSet::from([422]));
    assert_eq!(rows.len(), 1);
}

/// Every operation states its statuses and bodies: an error body on every failure, a
/// schema on every JSON answer, and every `$ref` resolves.
#[test]
fn every_operation_documents_its_answers_and_every_reference_resolves() {
    let document = document();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path} has no success answer"
            );
            for (status, response) in responses {
                if status.starts_with('4') || (status.starts_with('5') && path != "/readyz") {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    let operation_ids: BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|operation| operation["operationId"].as_str().unwrap())
        .collect();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for response in operation["responses"].as_object().unwrap().values() {
                for link in response["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    let target = link["operationId"].as_str().unwrap();
                    assert!(
                        operation_ids.contains(target),
                        "a link to no operation: {target}"
                    );
                }
            }
        }
    }
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "no schema {name}");
    }
}

/// A project "Acme" with `count` tickets, and a key of it with every scope.
async fn app_with_tickets(store: AnyStore, count: usize) -> (axum::Router, String) {
    let project = store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let tickets: Vec<NewTicket> = (0..count)
        .map(|i| NewTicket {
            source: "api".into(),
            external_id: format!("T-{i}"),
            subject: format!("Ticket {i}"),
            body: "Details".into(),
            metadata: json!({}),
            created_at: Some(
                chrono::DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap(),
            ),
            split: Split::Train,
        })
        .collect();
    store.upsert_tickets(project.id, &tickets).await.unwrap();
    let key = support::project_key(&store, project.id, "reader").await;
    (app(AppState::new(store, Config::default())), key)
}

async fn get(router: &axum::Router, key: &str, uri: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn external_ids(page: &Value) -> Vec<String> {
    page["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ticket| ticket["external_id"].as_str().unwrap().to_string())
        .collect()
}

async fn the_ticket_search_pages_with_a_cursor_and_old_clients_get_the_first_page(store: AnyStore) {
    let (router, key) = app_with_tickets(store, 7).await;
    // Without a cursor: the first page, as before (newest first).
    let (status, first) = get(&router, &key, "/v1/projects/Acme/tickets?limit=3").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(external_ids(&first), ["T-6", "T-5", "T-4"]);
    let mut seen = external_ids(&first);
    let mut page = first;
    let mut pages = 1;
    while let Some(cursor) = page["next_cursor"].as_str().map(str::to_string) {
        let (status, next) = get(
            &router,
            &key,
            &format!("/v1/projects/Acme/tickets?limit=3&cursor={cursor}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{next}");
        seen.extend(external_ids(&next));
        page = next;
        pages += 1;
    }
    assert_eq!(pages, 3, "3 + 3 + 1 tickets");
    let all: Vec<String> = (0..7).rev().map(|i| format!("T-{i}")).collect();
    assert_eq!(seen, all, "every ticket once, in order");
    assert!(page["next_cursor"].is_null());
    // An exactly full last page is followed by an empty one that ends the list.
    let (_, full) = get(&router, &key, "/v1/projects/Acme/tickets?limit=7").await;
    let cursor = full["next_cursor"].as_str().unwrap().to_string();
    let (status, empty) = get(
        &router,
        &key,
        &format!("/v1/projects/Acme/tickets?limit=7&cursor={cursor}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(external_ids(&empty), Vec::<String>::new());
    assert!(empty["next_cursor"].is_null());
    // `offset` still works for clients that used it.
    let (status, skipped) = get(&router, &key, "/v1/projects/Acme/tickets?limit=2&offset=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(external_ids(&skipped), ["T-1", "T-0"]);
    // A cursor supersedes an `offset` sent with it (Schemathesis sent both: valid by the
    // document, it was refused with 422).
    let (status, both) = get(
        &router,
        &key,
        "/v1/projects/Acme/tickets?limit=2&offset=5&cursor=p0",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(external_ids(&both), ["T-6", "T-5"]);
}

/// Schemathesis found these accepted though the document bounds them: a `limit` over 500
/// was silently cut to 500, and 0 answered an empty page.
async fn a_search_limit_outside_its_bounds_and_a_foreign_cursor_are_refused(store: AnyStore) {
    let (router, key) = app_with_tickets(store, 2).await;
    for query in [
        "limit=0",
        "limit=501",
        "cursor=not-a-cursor",
        "cursor=p",
        "cursor=p1234567890",
    ] {
        let (status, body) =
            get(&router, &key, &format!("/v1/projects/Acme/tickets?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid", "{query}");
    }
    let (status, _) = get(&router, &key, "/v1/projects/Acme/tickets?limit=500").await;
    assert_eq!(status, StatusCode::OK);
}

datasets::on_both_backends!(
    the_ticket_search_pages_with_a_cursor_and_old_clients_get_the_first_page,
    a_search_limit_outside_its_bounds_and_a_foreign_cursor_are_refused,
);
