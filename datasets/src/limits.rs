//! The limits on everything a client sends, in one place: sizes of strings and collections,
//! characters no database stores as text, and the dates both databases can hold. The input
//! types (`NewTicket`, `NewTag`, `TagUpdate`, `TicketQuery`, …) check them before any SQL
//! runs, so SQLite and PostgreSQL refuse the same input with the same message.

use crate::error::ValidationError;
use chrono::{DateTime, Datelike, Utc};

/// The largest ticket body, in bytes. Real tickets with pasted logs stay well under this;
/// anything larger is almost always an attachment pasted as text, and it would dominate
/// memory in batch tagging.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// The longest ticket subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 1000;
/// The longest ticket source or external id, in characters.
pub const MAX_KEY_CHARS: usize = 256;
/// The largest ticket `metadata` object, in bytes of compact JSON: room for requester,
/// product, priority and custom fields, not for attachments.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// How deeply `metadata` may nest objects and arrays. Deeper JSON is not ticket metadata, and
/// walking it recursively (here, in the database's JSON functions) costs stack.
pub const MAX_METADATA_DEPTH: usize = 16;
/// The most keyword phrases one tag may have, `include` and `exclude` together: every phrase
/// becomes part of a search condition, so the count bounds the cost of the tag's page.
pub const MAX_KEYWORDS_PER_TAG: usize = 200;
/// The longest keyword phrase, in characters.
pub const MAX_KEYWORD_CHARS: usize = 200;
/// The longest tag description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// The most tags one answer (a person's labels for a ticket) may name.
pub const MAX_TAGS_PER_ANSWER: usize = 100;
/// The longest name of whoever labels (a username or an API key's actor), in characters.
pub const MAX_ACTOR_CHARS: usize = 128;
/// The longest search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 500;
/// The earliest and latest year of a date a client sends: the range both databases store
/// (PostgreSQL starts at 4713 BC, SQLite keeps RFC 3339 text that sorts only with four digits).
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Refuses text with a NUL character: PostgreSQL cannot store one in `text` or `jsonb`, and
/// SQLite would, so without this check the two backends would answer differently.
pub fn check_no_nul(field: &'static str, text: &str) -> Result<(), ValidationError> {
    if text.contains('\0') {
        Err(ValidationError::field(
            field,
            "contains a NUL character, which no database stores as text",
        ))
    } else {
        Ok(())
    }
}

/// Refuses text longer than `max` characters (and text with a NUL).
pub fn check_chars(field: &'static str, text: &str, max: usize) -> Result<(), ValidationError> {
    // Counting characters of a huge string is linear; the byte length bounds it first.
    if text.len() > max * 4 || text.chars().count() > max {
        return Err(ValidationError::field(
            field,
            format!("longer than the limit of {max} characters"),
        ));
    }
    check_no_nul(field, text)
}

/// Refuses a collection with more than `max` items.
pub fn check_count(
    field: &'static str,
    count: usize,
    max: usize,
    what: &str,
) -> Result<(), ValidationError> {
    if count > max {
        Err(ValidationError::field(
            field,
            format!("{count} {what}; the limit is {max}"),
        ))
    } else {
        Ok(())
    }
}

/// Refuses a date outside `YEARS`.
pub fn check_date(field: &'static str, at: &DateTime<Utc>) -> Result<(), ValidationError> {
    if YEARS.contains(&at.year()) {
        Ok(())
    } else {
        Err(ValidationError::field(
            field,
            format!(
                "year {} is outside the years {} to {} a date may have",
                at.year(),
                YEARS.start(),
                YEARS.end()
            ),
        ))
    }
}

/// Refuses metadata that is not an object, is larger than `MAX_METADATA_BYTES`, nests deeper
/// than `MAX_METADATA_DEPTH`, or has a NUL in any key or string.
pub fn check_metadata(metadata: &serde_json::Value) -> Result<(), ValidationError> {
    const FIELD: &str = "metadata";
    if !metadata.is_object() {
        return Err(ValidationError::field(FIELD, "must be a JSON object"));
    }
    check_json_value(metadata, 1)?;
    let bytes = serde_json::to_vec(metadata)
        .map_err(|e| ValidationError::field(FIELD, e.to_string()))?
        .len();
    if bytes > MAX_METADATA_BYTES {
        return Err(ValidationError::field(
            FIELD,
            format!(
                "{bytes} bytes of JSON is over the limit of {} KiB",
                MAX_METADATA_BYTES / 1024
            ),
        ));
    }
    Ok(())
}

fn check_json_value(value: &serde_json::Value, depth: usize) -> Result<(), ValidationError> {
    use serde_json::Value;
    let nested = |depth| {
        if depth > MAX_METADATA_DEPTH {
            Err(ValidationError::field(
                "metadata",
                format!("nests deeper than the limit of {MAX_METADATA_DEPTH} levels"),
            ))
        } else {
            Ok(())
        }
    };
    match value {
        Value::String(text) => check_no_nul("metadata", text),
        Value::Array(items) => {
            nested(depth)?;
            items
                .iter()
                .try_for_each(|item| check_json_value(item, depth + 1))
        }
        Value::Object(fields) => {
            nested(depth)?;
            fields.iter().try_for_each(|(key, item)| {
                check_no_nul("metadata", key)?;
                check_json_value(item, depth + 1)
            })
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_measured_in_characters_and_nul_is_refused() {
        assert!(check_chars("f", &"é".repeat(10), 10).is_ok());
        let error = check_chars("f", &"é".repeat(11), 10).unwrap_err();
        assert!(
            error.to_string().contains("limit of 10 characters"),
            "{error}"
        );
        assert!(check_chars("f", "a\0b", 10).is_err());
    }

    #[test]
    fn metadata_must_be_a_small_shallow_object_without_nul() {
        assert!(check_metadata(&json!({"priority": "high", "tags": [1, 2]})).is_ok());
        assert!(check_metadata(&json!([1])).is_err());
        assert!(check_metadata(&json!({"a": "x\u{0}y"})).is_err());
        assert!(check_metadata(&json!({"a\u{0}": 1})).is_err());
        let big = json!({"blob": "x".repeat(MAX_METADATA_BYTES)});
        assert!(
            check_metadata(&big)
                .unwrap_err()
                .to_string()
                .contains("KiB")
        );
        let mut deep = json!(1);
        for _ in 0..MAX_METADATA_DEPTH {
            deep = json!([deep]);
        }
        assert!(check_metadata(&json!({ "a": deep.clone() })).is_err());
        let mut shallow = json!(1);
        for _ in 0..MAX_METADATA_DEPTH - 1 {
            shallow = json!([shallow]);
        }
        assert!(check_metadata(&json!({ "a": shallow })).is_ok());
    }

    #[test]
    fn dates_must_fall_in_years_one_to_9999() {
        let ok: DateTime<Utc> = "0001-01-01T00:00:00Z".parse().unwrap();
        assert!(check_date("created_at", &ok).is_ok());
        let early = ok - chrono::Duration::days(1);
        assert!(check_date("created_at", &early).is_err());
        let late: DateTime<Utc> = "9999-12-31T23:59:59Z".parse().unwrap();
        assert!(check_date("created_at", &late).is_ok());
        assert!(check_date("created_at", &(late + chrono::Duration::days(1))).is_err());
    }
}
