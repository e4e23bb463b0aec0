//! The workbench router driven with `oneshot` like a browser: log in, keep the session
//! cookie and the CSRF token, read pages; and API keys for the tests that call `/v1`.
//! Shared by the page tests that need no worker (`snapshots.rs`, `web_taxonomy_models.rs`)
//! and the API tests.
#![allow(clippy::unwrap_used, dead_code)] // a failed unwrap is a failed test; each test file uses part

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::*;
use http_body_util::BodyExt;
use tower::ServiceExt;
use workbench::app::app;
use workbench::config::Config;
use workbench::state::AppState;

pub const PASSWORD: &str = "a long test password";

/// A request to the JSON API: the body (if any) as `application/json`, the `Authorization`
/// header word for word (`Bearer …`, or a malformed one a test wants refused).
pub fn json_request(
    method: Method,
    uri: &str,
    authorization: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap()
}

/// Sends a request through the router: the status and the JSON answer (`Null` when the body
/// is empty, the text as a JSON string when it is not JSON).
pub async fn send_json(
    router: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, serde_json::Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        })
    };
    (status, value)
}

/// A JSON API call with an optional bearer key.
pub async fn call_api(
    router: &axum::Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let authorization = key.map(|key| format!("Bearer {key}"));
    send_json(
        router,
        json_request(method, uri, authorization.as_deref(), body.as_ref()),
    )
    .await
}

/// A key of `project` with the given scopes (`"tag,read"`); its secret.
pub async fn scoped_key(store: &AnyStore, project: ProjectId, name: &str, scopes: &str) -> String {
    let grant = KeyGrant::Project {
        project_id: project,
        scopes: scopes.parse().unwrap(),
    };
    store.create_api_key(&grant, name).await.unwrap().secret
}

/// A key of `project` with every scope, what a test that is not about scopes needs.
pub async fn project_key(store: &AnyStore, project: ProjectId, name: &str) -> String {
    let grant = KeyGrant::Project {
        project_id: project,
        scopes: Scopes::all(),
    };
    store.create_api_key(&grant, name).await.unwrap().secret
}

/// An instance-admin key (creates and lists projects).
pub async fn instance_admin_key(store: &AnyStore, name: &str) -> String {
    store
        .create_api_key(&KeyGrant::InstanceAdmin, name)
        .await
        .unwrap()
        .secret
}

/// A response as a browser sees it.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub cookies: Vec<String>,
    pub content_type: Option<String>,
    pub body: String,
}

impl Page {
    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        let start = self.body.find("name=\"csrf\" value=\"").unwrap() + 19;
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].to_string()
    }

    /// `name=value` of a cookie the response sets.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_string())
    }

    /// The whole `Set-Cookie` header for a cookie, with its attributes.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .cloned()
    }
}

/// The response as a browser reads it.
pub async fn read(response: Response) -> Page {
    let status = response.status();
    let header_text = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_string())
    };
    let location = header_text(header::LOCATION);
    let content_type = header_text(header::CONTENT_TYPE);
    let cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Page {
        status,
        location,
        cookies,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A logged-in browser: its session cookie and the CSRF token its pages carry.
#[derive(Clone)]
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", workbench::web::encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The app on a fresh SQLite database with three users, one per role.
pub struct WebApp {
    pub router: axum::Router,
    pub store: AnyStore,
    _database: Option<TestDatabase>,
}

impl WebApp {
    pub async fn new() -> Self {
        Self::with_config(Config::default()).await
    }

    /// The same, served with `config` (an encryption key, say).
    pub async fn with_config(config: Config) -> Self {
        let database = TestDatabase::sqlite().unwrap();
        let store = database.store().await.unwrap();
        let mut app = Self::on_with(store, config).await;
        app._database = Some(database);
        app
    }

    /// The app on a store a test already has (`on_both_backends!`), with the same users.
    pub async fn on(store: AnyStore) -> Self {
        Self::on_with(store, Config::default()).await
    }

    /// The app on a database a test has filled, served with `config`; it keeps the database.
    pub async fn on_database(database: TestDatabase, config: Config) -> Self {
        let store = database.store().await.unwrap();
        let mut app = Self::on_with(store, config).await;
        app._database = Some(database);
        app
    }

    async fn on_with(store: AnyStore, config: Config) -> Self {
        let router = app(AppState::new(store.clone(), config));
        Self::with_router(store, router).await
    }

    /// A router a test built itself (with a job queue, say) on `store`, with the same users.
    pub async fn with_router(store: AnyStore, router: axum::Router) -> Self {
        let hash = workbench::web::hash_password(PASSWORD).unwrap();
        for (name, role) in [
            ("admin", Role::Admin),
            ("mlengineer", Role::MlEngineer),
            ("labeler", Role::Labeler),
        ] {
            store
                .create_user(&NewUser {
                    username: Username::parse(name).unwrap(),
                    role,
                    password_hash: hash.clone(),
                })
                .await
                .unwrap();
        }
        Self {
            router,
            store,
            _database: None,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Page {
        read(self.router.clone().oneshot(request).await.unwrap()).await
    }

    pub async fn get(&self, uri: &str, browser: Option<&Browser>) -> Page {
        let mut request = Request::builder().uri(uri);
        if let Some(browser) = browser {
            request = request.header(header::COOKIE, &browser.cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    pub async fn post(&self, uri: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Page {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::from(form_body(fields))).unwrap())
            .await
    }

    /// A form post from a logged-in browser with its CSRF token.
    pub async fn submit(&self, browser: &Browser, uri: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("csrf", browser.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(uri, Some(&browser.cookie), &all).await
    }

    /// Posts the login form as a browser would (its CSRF cookie and token); the answer.
    pub async fn try_login(&self, username: &str, password: &str) -> Page {
        let form = self.get("/login", None).await;
        assert_eq!(form.status, StatusCode::OK);
        let cookie = form.cookie("tagger_login_csrf").unwrap();
        self.post(
            "/login",
            Some(&cookie),
            &[
                ("csrf", &form.csrf()),
                ("username", username),
                ("password", password),
                ("next", "/"),
            ],
        )
        .await
    }

    pub async fn login(&self, username: &str) -> Browser {
        let page = self.try_login(username, PASSWORD).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let mut browser = Browser {
            cookie: page.cookie("tagger_session").unwrap(),
            csrf: String::new(),
        };
        let home = self.get("/", Some(&browser)).await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.body);
        browser.csrf = home.csrf();
        browser
    }

    /// A JSON request with an optional API key.
    pub async fn json(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let page = self
            .send(request.body(Body::from(body.to_string())).unwrap())
            .await;
        let value = serde_json::from_str(&page.body).unwrap_or(serde_json::Value::Null);
        (page.status, value)
    }
}
