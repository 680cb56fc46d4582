//! Turning YAML text into a [`Value`].

use serde_saphyr::MessageFormatter;

use crate::error::ConfigError;
use crate::value::{Map, Value};

/// Parses one YAML document into a [`Value`]; an empty document (or one
/// holding only comments) is an empty map, as otelcol treats it.
///
/// `source` names the input in errors, which read
/// `config.yaml:3:7: <what the parser found>`.
pub fn parse_yaml(text: &str, source: &str) -> Result<Value, ConfigError> {
    Ok(parse_document(text, source)?.unwrap_or_else(|| Value::Map(Map::new())))
}

/// Parses one YAML document; `None` when it is empty.
pub(crate) fn parse_document(text: &str, source: &str) -> Result<Option<Value>, ConfigError> {
    // Read scalars the way otelcol's YAML 1.2 parser does: `yes`/`on`/`y`
    // stay strings, `.inf` is a float, and `0755`-style spellings stay
    // strings rather than becoming numbers (they are usually tokens or
    // file modes, where silently dropping the zeros would be wrong).
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
    };
    serde_saphyr::from_str_with_options::<Option<Value>>(text, options)
        .map_err(|err| yaml_error(&err, source))
}

fn yaml_error(err: &serde_saphyr::Error, source: &str) -> ConfigError {
    let inner = err.without_snippet();
    let message = serde_saphyr::DefaultMessageFormatter.format_message(inner);
    let message = lowercase_first(&clean_message(&message));
    match err.location() {
        Some(at) => {
            ConfigError::new("", format!("{source}:{}:{}: {message}", at.line(), at.column()))
        }
        None => ConfigError::new("", format!("{source}: {message}")),
    }
}

/// Drops the parser's hints aimed at Rust developers (which API or option
/// to use instead) and escapes control characters, since the text may quote
/// the input and ends up in terminals and logs.
fn clean_message(message: &str) -> String {
    const DEVELOPER_HINTS: [&str; 2] =
        [", set DuplicateKeyPolicy in Options if acceptable", "; use from_str_multiple"];
    let end =
        DEVELOPER_HINTS.iter().filter_map(|hint| message.find(hint)).min().unwrap_or(message.len());
    message[..end]
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> =
                if c.is_control() { c.escape_default().collect() } else { vec![c] };
            escaped
        })
        .collect()
}

/// Lowercases the first letter so messages from other libraries match ours.
pub(crate) fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_comment_only_documents_are_empty_maps() {
        assert_eq!(parse_yaml("", "a.yaml"), Ok(Value::Map(Map::new())));
        assert_eq!(parse_yaml("# nothing\n", "a.yaml"), Ok(Value::Map(Map::new())));
    }

    #[test]
    fn scalars_get_their_yaml_types() {
        let value =
            parse_yaml("a: 1\nb: 1.5\nc: true\nd: ~\ne: x\nf: \"2\"\ng:\n200: k\n", "a.yaml")
                .unwrap();
        assert_eq!(value.get("a"), Some(&Value::Int(1)));
        assert_eq!(value.get("b"), Some(&Value::Float(1.5)));
        assert_eq!(value.get("c"), Some(&Value::Bool(true)));
        assert_eq!(value.get("d"), Some(&Value::Null));
        assert_eq!(value.get("e"), Some(&Value::from("x")));
        assert_eq!(value.get("f"), Some(&Value::from("2")));
        assert_eq!(value.get("g"), Some(&Value::Null));
        assert_eq!(value.get("200"), Some(&Value::from("k")));
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = parse_yaml("a:\n  b: [1, 2\n", "conf.yaml").unwrap_err();
        assert!(err.message.starts_with("conf.yaml:"), "{err}");
        let err = parse_yaml("a: 1\na: 2\n", "conf.yaml").unwrap_err();
        assert!(err.message.starts_with("conf.yaml:2:"), "{err}");
    }
}
