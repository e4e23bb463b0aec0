//! Property tests (issue 13): whatever a help desk, or anyone who finds a webhook URL, sends,
//! the connector parsers answer with a delivery or a `ParseError` and never panic; what they
//! accept keeps the promises the workbench relies on (ids and labels trimmed and non-empty);
//! signatures verify exactly the bytes signed; and tag names map to vendor labels and back.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use connectors::{
    Delivery, IncomingTicket, LabelMapping, SERVICENOW_SIGNATURE_HEADER,
    SERVICENOW_TIMESTAMP_HEADER, System, dedupe_key, parse_delivery, parse_servicenow_records,
    parse_zendesk_rest_ticket, sign_jira, sign_servicenow, sign_zendesk, vendor_label,
    verify_signature,
};
use proptest::prelude::*;
use serde_json::Value;

/// Field names the three parsers look for, so generated objects reach past the first check.
const KEYS: &[&str] = &[
    "type",
    "detail",
    "id",
    "subject",
    "raw_subject",
    "description",
    "tags",
    "updated_at",
    "created_at",
    "time",
    "ticket",
    "ticket_id",
    "event",
    "webhookEvent",
    "issue",
    "fields",
    "summary",
    "labels",
    "updated",
    "created",
    "key",
    "timestamp",
    "result",
    "error",
    "message",
    "sys_id",
    "number",
    "short_description",
    "category",
    "sys_updated_on",
    "sys_created_on",
    "value",
    "display_value",
    "content",
    "text",
    "attrs",
    "shortName",
    "url",
];

