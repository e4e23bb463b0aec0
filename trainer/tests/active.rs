//! Scoring a project into its review queue against a real store: cold start without a
//! model, margin ranking with the promoted model, keyword-rule disagreements, and the
//! tickets that must never be queued (labelled, imported, test split).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::*;
use inference::calibration::probabilities;
use inference::decision::ReviewReason;
use std::collections::HashSet;
use trainer::active::uncertainty::{ModelView, margin};
use trainer::active::{ScoreOptions, Strategy, score_project};
use trainer::run::TrainRequest;
use trainer::{load_version, train};

async fn demo(store: &AnyStore, mode: LabelMode) -> Project {
    let name = ProjectName::parse("Demo").unwrap();
    datasets::demo_project::install_demo_project(store, &name, mode, 600, 11)
        .await
        .unwrap()
}

async fn all_tickets(store: &AnyStore, project: ProjectId) -> Vec<LabelledTicket> {
    store.tickets_after(project, None, 5000).await.unwrap()
}

fn is_unlabelled_train(ticket: &LabelledTicket) -> bool {
    ticket.ticket.split == Split::Train
        && !ticket
            .labels
            .iter()
            .any(|l| matches!(l.source, LabelSource::Human | LabelSource::Import))
}

/// Options that never find a sentence encoder, so tests do not depend on the download.
fn offline(queue_size: usize) -> (ScoreOptions, tempfile::TempDir) {
    let empty = tempfile::tempdir().unwrap();
    let options = ScoreOptions {
        queue_size,
        hub_cache: Some(empty.path().to_path_buf()),
        ..ScoreOptions::default()
    };
    (options, empty)
}

async fn train_and_promote(
    store: &AnyStore,
    project: &Project,
    models: &std::path::Path,
) -> ModelVersion {
    let mut request = TrainRequest::default();
    request.ngram.epochs = 6;
    let outcome = train(store, project, &request, models, |_| {})
        .await
        .unwrap();
    store
        .promote_model_version(project.id, outcome.version.id, "test")
        .await
        .unwrap();
    outcome.version
}

#[tokio::test]
async fn without_a_model_the_queue_starts_cold_with_diverse_unlabelled_train_tickets() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo(&store, LabelMode::Multi).await;
    let candidates: HashSet<TicketId> = all_tickets(&store, project.id)
        .await
        .iter()
        .filter(|t| is_unlabelled_train(t))
        .map(|t| t.ticket.id)
        .collect();
    assert!(candidates.len() > 20, "the demo has unlabelled tickets");
    let (options, _cache) = offline(20);
    let summary = score_project(&store, project.id, Strategy::Margin, &options)
        .await
        .unwrap();
    assert_eq!(summary.requested, Strategy::Margin);
    assert_eq!(summary.strategy, Strategy::ColdStart);
    assert_eq!(summary.model_version, None);
    assert_eq!(summary.vectors, Some("ngrams"));
    assert_eq!(summary.candidates, candidates.len());
    assert_eq!(summary.queued, 20);
    let batch = store
        .lease_review_tickets(project.id, "ana", 20, 600)
        .await
        .unwrap();
    assert_eq!(batch.len(), 20);
    assert!(batch.iter().all(|e| candidates.contains(&e.ticket_id)));
    assert!(batch.iter().all(|e| e.strategy == "cold-start"));
    // Diverse: no two queued tickets share the same text.
    let mut texts = HashSet::new();
    for entry in &batch {
        let ticket = store.ticket(project.id, entry.ticket_id).await.unwrap();
        assert!(texts.insert(ticket.ticket.text()), "a duplicate was queued");
    }
}

