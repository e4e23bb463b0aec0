//! Tag groups end to end: the API lists, creates, renames and deletes groups and moves tags
//! between them, refusing bad input with a clear 4xx; the taxonomy page does the same for
//! admins only, with CSRF; every change is in the audit log; a person's labels keep one tag
//! per single-choice group; and the tagging API answers per group with the model in
//! service following a group change at once.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support::{self, WebApp};
use axum::http::{Method, StatusCode};
use datasets::store::prelude::*;
use datasets::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

async fn acme(app: &WebApp, mode: LabelMode) -> (Project, String) {
    let project = app
        .store
        .create_project(&ProjectName::parse("Acme").unwrap(), mode)
        .await
        .unwrap();
    for name in ["Bug", "Question", "Billing"] {
        app.store
            .create_tag(project.id, &NewTag::named(TagName::parse(name).unwrap()))
            .await
            .unwrap();
    }
    let key = support::project_key(&app.store, project.id, "tests").await;
    (project, key)
}

async fn call(
    app: &WebApp,
    method: Method,
    uri: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    support::call_api(&app.router, method, uri, Some(key), body).await
}

fn message(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

async fn actions(store: &AnyStore) -> Vec<(String, String)> {
    store
        .audit_entries(&AuditFilter {
            limit: 500,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.target))
        .collect()
}

#[tokio::test]
async fn the_api_manages_groups_and_refuses_bad_input_clearly() {
    let app = WebApp::new().await;
    let (project, key) = acme(&app, LabelMode::Multi).await;
    let reader = support::scoped_key(&app.store, project.id, "reader", "read").await;
    let groups_uri = "/v1/projects/Acme/tag-groups";

    let (status, groups) = call(&app, Method::GET, groups_uri, &reader, None).await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    assert_eq!(groups.as_array().unwrap().len(), 1);
    assert_eq!(groups[0]["name"], "Tags");
    assert_eq!(groups[0]["choice"], "multi");
    assert_eq!(groups[0]["is_default"], true);
    let default_id = groups[0]["id"].clone();

    let new_type = json!({"name": "Type", "choice": "single"});
    let (status, _) = call(
        &app,
        Method::POST,
        groups_uri,
        &reader,
        Some(new_type.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "reading is not editing");
    let (status, kind) = call(&app, Method::POST, groups_uri, &key, Some(new_type)).await;
    assert_eq!(status, StatusCode::CREATED, "{kind}");
    assert_eq!(
        (kind["name"].as_str(), kind["choice"].as_str()),
        (Some("Type"), Some("single"))
    );
    assert_eq!(kind["is_default"], false);

    // Bad input: a taken name in any case, an unknown choice, a blank name.
    let (status, body) = call(
        &app,
        Method::POST,
        groups_uri,
        &key,
        Some(json!({"name": "TYPE", "choice": "multi"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("already exists"), "{body}");
    let (status, body) = call(
        &app,
        Method::POST,
        groups_uri,
        &key,
        Some(json!({"name": "Priority", "choice": "several"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(message(&body).contains("several"), "{body}");
    let (status, body) = call(
        &app,
        Method::POST,
        groups_uri,
        &key,
        Some(json!({"name": "  ", "choice": "multi"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(message(&body).contains("tag group name is empty"), "{body}");

    // Tags join a named group or the default, and move with PATCH.
    let (status, crash) = call(
        &app,
        Method::POST,
        "/v1/projects/Acme/tags",
        &key,
        Some(json!({"name": "Crash", "group": "type"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{crash}");
    assert_eq!(crash["group_id"], kind["id"]);
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/projects/Acme/tags",
        &key,
        Some(json!({"name": "Stray", "group": "Nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        message(&body).contains("no tag group named \"Nope\""),
        "{body}"
    );
    let (_, tags) = call(&app, Method::GET, "/v1/projects/Acme/tags", &reader, None).await;
    let bug = tags
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Bug")
        .unwrap()
        .clone();
    assert_eq!(bug["group_id"], default_id);
    let bug_uri = format!("/v1/projects/Acme/tags/{}", bug["id"]);
    let (status, moved) = call(
        &app,
        Method::PATCH,
        &bug_uri,
        &key,
        Some(json!({"group": "Type"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["group_id"], kind["id"]);
    let (status, body) = call(
        &app,
        Method::PATCH,
        &bug_uri,
        &key,
        Some(json!({"group": "Nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Rename; delete only an empty group that is not the default.
    let type_uri = format!("{groups_uri}/{}", kind["id"]);
    let (status, renamed) = call(
        &app,
        Method::PATCH,
        &type_uri,
        &key,
        Some(json!({"name": "Kind"})),
    )
    .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (StatusCode::OK, Some("Kind"))
    );
    let (status, body) = call(
        &app,
        Method::PATCH,
        &type_uri,
        &key,
        Some(json!({"name": "tags"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = call(&app, Method::DELETE, &type_uri, &key, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("2 tag(s)"), "{body}");
    let default_uri = format!("{groups_uri}/{default_id}");
    let (status, body) = call(&app, Method::DELETE, &default_uri, &key, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("default group"), "{body}");
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{groups_uri}/999999"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{groups_uri}/abc"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, empty) = call(
        &app,
        Method::POST,
        groups_uri,
        &key,
        Some(json!({"name": "Empty", "choice": "multi"})),
    )
    .await;
    let (status, deleted) = call(
        &app,
        Method::DELETE,
        &format!("{groups_uri}/{}", empty["id"]),
        &key,
        None,
    )
    .await;
    assert_eq!(
        (status, deleted["name"].as_str()),
        (StatusCode::OK, Some("Empty"))
    );
    let (_, groups) = call(&app, Method::GET, groups_uri, &reader, None).await;
    let names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Tags", "Kind"]);

    let logged = actions(&app.store).await;
    for (action, target) in [
        ("group.create", "\"Type\""),
        ("group.rename", "\"Kind\""),
        ("group.delete", "\"Empty\""),
        ("tag.update", "\"Bug\""),
    ] {
        assert!(
            logged
                .iter()
                .any(|(a, t)| a == action && t.contains(target)),
            "no {action} of {target}: {logged:?}"
        );
    }
}

#[tokio::test]
async fn a_person_gives_at_most_one_tag_of_a_single_choice_group() {
    let app = WebApp::new().await;
    let (project, key) = acme(&app, LabelMode::Multi).await;
    call(
        &app,
        Method::POST,
        "/v1/projects/Acme/tag-groups",
        &key,
        Some(json!({"name": "Type", "choice": "single"})),
    )
    .await;
    for name in ["Bug", "Question"] {
        let tag = app
            .store
            .list_tags(project.id)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name.as_str() == name)
            .unwrap();
        let (status, body) = call(
            &app,
            Method::PATCH,
            &format!("/v1/projects/Acme/tags/{}", tag.id),
            &key,
            Some(json!({"group": "Type"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, ticket) = call(&app, Method::POST, "/v1/projects/Acme/tickets", &key, Some(json!({"source": "api", "external_id": "1", "subject": "How do I export?", "body": "It crashes"}))).await;
    assert!(status.is_success(), "{ticket}");
    let labels = format!("/v1/projects/Acme/tickets/{}/labels", ticket["id"]);
    let (status, body) = call(
        &app,
        Method::PUT,
        &labels,
        &key,
        Some(json!({"tags": ["Bug", "Question", "Billing"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        message(&body).contains("group \"Type\" is single-choice"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        Method::PUT,
        &labels,
        &key,
        Some(json!({"tags": ["Bug", "Billing"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tags"], json!(["Billing", "Bug"]));
}

#[tokio::test]
async fn admins_manage_groups_on_the_taxonomy_page_and_others_cannot() {
    let app = WebApp::new().await;
    let (project, _) = acme(&app, LabelMode::Single).await;
    let taxonomy = format!("/p/{}/taxonomy", project.id);
    let admin = app.login("admin").await;
    let page = app.get(&taxonomy, Some(&admin)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Add a group"), "{}", page.body);

    let labeler = app.login("labeler").await;
    let refused = app
        .submit(
            &labeler,
            &format!("{taxonomy}/groups"),
            &[("name", "Priority"), ("choice", "single")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let no_csrf = app
        .post(
            &format!("{taxonomy}/groups"),
            Some(&admin.cookie),
            &[("name", "Priority"), ("choice", "single")],
        )
        .await;
    assert!(no_csrf.status.is_client_error(), "{}", no_csrf.status);
    let bad_choice = app
        .submit(
            &admin,
            &format!("{taxonomy}/groups"),
            &[("name", "Priority"), ("choice", "several")],
        )
        .await;
    assert_eq!(bad_choice.status, StatusCode::BAD_REQUEST);
    assert!(
        app.store.list_tag_groups(project.id).await.unwrap().len() == 1,
        "nothing was created"
    );

    let added = app
        .submit(
            &admin,
            &format!("{taxonomy}/groups"),
            &[("name", "Priority"), ("choice", "single")],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let groups = app.store.list_tag_groups(project.id).await.unwrap();
    let priority = groups
        .iter()
        .find(|g| g.name.as_str() == "Priority")
        .unwrap();
    assert_eq!(priority.choice, GroupChoice::Single);
    let duplicate = app
        .submit(
            &admin,
            &format!("{taxonomy}/groups"),
            &[("name", "priority"), ("choice", "multi")],
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);

    // A tag added to a group, another moved there.
    let created = app
        .submit(
            &admin,
            &taxonomy,
            &[("name", "Urgent"), ("group", "Priority")],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let bug = app
        .store
        .list_tags(project.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name.as_str() == "Bug")
        .unwrap();
    let moved = app
        .submit(
            &admin,
            &format!("{taxonomy}/move"),
            &[("tag", &bug.id.to_string()), ("group", "Priority")],
        )
        .await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER, "{}", moved.body);
    let in_priority: BTreeSet<String> = app
        .store
        .list_tags(project.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.group_id == priority.id)
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(
        in_priority,
        BTreeSet::from(["Bug".to_string(), "Urgent".to_string()])
    );
    let page = app.get(&taxonomy, Some(&admin)).await;
    assert!(page.body.contains("<td>Priority</td>"), "{}", page.body);

    // Rename; a group with tags stays; the default group stays; an empty one goes.
    let group_uri = format!("{taxonomy}/groups/{}", priority.id);
    let renamed = app
        .submit(
            &admin,
            &group_uri,
            &[("action", "rename"), ("name", "Urgency")],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER);
    let kept = app
        .submit(&admin, &group_uri, &[("action", "delete")])
        .await;
    assert_eq!(kept.status, StatusCode::CONFLICT);
    let default = groups.iter().find(|g| g.is_default).unwrap();
    let default_kept = app
        .submit(
            &admin,
            &format!("{taxonomy}/groups/{}", default.id),
            &[("action", "delete")],
        )
        .await;
    assert_eq!(default_kept.status, StatusCode::CONFLICT);
    let odd = app
        .submit(&admin, &group_uri, &[("action", "explode")])
        .await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST);
    let labeler_rename = app
        .submit(
            &labeler,
            &group_uri,
            &[("action", "rename"), ("name", "Mine")],
        )
        .await;
    assert_eq!(labeler_rename.status, StatusCode::FORBIDDEN);
    app.submit(
        &admin,
        &format!("{taxonomy}/groups"),
        &[("name", "Spare"), ("choice", "multi")],
    )
    .await;
    let spare = app
        .store
        .list_tag_groups(project.id)
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.name.as_str() == "Spare")
        .unwrap();
    let deleted = app
        .submit(
            &admin,
            &format!("{taxonomy}/groups/{}", spare.id),
            &[("action", "delete")],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    let names: Vec<String> = app
        .store
        .list_tag_groups(project.id)
        .await
        .unwrap()
        .iter()
        .map(|g| g.name.to_string())
        .collect();
    assert_eq!(names, ["Tags", "Urgency"]);

    let logged = actions(&app.store).await;
    for (action, target) in [
        ("group.create", "\"Priority\""),
        ("group.rename", "\"Urgency\""),
        ("group.delete", "\"Spare\""),
        ("tag.update", "\"Bug\""),
        ("tag.create", "\"Urgent\""),
    ] {
        assert!(
            logged
                .iter()
                .any(|(a, t)| a == action && t.contains(target)),
            "no {action} of {target}: {logged:?}"
        );
    }
}

#[tokio::test]
async fn the_tagging_api_answers_per_group_and_follows_a_group_change_at_once() {
    let app = WebApp::new().await;
    let project = datasets::demo_project::install_demo_project(
        &app.store,
        &ProjectName::parse("Acme").unwrap(),
        LabelMode::Multi,
        500,
        5,
    )
    .await
    .unwrap();
    let key = support::project_key(&app.store, project.id, "tests").await;
    let models = tempfile::tempdir().unwrap();
    let mut request = trainer::TrainRequest::default();
    request.ngram.epochs = 4;
    let version = trainer::train(&app.store, &project, &request, models.path(), |_| {})
        .await
        .unwrap()
        .version;
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/v1/projects/Acme/models/{}/promote", version.id),
        &key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A ticket like those the model learned from (an invented one may be unfamiliar, and an
    // unfamiliar ticket gets no tag at all), with words of several tags.
    let stored = app
        .store
        .tickets_after(project.id, None, 200)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.tags.len() >= 2)
        .unwrap();
    let text = json!({
        "subject": stored.ticket.subject,
        "body": stored.ticket.body,
    });
    let (status, before) = call(
        &app,
        Method::POST,
        "/v1/projects/Acme/tag",
        &key,
        Some(text.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["groups"].as_array().unwrap().len(), 1, "{before}");
    assert_eq!(before["groups"][0]["group"], "Tags");
    assert_eq!(before["groups"][0]["tags"], before["applied"]);

    // Type becomes single-choice: every tag the model scores is put there.
    call(
        &app,
        Method::POST,
        "/v1/projects/Acme/tag-groups",
        &key,
        Some(json!({"name": "Type", "choice": "single"})),
    )
    .await;
    let type_tags = ["Bug", "Feature Request", "Question", "Billing", "Data Loss"];
    for tag in app.store.list_tags(project.id).await.unwrap() {
        if type_tags.contains(&tag.name.as_str()) {
            let (status, body) = call(
                &app,
                Method::PATCH,
                &format!("/v1/projects/Acme/tags/{}", tag.id),
                &key,
                Some(json!({"group": "Type"})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    let (status, after) = call(
        &app,
        Method::POST,
        "/v1/projects/Acme/tag",
        &key,
        Some(text),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_ne!(after["review_reason"], "unfamiliar", "{after}");
    let groups = after["groups"].as_array().unwrap();
    let names: Vec<&str> = groups
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Tags", "Type"], "{after}");
    let single = &groups[1];
    assert_eq!(single["choice"], "single");
    let chosen = single["tags"].as_array().unwrap();
    assert!(chosen.len() <= 1, "{after}");
    // The choice is the likeliest Type tag a keyword rule added, else the likeliest among
    // those past their own thresholds (scores run from the likeliest).
    let scores = single["scores"].as_array().unwrap();
    let by_rule: Vec<&Value> = scores.iter().filter(|s| s["rule"] == "added").collect();
    let confident: Vec<&Value> = if by_rule.is_empty() {
        scores
            .iter()
            .filter(|s| {
                s["rule"] != "vetoed" && s["probability"].as_f64() >= s["threshold"].as_f64()
            })
            .collect()
    } else {
        by_rule
    };
    assert_eq!(chosen.len(), usize::from(!confident.is_empty()), "{after}");
    if let Some(best) = confident.first() {
        assert_eq!(chosen[0], best["tag"]);
    }
    assert_eq!(single["scores"].as_array().unwrap().len(), type_tags.len());
    // The flat fields stay as they were: `applied` is every group's tags together.
    let flat: BTreeSet<&str> = after["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let by_group: BTreeSet<&str> = groups
        .iter()
        .flat_map(|g| {
            g["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
        })
        .collect();
    assert_eq!(flat, by_group);
    assert_eq!(after["scores"].as_array().unwrap().len(), 10);
}
