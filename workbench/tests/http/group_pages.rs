//! The ticket, review and dashboard pages of a project with tag groups (issue 18): the tags
//! under group headings with the model's pick per group, the store's refusal of two tags of
//! a single-choice group shown as the form's error, and tag counts per group.

use crate::support::{Page, WebApp};
use axum::http::StatusCode;
use datasets::*;

struct Grouped {
    app: WebApp,
    project: Project,
    ticket: TicketId,
}

/// Topics (the default group, multi-choice: Billing, Login), Type (Bug, Question) and
/// Priority (Low, High), and two tickets; the first has model labels Billing 0.91, Bug 0.83,
/// Question 0.35 and High 0.62, and a person's Billing, Bug and High on the second.
async fn grouped() -> Grouped {
    let app = WebApp::new().await;
    let store = &app.store;
    let project = store
        .create_project(&ProjectName::parse("Triage").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let default = store.list_tag_groups(project.id).await.unwrap()[0].id;
    store
        .rename_tag_group(project.id, default, &TagGroupName::parse("Topics").unwrap())
        .await
        .unwrap();
    for group in ["Type", "Priority"] {
        store
            .create_tag_group(
                project.id,
                &NewTagGroup {
                    name: TagGroupName::parse(group).unwrap(),
                    choice: GroupChoice::Single,
                },
            )
            .await
            .unwrap();
    }
    let mut ids = std::collections::HashMap::new();
    for (tag, group) in [
        ("Billing", None),
        ("Login", None),
        ("Bug", Some("Type")),
        ("Question", Some("Type")),
        ("Low", Some("Priority")),
        ("High", Some("Priority")),
    ] {
        let mut new = NewTag::named(TagName::parse(tag).unwrap());
        new.group = group.map(|g| TagGroupName::parse(g).unwrap());
        let created = store.create_tag(project.id, &new).await.unwrap();
        ids.insert(tag, created.id);
    }
    let tickets: Vec<NewTicket> = [
        (
            "1",
            "Charged twice",
            "The invoice shows the amount twice and it is broken",
        ),
        ("2", "Refund", "Where do I ask for a refund?"),
    ]
    .iter()
    .map(|(id, subject, body)| NewTicket {
        source: "zendesk".into(),
        external_id: id.to_string(),
        subject: subject.to_string(),
        body: body.to_string(),
        metadata: serde_json::json!({}),
        created_at: None,
        split: Split::Train,
    })
    .collect();
    let stored = store.upsert_tickets(project.id, &tickets).await.unwrap();
    let version = store
        .create_model_version(project.id, &NewModelVersion::default())
        .await
        .unwrap();
    store
        .set_model_labels(
            project.id,
            stored[0].id,
            version.id,
            &[
                (ids["Billing"], 0.91),
                (ids["Bug"], 0.83),
                (ids["Question"], 0.35),
                (ids["High"], 0.62),
            ],
        )
        .await
        .unwrap();
    let chosen = ["Billing", "Bug", "High"].map(|t| TagName::parse(t).unwrap());
    store
        .set_human_labels(project.id, stored[1].id, &chosen, "ana")
        .await
        .unwrap();
    Grouped {
        app,
        project,
        ticket: stored[0].id,
    }
}

/// The `(kind, message)` of the flash a redirect sets.
fn flash(page: &Page) -> (String, String) {
    let cookie = page.cookie("tagger_flash").expect("a flash");
    let hex = cookie.trim_start_matches("tagger_flash=");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let text = String::from_utf8(bytes).unwrap();
    let (kind, message) = text.split_once(':').unwrap();
    (kind.to_string(), message.to_string())
}

/// The part of `body` from the fieldset of `group` to its end.
fn fieldset<'a>(body: &'a str, group: &str) -> &'a str {
    let legend = body
        .find(&format!("<legend><strong>{group}</strong>"))
        .unwrap_or_else(|| panic!("no heading for {group}: {body}"));
    let start = body[..legend].rfind("<fieldset").unwrap();
    let end = legend + body[legend..].find("</fieldset>").unwrap();
    &body[start..end]
}

