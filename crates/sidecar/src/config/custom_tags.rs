//! Custom span tags: [`CustomTag`], and the two ways users write them — Istio's map
//! (`customTags: {name: {literal|environment|header: …}}` in Telemetry and in
//! `defaultConfig.tracing`) and Envoy's list (`custom_tags: [{tag, literal|environment|
//! request_header: …}]` in an HCM `tracing` block).
//!
//! Semantics (mesh-tracing-spec §1.7, Envoy `custom_tag_impl.cc`): a literal is a fixed string;
//! an environment tag reads the variable once when the proxy starts; a header tag reads the
//! request header's first value. A missing value falls back to the default value, and a tag whose
//! value ends up empty is not set.

use std::collections::BTreeMap;

use ::config::{ConfigError, ConfigErrors, Value};
use serde::Deserialize;

/// One tag the sidecar adds to each span it emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomTag {
    /// The attribute name, e.g. `user.id`.
    pub name: String,
    /// Where the value comes from.
    pub value: TagValue,
}

/// Where a [`CustomTag`]'s value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagValue {
    /// The same value on every span (Istio `literal.value`, Envoy `literal.value`).
    Literal(String),
    /// The first value of a request header (Istio `header`, Envoy `request_header`); `name` is
    /// lowercase.
    RequestHeader {
        /// Header name, lowercase.
        name: String,
        /// Used when the header is absent; `None` means "no tag".
        default_value: Option<String>,
    },
    /// An environment variable of the sidecar process, read once at start-up (Istio and Envoy
    /// `environment`).
    Environment {
        /// Variable name.
        name: String,
        /// Used when the variable is unset; `None` means "no tag".
        default_value: Option<String>,
    },
}

/// `literal: {value: …}` (both forms).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LiteralTag {
    value: String,
}

/// Istio's `environment` / `header`: `{name, defaultValue}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct IstioNamedTag {
    name: String,
    #[serde(default)]
    default_value: Option<String>,
}

/// One value of Istio's `customTags` map: exactly one of the three kinds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IstioCustomTag {
    literal: Option<LiteralTag>,
    environment: Option<IstioNamedTag>,
    header: Option<IstioNamedTag>,
}

/// Envoy's `environment` / `request_header`: `{name, default_value}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvoyNamedTag {
    name: String,
    #[serde(default)]
    default_value: Option<String>,
}

/// One entry of Envoy's `custom_tags` list (`envoy.type.tracing.v3.CustomTag`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvoyCustomTag {
    tag: String,
    literal: Option<LiteralTag>,
    environment: Option<EnvoyNamedTag>,
    request_header: Option<EnvoyNamedTag>,
    /// Accepted only to be refused clearly: metadata tags need Envoy's dynamic metadata.
    metadata: Option<Value>,
    /// Accepted only to be refused clearly: formatter tags need Envoy's access-log formatter.
    value: Option<Value>,
}

/// An empty default is no default, as in Envoy (`default_value` empty → no tag).
fn non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.is_empty())
}

/// Checks a header or variable name and builds its [`TagValue`].
fn named(
    kind: &str,
    name: &str,
    default_value: &Option<String>,
    path: &str,
) -> Result<TagValue, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(format!("{path}.{kind}.name"), "must not be empty"));
    }
    let default_value = non_empty(default_value);
    Ok(match kind {
        "environment" => TagValue::Environment { name: name.to_owned(), default_value },
        _ => TagValue::RequestHeader { name: name.to_ascii_lowercase(), default_value },
    })
}

fn literal(tag: &LiteralTag, path: &str) -> Result<TagValue, ConfigError> {
    if tag.value.is_empty() {
        // Envoy's proto requires a non-empty literal (`min_len: 1`).
        return Err(ConfigError::new(format!("{path}.literal.value"), "must not be empty"));
    }
    Ok(TagValue::Literal(tag.value.clone()))
}

/// "exactly one of …" for a tag that sets none or several kinds.
fn exactly_one(path: &str, kinds: &[&str], set: usize) -> Result<(), ConfigError> {
    match set {
        1 => Ok(()),
        0 => Err(ConfigError::new(
            path,
            format!("missing tag value: expected one of {}", kinds.join(", ")),
        )),
        _ => Err(ConfigError::new(path, format!("expected exactly one of {}", kinds.join(", ")))),
    }
}

