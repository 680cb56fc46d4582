//! The whole loading pipeline: read, parse, expand, merge, `--set`.

use std::path::{Path, PathBuf};

use crate::error::{ConfigError, ConfigErrors};
use crate::expand::expand_at;
use crate::merge::merge;
use crate::parse::{lowercase_first, parse_yaml};
use crate::set::{parse_set, set_path};
use crate::value::{Map, Value};

/// The result of [`load`]: the merged tree and any warnings to log.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The merged, expanded configuration; always a map.
    pub value: Value,
    /// Non-fatal problems, such as references to unset variables.
    pub warnings: Vec<String>,
}

/// Config sources otelcol accepts that this collector does not (yet);
/// named so the error says so instead of "file not found".
const UNSUPPORTED_SCHEMES: [&str; 5] = ["env", "yaml", "http", "https", "s3"];

/// Loads a configuration as `otelcol --config A --config B --set k=v` does.
///
/// Every file (a path, optionally written `file:PATH`) is read, parsed and
/// expanded with `lookup`; the files are merged in order (see
/// [`merge`](crate::merge)) and then each `--set` is expanded and applied
/// in order (see [`apply_set`](crate::apply_set)). All problems found in
/// all files are reported together.
pub fn load<P: AsRef<Path>>(
    files: &[P],
    sets: &[String],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let mut warnings = Vec::new();
    let mut merged = Value::Map(Map::new());
    for file in files {
        match load_file(file.as_ref(), lookup) {
            Ok((value, file_warnings)) => {
                merged = merge(merged, value);
                warnings.extend(file_warnings);
            }
            Err(file_errors) => errors.extend(file_errors),
        }
    }
    for assignment in sets {
        if let Err(set_errors) = apply_expanded_set(&mut merged, assignment, lookup, &mut warnings)
        {
            errors.extend(set_errors);
        }
    }
    errors.into_result()?;
    dedup_in_order(&mut warnings);
    Ok(Loaded { value: merged, warnings })
}

fn load_file(
    file: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(Value, Vec<String>), ConfigErrors> {
    let path = source_path(file)?;
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|err| {
        ConfigError::new(
            "",
            format!("{name}: cannot read file: {}", lowercase_first(&err.to_string())),
        )
    })?;
    let value = match parse_yaml(&text, &name)? {
        Value::Null => Value::Map(Map::new()),
        map @ Value::Map(_) => map,
        other => {
            return Err(ConfigError::new(
                "",
                format!("{name}: expected a map at the top level, found a {}", other.kind()),
            )
            .into());
        }
    };
    expand_at(value, "", lookup)
}

/// Strips otelcol's `file:` prefix and rejects the other URI schemes.
fn source_path(file: &Path) -> Result<PathBuf, ConfigError> {
    let Some(text) = file.to_str() else {
        return Ok(file.to_path_buf());
    };
    if let Some(rest) = text.strip_prefix("file:") {
        return Ok(PathBuf::from(rest));
    }
    if let Some((scheme, _)) = text.split_once(':')
        && UNSUPPORTED_SCHEMES.contains(&scheme)
    {
        return Err(ConfigError::new(
            "",
            format!(
                "unsupported config source {text:?}: expected a file path \
                 (optionally written file:PATH)"
            ),
        ));
    }
    Ok(file.to_path_buf())
}

fn apply_expanded_set(
    root: &mut Value,
    assignment: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigErrors> {
    let (keys, value) = parse_set(assignment)?;
    let (value, set_warnings) = expand_at(value, &keys.join("."), lookup)?;
    warnings.extend(set_warnings);
    set_path(root, &keys, value, assignment)?;
    Ok(())
}

fn dedup_in_order(items: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|item| seen.insert(item.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_prefix_and_unsupported_sources() {
        assert_eq!(
            source_path(Path::new("file:/etc/otel.yaml")),
            Ok(PathBuf::from("/etc/otel.yaml"))
        );
        assert_eq!(source_path(Path::new("conf.yaml")), Ok(PathBuf::from("conf.yaml")));
        assert_eq!(
            source_path(Path::new("env:OTEL_CONFIG")).unwrap_err().to_string(),
            "unsupported config source \"env:OTEL_CONFIG\": expected a file path \
             (optionally written file:PATH)"
        );
    }

    #[test]
    fn no_files_gives_an_empty_map_plus_sets() {
        let loaded = load::<&str>(&[], &["a.b=${X}".to_owned()], &|_| None).unwrap();
        assert_eq!(loaded.value.get_path(&["a", "b"]), Some(&Value::from("")));
        assert_eq!(
            loaded.warnings,
            ["a.b: environment variable \"X\" is not set; using an empty string"]
        );
    }

    #[test]
    fn top_level_must_be_a_map() {
        let path = std::env::temp_dir().join(format!("config-test-{}.yaml", std::process::id()));
        std::fs::write(&path, "- a\n").unwrap();
        let err = load(&[&path], &[], &|_| None).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(err.ends_with(": expected a map at the top level, found a sequence"), "{err}");
    }
}
