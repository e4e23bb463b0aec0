//! Answers for requests no route takes: an unknown path (404) or a known path asked with a
//! method it does not accept (405). API clients get the API's JSON error body, people a
//! page that says what happened and links home — never an empty body.

use crate::api::ApiError;
use crate::web::WebError;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// Whether the request is for the API: its paths are under `/v1/` (and the health ones).
fn is_api(uri: &Uri) -> bool {
    let path = uri.path();
    path == "/v1" || path.starts_with("/v1/") || matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// No route has this path.
pub async fn not_found(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if is_api(&uri) {
        // Its own code: a client can tell "no such endpoint" (a wrong URL in its code) from
        // a handler's `not_found` (no such project, ticket or tag).
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_endpoint",
            format!("no endpoint {method} {path}; the endpoints are listed at /v1/openapi.json"),
        )
        .into_response()
    } else {
        WebError::NotFound(format!("the page {path}")).into_response()
    }
}

/// The path exists but not with this method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let message = format!("{path} does not accept {method}");
    if is_api(&uri) {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        )
        .into_response()
    } else {
        let mut page = WebError::BadRequest(message).into_response();
        *page.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        page
    }
}
