//! From probabilities to what happens to a ticket: which tags are applied at once, which
//! are only suggested, whether a person must look, what keyword rules added or vetoed, and
//! which of today's tags the model cannot know about, and whether the ticket is in a language
//! the model serves.

use crate::card::TagRef;
use crate::out_of_distribution::Unfamiliarity;
use datasets::language::{Language, detect_language};
use datasets::{GroupChoice, LabelMode, Tag, TagGroup, TagGroupId, TagGroupName, TagId, TagName};
use serde::Serialize;
use std::collections::HashMap;

/// What a keyword rule did to a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleEffect {
    Added,
    Vetoed,
}

/// One tag's score for one ticket.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TagScore {
    pub tag: TagName,
    pub probability: f32,
    pub threshold: f32,
    /// How precise this tag's threshold turned out on the test split when the version was
    /// trained (absent for older versions, or a tag it never applied there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realised_precision: Option<f64>,
    /// Applied without a person: above threshold (or added by a rule, and not vetoed).
    pub applied: bool,
    pub rule: Option<RuleEffect>,
}

/// The verdict on one ticket.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    /// Highest probability first; equal probabilities by tag name, so the order is total
    /// and never depends on the taxonomy's order or on bits that differ between CPUs only
    /// when two scores tie.
    pub scores: Vec<TagScore>,
    /// The applied tags, in the order of `scores`.
    pub applied: Vec<TagName>,
    /// No tag was applied: a person should tag it.
    pub needs_review: bool,
    /// Why a person should look; present exactly when `needs_review` is.
    pub review_reason: Option<ReviewReason>,
    /// The ticket's language, when the project lists the languages its model serves and
    /// the text is long and clear enough to tell (`datasets::language::detect_language`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// How unlike the model's training tickets this one is, against the model's threshold
    /// (absent for versions trained without a detector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfamiliarity: Option<Unfamiliarity>,
    /// The same verdict under the taxonomy's groups, in the groups' order (absent when the
    /// decider was given no groups): what each group got and its tags' scores.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupVerdict>,
}

/// One tag group's part of a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GroupVerdict {
    pub group: TagGroupName,
    pub choice: GroupChoice,
    /// The group's applied tags: at most one for a single-choice group.
    pub tags: Vec<TagName>,
    /// The group's tags' scores, in the order of the verdict's `scores`.
    pub scores: Vec<TagScore>,
}

/// Why a ticket goes to a person instead of being tagged automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// The text has no letters at all (empty, emoji, punctuation, bare numbers): whatever
    /// the model says about it is a guess, however confident it looks.
    NoContent,
    /// No tag reached its threshold.
    NotConfident,
    /// The ticket is written in a language the project's model does not serve: its scores
    /// would be confident guesses, so no tag is applied, not even by a keyword rule.
    UnsupportedLanguage,
    /// The ticket is unlike the tickets the model learned from (its out-of-distribution
    /// score is beyond the threshold fitted at training time): its scores would be
    /// confident guesses about a subject no tag may cover, so no tag is applied.
    Unfamiliar,
}

impl ReviewReason {
    /// The sentence shown to people and API clients.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NoContent => "the ticket has no words to tag from",
            Self::NotConfident => "no tag is confident enough",
            Self::UnsupportedLanguage => {
                "unsupported language: the model does not serve the ticket's language"
            }
            Self::Unfamiliar => "unlike the tickets this model learned from",
        }
    }
}

/// Whether a text carries anything a model can read: at least one letter, in any script.
/// Emoji, punctuation, symbols and digits alone do not count — a model still scores such
/// a text, often confidently, because nothing in it contradicts the likeliest tag.
pub fn has_content(text: &str) -> bool {
    text.chars().any(char::is_alphabetic)
}

/// The project's taxonomy today, against the model's snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaxonomyDrift {
    /// Tags added since training: the model never predicts them.
    pub not_covered: Vec<TagName>,
    /// Tags the model knows that are archived or deleted now: never applied.
    pub retired: Vec<TagName>,
}

