//! Stored entities through the server: the API's ticket list and the web browser filter by
//! them, the ticket page's entity links lead to that filter, admins (only) edit the
//! project's glossary on the page and through the API, which re-extracts the tickets, and
//! the logs mask personal data unless the configuration keeps it.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support::{self, WebApp};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use datasets::store::prelude::*;
use datasets::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use workbench::config::Config;

async fn acme(app: &WebApp) -> Project {
    app.store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap()
}

/// The external ids of a ticket list answer, sorted.
fn external_ids(answer: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["external_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Waits for the background re-extraction a glossary change starts to reach `ticket`.
async fn wait_for_products(app: &WebApp, project: ProjectId, ticket: TicketId, count: usize) {
    for _ in 0..200 {
        let found = app.store.stored_entities(project, ticket).await.unwrap();
        if found
            .iter()
            .filter(|e| e.kind.as_str() == "product")
            .count()
            == count
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("ticket {ticket} never got {count} products");
}

#[tokio::test]
async fn the_api_lists_tickets_by_entity_and_admins_edit_the_glossary() {
    let app = WebApp::new().await;
    let project = acme(&app).await;
    let key = support::project_key(&app.store, project.id, "all").await;
    let reader = support::scoped_key(&app.store, project.id, "reader", "read,tag").await;

    for (id, subject, body) in [
        ("1", "Sync fails", "acme sync shows E1234 on Windows 11"),
        ("2", "Crash", "KeyError in the billing portal"),
        ("3", "Question", "How do I export?"),
    ] {
        let (status, answer) = app
            .json(
                Method::POST,
                "/v1/projects/Acme/tickets",
                Some(&reader),
                json!({"external_id": id, "subject": subject, "body": body}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let list = |filter: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            app.json(
                Method::GET,
                &format!("/v1/projects/Acme/tickets?entity={filter}"),
                Some(&key),
                serde_json::Value::Null,
            )
            .await
        }
    };
    let (status, answer) = list("error_code:e1234").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(external_ids(&answer), ["1"]);
    assert_eq!(external_ids(&list("exception").await.1), ["2"]);
    assert!(external_ids(&list("product").await.1).is_empty());
    for bad in ["vendor:x", "product:%20", "Product"] {
        let (status, answer) = list(bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("entity"),
            "{answer}"
        );
    }

    // A key without the admin scope may read the glossary but not change it.
    let terms = json!({"terms": ["Acme Sync", " billing   portal ", "", "ACME SYNC"]});
    let (status, _) = app
        .json(
            Method::PUT,
            "/v1/projects/Acme/glossary",
            Some(&reader),
            terms.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = app
        .json(Method::PUT, "/v1/projects/Acme/glossary", Some(&key), terms)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"terms": ["Acme Sync", "billing portal"]}));
    let (status, answer) = app
        .json(
            Method::GET,
            "/v1/projects/Acme/glossary",
            Some(&reader),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::OK,
            json!({"terms": ["Acme Sync", "billing portal"]})
        )
    );
    let (status, _) = app
        .json(
            Method::PUT,
            "/v1/projects/Acme/glossary",
            Some(&key),
            json!({"terms": ["x".repeat(101)]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The tickets stored before the glossary are extracted again in the background.
    let first = app
        .store
        .search_tickets(project.id, &TicketQuery::default())
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.ticket.external_id == "1")
        .unwrap();
    wait_for_products(&app, project.id, first.ticket.id, 1).await;
    let (_, answer) = list("product").await;
    assert_eq!(external_ids(&answer), ["1", "2"]);
    let (_, answer) = list("product:Billing%20Portal").await;
    assert_eq!(external_ids(&answer), ["2"]);

    let entries = app
        .store
        .audit_entries(&AuditFilter {
            limit: 50,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let glossary: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.action == "project.glossary")
        .collect();
    assert_eq!(glossary.len(), 1, "{entries:?}");
    assert_eq!(
        glossary[0].details["to"],
        json!(["Acme Sync", "billing portal"])
    );
}

#[tokio::test]
async fn admins_edit_the_glossary_on_the_page_and_entity_links_filter_the_browser() {
    let app = WebApp::new().await;
    let project = acme(&app).await;
    let stored = app
        .store
        .upsert_tickets(
            project.id,
            &[
                workbench::ingest::new_ticket(
                    "api".into(),
                    "1".into(),
                    "Acme Sync down".into(),
                    "ORA-00942 since this morning".into(),
                    json!({}),
                    None,
                ),
                workbench::ingest::new_ticket(
                    "api".into(),
                    "2".into(),
                    "Other".into(),
                    "nothing to see".into(),
                    json!({}),
                    None,
                ),
            ],
        )
        .await
        .unwrap();
    let (ticket, other) = (stored[0].id, stored[1].id);

    let labeler = app.login("labeler").await;
    let refused = app
        .submit(
            &labeler,
            &format!("/admin/projects/{}/glossary", project.id),
            &[("terms", "Acme Sync")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(app.store.glossary(project.id).await.unwrap().is_empty());

    let admin = app.login("admin").await;
    let saved = app
        .submit(
            &admin,
            &format!("/admin/projects/{}/glossary", project.id),
            &[("terms", "Acme Sync\r\n\r\nBilling Portal\r\n")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(
        app.store.glossary(project.id).await.unwrap(),
        ["Acme Sync", "Billing Portal"]
    );
    let page = app.get("/admin/projects", Some(&admin)).await;
    assert!(
        page.body.contains("Acme Sync\nBilling Portal</textarea>"),
        "{}",
        page.body
    );
    let csrf_missing = app
        .post(
            &format!("/admin/projects/{}/glossary", project.id),
            Some(&admin.cookie),
            &[("terms", "Gone")],
        )
        .await;
    assert_eq!(csrf_missing.status, StatusCode::FORBIDDEN);
    wait_for_products(&app, project.id, ticket, 1).await;

    // The ticket page links each entity to the browser filtered by it.
    let page = app
        .get(
            &format!("/p/{}/tickets/{ticket}", project.id),
            Some(&labeler),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    // (The template writes each `/` of an attribute as `&#x2f;`.)
    let link = format!("/p/{}/tickets?entity=product%3AAcme%20Sync", project.id);
    assert!(
        page.body.contains(&link.replace('/', "&#x2f;")),
        "{}",
        page.body
    );
    assert!(page.body.contains(
        &format!("/p/{}/tickets?entity=error_code%3AORA-00942", project.id).replace('/', "&#x2f;")
    ));
    let filtered = app.get(&link, Some(&labeler)).await;
    assert_eq!(filtered.status, StatusCode::OK);
    assert!(
        filtered
            .body
            .contains(&format!("/p/{}/tickets/{ticket}\"", project.id))
    );
    assert!(
        !filtered
            .body
            .contains(&format!("/p/{}/tickets/{other}\"", project.id))
    );
    assert!(
        filtered.body.contains("value=\"product:Acme Sync\""),
        "the filter stays in the form"
    );
    let bad = app
        .get(
            &format!("/p/{}/tickets?entity=nothing", project.id),
            Some(&labeler),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// Log lines written by the server's subscriber, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

const BOUNDARY: &str = "----tagger-entities-boundary";

/// An import from the browser whose file name holds an address and a phone number: the
/// server logs the file's name.
async fn upload_named(app: &WebApp, project: ProjectId, file_name: &str) -> StatusCode {
    let engineer = app.login("mlengineer").await;
    let mut body = String::new();
    for (name, value) in [
        ("csrf", engineer.csrf.as_str()),
        ("format", "auto"),
        ("text_columns", "subject, body"),
        // No label column: left out, the form's default ("label") would be asked for.
        ("label_column", ""),
        ("split", "train"),
        ("on_bad_row", "skip"),
    ] {
        body.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
         Content-Type: text/csv\r\n\r\nsubject,body\nHello,world\r\n--{BOUNDARY}--\r\n"
    ));
    app.send(
        Request::builder()
            .method(Method::POST)
            .uri(format!("/p/{project}/import"))
            .header(header::COOKIE, &engineer.cookie)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(body))
            .unwrap(),
    )
    .await
    .status
}

/// What the server logs while one import runs, with `config`'s logging.
async fn logs_of_an_import(config: Config, file_name: &str) -> String {
    let captured = Captured::default();
    let subscriber = workbench::logging::subscriber(&config, captured.clone()).unwrap();
    let app = WebApp::with_config(config).await;
    let project = acme(&app).await;
    // The request runs on this test's thread (`oneshot`), so a thread's default sees it.
    let _guard = tracing::subscriber::set_default(subscriber);
    let status = upload_named(&app, project.id, file_name).await;
    assert_eq!(status, StatusCode::OK);
    let bytes = captured.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn logs_mask_addresses_and_phone_numbers_unless_the_admin_keeps_them() {
    let file_name = "tickets from ana.lopez@example.com +44 20 7946 0958.csv";
    let masked = logs_of_an_import(Config::default(), file_name).await;
    assert!(masked.contains("import from the browser"), "{masked}");
    assert!(
        masked.contains("tickets from [email] [phone].csv"),
        "{masked}"
    );
    assert!(!masked.contains("ana.lopez"), "{masked}");
    assert!(!masked.contains("7946"), "{masked}");

    let kept = logs_of_an_import(
        Config {
            log_personal_data: true,
            ..Config::default()
        },
        file_name,
    )
    .await;
    assert!(kept.contains(file_name), "{kept}");
}
