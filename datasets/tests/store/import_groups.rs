//! Importing by tag group (`--group-column GROUP=COLUMN`) and the grouped demo project, on
//! both databases.

use datasets::export::{Personal, export_project};
use datasets::import::{ColumnMap, FileFormat, ImportError, ImportOptions, OnBadRow, import_file};
use datasets::store::prelude::*;
use datasets::*;
use std::collections::HashMap;

fn name(text: &str) -> TagName {
    TagName::parse(text).unwrap()
}

fn options(project: &str, format: FileFormat, groups: &[&str]) -> ImportOptions {
    let mut options = ImportOptions::new(
        ProjectName::parse(project).unwrap(),
        format,
        ColumnMap {
            text: vec!["subject".into(), "body".into()],
            label: Some("topics".into()),
            id: Some("id".into()),
            groups: Vec::new(),
        },
        "tickets",
    );
    options.label_separator = Some(";".into());
    options.group_columns = groups.iter().map(|g| g.parse().unwrap()).collect();
    options
}

async fn import(
    store: &AnyStore,
    options: &ImportOptions,
    text: &str,
) -> Result<import::ImportReport, ImportError> {
    import_file(
        store,
        std::io::Cursor::new(text.as_bytes().to_vec()),
        options,
        &datasets::ingest::Untagged,
    )
    .await
}

/// Each tag's group by name, and each ticket's tags by external id.
async fn stored(
    store: &AnyStore,
    project: &str,
) -> (HashMap<String, String>, HashMap<String, Vec<String>>) {
    let project = store
        .project_by_name(&ProjectName::parse(project).unwrap())
        .await
        .unwrap()
        .unwrap();
    let groups = store.list_tag_groups(project.id).await.unwrap();
    let group_of = store
        .list_tags(project.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            let group = groups.iter().find(|g| g.id == t.group_id).unwrap();
            (t.name.to_string(), group.name.to_string())
        })
        .collect();
    let tickets = store
        .tickets_after(project.id, None, 5000)
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            (
                t.ticket.external_id.clone(),
                t.tags.iter().map(|n| n.to_string()).collect(),
            )
        })
        .collect();
    (group_of, tickets)
}

const GROUPED_CSV: &str = "id,subject,body,topics,priority,type\n\
1,Charged twice,Refund please,Billing,High,Bug\n\
2,Dark mode,Would be great,,Low,Feature Request\n\
3,Login loop,SSO sends me back,Account Access;Security,Urgent,Bug\n\
4,How to export,Where is it,,,Question\n";

datasets::on_both_backends!(
    group_columns_create_their_groups_and_file_each_tag_in_its_group,
    a_group_the_project_lacks_stops_the_import_before_anything_is_written,
    a_tag_of_another_group_and_two_tags_of_a_single_choice_group_are_bad_rows,
    a_multi_choice_group_column_is_split_and_jsonl_lists_are_taken,
    the_grouped_demo_project_has_type_priority_and_topics,
    an_export_carries_tags_by_group_and_reimports_into_the_same_groups,
);

async fn group_columns_create_their_groups_and_file_each_tag_in_its_group(store: AnyStore) {
    let options = options(
        "Grouped",
        FileFormat::Csv,
        &["Priority=priority", "Type=type"],
    );
    let report = import(&store, &options, GROUPED_CSV).await.unwrap();
    assert!(report.project_created);
    assert_eq!(report.groups_created, ["Priority", "Type"]);
    assert_eq!((report.created, report.labels), (4, 10));
    let project = store
        .project_by_name(&ProjectName::parse("Grouped").unwrap())
        .await
        .unwrap()
        .unwrap();
    let groups: Vec<(String, GroupChoice)> = store
        .list_tag_groups(project.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.name.to_string(), g.choice))
        .collect();
    assert_eq!(
        groups,
        [
            ("Tags".to_string(), GroupChoice::Multi),
            ("Priority".to_string(), GroupChoice::Single),
            ("Type".to_string(), GroupChoice::Single),
        ]
    );
    let (group_of, tickets) = stored(&store, "Grouped").await;
    for (tag, group) in [
        ("Billing", "Tags"),
        ("Security", "Tags"),
        ("High", "Priority"),
        ("Urgent", "Priority"),
        ("Bug", "Type"),
        ("Question", "Type"),
    ] {
        assert_eq!(group_of[tag], group, "{tag}");
    }
    let mut login = tickets["3"].clone();
    login.sort();
    assert_eq!(login, ["Account Access", "Bug", "Security", "Urgent"]);
    assert_eq!(tickets["4"], ["Question"]);
    // The group columns are the tags' source, not metadata.
    let charged = store
        .search_tickets(project.id, &TicketQuery::default())
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.ticket.external_id == "1")
        .unwrap();
    assert!(charged.ticket.metadata.get("priority").is_none());

    // Importing the same file again into the now existing project finds the groups.
    let again = import(&store, &options, GROUPED_CSV).await.unwrap();
    assert!(again.groups_created.is_empty() && again.tags_created.is_empty());
    assert_eq!(again.updated, 4);
}

