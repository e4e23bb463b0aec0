//! The store conformance suite: every test runs on SQLite and on PostgreSQL (when
//! `TEST_DATABASE_URL` is set), each in a fresh database, and both must behave the same.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::export::{Personal, export_project};
use datasets::import::{
    ColumnMap, FileFormat, ImportError, ImportOptions, OnBadRow, SplitChoice, import_file,
};
use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::*;

fn tag_name(name: &str) -> TagName {
    TagName::parse(name).unwrap()
}

fn project_name(name: &str) -> ProjectName {
    ProjectName::parse(name).unwrap()
}

fn new_ticket(external_id: &str, subject: &str) -> NewTicket {
    NewTicket {
        source: "api".into(),
        external_id: external_id.into(),
        subject: subject.into(),
        body: format!("body of {subject}"),
        metadata: serde_json::json!({"priority": "high"}),
        created_at: None,
        split: Split::Train,
    }
}

async fn project_with_tags(store: &AnyStore, tags: &[&str]) -> Project {
    let project = store
        .create_project(&project_name("Acme"), LabelMode::Multi)
        .await
        .unwrap();
    for tag in tags {
        store
            .create_tag(project.id, &NewTag::named(tag_name(tag)))
            .await
            .unwrap();
    }
    project
}

fn csv_import_options(project: &str) -> ImportOptions {
    ImportOptions::new(
        project_name(project),
        FileFormat::Csv,
        ColumnMap {
            text: vec!["subject".into(), "body".into()],
            label: Some("tags".into()),
            id: Some("id".into()),
            groups: Vec::new(),
        },
        "tickets.csv",
    )
}

async fn import_csv(
    store: &AnyStore,
    options: &ImportOptions,
    csv: &str,
) -> Result<import::ImportReport, ImportError> {
    import_file(
        store,
        std::io::Cursor::new(csv.as_bytes().to_vec()),
        options,
        &datasets::ingest::Untagged,
    )
    .await
}

datasets::on_both_backends!(
    project_names_are_unique_regardless_of_case,
    tag_names_are_unique_per_project_regardless_of_case,
    tags_can_be_renamed_described_and_archived,
    ingesting_the_same_ticket_twice_updates_it_and_never_duplicates,
    a_batch_with_one_invalid_ticket_stores_nothing,
    a_human_label_overrides_the_model_label_and_history_is_kept,
    unknown_and_archived_tags_are_refused_for_human_labels,
    a_single_label_project_refuses_two_tags,
    import_creates_the_project_with_the_tags_found_in_the_file,
    a_bad_row_in_abort_mode_leaves_nothing_behind,
    skip_mode_imports_the_good_rows_and_reports_the_bad_ones_by_line,
    reimporting_a_file_updates_tickets_and_replaces_their_imported_labels,
    an_existing_project_refuses_unknown_tags_unless_asked_to_create_them,
    export_then_import_gives_the_same_tickets_and_tags,
    search_filters_by_text_tag_split_and_labelled_state,
    tickets_page_in_id_order,
    promotion_keeps_exactly_one_version_in_service_and_rollback_restores_the_previous,
    api_keys_authenticate_until_revoked,
    a_ticket_and_its_model_labels_are_stored_together_or_not_at_all,
    instance_admin_keys_belong_to_no_project,
    project_languages_default_to_none_and_are_kept_sorted,
    the_store_keeps_the_raw_text_and_models_read_it_normalised,
);

