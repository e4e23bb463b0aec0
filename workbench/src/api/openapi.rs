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
            "schemas": {"Error": {
                "type": "object",
                "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}
            }}
        }
    })
}