async fn a_group_the_project_lacks_stops_the_import_before_anything_is_written(store: AnyStore) {
    let project = store
        .create_project(&ProjectName::parse("Existing").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    for tag in ["Billing", "Account Access", "Security"] {
        store
            .create_tag(project.id, &NewTag::named(name(tag)))
            .await
            .unwrap();
    }
    let mut options = options("Existing", FileFormat::Csv, &["Priority=priority"]);
    let error = import(&store, &options, GROUPED_CSV).await.unwrap_err();
    assert!(
        matches!(&error, ImportError::UnknownGroup { group, .. } if group == "Priority"),
        "{error:?}"
    );
    assert!(error.to_string().contains("--create-tags"), "{error}");
    assert_eq!(store.list_tag_groups(project.id).await.unwrap().len(), 1);
    assert!(
        store
            .search_tickets(project.id, &TicketQuery::default())
            .await
            .unwrap()
            .is_empty()
    );

    // Two columns for one group are refused as well, before anything is written.
    options.create_tags = true;
    options.group_columns = vec![
        "Priority=priority".parse().unwrap(),
        "priority=type".parse().unwrap(),
    ];
    let error = import(&store, &options, GROUPED_CSV).await.unwrap_err();
    assert!(matches!(error, ImportError::GroupTwice(_)), "{error:?}");
    assert_eq!(store.list_tag_groups(project.id).await.unwrap().len(), 1);

    // Allowed to create tags, the import creates the group (single-choice) and its tags.
    options.group_columns = vec!["Priority=priority".parse().unwrap()];
    let report = import(&store, &options, GROUPED_CSV).await.unwrap();
    assert_eq!(report.groups_created, ["Priority"]);
    let groups = store.list_tag_groups(project.id).await.unwrap();
    assert_eq!(groups[1].name.as_str(), "Priority");
    assert_eq!(groups[1].choice, GroupChoice::Single);
    let (group_of, _) = stored(&store, "Existing").await;
    assert_eq!(group_of["Urgent"], "Priority");
}

async fn a_tag_of_another_group_and_two_tags_of_a_single_choice_group_are_bad_rows(
    store: AnyStore,
) {
    let project = store
        .create_project(&ProjectName::parse("Strict").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    for group in ["Type", "Priority"] {
        store
            .create_tag_group(
                project.id,
                &NewTagGroup {
                    name: TagGroupName::parse(group).unwrap(),
                    choice: GroupChoice::Single,
                },
            )
            .await
            .unwrap();
    }
    for (tag, group) in [
        ("Billing", None),
        ("Bug", Some("Type")),
        ("Question", Some("Type")),
        ("Low", Some("Priority")),
        ("High", Some("Priority")),
    ] {
        let mut new = NewTag::named(name(tag));
        new.group = group.map(|g| TagGroupName::parse(g).unwrap());
        store.create_tag(project.id, &new).await.unwrap();
    }
    let mut options = options(
        "Strict",
        FileFormat::Csv,
        &["Priority=priority", "Type=type"],
    );
    options.on_bad_row = OnBadRow::Skip;
    let csv = "id,subject,body,topics,priority,type\n\
1,Good,A fine row,Billing,High,Bug\n\
2,Wrong group,Priority names a type,Billing,Bug,Bug\n\
3,Clash,Label column and type column disagree,Question,Low,Bug\n\
4,Unknown,No such level,,Sky-high,Bug\n\
5,Also good,Another fine row,,Low,Question\n";
    let report = import(&store, &options, csv).await.unwrap();
    assert_eq!(report.created, 2, "{report:?}");
    let reasons: Vec<(u64, &str)> = report
        .skipped
        .iter()
        .map(|p| (p.line, p.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0].0, 3);
    assert!(
        reasons[0]
            .1
            .contains("\"Bug\" is in group \"Type\", not in \"Priority\""),
        "{reasons:?}"
    );
    assert_eq!(reasons[1].0, 4);
    assert!(reasons[1].1.contains("single-choice"), "{reasons:?}");
    assert_eq!(reasons[2].0, 5);
    assert!(
        reasons[2].1.contains("unknown tag \"Sky-high\""),
        "{reasons:?}"
    );
    // Nothing was created for the bad rows.
    assert!(report.tags_created.is_empty() && report.groups_created.is_empty());
    let (_, tickets) = stored(&store, "Strict").await;
    let mut good = tickets["1"].clone();
    good.sort();
    assert_eq!(good, ["Billing", "Bug", "High"]);
    let mut other = tickets["5"].clone();
    other.sort();
    assert_eq!(other, ["Low", "Question"]);
    assert!(!tickets.contains_key("2") && !tickets.contains_key("3"));

    // In abort mode the first bad row stops the import.
    options.on_bad_row = OnBadRow::Abort;
    let error = import(&store, &options, csv).await.unwrap_err();
    assert!(
        matches!(&error, ImportError::BadRow { problem, .. } if problem.line == 3),
        "{error:?}"
    );
}

async fn a_multi_choice_group_column_is_split_and_jsonl_lists_are_taken(store: AnyStore) {
    let project = store
        .create_project(&ProjectName::parse("Lines").unwrap(), LabelMode::Multi)
        .await
        .unwrap();
    store
        .create_tag_group(
            project.id,
            &NewTagGroup {
                name: TagGroupName::parse("Areas").unwrap(),
                choice: GroupChoice::Multi,
            },
        )
        .await
        .unwrap();
    let mut options = options("Lines", FileFormat::Jsonl, &["Areas=areas", "Type=type"]);
    options.create_tags = true;
    options.on_bad_row = OnBadRow::Skip;
    let jsonl = concat!(
        r#"{"id": "1", "subject": "Export", "body": "CSV export fails", "areas": "Reports;Export", "type": "Bug"}"#,
        "\n",
        r#"{"id": "2", "subject": "Sync", "body": "Sync is slow", "areas": ["Sync", "Reports"], "type": ["Bug"]}"#,
        "\n",
        r#"{"id": "3", "subject": "Two", "body": "Two types", "areas": [], "type": ["Bug", "Question"]}"#,
        "\n",
    );
    let report = import(&store, &options, jsonl).await.unwrap();
    assert_eq!(report.groups_created, ["Type"]);
    assert_eq!(report.created, 2, "{report:?}");
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0]
            .reason
            .contains("group \"Type\" is single-choice but its column gives 2 tags"),
        "{:?}",
        report.skipped
    );
    let (group_of, tickets) = stored(&store, "Lines").await;
    assert_eq!(group_of["Export"], "Areas");
    assert_eq!(group_of["Sync"], "Areas");
    assert_eq!(group_of["Bug"], "Type");
    let mut first = tickets["1"].clone();
    first.sort();
    assert_eq!(first, ["Bug", "Export", "Reports"]);
    let mut second = tickets["2"].clone();
    second.sort();
    assert_eq!(second, ["Bug", "Reports", "Sync"]);
}

