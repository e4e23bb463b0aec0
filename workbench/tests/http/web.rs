//! The web workbench through the real router (`oneshot`): login, sessions and CSRF, every
//! role against every action, escaping of untrusted ticket text and tag names, and each page.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support::{self, Browser, PASSWORD};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::*;
use tower::ServiceExt;
use workbench::config::Config;

const XSS_SUBJECT: &str = "<script>alert('subject')</script>";
const XSS_BODY: &str = "<img src=x onerror=alert('body')>";
const XSS_TAG: &str = "<svg onload=alert('tag')>";

/// The workbench with project "Acme": three tags and three tickets, one carrying markup in
/// every field; the users and the browser plumbing are `support::WebApp`'s.
struct AcmeApp {
    web: support::WebApp,
    project: Project,
    tickets: Vec<TicketId>,
}

impl std::ops::Deref for AcmeApp {
    type Target = support::WebApp;

    fn deref(&self) -> &support::WebApp {
        &self.web
    }
}

impl AcmeApp {
    async fn new() -> Self {
        Self::with_config(Config::default()).await
    }

    async fn with_config(config: Config) -> Self {
        let database = TestDatabase::sqlite().unwrap();
        let store = database.store().await.unwrap();
        let project = store
            .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
            .await
            .unwrap();
        for name in ["billing", "login", XSS_TAG] {
            store
                .create_tag(project.id, &NewTag::named(TagName::parse(name).unwrap()))
                .await
                .unwrap();
        }
        let tickets: Vec<NewTicket> = [
            ("1", "Invoice charged twice", "my card was charged twice"),
            ("2", "Cannot log in", "password reset mail never came"),
            ("3", XSS_SUBJECT, XSS_BODY),
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
        Self {
            web: support::WebApp::on_database(database, config).await,
            project,
            tickets: stored.iter().map(|t| t.id).collect(),
        }
    }

    fn p(&self, rest: &str) -> String {
        format!("/p/{}{rest}", self.project.id)
    }

    async fn tag_id(&self, name: &str) -> TagId {
        self.store
            .list_tags(self.project.id)
            .await
            .unwrap()
            .iter()
            .find(|t| t.name.as_str() == name)
            .unwrap()
            .id
    }
}

#[tokio::test]
async fn logging_in_sets_a_session_cookie_that_is_httponly_and_samesite() {
    let app = AcmeApp::new().await;
    let page = app.try_login("admin", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let cookie = page.set_cookie("tagger_session").unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    // The database keeps only a hash of the token.
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("tagger_session=");
    assert!(
        app.store
            .session(token, chrono::Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.store
            .session(&datasets::api_key::hash(token), chrono::Utc::now())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn cookies_are_secure_when_the_config_says_tls_is_in_front() {
    let app = AcmeApp::with_config(Config {
        secure_cookies: true,
        ..Config::default()
    })
    .await;
    let page = app.try_login("admin", PASSWORD).await;
    assert!(
        page.set_cookie("tagger_session")
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_is_refused_alike() {
    let app = AcmeApp::new().await;
    let wrong = app.try_login("admin", "not the password").await;
    let unknown = app.try_login("nobody", PASSWORD).await;
    for page in [&wrong, &unknown] {
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("Wrong username or password."));
        assert!(page.set_cookie("tagger_session").is_none());
    }
}

#[tokio::test]
async fn login_is_refused_after_five_failures_even_with_the_right_password() {
    let app = AcmeApp::new().await;
    for _ in 0..5 {
        assert_eq!(
            app.try_login("labeler", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let page = app.try_login("labeler", PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.set_cookie("tagger_session").is_none());
    // Other usernames are not locked out by someone guessing this one.
    assert_eq!(
        app.try_login("admin", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_login_form_without_its_csrf_token_is_refused() {
    let app = AcmeApp::new().await;
    let page = app
        .post(
            "/login",
            None,
            &[("username", "admin"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = app
        .post(
            "/login",
            Some("tagger_login_csrf=abc"),
            &[
                ("csrf", "abd"),
                ("username", "admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn pages_send_anonymous_visitors_to_the_login_page_and_back() {
    let app = AcmeApp::new().await;
    let uri = app.p("/tickets?q=invoice");
    let page = app.get(&uri, None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location.unwrap(),
        format!("/login?next=/p/{}/tickets%3Fq%3Dinvoice", app.project.id)
    );
    let forged = app
        .get(
            &uri,
            Some(&Browser {
                cookie: "tagger_session=forged".into(),
                csrf: String::new(),
            }),
        )
        .await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn logging_out_ends_the_session() {
    let app = AcmeApp::new().await;
    let browser = app.login("labeler").await;
    let page = app.submit(&browser, "/logout", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let after = app.get(&app.p("/tickets"), Some(&browser)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(after.location.unwrap().starts_with("/login"));
}

#[tokio::test]
async fn ticket_text_and_tag_names_render_as_text_never_as_markup() {
    let app = AcmeApp::new().await;
    let browser = app.login("admin").await;
    app.store
        .set_human_labels(
            app.project.id,
            app.tickets[2],
            &[TagName::parse(XSS_TAG).unwrap()],
            "admin",
        )
        .await
        .unwrap();
    let pages = [
        app.p("/tickets"),
        app.p(&format!("/tickets/{}", app.tickets[2])),
        app.p("/taxonomy"),
        app.p("/dashboard"),
    ];
    for uri in pages {
        let page = app.get(&uri, Some(&browser)).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        for payload in [XSS_SUBJECT, XSS_BODY, XSS_TAG] {
            assert!(!page.body.contains(payload), "{uri} contains {payload}");
        }
        assert!(!page.body.contains("<script>alert"), "{uri}");
        assert!(!page.body.contains("<svg onload"), "{uri}");
    }
    let ticket = app
        .get(
            &app.p(&format!("/tickets/{}", app.tickets[2])),
            Some(&browser),
        )
        .await;
    assert!(ticket.body.contains("&lt;script&gt;alert("));
    assert!(ticket.body.contains("&lt;img src=x onerror=alert("));
    let dashboard = app.get(&app.p("/dashboard"), Some(&browser)).await;
    assert!(dashboard.body.contains("&lt;svg onload=alert("));
}

#[tokio::test]
async fn pages_carry_a_content_security_policy() {
    let app = AcmeApp::new().await;
    let response = app
        .router
        .clone()
        .oneshot(
            Request::builder()
                .uri("/login")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let policy = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(policy.contains("script-src 'self'"));
    assert!(policy.contains("frame-ancestors 'none'"));
}

/// Every form the workbench has, with valid fields.
async fn every_action(
    app: &AcmeApp,
) -> Vec<(&'static str, String, Vec<(&'static str, String)>, Role)> {
    let billing = app.tag_id("billing").await;
    let versions = app.store.model_versions(app.project.id).await.unwrap();
    let candidate = versions.iter().find(|v| v.status == "candidate").unwrap();
    vec![
        (
            "label a ticket",
            app.p(&format!("/tickets/{}/labels", app.tickets[0])),
            vec![("tags", "billing".to_string())],
            Role::Labeler,
        ),
        (
            "label from the review queue",
            app.p(&format!("/review/{}", app.tickets[1])),
            vec![("tags", "login".to_string())],
            Role::Labeler,
        ),
        (
            "add a tag",
            app.p("/taxonomy"),
            vec![("name", "refunds".to_string())],
            Role::Admin,
        ),
        (
            "edit a tag",
            app.p(&format!("/taxonomy/{billing}")),
            vec![("description", "Money questions".to_string())],
            Role::Admin,
        ),
        (
            "promote a version",
            app.p(&format!("/models/{}/promote", candidate.id)),
            vec![("force", "1".to_string())],
            Role::MlEngineer,
        ),
        (
            "roll back",
            app.p("/models/rollback"),
            vec![],
            Role::MlEngineer,
        ),
        (
            "set the double-labelling share",
            app.p("/agreement/settings"),
            vec![("share_percent", "20".to_string())],
            Role::Admin,
        ),
        (
            "settle a disagreement",
            app.p(&format!("/agreement/{}", app.tickets[2])),
            vec![("tags", "login".to_string())],
            Role::MlEngineer,
        ),
        (
            "create a project",
            "/admin/projects".to_string(),
            vec![
                ("name", "Second".to_string()),
                ("label_mode", "single".to_string()),
            ],
            Role::Admin,
        ),
        (
            "create an API key",
            format!("/admin/projects/{}/keys", app.project.id),
            vec![
                ("name", "zendesk-sync".to_string()),
                ("scope", "read".to_string()),
            ],
            Role::Admin,
        ),
        (
            "add a user",
            "/admin/users".to_string(),
            vec![
                ("username", "newperson".to_string()),
                ("role", "labeler".to_string()),
                ("password", "another long password".to_string()),
            ],
            Role::Admin,
        ),
    ]
}

async fn with_two_versions(app: &AcmeApp) {
    for f1 in [0.7, 0.8] {
        app.store
            .create_model_version(
                app.project.id,
                &NewModelVersion {
                    kind: datasets::ModelKind::Ngram,
                    metrics: serde_json::json!({ "macro_f1": f1 }),
                    ..NewModelVersion::default()
                },
            )
            .await
            .unwrap();
    }
    let first = app.store.model_versions(app.project.id).await.unwrap();
    app.store
        .promote_model_version(app.project.id, first.last().unwrap().id, "test")
        .await
        .unwrap();
}

#[tokio::test]
async fn each_role_can_do_exactly_what_it_is_allowed_to() {
    for role in Role::ALL {
        let app = AcmeApp::new().await;
        with_two_versions(&app).await;
        let username = match role {
            Role::Admin => "admin",
            Role::MlEngineer => "mlengineer",
            Role::Labeler => "labeler",
        };
        let browser = app.login(username).await;
        for (action, uri, fields, needs) in every_action(&app).await {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let page = app.submit(&browser, &uri, &fields).await;
            if role.includes(needs) {
                // A created API key answers with the page itself (its secret shown once).
                assert!(
                    page.status == StatusCode::SEE_OTHER || page.status == StatusCode::OK,
                    "{role} should be able to {action}: {} {}",
                    page.status,
                    page.body
                );
            } else {
                assert_eq!(
                    page.status,
                    StatusCode::FORBIDDEN,
                    "{role} must not {action}"
                );
            }
        }
        let users_page = app.get("/admin/users", Some(&browser)).await;
        let expected = if role == Role::Admin {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(users_page.status, expected, "{role} and the users page");
    }
}

#[tokio::test]
async fn refused_actions_change_nothing() {
    let app = AcmeApp::new().await;
    with_two_versions(&app).await;
    let browser = app.login("labeler").await;
    let before = app.store.list_tags(app.project.id).await.unwrap();
    let promoted = app
        .store
        .promoted_model_version(app.project.id)
        .await
        .unwrap();
    for (_, uri, fields, needs) in every_action(&app).await {
        if needs == Role::Labeler {
            continue;
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        app.submit(&browser, &uri, &fields).await;
    }
    assert_eq!(app.store.list_tags(app.project.id).await.unwrap(), before);
    assert_eq!(
        app.store
            .promoted_model_version(app.project.id)
            .await
            .unwrap(),
        promoted
    );
    assert_eq!(app.store.users().await.unwrap().len(), 3);
    assert_eq!(app.store.project_list().await.unwrap().len(), 1);
    assert!(
        app.store
            .api_keys(Some(app.project.id))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn every_form_refuses_a_missing_or_wrong_csrf_token() {
    let app = AcmeApp::new().await;
    with_two_versions(&app).await;
    let browser = app.login("admin").await;
    let mut actions = every_action(&app).await;
    actions.push(("log out", "/logout".to_string(), vec![], Role::Labeler));
    for (action, uri, fields, _) in actions {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let missing = app.post(&uri, Some(&browser.cookie), &fields).await;
        assert_eq!(
            missing.status,
            StatusCode::FORBIDDEN,
            "{action} without a token"
        );
        let mut wrong = vec![("csrf", "0000")];
        wrong.extend_from_slice(&fields);
        let wrong = app.post(&uri, Some(&browser.cookie), &wrong).await;
        assert_eq!(
            wrong.status,
            StatusCode::FORBIDDEN,
            "{action} with a wrong token"
        );
    }
    // Still logged in and nothing changed.
    assert_eq!(app.get("/", Some(&browser)).await.status, StatusCode::OK);
    assert_eq!(app.store.users().await.unwrap().len(), 3);
    assert_eq!(app.store.list_tags(app.project.id).await.unwrap().len(), 3);
}

#[tokio::test]
async fn the_ticket_browser_searches_and_filters() {
    let app = AcmeApp::new().await;
    let browser = app.login("labeler").await;
    let page = app.get(&app.p("/tickets?q=charged"), Some(&browser)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Invoice charged twice"));
    assert!(!page.body.contains("Cannot log in"));
    let all = app
        .get(
            &app.p("/tickets?q=&tag=&source=zendesk&min=&max=&from=&to="),
            Some(&browser),
        )
        .await;
    assert!(all.body.contains("Invoice charged twice"));
    assert!(all.body.contains("Cannot log in"));
    let bad = app.get(&app.p("/tickets?min=2"), Some(&browser)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("confidence must be a number from 0 to 1"));
    let bad_date = app
        .get(&app.p("/tickets?from=yesterday"), Some(&browser))
        .await;
    assert_eq!(bad_date.status, StatusCode::BAD_REQUEST);
}

/// The ticket page shows the language tagging decided on and, beside the text as it came,
/// the text the models read (issue 18): quoted replies and signatures gone.
#[tokio::test]
async fn a_ticket_page_shows_its_language_and_the_text_the_models_read() {
    let app = AcmeApp::new().await;
    let browser = app.login("labeler").await;
    let body = "Die Anwendung stürzt mit ERR_PDF_EXPORT unter Windows 11 ab, wenn ich eine Rechnung als PDF exportieren \
                möchte. Bitte helfen Sie mir schnell, wir brauchen die Rechnungen heute.\n\n\
                On Mon, 3 Mar 2025 at 10:00, Support <help@example.com> wrote:\n\
                > Thanks for reaching out, we are looking into it.\n";
    let stored = app
        .store
        .upsert_tickets(
            app.project.id,
            &[NewTicket {
                source: "api".into(),
                external_id: "de-1".into(),
                subject: "Absturz beim Export".into(),
                body: body.into(),
                metadata: serde_json::json!({}),
                created_at: None,
                split: Split::Train,
            }],
        )
        .await
        .unwrap();
    let uri = app.p(&format!("/tickets/{}", stored[0].id));
    let page = app.get(&uri, Some(&browser)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("German (deu)"), "{}", page.body);
    assert!(!page.body.contains("not a language this project"));
    let clean = page
        .body
        .split("The text the models read")
        .nth(1)
        .expect("the clean text is shown");
    assert!(clean.contains("stürzt mit ERR_PDF_EXPORT"));
    assert!(
        !clean.contains("looking into it"),
        "the quoted reply is dropped"
    );
    // Entities come from the customer's words, not the quoted reply's.
    assert!(
        page.body.contains("<code>ERR_PDF_EXPORT</code>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<code>Windows 11</code>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<code>help@example.com</code>"));

    // A project whose model serves English only says why this ticket is not tagged.
    app.store
        .set_project_languages(app.project.id, &[Language::parse("eng").unwrap()])
        .await
        .unwrap();
    let page = app.get(&uri, Some(&browser)).await;
    assert!(
        page.body
            .contains("not a language this project&#x27;s model serves")
            || page
                .body
                .contains("not a language this project's model serves"),
        "{}",
        page.body
    );
    // Too little text for a decision is said, not guessed.
    let short = app
        .store
        .upsert_tickets(
            app.project.id,
            &[NewTicket {
                source: "api".into(),
                external_id: "short".into(),
                subject: "Hi".into(),
                body: "ok".into(),
                metadata: serde_json::json!({}),
                created_at: None,
                split: Split::Train,
            }],
        )
        .await
        .unwrap();
    let page = app
        .get(&app.p(&format!("/tickets/{}", short[0].id)), Some(&browser))
        .await;
    assert!(page.body.contains("language not told"), "{}", page.body);
    assert!(!page.body.contains("The text the models read"));
}

#[tokio::test]
async fn labelling_a_ticket_records_the_person_and_shows_in_its_history() {
    let app = AcmeApp::new().await;
    let browser = app.login("labeler").await;
    let uri = app.p(&format!("/tickets/{}", app.tickets[1]));
    let page = app
        .submit(
            &browser,
            &format!("{uri}/labels"),
            &[("tags", "login"), ("tags", "billing")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let ticket = app
        .store
        .ticket(app.project.id, app.tickets[1])
        .await
        .unwrap();
    let tags: Vec<&str> = ticket.tags.iter().map(TagName::as_str).collect();
    assert_eq!(tags, vec!["billing", "login"]);
    assert!(ticket.labels.iter().all(|l| l.set_by == "labeler"));
    let flash = page.set_cookie("tagger_flash").unwrap();
    let shown = app
        .get(
            &uri,
            Some(&Browser {
                cookie: format!("{}; {}", browser.cookie, flash.split(';').next().unwrap()),
                csrf: String::new(),
            }),
        )
        .await;
    assert!(shown.body.contains("Labels saved."));
    assert!(shown.body.contains("labeler (human) added"));
    let unknown = app
        .submit(&browser, &format!("{uri}/labels"), &[("tags", "nope")])
        .await;
    assert_eq!(unknown.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn an_admin_edits_a_tag_and_previews_its_keyword_rule() {
    let app = AcmeApp::new().await;
    let browser = app.login("admin").await;
    let billing = app.tag_id("billing").await;
    let uri = app.p(&format!("/taxonomy/{billing}"));
    let preview = app
        .get(
            &format!("{uri}?include=charged%0Areset+mail&exclude="),
            Some(&browser),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK);
    assert!(preview.body.contains("Invoice charged twice"));
    assert!(preview.body.contains("Cannot log in"));
    let saved = app
        .submit(
            &browser,
            &uri,
            &[
                ("name", "Billing"),
                ("description", "Invoices and charges"),
                ("color", "#16a34a"),
                ("include", "charged\ninvoice"),
                ("exclude", "refund"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let tag = app
        .store
        .list_tags(app.project.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == billing)
        .unwrap();
    assert_eq!(tag.name.as_str(), "Billing");
    assert_eq!(tag.color, "#16a34a");
    assert_eq!(tag.keywords.include, vec!["charged", "invoice"]);
    assert_eq!(tag.keywords.exclude, vec!["refund"]);
    let archived = app.submit(&browser, &uri, &[("archive", "archive")]).await;
    assert_eq!(archived.status, StatusCode::SEE_OTHER);
    assert!(
        app.store
            .list_tags(app.project.id)
            .await
            .unwrap()
            .iter()
            .any(|t| t.id == billing && t.archived)
    );
}

#[tokio::test]
async fn a_preview_is_posted_keeps_what_was_typed_and_a_refused_rename_loses_nothing() {
    let app = AcmeApp::new().await;
    let browser = app.login("admin").await;
    let billing = app.tag_id("billing").await;
    let uri = app.p(&format!("/taxonomy/{billing}"));
    let page = app.get(&uri, Some(&browser)).await;
    // No form on the page sends the CSRF token with GET (it would end up in the URL).
    assert!(!page.body.contains("formmethod=\"get\""), "{}", page.body);
    assert!(page.body.contains("name=\"preview\""));

    let preview = app
        .submit(
            &browser,
            &uri,
            &[
                ("name", "Billing and invoices"),
                ("description", "typed, not saved"),
                ("color", "#16a34a"),
                ("include", "charged\nreset mail"),
                ("exclude", ""),
                ("preview", "1"),
            ],
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(preview.body.contains("Invoice charged twice"));
    assert!(preview.body.contains("Tickets these rules would match"));
    assert!(preview.body.contains("value=\"Billing and invoices\""));
    assert!(preview.body.contains("typed, not saved"));
    let stored = |name: &'static str| {
        let store = app.store.clone();
        let project = app.project.id;
        async move {
            store
                .list_tags(project)
                .await
                .unwrap()
                .into_iter()
                .find(|t| t.id == billing)
                .map(|t| (t.name.as_str() == name, t.description))
                .unwrap()
        }
    };
    assert_eq!(
        stored("billing").await,
        (true, String::new()),
        "a preview saves nothing"
    );

    // Renaming to a name another tag has: 409, the form as typed, and what to do.
    let other = app
        .store
        .list_tags(app.project.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id != billing && t.name.as_str().chars().all(char::is_alphanumeric))
        .unwrap();
    let refused = app
        .submit(
            &browser,
            &uri,
            &[
                ("name", other.name.as_str()),
                ("description", "my long description"),
                ("color", "#16a34a"),
                ("include", "charged"),
                ("exclude", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body.contains("Not saved:"), "{}", refused.body);
    assert!(refused.body.contains("my long description"));
    assert!(
        refused
            .body
            .contains(&format!("value=\"{}\"", other.name.as_str())),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("id=\"tag-form\""),
        "the edit form is shown again"
    );
    assert_eq!(stored("billing").await, (true, String::new()));
}

#[tokio::test]
async fn promotion_from_the_web_goes_through_the_guard() {
    let app = AcmeApp::new().await;
    for f1 in [0.80, 0.60] {
        app.store
            .create_model_version(
                app.project.id,
                &NewModelVersion {
                    kind: datasets::ModelKind::Ngram,
                    metrics: serde_json::json!({ "examples": 100, "macro_f1": f1, "accuracy": f1, "per_tag": [
                        {"tag": "billing", "precision": f1, "recall": 0.5, "f1": 0.6, "support": 10, "threshold": 0.5}
                    ] }),
                    ..NewModelVersion::default()
                },
            )
            .await
            .unwrap();
    }
    let versions = app.store.model_versions(app.project.id).await.unwrap();
    let (worse, better) = (versions[0].id, versions[1].id);
    app.store
        .promote_model_version(app.project.id, better, "test")
        .await
        .unwrap();
    let browser = app.login("mlengineer").await;
    let refused = app
        .submit(&browser, &app.p(&format!("/models/{worse}/promote")), &[])
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store
            .promoted_model_version(app.project.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        better
    );
    let forced = app
        .submit(
            &browser,
            &app.p(&format!("/models/{worse}/promote")),
            &[("force", "1")],
        )
        .await;
    assert_eq!(forced.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store
            .promoted_model_version(app.project.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        worse
    );
    let history = app.store.model_promotions(app.project.id).await.unwrap();
    assert_eq!(history[0].actor, "web:mlengineer");
    let list = app.get(&app.p("/models"), Some(&browser)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("web:mlengineer"));
    let compare = app
        .get(
            &app.p(&format!("/models/compare?a={better}&b={worse}")),
            Some(&browser),
        )
        .await;
    assert_eq!(compare.status, StatusCode::OK);
    assert!(compare.body.contains("-0.200"), "{}", compare.body);
}

#[tokio::test]
async fn a_version_evaluated_on_no_held_out_tickets_is_promoted_only_when_forced() {
    let app = AcmeApp::new().await;
    // What `tagger train` recorded for a project imported with `--split train` only, before
    // runs held tickets out themselves.
    let unjudged = app
        .store
        .create_model_version(
            app.project.id,
            &NewModelVersion {
                kind: datasets::ModelKind::Ngram,
                metrics: serde_json::json!({ "examples": 0, "accuracy": 0.0, "macro_f1": 0.0 }),
                ..NewModelVersion::default()
            },
        )
        .await
        .unwrap();
    let browser = app.login("mlengineer").await;
    let promote = app.p(&format!("/models/{}/promote", unjudged.id));
    let refused = app.submit(&browser, &promote, &[]).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    // The page the refusal leads back to says why.
    let flash = refused.set_cookie("tagger_flash").unwrap();
    let back = app
        .send(
            axum::http::Request::builder()
                .uri(app.p("/models"))
                .header(
                    axum::http::header::COOKIE,
                    format!("{}; {flash}", browser.cookie),
                )
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert!(
        back.body.contains("Not promoted") && back.body.contains("no held-out tickets"),
        "{}",
        back.body
    );
    assert!(
        app.store
            .promoted_model_version(app.project.id)
            .await
            .unwrap()
            .is_none()
    );
    let forced = app.submit(&browser, &promote, &[("force", "1")]).await;
    assert_eq!(forced.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store
            .promoted_model_version(app.project.id)
            .await
            .unwrap()
            .map(|v| v.id),
        Some(unjudged.id)
    );
}

#[tokio::test]
async fn the_dashboard_draws_charts_and_exports_their_tables() {
    let app = AcmeApp::new().await;
    let browser = app.login("labeler").await;
    app.store
        .set_human_labels(
            app.project.id,
            app.tickets[0],
            &[TagName::parse("billing").unwrap()],
            "labeler",
        )
        .await
        .unwrap();
    let page = app.get(&app.p("/dashboard?days=7"), Some(&browser)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<svg class=\"chart\""));
    assert!(page.body.contains("Tickets per tag"));
    let csv = app
        .get(&app.p("/dashboard/tag-counts.csv"), Some(&browser))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.body.starts_with("tag,tickets,archived\n"));
    assert!(csv.body.contains("billing,1,false"));
    let volume = app
        .get(&app.p("/dashboard/volume.csv?days=7"), Some(&browser))
        .await;
    assert!(volume.body.contains(",billing,1"), "{}", volume.body);
    let bad = app.get(&app.p("/dashboard?days=3"), Some(&browser)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn static_files_are_served_from_the_binary() {
    let app = AcmeApp::new().await;
    let css = app.get("/static/app.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.body.contains(".topbar"));
    assert_eq!(
        app.get("/static/missing.css", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unknown_pages_and_wrong_methods_get_a_page_that_says_so() {
    let app = AcmeApp::new().await;
    let missing = app.get("/no-such-page", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body.contains("no-such-page not found"),
        "{}",
        missing.body
    );
    assert!(
        missing.body.contains("href=\"/\""),
        "a way home: {}",
        missing.body
    );
    let wrong = app
        .send(
            Request::builder()
                .method(Method::DELETE)
                .uri("/login")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        wrong.body.contains("login does not accept DELETE"),
        "{}",
        wrong.body
    );
}

#[tokio::test]
async fn the_review_queue_shows_one_ticket_with_its_reason_and_labelled_ones_leave() {
    let app = AcmeApp::new().await;
    let billing = app.tag_id("billing").await;
    let version = app
        .store
        .create_model_version(app.project.id, &NewModelVersion::default())
        .await
        .unwrap();
    app.store
        .set_model_labels(
            app.project.id,
            app.tickets[0],
            version.id,
            &[(billing, 0.91)],
        )
        .await
        .unwrap();
    app.store
        .replace_review_queue(
            app.project.id,
            &[
                NewQueueEntry {
                    ticket_id: app.tickets[0],
                    score: 0.9,
                    strategy: "margin".into(),
                    reason: "margin 0.03 between billing and login".into(),
                },
                NewQueueEntry {
                    ticket_id: app.tickets[1],
                    score: 0.5,
                    strategy: "entropy".into(),
                    reason: "the model is unsure of every tag".into(),
                },
            ],
        )
        .await
        .unwrap();
    let browser = app.login("labeler").await;
    let first = app.get(&app.p("/review"), Some(&browser)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert!(first.body.contains("Invoice charged twice"));
    assert!(first.body.contains("margin 0.03 between billing and login"));
    // The model's tag above threshold is pre-selected and numbered for the keyboard.
    assert!(
        first
            .body
            .contains(r#"value="billing" data-key="2" checked"#),
        "{}",
        first.body
    );
    // Reloading shows the same leased ticket.
    let again = app.get(&app.p("/review"), Some(&browser)).await;
    assert!(again.body.contains("Invoice charged twice"));
    let confirmed = app
        .submit(
            &browser,
            &app.p(&format!("/review/{}", app.tickets[0])),
            &[("tags", "billing"), ("action", "confirm")],
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        confirmed.location.unwrap(),
        app.p(&format!("/review?last={}", app.tickets[0]))
    );
    let next = app.get(&app.p("/review"), Some(&browser)).await;
    assert!(!next.body.contains("Invoice charged twice"));
    assert!(next.body.contains("Cannot log in"));
    assert!(next.body.contains("the model is unsure of every tag"));
    let skipped = app
        .submit(
            &browser,
            &app.p(&format!("/review/{}/skip", app.tickets[1])),
            &[],
        )
        .await;
    assert_eq!(skipped.status, StatusCode::SEE_OTHER);
    let ticket = app
        .store
        .ticket(app.project.id, app.tickets[0])
        .await
        .unwrap();
    assert!(
        ticket
            .labels
            .iter()
            .any(|l| l.source == LabelSource::Human && l.set_by == "labeler")
    );
    // Reopening the last ticket pre-selects the person's own answer.
    let reopened = app
        .get(
            &app.p(&format!("/review?ticket={}", app.tickets[0])),
            Some(&browser),
        )
        .await;
    assert!(reopened.body.contains("reopened"));
    assert!(
        reopened
            .body
            .contains(r#"value="billing" data-key="2" checked"#)
    );
}

#[tokio::test]
async fn a_labeller_who_may_owe_a_second_opinion_sees_no_ones_labels() {
    let app = AcmeApp::new().await;
    let admin = app.login("admin").await;
    app.submit(
        &admin,
        &app.p("/agreement/settings"),
        &[("share_percent", "100")],
    )
    .await;
    app.store
        .create_user(&NewUser {
            username: Username::parse("second").unwrap(),
            role: Role::Labeler,
            password_hash: workbench::web::hash_password(crate::support::PASSWORD).unwrap(),
        })
        .await
        .unwrap();
    let labeler = app.login("labeler").await;
    let ticket = app.tickets[0];
    let answered = app
        .submit(
            &labeler,
            &app.p(&format!("/tickets/{ticket}/labels")),
            &[("tags", "billing")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.body);
    let page = app.p(&format!("/tickets/{ticket}"));
    let checked = |body: &str| {
        body.split("<input")
            .find(|input| input.contains(r#"value="billing""#))
            .and_then(|input| input.split('>').next())
            .expect("a billing checkbox")
            .contains("checked")
    };
    // Another labeller: no human label, no history of one, nothing pre-checked.
    let second = app.login("second").await;
    let blind = app.get(&page, Some(&second)).await;
    assert_eq!(blind.status, StatusCode::OK);
    assert!(!checked(&blind.body), "{}", blind.body);
    assert!(!blind.body.contains("<td>human</td>"), "{}", blind.body);
    assert!(!blind.body.contains("(human)"), "{}", blind.body);
    // Nor the Agreement page, which lists every answer.
    assert_eq!(
        app.get(&app.p("/agreement"), Some(&second)).await.status,
        StatusCode::FORBIDDEN
    );
    // The first labeller and an ML engineer see the answer.
    for who in [&labeler, &app.login("mlengineer").await] {
        let open = app.get(&page, Some(who)).await;
        assert!(checked(&open.body));
        assert!(open.body.contains("<td>human</td>"));
    }
    // Once the second opinion is given, everyone sees the labels again.
    let mlengineer = app.login("mlengineer").await;
    let queue = app.get(&app.p("/review"), Some(&mlengineer)).await;
    assert!(queue.body.contains("data-second-opinion"), "{}", queue.body);
    let given = app
        .submit(
            &mlengineer,
            &app.p(&format!("/review/{ticket}")),
            &[("tags", "billing")],
        )
        .await;
    assert_eq!(given.status, StatusCode::SEE_OTHER, "{}", given.body);
    let after = app.get(&page, Some(&second)).await;
    assert!(checked(&after.body), "{}", after.body);
}

#[tokio::test]
async fn a_double_labelled_ticket_is_answered_blind_and_its_disagreement_settled() {
    let app = AcmeApp::new().await;
    let admin = app.login("admin").await;
    let page = app
        .submit(
            &admin,
            &app.p("/agreement/settings"),
            &[("share_percent", "100")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    // The labeler labels a ticket from its page; every labelled ticket is drawn.
    let labeler = app.login("labeler").await;
    let ticket = app.tickets[0];
    let page = app
        .submit(
            &labeler,
            &app.p(&format!("/tickets/{ticket}/labels")),
            &[("tags", "billing")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    // The labeler is not asked again; the ML engineer gets it first, blind.
    let own = app.get(&app.p("/review"), Some(&labeler)).await;
    assert!(!own.body.contains("data-second-opinion"), "{}", own.body);
    let mlengineer = app.login("mlengineer").await;
    let review = app.get(&app.p("/review"), Some(&mlengineer)).await;
    assert!(
        review.body.contains(&format!("data-ticket=\"{ticket}\"")),
        "{}",
        review.body
    );
    assert!(
        review.body.contains("data-second-opinion"),
        "{}",
        review.body
    );
    assert!(review.body.contains("1 waiting for a second opinion"));
    // Blind: the first answer (billing) is not pre-selected, whatever key it has.
    let billing_input = review
        .body
        .split("<input")
        .find(|input| input.contains(r#"value="billing""#))
        .and_then(|input| input.split('>').next())
        .expect("a billing checkbox");
    assert!(!billing_input.contains("checked"), "{billing_input}");
    let page = app
        .submit(
            &mlengineer,
            &app.p(&format!("/review/{ticket}")),
            &[("tags", "login")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    // The labels stay the labeler's until someone settles it.
    let labelled = app.store.ticket(app.project.id, ticket).await.unwrap();
    assert_eq!(
        labelled.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        ["billing"]
    );
    assert_eq!(
        app.get(&app.p("/agreement"), Some(&labeler)).await.status,
        StatusCode::FORBIDDEN,
        "every answer is there: not for labellers"
    );
    let agreement = app.get(&app.p("/agreement"), Some(&mlengineer)).await;
    assert_eq!(agreement.status, StatusCode::OK);
    assert!(
        agreement.body.contains("1 disagreements to settle"),
        "{}",
        agreement.body
    );
    assert!(
        agreement
            .body
            .contains(&format!("data-ticket=\"{ticket}\""))
    );
    // A labeler cannot settle; an ML engineer can.
    let refused = app
        .submit(
            &labeler,
            &app.p(&format!("/agreement/{ticket}")),
            &[("tags", "login")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let settled = app
        .submit(
            &mlengineer,
            &app.p(&format!("/agreement/{ticket}")),
            &[("tags", "billing"), ("tags", "login")],
        )
        .await;
    assert_eq!(settled.status, StatusCode::SEE_OTHER, "{}", settled.body);
    let labelled = app.store.ticket(app.project.id, ticket).await.unwrap();
    let mut tags: Vec<&str> = labelled.tags.iter().map(|t| t.as_str()).collect();
    tags.sort();
    assert_eq!(tags, ["billing", "login"]);
    let agreement = app.get(&app.p("/agreement"), Some(&admin)).await;
    assert!(
        agreement.body.contains("0 disagreements to settle"),
        "{}",
        agreement.body
    );
    assert!(agreement.body.contains("Nothing to settle."));
}

#[tokio::test]
async fn the_dashboard_points_at_a_new_topic_that_no_tag_fits() {
    let app = AcmeApp::new().await;
    let browser = app.login("labeler").await;
    let tags = app.store.list_tags(app.project.id).await.unwrap();
    let billing = tags.iter().find(|t| t.name.as_str() == "billing").unwrap();
    let login = tags.iter().find(|t| t.name.as_str() == "login").unwrap();
    let version = app
        .store
        .create_model_version(app.project.id, &NewModelVersion::default())
        .await
        .unwrap();
    // Known topics the model tags, and a new one (VPN) no tag fits.
    let mut tickets = Vec::new();
    for i in 0..30 {
        tickets.push((
            format!("b{i}"),
            format!("Invoice {i} charged twice"),
            "refund the card payment".to_string(),
        ));
        tickets.push((
            format!("l{i}"),
            format!("Password reset {i}"),
            "login mail never came".to_string(),
        ));
    }
    for i in 0..8 {
        let (subject, body) = if i % 2 == 0 {
            ("VPN tunnel drops", "it happens every morning")
        } else {
            ("VPN client disconnects", "started after the update")
        };
        tickets.push((
            format!("v{i}"),
            format!("{subject} ({i})"),
            body.to_string(),
        ));
    }
    let new: Vec<NewTicket> = tickets
        .iter()
        .map(|(id, subject, body)| NewTicket {
            source: "zendesk".into(),
            external_id: id.clone(),
            subject: subject.clone(),
            body: body.clone(),
            metadata: serde_json::json!({}),
            created_at: None,
            split: Split::Train,
        })
        .collect();
    let stored = app
        .store
        .upsert_tickets(app.project.id, &new)
        .await
        .unwrap();
    for ((id, _, _), ticket) in tickets.iter().zip(&stored) {
        let applied = match id.chars().next() {
            Some('b') => vec![(billing.id, 0.9)],
            Some('l') => vec![(login.id, 0.8)],
            _ => vec![],
        };
        app.store
            .set_model_labels(app.project.id, ticket.id, version.id, &applied)
            .await
            .unwrap();
    }
    let page = app.get(&app.p("/dashboard?days=7"), Some(&browser)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("<strong>8 tickets no tag fits</strong>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("“vpn”"), "{}", page.body);
    // Examples link to the tickets' pages; the words link to a search.
    let vpn_ticket = stored[tickets.iter().position(|t| t.0 == "v7").unwrap()].id;
    assert!(
        page.body.contains(&format!(
            "href=\"{}\"",
            app.p(&format!("/tickets/{vpn_ticket}"))
        )),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!("{}?q=vpn", app.p("/tickets"))));
    // Known topics do not show as clusters.
    assert!(!page.body.contains("“invoice”"));
}

#[tokio::test]
async fn an_admin_creates_a_project_and_an_api_key_shown_once_then_revokes_it() {
    let app = AcmeApp::new().await;
    for role in ["labeler", "mlengineer"] {
        let browser = app.login(role).await;
        assert_eq!(
            app.get("/admin/projects", Some(&browser)).await.status,
            StatusCode::FORBIDDEN,
            "{role}"
        );
    }
    let admin = app.login("admin").await;
    let page = app
        .submit(
            &admin,
            "/admin/projects",
            &[("name", "Helpdesk"), ("label_mode", "single")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let helpdesk = app
        .store
        .project_by_name(&ProjectName::parse("Helpdesk").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(helpdesk.label_mode, LabelMode::Single);
    let tags = app.store.list_tags(helpdesk.id).await.unwrap();
    assert!(tags.iter().any(|t| t.name.as_str() == "Bug"), "{tags:?}");
    // The same name again is refused and creates nothing.
    let again = app
        .submit(
            &admin,
            "/admin/projects",
            &[("name", "helpdesk"), ("label_mode", "multi")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(app.store.project_list().await.unwrap().len(), 2);

    let created = app
        .submit(
            &admin,
            &format!("/admin/projects/{}/keys", helpdesk.id),
            &[],
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::BAD_REQUEST,
        "a key needs a name"
    );
    let unscoped = app
        .submit(
            &admin,
            &format!("/admin/projects/{}/keys", helpdesk.id),
            &[("name", "zendesk-sync")],
        )
        .await;
    assert_eq!(
        unscoped.status,
        StatusCode::BAD_REQUEST,
        "a key needs a scope: {}",
        unscoped.body
    );
    let created = app
        .submit(
            &admin,
            &format!("/admin/projects/{}/keys", helpdesk.id),
            &[
                ("name", "zendesk-sync"),
                ("scope", "tag"),
                ("scope", "read"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let start = created.body.find("<code data-secret>").unwrap() + "<code data-secret>".len();
    let secret = &created.body[start..start + created.body[start..].find('<').unwrap()];
    let key = app
        .store
        .authenticate_api_key(secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        key.grant,
        KeyGrant::Project {
            project_id: helpdesk.id,
            scopes: "tag,read".parse().unwrap(),
        }
    );
    // Shown once: the listing has the prefix and the scopes, never the secret.
    let listing = app.get("/admin/projects", Some(&admin)).await;
    assert!(listing.body.contains(&key.prefix));
    assert!(
        listing.body.contains("<td data-scopes>tag, read</td>"),
        "{}",
        listing.body
    );
    assert!(!listing.body.contains(secret));
    let revoked = app
        .submit(
            &admin,
            &format!("/admin/projects/{}/keys/{}/revoke", helpdesk.id, key.id),
            &[],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert!(
        app.store
            .authenticate_api_key(secret)
            .await
            .unwrap()
            .is_none()
    );
    // A key of another project cannot be revoked through this one.
    let other = app
        .store
        .create_api_key(
            &KeyGrant::Project {
                project_id: app.project.id,
                scopes: Scopes::all(),
            },
            "other",
        )
        .await
        .unwrap();
    let refused = app
        .submit(
            &admin,
            &format!(
                "/admin/projects/{}/keys/{}/revoke",
                helpdesk.id, other.key.id
            ),
            &[],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    assert!(
        app.store
            .authenticate_api_key(&other.secret)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn only_an_admin_creates_an_instance_admin_key_and_revokes_it() {
    let app = AcmeApp::new().await;
    let labeler = app.login("labeler").await;
    let refused = app
        .submit(&labeler, "/admin/keys", &[("name", "provisioning")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(app.store.api_keys(None).await.unwrap().is_empty());

    let admin = app.login("admin").await;
    let created = app
        .submit(&admin, "/admin/keys", &[("name", "provisioning")])
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let start = created.body.find("<code data-secret>").unwrap() + "<code data-secret>".len();
    let secret = &created.body[start..start + created.body[start..].find('<').unwrap()];
    let key = app
        .store
        .authenticate_api_key(secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.grant, KeyGrant::InstanceAdmin);
    let listing = app.get("/admin/projects", Some(&admin)).await;
    assert!(listing.body.contains(&key.prefix));
    assert!(!listing.body.contains(secret));

    // The project route does not reach it; the instance route does.
    let wrong = app
        .submit(
            &admin,
            &format!("/admin/projects/{}/keys/{}/revoke", app.project.id, key.id),
            &[],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND, "{}", wrong.body);
    let revoked = app
        .submit(&admin, &format!("/admin/keys/{}/revoke", key.id), &[])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert!(
        app.store
            .authenticate_api_key(secret)
            .await
            .unwrap()
            .is_none()
    );
}