#[tokio::test]
async fn with_the_promoted_model_margin_ranks_unlabelled_train_tickets_closest_first() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo(&store, LabelMode::Single).await;
    let models = tempfile::tempdir().unwrap();
    let version = train_and_promote(&store, &project, models.path()).await;
    // A person labels one unlabelled ticket: it must not be queued.
    let tickets = all_tickets(&store, project.id).await;
    let labelled_now = tickets.iter().find(|t| is_unlabelled_train(t)).unwrap();
    store
        .set_human_labels(project.id, labelled_now.ticket.id, &[], "ana")
        .await
        .unwrap();
    let candidates: Vec<&LabelledTicket> = tickets
        .iter()
        .filter(|t| is_unlabelled_train(t) && t.ticket.id != labelled_now.ticket.id)
        .collect();

    let (options, _cache) = offline(10);
    let summary = score_project(&store, project.id, Strategy::Margin, &options)
        .await
        .unwrap();
    assert_eq!(summary.strategy, Strategy::Margin);
    assert_eq!(summary.model_version, Some(version.id));
    // The ticket answered with no tags has no label row; its recorded answer keeps it out.
    assert_eq!(summary.candidates, candidates.len());
    let batch = store
        .lease_review_tickets(project.id, "ana", 10, 600)
        .await
        .unwrap();
    assert_eq!(batch.len(), 10);

    // Recompute every candidate's margin with the model: the queue holds the ten best, in order.
    let model = load_version(&version).unwrap();
    let tags: Vec<String> = model
        .card
        .tags
        .iter()
        .map(|t| t.name.as_str().to_string())
        .collect();
    let view = ModelView {
        mode: model.card.label_mode,
        tags: &tags,
        thresholds: &model.card.thresholds,
    };
    let mut expected: Vec<(f32, TicketId)> = candidates
        .iter()
        .map(|t| {
            let p = probabilities(
                &model.logits(&t.ticket.text()),
                model.card.temperature,
                model.card.label_mode,
            );
            (margin(&p, &view).score, t.ticket.id)
        })
        .collect();
    expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // Tickets unlike the training data lead (at most a quarter of the queue), each beyond the
    // version's threshold; the rest are the best margins of the other candidates, in order.
    let unfamiliar = ReviewReason::Unfamiliar.describe();
    let strange: Vec<TicketId> = batch
        .iter()
        .take_while(|e| e.reason.starts_with(unfamiliar))
        .map(|e| e.ticket_id)
        .collect();
    assert!(strange.len() <= 2, "{batch:?}");
    assert_eq!(summary.unfamiliar, strange.len());
    for id in &strange {
        let text = tickets
            .iter()
            .find(|t| t.ticket.id == *id)
            .unwrap()
            .ticket
            .text();
        let scored = model.score_batch(&[text.as_str()]).unwrap();
        assert!(model.unfamiliarity(&scored[0]).unwrap().is_beyond());
    }
    expected.retain(|(_, id)| !strange.contains(id));
    let ranked = &batch[strange.len()..];
    for (entry, (score, _)) in ranked.iter().zip(&expected) {
        assert!(
            (entry.score - score).abs() < 1e-4,
            "{} vs {score}",
            entry.score
        );
        assert!(entry.reason.starts_with("margin "), "{}", entry.reason);
        assert!(entry.reason.contains(" between "), "{}", entry.reason);
    }
    assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score));
    assert_ne!(batch[0].ticket_id, labelled_now.ticket.id);
    let by_id: std::collections::HashMap<TicketId, &LabelledTicket> =
        tickets.iter().map(|t| (t.ticket.id, t)).collect();
    assert!(
        batch
            .iter()
            .all(|e| is_unlabelled_train(by_id[&e.ticket_id]))
    );
}

#[tokio::test]
async fn disagreement_queues_tickets_where_a_keyword_rule_and_the_model_differ() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo(&store, LabelMode::Multi).await;
    let models = tempfile::tempdir().unwrap();
    train_and_promote(&store, &project, models.path()).await;
    // A rule the model never learned: any ticket mentioning "zebra" is Billing.
    let tags = store.list_tags(project.id).await.unwrap();
    let billing = tags.iter().find(|t| t.name.as_str() == "Billing").unwrap();
    store
        .update_tag(
            project.id,
            billing.id,
            &TagUpdate {
                keywords: Some(KeywordRules {
                    include: vec!["zebra".into()],
                    exclude: Vec::new(),
                }),
                ..TagUpdate::default()
            },
        )
        .await
        .unwrap();
    let zebra = store
        .upsert_tickets(
            project.id,
            &[NewTicket {
                source: "api".into(),
                external_id: "Z-1".into(),
                subject: "The app crashes when I open the zebra screen".into(),
                body: "Stack trace attached, it crashes every time.".into(),
                metadata: serde_json::json!({}),
                created_at: None,
                split: Split::Train,
            }],
        )
        .await
        .unwrap()[0]
        .id;
    // Every ticket queued and the whole queue leased (a lease takes at most 500, so one
    // reviewer after another until it is empty): many rule conflicts score near 1, so where
    // the zebra ticket ranks among them is a near-tie that may differ between CPUs; that it
    // is queued, with the disagreement as its reason, is asserted.
    let (options, _cache) = offline(5_000);
    let summary = score_project(&store, project.id, Strategy::Disagreement, &options)
        .await
        .unwrap();
    assert_eq!(summary.strategy, Strategy::Disagreement);
    let mut batch = Vec::new();
    for reviewer in 0.. {
        let leased = store
            .lease_review_tickets(project.id, &format!("reviewer-{reviewer}"), 500, 600)
            .await
            .unwrap();
        if leased.is_empty() {
            break;
        }
        batch.extend(leased);
    }
    let entry = batch
        .iter()
        .find(|e| e.ticket_id == zebra)
        .expect("the zebra ticket is queued");
    // (After "unlike the tickets this model learned from; " when the ticket is also that.)
    assert!(
        entry
            .reason
            .contains("a keyword rule adds Billing, the model gives it"),
        "{}",
        entry.reason
    );
    assert!(batch.iter().all(|e| e.strategy == "disagreement"));
}

