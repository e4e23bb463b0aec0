//! Writing our tags back to a help desk, as each vendor documents it, and reading what its
//! answer means. Nothing here sends a request: the workbench's write-back worker does, with
//! the request built here and the answer classified here, so the vendor rules are tested
//! without a network.
//!
//! - Zendesk: `PUT /api/v2/tickets/{id}/tags` with `{"tags": [...]}` adds to the ticket's
//!   tags and never removes the ones people set (`PUT /tickets/{id}` would replace them).
//! - Jira: `PUT /rest/api/3/issue/{key}?notifyUsers=false` with
//!   `{"update": {"labels": [{"add": "x"}, ...]}}`, applied server-side with no read first.
//! - ServiceNow: `PATCH /api/now/table/{table}/{sys_id}` setting a string field we own
//!   (`u_auto_tags` unless configured) to every label written so far, comma-separated, or
//!   appending a work note.

use crate::System;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::time::Duration;

/// The ServiceNow field written unless a connector names another.
pub const DEFAULT_SERVICENOW_FIELD: &str = "u_auto_tags";

/// The longest wait a rate-limited vendor may ask for before we give the write up for now
/// (a later attempt still happens; one answer must not park a write for a day).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// The HTTP method of a write-back request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
        }
    }
}

/// Where a ServiceNow connector puts our tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceNowTarget {
    /// A string field we own holds every tag written so far, comma-separated.
    Field(String),
    /// A work note per write ("Auto-tagged: billing, account").
    WorkNote,
}

/// One write to send: the method, the path and query under the connector's base URL, and
/// the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRequest {
    pub method: Method,
    pub path: String,
    pub body: serde_json::Value,
}

/// The request that adds `new_labels` to the vendor's ticket `external_id`. `all_labels`
/// are every label we have written to it, these included (ServiceNow's field holds the whole
/// set; the other systems add).
pub fn write_request(
    system: System,
    external_id: &str,
    new_labels: &[String],
    all_labels: &[String],
    table: &str,
    target: &ServiceNowTarget,
) -> WriteRequest {
    let id = percent_encode_segment(external_id);
    match system {
        System::Zendesk => WriteRequest {
            method: Method::Put,
            path: format!("/api/v2/tickets/{id}/tags"),
            body: serde_json::json!({ "tags": new_labels }),
        },
        System::Jira => WriteRequest {
            method: Method::Put,
            path: format!("/rest/api/3/issue/{id}?notifyUsers=false"),
            body: serde_json::json!({
                "update": {
                    "labels": new_labels
                        .iter()
                        .map(|label| serde_json::json!({ "add": label }))
                        .collect::<Vec<_>>()
                }
            }),
        },
        System::ServiceNow => {
            let table = percent_encode_segment(table);
            let body = match target {
                ServiceNowTarget::Field(field) => {
                    serde_json::json!({ field.as_str(): all_labels.join(",") })
                }
                ServiceNowTarget::WorkNote => {
                    serde_json::json!({ "work_notes": format!("Auto-tagged: {}", new_labels.join(", ")) })
                }
            };
            WriteRequest {
                method: Method::Patch,
                path: format!("/api/now/table/{table}/{id}?sysparm_exclude_reference_link=true"),
                body,
            }
        }
    }
}

/// The REST path that reads one ticket, for the systems whose webhooks may name a ticket
/// without its content (Zendesk triggers): `GET /api/v2/tickets/{id}.json`.
pub fn fetch_ticket_path(system: System, external_id: &str) -> Option<String> {
    match system {
        System::Zendesk => Some(format!(
            "/api/v2/tickets/{}.json",
            percent_encode_segment(external_id)
        )),
        System::Jira | System::ServiceNow => None,
    }
}

/// A cheap read that proves the address and the credentials work ("test the connection"):
/// Zendesk `GET /api/v2/users/me.json`, Jira `GET /rest/api/3/myself`, ServiceNow one record
/// of the connector's table (`sysparm_limit=1`), which also proves the user may read it.
pub fn probe_request(system: System, table: Option<&str>) -> WriteRequest {
    let path = match system {
        System::Zendesk => "/api/v2/users/me.json".to_string(),
        System::Jira => "/rest/api/3/myself".to_string(),
        System::ServiceNow => format!(
            "/api/now/table/{}?sysparm_limit=1&sysparm_fields=sys_id",
            percent_encode_segment(table.unwrap_or("incident"))
        ),
    };
    WriteRequest {
        method: Method::Get,
        path,
        body: serde_json::Value::Null,
    }
}

