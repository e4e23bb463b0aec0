//! The grouped demo (issue 18): the demo's taxonomy split into Type (single-choice: Bug,
//! Feature Request, Question), Priority (single-choice: Low, Normal, High, Urgent) and Topics
//! (multi-choice: the other demo tags), and tickets that carry one Type and one Priority
//! besides their topics.
//!
//! The grouped tickets are the plain generator's tickets (`generate`, unchanged, so every test
//! that trains on demo tickets keeps its behaviour) with a few sentences added by a second,
//! separately seeded random stream:
//!
//! - **Type** is what the ticket was written about (a Bug ticket is a bug report; a Billing or
//!   Security ticket is a problem report or a question, drawn per topic), and the added
//!   sentences phrase it: error and crash wording, "could you add", "how do I". Not every
//!   ticket says it plainly, some say the wrong thing, and agents misfile a few.
//! - **Priority** follows a hidden urgency score: the type, the topic (security and data loss
//!   weigh most), the customer's plan (an Enterprise customer with an SLA is served first),
//!   outage language ("nobody can log in", "production is down"), urgency words ("ASAP",
//!   "urgent") and calm ones ("no rush"), plus noise; the score's bands give the level, and an
//!   agent sometimes picks the neighbouring one. The metadata's `priority` field is the
//!   ticket's Priority tag (its true level when unlabelled), and `plan` the customer's plan.

use super::{
    ACCOUNT, BILLING, BUG, DATA_LOSS, DOCS, DemoTicket, FEATURE, INTEGRATION, PERFORMANCE,
    QUESTION, Rng, SECURITY, TAGS, drawn_tickets,
};
use crate::names::{TagGroupName, TagName};
use crate::tag::{KeywordRules, NewTag};
use crate::tag_group::{GroupChoice, NewTagGroup};
use chrono::{DateTime, Utc};

/// The name of the grouped demo's default group (renamed from `DEFAULT_GROUP_NAME`).
pub const TOPICS_GROUP: &str = "Topics";
pub const TYPE_GROUP: &str = "Type";
pub const PRIORITY_GROUP: &str = "Priority";

/// The demo tags that are a ticket's type rather than its topic, in `TYPES` order.
const TYPE_TAGS: [usize; 3] = [BUG, FEATURE, QUESTION];
/// Priority levels, lowest first; their names are the metadata's `priority` values.
const LEVELS: [(&str, &str, &str); 4] = [
    ("Low", "Can wait: nobody is blocked.", "#94a3b8"),
    ("Normal", "The usual pace.", "#22c55e"),
    (
        "High",
        "Someone is blocked or a valued customer waits.",
        "#f97316",
    ),
    (
        "Urgent",
        "An outage, data at risk, or an SLA about to be missed.",
        "#b91c1c",
    ),
];

/// One group of the grouped demo's taxonomy.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoGroup {
    pub group: NewTagGroup,
    /// The project's default group (renamed to `Topics`): it is not created but renamed.
    pub is_default: bool,
    /// The group's tags, each naming the group.
    pub tags: Vec<NewTag>,
}

/// Topics, Type and Priority, in that order (the default group is listed first).
pub fn grouped_taxonomy() -> Vec<DemoGroup> {
    let group_name = |name: &str| TagGroupName::parse(name).ok();
    let demo_tag = |index: usize, group: &Option<TagGroupName>| {
        let text = &TAGS[index];
        Some(NewTag {
            name: TagName::parse(text.name).ok()?,
            description: text.description.to_string(),
            color: text.color.to_string(),
            keywords: KeywordRules {
                include: text.include.iter().map(|p| p.to_string()).collect(),
                exclude: Vec::new(),
            },
            group: group.clone(),
        })
    };
    let topics = group_name(TOPICS_GROUP);
    let types = group_name(TYPE_GROUP);
    let priority = group_name(PRIORITY_GROUP);
    let mut groups = Vec::new();
    if let Some(name) = &topics {
        groups.push(DemoGroup {
            group: NewTagGroup {
                name: name.clone(),
                choice: GroupChoice::Multi,
            },
            is_default: true,
            tags: (0..TAGS.len())
                .filter(|index| !TYPE_TAGS.contains(index))
                .filter_map(|index| demo_tag(index, &topics))
                .collect(),
        });
    }
    if let Some(name) = &types {
        groups.push(DemoGroup {
            group: NewTagGroup {
                name: name.clone(),
                choice: GroupChoice::Single,
            },
            is_default: false,
            tags: TYPE_TAGS
                .iter()
                .filter_map(|&index| demo_tag(index, &types))
                .collect(),
        });
    }
    if let Some(name) = &priority {
        groups.push(DemoGroup {
            group: NewTagGroup {
                name: name.clone(),
                choice: GroupChoice::Single,
            },
            is_default: false,
            tags: LEVELS
                .iter()
                .filter_map(|(level, description, color)| {
                    Some(NewTag {
                        name: TagName::parse(level).ok()?,
                        description: description.to_string(),
                        color: color.to_string(),
                        keywords: KeywordRules::default(),
                        group: priority.clone(),
                    })
                })
                .collect(),
        });
    }
    groups
}

