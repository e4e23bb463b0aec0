//! Snapshots of the rendered HTML of the main pages (insta), through the real router
//! (`oneshot`) on a fresh SQLite database filled the same way every run. What differs
//! between runs is filtered out before comparing: CSRF tokens, dates and times (stored
//! timestamps come from the clock; ticket dates are fixed relative to today so the
//! dashboard's periods hold the same tickets). Ids are stable: every test starts from an
//! empty database and writes in the same order.
//!
//! A page changed on purpose: review the diff with `cargo insta review`, or accept every
//! new snapshot with `INSTA_UPDATE=always cargo test -p workbench --test http -- snapshots::`
//! (docs/web.md, "Tests").
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;

use chrono::{Duration, NaiveTime, Utc};
use datasets::*;
use support::{Page, WebApp};

/// (pattern, replacement): what changes from run to run, in the order applied.
fn volatile() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            r#"name="csrf" value="[^"]*""#,
            r#"name="csrf" value="[csrf]""#,
        ),
        (
            r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?",
            "[time]",
        ),
        (r"\d{4}-\d{2}-\d{2}", "[date]"),
        // Day ticks of the dashboard's trend chart (month-day).
        (r">\d{2}-\d{2}<", ">[day]<"),
    ]
}

fn assert_page(name: &str, page: &Page) {
    assert_eq!(page.status, axum::http::StatusCode::OK, "{}", page.body);
    insta::with_settings!({
        filters => volatile(),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, page.body);
    });
}

fn tag(name: &str) -> TagName {
    TagName::parse(name).unwrap()
}

/// Per-tag figures as the trainer stores them.
fn evaluation(f1: f64, tags: &[&str]) -> serde_json::Value {
    let per_tag: Vec<serde_json::Value> = tags
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let step = i as f64 * 0.05;
            serde_json::json!({
                "tag": name, "precision": f1 + step / 2.0, "recall": f1 - step,
                "f1": f1 - step / 2.0, "support": 10 + i, "threshold": 0.5
            })
        })
        .collect();
    serde_json::json!({
        "examples": 40, "accuracy": f1 + 0.05, "micro_f1": f1 + 0.02, "macro_f1": f1, "ece": 0.04,
        "per_tag": per_tag,
        "confusion": [[8, 1, 0, 1], [1, 9, 0, 0], [0, 1, 7, 2], [0, 0, 1, 9]],
        "coverage": {"auto_tagged_share": 0.62, "precision": 0.91, "review_share": 0.38}
    })
}

