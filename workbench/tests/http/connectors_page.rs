//! The Connectors page as an admin uses it: add a connector, see its webhook path and tag
//! mapping, test the connection against a fake help desk (right and wrong token), edit it,
//! read deliveries, write-back failures with the help desk's reason and backfill progress,
//! and remove it; refused to other roles, without a CSRF token, and for bad input. Secrets
//! never appear on the page.

use crate::support::{Browser, Page, WebApp};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use connectors::System;
use datasets::connector::{
    ConnectorName, DeliveryClaim, DeliveryStatus, WriteBackAttempt, WriteBackQueued,
};
use datasets::*;
use serde_json::json;
use workbench::config::Config;

const KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const SECRET: &str = "a-webhook-secret-of-some-length";
const TOKEN: &str = "the-right-api-token-1234";

async fn app() -> (WebApp, Project) {
    let app = WebApp::with_config(Config {
        encryption_key: Some(KEY.into()),
        ..Config::default()
    })
    .await;
    let project = app
        .store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    for tag in datasets::demo::default_taxonomy() {
        app.store.create_tag(project.id, &tag).await.unwrap();
    }
    (app, project)
}

/// A fake Zendesk answering `GET /api/v2/users/me.json` as Zendesk does: 200 for the
/// right basic credentials (`{email}/token:{token}`), else 401 with its error body.
async fn fake_zendesk() -> String {
    let expected = connectors::authorization(System::Zendesk, Some("bot@acme.example"), TOKEN);
    let router = axum::Router::new().route(
        "/api/v2/users/me.json",
        get(move |headers: HeaderMap| {
            let expected = expected.clone();
            async move {
                let given = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if given == expected {
                    (
                        StatusCode::OK,
                        axum::Json(json!({"user": {"id": 1, "role": "agent"}})),
                    )
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(json!({"error": "Couldn't authenticate you"})),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

/// A page's text with minijinja's HTML escapes undone, for assertions on what people read.
fn text(page: &Page) -> String {
    page.body
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The page a form's redirect leads to, with the flash message the redirect set.
async fn follow(app: &WebApp, browser: &Browser, answer: &Page) -> Page {
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let mut with_flash = browser.clone();
    if let Some(flash) = answer.cookie("tagger_flash") {
        with_flash.cookie = format!("{}; {flash}", browser.cookie);
    }
    app.get(answer.location.as_deref().unwrap(), Some(&with_flash))
        .await
}

#[tokio::test]
async fn an_admin_adds_tests_edits_and_removes_a_connector() {
    let (app, project) = app().await;
    let page = format!("/p/{}/connectors", project.id.0);
    let desk = fake_zendesk().await;

    let labeler = app.login("labeler").await;
    assert_eq!(
        app.get(&page, Some(&labeler)).await.status,
        StatusCode::FORBIDDEN
    );
    let admin = app.login("admin").await;
    let empty = app.get(&page, Some(&admin)).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.body.contains("No connector yet"));

    let form = [
        ("system", "zendesk"),
        ("name", "desk"),
        ("base_url", desk.as_str()),
        ("webhook_secret", SECRET),
        ("user", "bot@acme.example"),
        ("token", TOKEN),
        ("write_back", "on"),
    ];
    // Without the form's CSRF token nothing is created.
    let forged = app.post(&page, Some(&admin.cookie), &form).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(app.store.connectors().await.unwrap().is_empty());

    let added = follow(&app, &admin, &app.submit(&admin, &page, &form).await).await;
    let added = text(&added);
    assert!(added.contains("Connector desk added"), "{added}");
    assert!(added.contains("<code>/v1/connectors/desk/webhook</code>"));
    for tag in datasets::demo::default_taxonomy() {
        let label = connectors::vendor_label(System::Zendesk, tag.name.as_str());
        assert!(
            added.contains(&format!("<code>{label}</code>")),
            "mapping of {} missing",
            tag.name.as_str()
        );
    }
    assert!(!added.contains(SECRET) && !added.contains(TOKEN));
    let stored = app.store.connectors().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].settings.write_back);

    // The same name again is a conflict; a table on a Zendesk connector a bad request.
    let again = app.submit(&admin, &page, &form).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let mut with_table = form.to_vec();
    with_table[1] = ("name", "other");
    with_table.push(("table", "incident"));
    let refused = app.submit(&admin, &page, &with_table).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(text(&refused).contains("ServiceNow connectors only"));

    let test = format!("{page}/desk/test");
    let works = text(&follow(&app, &admin, &app.submit(&admin, &test, &[]).await).await);
    assert!(
        works.contains("the address and the credentials work"),
        "{works}"
    );

    // A wrong token typed in the edit form: the test now fails with Zendesk's reason, and
    // write-back is switched off; the webhook secret not typed again stays.
    let edit = format!("{page}/desk");
    let saved = app
        .submit(
            &admin,
            &edit,
            &[
                ("base_url", desk.as_str()),
                ("write_back", "off"),
                ("token", "a-wrong-token-999"),
            ],
        )
        .await;
    follow(&app, &admin, &saved).await;
    let connector = app
        .store
        .connector_by_name(&ConnectorName::parse("desk").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!connector.settings.write_back);
    let credentials = workbench::credentials::CredentialKey::parse(KEY)
        .unwrap()
        .open("desk", &connector.sealed_credentials)
        .unwrap();
    assert_eq!(credentials.webhook_secret, SECRET);
    assert_eq!(credentials.token.as_deref(), Some("a-wrong-token-999"));
    let fails = text(&follow(&app, &admin, &app.submit(&admin, &test, &[]).await).await);
    assert!(
        fails.contains("The connection failed") && fails.contains("authenticate"),
        "{fails}"
    );

    // Bad edits are refused and change nothing.
    let bad_rate = app
        .submit(&admin, &edit, &[("requests_per_minute", "0")])
        .await;
    assert_eq!(bad_rate.status, StatusCode::BAD_REQUEST);
    let bad_url = app
        .submit(&admin, &edit, &[("base_url", "ftp://desk")])
        .await;
    assert_eq!(bad_url.status, StatusCode::BAD_REQUEST);

    // Another project's page cannot reach the connector.
    let other = app
        .store
        .create_project(&ProjectName::parse("Other").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let elsewhere = app
        .submit(
            &admin,
            &format!("/p/{}/connectors/desk/remove", other.id.0),
            &[],
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);

    let removed = text(
        &follow(
            &app,
            &admin,
            &app.submit(&admin, &format!("{page}/desk/remove"), &[])
                .await,
        )
        .await,
    );
    assert!(removed.contains("Connector desk removed"));
    assert!(app.store.connectors().await.unwrap().is_empty());
}

#[tokio::test]
async fn deliveries_failed_write_backs_and_backfill_progress_are_shown() {
    let (app, project) = app().await;
    let page = format!("/p/{}/connectors", project.id.0);
    let admin = app.login("admin").await;
    let desk = fake_zendesk().await;
    follow(
        &app,
        &admin,
        &app.submit(
            &admin,
            &page,
            &[
                ("system", "zendesk"),
                ("name", "desk"),
                ("base_url", desk.as_str()),
                ("webhook_secret", SECRET),
                ("user", "bot@acme.example"),
                ("token", TOKEN),
                ("write_back", "on"),
            ],
        )
        .await,
    )
    .await;
    let connector = app.store.connectors().await.unwrap().remove(0);
    let ticket = app
        .store
        .upsert_tickets(
            project.id,
            &[NewTicket {
                source: "connector:desk".into(),
                external_id: "4711".into(),
                subject: "Refund please".into(),
                body: "I was charged twice".into(),
                metadata: json!({}),
                created_at: None,
                split: Split::Train,
            }],
        )
        .await
        .unwrap()
        .remove(0)
        .id;
    let DeliveryClaim::New(delivery) = app
        .store
        .claim_delivery(
            connector.id,
            "zendesk:event-1",
            "zen:event-type:ticket.created",
            chrono::Duration::minutes(5),
        )
        .await
        .unwrap()
    else {
        panic!("a first delivery is new");
    };
    app.store
        .finish_delivery(delivery, DeliveryStatus::Stored, Some(ticket))
        .await
        .unwrap();
    app.store
        .record_connector_ticket(&connector, "4711", ticket, None, &[])
        .await
        .unwrap();
    let WriteBackQueued::New(writeback) = app
        .store
        .queue_writeback(connector.id, "4711", ticket, &["billing".to_string()])
        .await
        .unwrap()
    else {
        panic!("a first write-back is new");
    };
    app.store
        .record_writeback_attempt(
            writeback,
            &WriteBackAttempt::Failed {
                reason: "Zendesk answered 403: You do not have access to this ticket".into(),
            },
        )
        .await
        .unwrap();
    let since = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    app.store.start_backfill(connector.id, since).await.unwrap();
    app.store
        .record_backfill_page(connector.id, Some("cursor-2"), 100, 3)
        .await
        .unwrap();

    let shown = app.get(&page, Some(&admin)).await;
    assert_eq!(shown.status, StatusCode::OK);
    let body = &text(&shown);
    assert!(body.contains("zen:event-type:ticket.created"));
    assert!(body.contains(&format!("/p/{}/tickets/{}", project.id.0, ticket.0)));
    assert!(
        body.contains("You do not have access to this ticket"),
        "{body}"
    );
    assert!(body.contains("100 tickets stored, 3 skipped"), "{body}");
    assert!(body.contains("2025-01-01"));

    // This server runs no job queue: the page offers no backfill and the form is refused
    // with the command that does it instead.
    assert!(!body.contains("Backfill history"));
    let refused = app
        .submit(&admin, &format!("{page}/desk/backfill"), &[])
        .await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text(&refused).contains("tagger connectors backfill"));
}