/// Wording that says what kind of ticket it is, by `TYPE_TAGS` position.
const TYPE_PHRASES: [&[&str]; 3] = [
    &[
        "It shows an error and nothing I do gets past it.",
        "Something is clearly broken here.",
        "This used to work and now it fails every single time.",
        "It crashed again while I was writing this.",
        "The result is simply wrong, so it looks like a defect on your side.",
    ],
    &[
        "Could you add this in a future release?",
        "It would be great to have this as an option.",
        "Is this something you could put on the roadmap?",
        "We would love to see this in the product.",
        "Would you consider building this?",
    ],
    &[
        "How do I set this up myself?",
        "Could you point me to the right setting?",
        "Is this possible today, and if so, how?",
        "I just need to know where to look.",
        "Can you explain how this is supposed to work?",
    ],
];
const OUTAGES: &[&str] = &[
    "Nobody on our team can log in right now.",
    "Production is down for all of our users.",
    "The whole company is blocked until this works again.",
    "None of our customers can place orders at the moment.",
];
const URGENCY: &[&str] = &[
    "This is urgent.",
    "Please treat this as urgent!",
    "We need a fix ASAP.",
    "Please escalate this.",
    "It is blocking our month-end close.",
];
const CALM: &[&str] = &[
    "No rush on this one.",
    "Whenever you have a moment.",
    "Not urgent at all, just curious.",
    "Low priority for us, but good to know.",
];
/// What a customer on each plan may say about it, and how much sooner they are served.
const PLANS: &[(&str, &[&str], f64)] = &[
    ("Starter", &["We are on the Starter plan."], -0.3),
    ("Team", &["We are on the Team plan."], 0.0),
    (
        "Business",
        &[
            "We are a Business plan customer.",
            "We pay for the Business plan.",
        ],
        0.4,
    ),
    (
        "Enterprise",
        &[
            "We are an Enterprise customer with an SLA.",
            "As an Enterprise account we were promised a fast response.",
            "Our Enterprise contract covers this.",
        ],
        0.9,
    ),
];

/// Type by `TYPE_TAGS` position for a ticket about `topic` with no type tag, as weights.
fn type_weights(topic: usize) -> [f64; 3] {
    match topic {
        PERFORMANCE => [85.0, 5.0, 10.0],
        BILLING => [35.0, 10.0, 55.0],
        ACCOUNT => [60.0, 5.0, 35.0],
        INTEGRATION => [60.0, 20.0, 20.0],
        DOCS => [40.0, 15.0, 45.0],
        SECURITY => [70.0, 10.0, 20.0],
        DATA_LOSS => [85.0, 0.0, 15.0],
        _ => [40.0, 20.0, 40.0],
    }
}

/// How much a topic raises the urgency score.
fn topic_weight(topic: usize) -> f64 {
    match topic {
        DATA_LOSS => 1.2,
        SECURITY => 1.0,
        ACCOUNT => 0.5,
        PERFORMANCE | BILLING => 0.3,
        INTEGRATION => 0.2,
        DOCS => -0.3,
        _ => 0.0,
    }
}

/// The urgency score's upper bounds of Low, Normal and High.
const LEVEL_BOUNDS: [f64; 3] = [0.55, 1.6, 2.6];