/// The `Authorization` header for a connector's user and API token, as each vendor wants
/// basic authentication: Zendesk `{email}/token:{token}`, Jira `{email}:{token}`, ServiceNow
/// `{user}:{password}`. Without a user the token is sent as a bearer token (OAuth).
pub fn authorization(system: System, user: Option<&str>, token: &str) -> String {
    match user.map(str::trim).filter(|user| !user.is_empty()) {
        Some(user) => {
            let pair = match system {
                System::Zendesk => format!("{user}/token:{token}"),
                System::Jira | System::ServiceNow => format!("{user}:{token}"),
            };
            format!("Basic {}", BASE64.encode(pair))
        }
        None => format!("Bearer {token}"),
    }
}

/// What the vendor's answer to a write means for the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The tags are on the vendor's ticket.
    Written,
    /// Rate-limited: try again after this long.
    RetryAfter(Duration, String),
    /// A fault that may heal (a 5xx, a timeout): try again with backoff.
    Transient(String),
    /// Will not heal by retrying (bad credentials, no such ticket, a refused field): stop and
    /// show the reason.
    Permanent(String),
}

/// Classifies the vendor's answer. `header` looks a response header up by its lower-case
/// name; `now` is for reset headers given as a time (Jira's ISO 8601, ServiceNow's Unix
/// seconds). `body` is the response body, for the reason shown to people.
pub fn classify_response<'h>(
    system: System,
    status: u16,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> WriteOutcome {
    let reason = || vendor_error(system, status, body);
    match status {
        200..=299 => WriteOutcome::Written,
        429 => {
            let wait = retry_after(header("retry-after"), now)
                .or_else(|| reset_at(system, header, now))
                .unwrap_or(Duration::from_secs(60));
            WriteOutcome::RetryAfter(wait.min(MAX_RETRY_AFTER), reason())
        }
        // Zendesk's safe-update conflict and Jira's lock conflicts heal on a retry.
        408 | 409 | 425 | 500..=599 => WriteOutcome::Transient(reason()),
        _ => WriteOutcome::Permanent(reason()),
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(value: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or_default(),
    )
}

/// The vendor's reset time, when a 429 came without `Retry-After`.
fn reset_at<'h>(
    system: System,
    header: impl Fn(&str) -> Option<&'h str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let until = |at: chrono::DateTime<chrono::Utc>| (at - now).to_std().ok();
    match system {
        // Seconds until the window resets.
        System::Zendesk => header("ratelimit-reset")?
            .trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs),
        // An ISO 8601 time, to the minute (`2026-12-04T10:15Z`).
        System::Jira => {
            let value = header("x-ratelimit-reset")?.trim();
            let at = chrono::DateTime::parse_from_rfc3339(value)
                .map(|at| at.with_timezone(&chrono::Utc))
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%MZ")
                        .map(|at| at.and_utc())
                })
                .ok()?;
            until(at)
        }
        // Unix seconds.
        System::ServiceNow => {
            let seconds = header("x-ratelimit-reset")?.trim().parse::<i64>().ok()?;
            until(chrono::DateTime::from_timestamp(seconds, 0)?)
        }
    }
}

/// A short, readable reason from the vendor's error body, in each vendor's error shape:
/// Zendesk `{"error": …, "description": …}`, Jira `{"errorMessages": [...], "errors": {...}}`,
/// ServiceNow `{"error": {"message": …, "detail": …}}`. Falls back to the status.
pub fn vendor_error(system: System, status: u16, body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let text = |value: &serde_json::Value| value.as_str().map(str::to_string);
    let detail =
        parsed.as_ref().and_then(|json| match system {
            System::Zendesk => {
                let error = json
                    .get("error")
                    .and_then(|error| text(error).or_else(|| error.get("title").and_then(text)));
                let description = json.get("description").and_then(text).or_else(|| {
                    json.get("error")
                        .and_then(|e| e.get("message"))
                        .and_then(text)
                });
                join_present([error, description])
            }
            System::Jira => {
                let mut parts: Vec<String> = json
                    .get("errorMessages")
                    .and_then(|m| m.as_array())
                    .map(|messages| messages.iter().filter_map(text).collect())
                    .unwrap_or_default();
                if let Some(errors) = json.get("errors").and_then(|e| e.as_object()) {
                    parts.extend(errors.iter().filter_map(|(field, message)| {
                        Some(format!("{field}: {}", text(message)?))
                    }));
                }
                (!parts.is_empty()).then(|| parts.join("; "))
            }
            System::ServiceNow => {
                let error = json.get("error")?;
                join_present([
                    error.get("message").and_then(text),
                    error.get("detail").and_then(text),
                ])
            }
        });
    let status_text = format!("{system} answered HTTP {status}");
    match detail {
        Some(detail) => {
            let detail: String = detail.chars().take(300).collect();
            format!("{status_text}: {detail}")
        }
        None => status_text,
    }
}