/// The project every snapshot shows: four tags, twelve tickets over the last three weeks
/// (labelled by people, imported and by a model), two model versions with the first in
/// service, a review queue and a queued training run.
async fn demo(app: &WebApp) -> Project {
    let store = &app.store;
    let project = store
        .create_project(
            &ProjectName::parse("Acme support").unwrap(),
            LabelMode::Multi,
        )
        .await
        .unwrap();
    let tags = [
        (
            "Billing",
            "Invoices, refunds and charges",
            "#2563eb",
            vec!["invoice", "refund"],
            vec!["newsletter"],
        ),
        (
            "Login",
            "Passwords and sign-in",
            "#16a34a",
            vec!["password"],
            vec![],
        ),
        ("Outage", "Something is down", "#dc2626", vec![], vec![]),
        ("Shipping", "", "#d97706", vec!["parcel"], vec![]),
    ];
    for (name, description, color, include, exclude) in tags {
        let mut new = NewTag::named(tag(name));
        new.description = description.into();
        new.color = color.into();
        new.keywords = KeywordRules {
            include: include.into_iter().map(String::from).collect(),
            exclude: exclude.into_iter().map(String::from).collect(),
        };
        store.create_tag(project.id, &new).await.unwrap();
    }
    let noon = Utc::now()
        .date_naive()
        .and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap())
        .and_utc();
    let texts = [
        (
            "Invoice charged twice",
            "My card was charged twice for the March invoice.",
        ),
        ("Cannot log in", "The password reset mail never came."),
        ("Site down?", "Every page gives a 502 since this morning."),
        ("Where is my parcel", "Tracking has not moved for a week."),
        (
            "Refund please",
            "I cancelled within the trial, please refund.",
        ),
        ("Locked out", "Too many attempts, now my account is locked."),
        ("API errors", "Our integration gets timeouts from the API."),
        ("Wrong address", "The parcel went to my old address."),
        (
            "Invoice in euros",
            "Can I get the invoice in EUR instead of USD?",
        ),
        ("2FA lost phone", "I lost the phone with my authenticator."),
        (
            "<script>alert('x')</script>",
            "<img src=x onerror=alert(1)>",
        ),
        ("Slow dashboard", "The reports page takes a minute to load."),
    ];
    let tickets: Vec<NewTicket> = texts
        .iter()
        .enumerate()
        .map(|(i, (subject, body))| NewTicket {
            source: if i % 3 == 0 { "jira" } else { "zendesk" }.into(),
            external_id: format!("T-{}", 100 + i),
            subject: subject.to_string(),
            body: body.to_string(),
            metadata: serde_json::json!({"priority": if i % 2 == 0 { "high" } else { "normal" }}),
            created_at: Some(noon - Duration::days((i as i64 * 5) % 21)),
            split: if i % 4 == 3 {
                Split::Test
            } else {
                Split::Train
            },
        })
        .collect();
    let ids: Vec<TicketId> = store
        .upsert_tickets(project.id, &tickets)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    let all = ["Billing", "Login", "Outage", "Shipping"];
    let first = store
        .create_model_version(
            project.id,
            &NewModelVersion {
                kind: datasets::ModelKind::Ngram,
                metrics: evaluation(0.72, &all),
                params: serde_json::json!({"train_examples": 6, "validation_examples": 1, "test_examples": 3, "labelled_by_hand": 4}),
                ..NewModelVersion::default()
            },
        )
        .await
        .unwrap();
    store
        .create_model_version(
            project.id,
            &NewModelVersion {
                kind: datasets::ModelKind::Ngram,
                metrics: evaluation(0.81, &all),
                params: serde_json::json!({"train_examples": 8, "validation_examples": 1, "test_examples": 3, "labelled_by_hand": 6}),
                ..NewModelVersion::default()
            },
        )
        .await
        .unwrap();
    store
        .promote_model_version(project.id, first.id, "web:admin")
        .await
        .unwrap();
    let model = [
        (0, vec![("Billing", 0.94)]),
        (1, vec![("Login", 0.88)]),
        (2, vec![("Outage", 0.55), ("Login", 0.31)]),
        (3, vec![("Shipping", 0.97)]),
        (4, vec![("Billing", 0.67)]),
        (6, vec![("Outage", 0.42)]),
        (7, vec![("Billing", 0.51)]),
        (11, vec![("Outage", 0.49)]),
    ];
    let taxonomy = store.list_tags(project.id).await.unwrap();
    let id_of = |name: &str| {
        taxonomy
            .iter()
            .find(|t| t.name.as_str() == name)
            .unwrap()
            .id
    };
    for (ticket, tags) in model {
        let tags: Vec<(TagId, f32)> = tags.iter().map(|(n, c)| (id_of(n), *c)).collect();
        store
            .set_model_labels(project.id, ids[ticket], first.id, &tags)
            .await
            .unwrap();
    }
    for (ticket, tags, who) in [
        (0, vec!["Billing"], "ana"),
        (2, vec!["Outage"], "ana"),
        (4, vec!["Billing"], "ben"),
        (5, vec!["Login"], "ben"),
        (7, vec!["Shipping"], "ana"),
        (10, vec![], "ana"),
    ] {
        let tags: Vec<TagName> = tags.iter().map(|t| tag(t)).collect();
        store
            .set_human_labels(project.id, ids[ticket], &tags, who)
            .await
            .unwrap();
    }
    let queue: Vec<NewQueueEntry> = [(6, 0.91), (11, 0.83), (9, 0.42)]
        .iter()
        .map(|(ticket, score)| NewQueueEntry {
            ticket_id: ids[*ticket],
            score: *score,
            strategy: "margin".into(),
            reason: format!("margin {:.2} between the two likeliest tags", 1.0 - score),
        })
        .collect();
    store
        .replace_review_queue(project.id, &queue)
        .await
        .unwrap();
    store
        .create_training_run(
            project.id,
            &NewTrainingRun {
                kind: datasets::ModelKind::Ngram,
                params: serde_json::json!({"epochs": 8}),
                requested_by: "mlengineer".into(),
            },
        )
        .await
        .unwrap();
    project
}

