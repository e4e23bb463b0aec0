//! Projects: one company's or team's space, owning a taxonomy and its tickets.

use crate::ids::ProjectId;
use crate::language::Language;
use crate::names::ProjectName;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Whether a ticket may carry several tags of the taxonomy or exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LabelMode {
    #[default]
    Multi,
    Single,
}

impl LabelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Multi => "multi",
            Self::Single => "single",
        }
    }
}

impl FromStr for LabelMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "multi" => Ok(Self::Multi),
            "single" => Ok(Self::Single),
            other => Err(format!(
                "unknown label mode {other:?} (expected multi or single)"
            )),
        }
    }
}

/// A stored project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Project {
    pub id: ProjectId,
    pub name: ProjectName,
    pub label_mode: LabelMode,
    /// The languages its model serves; a ticket detected in another goes to a person.
    /// Empty (the default): every ticket is tagged, whatever its language.
    #[serde(default)]
    pub languages: Vec<Language>,
    pub created_at: DateTime<Utc>,
}

/// A project with the sizes shown in listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectSummary {
    #[serde(flatten)]
    pub project: Project,
    pub tickets: i64,
    pub tags: i64,
}