fn join_present<const N: usize>(parts: [Option<String>; N]) -> Option<String> {
    let parts: Vec<String> = parts
        .into_iter()
        .flatten()
        .filter(|part| !part.trim().is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(": "))
}

/// A path segment with everything but unreserved characters percent-encoded, so a vendor id
/// can never change the path it is written into.
fn percent_encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A token bucket: at most `per_minute` requests a minute on average, in bursts of at most
/// `burst`. Time is passed in, so the arithmetic is tested without sleeping.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl TokenBucket {
    pub fn new(per_minute: u32, burst: u32, now: std::time::Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second: f64::from(per_minute.max(1)) / 60.0,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token when one is there (`None`), or says how long until one will be.
    pub fn take(&mut self, now: std::time::Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn no_headers(_: &str) -> Option<&'static str> {
        None
    }

    fn field() -> ServiceNowTarget {
        ServiceNowTarget::Field(DEFAULT_SERVICENOW_FIELD.into())
    }

    #[test]
    fn each_vendor_gets_its_documented_request() {
        let new = labels(&["billing", "feature_request"]);
        let all = labels(&["refund", "billing", "feature_request"]);
        let zendesk = write_request(System::Zendesk, "35436", &new, &all, "incident", &field());
        assert_eq!(zendesk.method, Method::Put);
        assert_eq!(zendesk.path, "/api/v2/tickets/35436/tags");
        assert_eq!(
            zendesk.body,
            serde_json::json!({"tags": ["billing", "feature_request"]})
        );

        let jira = write_request(System::Jira, "SUP-17", &new, &all, "incident", &field());
        assert_eq!(jira.method, Method::Put);
        assert_eq!(jira.path, "/rest/api/3/issue/SUP-17?notifyUsers=false");
        assert_eq!(
            jira.body,
            serde_json::json!({"update": {"labels": [{"add": "billing"}, {"add": "feature_request"}]}})
        );

        let servicenow =
            write_request(System::ServiceNow, "a1b2", &new, &all, "incident", &field());
        assert_eq!(servicenow.method, Method::Patch);
        assert_eq!(
            servicenow.path,
            "/api/now/table/incident/a1b2?sysparm_exclude_reference_link=true"
        );
        assert_eq!(
            servicenow.body,
            serde_json::json!({"u_auto_tags": "refund,billing,feature_request"})
        );
        let note = write_request(
            System::ServiceNow,
            "a1b2",
            &new,
            &all,
            "incident",
            &ServiceNowTarget::WorkNote,
        );
        assert_eq!(
            note.body,
            serde_json::json!({"work_notes": "Auto-tagged: billing, feature_request"})
        );
    }

    #[test]
    fn only_zendesk_tickets_are_fetched_by_id() {
        assert_eq!(
            fetch_ticket_path(System::Zendesk, "35436").as_deref(),
            Some("/api/v2/tickets/35436.json")
        );
        assert_eq!(
            fetch_ticket_path(System::Zendesk, "1/2").as_deref(),
            Some("/api/v2/tickets/1%2F2.json")
        );
        assert_eq!(fetch_ticket_path(System::Jira, "1"), None);
    }

    #[test]
    fn a_vendor_id_cannot_change_the_path() {
        let request = write_request(
            System::Zendesk,
            "1/../../users?x=1",
            &labels(&["a"]),
            &labels(&["a"]),
            "incident",
            &field(),
        );
        assert_eq!(
            request.path,
            "/api/v2/tickets/1%2F..%2F..%2Fusers%3Fx%3D1/tags"
        );
    }

    #[test]
    fn basic_authentication_follows_each_vendor() {
        let decode = |header: String| {
            String::from_utf8(
                BASE64
                    .decode(header.strip_prefix("Basic ").unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(
            decode(authorization(System::Zendesk, Some("a@b.c"), "t0k")),
            "a@b.c/token:t0k"
        );
        assert_eq!(
            decode(authorization(System::Jira, Some("a@b.c"), "t0k")),
            "a@b.c:t0k"
        );
        assert_eq!(
            decode(authorization(System::ServiceNow, Some("svc"), "pw")),
            "svc:pw"
        );
        assert_eq!(authorization(System::Jira, None, "oauth"), "Bearer oauth");
        assert_eq!(
            authorization(System::Jira, Some(" "), "oauth"),
            "Bearer oauth"
        );
    }

    #[test]
    fn answers_are_classified() {
        let now = chrono::Utc::now();
        for system in System::ALL {
            assert_eq!(
                classify_response(system, 204, no_headers, "", now),
                WriteOutcome::Written
            );
            assert!(matches!(
                classify_response(system, 503, no_headers, "", now),
                WriteOutcome::Transient(_)
            ));
            for status in [400, 401, 403, 404, 422] {
                assert!(
                    matches!(
                        classify_response(system, status, no_headers, "", now),
                        WriteOutcome::Permanent(_)
                    ),
                    "{system} {status}"
                );
            }
        }
    }

    #[test]
    fn a_429_waits_as_long_as_the_vendor_asks() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let retry = |system, headers: &'static [(&'static str, &'static str)]| {
            classify_response(
                system,
                429,
                |name: &str| {
                    headers
                        .iter()
                        .find(|(key, _)| *key == name)
                        .map(|(_, value)| *value)
                },
                "",
                now,
            )
        };
        let wait = |outcome: WriteOutcome| match outcome {
            WriteOutcome::RetryAfter(wait, _) => wait,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            wait(retry(System::Zendesk, &[("retry-after", "7")])),
            Duration::from_secs(7)
        );
        assert_eq!(
            wait(retry(
                System::Jira,
                &[("x-ratelimit-reset", "2026-12-04T10:02Z")]
            )),
            Duration::from_secs(120)
        );
        assert_eq!(
            wait(retry(
                System::ServiceNow,
                &[("x-ratelimit-reset", "1796378430")]
            )),
            Duration::from_secs(30)
        );
        assert_eq!(
            wait(retry(
                System::Jira,
                &[("retry-after", "Fri, 04 Dec 2026 10:00:05 GMT")]
            )),
            Duration::from_secs(5)
        );
        // An absurd wait is capped, a missing one defaults to a minute.
        assert_eq!(
            wait(retry(System::Zendesk, &[("retry-after", "86400")])),
            MAX_RETRY_AFTER
        );
        assert_eq!(wait(retry(System::Zendesk, &[])), Duration::from_secs(60));
    }

    #[test]
    fn vendor_error_bodies_become_reasons() {
        assert_eq!(
            vendor_error(
                System::Jira,
                400,
                r#"{"errorMessages":[],"errors":{"labels":"The label 'Test Application' contains spaces which is invalid."}}"#
            ),
            "jira answered HTTP 400: labels: The label 'Test Application' contains spaces which is invalid."
        );
        assert_eq!(
            vendor_error(
                System::ServiceNow,
                404,
                r#"{"error":{"message":"No Record found","detail":"Record doesn't exist or ACL restricts the record retrieval"},"status":"failure"}"#
            ),
            "servicenow answered HTTP 404: No Record found: Record doesn't exist or ACL restricts the record retrieval"
        );
        assert_eq!(
            vendor_error(
                System::Zendesk,
                401,
                r#"{"error":"Couldn't authenticate you"}"#
            ),
            "zendesk answered HTTP 401: Couldn't authenticate you"
        );
        assert_eq!(
            vendor_error(System::Zendesk, 502, "<html>bad gateway</html>"),
            "zendesk answered HTTP 502"
        );
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let start = std::time::Instant::now();
        let mut bucket = TokenBucket::new(60, 2, start);
        assert_eq!(bucket.take(start), None);
        assert_eq!(bucket.take(start), None);
        let wait = bucket.take(start).expect("the burst is spent");
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-9, "{wait:?}");
        assert_eq!(bucket.take(start + Duration::from_secs(1)), None);
        assert!(bucket.take(start + Duration::from_secs(1)).is_some());
    }
}
