//! Explanations end to end, on both databases: `?explain=true` on the tagging API gives the
//! words behind each tag (exact for the `ngram` model: they add up to the logit), nothing
//! when not asked; the ticket and review pages mark the word behind a trained model's tag.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support::{self, WebApp};
use axum::http::{Method, StatusCode};
use datasets::store::prelude::*;
use datasets::{AnyStore, LabelMode, Project, ProjectName, TicketId};
use serde_json::{Value, json};

/// A ticket whose only Billing word is "refund", among words no tag owns. Whether the demo's
/// model applies a tag to it, or sends it to review as unlike its tickets, is the model's
/// business: these tests check the explanation of whichever tag the verdict explains (that the
/// top word of a crafted ticket is the obvious one is the inference crate's tests' job).
const SUBJECT: &str = "Hello team";
const BODY: &str = "I hope you are doing well today. I need a refund, thanks a lot and have \
    a nice weekend.";

/// The demo project with a trained `ngram` model promoted; the folder of its files.
async fn project_with_a_model(store: &AnyStore) -> (Project, tempfile::TempDir) {
    let name = ProjectName::parse("Acme").unwrap();
    let project =
        datasets::demo_project::install_demo_project(store, &name, LabelMode::Multi, 500, 5)
            .await
            .unwrap();
    let models = tempfile::tempdir().unwrap();
    let mut request = trainer::TrainRequest::default();
    request.ngram.epochs = 4;
    let version = trainer::train(store, &project, &request, models.path(), |_| {})
        .await
        .unwrap()
        .version;
    store
        .promote_model_version(project.id, version.id, "test")
        .await
        .unwrap();
    (project, models)
}

/// The characters `start..end` of `text`.
fn chars(text: &str, start: &Value, end: &Value) -> String {
    let (start, end) = (
        start.as_u64().unwrap() as usize,
        end.as_u64().unwrap() as usize,
    );
    text.chars().skip(start).take(end - start).collect()
}

/// The tag a verdict explains first, and its explanation.
fn first_explained(verdict: &Value) -> (String, &Value) {
    let first = &verdict["explanation"]["tags"][0];
    let tag = first["tag"]
        .as_str()
        .unwrap_or_else(|| panic!("no explained tag: {verdict}"))
        .to_string();
    (tag, first)
}

/// The explanation of `tag` in a verdict.
fn explanation_of<'a>(verdict: &'a Value, tag: &str) -> &'a Value {
    verdict["explanation"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == tag)
        .unwrap_or_else(|| panic!("no explanation of {tag}: {verdict}"))
}

