//! Reading a help desk's history page by page, as each vendor documents it. The cursor is an
//! opaque string we store after each page, so a backfill resumes where it stopped.
//!
//! - Zendesk: the cursor-based incremental export, `GET
//!   /api/v2/incremental/tickets/cursor.json?start_time=…` then `?cursor=<after_cursor>`,
//!   until `end_of_stream`; deleted tickets are skipped.
//! - Jira: `POST /rest/api/3/search/jql` with a bounded JQL ordered by creation, sending back
//!   `nextPageToken` until `isLast`.
//! - ServiceNow: the Table API ordered by creation time and `sys_id`, `sysparm_offset` moving
//!   by the page size, until no `Link: rel="next"` (a page may be short because ACLs filter
//!   after the limit, so a short page is not the end).

use crate::delivery::{EventKind, IncomingTicket, ParseError};
use crate::writeback::{Method, WriteRequest};
use crate::{System, lenient};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Tickets asked for per page: Zendesk's own page size is fixed at up to 1000; Jira returns
/// about 100 with fields; ServiceNow advises against large pages.
pub const PAGE_SIZE: u32 = 100;

/// The request for the page after `cursor` (`None`: the first page, from `since`).
pub fn page_request(
    system: System,
    table: &str,
    since: DateTime<Utc>,
    cursor: Option<&str>,
) -> WriteRequest {
    match system {
        System::Zendesk => WriteRequest {
            method: Method::Get,
            path: match cursor {
                Some(cursor) => format!(
                    "/api/v2/incremental/tickets/cursor.json?cursor={}",
                    query_encode(cursor)
                ),
                // The export refuses a start less than a minute old.
                None => format!(
                    "/api/v2/incremental/tickets/cursor.json?start_time={}",
                    since.timestamp().min(Utc::now().timestamp() - 60).max(0)
                ),
            },
            body: Value::Null,
        },
        System::Jira => WriteRequest {
            method: Method::Post,
            path: "/rest/api/3/search/jql".into(),
            body: json!({
                // Bounded (Jira refuses an unbounded search), oldest first, a stable order.
                "jql": format!(
                    "created >= \"{}\" ORDER BY created ASC, key ASC",
                    since.format("%Y-%m-%d %H:%M")
                ),
                "fields": ["summary", "description", "labels", "issuetype", "priority",
                           "components", "created", "updated"],
                "maxResults": PAGE_SIZE,
                "nextPageToken": cursor,
            }),
        },
        System::ServiceNow => {
            let offset: u64 = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
            let query = format!(
                "sys_created_on>={}^ORDERBYsys_created_on^ORDERBYsys_id",
                since.format("%Y-%m-%d %H:%M:%S")
            );
            WriteRequest {
                method: Method::Get,
                path: format!(
                    "/api/now/table/{}?sysparm_query={}&sysparm_limit={PAGE_SIZE}\
                     &sysparm_offset={offset}&sysparm_display_value=false\
                     &sysparm_exclude_reference_link=true",
                    query_encode(table),
                    query_encode(&query)
                ),
                body: Value::Null,
            }
        }
    }
}

/// One page of history.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub tickets: Vec<IncomingTicket>,
    /// Records left out: deleted tickets, records that are not tickets.
    pub skipped: usize,
    /// The cursor of the next page; `None` at the end.
    pub next: Option<String>,
}

