//! Merging tags from the taxonomy editor and the API, and the learning curve on the Models
//! page, through the real router (`oneshot`) on a real SQLite database.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;

use axum::http::{Method, StatusCode};
use datasets::*;
use support::WebApp;

fn name(text: &str) -> TagName {
    TagName::parse(text).unwrap()
}

struct Taxonomy {
    project: Project,
    billing: Tag,
    payments: Tag,
    ticket: TicketId,
}

/// A project with Billing and Payments and one ticket a person labelled Billing.
async fn taxonomy(app: &WebApp) -> Taxonomy {
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
    let payments = app
        .store
        .create_tag(project.id, &NewTag::named(name("Payments")))
        .await
        .unwrap();
    let ticket = app
        .store
        .upsert_tickets(
            project.id,
            &[NewTicket {
                source: "zendesk".into(),
                external_id: "1".into(),
                subject: "Charged twice".into(),
                body: "my card was charged twice".into(),
                metadata: serde_json::json!({}),
                created_at: None,
                split: Split::Train,
            }],
        )
        .await
        .unwrap()[0]
        .id;
    app.store
        .set_human_labels(project.id, ticket, &[name("Billing")], "ana")
        .await
        .unwrap();
    Taxonomy {
        project,
        billing,
        payments,
        ticket,
    }
}

async fn tags_on(app: &WebApp, t: &Taxonomy) -> Vec<TagName> {
    app.store.ticket(t.project.id, t.ticket).await.unwrap().tags
}

#[tokio::test]
async fn a_labeler_cannot_merge_tags_and_an_admin_can_only_with_the_csrf_token() {
    let app = WebApp::new().await;
    let t = taxonomy(&app).await;
    let uri = format!("/p/{}/taxonomy/merge", t.project.id);
    let (from, into) = (t.billing.id.to_string(), t.payments.id.to_string());
    let fields = [("from", from.as_str()), ("into", into.as_str())];

    let labeler = app.login("labeler").await;
    let page = app
        .get(&format!("/p/{}/taxonomy", t.project.id), Some(&labeler))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("/taxonomy/merge"), "{}", page.body);
    let refused = app.submit(&labeler, &uri, &fields).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let engineer = app.login("mlengineer").await;
    let refused = app.submit(&engineer, &uri, &fields).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    let admin = app.login("admin").await;
    let no_token = app.post(&uri, Some(&admin.cookie), &fields).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN, "{}", no_token.body);
    let wrong_token = app
        .post(
            &uri,
            Some(&admin.cookie),
            &[("csrf", "0123"), fields[0], fields[1]],
        )
        .await;
    assert_eq!(wrong_token.status, StatusCode::FORBIDDEN);
    assert_eq!(tags_on(&app, &t).await, [name("Billing")]);

    let page = app
        .get(&format!("/p/{}/taxonomy", t.project.id), Some(&admin))
        .await;
    assert!(page.body.contains("/taxonomy/merge"), "{}", page.body);
    let done = app.submit(&admin, &uri, &fields).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/p/{}/taxonomy", t.project.id).as_str())
    );
    assert_eq!(tags_on(&app, &t).await, [name("Payments")]);
    let taxonomy = app.store.list_tags(t.project.id).await.unwrap();
    assert!(
        taxonomy
            .iter()
            .any(|tag| tag.id == t.billing.id && tag.archived)
    );
    let history = app
        .store
        .label_history(t.project.id, t.ticket)
        .await
        .unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.set_by == "web:admin, merging Billing into Payments"),
        "{history:?}"
    );
    // The flash on the next page says what happened.
    let flash = done.cookie("tagger_flash").unwrap();
    let after = app
        .get(
            &format!("/p/{}/taxonomy", t.project.id),
            Some(&support::Browser {
                cookie: format!("{}; {flash}", admin.cookie),
                csrf: admin.csrf.clone(),
            }),
        )
        .await;
    assert!(
        after
            .body
            .contains("Billing merged into Payments: tickets 1, labels moved 1, combined 0."),
        "{}",
        after.body
    );

    // Merging a tag into itself is refused with the reason (a conflict with the taxonomy,
    // as the API answers it), not a crash.
    let itself = app
        .submit(&admin, &uri, &[("from", &into), ("into", &into)])
        .await;
    assert_eq!(itself.status, StatusCode::CONFLICT);
    assert!(
        itself.body.contains("merged into itself"),
        "{}",
        itself.body
    );
}

