//! Entities a support agent looks for in a ticket: error codes and exception names, version
//! strings, operating systems and browsers, URLs, e-mail addresses and phone numbers. Found
//! by patterns (no model): each kind is one small, tested pattern, and every entity keeps
//! the exact text it was found as, in the order of first appearance, without repeats.
//! Product and component names come from the project's own glossary (`glossary.rs`).

use super::glossary::Glossary;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// What an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A product or component name from the project's glossary (`Acme Sync`, `Billing Portal`).
    Product,
    /// An exception or error type (`NullPointerException`, `KeyError`, `TypeError`).
    Exception,
    /// An error code (`ERR_CONNECTION_REFUSED`, `0x80070005`, `E1234`, `HTTP 503`, `ORA-00942`).
    ErrorCode,
    /// A version string (`v2.3.1`, `14.4`, `version 3.2`).
    Version,
    /// An operating system (`Windows 11`, `macOS 14`, `Android`, `Ubuntu 22.04`).
    OperatingSystem,
    /// A browser (`Chrome 120`, `Firefox`, `Safari`, `Edge`).
    Browser,
    Url,
    Email,
    Phone,
}

impl EntityKind {
    /// How the ticket page names the kind.
    pub fn label(self) -> &'static str {
        match self {
            Self::Product => "product",
            Self::Exception => "exception",
            Self::ErrorCode => "error code",
            Self::Version => "version",
            Self::OperatingSystem => "operating system",
            Self::Browser => "browser",
            Self::Url => "URL",
            Self::Email => "e-mail",
            Self::Phone => "phone",
        }
    }

    /// Personal data: masked wherever text leaves the product (logs, exports) by default.
    pub fn is_personal(self) -> bool {
        matches!(self, Self::Email | Self::Phone)
    }
}

stored_enum!(EntityKind, "entity kind", {
    Product => "product",
    Exception => "exception",
    ErrorCode => "error_code",
    Version => "version",
    OperatingSystem => "operating_system",
    Browser => "browser",
    Url => "url",
    Email => "email",
    Phone => "phone",
});

/// The form an entity's value is compared in (filters match it in any case).
pub fn value_key(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Tickets with an entity of `kind`, and of `value` (in any case) when given. Written
/// `kind` or `kind:value` (`error_code:E1234`, `product`), in URLs and the API alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityFilter {
    pub kind: EntityKind,
    pub value: Option<String>,
}

impl EntityFilter {
    /// The value as stored for matching, if any.
    pub fn value_key(&self) -> Option<String> {
        self.value.as_deref().map(value_key)
    }
}

impl std::str::FromStr for EntityFilter {
    type Err = crate::error::ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        use crate::error::ValidationError;
        crate::limits::check_chars("entity", text, crate::limits::MAX_SEARCH_CHARS)?;
        // A value may hold colons itself (a URL): only the first one separates. The kind is
        // taken as written (`api_schema::entity_filter_pattern` says so to clients).
        let (kind, value) = match text.split_once(':') {
            Some((kind, value)) => (kind, Some(value)),
            None => (text, None),
        };
        let kind = kind.parse::<EntityKind>().map_err(|_| {
            let known: Vec<&str> = EntityKind::ALL.iter().map(|k| k.as_str()).collect();
            ValidationError::field(
                "entity",
                format!(
                    "{kind:?} is no entity kind; write KIND or KIND:VALUE with KIND one of {}",
                    known.join(", ")
                ),
            )
        })?;
        let value = match value {
            Some(value) if value.trim().is_empty() => {
                return Err(ValidationError::field(
                    "entity",
                    "the value after the colon is empty; write KIND alone for any value",
                ));
            }
            other => other.map(str::to_string),
        };
        Ok(Self { kind, value })
    }
}

impl TryFrom<String> for EntityFilter {
    type Error = crate::error::ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<EntityFilter> for String {
    fn from(filter: EntityFilter) -> String {
        filter.to_string()
    }
}

impl std::fmt::Display for EntityFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}:{value}", self.kind.as_str()),
            None => f.write_str(self.kind.as_str()),
        }
    }
}

/// One entity of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entity {
    pub kind: EntityKind,
    pub text: String,
}

/// The most bytes of a text searched: entities that matter sit near the top, and a 5 MB
/// paste must not cost more than a normal ticket.
pub const MAX_ENTITY_SEARCH_BYTES: usize = 64 * 1024;

/// The most entities kept per kind.
pub const MAX_ENTITIES_PER_KIND: usize = 20;

