//! Key phrases: the words and two-word phrases that set one group of tickets apart from
//! another (a tag's tickets from the rest of the project, a tag's last week from the weeks
//! before it, one ticket from the project), by the log-odds ratio with an informative
//! Dirichlet prior (Monroe, Colaresi and Quinn, 2008, "Fightin' Words").
//!
//! Why this statistic: raw frequency ranks "error" and "account" first for every tag, and a
//! plain frequency ratio ranks a word seen twice in the group and never elsewhere first. The
//! prior shrinks every phrase's rate towards its rate in both groups together, and dividing
//! the difference of log-odds by its standard error (a z-score) leaves only phrases whose
//! difference is large *and* backed by enough occurrences.
//!
//! Counting: each ticket counts a phrase at most [`MAX_COUNT_PER_TICKET`] times, so one long
//! paste cannot make its words a tag's key phrases. Callers pass the text models read
//! (`ticket::model_text`: quoted replies, signatures and traces already cut).

use std::collections::HashMap;

/// The most times one ticket counts one phrase.
pub const MAX_COUNT_PER_TICKET: u32 = 3;

/// Words that say nothing about a ticket's topic, sorted (binary search). English only:
/// in other languages the statistic itself keeps function words out (they are as common in
/// both groups), the list only keeps them out of two-word phrases.
pub const STOPWORDS: &[&str] = &[
    "able", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "both", "but", "by", "can", "cannot", "could",
    "did", "do", "does", "doing", "dont", "each", "for", "from", "get", "got", "had", "has",
    "have", "hello", "help", "her", "here", "hi", "him", "his", "how", "if", "im", "in", "into",
    "is", "it", "its", "just", "know", "like", "me", "more", "most", "my", "need", "no", "not",
    "now", "of", "ok", "on", "only", "or", "other", "our", "out", "please", "regards", "same",
    "she", "should", "since", "so", "some", "such", "than", "thank", "thanks", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "those", "to", "today", "too", "up",
    "us", "very", "want", "was", "way", "we", "were", "what", "when", "where", "which", "while",
    "who", "why", "will", "with", "would", "yet", "you", "your",
];

/// Whether `word` (lower case) is on the stopword list.
pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.binary_search(&word).is_ok()
}

/// A word that can carry a topic: two characters or more, not only digits, not a stopword.
fn is_term(word: &str) -> bool {
    word.chars().count() >= 2 && !word.chars().all(|c| c.is_ascii_digit()) && !is_stopword(word)
}

/// The phrases of a text in order: each term, and each pair of terms that stand next to each
/// other (a stopword, a number or punctuation other than `-`, `_`, `.`, `/` between two words
/// breaks the pair: "reset the password" gives no "reset password").
pub fn phrases(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut previous: Option<String> = None;
    for chunk in text.split_whitespace() {
        // Punctuation at a word's end ends the phrase; joiners inside it split words.
        let ends_clause = chunk.ends_with([',', '.', ';', ':', '!', '?', ')', '(']);
        let joined = chunk
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        for (i, word) in joined
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .enumerate()
        {
            if i > 0 && !joined.contains(['-', '_', '.', '/']) {
                previous = None;
            }
            if is_term(word) {
                if let Some(before) = previous.take() {
                    found.push(format!("{before} {word}"));
                }
                found.push(word.to_string());
                previous = Some(word.to_string());
            } else {
                previous = None;
            }
        }
        if ends_clause {
            previous = None;
        }
    }
    found
}

/// Phrase counts over a group of tickets.
#[derive(Debug, Clone, Default)]
pub struct PhraseCounts {
    /// Per phrase: occurrences (each ticket at most [`MAX_COUNT_PER_TICKET`]) and tickets.
    counts: HashMap<String, (u32, u32)>,
    /// Sum of the occurrences.
    total: u64,
    tickets: u32,
}

impl PhraseCounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one ticket's text.
    pub fn add(&mut self, text: &str) {
        let mut own: HashMap<String, u32> = HashMap::new();
        for phrase in phrases(text) {
            *own.entry(phrase).or_default() += 1;
        }
        for (phrase, count) in own {
            let count = count.min(MAX_COUNT_PER_TICKET);
            let entry = self.counts.entry(phrase).or_default();
            entry.0 += count;
            entry.1 += 1;
            self.total += u64::from(count);
        }
        self.tickets += 1;
    }

    /// Takes back one ticket's text counted by [`PhraseCounts::add`].
    pub fn remove(&mut self, text: &str) {
        let mut own: HashMap<String, u32> = HashMap::new();
        for phrase in phrases(text) {
            *own.entry(phrase).or_default() += 1;
        }
        for (phrase, count) in own {
            let count = count.min(MAX_COUNT_PER_TICKET);
            if let Some(entry) = self.counts.get_mut(&phrase) {
                entry.0 = entry.0.saturating_sub(count);
                entry.1 = entry.1.saturating_sub(1);
                self.total = self.total.saturating_sub(u64::from(count));
                if entry.1 == 0 {
                    self.counts.remove(&phrase);
                }
            }
        }
        self.tickets = self.tickets.saturating_sub(1);
    }

    /// Counts of many texts.
    pub fn of<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut counts = Self::new();
        for text in texts {
            counts.add(text);
        }
        counts
    }

    /// How many tickets were counted.
    pub fn tickets(&self) -> u32 {
        self.tickets
    }

    fn get(&self, phrase: &str) -> (u32, u32) {
        self.counts.get(phrase).copied().unwrap_or((0, 0))
    }
}