/// `count` tickets of the grouped demo: the same tickets as `generate(count, seed, now)`,
/// with sentences added that carry the type and priority signals; a labelled ticket's tags
/// are its Type, its Priority and its topics, in that order. The same (count, seed) always
/// gives the same tickets; `now` only places them in time.
pub fn generate_grouped(count: usize, seed: u64, now: DateTime<Utc>) -> Vec<DemoTicket> {
    // A stream of its own, so the plain tickets stay exactly those of `generate`.
    let mut rng = Rng::new(seed ^ 0x9a0f_7e5d_1c3b_2468);
    drawn_tickets(count, seed, now)
        .into_iter()
        .map(|drawn| {
            let labelled = !drawn.ticket.tags.is_empty();
            let primary = drawn.truth[0];
            let kind = match drawn
                .truth
                .iter()
                .find_map(|t| TYPE_TAGS.iter().position(|k| k == t))
            {
                Some(kind) => kind,
                None => rng.weighted(&type_weights(primary)),
            };
            let mut ticket = drawn.ticket;
            let mut before: Vec<String> = Vec::new();
            let mut after: Vec<String> = Vec::new();

            // The type, said plainly most of the time and now and then misleadingly.
            if rng.chance(0.75) {
                let said = if rng.chance(0.08) {
                    (kind + 1 + rng.below(2)) % 3
                } else {
                    kind
                };
                after.push(rng.pick(TYPE_PHRASES[said]).to_string());
            }

            let (plan, plan_lines, plan_weight) = PLANS
                .iter()
                .find(|(name, _, _)| *name == drawn.plan)
                .copied()
                .unwrap_or(PLANS[1]);
            if rng.chance(if plan == "Enterprise" { 0.8 } else { 0.5 }) {
                after.push(rng.pick(plan_lines).to_string());
            }
            let topic_bonus = drawn
                .truth
                .iter()
                .map(|&t| topic_weight(t))
                .fold(0.0, f64::max);
            let outage_chance = match (kind, drawn.truth.contains(&ACCOUNT)) {
                (0, true) => 0.25,
                (0, false) => 0.12,
                _ => 0.02,
            };
            let outage = rng.chance(outage_chance);
            if outage {
                before.push(rng.pick(OUTAGES).to_string());
            }
            let urgent = rng.chance(if kind == 0 { 0.25 } else { 0.12 });
            if urgent {
                after.push(rng.pick(URGENCY).to_string());
            }
            let calm = !outage && !urgent && rng.chance(if kind == 0 { 0.06 } else { 0.3 });
            if calm {
                after.push(rng.pick(CALM).to_string());
            }
            let noise = (rng.unit() + rng.unit() + rng.unit() - 1.5) * 0.6;
            let score = [1.0, -0.3, 0.1][kind]
                + topic_bonus
                + plan_weight
                + if outage { 2.2 } else { 0.0 }
                + if urgent { 1.4 } else { 0.0 }
                - if calm { 1.2 } else { 0.0 }
                + noise;
            let level = LEVEL_BOUNDS.iter().filter(|&&bound| score >= bound).count();
            if (outage || urgent) && rng.chance(0.3) {
                ticket.subject = format!("URGENT: {}", ticket.subject);
            }
            ticket.body = with_sentences(&ticket.body, &before, &after);

            // What the agent filed: now and then another type, or the neighbouring level.
            let filed_kind = if rng.chance(0.06) {
                (kind + 1 + rng.below(2)) % 3
            } else {
                kind
            };
            let filed_level = match rng.unit() {
                draw if draw < 0.05 => level.saturating_sub(1),
                draw if draw < 0.10 => (level + 1).min(LEVELS.len() - 1),
                _ => level,
            };
            if let Some(metadata) = ticket.metadata.as_object_mut() {
                let shown = if labelled { filed_level } else { level };
                metadata.insert("priority".into(), LEVELS[shown].0.to_lowercase().into());
                metadata.insert("plan".into(), plan.to_lowercase().into());
            }
            if labelled {
                let topics: Vec<TagName> = std::mem::take(&mut ticket.tags)
                    .into_iter()
                    .filter(|name| {
                        !TYPE_TAGS
                            .iter()
                            .any(|&t| TAGS[t].name.eq_ignore_ascii_case(name.as_str()))
                    })
                    .collect();
                let type_name = TagName::parse(TAGS[TYPE_TAGS[filed_kind]].name).ok();
                let level_name = TagName::parse(LEVELS[filed_level].0).ok();
                ticket.tags = type_name
                    .into_iter()
                    .chain(level_name)
                    .chain(topics)
                    .collect();
            }
            ticket
        })
        .collect()
}

