//! Areas of concern: groups of recent tickets that no tag fits (neither the model nor anyone
//! gave them a tag) and that share words seldom seen on tagged tickets of the same period —
//! a hint that the taxonomy misses a topic. Plain term statistics, no model: it works before
//! any model exists, costs a few milliseconds for a thousand tickets, and every cluster is
//! explained by the words that formed it.

use datasets::text::key_phrases::is_stopword;
use std::collections::{HashMap, HashSet};

/// One ticket of the period as the clustering sees it.
#[derive(Debug, Clone)]
pub struct TicketText<'a> {
    pub id: i64,
    pub text: &'a str,
    /// No tag is in force on the ticket.
    pub fits_no_tag: bool,
}

/// Tickets no tag fits that share distinctive words.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// The words the cluster's tickets share, the one that formed it first.
    pub terms: Vec<String>,
    /// The tickets, in the order given (newest first on the dashboard).
    pub tickets: Vec<i64>,
    /// Share of the tagged tickets of the period that contain the first term.
    pub tagged_share: f64,
}

/// Thresholds of the clustering.
#[derive(Debug, Clone, Copy)]
pub struct ClusterSettings {
    /// Fewest tickets that make a cluster.
    pub min_size: usize,
    /// Most clusters returned.
    pub max_clusters: usize,
    /// A term must be this many times more frequent among untagged tickets than tagged ones.
    pub min_lift: f64,
    /// A term describes a cluster when this share of its tickets contain it.
    pub member_share: f64,
    /// Most terms shown per cluster.
    pub max_terms: usize,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            min_size: 5,
            max_clusters: 5,
            min_lift: 3.0,
            member_share: 0.6,
            max_terms: 3,
        }
    }
}

/// The distinct words of a text that can name a topic: lower case, three letters or more,
/// not only digits, not a stopword.
/// Sorted, each once.
pub fn terms(text: &str) -> Vec<String> {
    let mut found: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3 && !w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_lowercase)
        .filter(|w| !is_stopword(w))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// Greedy clustering by distinctive terms: the terms far more frequent among tickets no tag
