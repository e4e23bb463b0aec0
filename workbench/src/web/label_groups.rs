//! The labelling forms of the ticket and review pages under the project's tag groups: the
//! active tags group by group, each group's heading with what the model picked for it and
//! how sure it was, and the store's refusal of an answer (two tags of a single-choice group)
//! turned into the form's error instead of an error page.

use super::WebError;
use datasets::{GroupChoice, Tag, TagGroup, TagId};
use minijinja::{Value, context};
use std::collections::HashMap;

/// The active tags under their groups, groups in listing order (those without an active tag
/// left out), tags in the taxonomy's order. A tag whose group is not listed (a group made
/// after the list was read) joins the default group, so no tag is ever hidden.
pub fn active_by_group<'a>(
    groups: &'a [TagGroup],
    taxonomy: &'a [Tag],
) -> Vec<(&'a TagGroup, Vec<&'a Tag>)> {
    let fallback = groups.iter().find(|g| g.is_default).or(groups.first());
    let mut shown: Vec<(&TagGroup, Vec<&Tag>)> = groups.iter().map(|g| (g, Vec::new())).collect();
    for tag in taxonomy.iter().filter(|t| !t.archived) {
        let home = groups
            .iter()
            .find(|g| g.id == tag.group_id)
            .or(fallback)
            .map(|g| g.id);
        if let Some((_, tags)) = shown.iter_mut().find(|(g, _)| Some(g.id) == home) {
            tags.push(tag);
        }
    }
    shown.retain(|(_, tags)| !tags.is_empty());
    shown
}

/// What the model picked for one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    /// The picked tags: the best-scored one for a single-choice group, the applied ones for
    /// a multi-choice group (the best-scored one when none was applied).
    pub tags: Vec<String>,
    /// The highest probability among them.
    pub confidence: f32,
    /// Whether the model applied the pick (at or above threshold) rather than only
    /// scoring it best.
    pub applied: bool,
}

