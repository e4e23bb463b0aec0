//! How a model's outputs are read. A project without tag groups has one head over all its
//! outputs: one softmax (single-label) or a sigmoid per tag (multi-label). A project with
//! groups (Type, Priority, Topics) has one head per group over a run of consecutive
//! outputs: a softmax for a single-choice group, so its tags compete only with each other,
//! and a sigmoid per tag for a multi-choice group. The encoder or the n-gram features are
//! shared; only the reading of the logits differs.
//!
//! `Heads::Whole` keeps the exact arithmetic models had before groups, so versions trained
//! then read the same, bit for bit.

use datasets::{GroupChoice, LabelMode};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;

/// One group's outputs: `len` consecutive outputs from `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The group's name when the model was trained (empty for a whole-model head).
    pub name: String,
    pub choice: GroupChoice,
    pub start: usize,
    pub len: usize,
}

impl Head {
    pub fn outputs(&self) -> Range<usize> {
        self.start..self.start + self.len
    }
}

/// The heads of a model (see the module's documentation).
#[derive(Debug, Clone, PartialEq)]
pub enum Heads {
    /// Every output under the project's label mode.
    Whole(LabelMode),
    /// One head per tag group; together they cover the outputs once, in order.
    Groups(Arc<[Head]>),
}

/// Heads that do not cover the outputs once, in order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tag group heads must cover outputs 0..{outputs} once, in order, without an empty group")]
pub struct HeadsError {
    pub outputs: usize,
}

impl Heads {
    pub const SINGLE: Heads = Heads::Whole(LabelMode::Single);
    pub const MULTI: Heads = Heads::Whole(LabelMode::Multi);

    /// Heads per group, checked to cover `outputs` outputs once, in order.
    pub fn grouped(heads: &[Head], outputs: usize) -> Result<Self, HeadsError> {
        let mut next = 0;
        for head in heads {
            if head.start != next || head.len == 0 {
                return Err(HeadsError { outputs });
            }
            next += head.len;
        }
        if next != outputs || heads.is_empty() {
            return Err(HeadsError { outputs });
        }
        Ok(Self::Groups(heads.into()))
    }

    /// The label mode when the model has one head over everything.
    pub fn whole(&self) -> Option<LabelMode> {
        match self {
            Self::Whole(mode) => Some(*mode),
            Self::Groups(_) => None,
        }
    }

    /// The heads over `outputs` outputs, each with its choice and outputs.
    pub fn segments(&self, outputs: usize) -> Vec<Head> {
        match self {
            Self::Whole(mode) => vec![Head {
                name: String::new(),
                choice: GroupChoice::from(*mode),
                start: 0,
                len: outputs,
            }],
            Self::Groups(heads) => heads.to_vec(),
        }
    }

    /// Calibrated probabilities from logits at a temperature: a softmax within each
    /// single-choice head, a sigmoid for each output of a multi-choice head.
    pub fn probabilities(&self, logits: &[f32], temperature: f32) -> Vec<f32> {
        match self {
            Self::Whole(mode) => crate::calibration::probabilities(logits, temperature, *mode),
            Self::Groups(heads) => {
                let mut out = vec![0.0; logits.len()];
                for head in heads.iter() {
                    let range = head.outputs();
                    let (Some(part), Some(slot)) = (logits.get(range.clone()), out.get_mut(range))
                    else {
                        continue;
                    };
                    slot.copy_from_slice(&crate::calibration::probabilities(
                        part,
                        temperature,
                        LabelMode::from(head.choice),
                    ));
                }
                out
            }
        }
    }

    /// The tags a model predicts without thresholds: the top one of each single-choice
    /// head, and every output of a multi-choice head at 0.5 and above; ascending.
    pub fn predicted_set(&self, probabilities: &[f32]) -> Vec<usize> {
        let mut predicted = Vec::new();
        let segments = match self {
            Self::Whole(_) => self.segments(probabilities.len()),
            Self::Groups(heads) => heads.to_vec(),
        };
        for head in segments {
            let range = head.outputs();
            match head.choice {
                GroupChoice::Single => {
                    if let Some((i, _)) = probabilities[range.clone()]
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                    {
                        predicted.push(range.start + i);
                    }
                }
                GroupChoice::Multi => predicted.extend(range.filter(|&i| probabilities[i] >= 0.5)),
            }
        }
        predicted
    }

    /// The free energy of a row of logits: the sum over heads of each head's energy.
    pub fn energy(&self, logits: &[f32]) -> f32 {
        match self {
            Self::Whole(mode) => crate::out_of_distribution::energy(logits, *mode),
            Self::Groups(heads) => heads
                .iter()
                .filter_map(|h| {
                    let part = logits.get(h.outputs())?;
                    Some(crate::out_of_distribution::energy(
                        part,
                        LabelMode::from(h.choice),
                    ))
                })
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grouped() -> Heads {
        Heads::grouped(
            &[
                Head {
                    name: "Type".into(),
                    choice: GroupChoice::Single,
                    start: 0,
                    len: 2,
                },
                Head {
                    name: "Priority".into(),
                    choice: GroupChoice::Single,
                    start: 2,
                    len: 3,
                },
                Head {
                    name: "Topics".into(),
                    choice: GroupChoice::Multi,
                    start: 5,
                    len: 2,
                },
            ],
            7,
        )
        .unwrap()
    }

    #[test]
    fn each_single_choice_head_is_its_own_softmax_and_a_multi_choice_head_sigmoids() {
        let logits = [2.0, 0.0, 1.0, 1.5, 0.5, 3.0, -3.0];
        let p = grouped().probabilities(&logits, 1.0);
        assert!((p[0] + p[1] - 1.0).abs() < 1e-6);
        assert!((p[2] + p[3] + p[4] - 1.0).abs() < 1e-6);
        assert!(p[3] > p[2] && p[2] > p[4]);
        assert!((p[5] - crate::calibration::sigmoid(3.0)).abs() < 1e-6);
        assert!((p[6] - crate::calibration::sigmoid(-3.0)).abs() < 1e-6);
        assert_eq!(grouped().predicted_set(&p), [0, 3, 5]);
    }

    #[test]
    fn whole_heads_read_logits_exactly_as_the_label_mode_does() {
        let logits = [0.3, -1.2, 2.5];
        for mode in [LabelMode::Single, LabelMode::Multi] {
            assert_eq!(
                Heads::Whole(mode).probabilities(&logits, 1.7),
                crate::calibration::probabilities(&logits, 1.7, mode)
            );
            assert_eq!(
                Heads::Whole(mode).energy(&logits),
                crate::out_of_distribution::energy(&logits, mode)
            );
        }
    }

    #[test]
    fn heads_must_cover_the_outputs_once_in_order() {
        let head = |start, len| Head {
            name: String::new(),
            choice: GroupChoice::Multi,
            start,
            len,
        };
        assert!(Heads::grouped(&[head(0, 2), head(2, 1)], 3).is_ok());
        assert!(
            Heads::grouped(&[head(0, 2), head(3, 1)], 4).is_err(),
            "a gap"
        );
        assert!(
            Heads::grouped(&[head(0, 2), head(1, 2)], 3).is_err(),
            "an overlap"
        );
        assert!(Heads::grouped(&[head(0, 2)], 3).is_err(), "too short");
        assert!(
            Heads::grouped(&[head(0, 0), head(0, 3)], 3).is_err(),
            "an empty group"
        );
        assert!(Heads::grouped(&[], 0).is_err());
    }
}
