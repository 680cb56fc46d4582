//! [`read`]: `config::from_value` followed by a validation step, reporting both kinds of error
//! in one run.
//!
//! `from_value` yields nothing when any key is wrong, which would hide every validation error
//! (an empty header name, a path without `/`, …) until the serde errors were fixed. So on
//! failure the keys serde complained about are pruned from a copy of the document, the copy is
//! read again, and the validation errors that do not concern a pruned key are reported too —
//! the same idea as the exporters crate's `configure`, but pruning deep keys.

use ::config::{ConfigError, ConfigErrors, Value};
use serde::de::DeserializeOwned;

/// Reads `value` (whose errors are prefixed with `label`) into `T` and validates it with
/// `check`.
pub(crate) fn read<T: DeserializeOwned, R>(
    value: &Value,
    label: &str,
    check: impl Fn(T) -> Result<R, ConfigErrors>,
) -> Result<R, ConfigErrors> {
    let errors = match ::config::from_value::<T>(value, label) {
        Ok(typed) => return check(typed),
        Err(errors) => errors,
    };
    let mut pruned = value.clone();
    let mut removed: Vec<String> = Vec::new();
    let mut all = errors.clone();
    let mut pending = errors;
    // Pruning a key can leave its parent without a required field, and serde stops at the first
    // error of a struct, so errors elsewhere may only show up now: prune again, a few times,
    // keeping the errors that are not about what was pruned.
    for _ in 0..MAX_PRUNE_ROUNDS {
        let mut progress = false;
        for error in &pending {
            let Some(rest) = error.path.strip_prefix(label) else {
                continue;
            };
            if let Some(at) = prune(&mut pruned, rest) {
                removed.push(format!("{label}{at}"));
                progress = true;
            }
        }
        if !progress {
            return Err(all);
        }
        let (more, checked) = match ::config::from_value::<T>(&pruned, label) {
            Ok(typed) => (check(typed).err().unwrap_or_default(), true),
            Err(more) => (more, false),
        };
        for error in &more {
            if !is_about(error, &removed) && !all.iter().any(|known| known == error) {
                all.push(error.clone());
            }
        }
        if checked {
            return Err(all);
        }
        pending = more;
    }
    Err(all)
}

/// Whether `error` concerns one of the pruned keys (or what is under it).
fn is_about(error: &ConfigError, removed: &[String]) -> bool {
    removed.iter().any(|at| {
        error.path == *at
            || error.path.starts_with(&format!("{at}."))
            || error.path.starts_with(&format!("{at}["))
    })
}

/// Enough for nested required fields; a config needing more is reported in two runs.
const MAX_PRUNE_ROUNDS: usize = 8;

/// Removes the map key that `path` (`.spec.tracing.neverTracePaths[1]`) leads to: the deepest
/// key on the path that exists and is not inside a sequence (removing a sequence element would
/// renumber its siblings). Returns the removed key's path, or `None` when nothing was removed.
fn prune(root: &mut Value, path: &str) -> Option<String> {
    // Walk the path to find the chain of map keys that exists; keys may contain dots.
    let mut keys: Vec<String> = Vec::new();
    let mut node: &Value = root;
    let mut rest = path;
    while let Some(after_dot) = rest.strip_prefix('.') {
        let Some(map) = node.as_map() else {
            break;
        };
        // The longest key that the path continues with, followed by `.`, `[` or the end.
        let key = map
            .keys()
            .filter(|key| {
                after_dot
                    .strip_prefix(*key)
                    .is_some_and(|tail| tail.is_empty() || tail.starts_with(['.', '[']))
            })
            .max_by_key(|key| key.len());
        let Some(key) = key else {
            break;
        };
        keys.push(key.to_owned());
        rest = &after_dot[key.len()..];
        node = map.get(key)?;
        if rest.starts_with('[') {
            break;
        }
    }
    // A missing key (serde: "missing required key") has no node: drop its parent instead.
    if keys.is_empty() {
        return None;
    }
    let (last, parents) = keys.split_last()?;
    let mut parent: &mut Value = root;
    for key in parents {
        parent = parent.get_mut(key)?;
    }
    parent.as_map_mut()?.remove(last)?;
    let mut at = String::new();
    for key in &keys {
        at.push('.');
        at.push_str(key);
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        ::config::parse_yaml(text, "t").unwrap()
    }

    #[test]
    fn prunes_the_deepest_existing_key_outside_sequences() {
        let mut value =
            yaml("spec:\n  services: {a.b:1: x}\n  list: [{k: 1}]\n  inbound: {listen: 1}\n");
        assert_eq!(prune(&mut value, ".spec.services.a.b:1"), Some(".spec.services.a.b:1".into()));
        assert_eq!(prune(&mut value, ".spec.list[0].k"), Some(".spec.list".into()));
        assert_eq!(prune(&mut value, ".spec.inbound.app"), Some(".spec.inbound".into()));
        assert_eq!(value, yaml("spec:\n  services: {}\n"));
        assert_eq!(prune(&mut value, ".nothing"), None);
    }
}