/// The model's pick for `group`: from the live verdict's group when there is one, else from
/// the confidences stored with the model's labels of the group's tags. `None` when the model
/// said nothing about the group.
pub fn group_pick(
    group: &TagGroup,
    tags: &[&Tag],
    verdicts: &[inference::GroupVerdict],
    stored: &HashMap<TagId, f32>,
) -> Option<Pick> {
    if let Some(verdict) = verdicts.iter().find(|v| v.group == group.name) {
        // Scores come highest first.
        let best = verdict.scores.first()?;
        let applied: Vec<&inference::TagScore> = verdict
            .scores
            .iter()
            .filter(|s| verdict.tags.contains(&s.tag))
            .collect();
        return Some(match (group.choice, applied.as_slice()) {
            (GroupChoice::Multi, [first, ..]) => Pick {
                tags: applied.iter().map(|s| s.tag.to_string()).collect(),
                confidence: first.probability,
                applied: true,
            },
            _ => Pick {
                tags: vec![best.tag.to_string()],
                confidence: best.probability,
                applied: verdict.tags.contains(&best.tag),
            },
        });
    }
    let mut scored: Vec<(&Tag, f32)> = tags
        .iter()
        .filter_map(|t| Some((*t, *stored.get(&t.id)?)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (best, confidence) = scored.first().copied()?;
    let tags = match group.choice {
        GroupChoice::Single => vec![best.name.to_string()],
        GroupChoice::Multi => scored.iter().map(|(t, _)| t.name.to_string()).collect(),
    };
    Some(Pick {
        tags,
        confidence,
        applied: true,
    })
}

/// A group as the templates show it. Headings are shown only when the project has more than
/// one group, so a project that never made a group looks as it did.
pub fn group_view(
    group: &TagGroup,
    pick: Option<Pick>,
    choices: Vec<Value>,
    groups_shown: usize,
) -> Value {
    context! {
        id => group.id.0,
        name => group.name.as_str(),
        choice => group.choice.as_str(),
        single => group.choice == GroupChoice::Single,
        heading => groups_shown > 1,
        pick => pick.map(|p| context! { tags => p.tags, confidence => p.confidence, applied => p.applied }),
        choices => choices,
    }
}

/// Whether the whole form is one single choice (a single-label project without other
/// groups): then its inputs are radio buttons with a "none of these".
pub fn one_single_group(groups: &[TagGroup]) -> bool {
    matches!(groups, [only] if only.choice == GroupChoice::Single)
}

/// Splits a labelling answer's failure into the store's refusal of two tags of one
/// single-choice group (the person's to fix, shown as the form's error) and every other
/// failure (an unknown or archived tag stays a 409: the form never offers one).
pub fn refused_answer<T>(result: Result<T, WebError>) -> Result<T, Result<String, WebError>> {
    match result {
        Ok(value) => Ok(value),
        Err(WebError::Conflict(message))
            if message.starts_with("tags: ") && message.contains("single-choice") =>
        {
            Err(Ok(message.trim_start_matches("tags: ").to_string()))
        }
        Err(error) => Err(Err(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::{ProjectId, TagGroupId, TagGroupName, TagName};

    fn group(id: i64, name: &str, choice: GroupChoice) -> TagGroup {
        TagGroup {
            id: TagGroupId(id),
            project_id: ProjectId(1),
            name: TagGroupName::parse(name).unwrap(),
            choice,
            position: id,
            is_default: id == 1,
        }
    }

    fn tag(id: i64, name: &str, group: i64, archived: bool) -> Tag {
        Tag {
            id: TagId(id),
            project_id: ProjectId(1),
            name: TagName::parse(name).unwrap(),
            description: String::new(),
            color: "#000000".into(),
            keywords: Default::default(),
            archived,
            group_id: TagGroupId(group),
            created_at: chrono::Utc::now(),
        }
    }

    fn score(tag: &str, probability: f32, applied: bool) -> inference::TagScore {
        inference::TagScore {
            tag: TagName::parse(tag).unwrap(),
            probability,
            threshold: 0.5,
            realised_precision: None,
            applied,
            rule: None,
        }
    }

    #[test]
    fn tags_are_shown_group_by_group_and_none_is_lost() {
        let groups = [
            group(1, "Topics", GroupChoice::Multi),
            group(2, "Type", GroupChoice::Single),
            group(3, "Empty", GroupChoice::Single),
        ];
        let taxonomy = [
            tag(1, "Bug", 2, false),
            tag(2, "Billing", 1, false),
            tag(3, "Old", 1, true),
            tag(4, "Stray", 99, false),
        ];
        let shown: Vec<(&str, Vec<&str>)> = active_by_group(&groups, &taxonomy)
            .iter()
            .map(|(g, tags)| {
                (
                    g.name.as_str(),
                    tags.iter().map(|t| t.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [("Topics", vec!["Billing", "Stray"]), ("Type", vec!["Bug"])]
        );
        assert!(one_single_group(&[group(1, "Tags", GroupChoice::Single)]));
        assert!(!one_single_group(&groups));
    }

    #[test]
    fn a_group_pick_comes_from_the_live_verdict_else_from_stored_confidences() {
        let priority = group(2, "Priority", GroupChoice::Single);
        let topics = group(1, "Topics", GroupChoice::Multi);
        let taxonomy = [
            tag(1, "Low", 2, false),
            tag(2, "High", 2, false),
            tag(3, "Billing", 1, false),
            tag(4, "Login", 1, false),
        ];
        let verdicts = vec![
            inference::GroupVerdict {
                group: priority.name.clone(),
                choice: GroupChoice::Single,
                tags: vec![],
                scores: vec![score("High", 0.42, false), score("Low", 0.3, false)],
            },
            inference::GroupVerdict {
                group: topics.name.clone(),
                choice: GroupChoice::Multi,
                tags: vec![
                    TagName::parse("Login").unwrap(),
                    TagName::parse("Billing").unwrap(),
                ],
                scores: vec![score("Login", 0.9, true), score("Billing", 0.7, true)],
            },
        ];
        let levels: Vec<&Tag> = taxonomy[..2].iter().collect();
        let pick = group_pick(&priority, &levels, &verdicts, &HashMap::new()).unwrap();
        assert_eq!(
            pick,
            Pick {
                tags: vec!["High".into()],
                confidence: 0.42,
                applied: false
            }
        );
        let areas: Vec<&Tag> = taxonomy[2..].iter().collect();
        let pick = group_pick(&topics, &areas, &verdicts, &HashMap::new()).unwrap();
        assert_eq!(
            (pick.tags, pick.confidence, pick.applied),
            (vec!["Login".to_string(), "Billing".to_string()], 0.9, true)
        );

        // Without a live verdict, the stored model labels' best; nothing stored, no pick.
        let stored: HashMap<TagId, f32> = [(TagId(1), 0.8), (TagId(2), 0.6)].into();
        let pick = group_pick(&priority, &levels, &[], &stored).unwrap();
        assert_eq!((pick.tags, pick.confidence), (vec!["Low".to_string()], 0.8));
        assert_eq!(group_pick(&topics, &areas, &[], &stored), None);
    }

    #[test]
    fn only_a_refusal_of_the_tags_becomes_a_form_error() {
        let refused: Result<(), _> = Err(WebError::Conflict(
            "tags: group \"Type\" is single-choice".into(),
        ));
        assert!(
            matches!(refused_answer(refused), Err(Ok(reason)) if reason == "group \"Type\" is single-choice")
        );
        let other: Result<(), _> = Err(WebError::Conflict("tags: unknown tag \"nope\"".into()));
        assert!(matches!(
            refused_answer(other),
            Err(Err(WebError::Conflict(_)))
        ));
        assert!(matches!(refused_answer(Ok::<_, WebError>(3)), Ok(3)));
    }
}
