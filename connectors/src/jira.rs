//! Jira Cloud webhooks: `jira:issue_created` and `jira:issue_updated`, the issue in REST v2
//! shape (description as wiki text) or v3 shape (the Atlassian document format), or null.
//! Other events (deletions, comments, worklogs, projects) are ignored.

use crate::delivery::{Delivery, EventKind, IncomingTicket, ParseError};
use crate::{System, adf, lenient};
use serde_json::Value;

fn unrecognised(reason: impl Into<String>) -> ParseError {
    ParseError::Unrecognised {
        system: System::Jira,
        reason: reason.into(),
    }
}

pub(crate) fn parse_webhook(value: &Value) -> Result<Delivery, ParseError> {
    let event_name = lenient::text(value.get("webhookEvent"))
        .ok_or_else(|| unrecognised("no `webhookEvent`"))?;
    let event = match event_name.as_str() {
        "jira:issue_created" => EventKind::Created,
        "jira:issue_updated" => EventKind::Updated,
        _ => return Ok(Delivery::Ignored { event: event_name }),
    };
    let issue = value
        .get("issue")
        .filter(|issue| issue.is_object())
        .ok_or_else(|| unrecognised(format!("{event_name} without an `issue` object")))?;
    parse_issue(issue, event, value.get("timestamp")).map(Delivery::Ticket)
}

/// An issue object (a webhook's `issue`, a search result): `fallback_time` stands in for
/// its `updated` field when that is missing (a webhook's own `timestamp`).
pub(crate) fn parse_issue(
    issue: &Value,
    event: EventKind,
    fallback_time: Option<&Value>,
) -> Result<IncomingTicket, ParseError> {
    let external_id =
        lenient::id(issue.get("id")).ok_or_else(|| unrecognised("an issue without an id"))?;
    let fields = issue.get("fields").unwrap_or(&Value::Null);
    Ok(IncomingTicket {
        external_id,
        reference: lenient::trimmed(issue.get("key")),
        subject: lenient::text(fields.get("summary")).unwrap_or_default(),
        body: description(fields.get("description")),
        labels: lenient::labels(fields.get("labels")),
        fields: classifying_fields(fields),
        updated_at: lenient::timestamp(fields.get("updated"))
            .or_else(|| lenient::timestamp(fallback_time)),
        created_at: lenient::timestamp(fields.get("created")),
        event,
    })
}

/// Issue type, priority and components by name (each an object with a `name`; a bare string
/// is taken as the name; nulls and missing fields give nothing).
fn classifying_fields(fields: &Value) -> Vec<(String, String)> {
    let name = |value: &Value| match value {
        Value::Object(_) => lenient::trimmed(value.get("name")),
        other => lenient::trimmed(Some(other)),
    };
    let mut found = Vec::new();
    for field in ["issuetype", "priority"] {
        if let Some(value) = fields.get(field).and_then(name) {
            found.push((field.to_string(), value));
        }
    }
    if let Some(Value::Array(components)) = fields.get("components") {
        for component in components {
            if let Some(value) = name(component) {
                found.push(("components".to_string(), value));
            }
        }
    }
    found
}

/// Wiki text as it is, an ADF document as its plain text, null as nothing.
fn description(value: Option<&Value>) -> String {
    match value {
        Some(document @ Value::Object(_)) => adf::plain_text(document),
        other => lenient::text(other).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn issue_type_priority_and_components_are_read_by_name() {
        let value = json!({"webhookEvent": "jira:issue_updated",
            "issue": {"id": "7", "fields": {"summary": "x",
                "issuetype": {"name": "Bug "}, "priority": "High",
                "components": [{"name": "Billing"}, {"id": "3"}, "Mobile"]}}});
        let Ok(Delivery::Ticket(ticket)) = parse_webhook(&value) else {
            panic!("an issue");
        };
        let pairs: Vec<(&str, &str)> = ticket
            .fields
            .iter()
            .map(|(f, v)| (f.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("issuetype", "Bug"),
                ("priority", "High"),
                ("components", "Billing"),
                ("components", "Mobile")
            ]
        );
        let bare = json!({"webhookEvent": "jira:issue_created",
            "issue": {"id": "8", "fields": {"issuetype": null, "components": null}}});
        let Ok(Delivery::Ticket(ticket)) = parse_webhook(&bare) else {
            panic!("an issue");
        };
        assert!(ticket.fields.is_empty());
    }

    #[test]
    fn descriptions_may_be_wiki_text_adf_or_null() {
        let issue = |description: Value| {
            json!({"webhookEvent": "jira:issue_created", "timestamp": 1_767_607_200_000_i64,
                   "issue": {"id": 10042, "key": "SUP-17",
                             "fields": {"summary": "Export", "description": description, "labels": null}}})
        };
        let body = |value: Value| match parse_webhook(&value) {
            Ok(Delivery::Ticket(ticket)) => ticket,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            body(issue(json!("h1. Wiki *text*"))).body,
            "h1. Wiki *text*"
        );
        let adf = json!({"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "From ADF"}]}]});
        assert_eq!(body(issue(adf)).body, "From ADF");
        let null = body(issue(Value::Null));
        assert_eq!(null.body, "");
        assert_eq!(null.external_id, "10042");
        assert_eq!(null.reference.as_deref(), Some("SUP-17"));
        assert!(null.labels.is_empty());
        assert!(
            null.updated_at.is_some(),
            "falls back to the delivery's timestamp"
        );
    }

    #[test]
    fn events_that_are_not_issue_changes_are_ignored() {
        let deleted = json!({"webhookEvent": "jira:issue_deleted", "issue": {"id": "1"}});
        assert!(matches!(
            parse_webhook(&deleted),
            Ok(Delivery::Ignored { .. })
        ));
        let comment = json!({"webhookEvent": "comment_created", "comment": {}});
        assert!(matches!(
            parse_webhook(&comment),
            Ok(Delivery::Ignored { .. })
        ));
        assert!(parse_webhook(&json!({"issue": {}})).is_err());
    }
}