/// Strings the parsers branch on: event names, id prefixes, times in every vendor format.
const WORDS: &[&str] = &[
    "zen:event-type:ticket.created",
    "zen:event-type:ticket.status_changed",
    "zen:event-type:ticket.soft_deleted",
    "zen:event-type:user.deleted",
    "zen:ticket:",
    "zen:ticket:4821",
    "ticket.created",
    "jira:issue_created",
    "jira:issue_updated",
    "jira:issue_deleted",
    "incident.created",
    "incident.inserted",
    "incident.updated",
    "incident.deleted",
    "doc",
    "paragraph",
    "text",
    "hardBreak",
    "mention",
    "2019-02-15T19:01:52.971-0800",
    "2026-01-05T10:00:00Z",
    "2020-11-11 17:54:57",
    "-9223372036854775808",
    "9223372036854775807",
    "99999999999999999999",
    "",
    " ",
    "a, b  c,,",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // The edges: a float or integer as far from 1970 as JSON allows.
        prop::sample::select(vec![i64::MIN, i64::MAX, -1, 0, 100_000_000_000])
            .prop_map(Value::from),
        any::<f64>().prop_filter_map("JSON has no NaN or infinity", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        prop::sample::select(WORDS).prop_map(|w| Value::String(w.to_string())),
        any::<String>().prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

/// Arbitrary JSON, biased towards the shapes the vendors send.
fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn system() -> impl Strategy<Value = System> {
    prop::sample::select(System::ALL.to_vec())
}

/// What the workbench stores without checking again: a usable id and clean labels.
fn assert_well_formed(ticket: &IncomingTicket) -> Result<(), TestCaseError> {
    prop_assert!(!ticket.external_id.is_empty(), "{ticket:?}");
    prop_assert_eq!(ticket.external_id.trim(), ticket.external_id.as_str());
    for (i, label) in ticket.labels.iter().enumerate() {
        prop_assert!(
            !label.is_empty() && label.trim() == label,
            "{:?}",
            ticket.labels
        );
        prop_assert!(!ticket.labels[..i].contains(label), "{:?}", ticket.labels);
    }
    Ok(())
}

fn assert_delivery_well_formed(delivery: &Delivery) -> Result<(), TestCaseError> {
    match delivery {
        Delivery::Ticket(ticket) => assert_well_formed(ticket),
        Delivery::TicketReference { external_id, .. } => {
            prop_assert!(!external_id.is_empty() && external_id.trim() == external_id);
            Ok(())
        }
        Delivery::Ignored { .. } => Ok(()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_are_a_delivery_or_an_error(system in system(), body in any::<Vec<u8>>()) {
        if let Ok(delivery) = parse_delivery(system, &body) {
            assert_delivery_well_formed(&delivery)?;
        }
        let key = dedupe_key(system, |_| None, &body);
        prop_assert!(key.starts_with("sha256:") || key.starts_with("event:"), "{key}");
    }

    #[test]
    fn arbitrary_json_is_a_delivery_or_an_error(system in system(), value in json()) {
        let body = serde_json::to_vec(&value).unwrap();
        if let Ok(delivery) = parse_delivery(system, &body) {
            assert_delivery_well_formed(&delivery)?;
        }
    }

    #[test]
    fn arbitrary_json_in_each_vendors_envelope_is_a_delivery_or_an_error(
        event in prop::sample::select(WORDS),
        inner in json(),
        fields in json(),
        detail in prop::collection::btree_map(key(), leaf(), 0..6),
        subject in prop_oneof![json(), "zen:ticket:[ 0-9]{0,3}".prop_map(Value::String)],
    ) {
        // One level of the real envelope, so the generated part lands where the fields are read.
        let zendesk = serde_json::json!({"type": event, "detail": detail, "subject": subject, "time": fields});
        let jira = serde_json::json!({"webhookEvent": event, "issue": {"id": inner, "key": inner, "fields": fields}});
        let servicenow = serde_json::json!({"event": event, "result": fields});
        for (system, value) in [(System::Zendesk, zendesk), (System::Jira, jira), (System::ServiceNow, servicenow)] {
            if let Ok(delivery) = parse_delivery(system, &serde_json::to_vec(&value).unwrap()) {
                assert_delivery_well_formed(&delivery)?;
            }
        }
    }

    #[test]
    fn deeply_nested_bodies_are_refused_or_read_without_exhausting_the_stack(
        system in system(),
        depth in 0..5000usize,
        adf in any::<bool>(),
    ) {
        // A stack overflow aborts the whole server, so nesting must be bounded before any
        // recursive walk (serde_json's parser stops at 128 levels).
        let nested = if adf {
            format!("{}{{\"type\":\"text\",\"text\":\"x\"}}{}", "{\"type\":\"paragraph\",\"content\":[".repeat(depth), "]}".repeat(depth))
        } else {
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        };
        let body = format!(r#"{{"webhookEvent":"jira:issue_created","issue":{{"id":"1","fields":{{"description":{nested}}}}},"type":"zen:event-type:ticket.created","detail":{{"id":"1","tags":{nested}}},"sys_id":"1","description":{nested}}}"#);
        if let Ok(delivery) = parse_delivery(system, body.as_bytes()) {
            assert_delivery_well_formed(&delivery)?;
        }
    }

    #[test]
    fn rest_answers_are_tickets_or_errors(value in json(), fields in json()) {
        for value in [value, serde_json::json!({"ticket": fields.clone()}), serde_json::json!({"result": [fields]})] {
            if let Ok(ticket) = parse_zendesk_rest_ticket(&value) {
                assert_well_formed(&ticket)?;
            }
            if let Ok(tickets) = parse_servicenow_records(&value) {
                for ticket in &tickets {
                    assert_well_formed(ticket)?;
                }
            }
        }
    }

    #[test]
    fn a_signed_body_verifies_and_any_other_body_does_not(
        system in system(),
        secret in prop::collection::vec(any::<u8>(), 1..64),
        body in any::<Vec<u8>>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let timestamp = "1767607200";
        let signature = match system {
            System::Zendesk => sign_zendesk(&secret, timestamp, &body),
            System::Jira => sign_jira(&secret, &body),
            System::ServiceNow => sign_servicenow(&secret, timestamp, &body),
        };
        let headers = |name: &'static str| match name {
            "x-zendesk-webhook-signature" | "x-hub-signature" => Some(signature.as_str()),
            SERVICENOW_SIGNATURE_HEADER => Some(signature.as_str()),
            "x-zendesk-webhook-signature-timestamp" | SERVICENOW_TIMESTAMP_HEADER => Some(timestamp),
            _ => None,
        };
        prop_assert_eq!(verify_signature(system, &secret, headers, &body), Ok(()));
        let mut tampered = body.clone();
        if tampered.is_empty() {
            tampered.push(b'x');
        } else {
            let at = flip.index(tampered.len());
            tampered[at] ^= 0x01;
        }
        prop_assert!(verify_signature(system, &secret, headers, &tampered).is_err());
    }

    #[test]
    fn arbitrary_signature_headers_are_refused_without_panicking(
        system in system(),
        secret in prop::collection::vec(any::<u8>(), 0..64),
        signature in any::<String>(),
        timestamp in any::<String>(),
        body in any::<Vec<u8>>(),
    ) {
        let headers = |name: &'static str| {
            Some(if name.ends_with("timestamp") { timestamp.as_str() } else { signature.as_str() })
        };
        // A random header matching an HMAC-SHA256 is a 2^-256 event: any Ok is a bug.
        prop_assert!(verify_signature(system, &secret, headers, &body).is_err());
    }

    #[test]
    fn zendesk_and_jira_labels_are_idempotent_words_without_spaces(tag in any::<String>()) {
        for system in [System::Zendesk, System::Jira] {
            let label = vendor_label(system, &tag);
            prop_assert_eq!(vendor_label(system, &label), label.clone(), "{:?}", tag);
            prop_assert!(!label.chars().any(char::is_whitespace), "{label:?}");
            prop_assert!(
                label.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_'),
                "{label:?}"
            );
            prop_assert!(!label.starts_with('_') && !label.ends_with('_') && !label.contains("__"), "{label:?}");
        }
    }

    #[test]
    fn servicenow_values_are_idempotent_trimmed_and_without_commas(tag in any::<String>()) {
        let value = vendor_label(System::ServiceNow, &tag);
        prop_assert_eq!(vendor_label(System::ServiceNow, &value), value.clone());
        prop_assert!(!value.contains(','));
        prop_assert_eq!(value.trim(), value.as_str());
    }

    #[test]
    fn a_tags_own_vendor_label_maps_back_to_it(
        system in system(),
        tags in prop::collection::btree_set("[A-Za-zÀ-ÿ0-9 ,/_-]{1,20}", 1..8),
        pick in any::<prop::sample::Index>(),
    ) {
        let tags: Vec<String> = tags.into_iter().collect();
        let mapping = LabelMapping::default();
        let tag = &tags[pick.index(tags.len())];
        let label = mapping.to_vendor(system, tag);
        let found = mapping.to_project(system, &label, &tags);
        if label.trim().is_empty() {
            prop_assert_eq!(found, None);
        } else {
            // Another tag may share the label ("Feature Request", "feature_request"): then the
            // first such tag wins, and it must at least be one the label stands for.
            let found = found.unwrap();
            let folded = label.to_lowercase();
            prop_assert!(
                mapping.to_vendor(system, found).to_lowercase() == folded
                    || found.to_lowercase() == folded,
                "{label:?} mapped to {found:?}"
            );
            let unambiguous = tags.iter().filter(|other| {
                mapping.to_vendor(system, other).to_lowercase() == folded
                    || other.to_lowercase() == folded
            }).count() == 1;
            if unambiguous {
                prop_assert_eq!(found, tag.as_str());
            }
        }
    }

    #[test]
    fn any_label_maps_to_one_of_the_tags_or_none(
        system in system(),
        label in any::<String>(),
        tags in prop::collection::vec(any::<String>(), 0..6),
        overrides in prop::collection::btree_map(any::<String>(), any::<String>(), 0..3),
    ) {
        let mapping = LabelMapping { overrides };
        if let Some(found) = mapping.to_project(system, &label, &tags) {
            prop_assert!(tags.iter().any(|tag| tag == found));
        }
    }
}
