//! The labelled tickets a model learns from and is judged on. Only labels people gave
//! (by hand or by import) count as truth; the model's own labels never train the model.
//! The train split is cut once more, by a stable hash of the ticket id, into what the
//! model fits and a validation part for calibration, thresholds and early stopping; the
//! test split is only ever used to report.

use datasets::split::stable_hash;
use datasets::{
    AnyStore, LabelMode, LabelSource, LabelledTicket, Project, Split, Store, StoreError, TicketId,
};
use inference::TagRef;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Share of the train split set aside for validation.
pub const VALIDATION_FRACTION: f64 = 0.1;

/// One ticket with the indices of its true tags among the model's outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub ticket: TicketId,
    pub text: String,
    pub targets: Vec<usize>,
}

/// Everything a training run reads.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingData {
    pub mode: LabelMode,
    pub tags: Vec<TagRef>,
    pub train: Vec<Example>,
    pub validation: Vec<Example>,
    pub test: Vec<Example>,
    /// SHA-256 over every example's id, text and targets, in id order.
    pub fingerprint: String,
    /// Train and validation examples whose truth a person gave in the workbench (the rest
    /// were imported): the x axis of the project's learning curve.
    pub labelled_by_hand: usize,
}

/// The tags people gave a ticket and whose word it is, or `None` if no person's or import's
/// label is on it.
fn truth(ticket: &LabelledTicket) -> Option<(LabelSource, Vec<datasets::TagId>)> {
    for source in [LabelSource::Human, LabelSource::Import] {
        let of_source: Vec<_> = ticket
            .labels
            .iter()
            .filter(|l| l.source == source)
            .collect();
        if !of_source.is_empty() {
            return Some((
                source,
                of_source
                    .iter()
                    .filter(|l| l.present)
                    .map(|l| l.tag_id)
                    .collect(),
            ));
        }
    }
    None
}

/// Reads a project's labelled tickets, page by page.
pub async fn load_training_data(
    store: &AnyStore,
    project: &Project,
) -> Result<TrainingData, StoreError> {
    let taxonomy: Vec<_> = store
        .list_tags(project.id)
        .await?
        .into_iter()
        .filter(|t| !t.archived)
        .collect();
    let tags: Vec<TagRef> = taxonomy
        .iter()
        .map(|t| TagRef {
            id: t.id,
            name: t.name.clone(),
        })
        .collect();
    let index: HashMap<datasets::TagId, usize> =
        tags.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    let mut data = TrainingData {
        mode: project.label_mode,
        tags,
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
        fingerprint: String::new(),
        labelled_by_hand: 0,
    };
    let mut hasher = Sha256::new();
    let mut after = None;
    loop {
        let page = store
            .tickets_after(project.id, after, datasets::store::MAX_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.ticket.id);
        for ticket in page {
            let Some((truth_source, tag_ids)) = truth(&ticket) else {
                continue;
            };
            let mut targets: Vec<usize> = tag_ids
                .iter()
                .filter_map(|id| index.get(id).copied())
                .collect();
            targets.sort_unstable();
            // A single-label ticket needs exactly one known tag to be an example.
            if project.label_mode == LabelMode::Single && targets.len() != 1 {
                continue;
            }
            let text = ticket.ticket.text();
            hasher.update(ticket.ticket.id.0.to_le_bytes());
            hasher.update(text.as_bytes());
            for target in &targets {
                hasher.update((*target as u64).to_le_bytes());
            }
            let example = Example {
                ticket: ticket.ticket.id,
                text,
                targets,
            };
            if truth_source == LabelSource::Human && ticket.ticket.split == Split::Train {
                data.labelled_by_hand += 1;
            }
            match ticket.ticket.split {
                Split::Test => data.test.push(example),
                Split::Train if is_validation(example.ticket) => data.validation.push(example),
                Split::Train => data.train.push(example),
            }
        }
    }
    data.fingerprint = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(data)
}

fn is_validation(ticket: TicketId) -> bool {
    (stable_hash(7, &ticket.0.to_string()) % 1000) as f64 / 1000.0 < VALIDATION_FRACTION
}
