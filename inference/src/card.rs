//! The model card: everything about a model version except its weights.

use crate::encoder::EncoderSpec;
use crate::heads::{Head, Heads, HeadsError};
use crate::ngram::NgramShape;
use crate::out_of_distribution::OodDetector;
use datasets::{LabelMode, TagId, TagName};
use serde::{Deserialize, Serialize};

/// The kinds of model, registered once in the domain crate (the store rows need it too).
pub use datasets::ModelKind;

/// A tag as the model knows it: by id, so a renamed tag stays the same output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRef {
    pub id: TagId,
    pub name: TagName,
}

/// The version of the on-disk format this code writes and reads.
pub const CARD_FORMAT: u32 = 1;

/// What a trained model is and how to read its scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: u32,
    pub kind: ModelKind,
    pub label_mode: LabelMode,
    /// The taxonomy the model was trained on: output `i` is `tags[i]`.
    pub tags: Vec<TagRef>,
    /// One head per tag group, over consecutive outputs (a softmax for a single-choice
    /// group, sigmoids for a multi-choice one); empty for a project without groups, whose
    /// outputs are read by `label_mode` alone (and in versions trained before groups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Head>,
    /// Scores are divided by this before softmax/sigmoid (fitted on validation tickets).
    pub temperature: f32,
    /// Per output: the probability at or above which the tag is applied without a person.
    pub thresholds: Vec<f32>,
    /// Hyper-parameters the run used.
    pub params: serde_json::Value,
    /// SHA-256 over the training tickets and their labels.
    pub training_fingerprint: String,
    pub ngram: Option<NgramShape>,
    /// The encoder under an `encoder-head` model (repository, revision, file hashes, shape),
    /// or the one a `finetune` model was tuned from, with the hashes of its tuned files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderSpec>,
    /// How unlike its training tickets a ticket is allowed to be before the model's scores
    /// on it are not trusted (fitted on held-out tickets); absent in versions trained before
    /// detectors existed, which tag every ticket they are sure of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_distribution: Option<OodDetector>,
}

impl ModelCard {
    /// How the model's outputs are read; an error when the card's groups do not cover its
    /// tags (a damaged card: loading refuses it).
    pub fn checked_heads(&self) -> Result<Heads, HeadsError> {
        if self.groups.is_empty() {
            Ok(Heads::Whole(self.label_mode))
        } else {
            Heads::grouped(&self.groups, self.tags.len())
        }
    }

    /// How the model's outputs are read (cards are checked when loaded; an unchecked
    /// damaged one is read by its label mode).
    pub fn heads(&self) -> Heads {
        self.checked_heads()
            .unwrap_or(Heads::Whole(self.label_mode))
    }

    /// Per output: the realised precision of its threshold on the test split, as the
    /// training run recorded it in `params.realised_precision` (by tag name at training).
    pub fn realised_precision(&self) -> Vec<Option<f64>> {
        let recorded = self.params.get("realised_precision");
        self.tags
            .iter()
            .map(|tag| recorded?.get(tag.name.as_str())?.as_f64())
            .collect()
    }
}
