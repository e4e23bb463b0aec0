//! What a new team meets in its first hour (issue 14): a 77-tag model's confusion as pairs
//! and a heat-map, tickets brought in from the browser with the CLI's import, an empty
//! project that names its next step, and dashboard tiles that follow the chosen period.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support::{Browser, Page, WebApp};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{Duration, Utc};
use datasets::*;
use workbench::config::Config;

fn tag(name: &str) -> TagName {
    TagName::parse(name).unwrap()
}

/// A single-label project of 77 intents and one version whose held-out matrix has three
/// confusions: 6 of intent 03's tickets taken for intent 40, 4 of intent 76's for intent
/// 00, 1 of intent 12's for intent 13.
async fn seventy_seven_intents(app: &WebApp) -> (Project, ModelVersion) {
    let project = app
        .store
        .create_project(&ProjectName::parse("Banking").unwrap(), LabelMode::Single)
        .await
        .unwrap();
    let names: Vec<String> = (0..77).map(|i| format!("intent {i:02}")).collect();
    for name in &names {
        app.store
            .create_tag(project.id, &NewTag::named(tag(name)))
            .await
            .unwrap();
    }
    let mut matrix = vec![vec![0usize; 77]; 77];
    for (i, row) in matrix.iter_mut().enumerate() {
        row[i] = 10;
    }
    for (truth, predicted, n) in [(3, 40, 6), (76, 0, 4), (12, 13, 1)] {
        matrix[truth][truth] -= n;
        matrix[truth][predicted] += n;
    }
    let per_tag: Vec<serde_json::Value> = names
        .iter()
        .map(|name| serde_json::json!({"tag": name, "precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 10, "threshold": 0.5}))
        .collect();
    let version = app
        .store
        .create_model_version(
            project.id,
            &NewModelVersion {
                kind: ModelKind::Ngram,
                metrics: serde_json::json!({
                    "examples": 770, "accuracy": 0.986, "micro_f1": 0.986, "macro_f1": 0.98, "ece": 0.02,
                    "per_tag": per_tag, "confusion": matrix,
                    "coverage": {"auto_tagged_share": 0.7, "precision": 0.99, "review_share": 0.3}
                }),
                ..NewModelVersion::default()
            },
        )
        .await
        .unwrap();
    (project, version)
}

#[tokio::test]
async fn a_77_tag_comparison_lists_the_most_confused_pairs_and_draws_a_trimmed_heat_map() {
    let app = WebApp::new().await;
    let (project, version) = seventy_seven_intents(&app).await;
    let browser = app.login("labeler").await;
    let page = app
        .get(
            &format!(
                "/p/{}/models/compare?a={}&b={}",
                project.id, version.id, version.id
            ),
            Some(&browser),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("Most confused pairs"), "{body}");
    assert!(body.contains("11 of 770 held-out tickets given the wrong tag, over 77 tags"));

    // The pairs, most tickets first, with the share of the true tag and of all errors.
    let pairs_at = body.find("confused-pairs").unwrap();
    let pairs = &body[pairs_at..pairs_at + body[pairs_at..].find("</table>").unwrap()];
    let first = pairs.find(">intent 03</a>").unwrap();
    let second = pairs.find(">intent 76</a>").unwrap();
    let third = pairs.find(">intent 12</a>").unwrap();
    assert!(first < second && second < third, "{pairs}");
    assert!(
        pairs.contains("<td>6</td><td>60.0%</td><td>54.5%</td>"),
        "{pairs}"
    );
    assert!(
        pairs.contains(&format!(
            "href=\"/p/{}/tickets?tag=intent%2003\"",
            project.id
        )),
        "a pair links to its tag's tickets: {pairs}"
    );

    // The heat-map draws the six tags with errors (36 squares per version), not 77 × 77.
    assert_eq!(body.matches("<svg class=\"heatmap\"").count(), 2);
    assert_eq!(body.matches("<rect ").count(), 2 * 36);
    assert!(body.contains("intent 03 → intent 40: 6 of 10 held-out tickets (60.0%)"));
    let map_at = body.find("<svg class=\"heatmap\"").unwrap();
    let map = &body[map_at..map_at + body[map_at..].find("</svg>").unwrap()];
    assert!(map.contains(">intent 40</text>"), "{map}");
    assert!(
        !map.contains("intent 50"),
        "a tag without errors is left out"
    );
    // No 77-column table either.
    assert!(!body.contains("Full matrix"));

    // The tickets a pair links to exist as a page.
    let tickets = app
        .get(
            &format!("/p/{}/tickets?tag=intent%2003", project.id),
            Some(&browser),
        )
        .await;
    assert_eq!(tickets.status, StatusCode::OK, "{}", tickets.body);
}

const BOUNDARY: &str = "----tagger-test-boundary";

/// A multipart form as a browser sends it: the CSRF token first, then the choices, then
/// the file.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(app: &WebApp, browser: &Browser, project: ProjectId, body: Vec<u8>) -> Page {
    app.send(
        Request::builder()
            .method(Method::POST)
            .uri(format!("/p/{project}/import"))
            .header(header::COOKIE, &browser.cookie)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

async fn empty_project(app: &WebApp) -> Project {
    app.store
        .create_project(&ProjectName::parse("Fresh").unwrap(), LabelMode::Single)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_empty_project_names_the_import_and_a_csv_upload_stores_good_rows_and_reports_bad_ones()
{
    let app = WebApp::new().await;
    let project = empty_project(&app).await;
    let engineer = app.login("mlengineer").await;

    // The empty project's first page says how to bring tickets in, and links the form.
    let dashboard = app
        .get(&format!("/p/{}/dashboard", project.id), Some(&engineer))
        .await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(
        dashboard.body.contains("No tickets yet"),
        "{}",
        dashboard.body
    );
    let import = format!("/p/{}/import", project.id);
    assert!(dashboard.body.contains(&format!("href=\"{import}\"")));
    for page in ["tickets", "review", "models"] {
        let empty = app
            .get(&format!("/p/{}/{page}", project.id), Some(&engineer))
            .await;
        assert_eq!(empty.status, StatusCode::OK);
        assert!(
            empty.body.contains(&format!("href=\"{import}\"")),
            "the empty {page} page does not point at the import: {}",
            empty.body
        );
    }
    let form = app.get(&import, Some(&engineer)).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("enctype=\"multipart/form-data\""));
    // An empty project has no tags: the form offers to create them.
    assert!(
        form.body
            .contains("name=\"create_tags\" value=\"1\" checked")
    );

    let csv = "subject,body,intent,created_at\n\
               Card lost,I lost my card yesterday,card_lost,\n\
               Refund,\"Where is my refund, please?\",refund,\n\
               Bad date,This row has a broken date,refund,yesterday\n\
               Card gone,My card is gone,card_lost,2026-03-01T10:00:00Z\n";
    let page = upload(
        &app,
        &engineer,
        project.id,
        multipart(
            &[
                ("csrf", &engineer.csrf),
                ("format", "auto"),
                ("text_columns", "subject, body"),
                ("label_column", "intent"),
                ("split", "train"),
                ("on_bad_row", "skip"),
                ("create_tags", "1"),
            ],
            Some(("tickets.csv", csv.as_bytes())),
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Imported 3 of 4 rows"), "{}", page.body);
    let report_at = page.body.find("skipped-rows").unwrap();
    let report = &page.body[report_at..];
    assert!(
        report.contains("<td>4</td>"),
        "the bad row's line: {report}"
    );
    assert!(report.contains("created_at is not an RFC 3339"), "{report}");
    // The choices typed are still in the form.
    assert!(page.body.contains("value=\"subject, body\""));

    let stored = app
        .store
        .tickets_after(project.id, None, 100)
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    let refund = stored
        .iter()
        .find(|t| t.ticket.subject == "Refund")
        .unwrap();
    assert_eq!(refund.ticket.body, "Where is my refund, please?");
    assert_eq!(refund.ticket.split, Split::Train);
    assert_eq!(
        refund
            .labels
            .iter()
            .map(|l| l.tag.as_str())
            .collect::<Vec<_>>(),
        ["refund"]
    );
    let mut tags: Vec<String> = app
        .store
        .list_tags(project.id)
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.as_str().to_string())
        .collect();
    tags.sort();
    assert_eq!(tags, ["card_lost", "refund"]);

    // The same file again updates the same tickets: nothing is doubled.
    let again = upload(
        &app,
        &engineer,
        project.id,
        multipart(
            &[
                ("csrf", &engineer.csrf),
                ("text_columns", "subject, body"),
                ("label_column", "intent"),
                ("on_bad_row", "skip"),
            ],
            Some(("tickets.csv", csv.as_bytes())),
        ),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(
        app.store
            .tickets_after(project.id, None, 100)
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn a_jsonl_upload_imports_lists_of_tags_and_reports_lines_that_are_not_json() {
    let app = WebApp::new().await;
    let project = app
        .store
        .create_project(&ProjectName::parse("Multi").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let admin = app.login("admin").await;
    let jsonl = "{\"text\": \"Refund and a new card\", \"tags\": [\"refund\", \"card\"], \"id\": \"T-1\"}\n\
                 {not json at all\n\
                 {\"text\": \"Just a refund\", \"tags\": [\"refund\"], \"id\": \"T-2\"}\n";
    let page = upload(
        &app,
        &admin,
        project.id,
        multipart(
            &[
                ("csrf", &admin.csrf),
                ("text_columns", "text"),
                ("label_column", "tags"),
                ("id_column", "id"),
                ("source", "helpdesk-export"),
                ("on_bad_row", "skip"),
                ("create_tags", "1"),
            ],
            Some(("export.jsonl", jsonl.as_bytes())),
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Imported 2 of 3 rows"), "{}", page.body);
    let report = &page.body[page.body.find("skipped-rows").unwrap()..];
    assert!(report.contains("<td>2</td>"), "{report}");
    let stored = app
        .store
        .tickets_after(project.id, None, 100)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    let first = stored
        .iter()
        .find(|t| t.ticket.external_id == "T-1")
        .unwrap();
    assert_eq!(first.ticket.source, "helpdesk-export");
    let mut on_first: Vec<&str> = first.labels.iter().map(|l| l.tag.as_str()).collect();
    on_first.sort_unstable();
    assert_eq!(on_first, ["card", "refund"]);
}

#[tokio::test]
async fn uploads_that_are_too_large_garbage_forged_or_from_a_labeler_are_refused_clearly() {
    let app = WebApp::with_config(Config {
        upload_max_bytes: 1024,
        ..Config::default()
    })
    .await;
    let project = empty_project(&app).await;
    let engineer = app.login("mlengineer").await;
    let fields = [
        ("csrf", engineer.csrf.as_str()),
        ("text_columns", "text"),
        ("label_column", "label"),
    ];

    // Larger than the limit: 413, saying what to do, and nothing stored.
    let big = format!("text,label\n{}", "a ticket,refund\n".repeat(200));
    let page = upload(
        &app,
        &engineer,
        project.id,
        multipart(&fields, Some(("big.csv", big.as_bytes()))),
    )
    .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", page.body);
    assert!(page.body.contains("larger than the 1 KiB"), "{}", page.body);
    assert!(page.body.contains("tagger import"));
    // The form comes back with the choices typed.
    assert!(page.body.contains("name=\"label_column\" value=\"label\""));

    // Not a ticket file: binary bytes, then a CSV without the named column.
    let garbage: Vec<u8> = (0..600u32).map(|i| (i * 7 % 256) as u8).collect();
    let page = upload(
        &app,
        &engineer,
        project.id,
        multipart(&fields, Some(("photo.csv", &garbage))),
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("nothing was imported"), "{}", page.body);
    let page = upload(
        &app,
        &engineer,
        project.id,
        multipart(&fields, Some(("other.csv", b"title,category\nx,y\n"))),
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(
        page.body.contains("column &quot;text&quot; not found"),
        "{}",
        page.body
    );

    // No file chosen, and a body that is not a multipart form.
    let page = upload(&app, &engineer, project.id, multipart(&fields, None)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("choose a CSV or JSON Lines file"));
    let page = app
        .submit(
            &engineer,
            &format!("/p/{}/import", project.id),
            &[("text_columns", "text")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);

    // Without the CSRF token, or from a labeler: refused before anything is read.
    let page = upload(
        &app,
        &engineer,
        project.id,
        multipart(
            &[("text_columns", "text")],
            Some(("ok.csv", b"text,label\nhello,refund\n")),
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let labeler = app.login("labeler").await;
    let page = upload(
        &app,
        &labeler,
        project.id,
        multipart(
            &[("csrf", &labeler.csrf), ("text_columns", "text")],
            Some(("ok.csv", b"text,label\nhello,refund\n")),
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&format!("/p/{}/import", project.id), Some(&labeler))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert!(
        app.store
            .tickets_after(project.id, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "no refused upload stored anything"
    );
}

#[tokio::test]
async fn the_dashboard_tiles_count_the_chosen_period_only() {
    let app = WebApp::new().await;
    let project = empty_project(&app).await;
    let now = Utc::now();
    let tickets: Vec<NewTicket> = [(1, "recent"), (3, "this week"), (60, "two months ago")]
        .iter()
        .map(|(days, subject)| NewTicket {
            source: "api".into(),
            external_id: subject.to_string(),
            subject: subject.to_string(),
            body: "text".into(),
            metadata: serde_json::json!({}),
            created_at: Some(now - Duration::days(*days)),
            split: Split::Train,
        })
        .collect();
    app.store
        .upsert_tickets(project.id, &tickets)
        .await
        .unwrap();
    let browser = app.login("labeler").await;
    let tile = |page: &Page| {
        let at = page.body.find("tickets created in the last").unwrap();
        let before = &page.body[..at];
        let value_at = before.rfind("<span class=\"value\">").unwrap() + 20;
        before[value_at..before[value_at..].find('<').unwrap() + value_at].to_string()
    };
    let week = app
        .get(
            &format!("/p/{}/dashboard?days=7", project.id),
            Some(&browser),
        )
        .await;
    assert_eq!(week.status, StatusCode::OK, "{}", week.body);
    assert_eq!(tile(&week), "2");
    let quarter = app
        .get(
            &format!("/p/{}/dashboard?days=90", project.id),
            Some(&browser),
        )
        .await;
    assert_eq!(tile(&quarter), "3");
    assert!(!quarter.body.contains("No tickets yet"));
}

#[tokio::test]
async fn an_upload_with_group_columns_files_tags_by_group_and_refuses_a_missing_group_clearly() {
    let app = WebApp::new().await;
    let project = app
        .store
        .create_project(&ProjectName::parse("Grouped").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    app.store
        .create_tag_group(
            project.id,
            &NewTagGroup {
                name: TagGroupName::parse("Priority").unwrap(),
                choice: GroupChoice::Single,
            },
        )
        .await
        .unwrap();
    let admin = app.login("admin").await;
    // The form names the project's groups beside the field.
    let form = app
        .get(&format!("/p/{}/import", project.id), Some(&admin))
        .await;
    assert!(
        form.body.contains("name=\"group_columns\""),
        "{}",
        form.body
    );
    assert!(
        form.body.contains("<b>Priority</b> (single-choice)"),
        "{}",
        form.body
    );

    let csv = "id,text,topics,priority,type\n\
               1,Refund twice,billing,High,Bug\n\
               2,Priority names a type,billing,Bug,Bug\n\
               3,How do I export,,Low,Question\n";
    let fields = |groups: &'static str, create: bool| {
        let mut fields = vec![
            ("csrf", admin.csrf.clone()),
            ("text_columns", "text".to_string()),
            ("label_column", "topics".to_string()),
            ("group_columns", groups.to_string()),
            ("id_column", "id".to_string()),
            ("on_bad_row", "skip".to_string()),
        ];
        if create {
            fields.push(("create_tags", "1".to_string()));
        }
        fields
    };
    let send = |fields: Vec<(&'static str, String)>| {
        let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        multipart(&borrowed, Some(("grouped.csv", csv.as_bytes())))
    };

    // Without "create tags" the Type group the project lacks stops the import: a 400 that
    // names the group, nothing stored, the typed pairs kept.
    let page = upload(
        &app,
        &admin,
        project.id,
        send(fields("Priority=priority, Type=type", false)),
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(
        page.body.contains("no tag group named &quot;Type&quot;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"Priority=priority, Type=type\""));
    assert!(
        app.store
            .tickets_after(project.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A malformed pair is a 400 with the reason.
    let page = upload(&app, &admin, project.id, send(fields("Priority", true))).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("GROUP=COLUMN"), "{}", page.body);

    // With it, Type is created (single-choice), each tag lands in its group, and the row
    // whose Priority cell names a Type tag is reported.
    let page = upload(
        &app,
        &admin,
        project.id,
        send(fields("Priority=priority, Type=type", true)),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Imported 2 of 3 rows"), "{}", page.body);
    assert!(page.body.contains("New tag groups"), "{}", page.body);
    let report = &page.body[page.body.find("skipped-rows").unwrap()..];
    assert!(report.contains("<td>3</td>"), "{report}");
    assert!(
        report.contains("is in group &quot;Type&quot;, not in &quot;Priority&quot;"),
        "{report}"
    );
    let groups = app.store.list_tag_groups(project.id).await.unwrap();
    let tags = app.store.list_tags(project.id).await.unwrap();
    let group_of = |name: &str| {
        let tag = tags.iter().find(|t| t.name.as_str() == name).unwrap();
        let group = groups.iter().find(|g| g.id == tag.group_id).unwrap();
        (group.name.to_string(), group.choice)
    };
    assert_eq!(group_of("High"), ("Priority".into(), GroupChoice::Single));
    assert_eq!(group_of("Question"), ("Type".into(), GroupChoice::Single));
    assert_eq!(group_of("billing"), ("Tags".into(), GroupChoice::Multi));
}