async fn project_names_are_unique_regardless_of_case(store: AnyStore) {
    store
        .create_project(&project_name("Acme"), LabelMode::Multi)
        .await
        .unwrap();
    let error = store
        .create_project(&project_name("ACME"), LabelMode::Single)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let found = store
        .project_by_name(&project_name("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.name.as_str(), "Acme");
    assert_eq!(store.list_projects().await.unwrap().len(), 1);
}

async fn tag_names_are_unique_per_project_regardless_of_case(store: AnyStore) {
    let acme = project_with_tags(&store, &["Bug"]).await;
    let error = store
        .create_tag(acme.id, &NewTag::named(tag_name("  bug ")))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "a tag named \"bug\" already exists in this project"
    );
    let other = store
        .create_project(&project_name("Other"), LabelMode::Multi)
        .await
        .unwrap();
    store
        .create_tag(other.id, &NewTag::named(tag_name("BUG")))
        .await
        .unwrap();
    assert_eq!(store.list_tags(acme.id).await.unwrap().len(), 1);
}

async fn tags_can_be_renamed_described_and_archived(store: AnyStore) {
    let project = project_with_tags(&store, &["Bug", "Billing"]).await;
    let tags = store.list_tags(project.id).await.unwrap();
    let bug = tags.iter().find(|t| t.name.as_str() == "Bug").unwrap();
    let update = TagUpdate {
        name: Some(tag_name("Defect")),
        description: Some("Something is broken".into()),
        color: Some("#ff0000".into()),
        keywords: Some(KeywordRules {
            include: vec!["crash".into()],
            exclude: vec![],
        }),
        archived: Some(true),
        group: None,
    };
    let changed = store.update_tag(project.id, bug.id, &update).await.unwrap();
    assert_eq!(changed.name.as_str(), "Defect");
    let stored = store.list_tags(project.id).await.unwrap();
    let defect = stored.iter().find(|t| t.id == bug.id).unwrap();
    assert_eq!(defect, &changed);
    assert!(defect.archived);
    assert_eq!(defect.keywords.include, ["crash"]);

    let clash = TagUpdate {
        name: Some(tag_name("billing")),
        ..TagUpdate::default()
    };
    assert!(matches!(
        store.update_tag(project.id, bug.id, &clash).await,
        Err(StoreError::Conflict(_))
    ));
    let bad_colour = TagUpdate {
        color: Some("blue".into()),
        ..TagUpdate::default()
    };
    assert!(matches!(
        store.update_tag(project.id, bug.id, &bad_colour).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn ingesting_the_same_ticket_twice_updates_it_and_never_duplicates(store: AnyStore) {
    let project = project_with_tags(&store, &[]).await;
    let first = store
        .upsert_tickets(project.id, &[new_ticket("T-1", "Login broken")])
        .await
        .unwrap();
    assert!(first[0].created);
    let mut again = new_ticket("T-1", "Login broken (edited)");
    again.split = Split::Test;
    let second = store.upsert_tickets(project.id, &[again]).await.unwrap();
    assert_eq!(second[0].id, first[0].id);
    assert!(!second[0].created);
    let all = store
        .search_tickets(project.id, &TicketQuery::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].ticket.subject, "Login broken (edited)");
    assert_eq!(
        all[0].ticket.split,
        Split::Train,
        "a stored ticket keeps its split"
    );
    assert_eq!(all[0].ticket.metadata["priority"], "high");
}

async fn a_batch_with_one_invalid_ticket_stores_nothing(store: AnyStore) {
    let project = project_with_tags(&store, &[]).await;
    let mut huge = new_ticket("T-2", "Huge");
    huge.body = "x".repeat(ticket::MAX_BODY_BYTES + 1);
    let error = store
        .upsert_tickets(project.id, &[new_ticket("T-1", "Fine"), huge])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("over the limit"), "{error}");
    assert!(
        store
            .search_tickets(project.id, &TicketQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_human_label_overrides_the_model_label_and_history_is_kept(store: AnyStore) {
    let project = project_with_tags(&store, &["Bug", "Billing"]).await;
    let tags = store.list_tags(project.id).await.unwrap();
    let id_of = |name: &str| tags.iter().find(|t| t.name.as_str() == name).unwrap().id;
    let ticket = store
        .upsert_tickets(project.id, &[new_ticket("T-1", "Charged twice")])
        .await
        .unwrap()[0]
        .id;
    let version = store
        .create_model_version(
            project.id,
            &NewModelVersion {
                kind: datasets::ModelKind::Ngram,
                files: [("weights.safetensors".to_string(), "ab12".to_string())].into(),
                ..NewModelVersion::default()
            },
        )
        .await
        .unwrap();
    let listed = store.model_versions(project.id).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&version));
    assert_eq!(
        store
            .model_version(project.id, version.id)
            .await
            .unwrap()
            .files["weights.safetensors"],
        "ab12"
    );
    store
        .set_model_metrics(
            project.id,
            version.id,
            &serde_json::json!({"accuracy": 0.5}),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .model_version(project.id, version.id)
            .await
            .unwrap()
            .metrics["accuracy"],
        0.5
    );

    store
        .set_model_labels(project.id, ticket, version.id, &[(id_of("Bug"), 0.91)])
        .await
        .unwrap();
    let tagged = store.ticket(project.id, ticket).await.unwrap();
    assert_eq!(tagged.tags, [tag_name("Bug")]);

    let corrected = store
        .set_human_labels(project.id, ticket, &[tag_name("billing")], "ana")
        .await
        .unwrap();
    assert_eq!(corrected.tags, [tag_name("Billing")]);
    let model_label = corrected
        .labels
        .iter()
        .find(|l| l.source == LabelSource::Model)
        .expect("the model's label is kept");
    assert_eq!(model_label.confidence, Some(0.91));
    let rejection = corrected
        .labels
        .iter()
        .find(|l| l.source == LabelSource::Human && l.tag.as_str() == "Bug")
        .expect("the person's rejection of Bug is recorded");
    assert!(!rejection.present);

    // A later model run does not override the person.
    store
        .set_model_labels(project.id, ticket, version.id, &[(id_of("Bug"), 0.95)])
        .await
        .unwrap();
    assert_eq!(
        store.ticket(project.id, ticket).await.unwrap().tags,
        [tag_name("Billing")]
    );

    let history = store.label_history(project.id, ticket).await.unwrap();
    let summary: Vec<(LabelSource, &str, LabelAction)> = history
        .iter()
        .map(|e| (e.source, e.tag.as_str(), e.action))
        .collect();
    assert_eq!(
        summary,
        [
            (LabelSource::Model, "Bug", LabelAction::Added),
            (LabelSource::Human, "Billing", LabelAction::Added),
            (LabelSource::Human, "Bug", LabelAction::Removed),
            (LabelSource::Model, "Bug", LabelAction::Added),
        ]
    );
    assert_eq!(history[1].set_by, "ana");
}

async fn unknown_and_archived_tags_are_refused_for_human_labels(store: AnyStore) {
    let project = project_with_tags(&store, &["Bug", "Old"]).await;
    let old = store
        .list_tags(project.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name.as_str() == "Old")
        .unwrap();
    store
        .update_tag(
            project.id,
            old.id,
            &TagUpdate {
                archived: Some(true),
                ..TagUpdate::default()
            },
        )
        .await
        .unwrap();
    let ticket = store
        .upsert_tickets(project.id, &[new_ticket("T-1", "x")])
        .await
        .unwrap()[0]
        .id;
    let unknown = store
        .set_human_labels(project.id, ticket, &[tag_name("Nope")], "ana")
        .await
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "tags: unknown tag \"Nope\" in project \"Acme\""
    );
    let archived = store
        .set_human_labels(project.id, ticket, &[tag_name("Old")], "ana")
        .await
        .unwrap_err();
    assert!(archived.to_string().contains("archived"));
    assert!(
        store
            .label_history(project.id, ticket)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_single_label_project_refuses_two_tags(store: AnyStore) {
    let project = store
        .create_project(&project_name("Intents"), LabelMode::Single)
        .await
        .unwrap();
    for tag in ["a", "b"] {
        store
            .create_tag(project.id, &NewTag::named(tag_name(tag)))
            .await
            .unwrap();
    }
    let ticket = store
        .upsert_tickets(project.id, &[new_ticket("T-1", "x")])
        .await
        .unwrap()[0]
        .id;
    let error = store
        .set_human_labels(project.id, ticket, &[tag_name("a"), tag_name("b")], "ana")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("single-label"), "{error}");
    let one = store
        .set_human_labels(project.id, ticket, &[tag_name("a")], "ana")
        .await
        .unwrap();
    assert_eq!(one.tags, [tag_name("a")]);
}

const TICKETS_CSV: &str = "id,subject,body,tags,priority\n\
    1,Login fails,I cannot log in,Account Access,high\n\
    2,Charged twice,\"Refund please, twice\",Billing;Bug,normal\n\
    3,Dark mode?,Would love dark mode,Feature Request,low\n\
    4,Unlabelled,Nobody tagged me,,low\n";

async fn import_creates_the_project_with_the_tags_found_in_the_file(store: AnyStore) {
    let mut options = csv_import_options("Imported");
    options.label_separator = Some(";".into());
    let report = import_csv(&store, &options, TICKETS_CSV).await.unwrap();
    assert!(report.project_created);
    assert_eq!(
        (
            report.rows_read,
            report.created,
            report.updated,
            report.labels
        ),
        (4, 4, 0, 4)
    );
    assert_eq!(report.tags_created.len(), 4);
    let project = store
        .project_by_name(&project_name("imported"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(project.label_mode, LabelMode::Multi);
    let tickets = store
        .search_tickets(project.id, &TicketQuery::default())
        .await
        .unwrap();
    let charged = tickets
        .iter()
        .find(|t| t.ticket.external_id == "2")
        .unwrap();
    assert_eq!(charged.tags, [tag_name("Billing"), tag_name("Bug")]);
    assert_eq!(charged.ticket.subject, "Charged twice");
    assert_eq!(charged.ticket.body, "Refund please, twice");
    assert_eq!(charged.ticket.metadata["priority"], "normal");
    assert_eq!(charged.labels[0].source, LabelSource::Import);
    assert_eq!(report.train + report.test, 4);
}

async fn a_bad_row_in_abort_mode_leaves_nothing_behind(store: AnyStore) {
    let options = csv_import_options("Aborted");
    let csv = "id,subject,body,tags\n1,Fine,Fine body,Bug\n2,,,Bug\n3,Also fine,body,Bug\n";
    let error = import_csv(&store, &options, csv).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "line 3: subject: subject and body are both empty (nothing was imported; use --on-bad-row skip to import the other rows)"
    );
    assert!(
        store
            .project_by_name(&project_name("Aborted"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.list_projects().await.unwrap().is_empty());
}

async fn skip_mode_imports_the_good_rows_and_reports_the_bad_ones_by_line(store: AnyStore) {
    let mut options = csv_import_options("Skipping");
    options.on_bad_row = OnBadRow::Skip;
    let huge = "y".repeat(ticket::MAX_BODY_BYTES + 10);
    let csv = format!(
        "id,subject,body,tags\n1,Fine,body,Bug\n2,Too big,{huge},Bug\n3,Extra,field,Bug,oops\n4,Fine too,body,\n"
    );
    let report = import_csv(&store, &options, &csv).await.unwrap();
    assert_eq!(report.created, 2);
    assert_eq!(report.skipped_count, 2);
    assert_eq!(report.skipped[0].line, 3);
    assert!(
        report.skipped[0].reason.contains("over the limit"),
        "{}",
        report.skipped[0].reason
    );
    assert_eq!(report.skipped[1].line, 4);
    assert!(report.skipped[1].reason.contains("malformed CSV"));
}

async fn reimporting_a_file_updates_tickets_and_replaces_their_imported_labels(store: AnyStore) {
    let mut options = csv_import_options("Again");
    options.label_separator = Some(";".into());
    let first = import_csv(&store, &options, TICKETS_CSV).await.unwrap();
    let changed = TICKETS_CSV.replace("Billing;Bug", "Billing");
    let second = import_csv(&store, &options, &changed).await.unwrap();
    assert_eq!((second.created, second.updated), (0, 4));
    let project = store
        .project_by_name(&project_name("Again"))
        .await
        .unwrap()
        .unwrap();
    let tickets = store
        .search_tickets(project.id, &TicketQuery::default())
        .await
        .unwrap();
    assert_eq!(tickets.len(), 4);
    let charged = tickets
        .iter()
        .find(|t| t.ticket.external_id == "2")
        .unwrap();
    assert_eq!(charged.tags, [tag_name("Billing")]);
    let history = store
        .label_history(project.id, charged.ticket.id)
        .await
        .unwrap();
    assert_eq!(history.last().unwrap().action, LabelAction::Removed);
    assert_eq!(first.train + first.test, second.train + second.test);
}

async fn an_existing_project_refuses_unknown_tags_unless_asked_to_create_them(store: AnyStore) {
    project_with_tags(&store, &["Billing", "Bug", "Account Access"]).await;
    let mut options = csv_import_options("Acme");
    options.label_separator = Some(";".into());
    let error = import_csv(&store, &options, TICKETS_CSV).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("line 4: unknown tag \"Feature Request\""),
        "{error}"
    );
    options.create_tags = true;
    let report = import_csv(&store, &options, TICKETS_CSV).await.unwrap();
    assert_eq!(report.tags_created, ["Feature Request"]);
}

async fn export_then_import_gives_the_same_tickets_and_tags(store: AnyStore) {
    let mut options = csv_import_options("Source");
    options.label_separator = Some(";".into());
    options.split = SplitChoice::Test;
    import_csv(&store, &options, TICKETS_CSV).await.unwrap();
    let source = store
        .project_by_name(&project_name("Source"))
        .await
        .unwrap()
        .unwrap();
    let mut exported = Vec::new();
    let count = export_project(
        &store,
        source.id,
        FileFormat::Csv,
        Personal::Kept,
        &mut exported,
    )
    .await
    .unwrap();
    assert_eq!(count, 4);

    let mut reimport = csv_import_options("Copy");
    reimport.columns.id = Some("external_id".into());
    reimport.label_separator = Some(";".into());
    let exported = String::from_utf8(exported).unwrap();
    import_csv(&store, &reimport, &exported).await.unwrap();
    let copy = store
        .project_by_name(&project_name("Copy"))
        .await
        .unwrap()
        .unwrap();
    let original = store.tickets_after(source.id, None, 100).await.unwrap();
    let copied = store.tickets_after(copy.id, None, 100).await.unwrap();
    let essence = |tickets: &[LabelledTicket]| {
        tickets
            .iter()
            .map(|t| {
                (
                    t.ticket.external_id.clone(),
                    t.ticket.subject.clone(),
                    t.ticket.body.clone(),
                    t.tags.clone(),
                    t.ticket.metadata.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(essence(&original), essence(&copied));

    let mut jsonl = Vec::new();
    export_project(
        &store,
        source.id,
        FileFormat::Jsonl,
        Personal::Masked,
        &mut jsonl,
    )
    .await
    .unwrap();
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8(jsonl).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["tags"], serde_json::json!(["Account Access"]));
    assert_eq!(first["split"], "test");

    // Personal data leaves masked unless kept: texts and metadata's strings alike.
    let mut personal = new_ticket("P-1", "Card problem");
    personal.body =
        "Write to ana@example.com or call +1 555 123 4567; card 4111 1111 1111 1111.".into();
    personal.metadata = serde_json::json!({"requester": {"email": "ana@example.com"}, "seats": 3});
    store.upsert_tickets(source.id, &[personal]).await.unwrap();
    let line = |personal: Personal| {
        let store = store.clone();
        async move {
            let mut out = Vec::new();
            export_project(&store, source.id, FileFormat::Jsonl, personal, &mut out)
                .await
                .unwrap();
            let text = String::from_utf8(out).unwrap();
            let line = text
                .lines()
                .find(|l| l.contains("\"P-1\""))
                .unwrap()
                .to_string();
            serde_json::from_str::<serde_json::Value>(&line).unwrap()
        }
    };
    let masked = line(Personal::Masked).await;
    assert_eq!(
        masked["body"],
        "Write to [email] or call [phone]; card [card]."
    );
    assert_eq!(
        masked["metadata"],
        serde_json::json!({"requester": {"email": "[email]"}, "seats": 3})
    );
    let kept = line(Personal::Kept).await;
    assert!(kept["body"].as_str().unwrap().contains("ana@example.com"));
}

async fn search_filters_by_text_tag_split_and_labelled_state(store: AnyStore) {
    let mut options = csv_import_options("Search");
    options.label_separator = Some(";".into());
    import_csv(&store, &options, TICKETS_CSV).await.unwrap();
    let project = store
        .project_by_name(&project_name("Search"))
        .await
        .unwrap()
        .unwrap();
    let search = |query: TicketQuery| {
        let store = store.clone();
        async move {
            let mut ids: Vec<String> = store
                .search_tickets(project.id, &query)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.ticket.external_id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(
        search(TicketQuery {
            text: Some("REFUND".into()),
            ..Default::default()
        })
        .await,
        ["2"]
    );
    assert_eq!(
        search(TicketQuery {
            text: Some("100%".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(TicketQuery {
            tag: Some(tag_name("bug")),
            ..Default::default()
        })
        .await,
        ["2"]
    );
    assert_eq!(
        search(TicketQuery {
            unlabelled: true,
            ..Default::default()
        })
        .await,
        ["4"]
    );
    let train = search(TicketQuery {
        split: Some(Split::Train),
        ..Default::default()
    })
    .await;
    let test = search(TicketQuery {
        split: Some(Split::Test),
        ..Default::default()
    })
    .await;
    assert_eq!(train.len() + test.len(), 4);
    assert_eq!(
        search(TicketQuery {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
}

async fn project_languages_default_to_none_and_are_kept_sorted(store: AnyStore) {
    let project = project_with_tags(&store, &[]).await;
    assert!(project.languages.is_empty());
    let languages = Language::parse_list("fra,eng").unwrap();
    let updated = store
        .set_project_languages(project.id, &languages)
        .await
        .unwrap();
    assert_eq!(Language::join(&updated.languages), "eng,fra");
    assert_eq!(
        store.project(project.id).await.unwrap().languages,
        languages
    );
    let by_name = store.project_by_name(&project.name).await.unwrap().unwrap();
    assert_eq!(by_name.languages, languages);
    let listed = store.list_projects().await.unwrap();
    assert_eq!(listed[0].project.languages, languages);
    let cleared = store.set_project_languages(project.id, &[]).await.unwrap();
    assert!(cleared.languages.is_empty());
    assert!(matches!(
        store
            .set_project_languages(ProjectId(999_999), &languages)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn the_store_keeps_the_raw_text_and_models_read_it_normalised(store: AnyStore) {
    let project = project_with_tags(&store, &[]).await;
    let body = "<p>Export&nbsp;fails</p><p>again</p><div>On Mon, 4 Mar 2024 at 10:00, Ana \
                &lt;a@example.com&gt; wrote:<br></div><blockquote>old</blockquote>";
    let ticket = NewTicket {
        body: body.into(),
        ..new_ticket("T-raw", "  Export   fails ")
    };
    let id = store.upsert_tickets(project.id, &[ticket]).await.unwrap()[0].id;
    let stored = store.ticket(project.id, id).await.unwrap();
    assert_eq!(stored.ticket.body, body);
    assert_eq!(stored.ticket.subject, "  Export   fails ");
    assert_eq!(stored.ticket.text(), "Export fails\nExport fails\n\nagain");
}

async fn tickets_page_in_id_order(store: AnyStore) {
    let project = project_with_tags(&store, &[]).await;
    let tickets: Vec<NewTicket> = (0..25)
        .map(|i| new_ticket(&format!("T-{i}"), "subject"))
        .collect();
    store.upsert_tickets(project.id, &tickets).await.unwrap();
    let mut after = None;
    let mut seen = Vec::new();
    loop {
        let page = store.tickets_after(project.id, after, 10).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.ticket.id);
        seen.extend(page.iter().map(|t| t.ticket.id));
    }
    assert_eq!(seen.len(), 25);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn an_unsupported_database_url_is_refused_with_a_clear_message() {
    let error = AnyStore::connect("mysql://root:secret@localhost/x")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "unsupported database URL \"mysql://root:***@localhost/x\": use sqlite://PATH or postgres://…"
    );
    let _ = TestDatabase::sqlite().unwrap();
}

async fn new_version(store: &AnyStore, project: ProjectId, macro_f1: f64) -> ModelVersion {
    store
        .create_model_version(
            project,
            &NewModelVersion {
                kind: datasets::ModelKind::Ngram,
                metrics: serde_json::json!({ "macro_f1": macro_f1 }),
                ..NewModelVersion::default()
            },
        )
        .await
        .unwrap()
}

async fn promotion_keeps_exactly_one_version_in_service_and_rollback_restores_the_previous(
    store: AnyStore,
) {
    let project = project_with_tags(&store, &[]).await;
    assert!(
        store
            .promoted_model_version(project.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.rollback_model_version(project.id, "ana").await,
        Err(StoreError::Conflict(_))
    ));
    let first = new_version(&store, project.id, 0.8).await;
    let second = new_version(&store, project.id, 0.85).await;
    assert_eq!(first.status, "candidate");

    let promoted = store
        .promote_model_version(project.id, first.id, "ana")
        .await
        .unwrap();
    assert_eq!((promoted.version, promoted.previous), (first.id, None));
    let error = store
        .rollback_model_version(project.id, "ana")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("nothing to roll back to"),
        "{error}"
    );
    assert!(matches!(
        store
            .promote_model_version(project.id, first.id, "ana")
            .await,
        Err(StoreError::Conflict(_))
    ));

    let swap = store
        .promote_model_version(project.id, second.id, "ben")
        .await
        .unwrap();
    assert_eq!(swap.previous, Some(first.id));
    let statuses = |versions: Vec<ModelVersion>| {
        versions
            .into_iter()
            .map(|v| (v.id, v.status))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        statuses(store.model_versions(project.id).await.unwrap()),
        [
            (second.id, "promoted".to_string()),
            (first.id, "retired".to_string())
        ]
    );

    let back = store
        .rollback_model_version(project.id, "cy")
        .await
        .unwrap();
    assert_eq!(
        (back.version, back.previous, back.action),
        (first.id, Some(second.id), PromotionAction::Rollback)
    );
    assert_eq!(
        store
            .promoted_model_version(project.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );
    let history = store.model_promotions(project.id).await.unwrap();
    let summary: Vec<(&str, PromotionAction)> = history
        .iter()
        .map(|p| (p.actor.as_str(), p.action))
        .collect();
    assert_eq!(
        summary,
        [
            ("cy", PromotionAction::Rollback),
            ("ben", PromotionAction::Promote),
            ("ana", PromotionAction::Promote)
        ]
    );
    let unknown = store
        .promote_model_version(project.id, ModelVersionId(9999), "ana")
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound(_))));
}

async fn api_keys_authenticate_until_revoked(store: AnyStore) {
    let acme = project_with_tags(&store, &[]).await;
    let other = store
        .create_project(&project_name("Other"), LabelMode::Multi)
        .await
        .unwrap();
    let grant = KeyGrant::Project {
        project_id: acme.id,
        scopes: "tag,read".parse().unwrap(),
    };
    let created = store
        .create_api_key(&grant, "zendesk connector")
        .await
        .unwrap();
    assert!(created.secret.starts_with("tt_"));
    let found = store
        .authenticate_api_key(&created.secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.grant, grant);
    assert_eq!(found.actor(), "api-key:zendesk connector");
    assert!(
        store
            .authenticate_api_key("tt_00000000_000000000000000000000000000000000000000000000000")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .authenticate_api_key("not a key")
            .await
            .unwrap()
            .is_none()
    );
    let mut wrong_secret = created.secret.clone();
    wrong_secret.pop();
    wrong_secret.push(if created.secret.ends_with('0') {
        '1'
    } else {
        '0'
    });
    assert!(
        store
            .authenticate_api_key(&wrong_secret)
            .await
            .unwrap()
            .is_none()
    );

    assert!(matches!(
        store.revoke_api_key(Some(other.id), created.key.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.revoke_api_key(None, created.key.id).await,
        Err(StoreError::NotFound(_))
    ));
    let revoked = store
        .revoke_api_key(Some(acme.id), created.key.id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(
        store
            .authenticate_api_key(&created.secret)
            .await
            .unwrap()
            .is_none()
    );
    let listed = store.api_keys(Some(acme.id)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        !serde_json::to_string(&listed)
            .unwrap()
            .contains(&created.secret)
    );
    assert!(matches!(
        store.create_api_key(&grant, "  ").await,
        Err(StoreError::Invalid(_))
    ));
    let no_scopes = KeyGrant::Project {
        project_id: acme.id,
        scopes: Scopes::default(),
    };
    assert!(matches!(
        store.create_api_key(&no_scopes, "nothing").await,
        Err(StoreError::Invalid(_))
    ));
}

async fn a_ticket_and_its_model_labels_are_stored_together_or_not_at_all(store: AnyStore) {
    let project = project_with_tags(&store, &["Bug", "Billing"]).await;
    let other = store
        .create_project(&project_name("Other"), LabelMode::Multi)
        .await
        .unwrap();
    let foreign = store
        .create_tag(other.id, &NewTag::named(tag_name("Foreign")))
        .await
        .unwrap();
    let tags = store.list_tags(project.id).await.unwrap();
    let id_of = |name: &str| tags.iter().find(|t| t.name.as_str() == name).unwrap().id;
    let version = store
        .create_model_version(
            project.id,
            &NewModelVersion {
                kind: datasets::ModelKind::Ngram,
                ..NewModelVersion::default()
            },
        )
        .await
        .unwrap();

    let first = store
        .upsert_ticket_with_model_labels(
            project.id,
            &new_ticket("T-1", "crash"),
            version.id,
            &[(id_of("Bug"), 0.9), (id_of("Billing"), 0.7)],
        )
        .await
        .unwrap();
    assert!(first.created);
    let stored = store.ticket(project.id, first.id).await.unwrap();
    assert_eq!(stored.tags, [tag_name("Billing"), tag_name("Bug")]);
    assert!(stored.labels.iter().all(|l| l.source == LabelSource::Model));

    // The same ticket again: updated in place, its model labels replaced.
    let again = store
        .upsert_ticket_with_model_labels(
            project.id,
            &new_ticket("T-1", "crash again"),
            version.id,
            &[(id_of("Bug"), 0.95)],
        )
        .await
        .unwrap();
    assert_eq!((again.id, again.created), (first.id, false));
    let stored = store.ticket(project.id, first.id).await.unwrap();
    assert_eq!(stored.ticket.subject, "crash again");
    assert_eq!(stored.tags, [tag_name("Bug")]);

    // A tag of another project refuses the whole write: no ticket without its verdict.
    let error = store
        .upsert_ticket_with_model_labels(
            project.id,
            &new_ticket("T-2", "refused"),
            version.id,
            &[(foreign.id, 0.9)],
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    let page = store.tickets_after(project.id, None, 10).await.unwrap();
    assert_eq!(page.len(), 1, "{page:?}");
}

async fn instance_admin_keys_belong_to_no_project(store: AnyStore) {
    let acme = project_with_tags(&store, &[]).await;
    let project_key = store
        .create_api_key(
            &KeyGrant::Project {
                project_id: acme.id,
                scopes: Scopes::all(),
            },
            "connector",
        )
        .await
        .unwrap();
    let admin = store
        .create_api_key(&KeyGrant::InstanceAdmin, "provisioning")
        .await
        .unwrap();
    let found = store
        .authenticate_api_key(&admin.secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.grant, KeyGrant::InstanceAdmin);
    let instance_keys = store.api_keys(None).await.unwrap();
    assert_eq!(
        instance_keys.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![admin.key.id]
    );
    let project_keys = store.api_keys(Some(acme.id)).await.unwrap();
    assert_eq!(
        project_keys.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![project_key.key.id]
    );
    // A project's key cannot be revoked as an instance key, nor the other way round.
    assert!(matches!(
        store.revoke_api_key(None, project_key.key.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.revoke_api_key(Some(acme.id), admin.key.id).await,
        Err(StoreError::NotFound(_))
    ));
    store.revoke_api_key(None, admin.key.id).await.unwrap();
    assert!(
        store
            .authenticate_api_key(&admin.secret)
            .await
            .unwrap()
            .is_none()
    );
}
