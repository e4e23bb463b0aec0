//! Liberal readers for vendor JSON: a value may be a string, a number (integer or float), a
//! boolean, null, or ServiceNow's `{"display_value", "value"}` / `{"link", "value"}` wrapper.
//! Each reader takes whatever shape arrives and gives `None` for "nothing there".

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

/// Unwraps ServiceNow's `{"value": …}` objects (the database value, in UTC for dates), falling
/// back to `display_value` when `value` is absent.
fn unwrapped(value: &Value) -> &Value {
    match value {
        Value::Object(map) => map
            .get("value")
            .or_else(|| map.get("display_value"))
            .unwrap_or(value),
        other => other,
    }
}

/// A number as text, integers without a fraction (`4.0` → `"4"`).
fn number_text(number: &serde_json::Number) -> String {
    if let Some(int) = number.as_i64() {
        return int.to_string();
    }
    if let Some(uint) = number.as_u64() {
        return uint.to_string();
    }
    match number.as_f64() {
        // Ids and enums sent as floats are whole numbers well inside i64.
        Some(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => (float as i64).to_string(),
        _ => number.to_string(),
    }
}

/// A value as text; `None` for null, absent, objects and arrays.
pub fn text(value: Option<&Value>) -> Option<String> {
    match unwrapped(value?) {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number_text(number)),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Text with surrounding white space removed; `None` when nothing is left.
pub fn trimmed(value: Option<&Value>) -> Option<String> {
    text(value)
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
}

/// An identifier sent as a string or as a number.
pub fn id(value: Option<&Value>) -> Option<String> {
    trimmed(value)
}

/// A list of labels: a JSON array of strings or numbers, or one string whose items are
/// separated by spaces or commas (how Zendesk placeholders and changelogs render lists).
pub fn labels(value: Option<&Value>) -> Vec<String> {
    let Some(value) = value else {
        return Vec::new();
    };
    let items: Vec<String> = match unwrapped(value) {
        Value::Array(items) => items
            .iter()
            .filter_map(|item| trimmed(Some(item)))
            .collect(),
        other => text(Some(other))
            .map(|text| {
                text.split(|c: char| c == ',' || c.is_whitespace())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut labels: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let item = item.trim().to_string();
        if !item.is_empty() && !labels.contains(&item) {
            labels.push(item);
        }
    }
    labels
}

/// A point in time: RFC 3339, Jira's `2019-02-15T19:01:52.971-0800`, ServiceNow's database
/// format `2020-11-11 17:54:57` (UTC), or a number of seconds or milliseconds since 1970.
pub fn timestamp(value: Option<&Value>) -> Option<DateTime<Utc>> {
    match unwrapped(value?) {
        Value::Number(number) => {
            let seconds_or_millis = number
                .as_i64()
                .or_else(|| number.as_f64().map(|float| float as i64))?;
            epoch(seconds_or_millis)
        }
        Value::String(text) => parse_time_text(text.trim()),
        _ => None,
    }
}

/// Seconds, or milliseconds when the number is too large to be seconds of this era.
fn epoch(value: i64) -> Option<DateTime<Utc>> {
    // `unsigned_abs`: `abs` of i64::MIN overflows, and a vendor's float of -1e300 saturates to
    // exactly that.
    if value.unsigned_abs() >= 100_000_000_000 {
        Utc.timestamp_millis_opt(value).single()
    } else {
        Utc.timestamp_opt(value, 0).single()
    }
}

/// Parses the textual time formats the three systems send.
pub fn parse_time_text(text: &str) -> Option<DateTime<Utc>> {
    if text.is_empty() {
        return None;
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Some(time.with_timezone(&Utc));
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(time.and_utc());
        }
    }
    text.parse::<i64>().ok().and_then(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_come_as_strings_integers_or_floats() {
        assert_eq!(id(Some(&json!("4821"))).as_deref(), Some("4821"));
        assert_eq!(id(Some(&json!(4821))).as_deref(), Some("4821"));
        assert_eq!(id(Some(&json!(4.0))).as_deref(), Some("4"));
        assert_eq!(
            id(Some(&json!({"display_value": "x", "value": "abc"}))).as_deref(),
            Some("abc")
        );
        assert_eq!(id(Some(&json!(null))), None);
        assert_eq!(id(Some(&json!("  "))), None);
        assert_eq!(id(None), None);
    }

    #[test]
    fn labels_come_as_arrays_or_separated_strings() {
        assert_eq!(labels(Some(&json!(["a", "b", "a"]))), vec!["a", "b"]);
        assert_eq!(
            labels(Some(&json!("bad test-label"))),
            vec!["bad", "test-label"]
        );
        assert_eq!(labels(Some(&json!("x, y"))), vec!["x", "y"]);
        assert!(labels(Some(&json!(null))).is_empty());
    }

    #[test]
    fn times_in_every_vendor_format_parse_to_utc() {
        let expected = Utc.with_ymd_and_hms(2019, 2, 16, 3, 1, 52).single();
        let jira = timestamp(Some(&json!("2019-02-15T19:01:52.971-0800")));
        assert_eq!(jira.map(|t| t.timestamp()), expected.map(|t| t.timestamp()));
        assert_eq!(timestamp(Some(&json!("2019-02-16T03:01:52Z"))), expected);
        assert_eq!(
            timestamp(Some(
                &json!({"display_value": "2019-02-15 19:01:52", "value": "2019-02-16 03:01:52"})
            )),
            expected
        );
        assert_eq!(timestamp(Some(&json!(1_550_286_112))), expected);
        assert_eq!(timestamp(Some(&json!(1_550_286_112_000_i64))), expected);
        assert_eq!(timestamp(Some(&json!("not a time"))), None);
    }

    #[test]
    fn the_most_negative_number_is_no_time_rather_than_an_overflow() {
        assert_eq!(timestamp(Some(&json!(i64::MIN))), None);
        assert_eq!(timestamp(Some(&json!(-1.0e300))), None);
        assert_eq!(timestamp(Some(&json!("-9223372036854775808"))), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Seconds from year 1 to year 9999, the range a ticket's dates may have.
        const YEARS_1_TO_9999: std::ops::Range<i64> = -62_135_596_800..253_402_300_800;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_number_or_text_is_a_time_or_none(
                int in any::<i64>(),
                float in any::<f64>(),
                text in any::<String>(),
            ) {
                timestamp(Some(&json!(int)));
                timestamp(Some(&json!(float)));
                timestamp(Some(&json!(text)));
                timestamp(Some(&json!(int.to_string())));
                timestamp(Some(&json!({ "value": int, "display_value": text })));
            }

            #[test]
            fn times_written_in_each_vendor_format_read_back_to_the_same_second(
                seconds in YEARS_1_TO_9999,
            ) {
                let time = Utc.timestamp_opt(seconds, 0).single().unwrap();
                for written in [
                    time.to_rfc3339(),
                    time.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
                    time.format("%Y-%m-%d %H:%M:%S").to_string(),
                ] {
                    prop_assert_eq!(timestamp(Some(&json!(written))), Some(time), "{}", written);
                }
                // Numbers are seconds unless too large for this era's seconds.
                if seconds.abs() < 100_000_000_000 {
                    prop_assert_eq!(timestamp(Some(&json!(seconds))), Some(time));
                }
                let millis = seconds * 1000;
                if millis.abs() >= 100_000_000_000 {
                    prop_assert_eq!(timestamp(Some(&json!(millis))), Some(time));
                }
            }

            #[test]
            fn labels_are_trimmed_unique_and_never_empty(value in prop_oneof![
                any::<String>().prop_map(|s| json!(s)),
                prop::collection::vec(any::<String>(), 0..8).prop_map(|v| json!(v)),
            ]) {
                let found = labels(Some(&value));
                for (i, label) in found.iter().enumerate() {
                    prop_assert!(!label.is_empty() && label.trim() == label, "{found:?}");
                    prop_assert!(!found[..i].contains(label), "{found:?}");
                }
            }

            #[test]
            fn a_list_of_clean_labels_reads_back_as_itself(
                list in prop::collection::btree_set("[a-z0-9_-]{1,12}", 0..8),
            ) {
                let list: Vec<String> = list.into_iter().collect();
                prop_assert_eq!(labels(Some(&json!(list))), list.clone());
                prop_assert_eq!(labels(Some(&json!(list.join(", ")))), list);
            }

            #[test]
            fn integer_ids_read_as_their_decimal_text(id in any::<i64>()) {
                prop_assert_eq!(super::id(Some(&json!(id))), Some(id.to_string()));
                prop_assert_eq!(super::id(Some(&json!(id.to_string()))), Some(id.to_string()));
            }
        }
    }
}
