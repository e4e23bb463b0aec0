//! The audit log end to end: every audited change made through the pages, the API and the
//! command line appears once with the actor that made it (a user, an API key by id, `cli`),
//! no secret ever reaches it, and only admins read it — on the page, through an
//! instance-admin key, or for its own project through a project key with the `admin` scope.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::support;
use datasets::store::prelude::*;

use axum::http::{Method, StatusCode};
use datasets::test_db::TestDatabase;
use datasets::*;
use serde_json::{Value, json};
use support::{Browser, PASSWORD, WebApp};

/// A demo project with two trained versions, so promotion and rollback can be exercised.
async fn project_with_versions(
    store: &AnyStore,
    name: &str,
    models: &std::path::Path,
) -> (Project, Vec<ModelVersion>) {
    let name = ProjectName::parse(name).unwrap();
    let project =
        datasets::demo_project::install_demo_project(store, &name, LabelMode::Multi, 300, 5)
            .await
            .unwrap();
    let mut versions = Vec::new();
    for _ in 0..2 {
        let mut request = trainer::TrainRequest::default();
        request.ngram.epochs = 2;
        let trained = trainer::train(store, &project, &request, models, |_| {})
            .await
            .unwrap();
        versions.push(trained.version);
    }
    (project, versions)
}

async fn all_entries(store: &AnyStore) -> Vec<AuditEntry> {
    store
        .audit_entries(&AuditFilter {
            limit: 500,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

/// The entries with this action, as (actor, target) pairs.
fn with_action(entries: &[AuditEntry], action: &str) -> Vec<(String, String)> {
    entries
        .iter()
        .filter(|e| e.action == action)
        .map(|e| (e.actor.clone(), e.target.clone()))
        .collect()
}

fn assert_logged(entries: &[AuditEntry], action: &str, actor: &str) {
    let found = with_action(entries, action);
    assert!(
        found.iter().any(|(a, _)| a == actor),
        "no {action} by {actor}; {action} entries: {found:?}"
    );
}

async fn admin_page_post(app: &WebApp, browser: &Browser, uri: &str, fields: &[(&str, &str)]) {
    let page = app.submit(browser, uri, fields).await;
    assert!(
        page.status == StatusCode::SEE_OTHER || page.status == StatusCode::OK,
        "{uri}: {} {}",
        page.status,
        page.body
    );
}

async fn every_audited_change_is_logged_with_its_actor(store: AnyStore) {
    let app = WebApp::on(store.clone()).await;
    let models = tempfile::tempdir().unwrap();
    let (project, versions) = project_with_versions(&store, "Acme", models.path()).await;
    let instance = store
        .create_api_key(&KeyGrant::InstanceAdmin, "provisioning")
        .await
        .unwrap();
    let ops = store
        .create_api_key(
            &KeyGrant::Project {
                project_id: project.id,
                scopes: Scopes::all(),
            },
            "ops",
        )
        .await
        .unwrap();
    let (instance_actor, ops_actor) = (
        format!("api-key:{}", instance.key.id),
        format!("api-key:{}", ops.key.id),
    );

    // The pages, as the admin.
    let admin = app.login("admin").await;
    let new_password = "another long password";
    admin_page_post(
        &app,
        &admin,
        "/admin/users",
        &[
            ("username", "zoe"),
            ("role", "labeler"),
            ("password", PASSWORD),
        ],
    )
    .await;
    let zoe = store
        .users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username.as_str() == "zoe")
        .unwrap();
    let zoe_uri = format!("/admin/users/{}", zoe.id);
    admin_page_post(&app, &admin, &zoe_uri, &[("role", "ml-engineer")]).await;
    admin_page_post(&app, &admin, &zoe_uri, &[("password", new_password)]).await;
    let keys_uri = format!("/admin/projects/{}/keys", project.id);
    admin_page_post(
        &app,
        &admin,
        &keys_uri,
        &[("name", "crm"), ("scope", "read")],
    )
    .await;
    let crm = store
        .api_keys(Some(project.id))
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "crm")
        .unwrap();
    admin_page_post(
        &app,
        &admin,
        &format!("/admin/projects/{}/keys/{}/revoke", project.id, crm.id),
        &[],
    )
    .await;
    let taxonomy = format!("/p/{}/taxonomy", project.id);
    admin_page_post(&app, &admin, &taxonomy, &[("name", "Refunds")]).await;
    let tags = store.list_tags(project.id).await.unwrap();
    let refunds = tags.iter().find(|t| t.name.as_str() == "Refunds").unwrap();
    let billing = tags.iter().find(|t| t.name.as_str() == "Billing").unwrap();
    admin_page_post(
        &app,
        &admin,
        &format!("{taxonomy}/{}", refunds.id),
        &[("name", "Refund")],
    )
    .await;
    admin_page_post(
        &app,
        &admin,
        &format!("{taxonomy}/merge"),
        &[
            ("from", &refunds.id.to_string()),
            ("into", &billing.id.to_string()),
        ],
    )
    .await;

    // The API, with an instance-admin key and a project key.
    let (status, body) = app
        .json(
            Method::POST,
            "/v1/projects",
            Some(&instance.secret),
            json!({"name": "Beta", "tags": [{"name": "Bug"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = Some(ops.secret.as_str());
    let (status, outage) = app
        .json(
            Method::POST,
            "/v1/projects/Acme/tags",
            key,
            json!({"name": "Outage"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outage}");
    let outage_uri = format!("/v1/projects/Acme/tags/{}", outage["id"]);
    for change in [
        json!({"keywords": {"include": ["is down"], "exclude": []}}),
        json!({"archived": true}),
    ] {
        let (status, body) = app.json(Method::PATCH, &outage_uri, key, change).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = app
        .json(
            Method::PUT,
            "/v1/projects/Acme/languages",
            key,
            json!({"languages": ["eng"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for version in &versions {
        let uri = format!("/v1/projects/Acme/models/{}/promote", version.id);
        let (status, body) = app
            .json(Method::POST, &uri, key, json!({"force": true}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = app
        .json(
            Method::POST,
            "/v1/projects/Acme/models/rollback",
            key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let entries = all_entries(&store).await;
    for (action, actor) in [
        ("user.create", "user:admin"),
        ("user.role", "user:admin"),
        ("user.password", "user:admin"),
        ("key.create", "user:admin"),
        ("key.revoke", "user:admin"),
        ("tag.create", "user:admin"),
        ("tag.rename", "user:admin"),
        ("tag.merge", "user:admin"),
        ("project.create", instance_actor.as_str()),
        ("tag.create", ops_actor.as_str()),
        ("tag.rules", ops_actor.as_str()),
        ("tag.archive", ops_actor.as_str()),
        ("project.languages", ops_actor.as_str()),
        ("model.promote", ops_actor.as_str()),
        ("model.rollback", ops_actor.as_str()),
    ] {
        assert_logged(&entries, action, actor);
    }
    // Each change once: two promotions, one rollback, one rename.
    assert_eq!(with_action(&entries, "model.promote").len(), 2);
    assert_eq!(with_action(&entries, "model.rollback").len(), 1);
    assert_eq!(with_action(&entries, "tag.rename").len(), 1);
    let rename = entries.iter().find(|e| e.action == "tag.rename").unwrap();
    assert_eq!(
        rename.details["name"],
        json!({"from": "Refunds", "to": "Refund"})
    );
    assert_eq!(rename.project_id, Some(project.id));
    let by_key = entries.iter().find(|e| e.actor == ops_actor).unwrap();
    assert_eq!(by_key.actor_name, "ops");
    // Newest first.
    assert!(entries.windows(2).all(|w| w[0].id > w[1].id));
    // No secret and no password anywhere in the log.
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [
        instance.secret.as_str(),
        ops.secret.as_str(),
        PASSWORD,
        new_password,
    ] {
        assert!(!text.contains(secret), "a secret reached the audit log");
    }

    // A refused change records nothing: promoting the version already in service.
    let serving = store.promoted_model_version(project.id).await.unwrap();
    let uri = format!("/v1/projects/Acme/models/{}/promote", serving.unwrap().id);
    let (status, _) = app
        .json(Method::POST, &uri, key, json!({"force": true}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let after = all_entries(&store).await;
    assert_eq!(after.len(), entries.len());
}

async fn only_admins_read_the_audit_log(store: AnyStore) {
    let app = WebApp::on(store.clone()).await;
    let acme = store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let beta = store
        .create_project(&ProjectName::parse("Beta").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let instance = support::instance_admin_key(&store, "provisioning").await;
    let acme_admin = support::scoped_key(&store, acme.id, "acme-admin", "admin").await;
    let acme_worker = support::scoped_key(&store, acme.id, "worker", "read,tag,label,train").await;
    // Five entries in Acme, three in Beta, one instance-wide.
    for (project, name) in [
        (acme.id, "One"),
        (acme.id, "Two"),
        (acme.id, "Three"),
        (acme.id, "Four"),
        (acme.id, "Five"),
        (beta.id, "Six"),
        (beta.id, "Seven"),
        (beta.id, "Eight"),
    ] {
        store
            .record_audit(&NewAuditEntry::new(
                &Actor::User("admin".into()),
                AuditAction::TagCreate,
                Some(project),
                format!("tag {name}"),
                json!({"name": name}),
            ))
            .await
            .unwrap();
    }
    store
        .record_audit(&NewAuditEntry::new(
            &Actor::Cli(None),
            AuditAction::UserCreate,
            None,
            "user 9 \"ana\"",
            json!({"role": "labeler"}),
        ))
        .await
        .unwrap();

    // The page: admins only.
    for role in ["labeler", "mlengineer"] {
        let browser = app.login(role).await;
        let page = app.get("/admin/audit", Some(&browser)).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{role}");
    }
    assert_eq!(
        app.get("/admin/audit", None).await.status,
        StatusCode::SEE_OTHER,
        "no session: to the login page"
    );
    let admin = app.login("admin").await;
    let page = app.get("/admin/audit", Some(&admin)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("tag Eight") && page.body.contains("user:admin"));
    let filtered = app
        .get("/admin/audit?action=user.create&actor=cli", Some(&admin))
        .await;
    assert_eq!(filtered.status, StatusCode::OK);
    assert!(filtered.body.contains("user 9"));
    assert!(!filtered.body.contains("tag Eight"));
    let bad = app.get("/admin/audit?action=nonsense", Some(&admin)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // The API: instance-admin keys for everything, a project's admin key for its own.
    let get = |uri: &'static str, key: Option<&str>| {
        let key = key.map(str::to_string);
        let app = &app;
        async move {
            app.json(Method::GET, uri, key.as_deref(), Value::Null)
                .await
        }
    };
    assert_eq!(get("/v1/audit", None).await.0, StatusCode::UNAUTHORIZED);
    for key in [&acme_admin, &acme_worker] {
        assert_eq!(get("/v1/audit", Some(key)).await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        get("/v1/projects/Acme/audit", Some(&acme_worker)).await.0,
        StatusCode::FORBIDDEN,
        "a project key without the admin scope"
    );
    assert_eq!(
        get("/v1/projects/Beta/audit", Some(&acme_admin)).await.0,
        StatusCode::FORBIDDEN,
        "another project's log"
    );
    assert_eq!(
        get("/v1/projects/Acme/audit", Some(&instance)).await.0,
        StatusCode::FORBIDDEN,
        "instance keys use /v1/audit?project="
    );

    let (status, everything) = get("/v1/audit", Some(&instance)).await;
    assert_eq!(status, StatusCode::OK, "{everything}");
    assert_eq!(everything["entries"].as_array().unwrap().len(), 9);
    let (status, own) = get("/v1/projects/Acme/audit", Some(&acme_admin)).await;
    assert_eq!(status, StatusCode::OK, "{own}");
    let own = own["entries"].as_array().unwrap();
    assert_eq!(own.len(), 5);
    assert!(own.iter().all(|e| e["project_id"] == json!(acme.id.0)));
    let (_, beta_only) = get("/v1/audit?project=Beta", Some(&instance)).await;
    assert_eq!(beta_only["entries"].as_array().unwrap().len(), 3);
    let (_, by_cli) = get("/v1/audit?actor=cli", Some(&instance)).await;
    assert_eq!(by_cli["entries"][0]["action"], "user.create");
    assert_eq!(by_cli["entries"].as_array().unwrap().len(), 1);

    // Pages of two, through the cursor, newest first, none twice.
    let mut seen: Vec<i64> = Vec::new();
    let mut uri = "/v1/projects/Acme/audit?limit=2".to_string();
    loop {
        let (status, page) = app
            .json(Method::GET, &uri, Some(&acme_admin), Value::Null)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match page["next_before"].as_i64() {
            Some(before) => uri = format!("/v1/projects/Acme/audit?limit=2&before={before}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    for bad in [
        "/v1/audit?action=nonsense",
        "/v1/audit?limit=0",
        "/v1/audit?limit=100000",
    ] {
        let (status, body) = app
            .json(Method::GET, bad, Some(&instance), Value::Null)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (status, _) = get("/v1/audit?project=Nowhere", Some(&instance)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

datasets::on_both_backends!(
    every_audited_change_is_logged_with_its_actor,
    only_admins_read_the_audit_log,
);

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn tagger(database_url: &str, data_dir: &std::path::Path, args: &[&str]) -> Run {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tagger"))
        .arg("--database-url")
        .arg(database_url)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("TAGGER_ENCRYPTION_KEY")
        .env("TAGGER_LOG", "warn")
        .output()
        .unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn run_ok(url: &str, data_dir: &std::path::Path, args: &[&str]) -> String {
    let run = tagger(url, data_dir, args);
    assert!(run.ok, "tagger {args:?}: {}", run.stderr);
    run.stdout
}

/// What the command line changes is logged with the actor `cli`.
async fn command_line_changes_are_logged_as_cli(database: &TestDatabase) {
    let store = database.store().await.unwrap();
    let acme = store
        .create_project(&ProjectName::parse("Acme").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let (url, dir) = (database.url.as_str(), data_dir.path());
    run_ok(
        url,
        dir,
        &[
            "users",
            "add",
            "--username",
            "ana",
            "--role",
            "labeler",
            "--password",
            PASSWORD,
        ],
    );
    let secret = run_ok(
        url,
        dir,
        &[
            "keys",
            "create",
            "--project",
            "Acme",
            "--name",
            "crm",
            "--scopes",
            "read",
        ],
    );
    let key = store.api_keys(Some(acme.id)).await.unwrap();
    let key_id = key.iter().find(|k| k.name == "crm").unwrap().id.to_string();
    run_ok(
        url,
        dir,
        &["keys", "revoke", "--project", "Acme", "--id", &key_id],
    );
    let hook_secret = "a signing secret of some length";
    let added = run_ok(
        url,
        dir,
        &[
            "webhooks",
            "add",
            "--project",
            "Acme",
            "--url",
            "https://hooks.example/tagged",
            "--secret",
            hook_secret,
        ],
    );
    let hook_id = added.split_whitespace().nth(1).unwrap().to_string();
    run_ok(url, dir, &["webhooks", "remove", "--id", &hook_id]);
    let connector_secret = "zendesk-webhook-secret-0123";
    run_ok(
        url,
        dir,
        &[
            "connectors",
            "add",
            "--project",
            "Acme",
            "--system",
            "zendesk",
            "--name",
            "zd",
            "--base-url",
            "https://acme.zendesk.com",
            "--webhook-secret",
            connector_secret,
        ],
    );
    run_ok(url, dir, &["connectors", "remove", "--name", "zd"]);

    let entries = all_entries(&store).await;
    for action in [
        "user.create",
        "key.create",
        "key.revoke",
        "webhook.add",
        "webhook.remove",
        "connector.add",
        "connector.remove",
    ] {
        assert_logged(&entries, action, "cli");
    }
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [secret.trim(), PASSWORD, hook_secret, connector_secret] {
        assert!(!text.contains(secret), "a secret reached the audit log");
    }
}

#[tokio::test]
async fn command_line_changes_are_logged_as_cli_on_sqlite() {
    let database = TestDatabase::sqlite().unwrap();
    command_line_changes_are_logged_as_cli(&database).await;
}

#[tokio::test]
async fn command_line_changes_are_logged_as_cli_on_postgres() {
    let Some(database) = TestDatabase::postgres("audit_cli").await.unwrap() else {
        return;
    };
    command_line_changes_are_logged_as_cli(&database).await;
    database.drop_database().await.unwrap();
}