/// A phrase that sets the focus group apart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct KeyPhrase {
    pub phrase: String,
    /// The log-odds ratio's z-score: how many standard errors the focus group's use of the
    /// phrase lies above the other group's.
    pub z: f64,
    /// Tickets of the focus group that contain it.
    pub focus_tickets: u32,
    /// Tickets of the other group that contain it.
    pub other_tickets: u32,
}

/// What [`key_phrases`] keeps.
#[derive(Debug, Clone, Copy)]
pub struct KeyPhraseSettings {
    /// Most phrases returned.
    pub max: usize,
    /// Least z-score (1.96: the difference is significant at 5%, one phrase at a time); a
    /// phrase the focus group uses less than the other group (z < 0) is never kept.
    pub min_z: f64,
    /// Fewest focus tickets that contain a phrase (3 for a tag: fewer is an anecdote).
    pub min_focus_tickets: u32,
    /// Fewest tickets of the other group that contain it (1 for one ticket's phrases: a word
    /// no other ticket uses is mostly a typo, an id or a hash, and entities show the ids).
    pub min_other_tickets: u32,
}

impl KeyPhraseSettings {
    /// For a group of tickets (a tag, a period).
    pub fn group() -> Self {
        KeyPhraseSettings {
            max: 10,
            min_z: 1.96,
            min_focus_tickets: 3,
            min_other_tickets: 0,
        }
    }

    /// For one ticket against the project. One ticket is too little evidence for any single
    /// phrase to be significant (a phrase it uses once reaches z ≈ 1 at best), so its phrases
    /// are ranked by the same z and every phrase it uses more than the project does is kept.
    pub fn ticket() -> Self {
        KeyPhraseSettings {
            max: 6,
            min_z: 0.0,
            min_focus_tickets: 1,
            min_other_tickets: 1,
        }
    }
}

