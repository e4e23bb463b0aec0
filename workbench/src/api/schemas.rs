//! Schemas written out by hand for the request types whose rules span fields (subject and
//! body may not both be blank), which no derive can state. They follow the types' own
//! checks (`NewTicket::validate`, `TextToTag::text`) and the limits in `datasets::limits`.

use super::tagging::{TagRequest, TextToTag};
use super::tickets::IngestTicket;
use datasets::api_schema::not_blank_pattern;
use datasets::limits::{MAX_BODY_BYTES, MAX_KEY_CHARS, MAX_SUBJECT_CHARS};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, KnownFormat, ObjectBuilder, Schema,
    SchemaFormat, SchemaType, Type,
};
use utoipa::{PartialSchema, ToSchema};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::new(Type::String))
}

fn nullable(kind: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([kind, Type::Null]))
}

/// `subject` (at most `MAX_SUBJECT_CHARS` characters) and `body` (at most `MAX_BODY_BYTES`
/// bytes; stated in characters, which a body of one-byte characters reaches first), both
/// optional, not both blank, and whatever else `extra` adds; no other field.
fn subject_and_body(description: &str, extra: ObjectBuilder) -> RefOr<Schema> {
    let fields = extra
        .property("subject", string().max_length(Some(MAX_SUBJECT_CHARS)))
        .property(
            "body",
            string()
                .max_length(Some(MAX_BODY_BYTES))
                .description(Some("At most 256 KiB of UTF-8.")),
        )
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
    let not_blank = |field: &str| {
        ObjectBuilder::new()
            .property(field, string().pattern(Some(not_blank_pattern())))
            .required(field)
    };
    AllOfBuilder::new()
        .item(fields)
        .item(
            AnyOfBuilder::new()
                .item(not_blank("subject"))
                .item(not_blank("body")),
        )
        .description(Some(format!(
            "{description} Subject and body may not both be blank."
        )))
        .into()
}

impl PartialSchema for IngestTicket {
    fn schema() -> RefOr<Schema> {
        let key = |description: &str| {
            string()
                .max_length(Some(MAX_KEY_CHARS))
                .pattern(Some(not_blank_pattern()))
                .description(Some(description))
        };
        let fields = ObjectBuilder::new()
            .property(
                "source",
                nullable(Type::String)
                    .max_length(Some(MAX_KEY_CHARS))
                    .pattern(Some(not_blank_pattern()))
                    .description(Some("The system the ticket comes from; `api` when absent.")),
            )
            .property(
                "external_id",
                key("Its id in that system: sending the same id again updates the ticket."),
            )
            .required("external_id")
            .property(
                "metadata",
                nullable(Type::Object).description(Some(
                    "Requester, product, priority…: a JSON object of at most 64 KiB, nested at most 16 levels.",
                )),
            )
            .property(
                "created_at",
                nullable(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .description(Some("RFC 3339, years 1 to 9999; the time of storing when absent.")),
            );
        subject_and_body("A ticket as a client sends it.", fields)
    }
}
impl ToSchema for IngestTicket {}

impl PartialSchema for TextToTag {
    fn schema() -> RefOr<Schema> {
        subject_and_body("A text to tag.", ObjectBuilder::new())
    }
}
impl ToSchema for TextToTag {}

impl PartialSchema for TagRequest {
    fn schema() -> RefOr<Schema> {
        subject_and_body(
            "A text to tag.",
            ObjectBuilder::new().property(
                "rules",
                nullable(Type::Boolean)
                    .description(Some("Apply the taxonomy's keyword rules (default true).")),
            ),
        )
    }
}
impl ToSchema for TagRequest {}
