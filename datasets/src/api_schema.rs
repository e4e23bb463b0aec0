//! JSON schemas of the types whose serde form is written by hand (validated names, language
//! codes, model kinds), for the API's OpenAPI document. Each states exactly what the type's
//! own parser accepts, so a client generated from the document sends nothing it refuses.

use crate::language::Language;
use crate::limits::{MAX_KEYWORD_CHARS, MAX_KEYWORDS_PER_TAG};
use crate::model_kind::ModelKind;
use crate::names::{MAX_NAME_CHARS, ProjectName, TagGroupName, TagName};
use crate::tag::KeywordRules;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

/// What `str::trim` removes: Unicode's White_Space characters.
const WHITE_SPACE: &str =
    r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Control characters (`char::is_control`, general category Cc).
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

/// A name as `names::validate` accepts it: after trimming, 1 to `MAX_NAME_CHARS` characters
/// and no control character. In ECMA-262 and Python syntax alike (generators use either).
pub fn name_pattern() -> String {
    let inner = MAX_NAME_CHARS - 2;
    format!(
        "^[{WHITE_SPACE}]*[^{CONTROL}{WHITE_SPACE}](?:[^{CONTROL}]{{0,{inner}}}[^{CONTROL}{WHITE_SPACE}])?[{WHITE_SPACE}]*$"
    )
}

/// Text with something besides white space in it (what `str::trim` leaves non-empty).
pub fn not_blank_pattern() -> String {
    format!("[^{WHITE_SPACE}]")
}

/// An entity filter as `EntityFilter::from_str` accepts it: a kind's stored name, then
/// optionally a colon and a value with something besides white space in it.
pub fn entity_filter_pattern() -> String {
    let kinds: Vec<&str> = crate::text::entities::EntityKind::ALL
        .iter()
        .map(|kind| kind.as_str())
        .collect();
    format!(
        r"^(?:{})(?::[\s\S]*[^{WHITE_SPACE}][\s\S]*)?$",
        kinds.join("|")
    )
}

/// The schema of the `entity` query parameter.
pub fn entity_filter_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .pattern(Some(entity_filter_pattern()))
        .max_length(Some(crate::limits::MAX_SEARCH_CHARS))
        .into()
}

/// The schema of a glossary's terms: at most `MAX_GLOSSARY_TERMS` strings of at most
/// `MAX_TERM_CHARS` characters each (blank ones are dropped, not refused).
pub fn glossary_terms_schema() -> Schema {
    use crate::text::glossary::{MAX_GLOSSARY_TERMS, MAX_TERM_CHARS};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .max_length(Some(MAX_TERM_CHARS)),
        )
        .max_items(Some(MAX_GLOSSARY_TERMS))
        .into()
}

fn name_schema(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .pattern(Some(name_pattern()))
        .description(Some(format!(
            "{description} 1 to {MAX_NAME_CHARS} characters after trimming, no control characters."
        )))
        .into()
}

impl PartialSchema for TagName {
    fn schema() -> RefOr<Schema> {
        name_schema("A tag's name, unique in its project regardless of case.")
    }
}
impl ToSchema for TagName {}

impl PartialSchema for TagGroupName {
    fn schema() -> RefOr<Schema> {
        name_schema("A tag group's name, unique in its project regardless of case.")
    }
}
impl ToSchema for TagGroupName {}

impl PartialSchema for ProjectName {
    fn schema() -> RefOr<Schema> {
        name_schema("A project's name, unique regardless of case.")
    }
}
impl ToSchema for ProjectName {}

impl PartialSchema for Language {
    fn schema() -> RefOr<Schema> {
        let codes: Vec<&str> = Language::all().into_iter().map(Language::code).collect();
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .enum_values(Some(codes))
            .description(Some("An ISO 639-3 language code."))
            .into()
    }
}
impl ToSchema for Language {}

impl PartialSchema for ModelKind {
    fn schema() -> RefOr<Schema> {
        let help: Vec<String> = ModelKind::ALL
            .iter()
            .map(|kind| format!("`{kind}`: {}", kind.info().summary))
            .collect();
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .enum_values(Some(ModelKind::names()))
            .default(Some(serde_json::Value::from(ModelKind::default().as_str())))
            .description(Some(format!("The kind of model. {}.", help.join("; "))))
            .into()
    }
}
impl ToSchema for ModelKind {}

/// Keyword rules: each list holds phrases of 1 to `MAX_KEYWORD_CHARS` characters with
/// something besides white space; both lists together hold at most `MAX_KEYWORDS_PER_TAG`
/// (a sum no schema keyword states: each list alone is bounded by it).
impl PartialSchema for KeywordRules {
    fn schema() -> RefOr<Schema> {
        let phrases = || {
            ArrayBuilder::new()
                .items(
                    ObjectBuilder::new()
                        .schema_type(SchemaType::new(Type::String))
                        .min_length(Some(1))
                        .max_length(Some(MAX_KEYWORD_CHARS))
                        .pattern(Some(not_blank_pattern())),
                )
                .max_items(Some(MAX_KEYWORDS_PER_TAG))
        };
        ObjectBuilder::new()
            .property("include", phrases())
            .property("exclude", phrases())
            .description(Some(format!(
                "A ticket containing an `include` phrase gets the tag; one containing an `exclude` phrase never does. At most {MAX_KEYWORDS_PER_TAG} phrases in both lists together."
            )))
            .into()
    }
}
impl ToSchema for KeywordRules {}

#[cfg(test)]
mod tests {
    use super::name_pattern;
    use crate::names::TagName;

    /// The pattern, read as a plain regex, agrees with the parser on the cases that matter:
    /// surrounding white space, control characters, the length after trimming.
    #[test]
    fn the_name_pattern_accepts_what_the_parser_accepts() {
        let cases = [
            "Bug".to_string(),
            "  Bug  ".to_string(),
            "\u{3000}Bug\t".to_string(),
            "a b".to_string(),
            "x".repeat(64),
            format!("  {}  ", "x".repeat(64)),
            "x".repeat(65),
            String::new(),
            "   ".to_string(),
            "a\u{0}b".to_string(),
            "a\u{85}b".to_string(),
            "a\u{1f}".to_string(),
            "\u{1c}a".to_string(),
            "Straße 😀".to_string(),
        ];
        let pattern = regex::Regex::new(&name_pattern()).unwrap();
        for case in cases {
            assert_eq!(
                pattern.is_match(&case),
                TagName::parse(&case).is_ok(),
                "{case:?}"
            );
        }
    }
}
