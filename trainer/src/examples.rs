//! The labelled tickets a model learns from and is judged on. Only labels people gave
//! (by hand or by import) count as truth; the model's own labels never train the model.
//! The train split is cut once more, by a stable hash of the ticket id, into what the
//! model fits and a validation part for calibration, thresholds and early stopping; the
//! test split is only ever used to report. A project whose test split is too small to judge
//! a model (say, imported with `--split train`) gets a held-out set cut from its training
//! tickets the same way, in memory: the tickets keep their split in the store.

use datasets::split::stable_hash;
use datasets::store::prelude::*;
use datasets::{
    AnyStore, LabelMode, LabelSource, LabelledTicket, Project, Split, StoreError, TicketId,
};
use inference::TagRef;
use inference::heads::{Head, Heads};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Share of the train split set aside for validation.
pub const VALIDATION_FRACTION: f64 = 0.1;
/// The fewest held-out tickets a model is judged on. A test split smaller than this is
/// topped up from the training tickets; a project without enough labelled tickets for both
/// is refused.
pub const MIN_HELD_OUT: usize = 20;
/// Share of the labelled training tickets held out when the test split is too small.
pub const HELD_OUT_FRACTION: f64 = 0.2;
/// Seed of the hash that picks the training tickets held out (not the validation seed, so
/// the two cuts are independent).
const HELD_OUT_SEED: u64 = 11;

/// Where a run's held-out tickets came from; recorded with the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "source")]
pub enum HeldOut {
    /// The project's test split, as imported.
    TestSplit,
    /// The test split had fewer than `MIN_HELD_OUT` tickets: `from_training` labelled
    /// training tickets, picked by a stable hash of their ids, were held out as well.
    TopUpFromTraining { from_training: usize },
}

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
    /// How the outputs are read: one head over all (a project without groups), or one per
    /// tag group with live tags, the outputs ordered by group.
    pub heads: Heads,
    /// The project's tag groups when the data was read (for deciding as the service does).
    pub groups: Vec<datasets::TagGroup>,
    pub tags: Vec<TagRef>,
    pub train: Vec<Example>,
    pub validation: Vec<Example>,
    pub test: Vec<Example>,
    /// SHA-256 over every example's id, text and targets, in id order.
    pub fingerprint: String,
    /// Train and validation examples whose truth a person gave in the workbench (the rest
    /// were imported): the x axis of the project's learning curve.
    pub labelled_by_hand: usize,
    /// Where `test` came from.
    pub held_out: HeldOut,
}

