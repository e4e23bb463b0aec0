//! The route table and the OpenAPI document built from it. Every route is registered through
//! `Routes::add` with its summary and its access, so the document served at `/v1/openapi.json`
//! cannot list a route that does not exist or miss one that does (a test checks both
//! directions), and no route can be registered without saying who may call it: the
//! registration wraps the handler in that check.

use super::auth::{Access, authorize};
use super::error::ApiErrorBody;
use crate::state::AppState;
use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use datasets::{ProjectName, TagName};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::pin::Pin;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// One documented endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Its JSON request body, if it takes one.
    pub body: Option<Body>,
    /// Its query parameters.
    pub query: Option<Params>,
    /// What it answers when it succeeds, by status.
    pub answers: Vec<(StatusCode, Answer)>,
    /// Failures beyond the ones every operation of its kind has (see `error_statuses`).
    pub failures: Vec<StatusCode>,
    /// Operations its success answers lead to (OpenAPI links, which stateful clients and
    /// fuzzers follow: create a tag, then edit it).
    pub links: Vec<Link>,
}

/// An OpenAPI link: the operation at `method` `path` takes `parameters` (name and runtime
/// expression, e.g. `("ticket", "$response.body#/id")`) from this one's answer; the project
/// in the path carries over.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub name: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub parameters: &'static [(&'static str, &'static str)],
}

/// A request body: its schema, and whether it may be left out.
#[derive(Debug, Clone, Copy)]
pub struct Body {
    pub schema: SchemaOf,
    pub required: bool,
}

/// A type's schema, to be put in the document: how to refer to it and the named schemas it
/// needs in `components.schemas`.
#[derive(Clone, Copy)]
pub struct SchemaOf {
    pub name: fn() -> Option<String>,
    reference: fn() -> RefOr<Schema>,
    collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl std::fmt::Debug for SchemaOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SchemaOf").field(&(self.name)()).finish()
    }
}

impl SchemaOf {
    /// A named type: referred to by `$ref`, its schema under its name.
    pub fn named<T: ToSchema>() -> Self {
        Self {
            name: || Some(T::name().into_owned()),
            reference: || Ref::from_schema_name(T::name()).into(),
            collect: |schemas| {
                schemas.push((T::name().into_owned(), T::schema()));
                T::schemas(schemas);
            },
        }
    }

    /// A JSON array of a named type.
    pub fn list_of<T: ToSchema>() -> Self {
        Self {
            name: || None,
            reference: || {
                ArrayBuilder::new()
                    .items(Ref::from_schema_name(T::name()))
                    .into()
            },
            collect: |schemas| {
                schemas.push((T::name().into_owned(), T::schema()));
                T::schemas(schemas);
            },
        }
    }
}

impl SchemaOf {
    /// Any JSON object: answers whose shape is another's (a vendor's webhook protocol, the
    /// OpenAPI document itself).
    pub fn any_object() -> Self {
        Self {
            name: || None,
            reference: || {
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::Object))
                    .into()
            },
            collect: |_| {},
        }
    }
}

/// Query parameters, from a type that derives `IntoParams`.
#[derive(Clone, Copy)]
pub struct Params {
    parameters: fn() -> Vec<Parameter>,
    collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Params")
    }
}

/// What a successful answer carries.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// No body (204, and 202 with nothing to say).
    Empty,
    Json(SchemaOf),
    /// `text/plain` (Prometheus metrics).
    Text,
}

/// A router that remembers what it was given.
pub struct Routes {
    router: Router<AppState>,
    pub endpoints: Vec<Endpoint>,
}