/// Reads a page. `header` looks a response header up by its lower-case name; `cursor` is the
/// one the page was asked with.
pub fn parse_page<'h>(
    system: System,
    body: &Value,
    header: impl Fn(&str) -> Option<&'h str>,
    cursor: Option<&str>,
) -> Result<Page, ParseError> {
    let unrecognised = |reason: &str| ParseError::Unrecognised {
        system,
        reason: reason.to_string(),
    };
    match system {
        System::Zendesk => {
            let records = body
                .get("tickets")
                .and_then(Value::as_array)
                .ok_or_else(|| unrecognised("an export page without `tickets`"))?;
            let mut tickets = Vec::with_capacity(records.len());
            let mut skipped = 0;
            for record in records {
                let deleted = lenient::text(record.get("status")).as_deref() == Some("deleted");
                match crate::zendesk::parse_rest_ticket(record) {
                    Ok(ticket) if !deleted => tickets.push(ticket),
                    _ => skipped += 1,
                }
            }
            let end = body.get("end_of_stream").and_then(Value::as_bool) == Some(true);
            let next = lenient::text(body.get("after_cursor"));
            Ok(Page {
                tickets,
                skipped,
                // A page that is not the end but names no cursor cannot be followed.
                next: if end { None } else { next },
            })
        }
        System::Jira => {
            let issues = body
                .get("issues")
                .and_then(Value::as_array)
                .ok_or_else(|| unrecognised("a search page without `issues`"))?;
            let mut tickets = Vec::with_capacity(issues.len());
            let mut skipped = 0;
            for issue in issues {
                match crate::jira::parse_issue(issue, EventKind::Updated, None) {
                    Ok(ticket) => tickets.push(ticket),
                    Err(_) => skipped += 1,
                }
            }
            let last = body.get("isLast").and_then(Value::as_bool) == Some(true);
            let next = lenient::text(body.get("nextPageToken"));
            Ok(Page {
                tickets,
                skipped,
                next: if last { None } else { next },
            })
        }
        System::ServiceNow => {
            let records = body
                .get("result")
                .and_then(Value::as_array)
                .ok_or_else(|| unrecognised("a Table API page without a `result` list"))?;
            let mut tickets = Vec::with_capacity(records.len());
            let mut skipped = 0;
            for record in records {
                match crate::servicenow::parse_record(record, EventKind::Updated) {
                    Ok(ticket) => tickets.push(ticket),
                    Err(_) => skipped += 1,
                }
            }
            let offset: u64 = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
            let next_offset = offset + u64::from(PAGE_SIZE);
            let has_next_link = header("link").is_some_and(|link| {
                link.split(',')
                    .any(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))
            });
            let total: Option<u64> = header("x-total-count").and_then(|t| t.trim().parse().ok());
            let more = match total {
                Some(total) => next_offset < total,
                None => has_next_link,
            };
            Ok(Page {
                tickets,
                skipped,
                next: more.then(|| next_offset.to_string()),
            })
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn query_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn no_headers(_: &str) -> Option<&'static str> {
        None
    }

    #[test]
    fn requests_follow_each_vendors_paging() {
        let first = page_request(System::Zendesk, "", since(), None);
        assert_eq!(first.method, Method::Get);
        assert_eq!(
            first.path,
            "/api/v2/incremental/tickets/cursor.json?start_time=1704067200"
        );
        let next = page_request(System::Zendesk, "", since(), Some("MTc2=="));
        assert_eq!(
            next.path,
            "/api/v2/incremental/tickets/cursor.json?cursor=MTc2%3D%3D"
        );
        let jira = page_request(System::Jira, "", since(), Some("tok"));
        assert_eq!(jira.method, Method::Post);
        assert_eq!(jira.path, "/rest/api/3/search/jql");
        assert_eq!(
            jira.body["jql"],
            "created >= \"2024-01-01 00:00\" ORDER BY created ASC, key ASC"
        );
        assert_eq!(jira.body["nextPageToken"], "tok");
        assert_eq!(
            page_request(System::Jira, "", since(), None).body["nextPageToken"],
            Value::Null
        );
        let servicenow = page_request(System::ServiceNow, "incident", since(), Some("200"));
        assert_eq!(
            servicenow.path,
            "/api/now/table/incident?sysparm_query=sys_created_on%3E%3D2024-01-01%2000%3A00%3A00%5EORDERBYsys_created_on%5EORDERBYsys_id\
             &sysparm_limit=100&sysparm_offset=200&sysparm_display_value=false&sysparm_exclude_reference_link=true"
        );
    }

    #[test]
    fn zendesk_pages_skip_deleted_tickets_and_end_at_the_stream_end() {
        let page = json!({"tickets": [
            {"id": 1, "subject": "a", "description": "b", "tags": [], "status": "open"},
            {"id": 2, "subject": "c", "description": "d", "tags": [], "status": "deleted"}],
            "after_cursor": "X", "end_of_stream": false});
        let parsed = parse_page(System::Zendesk, &page, no_headers, None).unwrap();
        assert_eq!(parsed.tickets.len(), 1);
        assert_eq!(parsed.skipped, 1);
        assert_eq!(parsed.next.as_deref(), Some("X"));
        let last = json!({"tickets": [], "after_cursor": "Y", "end_of_stream": true});
        assert_eq!(
            parse_page(System::Zendesk, &last, no_headers, Some("X"))
                .unwrap()
                .next,
            None
        );
    }

    #[test]
    fn jira_pages_follow_the_token_until_the_last() {
        let page = json!({"issues": [{"id": "10042", "key": "SUP-17", "fields": {
            "summary": "s", "description": null, "labels": ["billing"]}}],
            "nextPageToken": "T2", "isLast": false});
        let parsed = parse_page(System::Jira, &page, no_headers, Some("T1")).unwrap();
        assert_eq!(parsed.tickets[0].external_id, "10042");
        assert_eq!(parsed.tickets[0].labels, vec!["billing"]);
        assert_eq!(parsed.next.as_deref(), Some("T2"));
        let last = json!({"issues": [], "isLast": true});
        assert_eq!(
            parse_page(System::Jira, &last, no_headers, Some("T2"))
                .unwrap()
                .next,
            None
        );
    }

    #[test]
    fn a_short_servicenow_page_is_not_the_end() {
        let page = json!({"result": [{"sys_id": "a1", "short_description": "s"}]});
        let with_total =
            |total: &'static str| move |name: &str| (name == "x-total-count").then_some(total);
        let parsed = parse_page(System::ServiceNow, &page, with_total("250"), Some("100")).unwrap();
        assert_eq!(parsed.tickets.len(), 1);
        assert_eq!(parsed.next.as_deref(), Some("200"));
        let at_end = parse_page(System::ServiceNow, &page, with_total("200"), Some("100")).unwrap();
        assert_eq!(at_end.next, None);
        let linked = |name: &str| {
            (name == "link").then_some(
                "<https://x/api/now/table/incident?sysparm_offset=100>;rel=\"next\",<https://x>;rel=\"first\"",
            )
        };
        assert_eq!(
            parse_page(System::ServiceNow, &page, linked, None)
                .unwrap()
                .next
                .as_deref(),
            Some("100")
        );
        assert_eq!(
            parse_page(System::ServiceNow, &page, no_headers, None)
                .unwrap()
                .next,
            None
        );
    }
}
