//! Agreement between labellers on the tickets several of them labelled: Cohen's kappa for
//! two people, Fleiss' kappa for more, one figure per tag (each tag is a yes/no decision per
//! ticket, also in single-label projects). Kappa is the agreement beyond what chance would
//! give: 1 is perfect, 0 is chance, below 0 is worse than chance.

use std::collections::{BTreeMap, BTreeSet};

/// Cohen's kappa for two raters' yes/no answers on the same items; `None` when there are no
/// items or chance agreement is total (both always said the same single answer), where
/// kappa is undefined.
pub fn cohen_kappa(first: &[bool], second: &[bool]) -> Option<f64> {
    let n = first.len().min(second.len());
    if n == 0 {
        return None;
    }
    let agree = (0..n).filter(|&i| first[i] == second[i]).count() as f64 / n as f64;
    let yes_first = first[..n].iter().filter(|v| **v).count() as f64 / n as f64;
    let yes_second = second[..n].iter().filter(|v| **v).count() as f64 / n as f64;
    let chance = yes_first * yes_second + (1.0 - yes_first) * (1.0 - yes_second);
    if (1.0 - chance).abs() < 1e-12 {
        return None;
    }
    Some((agree - chance) / (1.0 - chance))
}

/// Fleiss' kappa: `counts[item][category]` is how many raters put the item in that
/// category; every item needs the same number of raters (at least two). `None` when the
/// input has no items, unequal or too few raters, or no variation at all.
pub fn fleiss_kappa(counts: &[Vec<u32>]) -> Option<f64> {
    let raters: u32 = counts.first()?.iter().sum();
    if raters < 2 || counts.iter().any(|row| row.iter().sum::<u32>() != raters) {
        return None;
    }
    let items = counts.len() as f64;
    let r = f64::from(raters);
    let categories = counts[0].len();
    let agreement_per_item: Vec<f64> = counts
        .iter()
        .map(|row| {
            let same: f64 = row
                .iter()
                .map(|&c| f64::from(c) * (f64::from(c) - 1.0))
                .sum();
            same / (r * (r - 1.0))
        })
        .collect();
    let observed = agreement_per_item.iter().sum::<f64>() / items;
    let chance: f64 = (0..categories)
        .map(|j| {
            let share = counts.iter().map(|row| f64::from(row[j])).sum::<f64>() / (items * r);
            share * share
        })
        .sum();
    if (1.0 - chance).abs() < 1e-12 {
        return None;
    }
    Some((observed - chance) / (1.0 - chance))
}

/// Agreement on one tag.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct TagAgreement {
    pub tag: String,
    /// Tickets that enough people labelled to compare.
    pub tickets: usize,
    /// Cohen's kappa (exactly two labellers per ticket) or Fleiss' (more), when defined.
    pub kappa: Option<f64>,
    pub method: &'static str,
    /// Tickets where the labellers did not all agree on this tag: the adjudication list.
    pub disagreements: Vec<i64>,
}

/// Per-tag agreement from each labeller's tag set per ticket: `labels[ticket][labeller]` is
/// the set of tags that person gave it. Only tickets with exactly `raters` labellers count
/// (kappa needs the same number of raters on every item); pick `raters` = 2 for Cohen's.
pub fn agreement_per_tag(
    labels: &BTreeMap<i64, BTreeMap<String, BTreeSet<String>>>,
    tags: &[String],
    raters: usize,
) -> Vec<TagAgreement> {
    let rated: Vec<(&i64, &BTreeMap<String, BTreeSet<String>>)> =
        labels.iter().filter(|(_, by)| by.len() == raters).collect();
    tags.iter()
        .map(|tag| {
            let answers: Vec<Vec<bool>> = rated
                .iter()
                .map(|(_, by)| by.values().map(|set| set.contains(tag)).collect())
                .collect();
            let disagreements = rated
                .iter()
                .zip(&answers)
                .filter(|(_, a)| a.iter().any(|v| *v != a[0]))
                .map(|((ticket, _), _)| **ticket)
                .collect();
            let (kappa, method) = if raters == 2 {
                let first: Vec<bool> = answers.iter().map(|a| a[0]).collect();
                let second: Vec<bool> = answers.iter().map(|a| a[1]).collect();
                (cohen_kappa(&first, &second), "cohen")
            } else {
                let counts: Vec<Vec<u32>> = answers
                    .iter()
                    .map(|a| {
                        let yes = a.iter().filter(|v| **v).count() as u32;
                        vec![yes, a.len() as u32 - yes]
                    })
                    .collect();
                (fleiss_kappa(&counts), "fleiss")
            };
            TagAgreement {
                tag: tag.clone(),
                tickets: rated.len(),
                kappa,
                method,
                disagreements,
            }
        })
        .collect()
}

