//! Tag groups: a project's taxonomy split into groups (Type, Priority, Topics), each
//! single-choice (a ticket gets at most one of its tags) or multi-choice. Every project has
//! one default group, where tags go unless a group is named; a project that never makes a
//! group has only that one, single-choice exactly when the project is single-label.

use crate::ids::{ProjectId, TagGroupId, TagId};
use crate::names::TagGroupName;
use crate::project::LabelMode;
use crate::tag::Tag;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The name of the group every project starts with (migration 0017 names it too).
pub const DEFAULT_GROUP_NAME: &str = "Tags";

/// How many of a group's tags one ticket may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupChoice {
    /// At most one tag of the group (Type, Priority).
    Single,
    /// Any number of the group's tags (Topics).
    Multi,
}

stored_enum!(GroupChoice, "group choice", {
    Single => "single",
    Multi => "multi",
});

impl From<LabelMode> for GroupChoice {
    /// The default group of a single-label project is single-choice.
    fn from(mode: LabelMode) -> Self {
        match mode {
            LabelMode::Single => Self::Single,
            LabelMode::Multi => Self::Multi,
        }
    }
}

impl From<GroupChoice> for LabelMode {
    /// A single-choice group reads its tags as a single-label project does.
    fn from(choice: GroupChoice) -> Self {
        match choice {
            GroupChoice::Single => Self::Single,
            GroupChoice::Multi => Self::Multi,
        }
    }
}

/// A stored tag group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TagGroup {
    pub id: TagGroupId,
    pub project_id: ProjectId,
    pub name: TagGroupName,
    pub choice: GroupChoice,
    /// Where the group is listed: groups are shown by position, then id.
    pub position: i64,
    /// The project's default group, where a tag goes when no group is named. It cannot be
    /// deleted.
    pub is_default: bool,
}

/// What is needed to add a tag group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTagGroup {
    pub name: TagGroupName,
    pub choice: GroupChoice,
}

/// Two tags a ticket was given from one single-choice group.
#[derive(Debug, Clone, PartialEq)]
pub struct SingleChoiceClash<'a> {
    pub group: &'a TagGroup,
    pub first: &'a Tag,
    pub second: &'a Tag,
}

impl SingleChoiceClash<'_> {
    /// The sentence people and API clients see.
    pub fn describe(&self) -> String {
        format!(
            "group {:?} is single-choice: give at most one of its tags (got {:?} and {:?})",
            self.group.name.as_str(),
            self.first.name.as_str(),
            self.second.name.as_str()
        )
    }
}

/// The first single-choice group of which `chosen` holds two tags, in the order `chosen`
/// names them; `None` when every single-choice group gets at most one. Tags without a
/// known group are not checked.
pub fn single_choice_clash<'a>(
    groups: &'a [TagGroup],
    chosen: &[&'a Tag],
) -> Option<SingleChoiceClash<'a>> {
    let by_id: HashMap<TagGroupId, &TagGroup> = groups.iter().map(|g| (g.id, g)).collect();
    let mut first_of: HashMap<TagGroupId, &Tag> = HashMap::new();
    for tag in chosen {
        let Some(group) = by_id.get(&tag.group_id) else {
            continue;
        };
        if group.choice != GroupChoice::Single {
            continue;
        }
        match first_of.get(&group.id) {
            Some(first) if first.id != tag.id => {
                return Some(SingleChoiceClash {
                    group,
                    first,
                    second: tag,
                });
            }
            Some(_) => {}
            None => {
                first_of.insert(group.id, tag);
            }
        }
    }
    None
}

/// The tags of a project under their groups, groups in listing order, each group's tags in
/// the order `tags` gives them; a tag whose group is not in `groups` is left out.
pub fn tags_by_group<'a, T>(
    groups: &'a [TagGroup],
    tags: impl IntoIterator<Item = (TagId, T)>,
    group_of: &HashMap<TagId, TagGroupId>,
) -> Vec<(&'a TagGroup, Vec<T>)> {
    let mut grouped: Vec<(&TagGroup, Vec<T>)> = groups.iter().map(|g| (g, Vec::new())).collect();
    for (tag, item) in tags {
        let Some(group) = group_of.get(&tag) else {
            continue;
        };
        if let Some((_, items)) = grouped.iter_mut().find(|(g, _)| g.id == *group) {
            items.push(item);
        }
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::TagName;

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

    fn tag(id: i64, name: &str, group: i64) -> Tag {
        Tag {
            id: TagId(id),
            project_id: ProjectId(1),
            name: TagName::parse(name).unwrap(),
            description: String::new(),
            color: "#000000".into(),
            keywords: Default::default(),
            archived: false,
            group_id: TagGroupId(group),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn two_tags_of_one_single_choice_group_clash_and_other_groups_do_not() {
        let groups = [
            group(1, "Topics", GroupChoice::Multi),
            group(2, "Priority", GroupChoice::Single),
            group(3, "Type", GroupChoice::Single),
        ];
        let (login, billing) = (tag(1, "Login", 1), tag(2, "Billing", 1));
        let (low, high) = (tag(3, "Low", 2), tag(4, "High", 2));
        let bug = tag(5, "Bug", 3);
        assert_eq!(
            single_choice_clash(&groups, &[&login, &billing, &low, &bug]),
            None
        );
        assert_eq!(single_choice_clash(&groups, &[&low, &low]), None);
        let clash = single_choice_clash(&groups, &[&login, &high, &bug, &low]).unwrap();
        assert_eq!(clash.group.name.as_str(), "Priority");
        assert_eq!(
            (clash.first.name.as_str(), clash.second.name.as_str()),
            ("High", "Low")
        );
        assert!(
            clash.describe().contains("single-choice"),
            "{}",
            clash.describe()
        );
    }

    #[test]
    fn choices_follow_the_label_mode_and_parse_their_stored_names() {
        assert_eq!(GroupChoice::from(LabelMode::Single), GroupChoice::Single);
        assert_eq!(GroupChoice::from(LabelMode::Multi), GroupChoice::Multi);
        for choice in GroupChoice::ALL {
            assert_eq!(choice.as_str().parse::<GroupChoice>(), Ok(*choice));
        }
        assert!("several".parse::<GroupChoice>().is_err());
    }

    #[test]
    fn tags_are_listed_under_their_groups_in_group_order() {
        let groups = [
            group(1, "Type", GroupChoice::Single),
            group(2, "Topics", GroupChoice::Multi),
        ];
        let group_of: HashMap<TagId, TagGroupId> = [
            (TagId(1), TagGroupId(2)),
            (TagId(2), TagGroupId(1)),
            (TagId(3), TagGroupId(2)),
        ]
        .into();
        let grouped = tags_by_group(
            &groups,
            [
                (TagId(1), "a"),
                (TagId(2), "b"),
                (TagId(3), "c"),
                (TagId(9), "x"),
            ],
            &group_of,
        );
        let shown: Vec<(&str, Vec<&str>)> = grouped
            .iter()
            .map(|(g, items)| (g.name.as_str(), items.clone()))
            .collect();
        assert_eq!(shown, [("Type", vec!["b"]), ("Topics", vec!["a", "c"])]);
    }
}
