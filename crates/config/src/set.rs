//! `--set key=value` overrides, applied after the files are merged.

use crate::error::ConfigError;
use crate::parse::parse_document;
use crate::value::{Map, Value};

/// Applies one `--set` assignment such as `processors::batch::timeout=2s`.
///
/// The key is split on `::` when it contains `::` (otelcol's current
/// syntax, which lets keys contain dots) and on `.` otherwise. The text after
/// the first `=` is read as a YAML flow value: `2s`, `100`, `[otlp, debug]`,
/// `{a: 1}`; nothing after the `=` sets null. Missing intermediate maps (and
/// nulls in their place) are created; any other value in the way is an
/// error. The value is not expanded here; [`load`](crate::load) does that.
pub fn apply_set(root: &mut Value, assignment: &str) -> Result<(), ConfigError> {
    let (keys, value) = parse_set(assignment)?;
    set_path(root, &keys, value, assignment)
}

/// Splits an assignment into its key segments and parsed value.
pub(crate) fn parse_set(assignment: &str) -> Result<(Vec<String>, Value), ConfigError> {
    let invalid = |why: &str| ConfigError::new("", format!("invalid --set {assignment:?}: {why}"));
    let Some((key, text)) = assignment.split_once('=') else {
        return Err(invalid("expected key=value, as in processors::batch::timeout=2s"));
    };
    let separator = if key.contains("::") { "::" } else { "." };
    let keys: Vec<String> = key.split(separator).map(str::to_owned).collect();
    if keys.iter().any(|k| k.trim().is_empty()) {
        return Err(invalid("empty key segment"));
    }
    let source = format!("value of --set {assignment:?}");
    let value = parse_document(text, &source)?.unwrap_or(Value::Null);
    Ok((keys, value))
}

/// Stores `value` under `keys`, creating maps on the way.
pub(crate) fn set_path(
    root: &mut Value,
    keys: &[String],
    value: Value,
    assignment: &str,
) -> Result<(), ConfigError> {
    let Some((last, parents)) = keys.split_last() else {
        return Ok(());
    };
    let mut node = root;
    for (depth, key) in parents.iter().enumerate() {
        let map = as_map_or_create(node, &keys[..depth], assignment)?;
        if !map.contains_key(key) {
            map.insert(key.clone(), Value::Map(Map::new()));
        }
        let Some(child) = map.get_mut(key) else {
            return Ok(());
        };
        node = child;
    }
    as_map_or_create(node, parents, assignment)?.insert(last.clone(), value);
    Ok(())
}

fn as_map_or_create<'a>(
    node: &'a mut Value,
    at: &[String],
    assignment: &str,
) -> Result<&'a mut Map, ConfigError> {
    if node.is_null() {
        *node = Value::Map(Map::new());
    }
    let kind = node.kind();
    node.as_map_mut().ok_or_else(|| {
        ConfigError::new(
            "",
            format!("invalid --set {assignment:?}: {:?} is a {kind}, not a map", at.join(".")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_yaml;

    fn yaml(text: &str) -> Value {
        parse_yaml(text, "test").unwrap()
    }

    #[test]
    fn dots_and_double_colons() {
        let mut root = yaml("processors:\n  batch:\n");
        apply_set(&mut root, "processors.batch.timeout=2s").unwrap();
        apply_set(&mut root, "exporters::otlp/a.b::endpoint=localhost:4317").unwrap();
        apply_set(&mut root, "service.pipelines.traces.receivers=[otlp, zipkin]").unwrap();
        apply_set(&mut root, "x.y={a: 1}").unwrap();
        apply_set(&mut root, "x.z=").unwrap();
        let want = yaml(
            "processors: {batch: {timeout: 2s}}\n\
             exporters: {otlp/a.b: {endpoint: 'localhost:4317'}}\n\
             service: {pipelines: {traces: {receivers: [otlp, zipkin]}}}\n\
             x: {y: {a: 1}, z: ~}\n",
        );
        assert_eq!(root, want);
    }

    #[test]
    fn errors() {
        let mut root = yaml("a: {b: text}\n");
        let err = |root: &mut Value, s: &str| apply_set(root, s).unwrap_err().to_string();
        assert_eq!(
            err(&mut root, "a.b"),
            "invalid --set \"a.b\": expected key=value, as in processors::batch::timeout=2s"
        );
        assert_eq!(
            err(&mut root, "a.b.c=1"),
            "invalid --set \"a.b.c=1\": \"a.b\" is a string, not a map"
        );
        assert_eq!(err(&mut root, "a..c=1"), "invalid --set \"a..c=1\": empty key segment");
        assert!(err(&mut root, "a.c=[1").starts_with("value of --set \"a.c=[1\":1:"));
    }
}