/// Each person's latest whole answer per ticket, from the store's recorded answers (the
/// `label_submissions` a person's `set_human_labels` writes), ready for `agreement_per_tag`.
pub fn answers_by_ticket(
    submissions: &[datasets::LabelSubmission],
) -> BTreeMap<i64, BTreeMap<String, BTreeSet<String>>> {
    let mut answers: BTreeMap<i64, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    // Oldest first: a later answer by the same person replaces the earlier one. An
    // adjudicator saw the others' answers, so theirs is not an independent rating.
    for submission in submissions
        .iter()
        .filter(|s| s.kind != datasets::AnswerKind::Adjudication)
    {
        answers.entry(submission.ticket_id.0).or_default().insert(
            submission.set_by.clone(),
            submission.tags.iter().cloned().collect(),
        );
    }
    answers
}

/// A ticket whose labellers gave different answers and that no adjudicator has settled since.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Disagreement {
    pub ticket_id: i64,
    /// Each person's latest answer (tag names).
    pub answers: BTreeMap<String, BTreeSet<String>>,
    /// The tags not everyone gave.
    pub disputed_tags: BTreeSet<String>,
    /// When the latest of those answers came in.
    pub last_answer_at: chrono::DateTime<chrono::Utc>,
}

/// The adjudication list: tickets two or more people answered differently, oldest dispute
/// first, leaving out those an adjudication came after the latest answer of.
pub fn open_disagreements(submissions: &[datasets::LabelSubmission]) -> Vec<Disagreement> {
    let mut by_ticket: BTreeMap<i64, Vec<&datasets::LabelSubmission>> = BTreeMap::new();
    for submission in submissions {
        by_ticket
            .entry(submission.ticket_id.0)
            .or_default()
            .push(submission);
    }
    let mut open: Vec<Disagreement> = by_ticket
        .into_iter()
        .filter_map(|(ticket_id, answers)| {
            let raters: Vec<&datasets::LabelSubmission> = answers
                .iter()
                .copied()
                .filter(|s| s.kind != datasets::AnswerKind::Adjudication)
                .collect();
            let last_answer_at = raters.iter().map(|s| s.at).max()?;
            let settled = answers
                .iter()
                .any(|s| s.kind == datasets::AnswerKind::Adjudication && s.at >= last_answer_at);
            let latest = answers_by_ticket(&raters.into_iter().cloned().collect::<Vec<_>>())
                .remove(&ticket_id)?;
            let union: BTreeSet<String> = latest.values().flatten().cloned().collect();
            let disputed_tags: BTreeSet<String> = union
                .into_iter()
                .filter(|tag| !latest.values().all(|answer| answer.contains(tag)))
                .collect();
            (latest.len() >= 2 && !disputed_tags.is_empty() && !settled).then_some(Disagreement {
                ticket_id,
                answers: latest,
                disputed_tags,
                last_answer_at,
            })
        })
        .collect();
    open.sort_by_key(|d| (d.last_answer_at, d.ticket_id));
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohen_matches_a_hand_computed_table() {
        // 10 items: both yes 4, both no 3, first-only yes 2, second-only yes 1.
        // p_o = 0.7; p_yes1 = 0.6, p_yes2 = 0.5; p_e = 0.3 + 0.2 = 0.5; kappa = 0.4.
        let first = [
            true, true, true, true, false, false, false, true, true, false,
        ];
        let second = [
            true, true, true, true, false, false, false, false, false, true,
        ];
        assert!((cohen_kappa(&first, &second).unwrap() - 0.4).abs() < 1e-12);
        assert!((cohen_kappa(&first, &first).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(cohen_kappa(&[true, true], &[true, true]), None);
        assert_eq!(cohen_kappa(&[], &[]), None);
    }

    #[test]
    fn fleiss_matches_the_worked_example_of_the_original_paper_layout() {
        // Wikipedia's worked example: 10 items, 14 raters, 5 categories: kappa ≈ 0.210.
        let counts = vec![
            vec![0, 0, 0, 0, 14],
            vec![0, 2, 6, 4, 2],
            vec![0, 0, 3, 5, 6],
            vec![0, 3, 9, 2, 0],
            vec![2, 2, 8, 1, 1],
            vec![7, 7, 0, 0, 0],
            vec![3, 2, 6, 3, 0],
            vec![2, 5, 3, 2, 2],
            vec![6, 5, 2, 1, 0],
            vec![0, 2, 2, 3, 7],
        ];
        assert!((fleiss_kappa(&counts).unwrap() - 0.20993).abs() < 1e-4);
        assert_eq!(
            fleiss_kappa(&[vec![2, 0], vec![1, 2]]),
            None,
            "unequal raters"
        );
    }

    #[test]
    fn per_tag_agreement_lists_the_tickets_to_adjudicate() {
        let set = |tags: &[&str]| tags.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>();
        let mut labels = BTreeMap::new();
        labels.insert(
            1,
            BTreeMap::from([
                ("ana".to_string(), set(&["Bug"])),
                ("bo".to_string(), set(&["Bug"])),
            ]),
        );
        labels.insert(
            2,
            BTreeMap::from([
                ("ana".to_string(), set(&["Bug"])),
                ("bo".to_string(), set(&["Billing"])),
            ]),
        );
        labels.insert(
            3,
            BTreeMap::from([("ana".to_string(), set(&[])), ("bo".to_string(), set(&[]))]),
        );
        labels.insert(4, BTreeMap::from([("ana".to_string(), set(&["Billing"]))]));
        let tags = vec!["Bug".to_string(), "Billing".to_string()];
        let agreement = agreement_per_tag(&labels, &tags, 2);
        // Bug over tickets 1–3: ana yes,yes,no; bo yes,no,no: p_o = 2/3, p_e = 2/3·1/3 + 1/3·2/3 = 4/9.
        assert_eq!(agreement[0].tickets, 3);
        assert!(
            (agreement[0].kappa.unwrap() - (2.0 / 3.0 - 4.0 / 9.0) / (5.0 / 9.0)).abs() < 1e-12
        );
        assert_eq!(agreement[0].disagreements, [2]);
        assert_eq!(agreement[1].disagreements, [2]);
        assert_eq!(agreement[0].method, "cohen");
    }

    #[test]
    fn a_persons_later_answer_replaces_their_earlier_one() {
        let answer = |ticket: i64, by: &str, tags: &[&str]| submission(ticket, by, tags, 0);
        let answers = answers_by_ticket(&[
            answer(1, "ana", &["Bug"]),
            answer(1, "bo", &["Bug"]),
            answer(1, "ana", &["Billing"]),
            answer(2, "cy", &[]),
        ]);
        assert_eq!(answers[&1].len(), 2);
        assert!(answers[&1]["ana"].contains("Billing") && !answers[&1]["ana"].contains("Bug"));
        assert!(answers[&2]["cy"].is_empty());
        // Three raters on one ticket: Fleiss' kappa is used.
        let mut three = answers.clone();
        three
            .get_mut(&1)
            .unwrap()
            .insert("cy".into(), BTreeSet::new());
        let agreement = agreement_per_tag(&three, &["Bug".to_string()], 3);
        assert_eq!(agreement[0].method, "fleiss");
        assert_eq!(agreement[0].tickets, 1);
    }

    fn submission(ticket: i64, by: &str, tags: &[&str], minute: i64) -> datasets::LabelSubmission {
        let kind = if by.starts_with("judge") {
            datasets::AnswerKind::Adjudication
        } else {
            datasets::AnswerKind::Answer
        };
        datasets::LabelSubmission {
            ticket_id: datasets::TicketId(ticket),
            set_by: by.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            at: chrono::DateTime::from_timestamp(1_700_000_000 + minute * 60, 0).unwrap(),
            kind,
        }
    }

    #[test]
    fn disagreements_list_differing_answers_until_an_adjudication_settles_them() {
        let submissions = [
            // 1: agree. 2: disagree on Billing. 3: disagree, then adjudicated.
            submission(1, "ana", &["Bug"], 0),
            submission(1, "bo", &["Bug"], 1),
            submission(2, "ana", &["Bug", "Billing"], 2),
            submission(2, "bo", &["Bug"], 3),
            submission(3, "ana", &["Bug"], 4),
            submission(3, "bo", &[], 5),
            submission(3, "judge", &["Bug"], 6),
            // 4: only one person.
            submission(4, "ana", &["Bug"], 7),
        ];
        let open = open_disagreements(&submissions);
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].ticket_id, 2);
        assert_eq!(
            open[0].disputed_tags,
            BTreeSet::from(["Billing".to_string()])
        );
        assert_eq!(open[0].answers.len(), 2);
        // A rater changing their answer after the adjudication reopens the dispute.
        let mut later = submissions.to_vec();
        later.push(submission(3, "bo", &["Billing"], 8));
        let reopened: Vec<i64> = open_disagreements(&later)
            .iter()
            .map(|d| d.ticket_id)
            .collect();
        assert_eq!(reopened, [2, 3]);
        // The adjudicator is not counted as a rater.
        let answers = answers_by_ticket(&submissions);
        assert!(!answers[&3].contains_key("judge"));
    }
}