/// The body with `before` opening its text and `after` closing it, inside the greeting and
/// signature of an e-mail (a chat message is all text).
fn with_sentences(body: &str, before: &[String], after: &[String]) -> String {
    let join = |text: &str| {
        let mut parts: Vec<&str> = before.iter().map(String::as_str).collect();
        parts.push(text);
        parts.extend(after.iter().map(String::as_str));
        parts.join(" ")
    };
    let paragraphs: Vec<&str> = body.split("\n\n").collect();
    match paragraphs.as_slice() {
        [greeting, text, rest @ ..] => {
            let mut out = vec![greeting.to_string(), join(text)];
            out.extend(rest.iter().map(|p| p.to_string()));
            out.join("\n\n")
        }
        _ => join(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::generate;
    use std::collections::{BTreeMap, HashSet};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-02T09:30:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn group_of(name: &TagName) -> &'static str {
        let folded = name.folded();
        grouped_taxonomy()
            .iter()
            .find(|g| g.tags.iter().any(|t| t.name.folded() == folded))
            .map(|g| match g.group.name.as_str() {
                TOPICS_GROUP => TOPICS_GROUP,
                TYPE_GROUP => TYPE_GROUP,
                _ => PRIORITY_GROUP,
            })
            .unwrap_or("none")
    }

    #[test]
    fn the_taxonomy_has_three_groups_and_no_name_twice() {
        let groups = grouped_taxonomy();
        let shown: Vec<(&str, GroupChoice, bool, usize)> = groups
            .iter()
            .map(|g| {
                (
                    g.group.name.as_str(),
                    g.group.choice,
                    g.is_default,
                    g.tags.len(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (TOPICS_GROUP, GroupChoice::Multi, true, 7),
                (TYPE_GROUP, GroupChoice::Single, false, 3),
                (PRIORITY_GROUP, GroupChoice::Single, false, 4),
            ]
        );
        let names: HashSet<String> = groups
            .iter()
            .flat_map(|g| g.tags.iter().map(|t| t.name.folded()))
            .collect();
        assert_eq!(names.len(), 14);
        for group in &groups {
            for tag in &group.tags {
                tag.validate().unwrap();
                assert_eq!(tag.group.as_ref(), Some(&group.group.name));
            }
        }
    }

    #[test]
    fn grouped_tickets_are_the_plain_ones_with_sentences_added_and_are_deterministic() {
        let plain = generate(400, 7, now());
        let grouped = generate_grouped(400, 7, now());
        assert_eq!(grouped, generate_grouped(400, 7, now()));
        assert_ne!(grouped, generate_grouped(400, 8, now()));
        let later = DateTime::parse_from_rfc3339("2026-12-05T23:59:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for (a, b) in grouped.iter().zip(generate_grouped(400, 7, later)) {
            assert_eq!(
                (&a.external_id, &a.subject, &a.body, &a.metadata, &a.tags),
                (&b.external_id, &b.subject, &b.body, &b.metadata, &b.tags)
            );
        }
        let mut changed = 0;
        for (p, g) in plain.iter().zip(&grouped) {
            assert_eq!(p.external_id, g.external_id);
            assert_eq!(p.created_at, g.created_at);
            assert!(
                g.subject.ends_with(&p.subject),
                "{:?} {:?}",
                p.subject,
                g.subject
            );
            changed += usize::from(p.body != g.body);
            // The plain ticket's topics stay; its type tag moves to the Type group.
            let topics: Vec<&TagName> = g.tags.iter().skip(2).collect();
            let plain_topics: Vec<&TagName> = p
                .tags
                .iter()
                .filter(|t| group_of(t) == TOPICS_GROUP)
                .collect();
            assert_eq!(topics, plain_topics);
            assert_eq!(p.tags.is_empty(), g.tags.is_empty());
        }
        assert!(changed > 300, "{changed}");
    }

    #[test]
    fn every_labelled_ticket_has_one_type_and_one_priority_matching_its_metadata() {
        let tickets = generate_grouped(2000, 42, now());
        let mut levels: BTreeMap<String, usize> = BTreeMap::new();
        let mut types: BTreeMap<String, usize> = BTreeMap::new();
        for ticket in &tickets {
            assert!(!ticket.body.contains('{') && !ticket.subject.contains('{'));
            let plan = ticket.metadata["plan"].as_str().unwrap();
            assert!(
                PLANS.iter().any(|(p, _, _)| p.to_lowercase() == plan),
                "{plan}"
            );
            if ticket.tags.is_empty() {
                continue;
            }
            let groups: Vec<&str> = ticket.tags.iter().map(group_of).collect();
            assert_eq!(
                &groups[..2],
                [TYPE_GROUP, PRIORITY_GROUP],
                "{:?}",
                ticket.tags
            );
            assert!(groups[2..].iter().all(|g| *g == TOPICS_GROUP));
            assert_eq!(
                ticket.metadata["priority"].as_str().unwrap(),
                ticket.tags[1].as_str().to_lowercase()
            );
            *types.entry(ticket.tags[0].to_string()).or_default() += 1;
            *levels.entry(ticket.tags[1].to_string()).or_default() += 1;
        }
        let labelled: usize = levels.values().sum();
        let share = |n: usize| n as f64 / labelled as f64;
        // Every level is used, Normal most, Urgent least: a help desk's shape.
        assert_eq!(levels.len(), 4, "{levels:?}");
        assert!(levels["Normal"] > levels["Urgent"], "{levels:?}");
        assert!(
            (0.03..=0.2).contains(&share(levels["Urgent"])),
            "{levels:?}"
        );
        assert!((0.1..=0.45).contains(&share(levels["Low"])), "{levels:?}");
        assert!(share(types["Bug"]) > 0.4, "{types:?}");
        assert!(share(types["Feature Request"]) > 0.08, "{types:?}");
    }

    /// Priority from words alone (naive Bayes over the text) must beat always answering the
    /// commonest level by far, yet stay short of perfect; and the signal is not one word.
    #[test]
    fn type_and_priority_are_learnable_from_the_text_but_noisy() {
        let words = |t: &DemoTicket| -> Vec<String> {
            format!("{} {}", t.subject, t.body)
                .to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 2)
                .map(str::to_string)
                .collect()
        };
        let tickets: Vec<_> = generate_grouped(4000, 5, now())
            .into_iter()
            .filter(|t| !t.tags.is_empty())
            .collect();
        let (train, test) = tickets.split_at(tickets.len() * 3 / 4);
        for position in [0, 1] {
            let label = |t: &DemoTicket| t.tags[position].to_string();
            let mut docs: BTreeMap<String, f64> = BTreeMap::new();
            let mut freq: BTreeMap<(String, String), f64> = BTreeMap::new();
            let mut totals: BTreeMap<String, f64> = BTreeMap::new();
            for ticket in train {
                *docs.entry(label(ticket)).or_default() += 1.0;
                for word in words(ticket) {
                    *freq.entry((label(ticket), word)).or_default() += 1.0;
                    *totals.entry(label(ticket)).or_default() += 1.0;
                }
            }
            let majority = docs.values().cloned().fold(0.0, f64::max) / train.len() as f64;
            let correct = test
                .iter()
                .filter(|ticket| {
                    let ws = words(ticket);
                    let best = docs
                        .iter()
                        .map(|(tag, n)| {
                            let score = n.ln()
                                + ws.iter()
                                    .map(|w| {
                                        let c = freq.get(&(tag.clone(), w.clone())).unwrap_or(&0.0);
                                        ((c + 0.5) / (totals[tag] + 2000.0)).ln()
                                    })
                                    .sum::<f64>();
                            (score, tag)
                        })
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .unwrap()
                        .1;
                    label(ticket) == *best
                })
                .count();
            let accuracy = correct as f64 / test.len() as f64;
            assert!(
                accuracy > majority + 0.1 && accuracy < 0.95,
                "group {position}: accuracy {accuracy}, majority {majority}"
            );
        }
        // No urgency word alone decides the level.
        let urgent_word = tickets
            .iter()
            .filter(|t| t.body.contains("ASAP") || t.body.contains("urgent"))
            .collect::<Vec<_>>();
        let urgent_level = urgent_word
            .iter()
            .filter(|t| t.tags[1].as_str() == "Urgent")
            .count();
        assert!(
            urgent_level * 10 < urgent_word.len() * 9,
            "{urgent_level} of {}",
            urgent_word.len()
        );
    }
}
