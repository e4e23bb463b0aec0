//! Labels: who or what said a ticket carries a tag, and the history of every change.

use crate::ids::{TagId, TicketId};
use crate::names::TagName;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Where a label came from, in the order of authority: a person beats an import beats a
/// keyword rule or a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LabelSource {
    Human,
    Import,
    Rule,
    Model,
}

impl LabelSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Import => "import",
            Self::Rule => "rule",
            Self::Model => "model",
        }
    }
}

impl FromStr for LabelSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" => Ok(Self::Human),
            "import" => Ok(Self::Import),
            "rule" => Ok(Self::Rule),
            "model" => Ok(Self::Model),
            other => Err(format!("unknown label source {other:?}")),
        }
    }
}

/// The current label of one source on one (ticket, tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Label {
    pub ticket_id: TicketId,
    pub tag_id: TagId,
    pub tag: TagName,
    pub source: LabelSource,
    /// The user name, model version or import that set it.
    pub set_by: String,
    pub confidence: Option<f32>,
    /// False when a person said the ticket does *not* carry this tag.
    pub present: bool,
    pub updated_at: DateTime<Utc>,
}

/// Whether a change added or removed a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LabelAction {
    Added,
    Removed,
}

impl LabelAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
        }
    }
}

impl FromStr for LabelAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "added" => Ok(Self::Added),
            "removed" => Ok(Self::Removed),
            other => Err(format!("unknown label action {other:?}")),
        }
    }
}

/// One entry of a ticket's label history; never changed once written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LabelEvent {
    pub ticket_id: TicketId,
    pub tag: TagName,
    pub source: LabelSource,
    pub set_by: String,
    pub confidence: Option<f32>,
    pub action: LabelAction,
    pub at: DateTime<Utc>,
}

/// The tags in force for a ticket given all its labels: if a person labelled it, their
/// choice is the whole answer; otherwise imported labels; otherwise rules and the model.
pub fn tags_in_force(labels: &[Label]) -> Vec<TagName> {
    let authority = [
        &[LabelSource::Human][..],
        &[LabelSource::Import][..],
        &[LabelSource::Rule, LabelSource::Model][..],
    ];
    for sources in authority {
        let of_level: Vec<&Label> = labels
            .iter()
            .filter(|label| sources.contains(&label.source))
            .collect();
        if !of_level.is_empty() {
            let mut tags: Vec<TagName> = of_level
                .into_iter()
                .filter(|label| label.present)
                .map(|label| label.tag.clone())
                .collect();
            tags.sort();
            tags.dedup();
            return tags;
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(tag: &str, source: LabelSource, present: bool) -> Label {
        Label {
            ticket_id: TicketId(1),
            tag_id: TagId(tag.len() as i64),
            tag: TagName::parse(tag).unwrap(),
            source,
            set_by: "x".into(),
            confidence: None,
            present,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_person_overrides_the_model() {
        let labels = [
            label("Bug", LabelSource::Model, true),
            label("Bug", LabelSource::Human, false),
            label("Billing", LabelSource::Human, true),
        ];
        assert_eq!(tags_in_force(&labels), [TagName::parse("Billing").unwrap()]);
    }

    #[test]
    fn model_and_rule_labels_combine_when_nobody_labelled() {
        let labels = [
            label("Bug", LabelSource::Model, true),
            label("Security", LabelSource::Rule, true),
        ];
        assert_eq!(tags_in_force(&labels).len(), 2);
    }

    #[test]
    fn a_person_removing_every_tag_leaves_none() {
        let labels = [
            label("Bug", LabelSource::Model, true),
            label("Bug", LabelSource::Human, false),
        ];
        assert!(tags_in_force(&labels).is_empty());
    }
}