/// Applies thresholds and keyword rules with today's taxonomy.
#[derive(Debug, Clone)]
pub struct Decider {
    mode: LabelMode,
    /// Per model output: today's name, or `None` when the tag is retired.
    outputs: Vec<Option<TagName>>,
    thresholds: Vec<f32>,
    /// Per output: the threshold's realised precision on the test split, when known.
    realised_precision: Vec<Option<f64>>,
    rules: Vec<(usize, Vec<String>, Vec<String>)>,
    /// The languages the model serves; empty for every language (nothing is detected).
    languages: Vec<Language>,
    /// Per model output: the group of today's tag (`None` when retired).
    output_groups: Vec<Option<TagGroupId>>,
    /// The taxonomy's groups; empty until [`Decider::with_groups`], and then the project's
    /// label mode decides alone, as before groups existed.
    groups: Vec<TagGroup>,
    pub drift: TaxonomyDrift,
}

impl Decider {
    pub fn new(
        mode: LabelMode,
        model_tags: &[TagRef],
        thresholds: &[f32],
        taxonomy: &[Tag],
    ) -> Self {
        let current: HashMap<TagId, &Tag> = taxonomy.iter().map(|t| (t.id, t)).collect();
        let outputs: Vec<Option<TagName>> = model_tags
            .iter()
            .map(|known| {
                current
                    .get(&known.id)
                    .filter(|t| !t.archived)
                    .map(|t| t.name.clone())
            })
            .collect();
        let retired = model_tags
            .iter()
            .zip(&outputs)
            .filter(|(_, now)| now.is_none())
            .map(|(known, _)| known.name.clone())
            .collect();
        let output_groups = model_tags
            .iter()
            .map(|known| {
                current
                    .get(&known.id)
                    .filter(|t| !t.archived)
                    .map(|t| t.group_id)
            })
            .collect();
        let known: Vec<TagId> = model_tags.iter().map(|t| t.id).collect();
        let not_covered = taxonomy
            .iter()
            .filter(|t| !t.archived && !known.contains(&t.id))
            .map(|t| t.name.clone())
            .collect();
        let rules = model_tags
            .iter()
            .enumerate()
            .filter_map(|(i, known)| {
                let tag = current.get(&known.id).filter(|t| !t.archived)?;
                let lower = |phrases: &[String]| {
                    phrases
                        .iter()
                        .map(|p| p.trim().to_lowercase())
                        .collect::<Vec<_>>()
                };
                (!tag.keywords.is_empty()).then(|| {
                    (
                        i,
                        lower(&tag.keywords.include),
                        lower(&tag.keywords.exclude),
                    )
                })
            })
            .collect();
        Self {
            mode,
            outputs,
            thresholds: thresholds.to_vec(),
            realised_precision: Vec::new(),
            rules,
            languages: Vec::new(),
            output_groups,
            groups: Vec::new(),
            drift: TaxonomyDrift {
                not_covered,
                retired,
            },
        }
    }

    /// The same decisions, but a ticket detected in a language outside `languages` goes to
    /// a person; an empty list (a project that chose none) tags every language.
    pub fn with_languages(mut self, languages: &[Language]) -> Self {
        self.languages = languages.to_vec();
        self
    }

    /// The same decisions, each tag's score shown with its threshold's realised precision
    /// (per model output, as [`crate::ModelCard::realised_precision`] gives them).
    pub fn with_realised_precision(mut self, realised: Vec<Option<f64>>) -> Self {
        self.realised_precision = realised;
        self
    }

    /// The same decisions, per tag group: a single-choice group applies at most one tag (as
    /// a single-label project does: a keyword rule's tag first, else its likeliest tag that
    /// passes its own threshold), a multi-choice group's tags apply each by its threshold, and
    /// every verdict lists what each group got. A tag of a group not in `groups` is decided
    /// as the label mode says.
    pub fn with_groups(mut self, groups: &[TagGroup]) -> Self {
        self.groups = groups.to_vec();
        self
    }