async fn the_api_explains_on_request_and_the_words_add_up(store: AnyStore) {
    let (project, _models) = project_with_a_model(&store).await;
    let app = WebApp::on(store.clone()).await;
    let key = support::project_key(&store, project.id, "tests").await;
    let ticket = json!({"subject": SUBJECT, "body": BODY});

    let (status, plain) = app
        .json(
            Method::POST,
            "/v1/projects/Acme/tag",
            Some(&key),
            ticket.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    assert!(
        plain.get("explanation").is_none(),
        "off unless asked: {plain}"
    );

    let (status, verdict) = app
        .json(
            Method::POST,
            "/v1/projects/Acme/tag?explain=true",
            Some(&key),
            ticket.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(
        verdict["applied"], plain["applied"],
        "explaining changes no verdict"
    );
    let text = verdict["explanation"]["text"].as_str().unwrap();
    assert_eq!(text, datasets::ticket::model_text(SUBJECT, BODY));
    let (tag, billing) = first_explained(&verdict);
    assert_eq!(billing["method"], "exact");
    let words = billing["words"].as_array().unwrap();
    assert_eq!(words.len(), 5, "five words unless asked: {billing}");
    for word in words {
        assert_eq!(
            chars(text, &word["start"], &word["end"]),
            word["phrase"].as_str().unwrap(),
            "{billing}"
        );
    }
    // Exact: the bias, the listed words and the rest add up to the logit.
    let sum = billing["bias"].as_f64().unwrap()
        + words
            .iter()
            .map(|w| w["contribution"].as_f64().unwrap())
            .sum::<f64>()
        + billing["rest"].as_f64().unwrap();
    let logit = billing["logit"].as_f64().unwrap();
    assert!(
        (sum - logit).abs() < 1e-3 * (1.0 + logit.abs()),
        "{sum} against {logit}"
    );
    // Every applied tag is explained, and only those; with none applied, the best-scored one.
    let explained: Vec<&Value> = verdict["explanation"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["tag"])
        .collect();
    let applied: Vec<&Value> = verdict["applied"].as_array().unwrap().iter().collect();
    if applied.is_empty() {
        let best = verdict["scores"]
            .as_array()
            .unwrap()
            .iter()
            .max_by(|a, b| {
                a["probability"]
                    .as_f64()
                    .unwrap()
                    .total_cmp(&b["probability"].as_f64().unwrap())
            })
            .unwrap();
        assert_eq!(explained, vec![&best["tag"]], "{verdict}");
    } else {
        assert_eq!(explained, applied);
    }

    let (status, two) = app
        .json(
            Method::POST,
            "/v1/projects/Acme/tag?explain=true&explain_words=2",
            Some(&key),
            ticket.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{two}");
    assert_eq!(
        explanation_of(&two, &tag)["words"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for bad in [
        "explain_words=0",
        "explain_words=21",
        "explain=maybe",
        "explains=true",
    ] {
        let (status, error) = app
            .json(
                Method::POST,
                &format!("/v1/projects/Acme/tag?explain=true&{bad}"),
                Some(&key),
                ticket.clone(),
            )
            .await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{bad}: {status} {error}"
        );
    }

    let (status, batch) = app
        .json(
            Method::POST,
            "/v1/projects/Acme/tag/batch?explain=true",
            Some(&key),
            json!({"tickets": [ticket.clone(), {"subject": "Locked out of my account"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    let results = batch["results"].as_array().unwrap();
    assert!(
        results.iter().all(|r| r["explanation"]["tags"].is_array()),
        "{batch}"
    );
    assert_eq!(
        explanation_of(&results[0], &tag)["words"][0],
        billing["words"][0]
    );

    let (status, ingested) = app
        .json(
            Method::POST,
            "/v1/projects/Acme/tickets/ingest?explain=true",
            Some(&key),
            json!({"external_id": "T-1", "subject": SUBJECT, "body": BODY}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ingested}");
    assert_eq!(
        explanation_of(&ingested, &tag)["words"][0],
        billing["words"][0]
    );
    let stored = store
        .ticket(project.id, TicketId(ingested["id"].as_i64().unwrap()))
        .await
        .unwrap();
    assert_eq!(stored.ticket.body, BODY);
}

/// The words the page's "Why these tags" line of `tag` lists, in order.
fn listed_words(page: &str, tag: &str) -> Vec<String> {
    let list = &page[page
        .find("<ul class=\"why-tags\">")
        .expect("a why-tags list")..];
    let list = &list[..list.find("</ul>").unwrap()];
    let item = list
        .split("<li>")
        .find(|item| item.contains(&format!(">{tag}</span>")))
        .unwrap_or_else(|| panic!("no line for {tag} in {list}"));
    item.split("<mark class=\"why\"")
        .skip(1)
        .map(|mark| {
            let text = &mark[mark.find('>').unwrap() + 1..];
            text[..text.find("</mark>").unwrap()].to_string()
        })
        .collect()
}

/// The words marked in the page's copy of the model text, with their titles.
fn marked_words(page: &str) -> Vec<(String, String)> {
    let text = &page[page
        .find("<div class=\"body why-text\">")
        .expect("the marked text")..];
    let text = &text[..text.find("</div>").unwrap()];
    text.split("<mark class=\"why\"")
        .skip(1)
        .map(|mark| {
            let title = &mark[mark.find("title=\"").unwrap() + 7..];
            let title = &title[..title.find('"').unwrap()];
            let word = &mark[mark.find('>').unwrap() + 1..];
            (
                word[..word.find("</mark>").unwrap()].to_string(),
                title.to_string(),
            )
        })
        .collect()
}

async fn the_ticket_and_review_pages_mark_the_word_behind_a_tag(store: AnyStore) {
    let (project, _models) = project_with_a_model(&store).await;
    let app = WebApp::on(store.clone()).await;
    let key = support::project_key(&store, project.id, "tests").await;
    let (status, ingested) = app
        .json(
            Method::POST,
            "/v1/projects/Acme/tickets/ingest",
            Some(&key),
            json!({"external_id": "T-2", "subject": SUBJECT, "body": BODY}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ingested}");
    let id = ingested["id"].as_i64().unwrap();
    // What the API says the tag's words are, for the same text.
    let (status, verdict) = app
        .json(
            Method::POST,
            "/v1/projects/Acme/tag?explain=true",
            Some(&key),
            json!({"subject": SUBJECT, "body": BODY}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    let (tag, explanation) = first_explained(&verdict);
    // The pages list the words that pushed the tag up.
    let words: Vec<String> = explanation["words"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["contribution"].as_f64().unwrap() > 0.0)
        .map(|w| w["phrase"].as_str().unwrap().to_string())
        .collect();
    assert!(!words.is_empty(), "{verdict}");
    let browser = app.login("labeler").await;

    let page = app
        .get(&format!("/p/{}/tickets/{id}", project.id), Some(&browser))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Why these tags"), "{}", page.body);
    assert_eq!(listed_words(&page.body, &tag), words);
    let marked = marked_words(&page.body);
    let (_, title) = marked
        .iter()
        .find(|(word, _)| word == &words[0])
        .unwrap_or_else(|| panic!("{} is not marked: {marked:?}", words[0]));
    assert!(title.contains(&format!("{tag} +")), "{title}");

    // The review page (reopening the ticket) marks it too, for the model's own suggestion.
    let page = app
        .get(
            &format!("/p/{}/review?ticket={id}", project.id),
            Some(&browser),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(listed_words(&page.body, &tag), words);
    assert!(
        marked_words(&page.body)
            .iter()
            .any(|(word, _)| word == &words[0]),
        "{}",
        page.body
    );
}

async fn a_ticket_page_without_a_model_has_no_explanation(store: AnyStore) {
    let name = ProjectName::parse("Acme").unwrap();
    let project =
        datasets::demo_project::install_demo_project(&store, &name, LabelMode::Multi, 20, 5)
            .await
            .unwrap();
    let app = WebApp::on(store.clone()).await;
    let browser = app.login("labeler").await;
    let ticket = store
        .browse_tickets(
            project.id,
            &datasets::store::TicketFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .tickets
        .remove(0);
    let page = app
        .get(
            &format!(
                "/p/{}/tickets/{}?explain=true",
                project.id, ticket.ticket.id.0
            ),
            Some(&browser),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("Why these tags"));
    assert!(!page.body.contains("Show the words behind"));
}

datasets::on_both_backends!(
    the_api_explains_on_request_and_the_words_add_up,
    the_ticket_and_review_pages_mark_the_word_behind_a_tag,
    a_ticket_page_without_a_model_has_no_explanation,
);
