//! Storing a help desk's tickets a page at a time, on SQLite and on PostgreSQL (when
//! `TEST_DATABASE_URL` is set): one call stores each ticket with its model and imported
//! labels and the vendor's change time, stores again idempotently, and leaves a ticket whose
//! stored change time is newer as it is.

use chrono::{TimeZone, Utc};
use datasets::connector::{
    ConnectorName, ConnectorSettings, ConnectorTicketStored, ConnectorTicketWrite, NewConnector,
    System,
};
use datasets::store::prelude::*;
use datasets::*;

fn write(external_id: &str, minute: u32, imported: Vec<TagId>) -> ConnectorTicketWrite {
    ConnectorTicketWrite {
        ticket: NewTicket {
            source: "desk".into(),
            external_id: external_id.into(),
            subject: format!("subject {external_id} at {minute}"),
            body: "body".into(),
            metadata: serde_json::json!({}),
            created_at: None,
            split: Split::Train,
        },
        vendor_updated_at: Some(Utc.with_ymd_and_hms(2026, 1, 5, 10, minute, 0).unwrap()),
        imported,
        model_labels: None,
    }
}

async fn a_page_is_stored_with_its_labels_and_older_versions_are_left(store: AnyStore) {
    let project = store
        .create_project(&ProjectName::parse("Desk").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let billing = store
        .create_tag(
            project.id,
            &NewTag::named(TagName::parse("Billing").unwrap()),
        )
        .await
        .unwrap();
    let outage = store
        .create_tag(
            project.id,
            &NewTag::named(TagName::parse("Outage").unwrap()),
        )
        .await
        .unwrap();
    let version = store
        .create_model_version(
            project.id,
            &NewModelVersion {
                kind: ModelKind::Ngram,
                ..NewModelVersion::default()
            },
        )
        .await
        .unwrap();
    let connector = store
        .create_connector(&NewConnector {
            project_id: project.id,
            name: ConnectorName::parse("desk").unwrap(),
            system: System::Zendesk,
            base_url: "https://desk.example".into(),
            settings: ConnectorSettings::default(),
            sealed_credentials: vec![1, 2, 3],
        })
        .await
        .unwrap();

    let mut first = write("1", 5, vec![billing.id]);
    first.model_labels = Some((version.id, vec![(outage.id, 0.9)]));
    let page = vec![first, write("2", 5, Vec::new())];
    let stored = store
        .store_connector_tickets(&connector, &page)
        .await
        .unwrap();
    let ids: Vec<TicketId> = stored
        .iter()
        .map(|outcome| match outcome {
            ConnectorTicketStored::Stored(ticket) => {
                assert!(ticket.created);
                ticket.id
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let one = store.ticket(project.id, ids[0]).await.unwrap();
    let mut labels: Vec<(&str, LabelSource)> = one
        .labels
        .iter()
        .map(|l| (l.tag.as_str(), l.source))
        .collect();
    labels.sort_by_key(|(tag, _)| *tag);
    assert_eq!(
        labels,
        vec![
            ("Billing", LabelSource::Import),
            ("Outage", LabelSource::Model)
        ]
    );
    assert!(
        store
            .ticket(project.id, ids[1])
            .await
            .unwrap()
            .labels
            .is_empty()
    );
    let history: Vec<(String, LabelSource, String)> = store
        .label_history(project.id, ids[0])
        .await
        .unwrap()
        .into_iter()
        .map(|event| (event.tag.as_str().to_string(), event.source, event.set_by))
        .collect();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history.contains(&(
        "Billing".into(),
        LabelSource::Import,
        "connector:desk".into()
    )));
    assert!(history.contains(&(
        "Outage".into(),
        LabelSource::Model,
        format!("model:{}", version.id)
    )));
    let known = store
        .connector_ticket(connector.id, "1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(known.ticket_id, ids[0]);
    assert_eq!(known.vendor_updated_at, page[0].vendor_updated_at);

    // Again, idempotent; then an older version of ticket 2 and a newer one of ticket 1.
    let again = store
        .store_connector_tickets(&connector, &page)
        .await
        .unwrap();
    assert_eq!(
        again,
        vec![
            ConnectorTicketStored::Stored(UpsertedTicket {
                id: ids[0],
                created: false
            }),
            ConnectorTicketStored::Stored(UpsertedTicket {
                id: ids[1],
                created: false
            }),
        ]
    );
    let later = store
        .store_connector_tickets(
            &connector,
            &[write("2", 1, Vec::new()), write("1", 9, Vec::new())],
        )
        .await
        .unwrap();
    assert_eq!(
        later,
        vec![
            ConnectorTicketStored::Stale(ids[1]),
            ConnectorTicketStored::Stored(UpsertedTicket {
                id: ids[0],
                created: false
            }),
        ]
    );
    assert_eq!(
        store
            .ticket(project.id, ids[1])
            .await
            .unwrap()
            .ticket
            .subject,
        "subject 2 at 5"
    );
    let one = store.ticket(project.id, ids[0]).await.unwrap();
    assert_eq!(one.ticket.subject, "subject 1 at 9");
    assert!(
        one.labels.iter().all(|l| l.source != LabelSource::Import),
        "the help desk no longer carries Billing: {:?}",
        one.labels
    );
    assert!(
        one.labels.iter().any(|l| l.source == LabelSource::Model),
        "model labels stay when none are given"
    );

    // A tag of another project is refused, and nothing of the page is stored.
    let other = store
        .create_project(&ProjectName::parse("Other").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let foreign = store
        .create_tag(other.id, &NewTag::named(TagName::parse("Foreign").unwrap()))
        .await
        .unwrap();
    let refused = store
        .store_connector_tickets(
            &connector,
            &[write("3", 1, Vec::new()), write("4", 1, vec![foreign.id])],
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        store
            .connector_ticket(connector.id, "3")
            .await
            .unwrap()
            .is_none()
    );
}

datasets::on_both_backends!(a_page_is_stored_with_its_labels_and_older_versions_are_left);
