//! The web workbench: server-rendered pages (minijinja, autoescaped) for labelers, ML
//! engineers and admins, with static files embedded in the binary. Every page works without
//! JavaScript; `app.js` adds keyboard shortcuts only.

mod admin_projects;
mod agreement;
mod audit;
pub mod auth;
mod charts;
mod concern_clusters;
mod confusion;
mod connectors;
mod csv;
mod dashboard;
mod import;
pub mod key_phrases;
mod label_groups;
pub mod login_csrf;
pub mod login_limits;
mod models;
mod pages;
pub mod password_hashing;
mod review;
mod tag_groups;
mod taxonomy;
mod tickets;
mod training;
mod users;
mod why;

pub use auth::{hash_password, verify_password};
pub use login_limits::LoginLimiter;
pub use password_hashing::PasswordHashing;
pub use users::{MIN_PASSWORD_CHARS, new_password_problem};

use crate::state::AppState;
use auth::CurrentUser;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use datasets::store::prelude::*;
use datasets::{Project, ProjectId, Role, StoreError, StoreErrorKind};
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, Value, context};
use serde::Serialize;
use std::sync::{Arc, LazyLock};

/// Every page and form of the workbench.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/static/{*path}", get(pages::static_file))
        .route("/p/{project}/review", get(review::show))
        .route("/p/{project}/review/{ticket}", post(review::label))
        .route("/p/{project}/review/{ticket}/skip", post(review::skip))
        .route("/p/{project}/tickets", get(tickets::browse))
        .route(
            "/p/{project}/import",
            // The handler bounds the file (`upload_max_bytes`) and every other field itself.
            get(import::show)
                .post(import::upload)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/p/{project}/tickets/{ticket}", get(tickets::show))
        .route("/p/{project}/tickets/{ticket}/labels", post(tickets::label))
        .route(
            "/p/{project}/taxonomy",
            get(taxonomy::list).post(taxonomy::create),
        )
        .route("/p/{project}/taxonomy/merge", post(taxonomy::merge))
        .route("/p/{project}/taxonomy/move", post(tag_groups::move_tag))
        .route("/p/{project}/taxonomy/groups", post(tag_groups::create))
        .route(
            "/p/{project}/taxonomy/groups/{group}",
            post(tag_groups::change),
        )
        .route(
            "/p/{project}/taxonomy/{tag}",
            get(taxonomy::edit).post(taxonomy::update),
        )
        .route("/p/{project}/models", get(models::list))
        .route("/p/{project}/models/compare", get(models::compare))
        .route(
            "/p/{project}/models/learning-curve.csv",
            get(models::learning_curve_csv),
        )
        .route("/p/{project}/models/rollback", post(models::rollback))
        .route(
            "/p/{project}/models/{version}/promote",
            post(models::promote),
        )
        .route(
            "/p/{project}/training",
            get(training::list).post(training::start),
        )
        .route("/p/{project}/training/{run}", get(training::show))
        .route(
            "/p/{project}/training/{run}/progress",
            get(training::progress),
        )
        .route("/p/{project}/training/{run}/cancel", post(training::cancel))
        .route("/p/{project}/agreement", get(agreement::show))
        .route(
            "/p/{project}/agreement/settings",
            post(agreement::update_settings),
        )
        .route(
            "/p/{project}/agreement/{ticket}",
            post(agreement::adjudicate),
        )
        .route("/p/{project}/dashboard", get(dashboard::show))
        .route("/p/{project}/dashboard/{file}", get(dashboard::csv))
        .route(
            "/p/{project}/connectors",
            get(connectors::show).post(connectors::create),
        )
        .route("/p/{project}/connectors/{name}", post(connectors::update))
        .route(
            "/p/{project}/connectors/{name}/remove",
            post(connectors::remove),
        )
        .route(
            "/p/{project}/connectors/{name}/test",
            post(connectors::test),
        )
        .route(
            "/p/{project}/connectors/{name}/backfill",
            post(connectors::backfill),
        )
        .route("/admin/users", get(users::list).post(users::create))
        .route(
            "/admin/projects",
            get(admin_projects::list).post(admin_projects::create_project),
        )
        .route(
            "/admin/projects/{project}/keys",
            post(admin_projects::create_key),
        )
        .route(
            "/admin/projects/{project}/keys/{key}/revoke",
            post(admin_projects::revoke_key),
        )
        .route(
            "/admin/projects/{project}/glossary",
            post(admin_projects::set_glossary),
        )
        .route("/admin/keys", post(admin_projects::create_instance_key))
        .route(
            "/admin/keys/{key}/revoke",
            post(admin_projects::revoke_instance_key),
        )
        .route("/admin/users/{user}", post(users::update))
        .route("/admin/audit", get(audit::show))
        .layer(axum::Extension(Arc::new(LoginLimiter::default())))
        .layer(axum::Extension(Arc::new(login_csrf::LoginCsrf::default())))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Pages forbid framing and scripts from anywhere but our own files.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

/// The templates, compiled once; HTML autoescaping is on for every one of them.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in templates!(
        "base.html",
        "login.html",
        "home.html",
        "error.html",
        "tickets.html",
        "ticket.html",
        "_why.html",
        "taxonomy.html",
        "tag.html",
        "models.html",
        "compare.html",
        "dashboard.html",
        "users.html",
        "review.html",
        "training.html",
        "training_run.html",
        "agreement.html",
        "admin_projects.html",
        "connectors.html",
        "audit.html",
        "import.html",
    ) {
        // A template that does not parse is a build defect; the tests render every page.
        if let Err(error) = env.add_template(name, source) {
            panic!("template {name} does not parse: {error:#}");
        }
    }
    env.add_filter("pct", |value: Option<f64>| match value {
        Some(v) => format!("{:.1}%", v * 100.0),
        None => "–".to_string(),
    });
    env.add_filter(
        "num",
        |value: Option<f64>, digits: Option<usize>| match value {
            Some(v) => format!("{v:.*}", digits.unwrap_or(3)),
            None => "–".to_string(),
        },
    );
    env
});

