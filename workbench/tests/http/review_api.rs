//! The review queue over HTTP: leased batches in rank order with their reasons, exclusive
//! between labellers (each a key), skips, rescoring behind an API key, and clear errors.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use datasets::store::prelude::*;

use axum::http::{Method, StatusCode};
use datasets::test_db::TestDatabase;
use datasets::{AnyStore, NewQueueEntry, NewTicket, ProjectId, ProjectName, Split, TicketId};
use serde_json::{Value, json};
use workbench::app::app;
use workbench::config::Config;
use workbench::state::AppState;

struct TestApp {
    router: axum::Router,
    store: AnyStore,
    project: ProjectId,
    tickets: Vec<TicketId>,
    _database: TestDatabase,
}

impl TestApp {
    /// A project "Acme" with the default taxonomy and `count` unlabelled train tickets.
    async fn new(count: usize) -> Self {
        let database = TestDatabase::sqlite().unwrap();
        let store = database.store().await.unwrap();
        let router = app(AppState::new(store.clone(), Config::default()));
        let mut test = Self {
            router,
            store: store.clone(),
            project: ProjectId(0),
            tickets: Vec::new(),
            _database: database,
        };
        let admin = support::instance_admin_key(&store, "provisioning").await;
        let (status, _) = test
            .call(
                Method::POST,
                "/v1/projects",
                Some(json!({"name": "Acme"})),
                Some(&admin),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        test.project = store
            .project_by_name(&ProjectName::parse("Acme").unwrap())
            .await
            .unwrap()
            .unwrap()
            .id;
        let tickets: Vec<NewTicket> = (0..count)
            .map(|i| NewTicket {
                source: "api".into(),
                external_id: format!("T-{i}"),
                subject: format!(
                    "Ticket number {i} about {}",
                    ["billing", "login", "crash"][i % 3]
                ),
                body: format!("Details of ticket {i}"),
                metadata: json!({}),
                created_at: None,
                split: Split::Train,
            })
            .collect();
        test.tickets = store
            .upsert_tickets(test.project, &tickets)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        test
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        support::call_api(&self.router, method, uri, key, body).await
    }

    /// A key of the project with every scope; its holder acts as `api-key:<name>`.
    async fn key(&self, name: &str) -> String {
        support::project_key(&self.store, self.project, name).await
    }

    /// Leases `count` tickets to the holder of `key`.
    async fn lease(&self, key: &str, count: u32) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/v1/projects/Acme/review-queue/lease",
            Some(json!({ "count": count })),
            Some(key),
        )
        .await
    }

    async fn queue(&self, ranked: &[TicketId]) {
        let entries: Vec<NewQueueEntry> = ranked
            .iter()
            .enumerate()
            .map(|(i, t)| NewQueueEntry {
                ticket_id: *t,
                score: 1.0 - i as f32 / 100.0,
                strategy: "margin".into(),
                reason: format!("margin 0.{i:02} between Bug and Question"),
            })
            .collect();
        self.store
            .replace_review_queue(self.project, &entries)
            .await
            .unwrap();
    }
}

