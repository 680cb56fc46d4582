//! Attribute values, ids and timestamps, printed as the collector prints them.

use std::fmt::Write;

use base64::Engine;
use otlp::proto::common::v1::{AnyValue, any_value};

/// [`typed`], or `Empty()` for a value that is not there.
pub(super) fn typed_or_empty(value: Option<&AnyValue>) -> String {
    value.map(typed).unwrap_or_else(|| "Empty()".to_string())
}

/// A value with its type, as the collector's detailed output shows it: `Str(GET)`, `Int(200)`.
pub fn typed(value: &AnyValue) -> String {
    let kind = match &value.value {
        Some(any_value::Value::StringValue(_)) => "Str",
        Some(any_value::Value::BoolValue(_)) => "Bool",
        Some(any_value::Value::IntValue(_)) => "Int",
        Some(any_value::Value::DoubleValue(_)) => "Double",
        Some(any_value::Value::ArrayValue(_)) => "Slice",
        Some(any_value::Value::KvlistValue(_)) => "Map",
        Some(any_value::Value::BytesValue(_)) => "Bytes",
        Some(any_value::Value::StringValueStrindex(_)) | None => "Empty",
    };
    format!("{kind}({})", as_string(value))
}

/// A value as plain text: strings as they are, maps and slices as JSON, bytes as base64.
pub fn as_string(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(bytes)) => base64(bytes),
        Some(any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            to_json(value).to_string()
        }
        Some(any_value::Value::StringValueStrindex(_)) | None => String::new(),
    }
}

fn to_json(value: &AnyValue) -> serde_json::Value {
    use serde_json::Value as Json;
    match &value.value {
        Some(any_value::Value::StringValue(text)) => Json::String(text.clone()),
        Some(any_value::Value::BoolValue(b)) => Json::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Json::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number)
        }
        Some(any_value::Value::BytesValue(bytes)) => Json::String(base64(bytes)),
        Some(any_value::Value::ArrayValue(array)) => {
            Json::Array(array.values.iter().map(to_json).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => Json::Object(
            list.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Json::Null, to_json)))
                .collect(),
        ),
        Some(any_value::Value::StringValueStrindex(_)) | None => Json::Null,
    }
}

/// Standard base64 with padding, as Go prints `[]byte` values.
fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Lowercase hex; empty ids print as nothing, as in the collector.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Nanoseconds since the Unix epoch, the way Go prints a UTC time:
/// `2023-11-14 22:13:20.000000001 +0000 UTC`, with the fraction's trailing zeros trimmed.
pub fn timestamp(nanos: u64) -> String {
    let seconds = nanos / 1_000_000_000;
    let fraction = nanos % 1_000_000_000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX);
    let in_day = seconds % 86_400;
    let (year, month, day) = pipeline::calendar::civil_from_days(days);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    );
    if fraction > 0 {
        let digits = format!("{fraction:09}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text.push_str(" +0000 UTC");
    text
}

#[cfg(test)]
mod tests {
    use otlp::proto::common::v1::{ArrayValue, KeyValueList};

    use super::*;
    use crate::debug::format::fixtures::{START, int, string};

    #[test]
    fn values_print_like_the_collector() {
        let list = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![string("b", "x"), int("a", 1)],
            })),
        };
        assert_eq!(typed(&list), "Map({\"a\":1,\"b\":\"x\"})");
        let array = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue { value: Some(any_value::Value::BoolValue(true)) }],
            })),
        };
        assert_eq!(typed(&array), "Slice([true])");
        let bytes = AnyValue { value: Some(any_value::Value::BytesValue(b"hello".to_vec())) };
        assert_eq!(typed(&bytes), "Bytes(aGVsbG8=)");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(
            typed(&AnyValue { value: Some(any_value::Value::DoubleValue(1.5)) }),
            "Double(1.5)"
        );
        assert_eq!(typed(&AnyValue::default()), "Empty()");
    }

    #[test]
    fn timestamps_print_like_go() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(timestamp(START + 1), "2023-11-14 22:13:20.000000001 +0000 UTC");
        // A leap day, and the end of a year.
        assert_eq!(timestamp(951_782_400_000_000_000), "2000-02-29 00:00:00 +0000 UTC");
        assert_eq!(timestamp(1_704_067_199_500_000_000), "2023-12-31 23:59:59.5 +0000 UTC");
    }
}
