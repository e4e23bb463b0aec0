//! The route table and the OpenAPI document built from it. Every route is registered through
//! `Routes::add` with its summary and its access, so the document served at `/v1/openapi.json`
//! cannot list a route that does not exist or miss one that does (a test checks both
//! directions), and no route can be registered without saying who may call it: the
//! registration wraps the handler in that check.

use super::auth::{Access, authorize};
use crate::state::AppState;
use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use datasets::ModelKind;
use serde_json::{Map, Value, json};
use std::future::Future;
use std::pin::Pin;

/// One documented endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The schema of its JSON body, by name in `components.schemas`, where one is documented.
    pub body: Option<&'static str>,
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
        });
        self
    }

    /// Documents the JSON body of the route added last, by its schema's name in
    /// `body_schemas`.
    pub fn with_body(mut self, schema: &'static str) -> Self {
        if let Some(endpoint) = self.endpoints.last_mut() {
            endpoint.body = Some(schema);
        }
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
    for endpoint in endpoints {
        let parameters: Vec<Value> = endpoint
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut responses = json!({
            "200": {"description": "success"},
            "4XX": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        });
        // The scope name (or `instance-admin`) and what a person reads about it.
        let requirement = match endpoint.access {
            Access::Open | Access::VendorSignature => None,
            Access::Project(scope) => Some((
                scope.as_str(),
                format!("a key of this project with the `{scope}` scope"),
            )),
            Access::InstanceAdmin => Some(("instance-admin", "an instance-admin key".to_string())),
        };
        let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
        let security = match &requirement {
            Some((scope, _)) => {
                responses["401"] = json!({"description": "no API key, or an unknown or revoked one", "content": error});
                responses["403"] = json!({"description": "a key of another project, of the wrong kind, or without the scope", "content": error});
                json!([{ "apiKey": [scope] }])
            }
            None if endpoint.access == Access::VendorSignature => {
                responses["401"] = json!({"description": "a missing or wrong signature, or no connector of this name", "content": error});
                json!([])
            }
            None => json!([]),
        };
        let mut operation = json!({
            "summary": endpoint.summary,
            "parameters": parameters,
            "responses": responses,
            "security": security,
        });
        if let Some((scope, requirement)) = requirement {
            operation["description"] = json!(format!("Needs {requirement}."));
            operation["x-required-scope"] = json!(scope);
        }
        if let Some(schema) = endpoint.body {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
            });
        }
        let item = paths
            .entry(endpoint.path.to_string())
            .or_insert_with(|| json!({}));
        item[endpoint.method.to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Smart Ticket Tagger API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An API key, tt_…: a project's key with scopes (tag, read, label, train, admin), or an instance-admin key. The names listed in an operation's requirement are the scope it needs."}},
            "schemas": schemas(),
        }
    })
}

/// The named schemas: the error body and the request bodies routes refer to.
fn schemas() -> Value {
    let mut schemas = body_schemas();
    schemas["Error"] = json!({
        "type": "object",
        "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}
    });
    schemas
}

/// Request bodies that `Routes::with_body` may name. Closed sets come from their registry
/// (the model kinds from `ModelKind::ALL`), so the document and the validation agree.
pub fn body_schemas() -> Value {
    let kinds: Vec<&str> = ModelKind::names().collect();
    let kind_help: Vec<String> = ModelKind::ALL
        .iter()
        .map(|kind| format!("`{kind}`: {}", kind.info().summary))
        .collect();
    json!({
        "ModelKind": {
            "type": "string",
            "enum": kinds,
            "default": ModelKind::default().as_str(),
            "description": format!("The kind of model. {}.", kind_help.join("; ")),
        },
        "TrainingRunRequest": {
            "type": "object",
            "required": ["kind"],
            "additionalProperties": false,
            "properties": {
                "kind": {"$ref": "#/components/schemas/ModelKind"},
                "params": {
                    "type": "object",
                    "additionalProperties": false,
                    "description": "Optional hyper-parameters; any left out take the kind's default.",
                    "properties": {
                        "epochs": {"type": "integer", "minimum": 1, "maximum": 10000},
                        "patience": {"type": "integer", "minimum": 1},
                        "learning_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
                        "hidden": {"type": "integer", "minimum": 0, "maximum": 4096},
                        "min_df": {"type": "integer", "minimum": 0},
                        "l2": {"type": "number", "minimum": 0},
                        "encoder": {"type": "string"},
                        "threads": {"type": "integer", "minimum": 1, "maximum": 256},
                        "target_precision": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                        "auto_promote": {"type": "boolean"}
                    }
                }
            }
        }
    })
}
