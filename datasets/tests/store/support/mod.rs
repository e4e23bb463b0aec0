//! What the store suites share: a small project with tags Bug and Billing and its tickets.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
use datasets::*;

/// A tag name the test knows is valid.
pub fn tag(name: &str) -> TagName {
    TagName::parse(name).unwrap()
}

/// A project with tags Bug and Billing and `count` tickets, returned in insertion order.
pub async fn project_with_tickets(
    store: &AnyStore,
    name: &str,
    count: usize,
) -> (Project, Vec<TicketId>) {
    let project = store
        .create_project(&ProjectName::parse(name).unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    for tag_name in ["Bug", "Billing"] {
        store
            .create_tag(project.id, &NewTag::named(tag(tag_name)))
            .await
            .unwrap();
    }
    let tickets: Vec<NewTicket> = (0..count)
        .map(|i| NewTicket {
            source: "api".into(),
            external_id: format!("T-{i}"),
            subject: format!("ticket {i}"),
            body: "body".into(),
            metadata: serde_json::json!({}),
            created_at: None,
            split: Split::Train,
        })
        .collect();
    let ids = store
        .upsert_tickets(project.id, &tickets)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    (project, ids)
}