impl Routes {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            endpoints: Vec::new(),
        }
    }

    pub fn add<H, T>(
        mut self,
        method: &'static str,
        path: &'static str,
        summary: &'static str,
        access: Access,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "PATCH" => MethodFilter::PATCH,
            _ => MethodFilter::DELETE,
        };
        let route = match access {
            Access::Open => on(filter, handler),
            _ => on(filter, Guarded { handler, access }),
        };
        self.router = self.router.route(path, route);
        self.endpoints.push(Endpoint {
            method,
            path,
            summary,
            access,
            body: None,
            query: None,
            answers: Vec::new(),
            failures: Vec::new(),
            links: Vec::new(),
        });
        self
    }

    fn last(&mut self) -> &mut Endpoint {
        self.endpoints
            .last_mut()
            .expect("a route is described after it is added")
    }

    /// The route added last takes this JSON body.
    pub fn body<B: ToSchema>(mut self) -> Self {
        self.last().body = Some(Body {
            schema: SchemaOf::named::<B>(),
            required: true,
        });
        self
    }

    /// The route added last takes this JSON body or none (its defaults).
    pub fn optional_body<B: ToSchema>(mut self) -> Self {
        self.last().body = Some(Body {
            schema: SchemaOf::named::<B>(),
            required: false,
        });
        self
    }

    /// The route added last reads these query parameters.
    pub fn query<Q: IntoParams + ToSchema>(mut self) -> Self {
        self.last().query = Some(Params {
            parameters: || Q::into_params(|| Some(ParameterIn::Query)),
            collect: Q::schemas,
        });
        self
    }

    /// The route added last answers `status` with a `R` in JSON.
    pub fn answers<R: ToSchema>(mut self, status: StatusCode) -> Self {
        self.last()
            .answers
            .push((status, Answer::Json(SchemaOf::named::<R>())));
        self
    }

    /// The route added last answers `status` with a JSON array of `R`.
    pub fn answers_list<R: ToSchema>(mut self, status: StatusCode) -> Self {
        self.last()
            .answers
            .push((status, Answer::Json(SchemaOf::list_of::<R>())));
        self
    }

    /// The route added last answers `status` with a JSON object of no fixed shape.
    pub fn answers_object(mut self, status: StatusCode) -> Self {
        self.last()
            .answers
            .push((status, Answer::Json(SchemaOf::any_object())));
        self
    }

    /// The route added last answers `status` with no body, or in plain text.
    pub fn answers_without_json(mut self, status: StatusCode, answer: Answer) -> Self {
        self.last().answers.push((status, answer));
        self
    }

    /// The route added last can also fail with these statuses.
    pub fn fails(mut self, statuses: &[StatusCode]) -> Self {
        self.last().failures.extend_from_slice(statuses);
        self
    }

    /// The success answers of the route added last lead to another operation.
    pub fn link(
        mut self,
        name: &'static str,
        method: &'static str,
        path: &'static str,
        parameters: &'static [(&'static str, &'static str)],
    ) -> Self {
        self.last().links.push(Link {
            name,
            method,
            path,
            parameters,
        });
        self
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<Endpoint>) {
        (self.router, self.endpoints)
    }
}

/// A handler behind its route's access check: the check runs before any extractor, so a
/// refused request never reaches the handler or its body parsing.
#[derive(Clone)]
struct Guarded<H> {
    handler: H,
    access: Access,
}

impl<H, T> Handler<T, AppState> for Guarded<H>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    type Future = Pin<Box<dyn Future<Output = Response> + Send>>;

    fn call(self, request: Request, state: AppState) -> Self::Future {
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match authorize(self.access, &mut parts, &state).await {
                Ok(caller) => {
                    if let Some(caller) = caller {
                        parts.extensions.insert(caller);
                    }
                    self.handler
                        .call(Request::from_parts(parts, body), state)
                        .await
                }
                Err(error) => error.into_response(),
            }
        })
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