/// The phrases of `focus` that most set it apart from `other`, strongest first.
///
/// The prior: each phrase's pseudo-count is its share of both groups together times α₀, and
/// α₀ is the smaller group's total count. So the prior weighs as much as the smaller group's
/// own evidence: strong enough that a phrase seen once or twice cannot lead, weak enough that
/// a small focus group (one ticket) still speaks. The z-score is δ / √(1/(y₁+α) + 1/(y₂+α)),
/// the variance Monroe et al. give for the log-odds difference.
///
/// A two-word phrase replaces its words when they occur mostly inside it (a word listed is
/// left out once a phrase containing it is listed, unless the word is twice as common as the
/// phrase in the focus group).
pub fn key_phrases(
    focus: &PhraseCounts,
    other: &PhraseCounts,
    settings: &KeyPhraseSettings,
) -> Vec<KeyPhrase> {
    if focus.total == 0 || other.total == 0 {
        return Vec::new();
    }
    let n1 = focus.total as f64;
    let n2 = other.total as f64;
    let alpha0 = n1.min(n2);
    let both = n1 + n2;
    let mut scored: Vec<(KeyPhrase, u32)> = focus
        .counts
        .iter()
        .filter(|(_, (_, tickets))| *tickets >= settings.min_focus_tickets)
        .filter_map(|(phrase, &(y1, t1))| {
            let (y2, t2) = other.get(phrase);
            if t2 < settings.min_other_tickets {
                return None;
            }
            let (y1, y2) = (f64::from(y1), f64::from(y2));
            let alpha = alpha0 * (y1 + y2) / both;
            let delta = ((y1 + alpha) / (n1 + alpha0 - y1 - alpha)).ln()
                - ((y2 + alpha) / (n2 + alpha0 - y2 - alpha)).ln();
            let z = delta / (1.0 / (y1 + alpha) + 1.0 / (y2 + alpha)).sqrt();
            (z.is_finite() && z > 0.0 && z >= settings.min_z).then(|| {
                (
                    KeyPhrase {
                        phrase: phrase.clone(),
                        z,
                        focus_tickets: t1,
                        other_tickets: t2,
                    },
                    focus.get(phrase).0,
                )
            })
        })
        .collect();
    // Strongest first; ties by phrase, so the same counts always give the same list.
    scored.sort_by(|a, b| {
        b.0.z
            .total_cmp(&a.0.z)
            .then_with(|| a.0.phrase.cmp(&b.0.phrase))
    });
    let mut chosen: Vec<(KeyPhrase, u32)> = Vec::new();
    for (candidate, count) in scored {
        if chosen.len() >= settings.max {
            break;
        }
        let words: Vec<&str> = candidate.phrase.split(' ').collect();
        if words.len() == 1 {
            let inside = chosen.iter().any(|(c, phrase_count)| {
                c.phrase.split(' ').any(|w| w == words[0]) && count < 2 * phrase_count
            });
            if inside {
                continue;
            }
        } else {
            chosen.retain(|(c, word_count)| {
                !(words.contains(&c.phrase.as_str()) && *word_count < 2 * count)
            });
        }
        chosen.push((candidate, count));
    }
    chosen.into_iter().map(|(phrase, _)| phrase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn phrases_pair_neighbouring_terms_only() {
        assert_eq!(
            phrases("Reset the password, then VPN-client drops 404 times"),
            vec![
                "reset",
                "password",
                "vpn",
                "vpn client",
                "client",
                "client drops",
                "drops",
                "times"
            ]
        );
    }

    /// Tickets of a tag about refunds among tickets about logins and refunds' common words.
    fn groups() -> (PhraseCounts, PhraseCounts) {
        let mut billing = Vec::new();
        let mut rest = Vec::new();
        for i in 0..40 {
            billing.push(format!(
                "Charged twice for order {i}, I need a refund of the duplicate charge on my account"
            ));
            rest.push(format!(
                "Cannot sign in to my account since update {i}, password reset fails"
            ));
            rest.push(format!(
                "The app crashes on my account page after update {i}"
            ));
        }
        // A word only one billing ticket has: an anecdote, not a key phrase.
        billing.push("refund for the zeppelin ride".to_string());
        (
            PhraseCounts::of(billing.iter().map(String::as_str)),
            PhraseCounts::of(rest.iter().map(String::as_str)),
        )
    }

    #[test]
    fn a_tags_own_words_lead_and_shared_and_rare_words_do_not() {
        let (billing, rest) = groups();
        let found = key_phrases(&billing, &rest, &KeyPhraseSettings::group());
        let names: Vec<&str> = found.iter().map(|p| p.phrase.as_str()).collect();
        for expected in ["refund", "charged twice", "duplicate charge"] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        // "account" is in every ticket of both groups; "zeppelin" in one ticket.
        assert!(!names.contains(&"account"), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("zeppelin")), "{names:?}");
        // Sorted by z, every z significant.
        assert!(found.windows(2).all(|w| w[0].z >= w[1].z));
        assert!(found.iter().all(|p| p.z >= 1.96));
        // "charged" only ever occurs in "charged twice": the phrase stands for it.
        assert!(!names.contains(&"charged"), "{names:?}");
    }

    #[test]
    fn the_other_groups_words_are_not_the_focus_groups_key_phrases() {
        let (billing, rest) = groups();
        let found = key_phrases(&rest, &billing, &KeyPhraseSettings::group());
        let names: Vec<&str> = found.iter().map(|p| p.phrase.as_str()).collect();
        assert!(names.contains(&"password reset"), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("refund")), "{names:?}");
    }

    #[test]
    fn one_ticket_against_the_project_names_its_topic() {
        let (billing, rest) = groups();
        let ticket = PhraseCounts::of(["My invoice shows a duplicate charge, please refund it"]);
        let mut project = billing.clone();
        for (phrase, (count, tickets)) in &rest.counts {
            let entry = project.counts.entry(phrase.clone()).or_default();
            entry.0 += count;
            entry.1 += tickets;
        }
        project.total += rest.total;
        let found = key_phrases(&ticket, &project, &KeyPhraseSettings::ticket());
        let names: Vec<&str> = found.iter().map(|p| p.phrase.as_str()).collect();
        assert!(names.contains(&"duplicate charge"), "{names:?}");
        // "invoice" appears in no other ticket: held back as a possible typo or id.
        assert!(!names.contains(&"invoice"), "{names:?}");
    }

    #[test]
    fn one_long_paste_counts_like_a_few_mentions() {
        let mut counts = PhraseCounts::new();
        counts.add(&"timeout ".repeat(1000));
        assert_eq!(counts.get("timeout"), (MAX_COUNT_PER_TICKET, 1));
        assert_eq!(counts.total, u64::from(MAX_COUNT_PER_TICKET) * 2);
    }

    #[test]
    fn removing_a_ticket_undoes_adding_it() {
        let (mut billing, _) = groups();
        let before = (billing.get("refund"), billing.total, billing.tickets());
        let text = "Refund the duplicate charge, refund refund refund";
        billing.add(text);
        billing.remove(text);
        assert_eq!(
            (billing.get("refund"), billing.total, billing.tickets()),
            before
        );
    }

    #[test]
    fn empty_groups_have_no_key_phrases() {
        let (billing, _) = groups();
        assert!(
            key_phrases(&billing, &PhraseCounts::new(), &KeyPhraseSettings::group()).is_empty()
        );
        assert!(
            key_phrases(&PhraseCounts::new(), &billing, &KeyPhraseSettings::group()).is_empty()
        );
    }
}