/// What goes wrong in a page handler, each shown as a page with the right status.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("log in to continue")]
    LoginRequired { next: String },
    #[error("your role ({have}) cannot do this: it needs {need}")]
    Forbidden { have: Role, need: Role },
    #[error("the form has expired or did not come from this site; reload the page and try again")]
    BadCsrf,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Worth retrying after `retry_after_seconds`: the database or the password hashing is
    /// overloaded.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_seconds: u64,
    },
    #[error("something went wrong on our side")]
    Internal(String),
}

impl From<StoreError> for WebError {
    fn from(error: StoreError) -> Self {
        match (error.kind(), error) {
            (_, StoreError::NotFound(what)) => Self::NotFound(what),
            (_, StoreError::Conflict(message)) => Self::Conflict(message),
            (_, StoreError::Invalid(invalid)) => Self::BadRequest(invalid.to_string()),
            (StoreErrorKind::Invalid, other) => {
                tracing::warn!(error = %other, "the database refused the input");
                Self::BadRequest("the database refused a value of the form".into())
            }
            (StoreErrorKind::Conflict, other) => {
                tracing::warn!(error = %other, "database constraint conflict");
                Self::Conflict("the change conflicts with what is stored".into())
            }
            (StoreErrorKind::StorageFull, other) => {
                tracing::error!(error = %other, "database disk full");
                Self::Unavailable {
                    message: "the database's disk is full; nothing was saved. Try again once an administrator has freed space".into(),
                    retry_after_seconds: 60,
                }
            }
            (StoreErrorKind::Unavailable, other) => {
                tracing::error!(error = %other, "database unavailable");
                Self::Unavailable {
                    message: "the database is unavailable; try again in a moment".into(),
                    retry_after_seconds: 5,
                }
            }
            (_, other) => Self::Internal(other.to_string()),
        }
    }
}

impl From<minijinja::Error> for WebError {
    fn from(error: minijinja::Error) -> Self {
        Self::Internal(format!("template: {error:#}"))
    }
}

