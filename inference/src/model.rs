//! A trained model ready to score tickets: its card and its weights.

use crate::artifact::{self, FileHashes, Tensors, WEIGHTS_FILE};
use crate::card::{CARD_FORMAT, ModelCard, ModelKind};
use crate::encoder::head::{EncoderHeadModel, LinearHead};
use crate::encoder::hub::HubCache;
use crate::encoder::{Encoder, EncoderError, EncoderFiles, EncoderOptions};
use crate::error::ModelError;
use crate::features::Family;
use crate::heads::Heads;
use crate::ngram::NgramModel;
use crate::out_of_distribution::{self, Signal, Unfamiliarity};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The architectures behind a model. `finetune` models are an encoder and a linear head
/// too (`EncoderHead`), with an encoder of their own rather than one from the hub cache.
#[derive(Debug, Clone, PartialEq)]
pub enum Scorer {
    Ngram(NgramModel),
    EncoderHead(EncoderHeadModel),
}

impl Scorer {
    /// The out-of-distribution signals this scorer reports, in the order of [`Scored`]'s.
    pub fn signals(&self) -> Vec<Signal> {
        match self {
            Self::Ngram(_) => vec![Signal::Uncertainty, Signal::UnseenFeatures],
            Self::EncoderHead(model) if model.centroids.is_empty() => vec![Signal::Energy],
            Self::EncoderHead(_) => vec![Signal::Energy, Signal::CentroidDistance],
        }
    }
}

/// A text's raw scores and the model's out-of-distribution signals on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub logits: Vec<f32>,
    /// In the order of [`TaggingModel::signals`].
    pub signals: Vec<f32>,
}

impl Scored {
    /// An `ngram` model's scores: the uncertainty of its logits and the share of unseen
    /// features.
    pub fn ngram(model: &NgramModel, text: &str, heads: &Heads) -> Self {
        let (logits, unseen) = model.logits_and_unseen_prose_share(text);
        let signals = vec![out_of_distribution::uncertainty(&logits, heads), unseen];
        Self { logits, signals }
    }

    /// An encoder model's scores: the energy of its logits and, when the version has tag
    /// centroids, the distance of the embedding to the nearest.
    pub fn encoder(logits: Vec<f32>, embedding: &[f32], centroids: &[f32], heads: &Heads) -> Self {
        let mut signals = vec![heads.energy(&logits)];
        if !centroids.is_empty() {
            signals.push(out_of_distribution::centroid_distance(embedding, centroids));
        }
        Self { logits, signals }
    }
}

/// A model version, loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggingModel {
    pub card: ModelCard,
    pub scorer: Scorer,
}

impl TaggingModel {
    /// Raw scores, one per tag of the card. An encoder that fails to run (it never should
    /// once loaded) gives NaN scores, which pass no threshold: the ticket goes to a person.
    /// `logits_batch` reports the error instead.
    pub fn logits(&self, text: &str) -> Vec<f32> {
        match &self.scorer {
            Scorer::Ngram(model) => model.logits(text),
            Scorer::EncoderHead(model) => model
                .logits(&[text])
                .ok()
                .and_then(|mut rows| rows.pop())
                .unwrap_or_else(|| vec![f32::NAN; self.card.tags.len()]),
        }
    }