fn pattern(source: &str) -> regex::Regex {
    // The patterns are constants of this file; the tests compile every one.
    regex::Regex::new(source).unwrap_or_else(|error| panic!("entity pattern {source:?}: {error}"))
}

static PATTERNS: LazyLock<Vec<(EntityKind, regex::Regex)>> = LazyLock::new(|| {
    vec![
        (
            EntityKind::Url,
            pattern(r#"\bhttps?://[^\s<>"'()\[\]]+[^\s<>"'()\[\].,;:!?]"#),
        ),
        (
            EntityKind::Email,
            pattern(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
        ),
        (
            EntityKind::Exception,
            pattern(r"\b(?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Z][A-Za-z0-9]*(?:Exception|Error)\b"),
        ),
        (
            EntityKind::ErrorCode,
            pattern(concat!(
                r"\b0x[0-9A-Fa-f]{4,8}\b",
                r"|\b(?:ERR|E|ERROR)_[A-Z0-9_]{3,}\b",
                r"|\b[A-Z]{2,5}-\d{3,5}\b",
                r"|\b(?:HTTP|[Ee]rror|status)\s+[45]\d\d\b",
                r"|\bE\d{3,5}\b",
            )),
        ),
        (
            EntityKind::OperatingSystem,
            pattern(concat!(
                r"\b(?:Windows(?:\s+(?:Server\s+)?(?:\d{2,4}|XP|Vista))?",
                r"|macOS(?:\s+\d+(?:\.\d+)*)?|Mac\s?OS\s?X(?:\s+\d+(?:\.\d+)*)?",
                r"|iOS(?:\s+\d+(?:\.\d+)*)?|iPadOS(?:\s+\d+(?:\.\d+)*)?",
                r"|Android(?:\s+\d+(?:\.\d+)*)?",
                r"|Ubuntu(?:\s+\d+\.\d+)?|Debian(?:\s+\d+)?|Fedora(?:\s+\d+)?|Linux|ChromeOS)\b",
            )),
        ),
        (
            EntityKind::Browser,
            pattern(
                r"\b(?:Chrome|Chromium|Firefox|Safari|Edge|Opera|Brave)(?:\s+\d+(?:\.\d+)*)?\b",
            ),
        ),
        (
            EntityKind::Version,
            pattern(r"\b(?:v|version\s+|ver\.?\s*)\d+(?:\.\d+){1,3}\b|\b\d+\.\d+\.\d+(?:\.\d+)?\b"),
        ),
        (
            EntityKind::Phone,
            pattern(r"(?:\+\d{1,3}[\s.-]?)?\(?\d{2,4}\)?[\s.-]\d{3,4}[\s.-]\d{3,4}\b"),
        ),
    ]
});

/// The entities of `text` with no glossary (see [`find_entities_with`]).
pub fn find_entities(text: &str) -> Vec<Entity> {
    find_entities_with(text, &Glossary::default())
}

/// The entities of `text`, kind by kind in [`EntityKind`] order, each kind in order of first
/// appearance. A span one kind took (a URL, an address) is not read again as another kind:
/// the digits of a URL are not a phone number, the host of an address not a version. The
/// glossary's terms are looked for first: a product named "Edge Gateway" is not a browser.
pub fn find_entities_with(text: &str, glossary: &Glossary) -> Vec<Entity> {
    let mut end = text.len().min(MAX_ENTITY_SEARCH_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end < text.len() {
        // Cut between words: a token cut in half would be found as another entity.
        end = text[..end].rfind(char::is_whitespace).unwrap_or(end);
    }
    let text = &text[..end];
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let mut found: Vec<Entity> = Vec::new();
    let mut products: Vec<String> = Vec::new();
    for (start, end, term) in glossary.find(text) {
        taken.push((start, end));
        if !products.iter().any(|p| p == term) && products.len() < MAX_ENTITIES_PER_KIND {
            products.push(term.to_string());
        }
    }
    found.extend(products.into_iter().map(|text| Entity {
        kind: EntityKind::Product,
        text,
    }));
    for (kind, regex) in PATTERNS.iter() {
        let mut of_kind: Vec<String> = Vec::new();
        for m in regex.find_iter(text) {
            if taken.iter().any(|&(a, b)| m.start() < b && a < m.end()) {
                continue;
            }
            taken.push((m.start(), m.end()));
            let value = m.as_str().trim().to_string();
            if *kind == EntityKind::Phone && value.chars().filter(char::is_ascii_digit).count() < 7
            {
                continue;
            }
            if !of_kind.contains(&value) && of_kind.len() < MAX_ENTITIES_PER_KIND {
                of_kind.push(value);
            }
        }
        found.extend(of_kind.into_iter().map(|text| Entity { kind: *kind, text }));
    }
    found.sort_by_key(|entity| entity.kind);
    found
}

/// The entities of a ticket: its subject and the body the customer wrote (HTML read as
/// text, quoted earlier messages and signatures left out, traces kept whole), with the
/// project's glossary. The one function every ticket write stores entities from.
pub fn ticket_entities(subject: &str, body: &str, glossary: &Glossary) -> Vec<Entity> {
    let body = super::whitespace::unify_line_endings(body);
    let body = if super::html::looks_like_html(&body) {
        super::html::html_to_text(&body)
    } else {
        body.into_owned()
    };
    find_entities_with(
        &format!("{subject}\n{}", super::quoted::strip_quoted(&body)),
        glossary,
    )
}

/// Runs of 13 to 19 digits (spaces or dashes between groups allowed): card-number shaped.
static CARD_LIKE: LazyLock<regex::Regex> = LazyLock::new(|| pattern(r"\b\d(?:[ -]?\d){12,18}\b"));

/// Whether the digits pass the Luhn check every payment card number passes.
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match (i % 2, d * 2) {
            (0, _) => d,
            (_, doubled) if doubled > 9 => doubled - 9,
            (_, doubled) => doubled,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `text` with every e-mail address, phone number and card number (13 to 19 digits that
/// pass the Luhn check) replaced by a mask that keeps the kind (`[email]`, `[phone]`,
/// `[card]`), for exports and anything else that leaves the product.
pub fn mask_personal(text: &str) -> String {
    let masked = CARD_LIKE.replace_all(text, |caps: &regex::Captures<'_>| {
        let digits: Vec<u32> = caps[0].chars().filter_map(|c| c.to_digit(10)).collect();
        if luhn(&digits) {
            "[card]".to_string()
        } else {
            caps[0].to_string()
        }
    });
    let mut masked = masked.into_owned();
    for (kind, regex) in PATTERNS.iter().filter(|(kind, _)| kind.is_personal()) {
        let mask = match kind {
            EntityKind::Email => "[email]",
            _ => "[phone]",
        };
        masked = regex
            .replace_all(&masked, |caps: &regex::Captures<'_>| {
                let hit = &caps[0];
                if *kind == EntityKind::Phone
                    && hit.chars().filter(char::is_ascii_digit).count() < 7
                {
                    hit.to_string()
                } else {
                    mask.to_string()
                }
            })
            .into_owned();
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str, kind: EntityKind) -> Vec<String> {
        find_entities(text)
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.text)
            .collect()
    }

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(PATTERNS.len(), 8);
    }

    #[test]
    fn exceptions_from_java_python_dotnet_and_javascript_traces() {
        let java = "Exception in thread \"main\" java.lang.NullPointerException: x\n\tat com.acme.App.run(App.java:12)";
        assert_eq!(
            of(java, EntityKind::Exception),
            ["java.lang.NullPointerException"]
        );
        let python =
            "Traceback (most recent call last):\n  File \"app.py\", line 3\nKeyError: 'user'";
        assert_eq!(of(python, EntityKind::Exception), ["KeyError"]);
        let dotnet = "System.InvalidOperationException: Sequence contains no elements";
        assert_eq!(
            of(dotnet, EntityKind::Exception),
            ["System.InvalidOperationException"]
        );
        let js = "Uncaught TypeError: Cannot read properties of undefined";
        assert_eq!(of(js, EntityKind::Exception), ["TypeError"]);
        assert!(of("The Error page was blank", EntityKind::Exception).is_empty());
    }

    #[test]
    fn error_codes_of_several_shapes() {
        let text =
            "Got 0x80070005 then ERR_CONNECTION_REFUSED, ORA-00942 and HTTP 503; code E1234.";
        assert_eq!(
            of(text, EntityKind::ErrorCode),
            [
                "0x80070005",
                "ERR_CONNECTION_REFUSED",
                "ORA-00942",
                "HTTP 503",
                "E1234"
            ]
        );
    }

    #[test]
    fn versions_systems_and_browsers() {
        let text = "Since v2.3.1 (and 2.4.0) the app fails on Windows 11 with Chrome 120; \
                    fine on macOS 14.2 in Safari. Android 13 too.";
        assert_eq!(of(text, EntityKind::Version), ["v2.3.1", "2.4.0"]);
        assert_eq!(
            of(text, EntityKind::OperatingSystem),
            ["Windows 11", "macOS 14.2", "Android 13"]
        );
        assert_eq!(of(text, EntityKind::Browser), ["Chrome 120", "Safari"]);
    }

    #[test]
    fn urls_addresses_and_phones_and_their_parts_are_not_read_twice() {
        let text = "See https://status.example.com/incidents/2024.1.5?id=42. \
                    Mail ana.lopez@example.co.uk or call +44 20 7946 0958 (not 2024).";
        assert_eq!(
            of(text, EntityKind::Url),
            ["https://status.example.com/incidents/2024.1.5?id=42"]
        );
        assert_eq!(of(text, EntityKind::Email), ["ana.lopez@example.co.uk"]);
        assert_eq!(of(text, EntityKind::Phone), ["+44 20 7946 0958"]);
        assert!(
            of(text, EntityKind::Version).is_empty(),
            "the URL's 2024.1.5 is the URL's"
        );
    }

    #[test]
    fn repeats_are_kept_once_and_a_huge_paste_is_bounded() {
        let text = "KeyError KeyError KeyError";
        assert_eq!(of(text, EntityKind::Exception), ["KeyError"]);
        let paste = "E1234 ".repeat(1_000_000);
        let found = find_entities(&paste);
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn a_tickets_entities_leave_out_the_quoted_reply() {
        let body = "<p>Export fails with <b>ERR_EXPORT_TIMEOUT</b> on Firefox 121.</p>\
                    <p>On Mon, 3 Mar 2025 at 10:00, Support &lt;help@example.com&gt; wrote:</p>\
                    <blockquote>Try version 2.1.0</blockquote>";
        let found = ticket_entities("Export broken", body, &Glossary::default());
        let texts: Vec<&str> = found.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["ERR_EXPORT_TIMEOUT", "Firefox 121"], "{found:?}");
    }

    #[test]
    fn glossary_products_come_first_and_take_their_span() {
        let glossary = Glossary::new(&["Edge Gateway", "Acme Sync"]).unwrap();
        let found = ticket_entities(
            "edge gateway drops ACME SYNC jobs",
            "Seen in Edge 120 and on the edge gateway again.",
            &glossary,
        );
        let pairs: Vec<(EntityKind, &str)> =
            found.iter().map(|e| (e.kind, e.text.as_str())).collect();
        assert_eq!(
            pairs,
            [
                (EntityKind::Product, "Edge Gateway"),
                (EntityKind::Product, "Acme Sync"),
                (EntityKind::Browser, "Edge 120"),
            ]
        );
    }

    #[test]
    fn kinds_parse_from_their_stored_names() {
        for kind in EntityKind::ALL {
            assert_eq!(kind.as_str().parse::<EntityKind>(), Ok(*kind));
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert!("vendor".parse::<EntityKind>().is_err());
    }

    #[test]
    fn entity_filters_parse_kind_and_value() {
        let filter: EntityFilter = "error_code:E1234".parse().unwrap();
        assert_eq!(filter.kind, EntityKind::ErrorCode);
        assert_eq!(filter.value_key().as_deref(), Some("e1234"));
        let url: EntityFilter = "url:https://x.example/a?b=1".parse().unwrap();
        assert_eq!(url.value.as_deref(), Some("https://x.example/a?b=1"));
        assert_eq!(url.to_string(), "url:https://x.example/a?b=1");
        let any: EntityFilter = "product".parse().unwrap();
        assert_eq!(any.value, None);
        assert!("vendor:x".parse::<EntityFilter>().is_err());
        assert!("product:".parse::<EntityFilter>().is_err());
        assert!("".parse::<EntityFilter>().is_err());
    }

    #[test]
    fn card_numbers_are_masked_only_when_they_pass_the_luhn_check() {
        let masked =
            mask_personal("Card 4111 1111 1111 1111 was charged; order 1234567890123 not.");
        assert_eq!(masked, "Card [card] was charged; order 1234567890123 not.");
        assert_eq!(mask_personal("4111-1111-1111-1111"), "[card]");
    }

    #[test]
    fn personal_data_is_masked_and_the_rest_kept() {
        let masked =
            mask_personal("Call +1 (555) 123-4567 or write to bo@example.com about v2.1.0");
        assert_eq!(
            masked,
            "Call +1 [phone] or write to [email] about v2.1.0".replace("+1 [phone]", "[phone]")
        );
    }
}
