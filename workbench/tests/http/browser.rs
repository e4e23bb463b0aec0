//! The workbench in a real browser: Debian's chromium driven through chromedriver. Logs in,
//! labels five tickets from the review queue with the keyboard only and sees them leave,
//! edits a tag, starts a training run and follows it to its version, promotes a version and
//! opens the dashboard. With
//! `TAGGER_SCREENSHOTS=docs/screenshots` it also saves a screenshot of each main page there.
//! Skips (with a message) when chromedriver is not installed; `.ci/run` installs it.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::*;
use fantoccini::{ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use workbench::app::Application;
use workbench::config::Config;
use workbench::state::AppState;

const PASSWORD: &str = "browser test password";
const ENTER: &str = "\u{e007}";

/// Stops chromedriver when the test ends, however it ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn version(store: &AnyStore, project: ProjectId, macro_f1: f64) -> ModelVersion {
    store
        .create_model_version(
            project,
            &NewModelVersion {
                kind: datasets::ModelKind::Ngram,
                metrics: serde_json::json!({
                    "examples": 200, "accuracy": macro_f1, "micro_f1": macro_f1, "macro_f1": macro_f1, "ece": 0.05,
                    "per_tag": [{"tag": "Billing", "precision": macro_f1, "recall": 0.7, "f1": macro_f1, "support": 40, "threshold": 0.5}],
                    "coverage": {"auto_tagged_share": 0.6, "precision": 0.95, "review_share": 0.4}
                }),
                ..NewModelVersion::default()
            },
        )
        .await
        .unwrap()
}

