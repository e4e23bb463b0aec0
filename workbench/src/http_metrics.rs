//! Request counts and latency per route, for `/metrics`.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use inference::metrics::{Histogram, LATENCY_BOUNDS, describe};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Counts by (route, status) and one latency histogram per route.
#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
}

impl HttpMetrics {
    fn record(&self, route: &str, status: u16, seconds: f64) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *requests.entry((route.to_string(), status)).or_default() += 1;
        drop(requests);
        let histogram = {
            let mut latency = self
                .latency
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::sync::Arc::clone(
                latency
                    .entry(route.to_string())
                    .or_insert_with(|| std::sync::Arc::new(Histogram::new(LATENCY_BOUNDS))),
            )
        };
        histogram.observe(seconds);
    }

    pub fn render(&self, out: &mut String) {
        describe(
            out,
            "tagger_http_requests_total",
            "counter",
            "HTTP requests by route and status.",
        );
        for ((route, status), count) in self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "tagger_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        describe(
            out,
            "tagger_http_request_seconds",
            "histogram",
            "HTTP request latency by route.",
        );
        for (route, histogram) in self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            histogram.render(
                out,
                "tagger_http_request_seconds",
                &format!("route=\"{route}\""),
            );
        }
    }
}

/// Middleware recording every request under its route pattern (never the raw path, which
/// would make one series per ticket).
pub async fn track(
    State(metrics): State<std::sync::Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