#[tokio::test]
async fn tickets_without_words_go_first_with_their_reason_and_the_rest_keep_the_ranking() {
    for strategy in [Strategy::Margin, Strategy::Random] {
        let database = TestDatabase::sqlite().unwrap();
        let store = database.store().await.unwrap();
        let project = demo(&store, LabelMode::Single).await;
        let models = tempfile::tempdir().unwrap();
        train_and_promote(&store, &project, models.path()).await;
        let junk = |external_id: &str, subject: &str| NewTicket {
            source: "api".into(),
            external_id: external_id.into(),
            subject: subject.into(),
            body: String::new(),
            metadata: serde_json::json!({}),
            created_at: None,
            split: Split::Train,
        };
        let stored = store
            .upsert_tickets(
                project.id,
                &[
                    junk("J-1", "🙂"),
                    junk("J-2", "????"),
                    junk("J-3", "!!! 404"),
                ],
            )
            .await
            .unwrap();
        let junk_ids: HashSet<TicketId> = stored.iter().map(|s| s.id).collect();
        let (options, _cache) = offline(10);
        let summary = score_project(&store, project.id, strategy, &options)
            .await
            .unwrap();
        assert_eq!(summary.queued, 10);
        let batch = store
            .lease_review_tickets(project.id, "ana", 10, 600)
            .await
            .unwrap();
        let first: HashSet<TicketId> = batch[..3].iter().map(|e| e.ticket_id).collect();
        assert_eq!(first, junk_ids, "{strategy:?}");
        assert!(
            batch[..3]
                .iter()
                .all(|e| e.reason == "the ticket has no words to tag from")
        );
        assert!(batch[3..].iter().all(|e| !junk_ids.contains(&e.ticket_id)));
        assert!(batch[3..].iter().all(|e| !e.reason.contains("no words")));
    }
}

async fn unsupported_languages_follow_the_wordless_tickets(database: TestDatabase) {
    let store = database.store().await.unwrap();
    let project = demo(&store, LabelMode::Single).await;
    let models = tempfile::tempdir().unwrap();
    train_and_promote(&store, &project, models.path()).await;
    let ticket = |external_id: &str, subject: &str, body: &str| NewTicket {
        source: "api".into(),
        external_id: external_id.into(),
        subject: subject.into(),
        body: body.into(),
        metadata: serde_json::json!({}),
        created_at: None,
        split: Split::Train,
    };
    let stored = store
        .upsert_tickets(
            project.id,
            &[
                ticket("J-1", "🙂", ""),
                ticket(
                    "DE-1",
                    "Rechnung doppelt",
                    "Seit dem letzten Update können wir keine Rechnungen mehr herunterladen. \
                     Es erscheint nur ein Fehler, bitte helfen Sie uns schnell.",
                ),
                ticket(
                    "FR-1",
                    "Connexion impossible",
                    "Depuis ce matin, nous ne pouvons plus nous connecter à notre compte. \
                     Le mot de passe est refusé alors qu'il est correct.",
                ),
            ],
        )
        .await
        .unwrap();
    let (options, _cache) = offline(10);
    let english = Language::parse_list("eng").unwrap();
    store
        .set_project_languages(project.id, &english)
        .await
        .unwrap();
    score_project(&store, project.id, Strategy::Margin, &options)
        .await
        .unwrap();
    let batch = store
        .lease_review_tickets(project.id, "ana", 10, 600)
        .await
        .unwrap();
    assert_eq!(
        batch[0].ticket_id, stored[0].id,
        "the wordless ticket leads"
    );
    let foreign: HashSet<TicketId> = batch[1..3].iter().map(|e| e.ticket_id).collect();
    assert_eq!(foreign, HashSet::from([stored[1].id, stored[2].id]));
    let reasons: HashSet<&str> = batch[1..3].iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(
        reasons,
        HashSet::from([
            "unsupported language: the model does not serve the ticket's language (German)",
            "unsupported language: the model does not serve the ticket's language (French)",
        ])
    );
    assert!(batch[3..].iter().all(|e| !e.reason.contains("language")));
    database.drop_database().await.unwrap();
}

