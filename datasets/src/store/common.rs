//! Column lists and helpers the shared SQL in `sql/` uses across aggregates.

use crate::error::{StoreError, StoreResult};
use crate::ids::{ProjectId, TagGroupId, TagId};
use crate::label::Label;
use crate::label::tags_in_force;
use crate::names::TagName;
use crate::project::{LabelMode, Project};
use crate::tag::Tag;
use crate::tag_group::{TagGroup, single_choice_clash};
use crate::ticket::{LabelledTicket, Ticket};
use std::collections::{HashMap, HashSet};

/// A project's taxonomy as an import sees it: tags by folded name, groups in listing order
/// and each tag's group, kept up to date as the import adds tags and groups.
#[derive(Debug, Clone, Default)]
pub(crate) struct ImportTaxonomy {
    pub(crate) tags: HashMap<String, TagId>,
    pub(crate) groups: Vec<TagGroup>,
    pub(crate) group_of: HashMap<TagId, TagGroupId>,
}

impl ImportTaxonomy {
    /// The project's default group; every project has one (migration 0017).
    pub(crate) fn default_group(&self) -> StoreResult<TagGroupId> {
        self.groups
            .iter()
            .find(|g| g.is_default)
            .map(|g| g.id)
            .ok_or_else(|| StoreError::NotFound("the project's default tag group".into()))
    }
}

/// `$from, $from+1, …` for `count` values, to build `IN (…)` lists.
pub(crate) fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Groups labels under their tickets and works out the tags in force.
pub(crate) fn attach_labels(tickets: Vec<Ticket>, labels: Vec<Label>) -> Vec<LabelledTicket> {
    let mut by_ticket: HashMap<_, Vec<Label>> = HashMap::new();
    for label in labels {
        by_ticket.entry(label.ticket_id).or_default().push(label);
    }
    tickets
        .into_iter()
        .map(|ticket| {
            let mut labels = by_ticket.remove(&ticket.id).unwrap_or_default();
            labels.sort_by(|a, b| {
                a.tag
                    .cmp(&b.tag)
                    .then(a.source.as_str().cmp(b.source.as_str()))
            });
            let tags = tags_in_force(&labels);
            LabelledTicket {
                ticket,
                labels,
                tags,
            }
        })
        .collect()
}

/// Resolves tag names a person chose against the project's taxonomy: each must be a live
/// tag, and a single-choice group may give at most one (a single-label project's default
/// group is single-choice, so such a project still takes one tag).
pub(crate) fn resolve_tag_names(
    project: &Project,
    taxonomy: &[Tag],
    groups: &[TagGroup],
    names: &[TagName],
) -> Result<Vec<TagId>, StoreError> {
    let by_key: HashMap<String, &Tag> = taxonomy.iter().map(|t| (t.name.folded(), t)).collect();
    let mut chosen: Vec<&Tag> = Vec::new();
    let mut seen = HashSet::new();
    for name in names {
        // Well-formed names the taxonomy does not take are a conflict with the project's
        // state (409), not a malformed request: adding the tag makes the same request work.
        let tag = by_key.get(&name.folded()).ok_or_else(|| {
            StoreError::Conflict(format!(
                "tags: unknown tag {:?} in project {:?}",
                name.as_str(),
                project.name.as_str()
            ))
        })?;
        if tag.archived {
            return Err(StoreError::Conflict(format!(
                "tags: tag {:?} is archived",
                tag.name.as_str()
            )));
        }
        if seen.insert(tag.id) {
            chosen.push(tag);
        }
    }
    if let Some(clash) = single_choice_clash(groups, &chosen) {
        let single_label = match project.label_mode {
            LabelMode::Single if clash.group.is_default => " (the project is single-label)",
            _ => "",
        };
        return Err(StoreError::Conflict(format!(
            "tags: {}{single_label}",
            clash.describe()
        )));
    }
    Ok(chosen.iter().map(|t| t.id).collect())
}

pub(crate) fn tag_conflict(name: &TagName) -> impl FnOnce() -> String + '_ {
    move || {
        format!(
            "a tag named {:?} already exists in this project",
            name.as_str()
        )
    }
}

pub(crate) fn project_not_found(id: ProjectId) -> StoreError {
    StoreError::NotFound(format!("project {id}"))
}

/// Which imported labels of a ticket go and which come, given the old and new sets.
pub(crate) fn label_changes(old: &[TagId], new: &[TagId]) -> (Vec<TagId>, Vec<TagId>) {
    let removed = old.iter().filter(|t| !new.contains(t)).copied().collect();
    let added = new.iter().filter(|t| !old.contains(t)).copied().collect();
    (removed, added)
}

/// Keeps the last row for each (source, external id): a file that lists a ticket twice
/// means its later line.
pub(crate) fn last_row_per_key(rows: Vec<super::ImportRow>) -> Vec<super::ImportRow> {
    let mut position: HashMap<(String, String), usize> = HashMap::new();
    let mut kept: Vec<Option<super::ImportRow>> = Vec::with_capacity(rows.len());
    for row in rows {
        let key = (row.ticket.source.clone(), row.ticket.external_id.clone());
        if let Some(&earlier) = position.get(&key) {
            kept[earlier] = None;
        }
        position.insert(key, kept.len());
        kept.push(Some(row));
    }
    kept.into_iter().flatten().collect()
}
