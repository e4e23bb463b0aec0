//! API-key authentication and authorization. Every route states its `Access` where it is
//! registered (`openapi::Routes::add`), and the registration wraps the handler so the check
//! runs before anything else; handlers then take `Authorized<S>` or `InstanceAdmin` for the
//! checked key. No key, a malformed, unknown or revoked one is 401; a key of another project,
//! of the wrong kind or without the route's scope is 403.

use super::ApiError;
use super::projects::find_project;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use datasets::store::prelude::*;
use datasets::{ApiKey, KeyGrant, Project, Scope};
use std::marker::PhantomData;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, metrics and the API document.
    Open,
    /// A key of the project in the path that carries this scope.
    Project(Scope),
    /// An instance-admin key (bound to no project).
    InstanceAdmin,
    /// A help desk's signed webhook delivery: no key; the handler verifies the connector's
    /// HMAC signature over the raw body before anything is read or stored.
    VendorSignature,
}

/// The scopes as types, so a handler states in its signature what its key must allow.
pub mod scope {
    use datasets::Scope;

    /// A scope a handler requires.
    pub trait RequiredScope: Send + Sync + 'static {
        const SCOPE: Scope;
    }

    macro_rules! scopes {
        ($($name:ident => $scope:expr),* $(,)?) => {$(
            #[doc = concat!("The `", stringify!($name), "` scope.")]
            pub struct $name;
            impl RequiredScope for $name {
                const SCOPE: Scope = $scope;
            }
        )*};
    }
    scopes!(
        Tag => Scope::Tag,
        Read => Scope::Read,
        Label => Scope::Label,
        Train => Scope::Train,
        Admin => Scope::Admin,
    );
}

/// A request's checked key and, for a project route, its project; the route's guard leaves
/// it in the request's extensions so the handler's extractor does not look it up again.
#[derive(Clone)]
pub(super) struct Caller {
    key: ApiKey,
    project: Option<Project>,
}

/// The project a request may act on, proven by a key of that project with scope `S`.
pub struct Authorized<S> {
    pub project: Project,
    pub key: ApiKey,
    scope: PhantomData<S>,
}

impl<S> Authorized<S> {
    /// Who did it, for labels, leases and the registry's history: the key, never the body.
    pub fn actor(&self) -> String {
        self.key.actor()
    }

    /// The key as the actor of a change (the audit log names it by id).
    pub fn audit_actor(&self) -> datasets::Actor {
        datasets::Actor::api_key(&self.key)
    }
}

/// A request made with an instance-admin key.
pub struct InstanceAdmin {
    pub key: ApiKey,
}

impl InstanceAdmin {
    /// The key as the actor of a change (the audit log names it by id).
    pub fn audit_actor(&self) -> datasets::Actor {
        datasets::Actor::api_key(&self.key)
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The token of an `Authorization: Bearer …` header; the scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer tt_…` is as good as `Bearer tt_…`.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The live key the request carries.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<ApiKey, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("send an API key: Authorization: Bearer tt_…"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(bearer_token)
        .ok_or_else(|| unauthorized("the Authorization header must be: Bearer tt_…"))?;
    state
        .store
        .authenticate_api_key(token)
        .await?
        .ok_or_else(|| unauthorized("the API key is unknown or revoked"))
}

/// The project named in the path, if the key is one of its keys with `scope`.
async fn authorize_project(
    key: &ApiKey,
    scope: Scope,
    parts: &mut Parts,
    state: &AppState,
) -> Result<Project, ApiError> {
    let KeyGrant::Project { project_id, scopes } = &key.grant else {
        return Err(forbidden(
            "an instance-admin key creates and lists projects; inside a project use a key of that project",
        ));
    };
    let Path(params): Path<Vec<(String, String)>> = Path::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let name = params
        .iter()
        .find(|(name, _)| name == "project")
        .map(|(_, value)| value.as_str())
        .ok_or_else(|| ApiError::not_found("no project in the path"))?;
    let project = find_project(&state.store, name).await?;
    if project.id != *project_id {
        return Err(forbidden(format!(
            "this API key belongs to another project, not {name:?}"
        )));
    }
    if !scopes.contains(scope) {
        return Err(forbidden(format!(
            "this API key lacks the `{scope}` scope this route needs (it has: {})",
            scopes.to_string().replace(',', ", ")
        )));
    }
    Ok(project)
}

/// Checks a request against a route's access; `None` for an open route.
pub(super) async fn authorize(
    access: Access,
    parts: &mut Parts,
    state: &AppState,
) -> Result<Option<Caller>, ApiError> {
    let scope = match access {
        Access::Open | Access::VendorSignature => return Ok(None),
        Access::InstanceAdmin => {
            let key = authenticate(parts, state).await?;
            if key.grant != KeyGrant::InstanceAdmin {
                return Err(forbidden(
                    "this route needs an instance-admin key (tagger keys create --instance-admin); a project's key cannot use it",
                ));
            }
            return Ok(Some(Caller { key, project: None }));
        }
        Access::Project(scope) => scope,
    };
    let key = authenticate(parts, state).await?;
    let project = authorize_project(&key, scope, parts, state).await?;
    // The request's span (`http_trace`) now says which project it acts on.
    tracing::Span::current().record("project", project.id.0);
    Ok(Some(Caller {
        key,
        project: Some(project),
    }))
}

impl<S: scope::RequiredScope> FromRequestParts<AppState> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The route's guard has usually checked already; the handler's own scope must hold
        // too, and a handler registered without a guard still checks everything itself.
        let checked = parts.extensions.get::<Caller>().and_then(|caller| {
            let project = caller.project.clone()?;
            match &caller.key.grant {
                KeyGrant::Project { scopes, .. } if scopes.contains(S::SCOPE) => {
                    Some((caller.key.clone(), project))
                }
                _ => None,
            }
        });
        let (key, project) = match checked {
            Some(checked) => checked,
            None => {
                let key = authenticate(parts, state).await?;
                let project = authorize_project(&key, S::SCOPE, parts, state).await?;
                (key, project)
            }
        };
        Ok(Self {
            project,
            key,
            scope: PhantomData,
        })
    }
}

impl FromRequestParts<AppState> for InstanceAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = match parts.extensions.get::<Caller>() {
            Some(caller) if caller.key.grant == KeyGrant::InstanceAdmin => caller.clone(),
            _ => authorize(Access::InstanceAdmin, parts, state)
                .await?
                .ok_or_else(|| forbidden("this route needs an instance-admin key"))?,
        };
        Ok(Self { key: caller.key })
    }
}

/// Refuses a `user` field: the actor of a write is the key that makes it, so a client
/// cannot act in someone else's name.
pub(super) fn refuse_user_field<T>(user: &Option<T>) -> Result<(), ApiError> {
    match user {
        Some(_) => Err(ApiError::invalid(
            "`user` is not accepted: the actor is taken from the API key (api-key:<key name>)",
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        for header in [
            "Bearer tt_a",
            "bearer tt_a",
            "BEARER  tt_a ",
            "  bEaReR\ttt_a",
        ] {
            assert_eq!(bearer_token(header), Some("tt_a"), "{header:?}");
        }
        for header in ["Basic tt_a", "Bearer", "Bearer   ", "tt_a", "Bearertt_a"] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }
}