/// fits than among tagged ones, strongest first (frequency × log lift); each term takes the
/// untagged tickets containing it that no earlier cluster took, and becomes a cluster when
/// they are at least `min_size`.
pub fn find_clusters(tickets: &[TicketText<'_>], settings: &ClusterSettings) -> Vec<Cluster> {
    let untagged: Vec<(i64, Vec<String>)> = tickets
        .iter()
        .filter(|t| t.fits_no_tag)
        .map(|t| (t.id, terms(t.text)))
        .collect();
    if untagged.len() < settings.min_size {
        return Vec::new();
    }
    let mut tagged_df: HashMap<String, usize> = HashMap::new();
    let mut tagged = 0usize;
    for ticket in tickets.iter().filter(|t| !t.fits_no_tag) {
        tagged += 1;
        for term in terms(ticket.text) {
            *tagged_df.entry(term).or_default() += 1;
        }
    }
    let mut untagged_df: HashMap<&str, usize> = HashMap::new();
    for (_, ticket_terms) in &untagged {
        for term in ticket_terms {
            *untagged_df.entry(term.as_str()).or_default() += 1;
        }
    }
    // Add-one smoothing: a term no tagged ticket has gets a large but finite lift, so a
    // small tagged sample cannot make every rare word look distinctive.
    let tagged_rate = |term: &str| {
        (tagged_df.get(term).copied().unwrap_or(0) as f64 + 1.0) / (tagged as f64 + 2.0)
    };
    let lift = |term: &str, df: usize| (df as f64 / untagged.len() as f64) / tagged_rate(term);
    let mut candidates: Vec<(&str, usize, f64)> = untagged_df
        .iter()
        .filter(|(_, df)| **df >= settings.min_size)
        .map(|(term, df)| (*term, *df, lift(term, *df)))
        .filter(|(_, _, lift)| *lift >= settings.min_lift)
        .collect();
    candidates.sort_by(|a, b| {
        let strength = |c: &(&str, usize, f64)| c.1 as f64 * c.2.ln();
        strength(b)
            .total_cmp(&strength(a))
            .then_with(|| a.0.cmp(b.0))
    });
    let candidate_terms: HashSet<&str> = candidates.iter().map(|c| c.0).collect();
    let mut taken: HashSet<i64> = HashSet::new();
    let mut clusters = Vec::new();
    for (seed, _, _) in &candidates {
        if clusters.len() >= settings.max_clusters {
            break;
        }
        let members: Vec<&(i64, Vec<String>)> = untagged
            .iter()
            .filter(|(id, ticket_terms)| {
                !taken.contains(id)
                    && ticket_terms
                        .binary_search_by(|t| t.as_str().cmp(seed))
                        .is_ok()
            })
            .collect();
        if members.len() < settings.min_size {
            continue;
        }
        // The other distinctive terms most of the members share, most shared first.
        let mut shared: HashMap<&str, usize> = HashMap::new();
        for (_, ticket_terms) in &members {
            for term in ticket_terms.iter().map(String::as_str) {
                if term != *seed && candidate_terms.contains(term) {
                    *shared.entry(term).or_default() += 1;
                }
            }
        }
        let needed = (members.len() as f64 * settings.member_share).ceil() as usize;
        let mut shared: Vec<(&str, usize)> =
            shared.into_iter().filter(|(_, n)| *n >= needed).collect();
        shared.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut cluster_terms = vec![seed.to_string()];
        cluster_terms.extend(
            shared
                .iter()
                .take(settings.max_terms.saturating_sub(1))
                .map(|(t, _)| t.to_string()),
        );
        taken.extend(members.iter().map(|(id, _)| *id));
        clusters.push(Cluster {
            terms: cluster_terms,
            tickets: members.iter().map(|(id, _)| *id).collect(),
            tagged_share: if tagged == 0 {
                0.0
            } else {
                tagged_df.get(*seed).copied().unwrap_or(0) as f64 / tagged as f64
            },
        });
    }
    clusters
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tagged tickets on two known topics, untagged tickets on a new topic (VPN) and
    /// untagged tickets with nothing in common.
    fn synthetic() -> Vec<(i64, String, bool)> {
        let mut tickets = Vec::new();
        let mut id = 0;
        let mut push = |text: String, fits_no_tag: bool| {
            id += 1;
            tickets.push((id, text, fits_no_tag));
        };
        for i in 0..60 {
            push(
                format!("Invoice {i} charged twice, please refund the payment"),
                false,
            );
            push(
                format!("Cannot login, password reset mail {i} never came"),
                false,
            );
        }
        let vpn = [
            "VPN tunnel drops every {} minutes",
            "the vpn client disconnects after {} minutes",
            "intranet unreachable over vpn since {} o'clock",
        ];
        for i in 0..12 {
            push(vpn[i % 3].replace("{}", &i.to_string()), true);
        }
        let singles = [
            "printer jams on page two",
            "office coffee machine broken",
            "parking badge expired",
            "wrong timezone in calendar",
            "typo on the pricing page",
            "invoice address outdated",
        ];
        for text in singles {
            push(text.to_string(), true);
        }
        tickets
    }

    fn texts(tickets: &[(i64, String, bool)]) -> Vec<TicketText<'_>> {
        tickets
            .iter()
            .map(|(id, text, fits)| TicketText {
                id: *id,
                text,
                fits_no_tag: *fits,
            })
            .collect()
    }

    #[test]
    fn a_new_untagged_topic_becomes_one_cluster_named_by_its_words() {
        let tickets = synthetic();
        let clusters = find_clusters(&texts(&tickets), &ClusterSettings::default());
        assert_eq!(clusters.len(), 1, "{clusters:?}");
        let vpn = &clusters[0];
        assert_eq!(vpn.tickets.len(), 12);
        // "vpn" is in every one of them; "minutes" in two thirds.
        assert_eq!(vpn.terms, vec!["vpn".to_string(), "minutes".to_string()]);
        assert_eq!(vpn.tagged_share, 0.0);
        // Only untagged tickets, each once.
        let untagged: HashSet<i64> = tickets.iter().filter(|t| t.2).map(|t| t.0).collect();
        assert!(vpn.tickets.iter().all(|id| untagged.contains(id)));
    }

    #[test]
    fn words_common_on_tagged_tickets_form_no_cluster() {
        let mut tickets = synthetic();
        // Untagged tickets about invoices: a known topic the model missed, not a new one.
        for i in 0..8 {
            tickets.push((1000 + i, format!("invoice {i} charged twice refund"), true));
        }
        let clusters = find_clusters(&texts(&tickets), &ClusterSettings::default());
        assert!(
            clusters
                .iter()
                .all(|c| !c.terms.iter().any(|t| t == "invoice" || t == "charged")),
            "{clusters:?}"
        );
    }

    #[test]
    fn too_few_untagged_tickets_make_no_cluster() {
        let tickets: Vec<(i64, String, bool)> = (0..4)
            .map(|i| (i, "vpn tunnel drops".to_string(), true))
            .collect();
        assert!(find_clusters(&texts(&tickets), &ClusterSettings::default()).is_empty());
    }

    #[test]
    fn terms_drop_short_words_numbers_and_stopwords() {
        let found = terms("The VPN drops at 10:45, please help!! Tunnel-error 404 vpn");
        assert_eq!(found, vec!["drops", "error", "tunnel", "vpn"]);
    }
}