#[tokio::test]
async fn the_merge_api_needs_the_projects_key() {
    let app = WebApp::new().await;
    let t = taxonomy(&app).await;
    let uri = format!("/v1/projects/Acme/tags/{}/merge", t.billing.id);
    let body = serde_json::json!({"into": t.payments.id});
    let (status, _) = app.json(Method::POST, &uri, None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let other = app
        .store
        .create_project(&ProjectName::parse("Other").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let other_key = support::project_key(&app.store, other.id, "other").await;
    let (status, _) = app
        .json(Method::POST, &uri, Some(&other_key), body.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(tags_on(&app, &t).await, [name("Billing")]);

    let unscoped =
        support::scoped_key(&app.store, t.project.id, "reader", "tag,read,label,train").await;
    let (status, _) = app
        .json(Method::POST, &uri, Some(&unscoped), body.clone())
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "merging needs the admin scope"
    );
    let key = support::scoped_key(&app.store, t.project.id, "ci", "admin").await;
    let (status, merged) = app.json(Method::POST, &uri, Some(&key), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["from"]["archived"], true);
    assert_eq!(merged["into"]["name"], "Payments");
    assert_eq!(merged["labels_moved"], 1);
    assert_eq!(merged["labels_combined"], 0);
    assert_eq!(tags_on(&app, &t).await, [name("Payments")]);
    // Merging into an archived tag (Billing now) is a conflict.
    let (status, error) = app
        .json(
            Method::POST,
            &format!("/v1/projects/Acme/tags/{}/merge", t.payments.id),
            Some(&key),
            serde_json::json!({"into": t.billing.id}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
}

fn version(
    labels: (u64, u64),
    by_hand: Option<u64>,
    macro_f1: f64,
    accuracy: f64,
) -> NewModelVersion {
    let mut params = serde_json::json!({
        "train_examples": labels.0,
        "validation_examples": labels.1,
        "test_examples": 50,
    });
    if let Some(by_hand) = by_hand {
        params["labelled_by_hand"] = by_hand.into();
    }
    NewModelVersion {
        kind: datasets::ModelKind::Ngram,
        metrics: serde_json::json!({"macro_f1": macro_f1, "accuracy": accuracy}),
        params,
        ..NewModelVersion::default()
    }
}

#[tokio::test]
async fn the_models_page_draws_the_learning_curve_with_its_table_and_csv() {
    let app = WebApp::new().await;
    let t = taxonomy(&app).await;
    let browser = app.login("labeler").await;
    let models = format!("/p/{}/models", t.project.id);

    // No versions: no curve section.
    let page = app.get(&models, Some(&browser)).await;
    assert!(!page.body.contains("Learning curve"));

    // Created out of order of labels; the last one recorded no counts (an old version).
    for v in [
        version((180, 20), Some(100), 0.8, 0.85),
        version((90, 10), None, 0.6, 0.7),
        NewModelVersion {
            kind: datasets::ModelKind::Ngram,
            metrics: serde_json::json!({"macro_f1": 0.5}),
            ..NewModelVersion::default()
        },
    ] {
        app.store
            .create_model_version(t.project.id, &v)
            .await
            .unwrap();
    }
    let page = app.get(&models, Some(&browser)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Learning curve"), "{}", page.body);
    assert!(page.body.contains("<svg"), "{}", page.body);
    // x 0..250 over 640 px from 56; y 0..1 over 220 px from 12: (100, 0.6) and (200, 0.8).
    assert!(
        page.body.contains(r#"points="312.0,100.0 568.0,56.0""#),
        "{}",
        page.body
    );
    let table_start = page.body.find("Labels learned from").unwrap();
    let table = &page.body[table_start..];
    let first = table.find("<td>#2</td>").unwrap();
    let second = table.find("<td>#1</td>").unwrap();
    assert!(first < second, "fewest labels first");
    assert!(
        !table.contains("<td>#3</td>"),
        "a version without counts is left out"
    );

    let csv = app
        .get(&format!("{models}/learning-curve.csv"), Some(&browser))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.content_type.as_deref(), Some("text/csv; charset=utf-8"));
    let rows: Vec<Vec<&str>> = csv
        .body
        .lines()
        .map(|line| line.split(',').collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "version",
            "kind",
            "status",
            "created",
            "labels_learned_from",
            "labelled_by_hand",
            "imported",
            "test_examples",
            "macro_f1",
            "accuracy"
        ]
    );
    assert_eq!(rows.len(), 3);
    let without_date = |row: &Vec<&str>| -> Vec<String> {
        row.iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .map(|(_, cell)| cell.to_string())
            .collect()
    };
    assert_eq!(
        without_date(&rows[1]),
        [
            "2",
            "ngram",
            "candidate",
            "100",
            "",
            "",
            "50",
            "0.6000",
            "0.7000"
        ]
    );
    assert_eq!(
        without_date(&rows[2]),
        [
            "1",
            "ngram",
            "candidate",
            "200",
            "100",
            "100",
            "50",
            "0.8000",
            "0.8500"
        ]
    );

    // Logged out, the export is not given away.
    let anonymous = app.get(&format!("{models}/learning-curve.csv"), None).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
}
