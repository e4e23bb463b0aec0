//! Logins, sessions and CSRF. Passwords are argon2id hashes; a session is a random 256-bit
//! token in an HttpOnly, SameSite=Lax cookie (Secure when `secure_cookies` says TLS is in
//! front) of which the database keeps only a SHA-256; every POST form carries the session's
//! CSRF token, compared on the server; the login form carries a token the server signed
//! (`login_csrf`). Failed logins are limited (`login_limits`) and password hashes capped
//! (`password_hashing`). Passwords are taken exactly as typed, never trimmed.

use super::login_csrf::{LoginCsrf, TOKEN_LIFETIME_SECONDS};
use super::login_limits::{Limited, LoginLimiter};
use super::password_hashing::{BUSY_RETRY_AFTER_SECONDS, HashingBusy};
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
use datasets::store::prelude::*;
use datasets::{NewSession, Session, Username};
use minijinja::context;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

/// The session cookie.
pub const SESSION_COOKIE: &str = "tagger_session";
/// The cookie the login form's CSRF token is checked against (no session exists yet).
const LOGIN_CSRF_COOKIE: &str = "tagger_login_csrf";
/// How long a login lasts.
pub const SESSION_HOURS: i64 = 12;

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

    /// The signed-in person as the actor of a change (histories, the audit log).
    pub fn actor(&self) -> datasets::Actor {
        datasets::Actor::User(self.username().to_string())
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

/// Only a path on this site is followed after a login, never another site: one leading
/// `/` and not `//`, and no backslash or control character anywhere, since browsers turn
/// `/\evil.example` into `//evil.example` and drop tabs and newlines (`/\t/evil.example`).
/// Anything else goes to the home page. Non-ASCII characters are percent-encoded, so the
/// target is always a valid `Location` header.
fn safe_next(next: Option<&str>) -> String {
    let local = |path: &str| {
        path.starts_with('/')
            && !path.starts_with("//")
            && !path.chars().any(|c| c == '\\' || c.is_control())
    };
    match next {
        Some(path) if local(path) => {
            let mut target = String::with_capacity(path.len());
            for c in path.chars() {
                if c.is_ascii() {
                    target.push(c);
                } else {
                    for byte in c.encode_utf8(&mut [0; 4]).bytes() {
                        target.push_str(&format!("%{byte:02X}"));
                    }
                }
            }
            target
        }
        _ => "/".to_string(),
    }
}

/// A 303 to a target `safe_next` produced.
fn redirect_to(target: &str) -> axum::response::Response {
    let location = HeaderValue::from_str(target).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn login_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<Arc<LoginCsrf>>,
    Query(query): Query<LoginQuery>,
) -> WebResult {
    login_form(&state, &csrf, query.next.as_deref(), None, StatusCode::OK).await
}

async fn login_form(
    state: &AppState,
    csrf: &LoginCsrf,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> WebResult {
    let token = csrf.issue(&state.store).await?;
    let html = super::TEMPLATES
        .get_template("login.html")?
        .render(context! {
            csrf => &token,
            next => safe_next(next),
            error => error,
        })?;
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(state, LOGIN_CSRF_COOKIE, &token, TOKEN_LIFETIME_SECONDS)?,
    );
    Ok(response)
}

/// The login form again with `Retry-After`: too many failures (429) or no hashing slot (503).
async fn login_form_retry_later(
    state: &AppState,
    csrf: &LoginCsrf,
    next: Option<&str>,
    error: &str,
    status: StatusCode,
    retry_after: StdDuration,
) -> WebResult {
    let mut response = login_form(state, csrf, next, Some(error), status).await?;
    // Whole seconds, rounded up: a client that waits that long is not refused again.
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: Option<String>,
    next: Option<String>,
}

/// The key failed logins are counted under: the account as the store folds it, or one shared
/// key for input that cannot be a username (which matches no account either way).
fn account_key(username: &str) -> String {
    Username::parse(username).map_or_else(|_| "(not a username)".to_string(), |u| u.folded())
}

pub async fn login(
    State(state): State<AppState>,
    Extension(limiter): Extension<Arc<LoginLimiter>>,
    Extension(csrf): Extension<Arc<LoginCsrf>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> WebResult {
    // The cookie and the form must carry the same token, and the server must have signed it:
    // a page elsewhere can neither read the cookie nor forge a token.
    let token = match (cookie(&headers, LOGIN_CSRF_COOKIE), form.csrf.as_deref()) {
        (Some(expected), Some(given)) if datasets::api_key::hashes_match(expected, given) => given,
        _ => return Err(WebError::BadCsrf),
    };
    if !csrf.verify(&state.store, token).await? {
        return Err(WebError::BadCsrf);
    }
    let next = form.next.as_deref();
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |a| a.0.ip().to_string());
    // Counted as failed before the slow hash, so parallel attempts cannot all slip past the
    // limit while their hashes run; refunded below when the attempt succeeds.
    let attempt = match limiter.reserve(&account_key(&form.username), &address) {
        Ok(attempt) => attempt,
        Err(Limited { limit, retry_after }) => {
            tracing::warn!(%address, limit, "login refused: too many failures");
            return login_form_retry_later(
                &state,
                &csrf,
                next,
                "Too many failed logins: wait a while and try again.",
                StatusCode::TOO_MANY_REQUESTS,
                retry_after,
            )
            .await;
        }
    };
    let credentials = match Username::parse(&form.username) {
        Ok(username) => match state.store.user_credentials(&username).await {
            Ok(credentials) => credentials,
            Err(error) => {
                limiter.refund(attempt);
                return Err(error.into());
            }
        },
        Err(_) => None,
    };
    let hash = credentials
        .as_ref()
        .map_or_else(|| DUMMY_HASH.clone(), |c| c.password_hash.clone());
    let matches = match state.password_hashing.verify(form.password, hash).await {
        Ok(matches) => matches,
        Err(HashingBusy) => {
            limiter.refund(attempt);
            return login_form_retry_later(
                &state,
                &csrf,
                next,
                &HashingBusy.to_string(),
                StatusCode::SERVICE_UNAVAILABLE,
                StdDuration::from_secs(BUSY_RETRY_AFTER_SECONDS),
            )
            .await;
        }
    };
    let Some(credentials) = credentials.filter(|_| matches) else {
        limiter.fail(attempt);
        return login_form(
            &state,
            &csrf,
            next,
            Some("Wrong username or password."),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    };
    limiter.succeed(attempt);
    let target = safe_next(next);
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
    let mut response = redirect_to(&target);
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
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example")), "/");
        assert_eq!(safe_next(Some("/p\r\nSet-Cookie: x=1")), "/");
        assert_eq!(safe_next(Some("/x\u{7f}")), "/");
        assert_eq!(safe_next(Some("evil.example")), "/");
        assert_eq!(safe_next(Some("")), "/");
        assert_eq!(
            safe_next(Some("/p/1/tickets?q=café")),
            "/p/1/tickets?q=caf%C3%A9"
        );
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn accounts_are_counted_case_insensitively_and_junk_under_one_key() {
        assert_eq!(account_key(" Alice "), "alice");
        assert_eq!(account_key("a b"), account_key("<script>"));
    }
}
