//! The taxonomy: a project's tags, with descriptions, colours and keyword rules.

use crate::error::ValidationError;
use crate::ids::{ProjectId, TagGroupId, TagId};
use crate::limits;
use crate::names::{TagGroupName, TagName};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The colour a new tag gets when none is given.
pub const DEFAULT_TAG_COLOR: &str = "#6b7280";

/// Keyword rules: a ticket containing any `include` phrase gets the tag; one containing any
/// `exclude` phrase never gets it, whatever the model says.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeywordRules {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl KeywordRules {
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Checks the rules against `crate::limits`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        limits::check_count(
            "keywords",
            self.include.len() + self.exclude.len(),
            limits::MAX_KEYWORDS_PER_TAG,
            "keyword phrases (include and exclude together)",
        )?;
        for phrase in self.include.iter().chain(&self.exclude) {
            if phrase.trim().is_empty() {
                return Err(ValidationError::field(
                    "keywords",
                    "a keyword phrase is empty",
                ));
            }
            limits::check_chars("keywords", phrase, limits::MAX_KEYWORD_CHARS)?;
        }
        Ok(())
    }
}

/// A tag of a project's taxonomy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tag {
    pub id: TagId,
    pub project_id: ProjectId,
    pub name: TagName,
    pub description: String,
    pub color: String,
    pub keywords: KeywordRules,
    pub archived: bool,
    /// The group the tag belongs to (`crate::tag_group`).
    pub group_id: TagGroupId,
    pub created_at: DateTime<Utc>,
}

/// What is needed to add a tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewTag {
    pub name: TagName,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: String,
    #[serde(default = "default_color")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub color: String,
    #[serde(default)]
    pub keywords: KeywordRules,
    /// The group to add the tag to, by name; the project's default group when absent.
    #[serde(default)]
    pub group: Option<TagGroupName>,
}

fn default_color() -> String {
    DEFAULT_TAG_COLOR.to_string()
}

impl NewTag {
    /// A tag with only a name, as created when an import finds a new label.
    pub fn named(name: TagName) -> Self {
        Self {
            name,
            description: String::new(),
            color: default_color(),
            keywords: KeywordRules::default(),
            group: None,
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_description(&self.description)?;
        validate_color(&self.color)?;
        self.keywords.validate()
    }
}

/// A partial change to a tag; absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TagUpdate {
    pub name: Option<TagName>,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub color: Option<String>,
    pub keywords: Option<KeywordRules>,
    pub archived: Option<bool>,
    /// Moves the tag to this group of its project, by name.
    pub group: Option<TagGroupName>,
}

impl TagUpdate {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(description) = &self.description {
            validate_description(description)?;
        }
        if let Some(color) = &self.color {
            validate_color(color)?;
        }
        if let Some(keywords) = &self.keywords {
            keywords.validate()?;
        }
        Ok(())
    }

    /// Applies the change to a copy of `tag`; a named group is resolved by the store, which
    /// sets `group_id` itself.
    pub fn apply_to(&self, tag: &Tag) -> Tag {
        let mut changed = tag.clone();
        if let Some(name) = &self.name {
            changed.name = name.clone();
        }
        if let Some(description) = &self.description {
            changed.description = description.clone();
        }
        if let Some(color) = &self.color {
            changed.color = color.clone();
        }
        if let Some(keywords) = &self.keywords {
            changed.keywords = keywords.clone();
        }
        if let Some(archived) = self.archived {
            changed.archived = archived;
        }
        changed
    }
}

fn validate_description(description: &str) -> Result<(), ValidationError> {
    limits::check_chars("description", description, limits::MAX_DESCRIPTION_CHARS)
}

/// Colours are `#rrggbb`, so they can go into SVG and CSS without escaping.
fn validate_color(color: &str) -> Result<(), ValidationError> {
    let valid = color.len() == 7
        && color.starts_with('#')
        && color[1..].chars().all(|c| c.is_ascii_hexdigit());
    if valid {
        Ok(())
    } else {
        Err(ValidationError::field(
            "color",
            format!("{color:?} is not a colour of the form #rrggbb"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_must_be_hex_triplets() {
        let mut tag = NewTag::named(TagName::parse("Bug").unwrap());
        assert!(tag.validate().is_ok());
        tag.color = "red".into();
        assert!(tag.validate().is_err());
        tag.color = "#12345g".into();
        assert!(tag.validate().is_err());
    }

    #[test]
    fn blank_keyword_phrases_are_refused() {
        let mut tag = NewTag::named(TagName::parse("Bug").unwrap());
        tag.keywords.include.push("  ".into());
        assert!(tag.validate().is_err());
    }

    #[test]
    fn keyword_rules_are_bounded_in_count_and_length() {
        let mut tag = NewTag::named(TagName::parse("Bug").unwrap());
        tag.keywords.include = vec!["crash".into(); limits::MAX_KEYWORDS_PER_TAG];
        assert!(tag.validate().is_ok());
        tag.keywords.exclude.push("feature".into());
        let error = tag.validate().unwrap_err().to_string();
        assert!(error.contains("the limit is 200"), "{error}");
        tag.keywords = KeywordRules {
            include: vec!["x".repeat(limits::MAX_KEYWORD_CHARS + 1)],
            exclude: Vec::new(),
        };
        assert!(tag.validate().is_err());
        tag.keywords.include = vec!["nul\u{0}".into()];
        assert!(tag.validate().is_err());
    }
}
