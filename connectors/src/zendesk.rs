//! Zendesk: event-subscribed webhooks (`zen:event-type:ticket.*`, a fixed envelope whose
//! `detail` is the ticket), trigger webhooks whose body we recommend be only
//! `{"ticket_id": "{{ticket.id}}", "event": "ticket.created"}`, and REST ticket JSON
//! (`GET /api/v2/tickets/{id}.json`, `{"ticket": {…}}`, or a bare ticket object).

use crate::System;
use crate::delivery::{Delivery, EventKind, IncomingTicket, ParseError};
use crate::lenient;
use serde_json::Value;

const TICKET_EVENT_PREFIX: &str = "zen:event-type:ticket.";

/// Ticket events that do not describe a live ticket's content.
const IGNORED_TICKET_EVENTS: [&str; 4] = [
    "soft_deleted",
    "permanently_deleted",
    "marked_as_spam",
    "undeleted",
];

fn unrecognised(reason: impl Into<String>) -> ParseError {
    ParseError::Unrecognised {
        system: System::Zendesk,
        reason: reason.into(),
    }
}

fn event_kind(name: &str) -> EventKind {
    if name.ends_with("created") {
        EventKind::Created
    } else {
        EventKind::Updated
    }
}

pub(crate) fn parse_webhook(value: &Value) -> Result<Delivery, ParseError> {
    if let Some(event_type) = lenient::text(value.get("type")) {
        let Some(ticket_event) = event_type.strip_prefix(TICKET_EVENT_PREFIX) else {
            return Ok(Delivery::Ignored { event: event_type });
        };
        if IGNORED_TICKET_EVENTS.contains(&ticket_event) {
            return Ok(Delivery::Ignored { event: event_type });
        }
        let detail = value
            .get("detail")
            .filter(|d| d.is_object())
            .ok_or_else(|| unrecognised(format!("{event_type} without a `detail` object")))?;
        let mut ticket = ticket_from_object(detail, event_kind(ticket_event))?;
        if ticket.external_id.is_empty() {
            // `subject` is `zen:ticket:<id>` when the detail lacks an id. A bare or blank
            // `zen:ticket:` names no ticket: an empty id would reach the store.
            ticket.external_id = lenient::text(value.get("subject"))
                .and_then(|s| {
                    s.strip_prefix("zen:ticket:")
                        .map(|id| id.trim().to_string())
                })
                .filter(|id| !id.is_empty())
                .ok_or_else(|| unrecognised("a ticket event without a ticket id"))?;
        }
        if ticket.updated_at.is_none() {
            ticket.updated_at = lenient::timestamp(value.get("time"));
        }
        return Ok(Delivery::Ticket(ticket));
    }
    if value.get("ticket").is_some_and(Value::is_object) {
        return parse_rest_ticket(value).map(Delivery::Ticket);
    }
    if let Some(external_id) = lenient::id(value.get("ticket_id")) {
        let event =
            lenient::text(value.get("event")).map_or(EventKind::Created, |name| event_kind(&name));
        return Ok(Delivery::TicketReference { external_id, event });
    }
    Err(unrecognised(
        "neither an event webhook (`type`), a ticket (`ticket`) nor a trigger body (`ticket_id`)",
    ))
}

/// Reads a ticket from the REST API's JSON: `{"ticket": {…}}` or the ticket object itself.
pub fn parse_rest_ticket(value: &Value) -> Result<IncomingTicket, ParseError> {
    let ticket = value.get("ticket").unwrap_or(value);
    if !ticket.is_object() {
        return Err(unrecognised("the ticket is not a JSON object"));
    }
    let parsed = ticket_from_object(ticket, EventKind::Updated)?;
    if parsed.external_id.is_empty() {
        return Err(unrecognised("a ticket without an id"));
    }
    Ok(parsed)
}

/// The fields REST tickets and event `detail`s share.
fn ticket_from_object(ticket: &Value, event: EventKind) -> Result<IncomingTicket, ParseError> {
    Ok(IncomingTicket {
        external_id: lenient::id(ticket.get("id")).unwrap_or_default(),
        reference: None,
        subject: lenient::text(ticket.get("subject"))
            .or_else(|| lenient::text(ticket.get("raw_subject")))
            .unwrap_or_default(),
        body: lenient::text(ticket.get("description")).unwrap_or_default(),
        labels: lenient::labels(ticket.get("tags")),
        fields: Vec::new(),
        updated_at: lenient::timestamp(ticket.get("updated_at")),
        created_at: lenient::timestamp(ticket.get("created_at")),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_webhook_gives_the_ticket_in_its_detail() {
        let body = json!({ "type": "zen:event-type:ticket.created", "account_id": 9000001,
          "id": "01JEXAMPLE", "time": "2026-01-05T10:00:00Z", "subject": "zen:ticket:4821",
          "detail": { "id": "4821", "subject": "Charged twice", "description": "Billed twice",
                      "tags": ["billing"], "status": "NEW", "priority": null,
                      "updated_at": "2026-01-05T10:00:00Z" },
          "event": { "meta": { "sequence": { "id": "ABC123", "position": 1 } } } });
        let Ok(Delivery::Ticket(ticket)) = parse_webhook(&body) else {
            panic!("not a ticket");
        };
        assert_eq!(ticket.external_id, "4821");
        assert_eq!(ticket.subject, "Charged twice");
        assert_eq!(ticket.labels, vec!["billing"]);
        assert_eq!(ticket.event, EventKind::Created);
        assert!(ticket.updated_at.is_some());
    }

    #[test]
    fn other_events_are_ignored_and_trigger_bodies_reference_a_ticket() {
        let user = json!({"type": "zen:event-type:user.deleted", "detail": {"id": "1"}});
        assert_eq!(
            parse_webhook(&user),
            Ok(Delivery::Ignored {
                event: "zen:event-type:user.deleted".into()
            })
        );
        let deleted = json!({"type": "zen:event-type:ticket.soft_deleted", "detail": {"id": "1"}});
        assert!(matches!(
            parse_webhook(&deleted),
            Ok(Delivery::Ignored { .. })
        ));
        let trigger = json!({"ticket_id": 42, "event": "ticket.created"});
        assert_eq!(
            parse_webhook(&trigger),
            Ok(Delivery::TicketReference {
                external_id: "42".into(),
                event: EventKind::Created
            })
        );
        assert!(parse_webhook(&json!({"hello": "world"})).is_err());
    }

    #[test]
    fn an_event_whose_subject_names_no_ticket_is_refused() {
        for subject in ["zen:ticket:", "zen:ticket: "] {
            let body =
                json!({"type": "zen:event-type:ticket.created", "detail": {}, "subject": subject});
            assert!(parse_webhook(&body).is_err(), "{subject:?}");
        }
        let body = json!({"type": "zen:event-type:ticket.created", "detail": {}, "subject": "zen:ticket:42"});
        assert!(matches!(parse_webhook(&body), Ok(Delivery::Ticket(t)) if t.external_id == "42"));
    }
}
