//! Every captured vendor payload in `tests/fixtures/` parses as it is (see its README for
//! where each came from), and gives the ticket a person reading the file would expect.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use connectors::{Delivery, EventKind, ParseError, System, parse_delivery};
use std::path::Path;

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path),
    )
    .unwrap()
}

fn ticket(system: System, path: &str) -> connectors::IncomingTicket {
    match parse_delivery(system, &fixture(path)) {
        Ok(Delivery::Ticket(ticket)) => ticket,
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn every_fixture_in_the_folder_is_covered_by_a_test() {
    let covered = [
        "jira/webhook-issue-created.json",
        "jira/webhook-issue-updated-labels.json",
        "jira/webhook-cloud-issue-updated-custom-field.json",
        "zendesk/gozendesk-get-ticket.json",
        "zendesk/gozendesk-list-tickets.json",
        "servicenow/create_change_request.json",
        "servicenow/search_security_incident_all.json",
        "servicenow/get_security_incident_invalid_sys_id.json",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for system in ["jira", "zendesk", "servicenow"] {
        for entry in std::fs::read_dir(root.join(system)).unwrap() {
            let name = format!("{system}/{}", entry.unwrap().file_name().to_string_lossy());
            assert!(covered.contains(&name.as_str()), "{name} has no test");
        }
    }
}

#[test]
fn jira_webhooks_parse_with_wiki_descriptions_and_labels() {
    let created = ticket(System::Jira, "jira/webhook-issue-created.json");
    assert_eq!(created.external_id, "10040");
    assert_eq!(created.reference.as_deref(), Some("TES-41"));
    assert_eq!(created.subject, "Unit test summary");
    assert_eq!(created.body, "Unit test description, not that long");
    assert_eq!(created.labels, vec!["test-label"]);
    assert_eq!(created.event, EventKind::Created);
    assert_eq!(
        created.updated_at.unwrap().to_rfc3339(),
        "2019-02-16T03:01:52.971+00:00"
    );

    let labels = ticket(System::Jira, "jira/webhook-issue-updated-labels.json");
    assert_eq!(labels.event, EventKind::Updated);
    assert_eq!(labels.labels, vec!["sad", "test-label"]);
    assert!(labels.updated_at > created.updated_at);

    let custom = ticket(
        System::Jira,
        "jira/webhook-cloud-issue-updated-custom-field.json",
    );
    assert_eq!(custom.external_id, "10368");
    assert_eq!(custom.subject, "v");
    assert_eq!(custom.body, " s", "real junk test data is kept as sent");
}

#[test]
fn zendesk_rest_tickets_parse_with_integer_ids_and_non_ascii_text() {
    let single = connectors::parse_zendesk_rest_ticket(
        &serde_json::from_slice(&fixture("zendesk/gozendesk-get-ticket.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(single.external_id, "2");
    assert_eq!(single.subject, "Mail to create fixture ticket for testing");
    assert!(single.body.contains("(●ↀ ω ↀ●)"));
    assert!(single.labels.is_empty());
    // The same body arriving at the webhook (a trigger that posts the ticket) is a ticket too.
    assert_eq!(
        ticket(System::Zendesk, "zendesk/gozendesk-get-ticket.json"),
        single
    );

    let list: serde_json::Value =
        serde_json::from_slice(&fixture("zendesk/gozendesk-list-tickets.json")).unwrap();
    let tickets: Vec<_> = list["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| connectors::parse_zendesk_rest_ticket(t).unwrap())
        .collect();
    assert!(tickets.len() >= 2);
    assert!(
        tickets
            .iter()
            .all(|t| !t.external_id.is_empty() && t.updated_at.is_some())
    );
    assert!(
        tickets
            .iter()
            .any(|t| t.subject.contains("にゃー") || t.body.contains("にゃー"))
    );
}

#[test]
fn servicenow_records_parse_in_both_shapes_and_errors_are_recognised() {
    let change = ticket(System::ServiceNow, "servicenow/create_change_request.json");
    assert_eq!(change.external_id, "25a42de31b582010593876a61a4bcbc8");
    assert_eq!(change.reference.as_deref(), Some("CHG0030003"));
    assert_eq!(change.subject, "Reboot server on scheduled interval");
    assert_eq!(change.labels, vec!["Other"]);
    // The UTC `value`, not the display value in the user's time zone.
    assert_eq!(
        change.updated_at.unwrap().to_rfc3339(),
        "2020-11-11T17:54:57+00:00"
    );

    let list: serde_json::Value =
        serde_json::from_slice(&fixture("servicenow/search_security_incident_all.json")).unwrap();
    let records = connectors::parse_servicenow_records(&list).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].external_id, "g123456");
    assert_eq!(records[0].labels, vec!["Phishing"]);

    let error = parse_delivery(
        System::ServiceNow,
        &fixture("servicenow/get_security_incident_invalid_sys_id.json"),
    );
    assert_eq!(
        error,
        Err(ParseError::VendorError {
            system: System::ServiceNow,
            message: "No Record found: Record doesn't exist or ACL restricts the record retrieval"
                .into()
        })
    );
}
