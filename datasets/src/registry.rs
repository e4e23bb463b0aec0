//! The model registry's rules: a version is a *candidate* until promoted; exactly one version
//! per project is *promoted* (in service) at a time; the one it replaces is *retired* and can
//! come back by rollback. Every promotion and rollback is recorded with who and when.

use crate::ids::{ModelVersionId, ProjectId};
use crate::model_version::ModelVersion;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// How a version came into service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromotionAction {
    Promote,
    Rollback,
}

impl PromotionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promote => "promote",
            Self::Rollback => "rollback",
        }
    }
}

impl FromStr for PromotionAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "promote" => Ok(Self::Promote),
            "rollback" => Ok(Self::Rollback),
            other => Err(format!("unknown promotion action {other:?}")),
        }
    }
}

/// One entry of a project's promotion history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Promotion {
    pub project_id: ProjectId,
    pub version: ModelVersionId,
    pub previous: Option<ModelVersionId>,
    pub action: PromotionAction,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// Why the guard refused a promotion; `force` overrides either.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardRefusal {
    /// The version was judged on no held-out tickets (a project without a test split, or an
    /// old record): its figures say nothing about tickets it has not seen.
    #[error(
        "version {candidate} was evaluated on no held-out tickets, so nothing shows how it tags tickets it has not seen; train it again (projects with fewer than 20 test tickets hold some training tickets out) or promote with force to override"
    )]
    NoHeldOutEvaluation { candidate: ModelVersionId },
    /// Clearly worse than the version in service.
    #[error(
        "version {candidate} has held-out macro-F1 {candidate_f1:.3}, worse than the promoted version {promoted}'s {promoted_f1:.3} by more than {margin:.3}; promote with force to override"
    )]
    WorseThanPromoted {
        candidate: ModelVersionId,
        candidate_f1: f64,
        promoted: ModelVersionId,
        promoted_f1: f64,
        margin: f64,
    },
}

impl GuardRefusal {
    /// A stable name of the reason, for API error codes.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoHeldOutEvaluation { .. } => "no_held_out_evaluation",
            Self::WorseThanPromoted { .. } => "guard",
        }
    }
}

/// How many held-out tickets a version was evaluated on (its metrics' `examples`).
pub fn held_out_examples(version: &ModelVersion) -> u64 {
    version
        .metrics
        .get("examples")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// The promotion guard: a candidate must have been evaluated on held-out tickets, and may
/// not be worse than the version in service by more than `margin` in held-out macro-F1.
pub fn check_guard(
    candidate: &ModelVersion,
    promoted: Option<&ModelVersion>,
    margin: f64,
) -> Result<(), GuardRefusal> {
    if held_out_examples(candidate) == 0 {
        return Err(GuardRefusal::NoHeldOutEvaluation {
            candidate: candidate.id,
        });
    }
    let Some(promoted) = promoted else {
        return Ok(());
    };
    let f1 = |v: &ModelVersion| {
        v.metrics
            .get("macro_f1")
            .and_then(serde_json::Value::as_f64)
    };
    match (f1(candidate), f1(promoted)) {
        (Some(candidate_f1), Some(promoted_f1)) if candidate_f1 + margin < promoted_f1 => {
            Err(GuardRefusal::WorseThanPromoted {
                candidate: candidate.id,
                candidate_f1,
                promoted: promoted.id,
                promoted_f1,
                margin,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: i64, macro_f1: Option<f64>) -> ModelVersion {
        ModelVersion {
            id: ModelVersionId(id),
            project_id: ProjectId(1),
            kind: crate::ModelKind::Ngram,
            status: "candidate".into(),
            metrics: macro_f1.map_or(
                serde_json::json!({"examples": 50}),
                |f| serde_json::json!({"examples": 50, "macro_f1": f}),
            ),
            params: serde_json::json!({}),
            artifact_path: String::new(),
            files: Default::default(),
            training_fingerprint: String::new(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_clearly_worse_candidate_is_refused_and_a_close_one_passes() {
        let promoted = version(1, Some(0.90));
        let error = check_guard(&version(2, Some(0.85)), Some(&promoted), 0.02).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("worse than the promoted version 1")
        );
        assert!(check_guard(&version(3, Some(0.89)), Some(&promoted), 0.02).is_ok());
        assert!(check_guard(&version(4, None), Some(&promoted), 0.02).is_ok());
        assert!(check_guard(&version(5, Some(0.1)), None, 0.02).is_ok());
    }

    #[test]
    fn a_version_evaluated_on_no_held_out_tickets_is_refused_even_as_the_first() {
        for metrics in [
            serde_json::json!({"examples": 0, "accuracy": 0.0, "macro_f1": 0.0}),
            serde_json::json!({}),
        ] {
            let candidate = ModelVersion {
                metrics,
                ..version(6, None)
            };
            let refusal = check_guard(&candidate, None, 0.02).unwrap_err();
            assert_eq!(
                refusal,
                GuardRefusal::NoHeldOutEvaluation {
                    candidate: ModelVersionId(6)
                }
            );
            assert_eq!(refusal.code(), "no_held_out_evaluation");
            assert!(refusal.to_string().contains("no held-out tickets"));
        }
    }
}
