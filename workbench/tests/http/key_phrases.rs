//! Key phrases on the pages: a tag's own phrases on its page, a ticket's on its page, and
//! what is new in a rising tag on the dashboard, through the real router on SQLite.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support::{self, WebApp};
use axum::http::{Method, StatusCode};
use chrono::{Duration, Utc};
use datasets::*;

fn name(text: &str) -> TagName {
    TagName::parse(text).unwrap()
}

/// The part of a page from `start` to the next `end`.
fn section<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let from = body
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in {body}"));
    let rest = &body[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

struct Fixture {
    project: Project,
    billing: Tag,
}

/// A project whose Billing tickets speak of duplicate charges and refunds and whose Login
/// tickets speak of password resets; `at(i)` places the i-th ticket of each in time.
async fn project(
    app: &WebApp,
    billing_texts: &[(String, chrono::DateTime<Utc>)],
    login_count: usize,
) -> Fixture {
    let project = app
        .store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let billing = app
        .store
        .create_tag(project.id, &NewTag::named(name("Billing")))
        .await
        .unwrap();
    app.store
        .create_tag(project.id, &NewTag::named(name("Login")))
        .await
        .unwrap();
    let ticket = |i: usize, subject: &str, body: &str, at| NewTicket {
        source: "api".into(),
        external_id: i.to_string(),
        subject: subject.into(),
        body: body.into(),
        metadata: serde_json::json!({}),
        created_at: Some(at),
        split: Split::Train,
    };
    let mut tickets = Vec::new();
    for (i, (text, at)) in billing_texts.iter().enumerate() {
        tickets.push(ticket(i, &format!("Billing question {i}"), text, *at));
    }
    for i in 0..login_count {
        tickets.push(ticket(
            1000 + i,
            &format!("Cannot sign in {i}"),
            "The password reset mail never arrives, my account is locked",
            Utc::now() - Duration::days(40 + i as i64),
        ));
    }
    let stored = app
        .store
        .upsert_tickets(project.id, &tickets)
        .await
        .unwrap();
    for (i, t) in stored.iter().enumerate() {
        let tag = if i < billing_texts.len() {
            "Billing"
        } else {
            "Login"
        };
        app.store
            .set_human_labels(project.id, t.id, &[name(tag)], "ana")
            .await
            .unwrap();
    }
    Fixture { project, billing }
}

#[tokio::test]
async fn a_tags_page_lists_its_own_phrases_and_a_tickets_page_its_topic() {
    let app = WebApp::new().await;
    let billing: Vec<(String, chrono::DateTime<Utc>)> = (0..30)
        .map(|i| {
            (
                "I was charged twice: please refund the duplicate charge on my account".to_string(),
                Utc::now() - Duration::days(50 + i),
            )
        })
        .collect();
    let f = project(&app, &billing, 30).await;
    let admin = app.login("admin").await;

    let page = app
        .get(
            &format!("/p/{}/taxonomy/{}", f.project.id, f.billing.id),
            Some(&admin),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let phrases = section(&page.body, "<h2>Key phrases</h2>", "</table>");
    for expected in ["duplicate charge", "charged twice", "refund"] {
        assert!(phrases.contains(expected), "{expected} missing: {phrases}");
    }
    // Each links to the tag's tickets that use it.
    assert!(
        phrases.contains("tickets?q=duplicate%20charge&amp;tag=Billing"),
        "{phrases}"
    );
    // "account" is in every ticket of both tags; the Login tickets' words are theirs.
    for absent in ["account", "password"] {
        assert!(!phrases.contains(absent), "{absent} listed: {phrases}");
    }

    // The same list over the API, with a key that may read; not without one.
    let key = support::scoped_key(&app.store, f.project.id, "reader", "read").await;
    let uri = format!("/v1/projects/Acme/tags/{}/key-phrases", f.billing.id);
    let (status, body) = support::call_api(&app.router, Method::GET, &uri, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tag"], "Billing");
    let listed: Vec<&str> = body["phrases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phrase"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"duplicate charge"), "{body}");
    assert!(!listed.contains(&"password reset"), "{body}");
    let first = &body["phrases"][0];
    assert!(first["z"].as_f64().unwrap() >= 1.96, "{body}");
    assert!(first["focus_tickets"].as_u64().unwrap() >= 3, "{body}");
    let (status, _) = support::call_api(&app.router, Method::GET, &uri, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = support::call_api(
        &app.router,
        Method::GET,
        "/v1/projects/Acme/tags/999999/key-phrases",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // A ticket about a duplicate charge, with a word no other ticket has.
    let ticket = app
        .store
        .upsert_tickets(
            f.project.id,
            &[NewTicket {
                source: "api".into(),
                external_id: "new".into(),
                subject: "Duplicate charge".into(),
                body: "The zeppelin tour shows a duplicate charge".into(),
                metadata: serde_json::json!({}),
                created_at: None,
                split: Split::Train,
            }],
        )
        .await
        .unwrap()[0]
        .id;
    let page = app
        .get(
            &format!("/p/{}/tickets/{}", f.project.id, ticket),
            Some(&admin),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let phrases = section(&page.body, "<h2>Key phrases</h2>", "</p>");
    assert!(phrases.contains(">duplicate charge</a>"), "{phrases}");
    // A word no other ticket uses is held back (a typo, an id), the ticket itself not
    // counted as another ticket.
    assert!(!phrases.contains("zeppelin"), "{phrases}");
    assert!(!phrases.contains("password"), "{phrases}");
}

#[tokio::test]
async fn a_rising_tag_on_the_dashboard_says_what_is_new_in_it() {
    let app = WebApp::new().await;
    // 30 Billing tickets over the four weeks before last week, about declined cards; 20 in
    // the last week, about a chargeback fee.
    let week_start = (Utc::now().date_naive() - Duration::days(6))
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    let mut billing: Vec<(String, chrono::DateTime<Utc>)> = (0..30)
        .map(|i| {
            (
                "Refund request: my card was declined at checkout".to_string(),
                week_start - Duration::hours(20 + 22 * i),
            )
        })
        .collect();
    billing.extend((0..20).map(|i| {
        (
            "Refund request: a chargeback fee appeared on my invoice".to_string(),
            week_start + Duration::hours(3 * i),
        )
    }));
    let f = project(&app, &billing, 10).await;
    let admin = app.login("admin").await;
    let page = app
        .get(&format!("/p/{}/dashboard", f.project.id), Some(&admin))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let rising = section(&page.body, "<li class=\"rising\">", "</li>");
    assert!(
        rising.contains("<strong>Billing</strong> is rising"),
        "{rising}"
    );
    assert!(rising.contains("New in it this week"), "{rising}");
    assert!(rising.contains("chargeback fee"), "{rising}");
    // Words of both periods are not new.
    for old in ["refund", "declined"] {
        assert!(!rising.contains(old), "{old} listed as new: {rising}");
    }
}