impl IstioCustomTag {
    /// The tag called `name`, or why it is invalid; `path` names this map entry.
    fn to_tag(&self, name: &str, path: &str) -> Result<CustomTag, ConfigError> {
        let set = [self.literal.is_some(), self.environment.is_some(), self.header.is_some()];
        exactly_one(
            path,
            &["literal", "environment", "header"],
            set.iter().filter(|s| **s).count(),
        )?;
        let value = if let Some(tag) = &self.literal {
            literal(tag, path)?
        } else if let Some(env) = &self.environment {
            named("environment", &env.name, &env.default_value, path)?
        } else if let Some(header) = &self.header {
            named("header", &header.name, &header.default_value, path)?
        } else {
            return Err(ConfigError::new(path, "missing tag value"));
        };
        Ok(CustomTag { name: name.to_owned(), value })
    }
}

/// Istio's `customTags` map (at `path`) as tags sorted by name, as Istio sorts them before
/// handing them to Envoy (`configureCustomTags`, mesh-tracing-spec §2.4).
pub(crate) fn istio_tags(
    tags: &BTreeMap<String, IstioCustomTag>,
    path: &str,
    errors: &mut ConfigErrors,
) -> Vec<CustomTag> {
    let mut out = Vec::new();
    for (name, tag) in tags {
        let entry_path = format!("{path}.{name}");
        if name.is_empty() {
            errors.push(ConfigError::new(path, "tag names must not be empty"));
            continue;
        }
        match tag.to_tag(name, &entry_path) {
            Ok(tag) => out.push(tag),
            Err(error) => errors.push(error),
        }
    }
    out
}

impl EnvoyCustomTag {
    fn to_tag(&self, path: &str) -> Result<CustomTag, ConfigError> {
        if self.tag.is_empty() {
            return Err(ConfigError::new(format!("{path}.tag"), "must not be empty"));
        }
        if self.metadata.is_some() {
            return Err(ConfigError::new(
                format!("{path}.metadata"),
                "metadata tags are not supported: the sidecar has no Envoy metadata; \
                 use literal, environment or request_header",
            ));
        }
        if self.value.is_some() {
            return Err(ConfigError::new(
                format!("{path}.value"),
                "formatter tags are not supported; use literal, environment or request_header",
            ));
        }
        let set =
            [self.literal.is_some(), self.environment.is_some(), self.request_header.is_some()];
        let kinds = ["literal", "environment", "request_header"];
        exactly_one(path, &kinds, set.iter().filter(|s| **s).count())?;
        let value = if let Some(tag) = &self.literal {
            literal(tag, path)?
        } else if let Some(env) = &self.environment {
            named("environment", &env.name, &env.default_value, path)?
        } else if let Some(header) = &self.request_header {
            named("request_header", &header.name, &header.default_value, path)?
        } else {
            return Err(ConfigError::new(path, "missing tag value"));
        };
        Ok(CustomTag { name: self.tag.clone(), value })
    }
}

/// Envoy's `custom_tags` list (at `path`), in the order written.
pub(crate) fn envoy_tags(
    tags: &[EnvoyCustomTag],
    path: &str,
    errors: &mut ConfigErrors,
) -> Vec<CustomTag> {
    let mut out = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        match tag.to_tag(&format!("{path}[{i}]")) {
            Ok(tag) => out.push(tag),
            Err(error) => errors.push(error),
        }
    }
    out
}

/// Adds `extra` to `tags`: a tag of the same name is replaced, the rest are appended; the result
/// is sorted by name.
pub(crate) fn overlay(tags: &mut Vec<CustomTag>, extra: &[CustomTag]) {
    for tag in extra {
        match tags.iter_mut().find(|existing| existing.name == tag.name) {
            Some(existing) => *existing = tag.clone(),
            None => tags.push(tag.clone()),
        }
    }
    tags.sort_by(|a, b| a.name.cmp(&b.name));
}
