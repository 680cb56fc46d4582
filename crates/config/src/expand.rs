//! `${...}` expansion in string values, following otelcol's confmap rules.
//!
//! Supported: `${env:VAR}`, `${VAR}` (env is the default scheme),
//! `${env:VAR:-default}` (default used when VAR is unset or empty) and `$$`
//! for a literal `$`. A lone `$` not followed by `{` or `$` stays as is;
//! otelcol no longer expands bare `$VAR`. Keys are never expanded.

use crate::error::{ConfigError, ConfigErrors};
use crate::value::{Map, Value, float_text};

/// How a variable is looked up; injected so tests need not touch the
/// process environment.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands every string scalar in `value`.
///
/// Returns the expanded tree and warnings (one per reference to an unset
/// variable without a default, which expands to the empty string, as in
/// otelcol). Unterminated `${` and schemes other than `env` are errors,
/// reported all at once with their key paths.
///
/// A scalar made of exactly one reference is re-read as a YAML scalar, so
/// `port: ${env:PORT}` with `PORT=4317` is the integer 4317 and `${X}` with
/// `X=true` a boolean. Only spellings that print back identically are
/// converted (`4317`, `-1`, `0.25`, `true`, `false`, `null`); anything else,
/// such as `007`, `1e3` or `yes`, stays a string.
pub fn expand(
    value: Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(Value, Vec<String>), ConfigErrors> {
    expand_at(value, "", lookup)
}

/// [`expand`] for a subtree whose key path is `path` (used by `--set`).
pub(crate) fn expand_at(
    value: Value,
    path: &str,
    lookup: Lookup<'_>,
) -> Result<(Value, Vec<String>), ConfigErrors> {
    let mut walker = Walker { lookup, warnings: Vec::new(), errors: ConfigErrors::new() };
    let value = walker.walk(value, path);
    walker.errors.into_result()?;
    Ok((value, walker.warnings))
}

struct Walker<'a> {
    lookup: Lookup<'a>,
    warnings: Vec<String>,
    errors: ConfigErrors,
}

impl Walker<'_> {
    fn walk(&mut self, value: Value, path: &str) -> Value {
        match value {
            Value::String(text) => match self.expand_scalar(&text, path) {
                Ok(expanded) => expanded,
                Err(error) => {
                    self.errors.push(error);
                    Value::String(text)
                }
            },
            Value::Seq(items) => Value::Seq(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| self.walk(item, &format!("{path}[{i}]")))
                    .collect(),
            ),
            Value::Map(map) => Value::Map(
                map.into_iter()
                    .map(|(key, item)| {
                        let child = child_path(path, &key);
                        (key, self.walk(item, &child))
                    })
                    .collect::<Map>(),
            ),
            scalar => scalar,
        }
    }

    fn expand_scalar(&mut self, text: &str, path: &str) -> Result<Value, ConfigError> {
        if !text.contains('$') {
            return Ok(Value::String(text.to_owned()));
        }
        let single = whole_reference(text).is_some();
        let expanded = self.expand_text(text, path)?;
        Ok(if single { retype(expanded) } else { Value::String(expanded) })
    }

    fn expand_text(&mut self, text: &str, path: &str) -> Result<String, ConfigError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if after.starts_with('{') {
                let Some(close) = matching_brace(after) else {
                    return Err(ConfigError::new(
                        path,
                        format!("unterminated \"${{\" in {text:?}: expected a closing \"}}\""),
                    ));
                };
                out.push_str(&self.resolve(&after[1..close], path)?);
                rest = &after[close + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Resolves the inside of one `${...}`.
    fn resolve(&mut self, inner: &str, path: &str) -> Result<String, ConfigError> {
        let spec = match split_scheme(inner) {
            Some(("env", spec)) => spec,
            Some((scheme, _)) => {
                return Err(ConfigError::new(
                    path,
                    format!(
                        "unsupported scheme {scheme:?} in \"${{{inner}}}\": only env is supported"
                    ),
                ));
            }
            None => inner,
        };
        let (name, default) = match spec.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (spec, None),
        };
        if !is_env_name(name) {
            return Err(ConfigError::new(
                path,
                format!(
                    "invalid environment variable name {name:?} in \"${{{inner}}}\": \
                     expected letters, digits and underscores"
                ),
            ));
        }
        let found = (self.lookup)(name);
        match (found, default) {
            (Some(value), _) if !value.is_empty() => Ok(value),
            // The default may itself hold references; expanding it only
            // when used avoids warnings about variables that do not matter.
            (_, Some(default)) => self.expand_text(default, path),
            (Some(empty), None) => Ok(empty),
            (None, None) => {
                let warning = ConfigError::new(
                    path,
                    format!("environment variable {name:?} is not set; using an empty string"),
                );
                self.warnings.push(warning.to_string());
                Ok(String::new())
            }
        }
    }
}