async fn the_grouped_demo_project_has_type_priority_and_topics(store: AnyStore) {
    let project = datasets::demo_project::install_grouped_demo_project(
        &store,
        &ProjectName::parse("Demo").unwrap(),
        300,
        11,
    )
    .await
    .unwrap();
    let groups = store.list_tag_groups(project.id).await.unwrap();
    let shown: Vec<(&str, GroupChoice, bool)> = groups
        .iter()
        .map(|g| (g.name.as_str(), g.choice, g.is_default))
        .collect();
    assert_eq!(
        shown,
        [
            ("Topics", GroupChoice::Multi, true),
            ("Type", GroupChoice::Single, false),
            ("Priority", GroupChoice::Single, false),
        ]
    );
    let tags = store.list_tags(project.id).await.unwrap();
    assert_eq!(tags.len(), 14);
    let urgent = tags.iter().find(|t| t.name.as_str() == "Urgent").unwrap();
    assert!(!urgent.description.is_empty());
    let security = tags.iter().find(|t| t.name.as_str() == "Security").unwrap();
    assert!(!security.keywords.include.is_empty());
    let (group_of, tickets) = stored(&store, "Demo").await;
    assert_eq!(tickets.len(), 300);
    let labelled: Vec<&Vec<String>> = tickets.values().filter(|t| !t.is_empty()).collect();
    assert!(labelled.len() > 200, "{}", labelled.len());
    for tags in labelled {
        let count = |group: &str| tags.iter().filter(|t| group_of[*t] == group).count();
        assert_eq!((count("Type"), count("Priority")), (1, 1), "{tags:?}");
    }
}

