//! Property tests (issue 13) of the types every API body and form passes through: names
//! parse back to themselves, `datasets::limits` never lets over-long or NUL-bearing input
//! through, and the request bodies (`NewTicket`, `NewTag`, `TagUpdate`, `TicketQuery`) either
//! refuse arbitrary JSON with an error or hold only what the limits allow.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{DateTime, Datelike, Utc};
use datasets::connector::{ConnectorName, MAX_CONNECTOR_NAME_CHARS};
use datasets::limits::{
    self, MAX_BODY_BYTES, MAX_KEY_CHARS, MAX_METADATA_BYTES, MAX_METADATA_DEPTH, MAX_SUBJECT_CHARS,
    YEARS,
};
use datasets::names::MAX_NAME_CHARS;
use datasets::{
    KeywordRules, NewTag, NewTicket, ProjectName, TagName, TagUpdate, TicketQuery, Username,
};
use proptest::prelude::*;
use serde_json::Value;

/// Text as clients send it: any string, with NULs, control characters and edge lengths
/// around the limits made likely.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        1 => (any::<String>(), 0..4usize)
            .prop_map(|(s, at)| { let mut s = s; s.insert(s.char_indices().nth(at).map_or(s.len(), |(i, _)| i), '\0'); s }),
        1 => (prop::sample::select(vec!["a", "é", "😀", " "]), 0..2100usize)
            .prop_map(|(c, n)| c.repeat(n)),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        text().prop_map(Value::String),
        // Big strings, cheaply: around the metadata and body limits.
        (60_000..300_000usize).prop_map(|n| Value::String("x".repeat(n))),
        prop::sample::select(vec![
            "#a1b2c3",
            "#GGGGGG",
            "train",
            "test",
            "2026-01-05T10:00:00Z",
            "-005000-01-01T00:00:00Z",
            "+10000-01-01T00:00:00Z",
            "0000-12-31T23:59:59Z",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    let key = prop_oneof![
        3 => prop::sample::select(vec![
            "source", "external_id", "subject", "body", "metadata", "created_at", "split",
            "name", "description", "color", "keywords", "include", "exclude", "archived",
            "text", "tag", "limit", "offset", "unlabelled",
        ])
        .prop_map(str::to_string),
        1 => text(),
    ];
    leaf.prop_recursive(20, 300, 12, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..12)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// An object holding `levels` nested arrays or objects: around `MAX_METADATA_DEPTH`.
fn nested() -> impl Strategy<Value = Value> {
    (0..MAX_METADATA_DEPTH + 4, any::<u32>(), text()).prop_map(|(levels, shape, leaf)| {
        let mut value = Value::String(leaf);
        for level in 0..levels {
            value = if shape & (1 << (level % 32)) == 0 {
                Value::Array(vec![value])
            } else {
                serde_json::json!({ "k": value })
            };
        }
        serde_json::json!({ "nested": value })
    })
}

/// A ticket body with every field present, each drawn from around its limit.
fn ticket_shaped() -> impl Strategy<Value = Value> {
    let created_at = prop_oneof![
        Just(Value::Null),
        (DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp())
            .prop_map(|seconds| serde_json::json!(DateTime::<Utc>::from_timestamp(seconds, 0))),
    ];
    let metadata = prop_oneof![json(), nested()];
    (
        text(),
        text(),
        text(),
        text(),
        metadata,
        created_at,
        prop::sample::select(vec!["train", "test"]),
    )
        .prop_map(
            |(source, external_id, subject, body, metadata, created_at, split)| {
                serde_json::json!({"source": source, "external_id": external_id, "subject": subject,
                "body": body, "metadata": metadata, "created_at": created_at, "split": split})
            },
        )
}

/// A tag body (also a valid `TagUpdate`) with every field present.
fn tag_shaped() -> impl Strategy<Value = Value> {
    let color = prop_oneof!["#[0-9a-fA-F]{6}", text(), "#[0-9a-fé]{5,6}",];
    let keywords = (
        prop::collection::vec(text(), 0..limits::MAX_KEYWORDS_PER_TAG + 10),
        prop::collection::vec(text(), 0..10),
    );
    ("[A-Za-z ]{1,20}", text(), color, keywords).prop_map(
        |(name, description, color, (include, exclude))| {
            serde_json::json!({"name": name, "description": description, "color": color,
            "keywords": {"include": include, "exclude": exclude}})
        },
    )
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

fn assert_keywords_within_limits(rules: &KeywordRules) -> Result<(), TestCaseError> {
    prop_assert!(rules.include.len() + rules.exclude.len() <= limits::MAX_KEYWORDS_PER_TAG);
    for phrase in rules.include.iter().chain(&rules.exclude) {
        prop_assert!(!phrase.trim().is_empty() && !phrase.contains('\0'));
        prop_assert!(chars(phrase) <= limits::MAX_KEYWORD_CHARS);
    }
    Ok(())
}

fn assert_colour(color: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        color.len() == 7
            && color.starts_with('#')
            && color[1..].chars().all(|c| c.is_ascii_hexdigit()),
        "{color:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_name_is_its_input_trimmed_or_an_error(raw in text()) {
        let trimmed = raw.trim();
        let acceptable = !trimmed.is_empty()
            && chars(trimmed) <= MAX_NAME_CHARS
            && !trimmed.chars().any(char::is_control);
        for parsed in [
            TagName::parse(&raw).map(String::from),
            ProjectName::parse(&raw).map(String::from),
        ] {
            match parsed {
                Ok(name) => {
                    prop_assert!(acceptable, "{raw:?}");
                    prop_assert_eq!(name.as_str(), trimmed);
                }
                Err(error) => {
                    prop_assert!(!acceptable, "{raw:?}: {error}");
                    prop_assert!(!error.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn a_valid_name_parses_back_to_itself_and_survives_json(raw in "\\PC{1,64}") {
        if let Ok(name) = TagName::parse(&raw) {
            prop_assert_eq!(TagName::parse(name.as_str()), Ok(name.clone()));
            let json = serde_json::to_string(&name).unwrap();
            prop_assert_eq!(serde_json::from_str::<TagName>(&json).unwrap(), name);
        }
        if let Ok(name) = ProjectName::parse(&raw) {
            prop_assert_eq!(ProjectName::parse(name.as_str()), Ok(name.clone()));
            let json = serde_json::to_string(&name).unwrap();
            prop_assert_eq!(serde_json::from_str::<ProjectName>(&json).unwrap(), name);
        }
    }

    #[test]
    fn connector_names_are_url_safe_and_parse_back_to_themselves(raw in text()) {
        if let Ok(name) = ConnectorName::parse(&raw) {
            prop_assert!((1..=MAX_CONNECTOR_NAME_CHARS).contains(&chars(name.as_str())));
            prop_assert!(name.as_str().chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
            prop_assert_eq!(ConnectorName::parse(name.as_str()).unwrap(), name);
        }
    }

    #[test]
    fn every_url_safe_name_up_to_the_limit_is_a_connector_name(raw in "[A-Za-z0-9._-]{1,64}") {
        let name = ConnectorName::parse(&raw).unwrap();
        prop_assert_eq!(name.as_str(), raw.as_str());
        let longer = format!("{raw}{}", "x".repeat(MAX_CONNECTOR_NAME_CHARS + 1 - raw.len()));
        prop_assert!(ConnectorName::parse(&longer).is_err());
    }

    #[test]
    fn usernames_parse_back_to_themselves(raw in text()) {
        if let Ok(name) = Username::parse(&raw) {
            prop_assert_eq!(name.as_str(), raw.trim());
            prop_assert_eq!(Username::parse(name.as_str()).unwrap(), name);
        }
    }

    #[test]
    fn text_is_accepted_exactly_up_to_its_character_limit_without_nul(
        input in text(),
        max in prop_oneof![0..80usize, Just(limits::MAX_SEARCH_CHARS), Just(limits::MAX_DESCRIPTION_CHARS)],
    ) {
        let accepted = limits::check_chars("field", &input, max).is_ok();
        prop_assert_eq!(accepted, chars(&input) <= max && !input.contains('\0'), "{} chars, max {}", chars(&input), max);
    }

    #[test]
    fn counts_are_accepted_exactly_up_to_their_limit(count in 0..1000usize, max in 0..500usize) {
        prop_assert_eq!(limits::check_count("field", count, max, "items").is_ok(), count <= max);
    }

    #[test]
    fn dates_are_accepted_exactly_in_years_one_to_9999(
        seconds in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
    ) {
        let at = DateTime::<Utc>::from_timestamp(seconds, 0).unwrap();
        prop_assert_eq!(limits::check_date("created_at", &at).is_ok(), YEARS.contains(&at.year()));
    }

    #[test]
    fn accepted_metadata_is_a_small_shallow_object_without_nul(value in prop_oneof![json(), nested()]) {
        if limits::check_metadata(&value).is_ok() {
            prop_assert!(value.is_object());
            prop_assert!(serde_json::to_vec(&value).unwrap().len() <= MAX_METADATA_BYTES);
            prop_assert!(depth(&value) <= MAX_METADATA_DEPTH, "depth {}", depth(&value));
            prop_assert!(!has_nul(&value));
        }
    }

    #[test]
    fn arbitrary_bytes_are_a_ticket_or_a_json_error(bytes in any::<Vec<u8>>()) {
        if let Ok(ticket) = serde_json::from_slice::<NewTicket>(&bytes) {
            // Only checked not to panic: which of these bytes validate is the next property's.
            let _ = ticket.validate();
        }
    }

    #[test]
    fn a_ticket_body_that_validates_is_within_every_limit(value in prop_oneof![json(), ticket_shaped()]) {
        let Ok(ticket) = serde_json::from_value::<NewTicket>(value) else { return Ok(()) };
        if ticket.validate().is_ok() {
            for key in [&ticket.source, &ticket.external_id] {
                prop_assert!(!key.trim().is_empty() && chars(key) <= MAX_KEY_CHARS && !key.contains('\0'));
            }
            prop_assert!(chars(&ticket.subject) <= MAX_SUBJECT_CHARS && !ticket.subject.contains('\0'));
            prop_assert!(ticket.body.len() <= MAX_BODY_BYTES && !ticket.body.contains('\0'));
            prop_assert!(!(ticket.subject.trim().is_empty() && ticket.body.trim().is_empty()));
            prop_assert!(limits::check_metadata(&ticket.metadata).is_ok());
            if let Some(at) = ticket.created_at {
                prop_assert!(YEARS.contains(&at.year()));
            }
        }
    }

    #[test]
    fn a_tag_body_that_validates_is_within_every_limit(value in prop_oneof![json(), tag_shaped()]) {
        if let Ok(tag) = serde_json::from_value::<NewTag>(value.clone())
            && tag.validate().is_ok()
        {
            prop_assert!(chars(&tag.description) <= limits::MAX_DESCRIPTION_CHARS && !tag.description.contains('\0'));
            assert_colour(&tag.color)?;
            assert_keywords_within_limits(&tag.keywords)?;
        }
        if let Ok(update) = serde_json::from_value::<TagUpdate>(value.clone())
            && update.validate().is_ok()
        {
            if let Some(description) = &update.description {
                prop_assert!(chars(description) <= limits::MAX_DESCRIPTION_CHARS);
            }
            if let Some(color) = &update.color {
                assert_colour(color)?;
            }
            if let Some(keywords) = &update.keywords {
                assert_keywords_within_limits(keywords)?;
            }
        }
        if let Ok(query) = serde_json::from_value::<TicketQuery>(value)
            && query.validate().is_ok()
        {
            if let Some(text) = &query.text {
                prop_assert!(chars(text) <= limits::MAX_SEARCH_CHARS && !text.contains('\0'));
            }
            prop_assert!((0..=i64::from(TicketQuery::MAX_LIMIT)).contains(&query.effective_limit()));
        }
    }

    #[test]
    fn keyword_rules_are_accepted_exactly_within_the_limits(
        include in prop::collection::vec(text(), 0..120),
        exclude in prop::collection::vec(text(), 0..120),
    ) {
        let rules = KeywordRules { include, exclude };
        let within = rules.include.len() + rules.exclude.len() <= limits::MAX_KEYWORDS_PER_TAG
            && rules.include.iter().chain(&rules.exclude).all(|phrase| {
                !phrase.trim().is_empty() && chars(phrase) <= limits::MAX_KEYWORD_CHARS && !phrase.contains('\0')
            });
        prop_assert_eq!(rules.validate().is_ok(), within);
    }
}