/// The OpenAPI 3.1 document of the given endpoints.
pub fn document(endpoints: &[Endpoint]) -> Value {
    let mut paths = Map::new();
    let mut named: Vec<(String, RefOr<Schema>)> = Vec::new();
    named.push((ApiErrorBody::name().into_owned(), ApiErrorBody::schema()));
    ApiErrorBody::schemas(&mut named);
    // Path parameters (`{project}`) and query parameters refer to these by name.
    named.push((ProjectName::name().into_owned(), ProjectName::schema()));
    named.push((TagName::name().into_owned(), TagName::schema()));
    for endpoint in endpoints {
        let item = paths
            .entry(endpoint.path.to_string())
            .or_insert_with(|| json!({}));
        item[endpoint.method.to_lowercase()] = operation(endpoint, &mut named);
    }
    // Types are collected once per use; the first of each name is kept (they are the same).
    let mut schemas = Map::new();
    for (name, schema) in named {
        if schemas.contains_key(&name) {
            continue;
        }
        schemas.insert(name, to_json(&schema));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Smart Ticket Tagger API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "See docs/api.md. Every error is an `Error` body; 503s carry `Retry-After`.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An API key, tt_…: a project's key with scopes (tag, read, label, train, admin), or an instance-admin key. The names listed in an operation's requirement are the scope it needs."}},
            "schemas": schemas,
        }
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A path parameter's schema, by its name: projects by name, everything else by numeric id
/// except a connector's name. A project's name is trimmed and checked by the server (an
/// invalid one is 422): its `ProjectName` pattern is not repeated here, because Schemathesis'
/// regex engine reads it differently in a path and calls valid names invalid.
fn path_parameter(name: &str) -> Value {
    match name {
        "project" => {
            json!({"type": "string", "minLength": 1, "description": "A project's name (any case)."})
        }
        "name" => json!({"type": "string", "minLength": 1}),
        _ => json!({"type": "integer", "format": "int64"}),
    }
}

/// The failures an endpoint can answer, with what each means there: the ones its kind
/// implies (a key check, a project in the path, a body, a query, the database) and its own.
fn error_statuses(endpoint: &Endpoint) -> Vec<(StatusCode, &'static str)> {
    let mut statuses: Vec<(StatusCode, &'static str)> = Vec::new();
    let path_ids = endpoint.path.contains("{tag}")
        || endpoint.path.contains("{group}")
        || endpoint.path.contains("{ticket}")
        || endpoint.path.contains("{version}")
        || endpoint.path.contains("{run}");
    if endpoint.body.is_some() || endpoint.query.is_some() || path_ids {
        statuses.push((
            StatusCode::BAD_REQUEST,
            "malformed JSON, or a path or query parameter of the wrong type",
        ));
    }
    match endpoint.access {
        Access::Open => {}
        Access::VendorSignature => statuses.push((
            StatusCode::UNAUTHORIZED,
            "a missing or wrong signature, or no connector of this name",
        )),
        Access::Project(_) | Access::InstanceAdmin => {
            statuses.push((
                StatusCode::UNAUTHORIZED,
                "no API key, or an unknown or revoked one",
            ));
            statuses.push((
                StatusCode::FORBIDDEN,
                "a key of another project, of the wrong kind, or without the scope",
            ));
        }
    }
    if matches!(endpoint.access, Access::Project(_)) {
        statuses.push((
            StatusCode::NOT_FOUND,
            "no such project, or nothing with this id in it",
        ));
    }
    if endpoint.body.is_some() {
        statuses.push((
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body or a batch in it is over its limit",
        ));
        statuses.push((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a body sent without `content-type: application/json`",
        ));
    }
    if endpoint.body.is_some() || matches!(endpoint.access, Access::Project(_)) {
        statuses.push((
            StatusCode::UNPROCESSABLE_ENTITY,
            "the request breaks a rule or a limit; the message says which",
        ));
    }
    for status in &endpoint.failures {
        statuses.push((*status, failure_description(*status)));
    }
    if endpoint.access != Access::Open {
        statuses.push((
            StatusCode::INTERNAL_SERVER_ERROR,
            "a fault on the server; retrying will not help",
        ));
        statuses.push((
            StatusCode::SERVICE_UNAVAILABLE,
            "the database or the job queue cannot be reached now; retry after `Retry-After` seconds",
        ));
    }
    statuses.sort_by_key(|(status, _)| *status);
    statuses.dedup_by_key(|(status, _)| *status);
    statuses
}

/// What an endpoint's own failure means.
fn failure_description(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => "not found",
        409 => {
            "conflicts with what is stored (a duplicate, a state that does not allow it, no model in service)"
        }
        413 => "over a limit",
        422 => "the request breaks a rule or a limit; the message says which",
        503 => "not available now; retry after `Retry-After` seconds",
        _ => "see the message",
    }
}

