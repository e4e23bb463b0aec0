//! What a training run learns from, counted the way the learning curve on the Models page
//! reads it: examples whose truth a person gave in the workbench apart from imported ones.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::test_db::TestDatabase;
use datasets::*;
use trainer::examples::load_training_data;

#[tokio::test]
async fn training_data_counts_the_train_tickets_people_labelled_by_hand() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let name = ProjectName::parse("Curve").unwrap();
    let project =
        datasets::demo_project::install_demo_project(&store, &name, LabelMode::Multi, 120, 7)
            .await
            .unwrap();
    let before = load_training_data(&store, &project).await.unwrap();
    assert_eq!(before.labelled_by_hand, 0);

    let tag = store.list_tags(project.id).await.unwrap()[0].name.clone();
    let tickets = store.tickets_after(project.id, None, 1000).await.unwrap();
    let train: Vec<_> = tickets
        .iter()
        .filter(|t| t.ticket.split == Split::Train)
        .take(5)
        .collect();
    let test = tickets
        .iter()
        .find(|t| t.ticket.split == Split::Test)
        .unwrap();
    for ticket in train.iter().map(|t| t.ticket.id).chain([test.ticket.id]) {
        store
            .set_human_labels(project.id, ticket, std::slice::from_ref(&tag), "ana")
            .await
            .unwrap();
    }
    let after = load_training_data(&store, &project).await.unwrap();
    // A held-out ticket a person labelled is judged on, never learned from.
    assert_eq!(after.labelled_by_hand, 5);
    assert_eq!(
        after.train.len() + after.validation.len(),
        before.train.len() + before.validation.len()
    );
}
