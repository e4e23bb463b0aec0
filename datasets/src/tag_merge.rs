//! Merging one tag into another: what the merge reports, how the two tags' keyword rules
//! combine, and how the label history names the merge. The SQL is in `store/tag_merge.rs`.

use crate::names::TagName;
use crate::tag::{KeywordRules, Tag};
use serde::Serialize;

/// What a merge of `from` into `into` did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TagMerge {
    /// The merged tag, archived now.
    pub from: Tag,
    /// The tag that received the labels and the keyword rules.
    pub into: Tag,
    /// Tickets that carried a label (of any source) of the merged tag.
    pub tickets: u64,
    /// Labels moved to `into` as they were.
    pub labels_moved: u64,
    /// Labels folded into a label `into` already had from the same source on the same
    /// ticket (a ticket with both tags keeps one).
    pub labels_combined: u64,
}

/// `into`'s rules followed by those of `from` it does not have yet (compared without regard
/// to case or surrounding spaces, as the rules match).
pub fn merged_rules(into: &KeywordRules, from: &KeywordRules) -> KeywordRules {
    fn append(kept: &[String], added: &[String]) -> Vec<String> {
        let mut out = kept.to_vec();
        let mut seen: Vec<String> = kept.iter().map(|p| p.trim().to_lowercase()).collect();
        for phrase in added {
            let key = phrase.trim().to_lowercase();
            if !seen.contains(&key) {
                seen.push(key);
                out.push(phrase.clone());
            }
        }
        out
    }
    KeywordRules {
        include: append(&into.include, &from.include),
        exclude: append(&into.exclude, &from.exclude),
    }
}

/// Who the label history names for the events a merge writes: the person (or key) and the
/// merge, so a ticket's history explains why a label moved.
pub fn merge_actor(actor: &str, from: &TagName, into: &TagName) -> String {
    format!(
        "{}, merging {} into {}",
        actor.trim(),
        from.as_str(),
        into.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(include: &[&str], exclude: &[&str]) -> KeywordRules {
        KeywordRules {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn rules_of_the_merged_tag_are_appended_without_repeating_a_phrase() {
        let into = rules(&["refund", "Invoice"], &["test"]);
        let from = rules(&["invoice ", "chargeback"], &["spam", "TEST"]);
        assert_eq!(
            merged_rules(&into, &from),
            rules(&["refund", "Invoice", "chargeback"], &["test", "spam"])
        );
        assert_eq!(merged_rules(&from, &KeywordRules::default()), from);
    }
}
