//! A project's glossary: the names of its own products and components, which no general
//! pattern can know. Found in ticket text as whole words, in any case, and reported in the
//! glossary's own spelling so that "acme sync" and "ACME Sync" are one entity.

use crate::error::ValidationError;
use crate::limits;

/// The most terms one project's glossary holds.
pub const MAX_GLOSSARY_TERMS: usize = 500;
/// The longest term, in characters.
pub const MAX_TERM_CHARS: usize = 100;

/// A checked glossary with its matcher built once.
#[derive(Debug, Clone, Default)]
pub struct Glossary {
    terms: Vec<String>,
    /// Every term, longest first (so "Acme Sync Pro" wins over "Acme Sync"), case-insensitive;
    /// `None` for an empty glossary.
    matcher: Option<regex::Regex>,
}

/// The key a term is unique by and matched on: lower case, inner whitespace collapsed.
pub fn term_key(term: &str) -> String {
    term.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl Glossary {
    /// Checks and builds a glossary: at most `MAX_GLOSSARY_TERMS` terms of at most
    /// `MAX_TERM_CHARS` characters each, as given (the limits the API document states);
    /// blank terms are dropped, whitespace inside a term is collapsed, and a term given twice
    /// (in any case) is kept once, first spelling first.
    pub fn new<S: AsRef<str>>(terms: &[S]) -> Result<Self, ValidationError> {
        limits::check_count("glossary", terms.len(), MAX_GLOSSARY_TERMS, "terms")?;
        let mut kept: Vec<String> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        for term in terms {
            limits::check_chars("glossary", term.as_ref(), MAX_TERM_CHARS)?;
            let term = term
                .as_ref()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            if term.is_empty() {
                continue;
            }
            let key = term_key(&term);
            if !keys.contains(&key) {
                keys.push(key);
                kept.push(term);
            }
        }
        let matcher = if kept.is_empty() {
            None
        } else {
            let mut by_length: Vec<&String> = kept.iter().collect();
            by_length.sort_by_key(|term| std::cmp::Reverse(term.len()));
            let alternatives: Vec<String> = by_length
                .iter()
                // A space in a term matches any run of whitespace in the ticket.
                .map(|term| {
                    term.split(' ')
                        .map(regex::escape)
                        .collect::<Vec<_>>()
                        .join(r"\s+")
                })
                .collect();
            let source = format!("(?:{})", alternatives.join("|"));
            // A full glossary (500 terms of 100 characters, every letter in any case)
            // compiles to more than the default limit allows.
            Some(
                regex::RegexBuilder::new(&source)
                    .case_insensitive(true)
                    .size_limit(256 << 20)
                    .build()
                    .map_err(|error| {
                        ValidationError::field("glossary", format!("cannot be matched: {error}"))
                    })?,
            )
        };
        Ok(Self {
            terms: kept,
            matcher,
        })
    }

    /// The terms, in the order given.
    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Where the glossary's terms occur in `text` as whole words: (start, end, the term as
    /// the glossary spells it), in text order, not overlapping.
    pub fn find(&self, text: &str) -> Vec<(usize, usize, &str)> {
        let Some(matcher) = &self.matcher else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let mut at = 0;
        while let Some(hit) = matcher.find_at(text, at) {
            let whole_word = !text[..hit.start()].chars().next_back().is_some_and(is_word)
                && !text[hit.end()..].chars().next().is_some_and(is_word);
            if whole_word {
                let key = term_key(hit.as_str());
                if let Some(term) = self.terms.iter().find(|term| term_key(term) == key) {
                    found.push((hit.start(), hit.end(), term.as_str()));
                }
                at = hit.end();
            } else {
                // A term inside a longer word ("Sync" in "Async"): look again one character on.
                at = hit.start() + text[hit.start()..].chars().next().map_or(1, char::len_utf8);
            }
            if at >= text.len() {
                break;
            }
        }
        found
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(glossary: &Glossary, text: &str) -> Vec<String> {
        glossary
            .find(text)
            .into_iter()
            .map(|(_, _, term)| term.to_string())
            .collect()
    }

    #[test]
    fn terms_match_in_any_case_and_report_the_glossary_spelling() {
        let glossary = Glossary::new(&["Acme Sync", "Billing Portal"]).unwrap();
        assert_eq!(
            found(&glossary, "acme sync stopped; the BILLING portal too"),
            ["Acme Sync", "Billing Portal"]
        );
    }

    #[test]
    fn only_whole_words_match() {
        let glossary = Glossary::new(&["Sync", "C++"]).unwrap();
        assert!(found(&glossary, "Async jobs and Syncer").is_empty());
        assert_eq!(found(&glossary, "The Async job. Sync failed"), ["Sync"]);
        assert_eq!(found(&glossary, "built with C++, not C"), ["C++"]);
        assert!(found(&glossary, "C++x").is_empty());
    }

    #[test]
    fn the_longest_term_wins_and_whitespace_inside_a_term_is_loose() {
        let glossary = Glossary::new(&["Acme Sync", "Acme Sync Pro"]).unwrap();
        assert_eq!(
            found(&glossary, "Acme\n  Sync   Pro crashed"),
            ["Acme Sync Pro"]
        );
        assert_eq!(found(&glossary, "Acme Sync crashed"), ["Acme Sync"]);
    }

    #[test]
    fn terms_are_checked_trimmed_and_kept_once() {
        let glossary = Glossary::new(&["  Acme   Sync ", "", "acme sync", "Portal"]).unwrap();
        assert_eq!(glossary.terms(), ["Acme Sync", "Portal"]);
        assert!(Glossary::new(&["x".repeat(MAX_TERM_CHARS + 1)]).is_err());
        let many: Vec<String> = (0..=MAX_GLOSSARY_TERMS).map(|i| format!("t{i}")).collect();
        assert!(Glossary::new(&many).is_err());
        // The fullest glossary the limits allow still compiles.
        let full: Vec<String> = (0..MAX_GLOSSARY_TERMS)
            .map(|i| format!("{i:03}{}", "Ä".repeat(MAX_TERM_CHARS - 3)))
            .collect();
        let glossary = Glossary::new(&full).unwrap();
        assert_eq!(
            glossary
                .find(&format!("x {} y", full[7].to_lowercase()))
                .len(),
            1
        );
        assert!(
            Glossary::new::<&str>(&[])
                .unwrap()
                .find("anything")
                .is_empty()
        );
    }

    #[test]
    fn regex_characters_in_terms_are_literal() {
        let glossary = Glossary::new(&["Node.js", "a+b (beta)"]).unwrap();
        assert_eq!(found(&glossary, "Nodexjs and node.js"), ["Node.js"]);
        assert_eq!(found(&glossary, "using A+B (Beta) now"), ["a+b (beta)"]);
    }
}
