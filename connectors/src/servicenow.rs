//! ServiceNow records: the Table API's default shape (every value a string), its
//! `sysparm_display_value=all` shape (`{"display_value", "value"}` per field, numbers as
//! floats), reference fields as `{"link", "value"}`, and the body of the Business Rule we
//! document (a record with an `event` such as `incident.created`). The database `value` (UTC
//! for dates) is read, never the display value in the user's time zone.

use crate::delivery::{Delivery, EventKind, IncomingTicket, ParseError};
use crate::{System, lenient};
use serde_json::Value;

fn unrecognised(reason: impl Into<String>) -> ParseError {
    ParseError::Unrecognised {
        system: System::ServiceNow,
        reason: reason.into(),
    }
}

/// `{"error": {"message", "detail"}, "status": "failure"}` as an error.
fn vendor_error(value: &Value) -> Option<ParseError> {
    let error = value.get("error")?;
    let message = [error.get("message"), error.get("detail")]
        .into_iter()
        .filter_map(lenient::trimmed)
        .collect::<Vec<_>>()
        .join(": ");
    Some(ParseError::VendorError {
        system: System::ServiceNow,
        message,
    })
}

pub(crate) fn parse_webhook(value: &Value) -> Result<Delivery, ParseError> {
    if let Some(error) = vendor_error(value) {
        return Err(error);
    }
    let record = match value.get("result") {
        Some(result @ Value::Object(_)) => result,
        Some(_) => {
            return Err(unrecognised(
                "a webhook body carries one record, not a list",
            ));
        }
        None => value,
    };
    let event = match lenient::trimmed(value.get("event")) {
        None => EventKind::Updated,
        Some(name) if name.ends_with(".created") || name.ends_with(".inserted") => {
            EventKind::Created
        }
        Some(name) if name.ends_with(".updated") => EventKind::Updated,
        Some(name) => return Ok(Delivery::Ignored { event: name }),
    };
    parse_record(record, event).map(Delivery::Ticket)
}

/// Every record of a Table API answer (`{"result": [...]}` or `{"result": {...}}`).
pub fn parse_records(value: &Value) -> Result<Vec<IncomingTicket>, ParseError> {
    if let Some(error) = vendor_error(value) {
        return Err(error);
    }
    match value.get("result").unwrap_or(value) {
        Value::Array(records) => records
            .iter()
            .map(|record| parse_record(record, EventKind::Updated))
            .collect(),
        record @ Value::Object(_) => Ok(vec![parse_record(record, EventKind::Updated)?]),
        _ => Err(unrecognised(
            "`result` is neither a record nor a list of records",
        )),
    }
}

pub(crate) fn parse_record(record: &Value, event: EventKind) -> Result<IncomingTicket, ParseError> {
    if !record.is_object() {
        return Err(unrecognised("a record is not a JSON object"));
    }
    let external_id = lenient::id(record.get("sys_id"))
        .ok_or_else(|| unrecognised("a record without `sys_id`"))?;
    Ok(IncomingTicket {
        external_id,
        reference: lenient::trimmed(record.get("number")),
        subject: lenient::text(record.get("short_description")).unwrap_or_default(),
        body: lenient::text(record.get("description")).unwrap_or_default(),
        // Choice values with trailing spaces are a known ServiceNow trap: trimmed.
        labels: lenient::trimmed(record.get("category"))
            .into_iter()
            .collect(),
        // Both shapes: a plain string, or `{display_value, value}` (the display value is what
        // people call it, and what a project tag would be named after).
        fields: ["subcategory", "priority"]
            .into_iter()
            .filter_map(|field| {
                let value = record.get(field)?;
                let text = match value {
                    Value::Object(_) => lenient::trimmed(value.get("display_value"))
                        .or_else(|| lenient::trimmed(value.get("value"))),
                    other => lenient::trimmed(Some(other)),
                }?;
                Some((field.to_string(), text))
            })
            .collect(),
        updated_at: lenient::timestamp(record.get("sys_updated_on")),
        created_at: lenient::timestamp(record.get("sys_created_on")),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_business_rule_body_is_a_record_with_an_event() {
        let body = json!({"event": "incident.created", "table": "incident",
            "sys_id": "9d38", "number": "INC0010042", "short_description": "VPN drops",
            "description": "Since Monday", "category": "network ", "sys_updated_on": "2026-01-05 10:00:00"});
        let Ok(Delivery::Ticket(ticket)) = parse_webhook(&body) else {
            panic!("not a ticket");
        };
        assert_eq!(ticket.external_id, "9d38");
        assert_eq!(ticket.labels, vec!["network"]);
        assert_eq!(ticket.event, EventKind::Created);
        assert_eq!(
            ticket.updated_at.map(|t| t.to_rfc3339()),
            Some("2026-01-05T10:00:00+00:00".into())
        );
        let deleted = json!({"event": "incident.deleted", "sys_id": "9d38"});
        assert!(matches!(
            parse_webhook(&deleted),
            Ok(Delivery::Ignored { .. })
        ));
        assert!(parse_webhook(&json!({"number": "INC1"})).is_err());
    }
}