    /// The taxonomy's groups this decider knows (empty: none given).
    pub fn groups(&self) -> &[TagGroup] {
        &self.groups
    }

    /// The languages the model serves (empty: all).
    pub fn languages(&self) -> &[Language] {
        &self.languages
    }

    /// The model output that scores `tag` today; `None` when the model does not know the tag
    /// or the tag is retired.
    pub fn output_of(&self, tag: &TagName) -> Option<usize> {
        self.outputs
            .iter()
            .position(|name| name.as_ref() == Some(tag))
    }

    /// Decides for one ticket without an out-of-distribution verdict (see
    /// [`Decider::decide_scored`]); `with_rules` false gives the model's own verdict.
    pub fn decide(&self, text: &str, probabilities: &[f32], with_rules: bool) -> Decision {
        self.decide_scored(text, probabilities, None, with_rules)
    }

    /// Decides for one ticket, given how unfamiliar the model found it
    /// ([`crate::TaggingModel::unfamiliarity`]); `with_rules` false gives the model's own
    /// verdict.
    pub fn decide_scored(
        &self,
        text: &str,
        probabilities: &[f32],
        unfamiliarity: Option<Unfamiliarity>,
        with_rules: bool,
    ) -> Decision {
        let content = has_content(text);
        let unfamiliar = unfamiliarity.is_some_and(|u| u.is_beyond());
        // Detection costs tens of microseconds: only projects that chose languages pay it.
        let language = match content && !self.languages.is_empty() {
            true => detect_language(text),
            false => None,
        };
        let unsupported = language.is_some_and(|l| !self.languages.contains(&l));
        let mut effects: Vec<Option<RuleEffect>> = vec![None; self.outputs.len()];
        if with_rules && !self.rules.is_empty() {
            let lowered = text.to_lowercase();
            for (output, include, exclude) in &self.rules {
                if exclude.iter().any(|p| lowered.contains(p.as_str())) {
                    effects[*output] = Some(RuleEffect::Vetoed);
                } else if include.iter().any(|p| lowered.contains(p.as_str())) {
                    effects[*output] = Some(RuleEffect::Added);
                }
            }
        }
        // A text without content, in a language the model does not serve, or unlike anything
        // it learned from gets no tag at all, not even from a keyword rule.
        let live = |i: usize| {
            content
                && !unsupported
                && !unfamiliar
                && self.outputs[i].is_some()
                && effects[i] != Some(RuleEffect::Vetoed)
        };
        let confident = |i: usize| probabilities[i] >= self.thresholds[i];
        // Which outputs decide together (one choice among them) and which alone: without
        // groups the label mode says; with them, each single-choice group is one choice.
        let mut chosen_among: Vec<Vec<usize>> = Vec::new();
        let mut alone: Vec<usize> = Vec::new();
        if self.groups.is_empty() {
            match self.mode {
                LabelMode::Single => chosen_among.push((0..self.outputs.len()).collect()),
                LabelMode::Multi => alone.extend(0..self.outputs.len()),
            }
        } else {
            for group in self
                .groups
                .iter()
                .filter(|g| g.choice == GroupChoice::Single)
            {
                chosen_among.push(
                    (0..self.outputs.len())
                        .filter(|&i| self.output_groups[i] == Some(group.id))
                        .collect(),
                );
            }
            let single_choice = |i: usize| match self.group_of(i) {
                Some(group) => group.choice == GroupChoice::Single,
                None => self.mode == LabelMode::Single,
            };
            let (ungrouped_single, independent): (Vec<usize>, Vec<usize>) = (0..self.outputs.len())
                .filter(|&i| {
                    self.group_of(i)
                        .is_none_or(|g| g.choice == GroupChoice::Multi)
                })
                .partition(|&i| single_choice(i));
            if !ungrouped_single.is_empty() {
                chosen_among.push(ungrouped_single);
            }
            alone = independent;
        }
        let mut applied = vec![false; self.outputs.len()];
        for &i in &alone {
            applied[i] = live(i) && (confident(i) || effects[i] == Some(RuleEffect::Added));
        }
        for candidates in &chosen_among {
            // A rule's tag wins over the model's; among several, the likelier one.
            let best = |keep: &dyn Fn(usize) -> bool| {
                candidates
                    .iter()
                    .copied()
                    .filter(|&i| keep(i))
                    .max_by(|a, b| probabilities[*a].total_cmp(&probabilities[*b]))
            };
            let by_rule = best(&|i| live(i) && effects[i] == Some(RuleEffect::Added));
            if let Some(i) = by_rule.or_else(|| best(&|i| live(i) && confident(i))) {
                applied[i] = true;
            }
        }
        let mut scores: Vec<(TagScore, Option<TagGroupId>)> = self
            .outputs
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let score = TagScore {
                    tag: name.clone()?,
                    probability: probabilities[i],
                    threshold: self.thresholds[i],
                    realised_precision: self.realised_precision.get(i).copied().flatten(),
                    applied: applied[i],
                    rule: effects[i],
                };
                Some((score, self.output_groups[i]))
            })
            .collect();
        scores.sort_by(|(a, _), (b, _)| {
            b.probability
                .total_cmp(&a.probability)
                .then_with(|| a.tag.cmp(&b.tag))
        });
        let groups = self
            .groups
            .iter()
            .map(|group| {
                let scores: Vec<TagScore> = scores
                    .iter()
                    .filter(|(_, g)| *g == Some(group.id))
                    .map(|(score, _)| score.clone())
                    .collect();
                GroupVerdict {
                    group: group.name.clone(),
                    choice: group.choice,
                    tags: scores
                        .iter()
                        .filter(|s| s.applied)
                        .map(|s| s.tag.clone())
                        .collect(),
                    scores,
                }
            })
            .collect();
        let scores: Vec<TagScore> = scores.into_iter().map(|(score, _)| score).collect();
        let applied_names: Vec<TagName> = scores
            .iter()
            .filter(|s| s.applied)
            .map(|s| s.tag.clone())
            .collect();
        let review_reason = if !content {
            Some(ReviewReason::NoContent)
        } else if unsupported {
            Some(ReviewReason::UnsupportedLanguage)
        } else if unfamiliar {
            Some(ReviewReason::Unfamiliar)
        } else if applied_names.is_empty() {
            Some(ReviewReason::NotConfident)
        } else {
            None
        };
        Decision {
            needs_review: review_reason.is_some(),
            review_reason,
            language,
            unfamiliarity,
            applied: applied_names,
            scores,
            groups,
        }
    }

    /// The group of output `i`'s tag, when the decider knows it.
    fn group_of(&self, i: usize) -> Option<&TagGroup> {
        let id = self.output_groups[i]?;
        self.groups.iter().find(|g| g.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::{KeywordRules, ProjectId};

    fn tag(id: i64, name: &str, archived: bool, include: &[&str], exclude: &[&str]) -> Tag {
        Tag {
            id: TagId(id),
            project_id: ProjectId(1),
            name: TagName::parse(name).unwrap(),
            description: String::new(),
            color: "#000000".into(),
            keywords: KeywordRules {
                include: include.iter().map(|s| s.to_string()).collect(),
                exclude: exclude.iter().map(|s| s.to_string()).collect(),
            },
            archived,
            group_id: TagGroupId(1),
            created_at: chrono::Utc::now(),
        }
    }

    fn known(id: i64, name: &str) -> TagRef {
        TagRef {
            id: TagId(id),
            name: TagName::parse(name).unwrap(),
        }
    }

    fn names(decision: &Decision) -> Vec<&str> {
        decision.applied.iter().map(|t| t.as_str()).collect()
    }

    #[test]
    fn a_single_label_ticket_below_its_threshold_goes_to_review() {
        let taxonomy = [
            tag(1, "Bug", false, &[], &[]),
            tag(2, "Billing", false, &[], &[]),
        ];
        let decider = Decider::new(
            LabelMode::Single,
            &[known(1, "Bug"), known(2, "Billing")],
            &[0.8, 0.8],
            &taxonomy,
        );
        let doubtful = decider.decide("text", &[0.6, 0.4], true);
        assert!(doubtful.needs_review);
        assert!(doubtful.applied.is_empty());
        assert_eq!(doubtful.scores[0].tag.as_str(), "Bug");
        let sure = decider.decide("text", &[0.9, 0.1], true);
        assert_eq!(names(&sure), ["Bug"]);
        assert!(!sure.needs_review);
    }

    #[test]
    fn texts_without_letters_are_never_applied_whatever_the_scores_or_rules() {
        let taxonomy = [
            tag(1, "Bug", false, &["?"], &[]),
            tag(2, "Billing", false, &[], &[]),
        ];
        for mode in [LabelMode::Single, LabelMode::Multi] {
            let decider = Decider::new(
                mode,
                &[known(1, "Bug"), known(2, "Billing")],
                &[0.5, 0.5],
                &taxonomy,
            );
            for junk in ["", "   ", "🙂", "????", "!!! ...", "12345", "🔥🔥 :) <3"] {
                let decision = decider.decide(junk, &[0.99, 0.98], true);
                assert!(decision.applied.is_empty(), "{junk:?} was tagged");
                assert!(decision.needs_review);
                assert_eq!(decision.review_reason, Some(ReviewReason::NoContent));
                assert_eq!(decision.scores.len(), 2, "scores are still shown");
            }
            // One letter in any script is content.
            for text in ["ok", "Ошибка", "错误 500", "é!"] {
                let decision = decider.decide(text, &[0.99, 0.1], false);
                assert!(!decision.needs_review, "{text:?} went to review");
                assert_eq!(decision.review_reason, None);
            }
            let doubtful = decider.decide("printer", &[0.2, 0.1], false);
            assert_eq!(doubtful.review_reason, Some(ReviewReason::NotConfident));
        }
    }

    #[test]
    fn a_ticket_in_a_language_the_model_does_not_serve_goes_to_review_untagged() {
        let taxonomy = [
            tag(1, "Billing", false, &["rechnung"], &[]),
            tag(2, "Bug", false, &[], &[]),
        ];
        let german = "Rechnung doppelt\nSeit dem letzten Update können wir keine Rechnungen mehr \
                      herunterladen. Es erscheint nur ein Fehler.";
        let english = "Invoice charged twice\nI was charged twice for the same invoice this month \
                       and need a refund for one of them.";
        let outputs = [known(1, "Billing"), known(2, "Bug")];
        for mode in [LabelMode::Single, LabelMode::Multi] {
            let every = Decider::new(mode, &outputs, &[0.5, 0.5], &taxonomy);
            // A project that lists no languages: nothing is detected, everything is tagged.
            let decision = every.decide(german, &[0.95, 0.1], true);
            assert_eq!(names(&decision), ["Billing"]);
            assert_eq!(decision.language, None);
            let served = every
                .clone()
                .with_languages(&[Language::parse("eng").unwrap()]);
            let decision = served.decide(german, &[0.95, 0.1], true);
            assert!(
                decision.applied.is_empty(),
                "not even the keyword rule applies"
            );
            assert_eq!(
                decision.review_reason,
                Some(ReviewReason::UnsupportedLanguage)
            );
            assert_eq!(decision.language.map(Language::code), Some("deu"));
            assert_eq!(decision.scores.len(), 2, "scores are still shown");
            let decision = served.decide(english, &[0.95, 0.1], true);
            assert_eq!(names(&decision), ["Billing"]);
            assert_eq!(decision.language.map(Language::code), Some("eng"));
            // Too short to tell: no language decision, tagged as before.
            let decision = served.decide("Rechnung doppelt", &[0.95, 0.1], true);
            assert_eq!(names(&decision), ["Billing"]);
            assert_eq!(decision.language, None);
        }
    }

    #[test]
    fn a_ticket_unlike_the_training_tickets_goes_to_review_untagged() {
        let taxonomy = [
            tag(1, "Billing", false, &["invoice"], &[]),
            tag(2, "Bug", false, &[], &[]),
        ];
        let outputs = [known(1, "Billing"), known(2, "Bug")];
        let text = "invoice for the llama rental";
        for mode in [LabelMode::Single, LabelMode::Multi] {
            let decider = Decider::new(mode, &outputs, &[0.5, 0.5], &taxonomy);
            let beyond = Unfamiliarity {
                score: 3.0,
                threshold: 2.0,
            };
            let decision = decider.decide_scored(text, &[0.97, 0.01], Some(beyond), true);
            assert!(decision.applied.is_empty(), "not even the keyword rule");
            assert_eq!(decision.review_reason, Some(ReviewReason::Unfamiliar));
            assert_eq!(decision.unfamiliarity, Some(beyond));
            assert_eq!(decision.scores.len(), 2, "scores are still shown");
            let within = Unfamiliarity {
                score: 1.0,
                threshold: 2.0,
            };
            let decision = decider.decide_scored(text, &[0.97, 0.01], Some(within), true);
            assert_eq!(names(&decision), ["Billing"]);
            assert_eq!(decision.review_reason, None);
            // Content comes first: a wordless text is no_content whatever its score.
            let decision = decider.decide_scored("???", &[0.97, 0.01], Some(beyond), true);
            assert_eq!(decision.review_reason, Some(ReviewReason::NoContent));
            // No detector (older versions): tagged as before.
            assert_eq!(
                names(&decider.decide(text, &[0.97, 0.01], true)),
                ["Billing"]
            );
        }
    }

    #[test]
    fn several_tags_apply_each_by_its_own_threshold() {
        let taxonomy = [
            tag(1, "Bug", false, &[], &[]),
            tag(2, "Data Loss", false, &[], &[]),
            tag(3, "Billing", false, &[], &[]),
        ];
        let decider = Decider::new(
            LabelMode::Multi,
            &[known(1, "Bug"), known(2, "Data Loss"), known(3, "Billing")],
            &[0.7, 0.5, 0.9],
            &taxonomy,
        );
        assert_eq!(
            names(&decider.decide("x", &[0.8, 0.6, 0.85], true)),
            ["Bug", "Data Loss"]
        );
        assert!(decider.decide("x", &[0.2, 0.1, 0.3], true).needs_review);
    }

    #[test]
    fn scores_run_from_most_probable_and_ties_go_by_name_whatever_the_model_order() {
        let taxonomy = [
            tag(1, "Security", false, &[], &[]),
            tag(2, "Billing", false, &[], &[]),
            tag(3, "Account Access", false, &[], &[]),
        ];
        let outputs = [
            known(1, "Security"),
            known(2, "Billing"),
            known(3, "Account Access"),
        ];
        let decider = Decider::new(LabelMode::Multi, &outputs, &[0.5, 0.5, 0.5], &taxonomy);
        let tied = decider.decide("x", &[0.7, 0.7, 0.7], true);
        let order: Vec<&str> = tied.scores.iter().map(|s| s.tag.as_str()).collect();
        assert_eq!(order, ["Account Access", "Billing", "Security"]);
        assert_eq!(names(&tied), ["Account Access", "Billing", "Security"]);
        let ranked = decider.decide("x", &[0.9, 0.2, 0.7], true);
        assert_eq!(names(&ranked), ["Security", "Account Access"]);
    }

    #[test]
    fn keyword_rules_add_and_veto_tags_and_can_be_left_out() {
        let taxonomy = [
            tag(1, "Bug", false, &[], &["feature idea"]),
            tag(2, "Security", false, &["phishing"], &[]),
        ];
        let decider = Decider::new(
            LabelMode::Multi,
            &[known(1, "Bug"), known(2, "Security")],
            &[0.5, 0.5],
            &taxonomy,
        );
        let text = "A PHISHING mail; also a feature idea";
        let decision = decider.decide(text, &[0.9, 0.1], true);
        assert_eq!(names(&decision), ["Security"]);
        let bug = decision
            .scores
            .iter()
            .find(|s| s.tag.as_str() == "Bug")
            .unwrap();
        assert_eq!(bug.rule, Some(RuleEffect::Vetoed));
        assert_eq!(names(&decider.decide(text, &[0.9, 0.1], false)), ["Bug"]);
    }

    #[test]
    fn taxonomy_drift_is_reported_and_renames_are_followed() {
        // Trained on Bug(1), Billing(2), Legacy(3); since then Billing was renamed,
        // Legacy archived and Outage added.
        let taxonomy = [
            tag(1, "Bug", false, &[], &[]),
            tag(2, "Payments", false, &[], &[]),
            tag(3, "Legacy", true, &[], &[]),
            tag(4, "Outage", false, &[], &[]),
        ];
        let decider = Decider::new(
            LabelMode::Multi,
            &[known(1, "Bug"), known(2, "Billing"), known(3, "Legacy")],
            &[0.5, 0.5, 0.5],
            &taxonomy,
        );
        assert_eq!(
            decider.drift.not_covered,
            [TagName::parse("Outage").unwrap()]
        );
        assert_eq!(decider.drift.retired, [TagName::parse("Legacy").unwrap()]);
        let decision = decider.decide("x", &[0.1, 0.9, 0.99], true);
        assert_eq!(names(&decision), ["Payments"]);
        assert_eq!(decision.scores.len(), 2);
    }

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

    fn in_group(id: i64, name: &str, group: i64, include: &[&str]) -> Tag {
        Tag {
            group_id: TagGroupId(group),
            ..tag(id, name, false, include, &[])
        }
    }

    /// Type (single): Bug, Question · Priority (single): Low, High · Topics (multi): Login,
    /// Billing — a multi-label project with three groups.
    fn grouped_decider(thresholds: &[f32]) -> Decider {
        let taxonomy = [
            in_group(1, "Bug", 10, &[]),
            in_group(2, "Question", 10, &["how do i"]),
            in_group(3, "Low", 11, &[]),
            in_group(4, "High", 11, &[]),
            in_group(5, "Login", 12, &[]),
            in_group(6, "Billing", 12, &[]),
        ];
        let outputs: Vec<TagRef> = taxonomy
            .iter()
            .map(|t| known(t.id.0, t.name.as_str()))
            .collect();
        Decider::new(LabelMode::Multi, &outputs, thresholds, &taxonomy).with_groups(&[
            group(10, "Type", GroupChoice::Single),
            group(11, "Priority", GroupChoice::Single),
            group(12, "Topics", GroupChoice::Multi),
        ])
    }

    fn group_tags(decision: &Decision) -> Vec<(&str, Vec<&str>)> {
        decision
            .groups
            .iter()
            .map(|g| {
                (
                    g.group.as_str(),
                    g.tags.iter().map(|t| t.as_str()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_single_choice_group_applies_one_tag_and_a_multi_choice_group_each_confident_one() {
        let decider = grouped_decider(&[0.5; 6]);
        let probabilities = [0.9, 0.8, 0.6, 0.7, 0.9, 0.6];
        let decision = decider.decide("the app crashes", &probabilities, true);
        assert_eq!(
            group_tags(&decision),
            [
                ("Type", vec!["Bug"]),
                ("Priority", vec!["High"]),
                ("Topics", vec!["Login", "Billing"]),
            ]
        );
        assert_eq!(names(&decision), ["Bug", "Login", "High", "Billing"]);
        assert_eq!(decision.groups[0].choice, GroupChoice::Single);
        let type_scores: Vec<&str> = decision.groups[0]
            .scores
            .iter()
            .map(|s| s.tag.as_str())
            .collect();
        assert_eq!(
            type_scores,
            ["Bug", "Question"],
            "each group lists its own scores"
        );
        // The same model without groups: every confident tag, and no group verdicts.
        let taxonomy_only = Decider {
            groups: Vec::new(),
            ..decider.clone()
        };
        let flat = taxonomy_only.decide("the app crashes", &probabilities, true);
        assert_eq!(flat.applied.len(), 6);
        assert!(flat.groups.is_empty());
        assert!(!serde_json::to_string(&flat).unwrap().contains("\"groups\""));
    }

    #[test]
    fn each_tag_of_a_single_choice_group_passes_its_own_threshold() {
        // Low is likelier than High but below its threshold; High passes its own.
        let decider = grouped_decider(&[0.95, 0.95, 0.5, 0.2, 0.5, 0.5]);
        let decision = decider.decide("slow page", &[0.6, 0.3, 0.45, 0.3, 0.1, 0.7], true);
        assert_eq!(
            group_tags(&decision),
            [
                ("Type", vec![]),
                ("Priority", vec!["High"]),
                ("Topics", vec!["Billing"]),
            ]
        );
        assert!(!decision.needs_review, "other groups' tags were applied");
        // Nothing confident anywhere: a person looks.
        let doubtful = decider.decide("slow page", &[0.6, 0.3, 0.45, 0.1, 0.1, 0.2], true);
        assert_eq!(doubtful.review_reason, Some(ReviewReason::NotConfident));
        assert!(doubtful.groups.iter().all(|g| g.tags.is_empty()));
    }

    #[test]
    fn a_keyword_rule_wins_its_single_choice_group_over_a_likelier_tag() {
        let decider = grouped_decider(&[0.5; 6]);
        let decision = decider.decide("How do I reset it?", &[0.9, 0.2, 0.1, 0.1, 0.1, 0.1], true);
        assert_eq!(group_tags(&decision)[0], ("Type", vec!["Question"]));
        let without_rules =
            decider.decide("How do I reset it?", &[0.9, 0.2, 0.1, 0.1, 0.1, 0.1], false);
        assert_eq!(group_tags(&without_rules)[0], ("Type", vec!["Bug"]));
    }

    #[test]
    fn a_single_label_projects_default_group_decides_exactly_as_the_label_mode_did() {
        let taxonomy: Vec<Tag> = ["Bug", "Billing", "Login", "Question"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                in_group(
                    i as i64 + 1,
                    name,
                    1,
                    if i == 2 { &["password"] } else { &[] },
                )
            })
            .collect();
        let outputs: Vec<TagRef> = taxonomy
            .iter()
            .map(|t| known(t.id.0, t.name.as_str()))
            .collect();
        let thresholds = [0.6, 0.3, 0.5, 0.45];
        for (mode, choice) in [
            (LabelMode::Single, GroupChoice::Single),
            (LabelMode::Multi, GroupChoice::Multi),
        ] {
            let before = Decider::new(mode, &outputs, &thresholds, &taxonomy);
            let grouped = before.clone().with_groups(&[group(1, "Tags", choice)]);
            // A grid of scores around every threshold, with and without the rule's phrase.
            let steps = [0.05, 0.35, 0.55, 0.65, 0.95];
            for a in steps {
                for b in steps {
                    for c in steps {
                        for text in ["forgot my password", "it broke"] {
                            let p = [a, b, c, 1.0 - a];
                            let old = before.decide(text, &p, true);
                            let new = grouped.decide(text, &p, true);
                            assert_eq!(old.applied, new.applied, "{mode:?} {p:?} {text}");
                            assert_eq!(old.review_reason, new.review_reason);
                            assert_eq!(new.groups[0].tags, new.applied);
                        }
                    }
                }
            }
        }
    }
}