async fn an_export_carries_tags_by_group_and_reimports_into_the_same_groups(store: AnyStore) {
    let source = options(
        "Source",
        FileFormat::Csv,
        &["Priority=priority", "Type=type"],
    );
    import(&store, &source, GROUPED_CSV).await.unwrap();
    let project = store
        .project_by_name(&ProjectName::parse("Source").unwrap())
        .await
        .unwrap()
        .unwrap();
    // The default group is called "Tags", like the fixed `tags` column: its column is
    // `group:Tags`; the others are named after their groups.
    let mut csv = Vec::new();
    export_project(
        &store,
        project.id,
        FileFormat::Csv,
        Personal::Kept,
        &mut csv,
    )
    .await
    .unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.ends_with(",metadata,group:Tags,Priority,Type"),
        "{header}"
    );
    let login = csv.lines().find(|l| l.contains("Login loop")).unwrap();
    assert!(
        login.ends_with(",Account Access;Security,Urgent,Bug"),
        "{login}"
    );

    let mut jsonl = Vec::new();
    export_project(
        &store,
        project.id,
        FileFormat::Jsonl,
        Personal::Kept,
        &mut jsonl,
    )
    .await
    .unwrap();
    let jsonl = String::from_utf8(jsonl).unwrap();
    let line: serde_json::Value = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["external_id"] == "3")
        .unwrap();
    assert_eq!(
        line["groups"],
        serde_json::json!({"Tags": ["Account Access", "Security"], "Priority": ["Urgent"], "Type": ["Bug"]})
    );

    // Both re-import, by group, into new projects whose groups and tags match the source's.
    let (source_groups, source_tickets) = stored(&store, "Source").await;
    for (copy, format, text) in [
        ("Copy csv", FileFormat::Csv, &csv),
        ("Copy jsonl", FileFormat::Jsonl, &jsonl),
    ] {
        let mut again = ImportOptions::new(
            ProjectName::parse(copy).unwrap(),
            format,
            ColumnMap {
                text: vec!["subject".into(), "body".into()],
                // The export's `tags` repeats every tag: found in the groups the group
                // columns put them in.
                label: Some("tags".into()),
                id: Some("external_id".into()),
                groups: Vec::new(),
            },
            "export",
        );
        again.label_separator = Some(";".into());
        let tags_column = match format {
            FileFormat::Csv => "Tags=group:Tags",
            FileFormat::Jsonl => "Tags=Tags",
        };
        again.group_columns = [tags_column, "Priority=Priority", "Type=Type"]
            .iter()
            .map(|g| g.parse().unwrap())
            .collect();
        import(&store, &again, text).await.unwrap();
        let (groups, tickets) = stored(&store, copy).await;
        assert_eq!(groups, source_groups, "{copy}");
        let sorted = |map: &HashMap<String, Vec<String>>| {
            let mut all: Vec<(String, Vec<String>)> = map
                .iter()
                .map(|(id, tags)| {
                    let mut tags = tags.clone();
                    tags.sort();
                    (id.clone(), tags)
                })
                .collect();
            all.sort();
            all
        };
        assert_eq!(sorted(&tickets), sorted(&source_tickets), "{copy}");
        // The export's bookkeeping did not become metadata.
        let copy_project = store
            .project_by_name(&ProjectName::parse(copy).unwrap())
            .await
            .unwrap()
            .unwrap();
        for ticket in store
            .search_tickets(copy_project.id, &TicketQuery::default())
            .await
            .unwrap()
        {
            let metadata = ticket.ticket.metadata.as_object().unwrap();
            assert!(
                !metadata.contains_key("groups") && !metadata.contains_key("Type"),
                "{copy}: {metadata:?}"
            );
        }
    }
}
