//! Logins, sessions and CSRF. Passwords are argon2id hashes; a session is a random 256-bit
//! token in an HttpOnly, SameSite=Lax cookie (Secure when `secure_cookies` says TLS is in
//! front) of which the database keeps only a SHA-256; every POST form carries the session's
//! CSRF token, compared on the server. Failed logins are limited per username and address.

use super::{WebError, WebResult, hex_decode, hex_encode, non_empty, render_page};
use crate::state::AppState;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Extension;
use axum::extract::{ConnectInfo, Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect};
use chrono::{Duration, Utc};
use datasets::{NewSession, Session, Store, Username};
use minijinja::context;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The session cookie.
pub const SESSION_COOKIE: &str = "tagger_session";
/// The cookie the login form's CSRF token is checked against (no session exists yet).
const LOGIN_CSRF_COOKIE: &str = "tagger_login_csrf";
/// How long a login lasts.
pub const SESSION_HOURS: i64 = 12;
/// Failed logins allowed per username and address within `LOGIN_WINDOW`.
pub const MAX_FAILED_LOGINS: usize = 5;
const LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches a stored PHC hash; a malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checked when the username is unknown, so a login takes as long either way and does not
/// reveal which usernames exist.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("not a real password").unwrap_or_default());

fn random_token() -> WebResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| WebError::Internal(format!("no randomness: {e}")))?;
    Ok(hex_encode(&bytes))
}

/// Failed login attempts in memory, per (username, address). One process's view: behind
/// several replicas an attacker gets the limit once per replica, which still stops guessing.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<(String, String), Vec<Instant>>>,
}

impl LoginLimiter {
    fn recent(&self, key: &(String, String)) -> usize {
        let Ok(mut failures) = self.failures.lock() else {
            return 0;
        };
        let now = Instant::now();
        match failures.get_mut(key) {
            Some(times) => {
                times.retain(|t| now.duration_since(*t) < LOGIN_WINDOW);
                times.len()
            }
            None => 0,
        }
    }

    fn fail(&self, key: (String, String)) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.entry(key).or_default().push(Instant::now());
        }
    }

    fn succeed(&self, key: &(String, String)) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

/// Reads one cookie from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The logged-in user of a request, and a flash message waiting for them. Extracting it
/// sends anyone without a live session to the login page.
pub struct CurrentUser {
    pub session: Session,
    pub flash: Option<(String, String)>,
}

impl CurrentUser {
    pub fn username(&self) -> &str {
        self.session.user.username.as_str()
    }

    /// Refuses a form whose CSRF token is missing or not this session's.
    pub fn check_csrf(&self, given: Option<&str>) -> WebResult<()> {
        match given {
            Some(token) if datasets::api_key::hashes_match(token, &self.session.csrf_token) => {
                Ok(())
            }
            _ => Err(WebError::BadCsrf),
        }
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> WebResult<Self> {
        let next = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        // A form posted after the session ended goes back to the page, not the POST target.
        let next = if parts.method == axum::http::Method::GET {
            next
        } else {
            "/".to_string()
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(WebError::LoginRequired { next });
        };
        let session = state
            .store
            .session(&datasets::api_key::hash(token), Utc::now())
            .await?
            .ok_or(WebError::LoginRequired { next })?;
        let flash = cookie(&parts.headers, "tagger_flash")
            .and_then(hex_decode)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| {
                text.split_once(':')
                    .map(|(kind, message)| (kind.to_string(), message.to_string()))
            })
            .filter(|(kind, _)| matches!(kind.as_str(), "ok" | "error"));
        Ok(Self { session, flash })
    }
}

fn cookie_header(
    state: &AppState,
    name: &str,
    value: &str,
    max_age: i64,
) -> WebResult<HeaderValue> {
    let secure = if state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .map_err(|e| WebError::Internal(e.to_string()))
}

/// Only local paths are followed after a login, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn login_page(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
) -> WebResult {
    login_form(&state, query.next.as_deref(), None, StatusCode::OK)
}

fn login_form(
    state: &AppState,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> WebResult {
    let csrf = random_token()?;
    let html = super::TEMPLATES
        .get_template("login.html")?
        .render(context! {
            csrf => &csrf,
            next => safe_next(next),
            error => error,
        })?;
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(state, LOGIN_CSRF_COOKIE, &csrf, 3600)?,
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: Option<String>,
    next: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    Extension(limiter): Extension<Arc<LoginLimiter>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> WebResult {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE);
    match (expected, form.csrf.as_deref()) {
        (Some(expected), Some(given)) if datasets::api_key::hashes_match(expected, given) => {}
        _ => return Err(WebError::BadCsrf),
    }
    let next = form.next.as_deref();
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |a| a.0.ip().to_string());
    let key = (form.username.trim().to_lowercase(), address);
    if limiter.recent(&key) >= MAX_FAILED_LOGINS {
        return login_form(
            &state,
            next,
            Some("Too many failed logins: wait 15 minutes and try again."),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let credentials = match Username::parse(&form.username) {
        Ok(username) => state.store.user_credentials(&username).await?,
        Err(_) => None,
    };
    let password = form.password.clone();
    let hash = credentials
        .as_ref()
        .map_or_else(|| DUMMY_HASH.clone(), |c| c.password_hash.clone());
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let Some(credentials) = credentials.filter(|_| matches) else {
        limiter.fail(key);
        return login_form(
            &state,
            next,
            Some("Wrong username or password."),
            StatusCode::UNAUTHORIZED,
        );
    };
    limiter.succeed(&key);
    let token = random_token()?;
    state
        .store
        .create_session(&NewSession {
            user_id: credentials.user.id,
            token_hash: datasets::api_key::hash(&token),
            csrf_token: random_token()?,
            expires_at: Utc::now() + Duration::hours(SESSION_HOURS),
        })
        .await?;
    let mut response = Redirect::to(&safe_next(next)).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookie_header(&state, SESSION_COOKIE, &token, SESSION_HOURS * 3600)?,
    );
    headers.append(
        header::SET_COOKIE,
        cookie_header(&state, LOGIN_CSRF_COOKIE, "", 0)?,
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

pub async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        state
            .store
            .delete_session(&datasets::api_key::hash(token))
            .await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(&state, SESSION_COOKIE, "", 0)?,
    );
    Ok(response)
}

/// Used by pages that only show who is logged in (the home page lists projects).
pub async fn layout_only(
    state: &AppState,
    user: &CurrentUser,
    template: &str,
    page: minijinja::Value,
) -> WebResult {
    render_page(state, user, None, "", template, page).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsf", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse").unwrap());
    }

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/p/1/tickets?q=x")), "/p/1/tickets?q=x");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn limiter_counts_failures_per_key_and_forgets_on_success() {
        let limiter = LoginLimiter::default();
        let key = ("alice".to_string(), "1.2.3.4".to_string());
        for _ in 0..3 {
            limiter.fail(key.clone());
        }
        assert_eq!(limiter.recent(&key), 3);
        assert_eq!(limiter.recent(&("alice".into(), "5.6.7.8".into())), 0);
        limiter.succeed(&key);
        assert_eq!(limiter.recent(&key), 0);
    }
}
