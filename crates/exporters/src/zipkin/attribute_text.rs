//! OTLP attribute values as Zipkin tag text, the way the collector writes them (pdata's
//! `Value.AsString` and `encoding/json`), so a tag reads the same whichever collector sent it:
//! strings as they are, integers and booleans in decimal and `true`/`false`, doubles in the
//! shortest decimal form without an exponent, bytes in standard base64, arrays and maps as JSON
//! (map keys sorted).

use std::borrow::Cow;
use std::fmt::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use otlp::proto::common::v1::{AnyValue, KeyValue, any_value};

/// `value` as tag text (borrowed when it is a string); an empty value is the empty string.
pub(crate) fn as_text(value: Option<&AnyValue>) -> Cow<'_, str> {
    let Some(value) = value.and_then(|value| value.value.as_ref()) else {
        return Cow::Borrowed("");
    };
    match value {
        any_value::Value::StringValue(text) => Cow::Borrowed(text),
        // An index into a profile's string table: nothing to show outside profiles, so empty,
        // as the debug exporter shows it.
        any_value::Value::StringValueStrindex(_) => Cow::Borrowed(""),
        any_value::Value::BoolValue(flag) => Cow::Borrowed(if *flag { "true" } else { "false" }),
        any_value::Value::IntValue(number) => Cow::Owned(number.to_string()),
        any_value::Value::DoubleValue(number) => Cow::Owned(double_text(*number)),
        any_value::Value::BytesValue(bytes) => Cow::Owned(STANDARD.encode(bytes)),
        any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_) => {
            let mut out = String::new();
            write_json(&mut out, Some(value));
            Cow::Owned(out)
        }
    }
}

/// A set of attributes as a JSON object, keys sorted, as `encoding/json` writes a Go map. Of
/// repeated keys the last wins, as in pdata.
pub(crate) fn object_json(attributes: &[KeyValue]) -> String {
    let mut out = String::new();
    write_object(&mut out, attributes);
    out
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: Rust's `Display` is the same shortest
/// round-trip form without an exponent, except for the infinities.
fn double_text(number: f64) -> String {
    if number == f64::INFINITY {
        "+Inf".to_owned()
    } else if number == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        number.to_string()
    }
}

fn write_json(out: &mut String, value: Option<&any_value::Value>) {
    match value {
        None | Some(any_value::Value::StringValueStrindex(_)) => out.push_str("null"),
        Some(any_value::Value::StringValue(text)) => write_string(out, text),
        Some(any_value::Value::BoolValue(flag)) => {
            out.push_str(if *flag { "true" } else { "false" })
        }
        Some(any_value::Value::IntValue(number)) => {
            let _ = write!(out, "{number}");
        }
        Some(any_value::Value::DoubleValue(number)) => write_json_number(out, *number),
        Some(any_value::Value::BytesValue(bytes)) => write_string(out, &STANDARD.encode(bytes)),
        Some(any_value::Value::ArrayValue(array)) => {
            out.push('[');
            for (index, item) in array.values.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_json(out, item.value.as_ref());
            }
            out.push(']');
        }
        Some(any_value::Value::KvlistValue(list)) => write_object(out, &list.values),
    }
}

fn write_object(out: &mut String, attributes: &[KeyValue]) {
    // Sorted by key; for a repeated key the last one is kept.
    let mut sorted: Vec<&KeyValue> = Vec::with_capacity(attributes.len());
    for attribute in attributes {
        match sorted.iter().position(|kept| kept.key == attribute.key) {
            Some(index) => sorted[index] = attribute,
            None => sorted.push(attribute),
        }
    }
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    out.push('{');
    for (index, attribute) in sorted.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(out, &attribute.key);
        out.push(':');
        write_json(out, attribute.value.as_ref().and_then(|value| value.value.as_ref()));
    }
    out.push('}');
}

/// `text` as a JSON string: quotes, backslashes and control characters escaped.
pub(crate) fn write_string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    let mut plain = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[plain..index]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        plain = index + 1;
    }
    out.push_str(&text[plain..]);
    out.push('"');
}

/// A double as `encoding/json` writes it: plain decimal between 1e-6 and 1e21, exponent form
/// (`1e+21`, `1e-7`) outside; JSON has no NaN or infinity, so those are `null`.
fn write_json_number(out: &mut String, number: f64) {
    if !number.is_finite() {
        out.push_str("null");
        return;
    }
    let magnitude = number.abs();
    if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        let text = format!("{number:e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exponent}");
            }
            _ => out.push_str(&text),
        }
    } else {
        let _ = write!(out, "{number}");
    }
}

#[cfg(test)]
mod tests {
    use any_value::Value as V;
    use otlp::proto::common::v1::{ArrayValue, KeyValueList};

    use super::*;

    fn value(value: any_value::Value) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    fn pair(key: &str, inner: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(value(inner)), ..Default::default() }
    }

    #[test]
    fn scalars_read_as_the_collector_writes_them() {
        assert_eq!(as_text(Some(&value(V::StringValue("GET".into())))), "GET");
        assert_eq!(as_text(Some(&value(V::BoolValue(true)))), "true");
        assert_eq!(as_text(Some(&value(V::IntValue(-42)))), "-42");
        assert_eq!(as_text(Some(&value(V::DoubleValue(1.5)))), "1.5");
        assert_eq!(as_text(Some(&value(V::DoubleValue(2.0)))), "2");
        assert_eq!(as_text(Some(&value(V::DoubleValue(1e21)))), "1000000000000000000000");
        assert_eq!(as_text(Some(&value(V::DoubleValue(f64::INFINITY)))), "+Inf");
        assert_eq!(as_text(Some(&value(V::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])))), "3q2+7w==");
        assert_eq!(as_text(None), "");
        assert_eq!(as_text(Some(&AnyValue { value: None })), "");
    }

    #[test]
    fn arrays_and_maps_are_json_with_sorted_keys() {
        let array = V::ArrayValue(ArrayValue {
            values: vec![
                value(V::StringValue("a\"b".into())),
                value(V::IntValue(3)),
                value(V::DoubleValue(0.5)),
                value(V::DoubleValue(1e-7)),
                value(V::DoubleValue(3e21)),
                value(V::BoolValue(false)),
                AnyValue { value: None },
            ],
        });
        assert_eq!(as_text(Some(&value(array))), r#"["a\"b",3,0.5,1e-7,3e+21,false,null]"#);
        let map = V::KvlistValue(KeyValueList {
            values: vec![
                pair("z", V::IntValue(1)),
                pair("a", V::ArrayValue(ArrayValue { values: vec![] })),
                pair("z", V::IntValue(2)),
            ],
        });
        assert_eq!(as_text(Some(&value(map))), r#"{"a":[],"z":2}"#);
        assert_eq!(object_json(&[]), "{}");
    }

    #[test]
    fn strings_are_escaped_as_json_requires() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c\nd\te\u{1}é/");
        assert_eq!(out, r#""a\"b\\c\nd\te\u0001é/""#);
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), "a\"b\\c\nd\te\u{1}é/");
    }
}
