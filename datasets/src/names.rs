//! Validated names: what a person types as a tag or project name is trimmed and checked once,
//! here, so the rest of the code can trust it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest tag, tag group or project name we accept, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} name is empty")]
    Empty { kind: &'static str },
    #[error("{kind} name {name:?} is longer than {MAX_NAME_CHARS} characters")]
    TooLong { kind: &'static str, name: String },
    #[error("{kind} name {name:?} contains a control character")]
    ControlCharacter { kind: &'static str, name: String },
}

fn validate(kind: &'static str, raw: &str) -> Result<String, NameError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong {
            kind,
            name: name.chars().take(MAX_NAME_CHARS).collect::<String>() + "…",
        });
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter {
            kind,
            name: name.to_string(),
        });
    }
    Ok(name.to_string())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Trims and validates a name typed by a person or read from a file.
            pub fn parse(raw: &str) -> Result<Self, NameError> {
                validate($kind, raw).map(Self)
            }

            /// The name as stored and shown.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The key under which names are unique: names differ only by case are the same.
            pub fn folded(&self) -> String {
                self.0.to_lowercase()
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(raw: String) -> Result<Self, NameError> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A tag's name, unique per project regardless of case.
    TagName,
    "tag"
);
name_type!(
    /// A tag group's name, unique per project regardless of case.
    TagGroupName,
    "tag group"
);
name_type!(
    /// A project's name, unique regardless of case.
    ProjectName,
    "project"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed() {
        assert_eq!(TagName::parse("  Bug \n").unwrap().as_str(), "Bug");
    }

    #[test]
    fn empty_and_blank_names_are_refused() {
        assert!(matches!(TagName::parse(""), Err(NameError::Empty { .. })));
        assert!(matches!(
            TagName::parse("  \t"),
            Err(NameError::Empty { .. })
        ));
    }

    #[test]
    fn long_names_are_refused_at_the_character_not_byte_limit() {
        let ok = "é".repeat(MAX_NAME_CHARS);
        assert!(TagName::parse(&ok).is_ok());
        let too_long = "é".repeat(MAX_NAME_CHARS + 1);
        assert!(matches!(
            TagName::parse(&too_long),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(matches!(
            TagName::parse("Bu\u{0}g"),
            Err(NameError::ControlCharacter { .. })
        ));
    }

    #[test]
    fn odd_upstream_labels_are_kept_as_they_are() {
        assert_eq!(
            TagName::parse("reverted_card_payment?").unwrap().as_str(),
            "reverted_card_payment?"
        );
    }

    #[test]
    fn folding_ignores_case() {
        assert_eq!(
            TagName::parse("BUG").unwrap().folded(),
            TagName::parse("bug").unwrap().folded()
        );
    }
}