impl WebError {
    /// The HTTP status the error is answered with (a redirect to the login page for
    /// `LoginRequired`).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::LoginRequired { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden { .. } | Self::BadCsrf => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match &self {
            Self::LoginRequired { next } => {
                let target = format!("/login?next={}", encode_component(next));
                return Redirect::to(&target).into_response();
            }
            Self::Internal(detail) => tracing::error!(%detail, "web page failed"),
            _ => {}
        }
        let status = self.status();
        let message = self.to_string();
        let body = TEMPLATES
            .get_template("error.html")
            .and_then(|t| t.render(context! { status => status.as_u16(), message => &message }))
            .unwrap_or_else(|_| format!("{} {message}", status.as_u16()));
        let mut response = (status, Html(body)).into_response();
        if let Self::Unavailable {
            retry_after_seconds,
            ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response
    }
}

pub type WebResult<T = Response> = Result<T, WebError>;

/// Percent-encodes a URL component (query values, `next` targets).
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A project as the navigation shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectLink {
    pub id: i64,
    pub name: String,
}

impl From<&Project> for ProjectLink {
    fn from(project: &Project) -> Self {
        Self {
            id: project.id.0,
            name: project.name.as_str().to_string(),
        }
    }
}

/// Renders a page inside the layout: navigation, the user, the CSRF token and any flash.
pub async fn render_page(
    state: &AppState,
    user: &CurrentUser,
    project: Option<&Project>,
    section: &str,
    template: &str,
    page: Value,
) -> WebResult {
    let projects: Vec<ProjectLink> = state
        .store
        .project_list()
        .await?
        .iter()
        .map(ProjectLink::from)
        .collect();
    let layout = context! {
        user => context! {
            name => user.session.user.username.as_str(),
            role => user.session.user.role.as_str(),
            is_admin => user.session.user.role == Role::Admin,
            can_promote => user.session.user.role.includes(Role::MlEngineer),
        },
        csrf => user.session.csrf_token.as_str(),
        projects => Serde(&projects),
        project => Serde(project.map(ProjectLink::from)),
        section => section,
        flash => user.flash.as_ref().map(|(kind, message)| context! { kind => kind, message => message }),
    };
    let html = TEMPLATES
        .get_template(template)?
        .render(context! { layout => layout, ..page })?;
    let mut response = Html(html).into_response();
    if user.flash.is_some() {
        // Shown once: the next page starts without it.
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static("tagger_flash=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
        );
    }
    Ok(response)
}

/// Redirects after a form (303, so a reload does not resubmit) with a message for the next page.
pub fn redirect_with_flash(to: &str, kind: &str, message: &str) -> Response {
    let value = hex_encode(format!("{kind}:{message}").as_bytes());
    let mut response = Redirect::to(to).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "tagger_flash={value}; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
    )) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Loads the project a URL names.
pub async fn load_project(state: &AppState, id: i64) -> WebResult<Project> {
    Ok(state.store.project(ProjectId(id)).await?)
}

/// Refuses the action unless the user's role includes `need`; checked in every handler that
/// changes something, whatever the page showed.
pub fn require(user: &CurrentUser, need: Role) -> WebResult<()> {
    let have = user.session.user.role;
    if have.includes(need) {
        Ok(())
    } else {
        Err(WebError::Forbidden { have, need })
    }
}

/// A form field that may be left empty: empty means absent.
pub fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A field holding a row id a select list offered (a tag, a model version); `missing` says
/// what to choose when it is absent or not a number.
pub fn id_field(value: Option<&str>, missing: impl FnOnce() -> String) -> WebResult<i64> {
    value
        .and_then(|v| v.trim().parse::<i64>().ok())
        .ok_or_else(|| WebError::BadRequest(missing()))
}

/// The items of a list typed into one field, split on any of `separators`, trimmed, empty
/// ones dropped.
pub fn list_field(value: Option<&str>, separators: &[char]) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(separators)
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}