fn ticket_ids(body: &Value) -> Vec<i64> {
    body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ticket_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_queue_leases_a_ranked_batch_with_reasons_and_keeps_labellers_apart() {
    let app = TestApp::new(6).await;
    let ranked = [
        app.tickets[4],
        app.tickets[1],
        app.tickets[5],
        app.tickets[0],
    ];
    app.queue(&ranked).await;
    let ana_key = app.key("ana").await;
    let bo_key = app.key("bo").await;

    let (status, ana) = app.lease(&ana_key, 2).await;
    assert_eq!(status, StatusCode::OK, "{ana}");
    assert_eq!(ticket_ids(&ana), [ranked[0].0, ranked[1].0]);
    let first = &ana["tickets"][0];
    assert_eq!(first["rank"], 1);
    assert_eq!(first["strategy"], "margin");
    assert_eq!(first["reason"], "margin 0.00 between Bug and Question");
    assert!((first["score"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert_eq!(first["leased_by"], "api-key:ana");
    assert!(first["lease_expires_at"].is_string());
    assert_eq!(first["ticket"]["subject"], "Ticket number 4 about login");
    assert_eq!(ana["stats"]["leased"], 2);
    assert_eq!(ana["stats"]["pending"], 2);

    let (_, bo) = app.lease(&bo_key, 5).await;
    assert_eq!(ticket_ids(&bo), [ranked[2].0, ranked[3].0]);

    // Ana labels her first ticket: it leaves the queue; asking again gives her second only.
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/v1/projects/acme/tickets/{}/labels", ranked[0].0),
            Some(json!({"tags": ["Bug"]})),
            Some(&ana_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, again) = app.lease(&ana_key, 2).await;
    assert_eq!(ticket_ids(&again), [ranked[1].0]);
}

#[tokio::test]
async fn a_released_ticket_goes_back_to_the_queue_for_someone_else() {
    let app = TestApp::new(3).await;
    app.queue(&app.tickets).await;
    let ana_key = app.key("ana").await;
    let bo_key = app.key("bo").await;
    let (_, ana) = app.lease(&ana_key, 1).await;
    let held = ticket_ids(&ana)[0];
    let release = format!("/v1/projects/acme/review-queue/{held}/release");
    let (status, body) = app.call(Method::POST, &release, None, Some(&bo_key)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = app.call(Method::POST, &release, None, Some(&ana_key)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, bo) = app.lease(&bo_key, 1).await;
    assert_eq!(ticket_ids(&bo), [held]);
}

#[tokio::test]
async fn bad_lease_requests_get_clear_errors() {
    let app = TestApp::new(1).await;
    let key = app.key("ana").await;
    let lease = "/v1/projects/acme/review-queue/lease";
    for (uri, body, status) in [
        (
            lease,
            json!({"user": "ana"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (lease, json!({"count": 0}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            lease,
            json!({"count": 1000}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            lease,
            json!({"lease_seconds": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            lease,
            json!({"user": " ", "count": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/projects/nowhere/review-queue/lease",
            json!({}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (got, answer) = app
            .call(Method::POST, uri, Some(body.clone()), Some(&key))
            .await;
        assert_eq!(got, status, "{uri} {body}: {answer}");
        assert!(
            answer["error"]["message"].is_string(),
            "{uri} {body}: {answer}"
        );
    }
}

/// Numbers as JSON Schema reads them: `2.0` is the integer 2 (generated clients send whole
/// numbers as floats), `2.5` is not an integer, and a seed must fit the document's int64.
#[tokio::test]
async fn whole_floats_are_integers_and_out_of_range_seeds_are_refused() {
    let app = TestApp::new(12).await;
    let key = app.key("ana").await;
    let lease = "/v1/projects/acme/review-queue/lease";
    let (status, body) = app
        .call(
            Method::POST,
            lease,
            Some(json!({"count": 2.0, "lease_seconds": 60.0})),
            Some(&key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call(Method::POST, lease, Some(json!({"count": 2.5})), Some(&key))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("count: "),
        "the field is named: {message}"
    );

    let score = "/v1/projects/acme/review-queue/score";
    for seed in [json!(-1), json!(9_223_372_036_854_775_808_u64), json!(1.5)] {
        let (status, body) = app
            .call(Method::POST, score, Some(json!({"seed": seed})), Some(&key))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "seed {seed}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains("seed"),
            "{body}"
        );
    }
    let (status, body) = app
        .call(
            Method::POST,
            score,
            Some(json!({"seed": 9.0, "queue_size": 5.0})),
            Some(&key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queued"], 5);
}

#[tokio::test]
async fn scoring_needs_a_key_and_fills_the_queue() {
    let app = TestApp::new(12).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects/acme/review-queue/score",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let key = app.key("scorer").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects/acme/review-queue/score",
            Some(json!({"strategy": "certainty"})),
            Some(&key),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown strategy")
    );

    let (status, summary) = app
        .call(
            Method::POST,
            "/v1/projects/acme/review-queue/score",
            Some(json!({"strategy": "random", "queue_size": 5, "seed": 3})),
            Some(&key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["strategy"], "random");
    assert_eq!(summary["candidates"], 12);
    assert_eq!(summary["queued"], 5);
    let ana_key = app.key("ana").await;
    let (_, batch) = app.lease(&ana_key, 10).await;
    assert_eq!(ticket_ids(&batch).len(), 5);
    assert!(
        batch["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["strategy"] == "random")
    );

    // No promoted model: a model strategy starts cold instead of failing.
    let (status, summary) = app
        .call(
            Method::POST,
            "/v1/projects/acme/review-queue/score",
            None,
            Some(&key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["requested"], "margin");
    assert_eq!(summary["strategy"], "cold-start");
}

#[tokio::test]
async fn agreement_compares_two_peoples_answers_per_tag_and_lists_disagreements() {
    let app = TestApp::new(6).await;
    let key = app.key("quality").await;
    let tag = |name: &str| datasets::TagName::parse(name).unwrap();
    // Four tickets labelled by both ana and ben: they agree on Bug everywhere, and on
    // Billing on all but the last ticket. A fifth ticket has one answer and does not count.
    let answers: [(&[&str], &[&str]); 4] = [
        (&["Bug"], &["Bug"]),
        (&["Billing"], &["Billing"]),
        (&["Bug", "Billing"], &["Bug", "Billing"]),
        (&[], &["Billing"]),
    ];
    for (i, (ana, ben)) in answers.iter().enumerate() {
        for (user, tags) in [("ana", ana), ("ben", ben)] {
            let tags: Vec<datasets::TagName> = tags.iter().map(|t| tag(t)).collect();
            app.store
                .set_human_labels(app.project, app.tickets[i], &tags, user)
                .await
                .unwrap();
        }
    }
    app.store
        .set_human_labels(app.project, app.tickets[4], &[tag("Bug")], "ana")
        .await
        .unwrap();

    let (status, _) = app
        .call(Method::GET, "/v1/projects/Acme/agreement", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .call(Method::GET, "/v1/projects/Acme/agreement", None, Some(&key))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let per_tag = |name: &str| {
        body["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tag"] == name)
            .unwrap()
            .clone()
    };
    let bug = per_tag("Bug");
    assert_eq!(bug["tickets"], 4);
    assert!((bug["kappa"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(bug["method"], "cohen");
    assert_eq!(bug["disagreements"], json!([]));
    let billing = per_tag("Billing");
    // Observed agreement 3/4; ana says yes 2/4, ben 3/4: expected 0.5 → kappa 0.5.
    assert!(
        (billing["kappa"].as_f64().unwrap() - 0.5).abs() < 1e-9,
        "{billing}"
    );
    assert_eq!(billing["disagreements"], json!([app.tickets[3].0]));

    let (status, body) = app
        .call(
            Method::GET,
            "/v1/projects/Acme/agreement?raters=1",
            None,
            Some(&key),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn double_labelling_over_the_api_hands_a_blind_second_opinion_and_settles_it() {
    let app = TestApp::new(3).await;
    let key = app.key("quality").await;
    let settings = "/v1/projects/Acme/review-settings";
    let (status, _) = app
        .call(
            Method::PUT,
            settings,
            Some(json!({"double_label_share": 1.0})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .call(
            Method::PUT,
            settings,
            Some(json!({"double_label_share": 1.5})),
            Some(&key),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .call(
            Method::PUT,
            settings,
            Some(json!({"double_label_share": 1.0})),
            Some(&key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app.call(Method::GET, settings, None, Some(&key)).await;
    assert_eq!(body, json!({"double_label_share": 1.0}));

    let ticket = app.tickets[0].0;
    let ana_key = app.key("ana").await;
    let ben_key = app.key("ben").await;
    let lee_key = app.key("lee").await;
    let labels = format!("/v1/projects/Acme/tickets/{ticket}/labels");
    let (status, body) = app
        .call(
            Method::PUT,
            &labels,
            Some(json!({"tags": ["Bug"]})),
            Some(&ana_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // ben is handed the ticket as a second opinion, without ana's label in sight.
    let (status, body) = app.lease(&ben_key, 5).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let leased = &body["tickets"][0];
    assert_eq!(leased["ticket_id"], ticket);
    assert_eq!(leased["strategy"], "second-opinion");
    assert!(
        leased["ticket"]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["source"] != "human"),
        "{leased}"
    );
    assert_eq!(body["stats"]["second_opinions_open"], 1);
    let (status, body) = app
        .call(
            Method::PUT,
            &labels,
            Some(json!({"tags": ["Question"]})),
            Some(&ben_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["tags"],
        json!(["Bug"]),
        "the second answer changes nothing"
    );

    let (status, body) = app
        .call(
            Method::GET,
            "/v1/projects/Acme/disagreements",
            None,
            Some(&key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body[0]["ticket_id"], ticket);
    assert_eq!(body[0]["answers"]["api-key:ana"], json!(["Bug"]));
    assert_eq!(body[0]["answers"]["api-key:ben"], json!(["Question"]));
    assert_eq!(body[0]["disputed_tags"], json!(["Bug", "Question"]));

    let adjudicate = format!("/v1/projects/Acme/disagreements/{ticket}/adjudicate");
    let (status, _) = app
        .call(
            Method::POST,
            &adjudicate,
            Some(json!({"tags": ["Question"]})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .call(
            Method::POST,
            &adjudicate,
            Some(json!({"tags": ["Nope"]})),
            Some(&lee_key),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            &adjudicate,
            Some(json!({"tags": ["Question"]})),
            Some(&lee_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tags"], json!(["Question"]));
    let (_, body) = app
        .call(
            Method::GET,
            "/v1/projects/Acme/disagreements",
            None,
            Some(&key),
        )
        .await;
    assert_eq!(body, json!([]));
    // The adjudicator is not a rater: agreement still rests on ana and ben alone.
    let (_, body) = app
        .call(Method::GET, "/v1/projects/Acme/agreement", None, Some(&key))
        .await;
    let bug = body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "Bug")
        .unwrap()
        .clone();
    assert_eq!(bug["tickets"], 1, "{bug}");
}