    /// Raw scores for many texts; encoder models embed them in sorted batches, several
    /// times faster than one by one.
    pub fn logits_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        match &self.scorer {
            Scorer::Ngram(model) => Ok(texts.iter().map(|text| model.logits(text)).collect()),
            Scorer::EncoderHead(model) => model.logits(texts).map_err(encoder_error),
        }
    }

    /// The out-of-distribution signals this model reports, in order.
    pub fn signals(&self) -> Vec<Signal> {
        self.scorer.signals()
    }

    /// Raw scores and out-of-distribution signals for many texts (encoders in sorted
    /// batches, as `logits_batch`).
    pub fn score_batch(&self, texts: &[&str]) -> Result<Vec<Scored>, ModelError> {
        let heads = self.card.heads();
        let heads = &heads;
        match &self.scorer {
            Scorer::Ngram(model) => Ok(texts
                .iter()
                .map(|text| Scored::ngram(model, text, heads))
                .collect()),
            Scorer::EncoderHead(model) => Ok(model
                .logits_and_embeddings(texts)
                .map_err(encoder_error)?
                .into_iter()
                .map(|(logits, embedding)| {
                    Scored::encoder(logits, &embedding, &model.centroids, heads)
                })
                .collect()),
        }
    }

    /// How unfamiliar a scored text is, when the version has a detector.
    pub fn unfamiliarity(&self, scored: &Scored) -> Option<Unfamiliarity> {
        let detector = self.card.out_of_distribution.as_ref()?;
        // A detector fitted on other signals (a damaged card) says nothing.
        (detector.signals.len() == scored.signals.len()).then(|| detector.judge(&scored.signals))
    }

    /// Calibrated probabilities, one per tag of the card.
    pub fn probabilities(&self, text: &str) -> Vec<f32> {
        self.card
            .heads()
            .probabilities(&self.logits(text), self.card.temperature)
    }

    /// Writes the model into a new directory; returns the hashes to record.
    pub fn save(&self, dir: &Path) -> Result<FileHashes, ModelError> {
        artifact::save(dir, &self.card, &self.tensors())
    }

    /// `save` with the files of a fine-tuned encoder written beside the head.
    pub fn save_with_encoder(
        &self,
        dir: &Path,
        encoder: &EncoderFiles,
    ) -> Result<FileHashes, ModelError> {
        artifact::save_with_files(dir, &self.card, &self.tensors(), &encoder.named())
    }

    /// Reads and checks a model directory against the hashes recorded for it. Encoder
    /// models find their encoder in the Hugging Face cache named by the environment.
    pub fn load(dir: &Path, hashes: &FileHashes) -> Result<Self, ModelError> {
        Self::load_with(
            dir,
            hashes,
            &HubCache::from_env(),
            &EncoderOptions::default(),
        )
    }

    /// `load` with the encoder's cache and run-time options chosen by the caller.
    pub fn load_with(
        dir: &Path,
        hashes: &FileHashes,
        cache: &HubCache,
        options: &EncoderOptions,
    ) -> Result<Self, ModelError> {
        let (card, tensors) = artifact::load(dir, hashes)?;
        if let Err(error) = card.checked_heads() {
            return Err(ModelError::corrupt(artifact::CARD_FILE, error.to_string()));
        }
        let (head, encoder) = match card.kind {
            ModelKind::Ngram => return Self::from_parts(card, &tensors),
            ModelKind::EncoderHead => {
                let spec = card.encoder.as_ref().ok_or_else(|| {
                    ModelError::corrupt(
                        artifact::CARD_FILE,
                        "an encoder-head model without its encoder",
                    )
                })?;
                // The head's shapes are checked before the (much slower) encoder is loaded.
                let head = encoder_head(&card, &tensors)?;
                let encoder = Encoder::load_spec(cache, spec, options).map_err(encoder_error)?;
                (head, encoder)
            }
            // `setfit` saves its tuned encoder as `finetune` does.
            ModelKind::Finetune | ModelKind::Setfit => {
                let spec = card.encoder.as_ref().ok_or_else(|| {
                    ModelError::corrupt(
                        artifact::CARD_FILE,
                        format!("a {} model without its encoder", card.kind),
                    )
                })?;
                let head = encoder_head(&card, &tensors)?;
                // The tuned encoder is part of the version: its files sit beside the head and
                // are checked against the hashes recorded for the version.
                let encoder =
                    Encoder::load_tuned(dir, spec, hashes, options).map_err(encoder_error)?;
                (head, encoder)
            }
        };
        Ok(Self {
            card,
            scorer: Scorer::EncoderHead(EncoderHeadModel {
                centroids: centroids(&head, &tensors)?,
                encoder: Arc::new(encoder),
                head,
            }),
        })
    }

    fn tensors(&self) -> Tensors {
        let mut tensors = Tensors::default();
        match &self.scorer {
            Scorer::Ngram(model) => {
                let rows = model.buckets.len();
                tensors
                    .u32s
                    .insert("buckets".into(), (vec![rows], model.buckets.clone()));
                let families = model
                    .families
                    .iter()
                    .map(|f| match f {
                        Family::Word => 0,
                        Family::Char => 1,
                    })
                    .collect();
                tensors
                    .u32s
                    .insert("families".into(), (vec![rows], families));
                tensors
                    .f32s
                    .insert("idf".into(), (vec![rows], model.idf.clone()));
                tensors.f32s.insert(
                    "table".into(),
                    (vec![rows, model.width()], model.table.clone()),
                );
                tensors.f32s.insert(
                    "bias".into(),
                    (vec![model.shape.outputs], model.bias.clone()),
                );
                if model.shape.hidden > 0 {
                    tensors.f32s.insert(
                        "projection".into(),
                        (
                            vec![model.shape.hidden, model.shape.outputs],
                            model.projection.clone(),
                        ),
                    );
                }
            }
            Scorer::EncoderHead(model) => {
                let head = &model.head;
                tensors.f32s.insert(
                    HEAD_WEIGHT.into(),
                    (vec![head.outputs, head.dim], head.weight.clone()),
                );
                tensors
                    .f32s
                    .insert(HEAD_BIAS.into(), (vec![head.outputs], head.bias.clone()));
                if !model.centroids.is_empty() {
                    tensors.f32s.insert(
                        CENTROIDS.into(),
                        (vec![head.outputs, head.dim], model.centroids.clone()),
                    );
                }
            }
        }
        tensors
    }

    /// Assembles a model, checking that the card and every tensor agree on their shapes.
    /// Encoder models need their encoder: use `load_with`.
    pub fn from_parts(card: ModelCard, tensors: &Tensors) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::corrupt(WEIGHTS_FILE, reason);
        if card.format != CARD_FORMAT {
            return Err(ModelError::corrupt(
                artifact::CARD_FILE,
                format!(
                    "format {} is not the supported format {CARD_FORMAT}",
                    card.format
                ),
            ));
        }
        let outputs = card.tags.len();
        if card.thresholds.len() != outputs {
            return Err(ModelError::corrupt(
                artifact::CARD_FILE,
                format!("{} thresholds for {outputs} tags", card.thresholds.len()),
            ));
        }
        if let Err(error) = card.checked_heads() {
            return Err(ModelError::corrupt(artifact::CARD_FILE, error.to_string()));
        }
        let scorer = match card.kind {
            ModelKind::Ngram => {
                let shape = card.ngram.ok_or_else(|| {
                    ModelError::corrupt(artifact::CARD_FILE, "an ngram model without its shape")
                })?;
                if shape.outputs != outputs {
                    return Err(bad(format!("{} outputs for {outputs} tags", shape.outputs)));
                }
                let (_, buckets) = tensors.u32("buckets")?;
                let (_, families) = tensors.u32("families")?;
                let (_, idf) = tensors.f32("idf")?;
                let (table_shape, table) = tensors.f32("table")?;
                let (_, bias) = tensors.f32("bias")?;
                let rows = buckets.len();
                let width = if shape.hidden == 0 {
                    outputs
                } else {
                    shape.hidden
                };
                if families.len() != rows || idf.len() != rows {
                    return Err(bad(format!(
                        "{rows} buckets but {} families and {} idf values",
                        families.len(),
                        idf.len()
                    )));
                }
                if table_shape != &vec![rows, width] || table.len() != rows * width {
                    return Err(bad(format!(
                        "table has shape {table_shape:?}, expected [{rows}, {width}]"
                    )));
                }
                if bias.len() != outputs {
                    return Err(bad(format!(
                        "bias has {} values for {outputs} tags",
                        bias.len()
                    )));
                }
                let projection = if shape.hidden > 0 {
                    let (_, projection) = tensors.f32("projection")?;
                    if projection.len() != shape.hidden * outputs {
                        return Err(bad(format!(
                            "projection has {} values, expected {}",
                            projection.len(),
                            shape.hidden * outputs
                        )));
                    }
                    projection.clone()
                } else {
                    Vec::new()
                };
                let limit = 1u64 << shape.features.hash_bits.min(31);
                if buckets.iter().any(|b| u64::from(*b) >= limit) {
                    return Err(bad("a bucket lies outside the hash space".into()));
                }
                let families = families
                    .iter()
                    .map(|f| match f {
                        0 => Ok(Family::Word),
                        1 => Ok(Family::Char),
                        other => Err(bad(format!("unknown feature family {other}"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let rows_by_bucket: HashMap<u32, u32> = buckets
                    .iter()
                    .enumerate()
                    .map(|(row, b)| (*b, row as u32))
                    .collect();
                Scorer::Ngram(NgramModel {
                    shape,
                    rows: rows_by_bucket,
                    buckets: buckets.clone(),
                    families,
                    idf: idf.clone(),
                    table: table.clone(),
                    projection,
                    bias: bias.clone(),
                })
            }
            ModelKind::EncoderHead | ModelKind::Finetune | ModelKind::Setfit => {
                return Err(ModelError::corrupt(
                    artifact::CARD_FILE,
                    format!(
                        "an {} model needs its encoder to be loaded with it",
                        card.kind
                    ),
                ));
            }
        };
        Ok(Self { card, scorer })
    }
}

const HEAD_WEIGHT: &str = "head.weight";
const HEAD_BIAS: &str = "head.bias";
/// Tag centroids of an encoder model's training embeddings (optional).
const CENTROIDS: &str = "ood.centroids";

/// An `encoder-head` model's head, checked against its card.
fn encoder_head(card: &ModelCard, tensors: &Tensors) -> Result<LinearHead, ModelError> {
    let bad = |reason: String| ModelError::corrupt(WEIGHTS_FILE, reason);
    let outputs = card.tags.len();
    let dim = card.encoder.as_ref().map(|spec| spec.dim).ok_or_else(|| {
        ModelError::corrupt(
            artifact::CARD_FILE,
            format!("an {} model without its encoder", card.kind),
        )
    })?;
    let (weight_shape, weight) = tensors.f32(HEAD_WEIGHT)?;
    let (_, bias) = tensors.f32(HEAD_BIAS)?;
    if weight_shape != &vec![outputs, dim] || weight.len() != outputs * dim {
        return Err(bad(format!(
            "head.weight has shape {weight_shape:?}, expected [{outputs}, {dim}]"
        )));
    }
    if bias.len() != outputs {
        return Err(bad(format!(
            "head.bias has {} values for {outputs} tags",
            bias.len()
        )));
    }
    Ok(LinearHead {
        dim,
        outputs,
        weight: weight.clone(),
        bias: bias.clone(),
    })
}

/// An encoder model's tag centroids, checked against its head; empty when it has none.
fn centroids(head: &LinearHead, tensors: &Tensors) -> Result<Vec<f32>, ModelError> {
    let Some((shape, values)) = tensors.f32s.get(CENTROIDS) else {
        return Ok(Vec::new());
    };
    if shape != &vec![head.outputs, head.dim] || values.len() != head.outputs * head.dim {
        return Err(ModelError::corrupt(
            WEIGHTS_FILE,
            format!(
                "{CENTROIDS} has shape {shape:?}, expected [{}, {}]",
                head.outputs, head.dim
            ),
        ));
    }
    Ok(values.clone())
}

/// Encoder failures in the error type model loading reports. A missing encoder is a file
/// that cannot be read, with the encoder's own message saying how to get it.
fn encoder_error(error: EncoderError) -> ModelError {
    match error {
        EncoderError::NotInCache { ref path, .. }
        | EncoderError::RevisionNotCached { ref path, .. }
        | EncoderError::MissingFile { ref path, .. } => ModelError::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, error.to_string()),
        },
        EncoderError::Io { path, source } => ModelError::Io { path, source },
        // Not the model's fault: the encoder could not be fetched (the message says how).
        EncoderError::Download(pull) => ModelError::Io {
            path: std::path::PathBuf::from("encoder"),
            source: std::io::Error::other(pull.to_string()),
        },
        EncoderError::FileChanged {
            file,
            expected,
            actual,
        } => ModelError::HashMismatch {
            file,
            expected,
            actual,
        },
        other => ModelError::corrupt("encoder", other),
    }
}