impl TrainingData {
    /// Every example: train, validation, then test (what an embedding cache holds).
    pub fn all(&self) -> Vec<&Example> {
        self.train
            .iter()
            .chain(&self.validation)
            .chain(&self.test)
            .collect()
    }
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
    let groups = store.list_tag_groups(project.id).await?;
    let layout = output_layout(project.label_mode, &taxonomy, &groups);
    let tags: Vec<TagRef> = layout
        .order
        .iter()
        .map(|&i| TagRef {
            id: taxonomy[i].id,
            name: taxonomy[i].name.clone(),
        })
        .collect();
    let index: HashMap<datasets::TagId, usize> =
        tags.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    let mut data = TrainingData {
        mode: layout.mode,
        heads: layout.heads.clone(),
        groups,
        tags,
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
        fingerprint: String::new(),
        labelled_by_hand: 0,
        held_out: HeldOut::TestSplit,
    };
    // Who labelled each train-split example, so counts stay right if some are held out.
    let mut by_hand = std::collections::HashSet::new();
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
            match &layout.heads {
                // A single-label ticket needs exactly one known tag to be an example.
                Heads::Whole(LabelMode::Single) if targets.len() != 1 => continue,
                Heads::Whole(_) => {}
                Heads::Groups(heads) => {
                    // A grouped ticket counts when it has any known tag; a group without
                    // one is unknown for it, not "none of them", and teaches that head
                    // nothing. A single-choice group keeps its first tag only (labels
                    // written before the group was single-choice may hold more).
                    if targets.is_empty() {
                        continue;
                    }
                    targets = single_choice_first(heads, targets);
                }
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
                by_hand.insert(example.ticket);
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
    top_up_held_out(&mut data);
    data.labelled_by_hand = data
        .train
        .iter()
        .chain(&data.validation)
        .filter(|e| by_hand.contains(&e.ticket))
        .count();
    Ok(data)
}

/// The order of a project's live tags as model outputs, and the heads over them.
struct OutputLayout {
    mode: LabelMode,
    heads: Heads,
    /// Output `i` is `taxonomy[order[i]]`.
    order: Vec<usize>,
}

/// Without groups (one group holds every live tag) the outputs are the taxonomy's order
/// under one head, as before groups existed. With tags in several groups the outputs run
/// group by group, in the groups' order, one head each; empty groups get none.
fn output_layout(
    mode: LabelMode,
    taxonomy: &[datasets::Tag],
    groups: &[datasets::TagGroup],
) -> OutputLayout {
    let members: Vec<(&datasets::TagGroup, Vec<usize>)> = groups
        .iter()
        .map(|g| {
            let of_group = (0..taxonomy.len())
                .filter(|&i| taxonomy[i].group_id == g.id)
                .collect();
            (g, of_group)
        })
        .filter(|(_, of_group): &(_, Vec<usize>)| !of_group.is_empty())
        .collect();
    let grouped: usize = members.iter().map(|(_, m)| m.len()).sum();
    if members.len() < 2 || grouped != taxonomy.len() {
        // One group (or tags whose group is unknown): the label mode over everything.
        let mode = match members.as_slice() {
            [(group, _)] if grouped == taxonomy.len() => LabelMode::from(group.choice),
            _ => mode,
        };
        return OutputLayout {
            mode,
            heads: Heads::Whole(mode),
            order: (0..taxonomy.len()).collect(),
        };
    }
    let mut order = Vec::with_capacity(taxonomy.len());
    let mut heads = Vec::with_capacity(members.len());
    for (group, of_group) in &members {
        heads.push(Head {
            name: group.name.as_str().to_string(),
            choice: group.choice,
            start: order.len(),
            len: of_group.len(),
        });
        order.extend(of_group);
    }
    OutputLayout {
        mode,
        heads: Heads::grouped(&heads, order.len()).expect("heads are built to cover the outputs"),
        order,
    }
}

/// `targets` (ascending) with at most one per single-choice head: its first.
fn single_choice_first(heads: &[Head], targets: Vec<usize>) -> Vec<usize> {
    let mut seen_head = vec![false; heads.len()];
    targets
        .into_iter()
        .filter(
            |&t| match heads.iter().position(|h| h.outputs().contains(&t)) {
                Some(h) if heads[h].choice == datasets::GroupChoice::Single => {
                    !std::mem::replace(&mut seen_head[h], true)
                }
                _ => true,
            },
        )
        .collect()
}

/// When the test split is smaller than `MIN_HELD_OUT`, moves a share of the labelled
/// training tickets (at least enough to reach the minimum) to `test`. The choice depends
/// only on the ticket ids, so a stored version is evaluated again on the same tickets.
fn top_up_held_out(data: &mut TrainingData) {
    if data.test.len() >= MIN_HELD_OUT {
        return;
    }
    let mut pool: Vec<Example> = std::mem::take(&mut data.train);
    pool.append(&mut data.validation);
    let wanted = MIN_HELD_OUT
        .saturating_sub(data.test.len())
        .max((pool.len() as f64 * HELD_OUT_FRACTION).ceil() as usize)
        .min(pool.len());
    pool.sort_by_key(|e| {
        (
            stable_hash(HELD_OUT_SEED, &e.ticket.0.to_string()),
            e.ticket,
        )
    });
    let kept = pool.split_off(wanted);
    data.test.extend(pool);
    data.test.sort_by_key(|e| e.ticket);
    for example in kept {
        if is_validation(example.ticket) {
            data.validation.push(example);
        } else {
            data.train.push(example);
        }
    }
    data.train.sort_by_key(|e| e.ticket);
    data.validation.sort_by_key(|e| e.ticket);
    data.held_out = HeldOut::TopUpFromTraining {
        from_training: wanted,
    };
}

/// Seed of the hash that deals tickets into out-of-fold folds (independent of the others).
const FOLD_SEED: u64 = 13;

/// The fold, of `folds`, a ticket's out-of-fold score comes from: a stable hash of its id,
/// so a ticket keeps its fold from run to run.
pub fn fold_of(ticket: TicketId, folds: usize) -> usize {
    (stable_hash(FOLD_SEED, &ticket.0.to_string()) % folds.max(1) as u64) as usize
}

fn is_validation(ticket: TicketId) -> bool {
    (stable_hash(7, &ticket.0.to_string()) % 1000) as f64 / 1000.0 < VALIDATION_FRACTION
}
