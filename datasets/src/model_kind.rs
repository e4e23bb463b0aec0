//! The kinds of model the product trains, and the one registry of them. The CLI's `--kind`
//! values, the API's validation and OpenAPI schema, the training page's list and the store's
//! `kind` columns all read `ModelKind::ALL` and `ModelKind::info`, so a kind cannot be listed
//! in one place and missing in another. It lives here, in the domain crate, because the store
//! rows (here), the models (`inference`) and training (`trainer`) all need it and the crate
//! graph runs one way: `datasets` ← `inference` ← `trainer` ← `workbench`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A kind of model. Every `match` over it is exhaustive, so a new kind does not compile until
/// training (`trainer/src/run.rs`) and loading (`inference/src/model.rs`) handle it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Hashed word and character n-grams into a small network: seconds on a CPU.
    #[default]
    Ngram,
    /// A linear head over a frozen pretrained sentence encoder.
    EncoderHead,
    /// The pretrained encoder and its head trained together.
    Finetune,
    /// The encoder tuned on sentence pairs of the labelled tickets (SetFit), then a head.
    Setfit,
}

/// What the lists of kinds show about one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// The name used everywhere outside the code: CLI, API, database, model cards.
    pub name: &'static str,
    /// One line for a person choosing a kind (CLI help, training page, OpenAPI).
    pub summary: &'static str,
    /// Whether training and loading read a pretrained encoder from the local model cache.
    pub needs_encoder: bool,
}

impl ModelKind {
    /// Every kind, in the order lists show them; the first is the default.
    pub const ALL: [ModelKind; 4] = [Self::Ngram, Self::EncoderHead, Self::Finetune, Self::Setfit];

    /// The registration of each kind: its name, its one-line summary and what it needs.
    pub const fn info(self) -> KindInfo {
        match self {
            Self::Ngram => KindInfo {
                name: "ngram",
                summary: "seconds on a CPU",
                needs_encoder: false,
            },
            Self::EncoderHead => KindInfo {
                name: "encoder-head",
                summary: "a head over a pretrained encoder; needs the encoder in the local cache",
                needs_encoder: true,
            },
            Self::Finetune => KindInfo {
                name: "finetune",
                summary: "tunes the pretrained encoder itself; slow on a CPU, needs the encoder in the local cache",
                needs_encoder: true,
            },
            Self::Setfit => KindInfo {
                name: "setfit",
                summary: "tunes the encoder on pairs of labelled tickets, then a head; strong with few labels, needs the encoder in the local cache",
                needs_encoder: true,
            },
        }
    }

    /// The kind's name: `ngram`, `encoder-head`, …
    pub const fn as_str(self) -> &'static str {
        self.info().name
    }

    /// The names of all kinds, in `ALL`'s order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.into_iter().map(Self::as_str)
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that is not in the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model kind {given:?}: the kinds are {}", ModelKind::names().collect::<Vec<_>>().join(", "))]
pub struct UnknownModelKind {
    pub given: String,
}

impl FromStr for ModelKind {
    type Err = UnknownModelKind;

    fn from_str(s: &str) -> Result<Self, UnknownModelKind> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownModelKind {
                given: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name_and_serde() {
        for kind in ModelKind::ALL {
            assert_eq!(kind.as_str().parse::<ModelKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).expect("serialize");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn all_lists_every_variant_once() {
        // serde's derived `Deserialize` knows every variant; its error for an unknown one
        // names them all, so this fails when a variant is added but not listed in `ALL`.
        let error = serde_json::from_str::<ModelKind>("\"no-such-kind\"")
            .expect_err("not a kind")
            .to_string();
        let listed = error
            .split("expected one of ")
            .nth(1)
            .expect("serde lists the variants");
        let variants: Vec<&str> = listed
            .split(", ")
            .map(|name| name.split('`').nth(1).unwrap_or(name))
            .collect();
        assert_eq!(variants, ModelKind::names().collect::<Vec<_>>());
    }

    #[test]
    fn an_unknown_kind_is_refused_with_the_list_of_kinds() {
        let error = "bert".parse::<ModelKind>().expect_err("not a kind");
        assert_eq!(
            error.to_string(),
            "unknown model kind \"bert\": the kinds are ngram, encoder-head, finetune, setfit"
        );
    }

    #[test]
    fn the_default_kind_is_the_first_listed() {
        assert_eq!(ModelKind::default(), ModelKind::ALL[0]);
    }
}