#[tokio::test]
async fn on_sqlite_unsupported_languages_follow_the_wordless_tickets() {
    unsupported_languages_follow_the_wordless_tickets(TestDatabase::sqlite().unwrap()).await;
}

#[tokio::test]
async fn on_postgres_unsupported_languages_follow_the_wordless_tickets() {
    let test = "on_postgres_unsupported_languages_follow_the_wordless_tickets";
    if let Some(database) = TestDatabase::postgres(test).await.unwrap() {
        unsupported_languages_follow_the_wordless_tickets(database).await;
    }
}

#[tokio::test]
async fn a_queue_size_of_zero_is_refused() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo(&store, LabelMode::Multi).await;
    let (options, _cache) = offline(0);
    let error = score_project(&store, project.id, Strategy::Random, &options)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("queue size"), "{error}");
}

#[tokio::test]
async fn tickets_unlike_the_training_data_lead_the_queue_up_to_a_quarter_of_it() {
    let database = TestDatabase::sqlite().unwrap();
    let store = database.store().await.unwrap();
    let project = demo(&store, LabelMode::Single).await;
    let models = tempfile::tempdir().unwrap();
    let version = train_and_promote(&store, &project, models.path()).await;
    let model = load_version(&version).unwrap();
    // Tickets about nothing a help desk of this product ever saw.
    let subjects = [
        "Lattice gauge renormalisation of gluon propagators",
        "Phylogenetic bootstrap of mitochondrial haplogroups",
        "Baroque fugue counterpoint in the Goldberg variations",
        "Tectonic subduction and ophiolite obduction rates",
        "Sonnet meter: iambic pentameter versus alexandrine",
        "Mycorrhizal hyphae exchange phosphorus with conifers",
    ];
    let stored = store
        .upsert_tickets(
            project.id,
            &subjects
                .iter()
                .enumerate()
                .map(|(i, subject)| NewTicket {
                    source: "api".into(),
                    external_id: format!("X-{i}"),
                    subject: (*subject).into(),
                    body: String::new(),
                    metadata: serde_json::json!({}),
                    created_at: None,
                    split: Split::Train,
                })
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let strange: HashSet<TicketId> = stored.iter().map(|s| s.id).collect();
    // The model itself finds them beyond its threshold (else this test proves nothing).
    let beyond = subjects
        .iter()
        .filter(|subject| {
            let text = datasets::ticket::model_text(subject, "");
            let scored = model.score_batch(&[text.as_str()]).unwrap();
            model.unfamiliarity(&scored[0]).unwrap().is_beyond()
        })
        .count();
    assert!(
        beyond >= 3,
        "only {beyond} of them are unfamiliar to the model"
    );

    // A queue of 12 gives them 3 places, the most unfamiliar first; the strategy fills the rest.
    let (options, _cache) = offline(12);
    let summary = score_project(&store, project.id, Strategy::Margin, &options)
        .await
        .unwrap();
    assert_eq!(summary.unfamiliar, 3);
    let batch = store
        .lease_review_tickets(project.id, "ana", 12, 600)
        .await
        .unwrap();
    assert_eq!(batch.len(), 12);
    let unfamiliar = ReviewReason::Unfamiliar.describe();
    for entry in &batch[..3] {
        assert!(strange.contains(&entry.ticket_id), "{batch:?}");
        assert!(entry.reason.starts_with(unfamiliar), "{}", entry.reason);
    }
    assert!(
        batch[3..].iter().all(|e| !e.reason.starts_with(unfamiliar)),
        "{batch:?}"
    );
    assert!(batch[3..].iter().all(|e| e.reason.starts_with("margin ")));
}
