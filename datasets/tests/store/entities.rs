//! Entities stored with their ticket, on SQLite and on PostgreSQL (when `TEST_DATABASE_URL`
//! is set): every write path stores them (one upsert, a batch, a bulk import, a help desk's
//! page), an edit replaces them, the browser and the search filter by them, a glossary
//! change re-extracts the project's tickets, and tickets stored before the upgrade get
//! theirs from the rebuild.

use datasets::connector::{
    ConnectorName, ConnectorSettings, ConnectorTicketWrite, NewConnector, System,
};
use datasets::store::prelude::*;
use datasets::store::{ImportRow, TicketFilter};
use datasets::test_db::TestDatabase;
use datasets::text::entities::{EntityFilter, EntityKind};
use datasets::text::glossary::Glossary;
use datasets::*;
use sqlx::Connection;

fn ticket(external_id: &str, subject: &str, body: &str) -> NewTicket {
    NewTicket {
        source: "api".into(),
        external_id: external_id.into(),
        subject: subject.into(),
        body: body.into(),
        metadata: serde_json::json!({}),
        created_at: None,
        split: Split::Train,
    }
}

fn filter(text: &str) -> EntityFilter {
    text.parse().unwrap()
}

/// The stored entities of a ticket as (kind, text).
async fn entities(store: &AnyStore, project: ProjectId, id: TicketId) -> Vec<(EntityKind, String)> {
    store
        .stored_entities(project, id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.text))
        .collect()
}

/// The ids the browser lists for an entity filter, oldest first.
async fn browse(store: &AnyStore, project: ProjectId, entity: &str) -> Vec<TicketId> {
    let page = store
        .browse_tickets(
            project,
            &TicketFilter {
                entity: Some(filter(entity)),
                limit: 100,
                ..TicketFilter::default()
            },
        )
        .await
        .unwrap();
    let mut ids: Vec<TicketId> = page.tickets.iter().map(|t| t.ticket.id).collect();
    ids.sort();
    ids
}

/// The ids the search lists for an entity filter, oldest first.
async fn search(store: &AnyStore, project: ProjectId, entity: &str) -> Vec<TicketId> {
    let mut ids: Vec<TicketId> = store
        .search_tickets(
            project,
            &TicketQuery {
                entity: Some(filter(entity)),
                ..TicketQuery::default()
            },
        )
        .await
        .unwrap()
        .iter()
        .map(|t| t.ticket.id)
        .collect();
    ids.sort();
    ids
}