fn success_description(status: StatusCode) -> &'static str {
    match status.as_u16() {
        201 => "created",
        202 => "accepted: queued",
        204 => "done; no body",
        _ => "success",
    }
}

/// One operation of the document.
fn operation(endpoint: &Endpoint, named: &mut Vec<(String, RefOr<Schema>)>) -> Value {
    let mut parameters: Vec<Value> = endpoint
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": path_parameter(name)}))
        .collect();
    if let Some(query) = endpoint.query {
        parameters.extend((query.parameters)().iter().map(to_json));
        (query.collect)(named);
    }
    let mut links = Map::new();
    for link in &endpoint.links {
        let mut parameters: Map<String, Value> = link
            .parameters
            .iter()
            .map(|(name, expression)| (name.to_string(), json!(expression)))
            .collect();
        if link.path.contains("{project}") && endpoint.path.contains("{project}") {
            parameters.insert("project".into(), json!("$request.path.project"));
        }
        let target = Endpoint {
            method: link.method,
            path: link.path,
            ..endpoint.clone()
        };
        links.insert(
            link.name.to_string(),
            json!({"operationId": operation_id(&target), "parameters": parameters}),
        );
    }
    let mut responses = Map::new();
    for (status, answer) in &endpoint.answers {
        let mut response = json!({"description": success_description(*status)});
        match answer {
            Answer::Empty => {}
            Answer::Text => {
                response["content"] = json!({"text/plain": {"schema": {"type": "string"}}});
            }
            Answer::Json(schema) => {
                (schema.collect)(named);
                response["content"] =
                    json!({"application/json": {"schema": to_json(&(schema.reference)())}});
                if !links.is_empty() {
                    response["links"] = Value::Object(links.clone());
                }
            }
        }
        responses.insert(status.as_u16().to_string(), response);
    }
    let error = json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", ApiErrorBody::name())}}});
    for (status, description) in error_statuses(endpoint) {
        let mut response = json!({"description": description, "content": error});
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response["headers"] = json!({"Retry-After": {
                "description": "seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 0},
            }});
        }
        responses.insert(status.as_u16().to_string(), response);
    }
    // The scope name (or `instance-admin`) and what a person reads about it.
    let requirement = match endpoint.access {
        Access::Open | Access::VendorSignature => None,
        Access::Project(scope) => Some((
            scope.as_str(),
            format!("a key of this project with the `{scope}` scope"),
        )),
        Access::InstanceAdmin => Some(("instance-admin", "an instance-admin key".to_string())),
    };
    let security = match &requirement {
        Some((scope, _)) => json!([{ "apiKey": [scope] }]),
        None => json!([]),
    };
    let mut operation = json!({
        "operationId": operation_id(endpoint),
        "summary": endpoint.summary,
        "parameters": parameters,
        "responses": responses,
        "security": security,
    });
    if let Some((scope, requirement)) = requirement {
        operation["description"] = json!(format!("Needs {requirement}."));
        operation["x-required-scope"] = json!(scope);
    }
    if let Some(body) = endpoint.body {
        (body.schema.collect)(named);
        operation["requestBody"] = json!({
            "required": body.required,
            "content": {"application/json": {"schema": to_json(&(body.schema.reference)())}}
        });
    }
    operation
}

/// A stable id from the method and path: `post_projects_project_tags`.
pub fn operation_id(endpoint: &Endpoint) -> String {
    let mut id = endpoint.method.to_lowercase();
    for segment in endpoint
        .path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "v1")
    {
        id.push('_');
        id.extend(
            segment
                .trim_matches(|c| c == '{' || c == '}')
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}