/// Joins a key onto a dotted path.
pub(crate) fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// The inside of `text` when all of it is one `${...}` reference.
fn whole_reference(text: &str) -> Option<&str> {
    let after = text.strip_prefix('$')?;
    let close = matching_brace(after)?;
    (close + 1 == after.len()).then(|| &after[1..close])
}

/// Index of the `}` closing the `{` at the start of `text`, allowing
/// nested `${...}` in defaults.
fn matching_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Splits `scheme:rest` when `inner` starts with a URI scheme. `VAR:-x`
/// is not a scheme: it is a variable with a default.
fn split_scheme(inner: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = inner.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && !rest.starts_with('-')).then_some((scheme, rest))
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Re-reads an expanded reference as a YAML scalar: `4317` becomes an
/// integer, `1.5` a float, `true`/`false` booleans and `null` null.
///
/// Only spellings that print back identically are converted; anything
/// else (`007`, `0x1F`, `1e3`, `yes`, `""`) stays a string. otelcol keeps
/// the original text for string fields for the same reason: a token such
/// as `007` must not lose its zeros on its way to a header.
pub(crate) fn retype(text: String) -> Value {
    let typed = match text.as_str() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        number => {
            if let Ok(int) = number.parse::<i64>() {
                Value::Int(int)
            } else if number.contains('.')
                && number.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-')
                && let Ok(float) = number.parse::<f64>()
            {
                Value::Float(float)
            } else {
                return Value::String(text);
            }
        }
    };
    let round_trips = match &typed {
        Value::Int(i) => i.to_string() == text,
        Value::Float(f) => float_text(*f) == text,
        _ => true,
    };
    if round_trips { typed } else { Value::String(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("4317".to_owned()),
            "HOST" => Some("collector".to_owned()),
            "EMPTY" => Some(String::new()),
            "TOKEN" => Some("007".to_owned()),
            _ => None,
        }
    }

    fn one(text: &str) -> Result<(Value, Vec<String>), ConfigErrors> {
        expand_at(Value::from(text), "k", &env)
    }

    fn ok(text: &str) -> Value {
        one(text).map(|(value, _)| value).unwrap()
    }

    #[test]
    fn forms() {
        assert_eq!(ok("${env:HOST}:${PORT}"), Value::from("collector:4317"));
        assert_eq!(ok("${env:PORT}"), Value::Int(4317));
        assert_eq!(ok("${env:TOKEN}"), Value::from("007"));
        assert_eq!(ok("${env:NOPE:-4318}"), Value::Int(4318));
        assert_eq!(ok("${EMPTY:-x}"), Value::from("x"));
        assert_eq!(ok("${env:NOPE:-${HOST}}"), Value::from("collector"));
        assert_eq!(ok("$${env:HOST} $$ $5"), Value::from("${env:HOST} $ $5"));
        assert_eq!(ok("${EMPTY}"), Value::from(""));
    }

    #[test]
    fn unset_warns() {
        let (value, warnings) = one("x${NOPE}").unwrap();
        assert_eq!(value, Value::from("x"));
        assert_eq!(
            warnings,
            ["k: environment variable \"NOPE\" is not set; using an empty string"]
        );
    }

    #[test]
    fn errors() {
        let err = |text: &str| one(text).unwrap_err().to_string();
        assert_eq!(
            err("${env:X"),
            "k: unterminated \"${\" in \"${env:X\": expected a closing \"}\""
        );
        assert_eq!(
            err("${file:/etc/x}"),
            "k: unsupported scheme \"file\" in \"${file:/etc/x}\": only env is supported"
        );
        assert!(err("${A B}").starts_with("k: invalid environment variable name \"A B\""));
    }

    #[test]
    fn retype_only_lossless_spellings() {
        assert_eq!(retype("true".into()), Value::Bool(true));
        assert_eq!(retype("-3".into()), Value::Int(-3));
        assert_eq!(retype("2.50".into()), Value::from("2.50"));
        assert_eq!(retype("2.5".into()), Value::Float(2.5));
        assert_eq!(retype("null".into()), Value::Null);
        assert_eq!(retype("+3".into()), Value::from("+3"));
        assert_eq!(retype("".into()), Value::from(""));
        assert_eq!(retype("inf".into()), Value::from("inf"));
    }
}