#[tokio::test]
async fn the_ticket_page_shows_tags_under_their_groups_with_the_models_pick() {
    let Grouped {
        app,
        project,
        ticket,
    } = grouped().await;
    let browser = app.login("labeler").await;
    let page = app
        .get(
            &format!("/p/{}/tickets/{}", project.id, ticket),
            Some(&browser),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    // Groups in listing order, each with its choice and the model's pick and confidence.
    let (topics, kind, priority) = (
        body.find("<strong>Topics</strong>").unwrap(),
        body.find("<strong>Type</strong>").unwrap(),
        body.find("<strong>Priority</strong>").unwrap(),
    );
    assert!(topics < kind && kind < priority);
    let kind = fieldset(body, "Type");
    assert!(kind.contains("data-single-choice"), "{kind}");
    assert!(kind.contains("single-choice</span>"), "{kind}");
    assert!(
        kind.contains("model: Bug <span class=\"muted\">0.83</span>"),
        "{kind}"
    );
    assert!(kind.contains("value=\"Question\""), "{kind}");
    assert!(!kind.contains("value=\"Billing\""), "{kind}");
    let topics = fieldset(body, "Topics");
    assert!(!topics.contains("data-single-choice"), "{topics}");
    assert!(topics.contains("multi-choice"), "{topics}");
    assert!(topics.contains("model: Billing"), "{topics}");
    assert!(fieldset(body, "Priority").contains("model: High <span class=\"muted\">0.62</span>"));
    // Checkboxes, not one radio group across the groups.
    assert!(!body.contains("type=\"radio\" name=\"tags\""));

    // Two tags of the single-choice Type group: not saved, the form's error says why.
    let answer = app
        .submit(
            &browser,
            &format!("/p/{}/tickets/{}/labels", project.id, ticket),
            &[("tags", "Billing"), ("tags", "Bug"), ("tags", "Question")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer.location.as_deref(),
        Some(format!("/p/{}/tickets/{}", project.id, ticket).as_str())
    );
    let (kind, message) = flash(&answer);
    assert_eq!(kind, "error");
    assert!(
        message.contains("group \"Type\" is single-choice"),
        "{message}"
    );
    let stored = app.store.ticket(project.id, ticket).await.unwrap();
    assert!(
        !stored.labels.iter().any(|l| l.source == LabelSource::Human),
        "nothing was saved"
    );
    // One of each is saved.
    let answer = app
        .submit(
            &browser,
            &format!("/p/{}/tickets/{}/labels", project.id, ticket),
            &[("tags", "Billing"), ("tags", "Question"), ("tags", "Low")],
        )
        .await;
    assert_eq!(flash(&answer).0, "ok");
    let mut tags: Vec<String> = app
        .store
        .ticket(project.id, ticket)
        .await
        .unwrap()
        .tags
        .iter()
        .map(|t| t.to_string())
        .collect();
    tags.sort();
    assert_eq!(tags, ["Billing", "Low", "Question"]);
}

#[tokio::test]
async fn the_review_page_keys_tags_group_by_group_and_refuses_two_of_a_single_choice_group() {
    let Grouped {
        app,
        project,
        ticket,
    } = grouped().await;
    let browser = app.login("labeler").await;
    let page = app
        .get(
            &format!("/p/{}/review?ticket={}", project.id, ticket),
            Some(&browser),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    // Keys 1–6 run through the groups in order: Topics, then Type, then Priority (each
    // group's tags in the taxonomy's order, by name).
    for (key, tag) in [
        ("1", "Billing"),
        ("2", "Login"),
        ("3", "Bug"),
        ("4", "Question"),
        ("5", "High"),
        ("6", "Low"),
    ] {
        assert!(
            body.contains(&format!("value=\"{tag}\" data-key=\"{key}\"")),
            "{tag} is not on key {key}: {body}"
        );
    }
    let kind = fieldset(body, "Type");
    assert!(kind.contains("data-single-choice"), "{kind}");
    assert!(kind.contains("model: Bug"), "{kind}");
    // The model's Bug (0.83, at or above the default threshold) is pre-selected, its
    // Question (0.35) is not.
    assert!(
        kind.contains("value=\"Bug\" data-key=\"3\" checked"),
        "{kind}"
    );
    assert!(
        !kind.contains("value=\"Question\" data-key=\"4\" checked"),
        "{kind}"
    );

    let answer = app
        .submit(
            &browser,
            &format!("/p/{}/review/{}", project.id, ticket),
            &[("tags", "Low"), ("tags", "High"), ("action", "confirm")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer.location.as_deref(),
        Some(format!("/p/{}/review?ticket={}", project.id, ticket).as_str())
    );
    let (kind, message) = flash(&answer);
    assert_eq!(kind, "error");
    assert!(
        message.contains("group \"Priority\" is single-choice"),
        "{message}"
    );
    assert!(message.contains("not saved"), "{message}");
    let answer = app
        .submit(
            &browser,
            &format!("/p/{}/review/{}", project.id, ticket),
            &[
                ("tags", "Billing"),
                ("tags", "Bug"),
                ("tags", "High"),
                ("action", "confirm"),
            ],
        )
        .await;
    assert_eq!(flash(&answer).0, "ok");
}

#[tokio::test]
async fn the_dashboard_counts_tags_under_their_groups() {
    let Grouped { app, project, .. } = grouped().await;
    let browser = app.login("labeler").await;
    let page = app
        .get(&format!("/p/{}/dashboard", project.id), Some(&browser))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    for group in ["Topics", "Type", "Priority"] {
        assert!(
            body.contains(&format!("aria-label=\"Tickets per tag of {group}\"")),
            "no chart for {group}"
        );
    }
    assert!(
        body.contains("<tr><td>Priority</td><td>High</td><td>"),
        "{body}"
    );
    let csv = app
        .get(
            &format!("/p/{}/dashboard/tag-counts.csv", project.id),
            Some(&browser),
        )
        .await;
    assert!(
        csv.body.starts_with("tag,tickets,archived,group\n"),
        "{}",
        csv.body
    );
    assert!(csv.body.contains("\nHigh,"), "{}", csv.body);
    let high = csv.body.lines().find(|l| l.starts_with("High,")).unwrap();
    assert!(high.ends_with(",Priority"), "{high}");
}