async fn page(user: &str, path: impl Fn(&Project) -> String) -> Page {
    let app = WebApp::new().await;
    let project = demo(&app).await;
    let browser = app.login(user).await;
    app.get(&path(&project), Some(&browser)).await
}

#[tokio::test]
async fn login_page() {
    let app = WebApp::new().await;
    assert_page("login", &app.get("/login", None).await);
}

#[tokio::test]
async fn review_page() {
    let page = page("labeler", |p| format!("/p/{}/review", p.id)).await;
    assert_page("review", &page);
}

#[tokio::test]
async fn tickets_page() {
    let page = page("labeler", |p| format!("/p/{}/tickets", p.id)).await;
    assert_page("tickets", &page);
}

#[tokio::test]
async fn tickets_page_filtered_by_tag_and_source() {
    let page = page("labeler", |p| {
        format!("/p/{}/tickets?tag=Billing&source=zendesk", p.id)
    })
    .await;
    assert_page("tickets_filtered", &page);
}

#[tokio::test]
async fn ticket_page() {
    // Ticket 5 (Refund please): the model's Billing, confirmed by a person, with history.
    let page = page("labeler", |p| format!("/p/{}/tickets/5", p.id)).await;
    assert_page("ticket", &page);
}

#[tokio::test]
async fn taxonomy_page_as_admin() {
    let page = page("admin", |p| format!("/p/{}/taxonomy", p.id)).await;
    assert_page("taxonomy_admin", &page);
}

#[tokio::test]
async fn taxonomy_page_as_labeler() {
    let page = page("labeler", |p| format!("/p/{}/taxonomy", p.id)).await;
    assert_page("taxonomy_labeler", &page);
}

#[tokio::test]
async fn tag_page_with_rule_preview() {
    let page = page("admin", |p| {
        format!("/p/{}/taxonomy/1?include=invoice%0Arefund&exclude=", p.id)
    })
    .await;
    assert_page("tag_preview", &page);
}

#[tokio::test]
async fn models_page() {
    let page = page("mlengineer", |p| format!("/p/{}/models", p.id)).await;
    assert_page("models", &page);
}

#[tokio::test]
async fn compare_page() {
    let page = page("labeler", |p| format!("/p/{}/models/compare?a=1&b=2", p.id)).await;
    assert_page("compare", &page);
}

#[tokio::test]
async fn dashboard_page() {
    let page = page("labeler", |p| format!("/p/{}/dashboard?days=30", p.id)).await;
    assert_page("dashboard", &page);
}

#[tokio::test]
async fn training_page() {
    let page = page("mlengineer", |p| format!("/p/{}/training", p.id)).await;
    assert_page("training", &page);
}

#[tokio::test]
async fn users_page() {
    let page = page("admin", |_| "/admin/users".to_string()).await;
    assert_page("users", &page);
}

#[tokio::test]
async fn projects_and_keys_page() {
    let page = page("admin", |_| "/admin/projects".to_string()).await;
    assert_page("admin_projects", &page);
}

#[tokio::test]
async fn agreement_page() {
    let page = page("admin", |p| format!("/p/{}/agreement", p.id)).await;
    assert_page("agreement", &page);
}
