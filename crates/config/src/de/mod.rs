//! Typed configs from a [`Value`]: [`from_value`] and its serde plumbing.
//!
//! The deserializer reports every problem with its full key path, all
//! unknown keys of a struct at once, and as many type errors as it can
//! find: serde's derived code stops at the first error of a struct, so
//! [`from_value`] removes the offending field and tries again until no new
//! error turns up (see [`from_value`] for how nulls fit in).

mod access;
mod deserializer;
mod error;
#[cfg(test)]
mod tests;

use serde::de::{Deserialize, DeserializeOwned, Deserializer};

use self::deserializer::ValueDeserializer;
use self::error::{Entry, KeyPath, Seg};
use crate::error::{ConfigError, ConfigErrors};
use crate::value::Value;

/// Upper bound on retries that found new errors, so a config with very
/// many mistakes still returns promptly; the first ones will do. Retries
/// that only dropped null fields do not count: each removes a key, so they
/// end on their own.
const MAX_ERROR_ATTEMPTS: usize = 64;

/// Deserializes `value` into `T`, naming every problem by its dotted key
/// path below `path` (e.g. `receivers.otlp`).
///
/// Besides serde's usual rules:
/// - keys a struct does not declare are all reported at once, as
///   `path.key: unknown key "key"; valid keys: a, b, c`;
/// - a null stands for "nothing here": an empty struct or map (all
///   defaults), an empty sequence, `None`, and for any other field the
///   field's `#[serde(default)]` (a required field given null is an error);
/// - integers, floats and booleans are accepted where a string is wanted;
///   numbers written as strings are not accepted where a number is wanted;
/// - unit enum variants are read from strings (`verbosity: detailed`).
///
/// Avoid `#[serde(flatten)]` in config structs: serde then reads the
/// struct as a plain map, so unknown keys cannot be detected.
pub fn from_value<T: DeserializeOwned>(value: &Value, path: &str) -> Result<T, ConfigErrors> {
    let mut current = std::borrow::Cow::Borrowed(value);
    let mut reported: Vec<ConfigError> = Vec::new();
    // Fields removed for retries, and, for nulls, the error to show should
    // the field turn out to be required.
    let mut removed: Vec<(KeyPath, Option<String>)> = Vec::new();
    let mut error_attempts = 0;
    while error_attempts < MAX_ERROR_ATTEMPTS {
        let err = match T::deserialize(ValueDeserializer::new(&current, KeyPath::default())) {
            Ok(typed) if reported.is_empty() => return Ok(typed),
            Ok(_) => break,
            Err(err) => err,
        };
        let (mut progress, mut found_new) = (false, false);
        for entry in err.entries {
            let entry_path = entry.path.clone().unwrap_or_default();
            if entry.null_field && entry.field.as_ref() == Some(&entry_path) {
                // A null field: drop it so its default applies.
                if remove(current.to_mut(), &entry_path) {
                    progress = true;
                    removed.push((entry_path, Some(entry.message)));
                    continue;
                }
            }
            let message = match removed.iter().find(|(at, _)| *at == entry_path) {
                Some((_, Some(null_message))) if entry.missing => null_message.clone(),
                // Missing only because an earlier attempt removed it.
                Some(_) if entry.missing => continue,
                _ => entry.message.clone(),
            };
            let error = ConfigError::new(entry_path.render(path), message);
            if !reported.contains(&error) {
                reported.push(error);
                found_new = true;
            }
            progress |= remove_field(&mut current, &entry, &mut removed);
        }
        if !progress {
            break;
        }
        error_attempts += usize::from(found_new);
    }
    if reported.is_empty() {
        // Not expected to happen; better a vague error than an empty one.
        reported.push(ConfigError::new(path, "could not be read"));
    }
    Err(ConfigErrors(reported))
}

/// Removes the field an error came from so the next attempt gets past it.
fn remove_field(
    current: &mut std::borrow::Cow<'_, Value>,
    entry: &Entry,
    removed: &mut Vec<(KeyPath, Option<String>)>,
) -> bool {
    let Some(field) = &entry.field else {
        return false;
    };
    if removed.iter().any(|(at, _)| at == field) {
        return false;
    }
    removed.push((field.clone(), None));
    remove(current.to_mut(), field)
}

/// Removes the map entry at `path`; false when there is none.
fn remove(root: &mut Value, path: &KeyPath) -> bool {
    let Some((Seg::Key(last), parents)) = path.0.split_last() else {
        return false;
    };
    let mut node = root;
    for seg in parents {
        let next = match (seg, node) {
            (Seg::Key(key), Value::Map(map)) => map.get_mut(key),
            (Seg::Index(i), Value::Seq(items)) => items.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        node = next;
    }
    node.as_map_mut().and_then(|map| map.remove(last)).is_some()
}

/// For `#[serde(default, deserialize_with = "config::some_if_present")]`
/// on an `Option<T>` field: a key that is present, even with nothing after
/// it, gives `Some` (with `T`'s defaults for null); an absent key gives
/// `None`.
///
/// This is otelcol's rule for optional sections such as the OTLP
/// receiver's `protocols: {grpc:}`: writing `grpc:` enables gRPC with
/// default settings. A plain `Option<T>` would read that null as `None`.
pub fn some_if_present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}
