//! Languages: the one a ticket is written in (detected with `whatlang`, trigram statistics
//! over 69 languages, no model files) and the ones a project's model serves. A ticket in a
//! language the model does not serve is sent to a person instead of getting a confident
//! wrong tag.

use crate::error::ValidationError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Texts with fewer letters than this get no language decision: on a few words trigram
/// statistics guess ("Danke!" and "Thanks!" share too little to tell anything).
pub const MIN_LANGUAGE_LETTERS: usize = 40;

/// Only the first bytes of a text are looked at: a ticket's language shows within them, and
/// detection then costs the same on a 5 MB paste as on a short ticket.
pub const LANGUAGE_SAMPLE_BYTES: usize = 2048;

/// A natural language, named by its ISO 639-3 code (`eng`, `deu`, `fra`, `spa`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Language(whatlang::Lang);

impl Language {
    /// The ISO 639-3 code.
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// The English name ("German").
    pub fn english_name(self) -> &'static str {
        self.0.eng_name()
    }

    /// Every language detection can tell, in code order.
    pub fn all() -> Vec<Language> {
        let mut all: Vec<Language> = whatlang::Lang::all().iter().map(|l| Language(*l)).collect();
        all.sort_by_key(|l| l.code());
        all
    }

    /// Parses an ISO 639-3 code, case-insensitively.
    pub fn parse(code: &str) -> Result<Self, ValidationError> {
        whatlang::Lang::from_code(code.trim().to_ascii_lowercase())
            .map(Language)
            .ok_or_else(|| {
                ValidationError::field(
                    "languages",
                    format!(
                        "{code:?} is not a language code this tagger detects (ISO 639-3, e.g. eng, deu, fra, spa)"
                    ),
                )
            })
    }

    /// A comma-separated list of codes ("eng, deu"), sorted, each once; empty for none.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, ValidationError> {
        let mut languages = list
            .split(',')
            .filter(|code| !code.trim().is_empty())
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        languages.sort_by_key(|l| l.code());
        languages.dedup();
        Ok(languages)
    }

    /// The list as [`Language::parse_list`] reads it (and the store keeps it).
    pub fn join(languages: &[Self]) -> String {
        languages
            .iter()
            .map(|l| l.code())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Language {
    type Err = ValidationError;
    fn from_str(code: &str) -> Result<Self, ValidationError> {
        Self::parse(code)
    }
}

impl Serialize for Language {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// The language `text` is written in, when it can be told: at least
/// [`MIN_LANGUAGE_LETTERS`] letters in the first [`LANGUAGE_SAMPLE_BYTES`] of its prose and a
/// detection `whatlang` itself calls reliable. `None` means "no decision", never
/// "unsupported". Prose is the text without stack frames, exception and log lines
/// ([`crate::text::traces::prose`]): they are in no one's language, and a Russian or
/// Japanese ticket with an English log line was read as English.
pub fn detect_language(text: &str) -> Option<Language> {
    // Prose of a bounded prefix: the sample is taken from its start anyway.
    let prose = crate::text::traces::prose(prefix(text, LANGUAGE_SAMPLE_BYTES * 4));
    let text = prose.as_str();
    let sample = prefix(text, LANGUAGE_SAMPLE_BYTES);
    if sample.chars().filter(|c| c.is_alphabetic()).count() < MIN_LANGUAGE_LETTERS {
        return None;
    }
    whatlang::detect(sample)
        .filter(whatlang::Info::is_reliable)
        .map(|info| Language(info.lang()))
}

/// At most `bytes` bytes of `text`, cut at a character boundary.
fn prefix(text: &str, bytes: usize) -> &str {
    let mut end = text.len().min(bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The language that keeps `text` from being tagged by a model serving `served`: its
/// detected language when that is not among them. Nothing when `served` is empty (the
/// project did not choose) or the language cannot be told.
pub fn unsupported_language(text: &str, served: &[Language]) -> Option<Language> {
    if served.is_empty() {
        return None;
    }
    detect_language(text).filter(|language| !served.contains(language))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn language(code: &str) -> Language {
        Language::parse(code).expect("a known code")
    }

    #[test]
    fn log_and_trace_lines_do_not_decide_the_language() {
        let russian = "Не работает экспорт отчётов, кнопка ничего не делает.\n\
            2026-12-01 10:00:01 ERROR ExportService failed to write the report file to disk storage\n\
            2026-12-01 10:00:02 ERROR ExportService retry failed, giving up on the export job now\n\
            2026-12-01 10:00:03 WARN  ExportService queue is full, dropping the pending export jobs";
        assert_eq!(detect_language(russian), Some(language("rus")));
    }

    #[test]
    fn codes_parse_case_insensitively_and_unknown_ones_are_refused() {
        assert_eq!(language(" ENG ").code(), "eng");
        assert_eq!(language("deu").english_name(), "German");
        assert!(Language::parse("en").is_err());
        assert!(Language::parse("klingon").is_err());
    }

    #[test]
    fn lists_are_sorted_deduplicated_and_round_trip() {
        let list = Language::parse_list("fra, eng,,ENG ,deu").expect("valid");
        assert_eq!(Language::join(&list), "deu,eng,fra");
        assert_eq!(
            Language::parse_list(&Language::join(&list)).expect("valid"),
            list
        );
        assert_eq!(Language::parse_list("").expect("empty"), vec![]);
        assert!(Language::parse_list("eng,xx").is_err());
    }

    #[test]
    fn serde_uses_the_code() {
        let json = serde_json::to_string(&vec![language("spa")]).expect("serialises");
        assert_eq!(json, r#"["spa"]"#);
        let back: Vec<Language> = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, vec![language("spa")]);
        assert!(serde_json::from_str::<Language>(r#""zzz""#).is_err());
    }

    #[test]
    fn ticket_languages_are_detected() {
        // Two sentences are enough; one short sentence often is not (see MIN_LANGUAGE_LETTERS).
        for (code, text) in [
            (
                "eng",
                "I cannot download my invoices since the last update, the page only shows an error.",
            ),
            (
                "deu",
                "Seit dem letzten Update können wir keine Rechnungen mehr herunterladen. Es erscheint nur ein Fehler.",
            ),
            (
                "fra",
                "Depuis la dernière mise à jour, nous ne pouvons plus télécharger nos factures, seule une erreur s'affiche. Pouvez-vous regarder rapidement ?",
            ),
            (
                "spa",
                "Desde la última actualización no podemos descargar nuestras facturas, solo aparece un mensaje de error. ¿Pueden revisarlo, por favor? Lo necesitamos para el cierre del mes.",
            ),
            (
                "ita",
                "Mi carta è stata addebitata due volte questo mese. Potete rimborsarmi il secondo addebito? Grazie mille per l'aiuto.",
            ),
            (
                "nld",
                "Bij het inloggen krijg ik steeds een foutmelding, ook nadat ik mijn wachtwoord opnieuw heb ingesteld. Wat moet ik doen?",
            ),
        ] {
            assert_eq!(detect_language(text), Some(language(code)), "{text}");
        }
    }

    #[test]
    fn short_or_doubtful_texts_get_no_decision() {
        assert_eq!(detect_language("Danke, geht wieder!"), None);
        // Half Spanish, half English: no language is reliable, so none is decided.
        assert_eq!(
            detect_language(
                "Hola, the dashboard no carga desde esta mañana. We see only a spinner y luego an error."
            ),
            None
        );
        assert_eq!(detect_language("1234 5678 !!!"), None);
    }

    #[test]
    fn only_a_served_list_makes_a_language_unsupported() {
        let german = "Seit dem letzten Update können wir keine Rechnungen mehr herunterladen, es erscheint nur ein Fehler.";
        assert_eq!(unsupported_language(german, &[]), None);
        assert_eq!(unsupported_language(german, &[language("deu")]), None);
        assert_eq!(
            unsupported_language(german, &[language("eng"), language("fra")]),
            Some(language("deu"))
        );
        assert_eq!(unsupported_language("Hallo", &[language("eng")]), None);
    }
}