async fn every_write_path_stores_entities_and_an_edit_replaces_them(store: AnyStore) {
    let project = store
        .create_project(&ProjectName::parse("Desk").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    store
        .set_glossary(project.id, &Glossary::new(&["Acme Sync"]).unwrap())
        .await
        .unwrap();

    // One upsert, then a batch.
    let one = store
        .upsert_tickets(
            project.id,
            &[ticket(
                "1",
                "Sync fails with E1234",
                "acme sync on Windows 11 crashed",
            )],
        )
        .await
        .unwrap()[0]
        .id;
    assert_eq!(
        entities(&store, project.id, one).await,
        [
            (EntityKind::Product, "Acme Sync".to_string()),
            (EntityKind::ErrorCode, "E1234".to_string()),
            (EntityKind::OperatingSystem, "Windows 11".to_string()),
        ]
    );
    let batch = store
        .upsert_tickets(
            project.id,
            &[
                ticket("2", "Crash", "KeyError in the ACME SYNC worker"),
                ticket("3", "Mail", "write to ana@example.com, error E1234"),
            ],
        )
        .await
        .unwrap();
    let (two, three) = (batch[0].id, batch[1].id);

    // The ingest path that stores the model's verdict with the ticket.
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
    let tagged = store
        .upsert_ticket_with_model_labels(
            project.id,
            &ticket("4", "Chrome 120 blank page", "since v2.3.1"),
            version.id,
            &[],
        )
        .await
        .unwrap()
        .id;
    assert_eq!(
        entities(&store, project.id, tagged).await,
        [
            (EntityKind::Version, "v2.3.1".to_string()),
            (EntityKind::Browser, "Chrome 120".to_string()),
        ]
    );

    // A bulk import (PostgreSQL's is UNNEST batches), new tickets and an update.
    let mut import = store
        .begin_import(&project.name, None, "tickets.csv")
        .await
        .unwrap();
    import
        .write(vec![
            ImportRow {
                ticket: ticket("5", "Export", "ORA-00942 in Acme Sync"),
                tags: Vec::new(),
                verdict: None,
            },
            ImportRow {
                ticket: ticket("3", "Mail", "now it says E9999"),
                tags: Vec::new(),
                verdict: None,
            },
        ])
        .await
        .unwrap();
    import.commit().await.unwrap();
    let five = store
        .search_tickets(
            project.id,
            &TicketQuery {
                text: Some("ORA-00942".into()),
                ..TicketQuery::default()
            },
        )
        .await
        .unwrap()[0]
        .ticket
        .id;
    assert_eq!(
        entities(&store, project.id, five).await,
        [
            (EntityKind::Product, "Acme Sync".to_string()),
            (EntityKind::ErrorCode, "ORA-00942".to_string()),
        ]
    );
    // The edit replaced the ticket's entities: its old address and code are gone.
    assert_eq!(
        entities(&store, project.id, three).await,
        [(EntityKind::ErrorCode, "E9999".to_string())]
    );

    // A help desk's page (PostgreSQL's first page of new tickets is one UNNEST statement).
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
    let page: Vec<ConnectorTicketWrite> = ["6", "7"]
        .iter()
        .map(|id| ConnectorTicketWrite {
            ticket: NewTicket {
                source: "zendesk".into(),
                ..ticket(
                    id,
                    "Desk ticket",
                    &format!("NullPointerException number {id} in acme sync"),
                )
            },
            vendor_updated_at: None,
            imported: Vec::new(),
            model_labels: None,
        })
        .collect();
    store
        .store_connector_tickets(&connector, &page)
        .await
        .unwrap();

    // Filters: by kind and value (any case), by kind alone; search and browser agree.
    let products = browse(&store, project.id, "product").await;
    assert_eq!(
        products.len(),
        5,
        "1, 2, 5 and the desk's two: {products:?}"
    );
    assert!(products.contains(&one) && products.contains(&two) && products.contains(&five));
    assert_eq!(
        browse(&store, project.id, "product:ACME SYNC").await,
        products
    );
    assert_eq!(browse(&store, project.id, "error_code:e1234").await, [one]);
    assert_eq!(search(&store, project.id, "error_code:E1234").await, [one]);
    assert_eq!(search(&store, project.id, "exception").await.len(), 3);
    assert!(
        browse(&store, project.id, "email").await.is_empty(),
        "ticket 3's address was edited away"
    );
    assert!(
        browse(&store, project.id, "error_code:E404404")
            .await
            .is_empty()
    );

    // Another project's tickets never match.
    let other = store
        .create_project(&ProjectName::parse("Other").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    store
        .upsert_tickets(other.id, &[ticket("1", "E1234 again", "")])
        .await
        .unwrap();
    assert_eq!(browse(&store, project.id, "error_code:E1234").await, [one]);
    assert!(
        store
            .stored_entities(other.id, one)
            .await
            .unwrap()
            .is_empty(),
        "a ticket's entities are read through its own project only"
    );
}

async fn a_glossary_change_re_extracts_the_projects_tickets(store: AnyStore) {
    let project = store
        .create_project(&ProjectName::parse("Desk").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    let tickets: Vec<NewTicket> = (0..7)
        .map(|i| ticket(&i.to_string(), "Billing Portal down", &format!("case {i}")))
        .collect();
    let ids: Vec<TicketId> = store
        .upsert_tickets(project.id, &tickets)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert!(browse(&store, project.id, "product").await.is_empty());
    // Nothing waits once every write stored its entities (a new project waits for nothing).
    assert_eq!(store.rebuild_entities_step(3).await.unwrap(), None);

    let glossary = Glossary::new(&["billing portal", "Billing Portal"]).unwrap();
    assert!(store.set_glossary(project.id, &glossary).await.unwrap());
    assert_eq!(
        store.glossary(project.id).await.unwrap(),
        ["billing portal"]
    );
    assert!(
        !store.set_glossary(project.id, &glossary).await.unwrap(),
        "the same glossary again changes nothing"
    );
    // Batches of three: 3, 3, 1.
    let mut steps = Vec::new();
    while let Some(step) = store.rebuild_entities_step(3).await.unwrap() {
        assert_eq!(step.project, project.id);
        steps.push((step.tickets, step.done));
    }
    assert_eq!(steps, [(3, false), (3, false), (1, true)]);
    assert_eq!(
        browse(&store, project.id, "product:Billing Portal").await,
        ids
    );
    assert_eq!(
        entities(&store, project.id, ids[0]).await,
        [(EntityKind::Product, "billing portal".to_string())]
    );

    // A change in the middle of a rebuild starts it over: no ticket keeps the old terms.
    store
        .set_glossary(project.id, &Glossary::new(&["Portal"]).unwrap())
        .await
        .unwrap();
    let first = store.rebuild_entities_step(3).await.unwrap().unwrap();
    assert!(!first.done);
    store
        .set_glossary(project.id, &Glossary::new::<&str>(&[]).unwrap())
        .await
        .unwrap();
    let first = store.rebuild_entities_step(3).await.unwrap().unwrap();
    assert!(!first.done);
    while store.rebuild_entities_step(3).await.unwrap().is_some() {}
    assert!(browse(&store, project.id, "product").await.is_empty());

    // The rebuild an operator asks for covers every project.
    assert_eq!(store.request_entity_rebuild(None).await.unwrap(), 1);
    let step = store.rebuild_entities_step(100).await.unwrap().unwrap();
    assert_eq!((step.tickets, step.done), (7, true));
    assert!(
        store
            .glossary(ProjectId(project.id.0 + 1000))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .request_entity_rebuild(Some(ProjectId(project.id.0 + 1000)))
            .await
            .is_err(),
        "an unknown project is refused"
    );
}

/// The last migration before entities were stored.
const BEFORE_ENTITIES: i64 = 15;
const INSERT_PROJECT: &str = "INSERT INTO projects (name, name_key, label_mode, created_at) \
     VALUES ('Acme', 'acme', 'multi', $1) RETURNING id";
const INSERT_TICKET: &str = "INSERT INTO tickets \
     (project_id, source, external_id, subject, body, metadata, split, created_at, updated_at) \
     VALUES ($1, 'api', 'old-1', 'Crash E1234', 'on Firefox 121', '{}', 'train', $2, $2) RETURNING id";

async fn tickets_stored_before_the_upgrade_get_entities_from_the_rebuild(database: &TestDatabase) {
    let now = chrono::Utc::now();
    let (project, ticket): (i64, i64) = if database.url.starts_with("sqlite") {
        let mut connection = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", database.url))
            .await
            .unwrap();
        sqlx::migrate!("../migrations/sqlite")
            .run_to(BEFORE_ENTITIES, &mut connection)
            .await
            .unwrap();
        let project: i64 = sqlx::query_scalar(INSERT_PROJECT)
            .bind(now)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        let ticket: i64 = sqlx::query_scalar(INSERT_TICKET)
            .bind(project)
            .bind(now)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        connection.close().await.unwrap();
        (project, ticket)
    } else {
        let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
        sqlx::migrate!("../migrations/postgres")
            .run_to(BEFORE_ENTITIES, &mut connection)
            .await
            .unwrap();
        let project: i64 = sqlx::query_scalar(INSERT_PROJECT)
            .bind(now)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        let ticket: i64 = sqlx::query_scalar(INSERT_TICKET)
            .bind(project)
            .bind(now)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        connection.close().await.unwrap();
        (project, ticket)
    };
    let (project, ticket) = (ProjectId(project), TicketId(ticket));

    let store = database.store().await.unwrap();
    assert!(entities(&store, project, ticket).await.is_empty());
    let step = store.rebuild_entities_step(500).await.unwrap().unwrap();
    assert_eq!((step.project, step.tickets, step.done), (project, 1, true));
    assert_eq!(
        entities(&store, project, ticket).await,
        [
            (EntityKind::ErrorCode, "E1234".to_string()),
            (EntityKind::Browser, "Firefox 121".to_string()),
        ]
    );
    assert_eq!(store.rebuild_entities_step(500).await.unwrap(), None);
}

#[tokio::test]
async fn sqlite_tickets_stored_before_the_upgrade_get_entities_from_the_rebuild() {
    let database = TestDatabase::sqlite().unwrap();
    tickets_stored_before_the_upgrade_get_entities_from_the_rebuild(&database).await;
}

#[tokio::test]
async fn postgres_tickets_stored_before_the_upgrade_get_entities_from_the_rebuild() {
    let Some(database) = TestDatabase::postgres("entities_upgrade").await.unwrap() else {
        return;
    };
    tickets_stored_before_the_upgrade_get_entities_from_the_rebuild(&database).await;
    database.drop_database().await.unwrap();
}

datasets::on_both_backends!(
    every_write_path_stores_entities_and_an_edit_replaces_them,
    a_glossary_change_re_extracts_the_projects_tickets,
);
