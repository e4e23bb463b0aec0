//! Users and roles (admins only): list, add with a password, change a role, set a password.

use super::auth::CurrentUser;
use super::password_hashing::BUSY_RETRY_AFTER_SECONDS;
use super::{WebError, WebResult, non_empty, redirect_with_flash, render_page};
use crate::state::AppState;
use axum::extract::{Form, Path, State};
use datasets::store::prelude::*;
use datasets::{AuditAction, NewUser, Role, Username};
use minijinja::{Value, context};
use serde::Deserialize;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Why a new password is refused, if it is: too short, or it starts or ends with whitespace.
/// A password is kept exactly as typed and login compares it as typed, so whitespace at its
/// ends is refused rather than trimmed: nobody is left with a password that differs from
/// what they believe they set. The admin page and `tagger users add` share this rule.
pub fn new_password_problem(password: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Some(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        ))
    } else if password.trim() != password {
        Some("a password may not begin or end with a space or other whitespace".into())
    } else {
        None
    }
}

/// Checks a new password and hashes it, under the cap on concurrent hashes.
pub async fn new_password_hash(state: &AppState, password: &str) -> WebResult<String> {
    if let Some(problem) = new_password_problem(password) {
        return Err(WebError::BadRequest(problem));
    }
    state
        .password_hashing
        .hash(password.to_string())
        .await
        .map_err(|busy| WebError::Unavailable {
            message: busy.to_string(),
            retry_after_seconds: BUSY_RETRY_AFTER_SECONDS,
        })?
        .map_err(WebError::Internal)
}

pub async fn list(State(state): State<AppState>, user: CurrentUser) -> WebResult {
    super::require(&user, Role::Admin)?;
    let users: Vec<Value> = state
        .store
        .users()
        .await?
        .iter()
        .map(|u| {
            context! {
                id => u.id,
                name => u.username.as_str(),
                role => u.role.as_str(),
                created => u.created_at.format("%Y-%m-%d").to_string(),
            }
        })
        .collect();
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    render_page(
        &state,
        &user,
        None,
        "admin",
        "users.html",
        context! { users => users, roles => roles, min_password => MIN_PASSWORD_CHARS },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    csrf: Option<String>,
    username: String,
    role: String,
    password: String,
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<CreateForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let username =
        Username::parse(&form.username).map_err(|e| WebError::BadRequest(e.to_string()))?;
    let role: Role = form.role.parse().map_err(WebError::BadRequest)?;
    let password_hash = new_password_hash(&state, &form.password).await?;
    let created = state
        .store
        .create_user(&NewUser {
            username,
            role,
            password_hash,
        })
        .await?;
    crate::audit_trail::record(
        &state.store,
        &user.actor(),
        AuditAction::UserCreate,
        None,
        crate::audit_trail::user_target(created.id, created.username.as_str()),
        serde_json::json!({ "role": created.role.as_str() }),
    )
    .await;
    Ok(redirect_with_flash(
        "/admin/users",
        "ok",
        &format!("User {} added as {}.", created.username, created.role),
    ))
}

#[derive(Debug, Deserialize)]
pub struct UpdateForm {
    csrf: Option<String>,
    role: Option<String>,
    password: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Form(form): Form<UpdateForm>,
) -> WebResult {
    user.check_csrf(non_empty(&form.csrf))?;
    super::require(&user, Role::Admin)?;
    let before = state
        .store
        .users()
        .await?
        .into_iter()
        .find(|u| u.id == id)
        .ok_or_else(|| WebError::NotFound(format!("user {id}")))?;
    let target = crate::audit_trail::user_target(id, before.username.as_str());
    if let Some(role) = non_empty(&form.role) {
        let role: Role = role.parse().map_err(WebError::BadRequest)?;
        if id == user.session.user.id && role != Role::Admin {
            // Otherwise the last admin could lock everyone out of the admin pages.
            return Err(WebError::BadRequest(
                "you cannot take away your own admin role".into(),
            ));
        }
        let changed = state.store.set_user_role(id, role).await?;
        if changed.role != before.role {
            crate::audit_trail::record(
                &state.store,
                &user.actor(),
                AuditAction::UserRole,
                None,
                &*target,
                serde_json::json!({ "from": before.role.as_str(), "to": changed.role.as_str() }),
            )
            .await;
        }
    }
    // Not `non_empty`, which trims: the password is checked as typed. Empty means unchanged.
    if let Some(password) = form.password.as_deref().filter(|p| !p.is_empty()) {
        let hash = new_password_hash(&state, password).await?;
        state.store.set_user_password(id, &hash).await?;
        // Only that it was set: never the password or its hash.
        crate::audit_trail::record(
            &state.store,
            &user.actor(),
            AuditAction::UserPassword,
            None,
            target,
            serde_json::json!({ "sessions_ended": true }),
        )
        .await;
    }
    Ok(redirect_with_flash("/admin/users", "ok", "User saved."))
}
