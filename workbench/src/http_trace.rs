//! One tracing span per HTTP request, carrying its method, its matched route and a request
//! id, and the `x-request-id` header that lets a caller find its request in the logs: the
//! caller's id when it is well-formed, else a fresh one, echoed on every response.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnResponse, MakeSpan, TraceLayer};
use tracing::{Level, Span};

/// The header a request id travels in, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-supplied id kept; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A request's id, in the request's extensions for handlers and the span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Whether a caller's id can go into logs and headers as it is: short, printable ASCII
/// without spaces or quotes, so it cannot forge log lines or fields.
fn is_well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// 128 random bits as 32 hex digits.
fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS random source failing is not a reason to refuse a request: a zero id still
    // echoes, and the span's other fields remain.
    if let Err(error) = getrandom::fill(&mut bytes) {
        tracing::warn!(%error, "no randomness for a request id");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Middleware: picks the request's id, puts it in the extensions (and the request's header,
/// so proxied calls carry it on), and echoes it on the response.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_well_formed(id))
        .map_or_else(new_request_id, str::to_string);
    // Well-formed ids and hex digits are always valid header values.
    let header = HeaderValue::from_str(&id).ok();
    if let Some(header) = &header {
        request
            .headers_mut()
            .insert(REQUEST_ID_HEADER, header.clone());
    }
    request.extensions_mut().insert(RequestId(id));
    let mut response = next.run(request).await;
    if let Some(header) = header {
        response.headers_mut().insert(REQUEST_ID_HEADER, header);
    }
    response
}

/// The span of one request. `project` is filled in by the API's access check once it
/// knows the caller's project; a request's body, query and headers are never recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> Span {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let id = request
            .extensions()
            .get::<RequestId>()
            .map_or("", |id| id.0.as_str());
        tracing::info_span!(
            "http",
            method = %request.method(),
            route,
            request_id = id,
            project = tracing::field::Empty,
        )
    }
}

/// The tracing layer: a span per request; responses logged at `debug` (an access log with
/// `TAGGER_LOG=info,tower_http=debug`), server errors at `error`.
pub fn trace_layer() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_response(DefaultOnResponse::new().level(Level::DEBUG))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_taken_from_the_caller() {
        assert!(is_well_formed("3f2a-01:web.7_x"));
        assert!(is_well_formed(&"a".repeat(MAX_REQUEST_ID_LEN)));
        assert!(!is_well_formed(""));
        assert!(!is_well_formed(&"a".repeat(MAX_REQUEST_ID_LEN + 1)));
        assert!(!is_well_formed("a b"));
        assert!(!is_well_formed("a\"b"));
        assert!(!is_well_formed("line\nbreak"));
        assert!(!is_well_formed("é"));
    }

    #[test]
    fn generated_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(is_well_formed(&a));
        assert_ne!(a, b);
    }
}