/// Whether the browser's URL comes to end with `expected` within 30 s (headless chromium
/// on a loaded two-core machine can be slow to post a form).
async fn arrives_at(client: &fantoccini::Client, expected: &str) -> bool {
    for _ in 0..600 {
        if client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with(expected)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

struct Shots(Option<std::path::PathBuf>);

impl Shots {
    async fn take(&self, client: &fantoccini::Client, name: &str) {
        if let Some(dir) = &self.0 {
            std::fs::create_dir_all(dir).unwrap();
            let png = client.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_labels_by_keyboard_edits_a_tag_promotes_and_sees_the_dashboard() {
    let Some(driver_path) = chromedriver() else {
        eprintln!(
            "skipped the browser test: chromedriver is not installed \
             (apt-get install chromium chromium-driver; .ci/run does this)"
        );
        return;
    };
    let (_database, store, project) = demo_with_admin(300).await;
    let old = version(&store, project.id, 0.70).await;
    store
        .promote_model_version(project.id, old.id, "setup")
        .await
        .unwrap();
    let candidate = version(&store, project.id, 0.80).await;
    let first = store.tickets_after(project.id, None, 20).await.unwrap();
    let queue: Vec<NewQueueEntry> = first
        .iter()
        .enumerate()
        .map(|(i, t)| NewQueueEntry {
            ticket_id: t.ticket.id,
            score: 1.0 - i as f32 / 100.0,
            strategy: "margin".into(),
            reason: format!("margin 0.0{i} between the two best tags"),
        })
        .collect();
    store
        .replace_review_queue(project.id, &queue)
        .await
        .unwrap();

    // A job queue and an in-process worker, as `tagger demo` runs them.
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: data.path().to_path_buf(),
        ..Config::default()
    };
    let queue = trainer::jobs::JobQueue::open(
        &store,
        &trainer::jobs::QueueSettings {
            poll_interval: Duration::from_millis(100),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let application = Application::bind(
        AppState::new(store.clone(), config).with_jobs(queue.clone()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
    .with_worker(
        queue,
        trainer::jobs::WorkerState {
            store: store.clone(),
            artifacts: inference::artifact_store::ArtifactStore::local(data.path().join("models")),
            name: "browser-test".into(),
            stopping: Default::default(),
            guard_margin: 0.02,
            retag_after_promotion: 0,
            connector_jobs: None,
        },
    );
    let base = format!("http://{}", application.local_addr().unwrap());
    tokio::spawn(application.run_until_stopped());

    let port = free_port();
    let _driver = Driver(
        Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]
        }),
    );
    let mut client = None;
    for _ in 0..50 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(connected) => {
                client = Some(connected);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let client = client.expect("chromedriver did not start");
    // Relative to the repository root, whatever directory cargo runs the test in.
    let shots = Shots(std::env::var_os("TAGGER_SCREENSHOTS").map(|dir| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(dir)
    }));
    let p = format!("{base}/p/{}", project.id);

    // Log in.
    client.goto(&format!("{base}/login")).await.unwrap();
    shots.take(&client, "login").await;
    client
        .find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    let password = client
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    password.send_keys(ENTER).await.unwrap();
    client
        .wait()
        .for_element(Locator::Css("header.topbar"))
        .await
        .unwrap();

    // Five tickets from the review queue, keyboard only: toggle the first tag, Enter.
    client.goto(&format!("{p}/review")).await.unwrap();
    let mut labelled = Vec::new();
    for i in 0..5 {
        let article = client
            .wait()
            .for_element(Locator::Css("#review-ticket"))
            .await
            .unwrap();
        let id: i64 = article
            .attr("data-ticket")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            !labelled.contains(&id),
            "ticket {id} came back after labelling"
        );
        if i == 0 {
            shots.take(&client, "review").await;
        }
        let body = client.find(Locator::Css("body")).await.unwrap();
        body.send_keys("1").await.unwrap();
        body.send_keys(ENTER).await.unwrap();
        assert!(
            arrives_at(&client, &format!("review?last={id}")).await,
            "Enter did not submit ticket {id}"
        );
        labelled.push(id);
    }
    let next = client
        .wait()
        .for_element(Locator::Css("#review-ticket"))
        .await
        .unwrap()
        .attr("data-ticket")
        .await
        .unwrap()
        .unwrap();
    assert!(!labelled.contains(&next.parse().unwrap()));
    for id in &labelled {
        let ticket = store.ticket(project.id, TicketId(*id)).await.unwrap();
        assert!(
            ticket
                .labels
                .iter()
                .any(|l| l.source == LabelSource::Human && l.set_by == "admin"),
            "ticket {id} has no label from the person"
        );
    }
    let stats = store.review_queue_stats(project.id).await.unwrap();
    assert_eq!(stats.pending + stats.leased, 15);

    // The ticket browser and a ticket.
    client.goto(&format!("{p}/tickets")).await.unwrap();
    shots.take(&client, "tickets").await;
    client
        .goto(&format!("{p}/tickets/{}", labelled[0]))
        .await
        .unwrap();
    shots.take(&client, "ticket").await;

    // Edit a tag.
    let tag = store.list_tags(project.id).await.unwrap()[0].clone();
    client
        .goto(&format!("{p}/taxonomy/{}", tag.id))
        .await
        .unwrap();
    let description = client
        .find(Locator::Css("textarea[name=description]"))
        .await
        .unwrap();
    description.clear().await.unwrap();
    description
        .send_keys("Edited in the browser")
        .await
        .unwrap();
    client
        .find(Locator::Css("#tag-form button.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css(".flash.ok"))
        .await
        .unwrap();
    shots.take(&client, "taxonomy").await;
    let edited = store.list_tags(project.id).await.unwrap();
    assert_eq!(
        edited.iter().find(|t| t.id == tag.id).unwrap().description,
        "Edited in the browser"
    );

    // Start a training run and watch it to the end (the page follows it live).
    client.goto(&format!("{p}/training")).await.unwrap();
    let epochs = client
        .find(Locator::Css("input[name=epochs]"))
        .await
        .unwrap();
    epochs.send_keys("3").await.unwrap();
    client
        .find(Locator::Css("button[data-start-training]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("#run-bar"))
        .await
        .unwrap();
    shots.take(&client, "training").await;
    client
        .wait()
        .at_most(Duration::from_secs(120))
        .for_element(Locator::Css("#run-status.succeeded"))
        .await
        .unwrap();
    let run = store.training_runs(project.id, 1).await.unwrap()[0].clone();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.requested_by, "web:admin");
    assert!(run.version_id.is_some());

    // Promote the better candidate: the page asks first, and a "no" changes nothing.
    client.goto(&format!("{p}/models")).await.unwrap();
    shots.take(&client, "models").await;
    let promote = Locator::Css(&format!("button[data-promote=\"{}\"]", candidate.id));
    client.find(promote).await.unwrap().click().await.unwrap();
    let question = client.get_alert_text().await.unwrap();
    assert!(question.contains("Promote version"), "{question}");
    client.dismiss_alert().await.unwrap();
    assert_eq!(
        store
            .promoted_model_version(project.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        old.id,
        "a dismissed confirmation promotes nothing"
    );
    client.find(promote).await.unwrap().click().await.unwrap();
    client.accept_alert().await.unwrap();
    client
        .wait()
        .for_element(Locator::Css(".flash"))
        .await
        .unwrap();
    assert_eq!(
        store
            .promoted_model_version(project.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        candidate.id
    );
    client
        .goto(&format!(
            "{p}/models/compare?a={}&b={}",
            old.id, candidate.id
        ))
        .await
        .unwrap();
    shots.take(&client, "compare").await;
    // Compare promotes too (here the version no longer in service), after asking, through
    // the same guard: the worse version is refused with the reason.
    let back = Locator::Css(&format!("button[data-promote=\"{}\"]", old.id));
    client.find(back).await.unwrap().click().await.unwrap();
    client.accept_alert().await.unwrap();
    let flash = client
        .wait()
        .for_element(Locator::Css(".flash"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flash.contains("Not promoted"), "{flash}");
    assert_eq!(
        store
            .promoted_model_version(project.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        candidate.id
    );

    // The dashboard draws its charts.
    client
        .goto(&format!("{p}/dashboard?days=90"))
        .await
        .unwrap();
    let charts = client.find_all(Locator::Css("svg.chart")).await.unwrap();
    assert!(
        charts.len() >= 2,
        "the dashboard shows {} charts",
        charts.len()
    );
    shots.take(&client, "dashboard").await;

    // A taxonomy of 77 tags, labelled by keyboard alone: a letter for the tenth tag, and
    // for one past every key, "/" then part of its name and Enter; Enter again confirms.
    let large = store
        .create_project(&ProjectName::parse("Intents").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    for i in 0..77 {
        store
            .create_tag(
                large.id,
                &NewTag::named(TagName::parse(&format!("intent {i:02}")).unwrap()),
            )
            .await
            .unwrap();
    }
    let ticket = store
        .upsert_tickets(
            large.id,
            &[NewTicket {
                source: "api".into(),
                external_id: "I-1".into(),
                subject: "Where is my card?".into(),
                body: "It was sent two weeks ago and has not arrived.".into(),
                metadata: serde_json::json!({}),
                created_at: None,
                split: Split::Train,
            }],
        )
        .await
        .unwrap()[0]
        .id;
    store
        .replace_review_queue(
            large.id,
            &[NewQueueEntry {
                ticket_id: ticket,
                score: 1.0,
                strategy: "cold-start".into(),
                reason: "a ticket from a part of the project not covered so far".into(),
            }],
        )
        .await
        .unwrap();
    client
        .goto(&format!("{base}/p/{}/review", large.id))
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("#review-ticket"))
        .await
        .unwrap();
    let body = client.find(Locator::Css("body")).await.unwrap();
    body.send_keys("a").await.unwrap();
    body.send_keys("/").await.unwrap();
    let focused = client
        .execute(
            "return document.activeElement === document.querySelector('[data-tag-filter]')",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(focused, serde_json::json!(true), "/ opens the tag filter");
    let filter = client
        .find(Locator::Css("[data-tag-filter]"))
        .await
        .unwrap();
    filter.send_keys("tent 63").await.unwrap();
    let shown = client
        .find_all(Locator::Css("label[data-choice]:not([hidden])"))
        .await
        .unwrap();
    assert_eq!(shown.len(), 1, "the filter leaves one tag");
    filter.send_keys(ENTER).await.unwrap();
    filter.send_keys(ENTER).await.unwrap();
    assert!(
        arrives_at(&client, &format!("review?last={}", ticket.0)).await,
        "Enter in the empty filter did not confirm"
    );
    let labelled = store.ticket(large.id, ticket).await.unwrap();
    let mut chosen: Vec<&str> = labelled
        .labels
        .iter()
        .filter(|l| l.source == LabelSource::Human && l.present)
        .map(|l| l.tag.as_str())
        .collect();
    chosen.sort_unstable();
    assert_eq!(chosen, ["intent 09", "intent 63"]);
    client.close().await.unwrap();
}

/// chromedriver on a free port and a headless chromium session of `width` × `height`.
async fn headless_chromium(width: u32, height: u32) -> Option<(Driver, fantoccini::Client)> {
    let Some(driver_path) = chromedriver() else {
        eprintln!(
            "skipped the browser test: chromedriver is not installed \
             (apt-get install chromium chromium-driver; .ci/run does this)"
        );
        return None;
    };
    let port = free_port();
    let driver = Driver(
        Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},{height}")]
        }),
    );
    for _ in 0..50 {
        if let Ok(client) =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
        {
            return Some((driver, client));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("chromedriver did not start");
}

/// What a page's layout measures in the browser: how wide the document is against the
/// window, whether the top bar's parts sit on one row, and where the review page's Confirm
/// button ends.
async fn measure(client: &fantoccini::Client) -> serde_json::Value {
    client
        .execute(
            r"const bar = document.querySelector('header.topbar').getBoundingClientRect();
              const middles = Array.from(document.querySelectorAll('header.topbar > *'))
                .filter(e => e.getBoundingClientRect().height > 0)
                .map(e => { const r = e.getBoundingClientRect(); return (r.top + r.bottom) / 2; });
              const confirm = document.querySelector('button[value=confirm]');
              return {
                scroll_width: document.documentElement.scrollWidth,
                inner_width: window.innerWidth,
                inner_height: window.innerHeight,
                bar_height: bar.height,
                bar_rows_spread: Math.max(...middles) - Math.min(...middles),
                confirm_bottom: confirm ? confirm.getBoundingClientRect().bottom : null,
              };",
            Vec::new(),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_800_and_1280_px_with_one_row_of_navigation_and_confirm_above_the_fold() {
    let (_database, store, demo) = demo_with_admin(120).await;
    let old = version(&store, demo.id, 0.70).await;
    let new = version(&store, demo.id, 0.80).await;
    // A single-label project of 77 intents with long names, a confused model and a queue.
    let intents = store
        .create_project(
            &ProjectName::parse("Intents of a bank").unwrap(),
            LabelMode::Single,
        )
        .await
        .unwrap();
    let names: Vec<String> = (0..77)
        .map(|i| format!("intent number {i:02} about a card payment"))
        .collect();
    for name in &names {
        store
            .create_tag(intents.id, &NewTag::named(TagName::parse(name).unwrap()))
            .await
            .unwrap();
    }
    let confusion: Vec<Vec<usize>> = (0..77)
        .map(|t| {
            (0..77)
                .map(|p| usize::from(t == p) * 8 + usize::from((t + 1) % 77 == p))
                .collect()
        })
        .collect();
    let confused = store
        .create_model_version(
            intents.id,
            &NewModelVersion {
                kind: datasets::ModelKind::Ngram,
                metrics: serde_json::json!({
                    "examples": 693, "accuracy": 0.89, "micro_f1": 0.89, "macro_f1": 0.88, "ece": 0.05,
                    "per_tag": names.iter().map(|n| serde_json::json!({"tag": n, "precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 9, "threshold": 0.5})).collect::<Vec<_>>(),
                    "confusion": confusion,
                    "coverage": {"auto_tagged_share": 0.6, "precision": 0.95, "review_share": 0.4}
                }),
                ..NewModelVersion::default()
            },
        )
        .await
        .unwrap();
    for project in [demo.id, intents.id] {
        if project == intents.id {
            store
                .upsert_tickets(
                    intents.id,
                    &[NewTicket {
                        source: "api".into(),
                        external_id: "I-1".into(),
                        subject: "Where is my card?".into(),
                        body: "It was sent two weeks ago and has not arrived. ".repeat(6),
                        metadata: serde_json::json!({}),
                        created_at: None,
                        split: Split::Train,
                    }],
                )
                .await
                .unwrap();
        }
        let first = store.tickets_after(project, None, 3).await.unwrap();
        let queue: Vec<NewQueueEntry> = first
            .iter()
            .map(|t| NewQueueEntry {
                ticket_id: t.ticket.id,
                score: 1.0,
                strategy: "margin".into(),
                reason: "margin 0.01 between the two best tags".into(),
            })
            .collect();
        store.replace_review_queue(project, &queue).await.unwrap();
    }

    let application = Application::bind(
        AppState::new(store.clone(), Config::default()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", application.local_addr().unwrap());
    tokio::spawn(application.run_until_stopped());
    let Some((_driver, client)) = headless_chromium(1280, 720).await else {
        return;
    };
    client.goto(&format!("{base}/login")).await.unwrap();
    client
        .find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    let password = client
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    password.send_keys(ENTER).await.unwrap();
    client
        .wait()
        .for_element(Locator::Css("header.topbar"))
        .await
        .unwrap();

    let d = format!("{base}/p/{}", demo.id);
    let i = format!("{base}/p/{}", intents.id);
    let pages = [
        format!("{d}/dashboard"),
        format!("{d}/tickets"),
        format!("{d}/models"),
        format!("{d}/models/compare?a={}&b={}", old.id, new.id),
        format!("{d}/review"),
        format!("{d}/import"),
        format!("{i}/models/compare?a={}&b={}", confused.id, confused.id),
        format!("{i}/review"),
    ];
    for (width, height) in [(1280, 720), (800, 720)] {
        client.set_window_size(width, height).await.unwrap();
        for page in &pages {
            client.goto(page).await.unwrap();
            client
                .wait()
                .for_element(Locator::Css("header.topbar"))
                .await
                .unwrap();
            let m = measure(&client).await;
            let at = format!("{page} at {width} px: {m}");
            assert!(
                m["scroll_width"].as_f64().unwrap() <= m["inner_width"].as_f64().unwrap(),
                "the page scrolls sideways: {at}"
            );
            assert!(
                m["bar_rows_spread"].as_f64().unwrap() < 8.0
                    && m["bar_height"].as_f64().unwrap() < 64.0,
                "the top bar takes more than one row: {at}"
            );
            if page.ends_with("/review") {
                let bottom = m["confirm_bottom"].as_f64().expect("no Confirm button");
                assert!(
                    bottom <= m["inner_height"].as_f64().unwrap(),
                    "Confirm is below the fold: {at}"
                );
            }
        }
    }

    // A file uploaded from the import page, as the browser sends it (multipart, the CSRF
    // token first): the good row is stored, the bad one reported.
    let upload = tempfile::tempdir().unwrap();
    let csv = upload.path().join("more-tickets.csv");
    std::fs::write(
        &csv,
        "text,label,created_at\nMy parcel never came,Billing,\nBroken row,Billing,yesterday\n",
    )
    .unwrap();
    client.goto(&format!("{d}/import")).await.unwrap();
    client
        .find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(&csv.display().to_string())
        .await
        .unwrap();
    client
        .find(Locator::Css("button[data-upload]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let report = client
        .wait()
        .for_element(Locator::Css("#import-report"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(report.contains("Imported 1 of 2 rows"), "{report}");
    assert!(report.contains("created_at is not an RFC 3339"), "{report}");
    let found = store
        .browse_tickets(
            demo.id,
            &datasets::store::TicketFilter {
                text: Some("parcel never came".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.tickets.len(), 1);
    client.close().await.unwrap();
}

/// A SQLite database with the demo project of `tickets` tickets and an admin who signs in
/// with `PASSWORD`.
async fn demo_with_admin(tickets: usize) -> (TestDatabase, AnyStore, Project) {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = datasets::demo_project::install_demo_project(
        &store,
        &ProjectName::parse("Demo").unwrap(),
        LabelMode::Multi,
        tickets,
        7,
    )
    .await
    .unwrap();
    store
        .create_user(&NewUser {
            username: Username::parse("admin").unwrap(),
            role: Role::Admin,
            password_hash: workbench::web::hash_password(PASSWORD).unwrap(),
        })
        .await
        .unwrap();
    (database, store, project)
}

/// What a customer's mail client adds to their words: a Java stack trace, a signature and
/// the quoted earlier message.
const MAIL_TAIL: &str = "It started after the 4.2.1 update on Windows 11.\n\n\
java.lang.NullPointerException: total was null\n\
\tat com.acme.billing.InvoiceView.render(InvoiceView.java:88)\n\
\tat com.acme.billing.InvoiceView.open(InvoiceView.java:41)\n\
\tat java.base/java.lang.Thread.run(Thread.java:833)\n\n\
Thanks,\nDana\n-- \nDana Smith | Finance lead\n\n\
On Mon, 2 Dec 2026 at 10:14, Acme Support <help@example.com> wrote:\n\
> Could you tell us which browser you use for the export?\n\
> We are looking into your data export request.\n";

/// Issue 18's end to end: a ticket with a quoted reply chain and a stack trace arrives by
/// the API in a project whose taxonomy has a single-choice Type group; it is tagged from its
/// clean text, and its page in a real browser shows the entities, the language, the
/// model's tags by group with their confidence, and the words behind each tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_with_a_reply_chain_and_a_trace_shows_what_the_model_understood() {
    let Some((_driver, client)) = headless_chromium(1280, 900).await else {
        return;
    };
    let (_database, store, project) = demo_with_admin(1000).await;
    let kind = store
        .create_tag_group(
            project.id,
            &NewTagGroup {
                name: TagGroupName::parse("Type").unwrap(),
                choice: GroupChoice::Single,
            },
        )
        .await
        .unwrap();
    for tag in store.list_tags(project.id).await.unwrap() {
        if ["Bug", "Feature Request", "Question"].contains(&tag.name.as_str()) {
            let update = TagUpdate {
                group: Some(kind.name.clone()),
                ..TagUpdate::default()
            };
            store.update_tag(project.id, tag.id, &update).await.unwrap();
        }
    }
    let data = tempfile::tempdir().unwrap();
    let mut request = trainer::TrainRequest::default();
    request.ngram.epochs = 6;
    let version = trainer::train(
        &store,
        &project,
        &request,
        data.path().join("models").as_path(),
        |_| {},
    )
    .await
    .unwrap()
    .version;
    let config = Config {
        data_dir: data.path().to_path_buf(),
        ..Config::default()
    };
    let application = Application::bind(
        AppState::new(store.clone(), config),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", application.local_addr().unwrap());
    tokio::spawn(application.run_until_stopped());
    let key = crate::support::project_key(&store, project.id, "browser").await;
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{base}/v1/projects/Demo{path}");
    let promoted = http
        .post(api(&format!("/models/{}/promote", version.id)))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert!(
        promoted.status().is_success(),
        "{:?}",
        promoted.text().await
    );

    // The customer's words are those of a ticket like the ones the model learned from (an
    // invented text may be unfamiliar to a model trained on the synthetic demo, and an
    // unfamiliar ticket gets no tag at all); their mail client adds the rest.
    let like = store
        .tickets_after(project.id, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.tags.len() >= 2 && t.ticket.split == Split::Test)
        .unwrap();
    let subject = like.ticket.subject.clone();
    let words = format!("{}\n\n", like.ticket.body);
    let messy_body = format!("{words}{MAIL_TAIL}");
    let ingested: serde_json::Value = http
        .post(api("/tickets/ingest"))
        .bearer_auth(&key)
        .json(&serde_json::json!({
            "external_id": "MAIL-1",
            "subject": subject,
            "body": messy_body,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = ingested["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{ingested}"));
    // Tagged from the clean text: the quoted reply and the signature change nothing.
    let without_quote_and_signature = messy_body.split("-- \n").next().unwrap().to_string();
    let verdict = |body: String| {
        let request = http
            .post(api("/tag"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"subject": subject, "body": body}));
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let messy = verdict(messy_body.clone()).await;
    let clean = verdict(without_quote_and_signature).await;
    assert_eq!(messy["scores"], clean["scores"], "{messy}\n{clean}");
    let type_verdict = messy["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "Type")
        .unwrap_or_else(|| panic!("no Type group: {messy}"));
    assert!(type_verdict["tags"].as_array().unwrap().len() <= 1);

    // The ticket's page, signed in.
    client.goto(&format!("{base}/login")).await.unwrap();
    client
        .find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    let password = client
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    password.send_keys(ENTER).await.unwrap();
    client
        .wait()
        .for_element(Locator::Css("header.topbar"))
        .await
        .unwrap();
    client
        .goto(&format!("{base}/p/{}/tickets/{id}", project.id))
        .await
        .unwrap();
    let page = client
        .wait()
        .for_element(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("English (eng)"), "{page}");
    let entities = client
        .find(Locator::Css("table.entities"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for entity in ["java.lang.NullPointerException", "4.2.1", "Windows 11"] {
        assert!(
            entities.contains(entity),
            "entity {entity} not shown:\n{entities}"
        );
    }
    assert!(
        !entities.contains("help@example.com"),
        "the quoted reply's address is no entity of the ticket:\n{entities}"
    );
    // Each tag the model gave is on the page, with the words behind it.
    let applied: Vec<String> = messy["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert!(!applied.is_empty(), "the model applied no tag: {messy}");
    for tag in &applied {
        assert!(
            page.contains(tag.as_str()),
            "{tag} not on the page:\n{page}"
        );
    }
    assert!(page.contains("Why these tags"), "{page}");
    assert!(page.contains("Type"), "the Type group is shown:\n{page}");
    client.close().await.unwrap();
}
