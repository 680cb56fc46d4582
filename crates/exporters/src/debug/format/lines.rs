//! The line builders: headers of resources and scopes, `key=value` lists for `normal`, and
//! [`Lines`], the field-by-field text of `detailed`.

use std::fmt::{Display, Write};

use otlp::proto::common::v1::{InstrumentationScope, KeyValue};
use otlp::proto::resource::v1::Resource;

use super::values::{as_string, typed_or_empty};

/// `normal`'s resource line: `ResourceTraces #0 [schema] key=value ...`.
pub(super) fn resource_line(
    out: &mut String,
    label: &str,
    index: usize,
    resource: Option<&Resource>,
    schema: &str,
) {
    let _ = write!(out, "{label} #{index}");
    if !schema.is_empty() {
        let _ = write!(out, " [{schema}]");
    }
    if let Some(resource) = resource {
        attributes_inline(out, &resource.attributes, " ");
    }
    out.push('\n');
}

/// `normal`'s scope line: `ScopeTraces #0 name@version [schema] key=value ...`.
pub(super) fn scope_line(
    out: &mut String,
    label: &str,
    index: usize,
    scope: Option<&InstrumentationScope>,
    schema: &str,
) {
    let _ = write!(out, "{label} #{index}");
    if let Some(scope) = scope {
        let _ = write!(out, " {}", scope.name);
        if !scope.version.is_empty() {
            let _ = write!(out, "@{}", scope.version);
        }
    }
    if !schema.is_empty() {
        let _ = write!(out, " [{schema}]");
    }
    if let Some(scope) = scope {
        attributes_inline(out, &scope.attributes, " ");
    }
    out.push('\n');
}

/// Appends ` key=value key=value` (joined by `separator`), nothing when there are none.
pub(super) fn attributes_inline(out: &mut String, attributes: &[KeyValue], separator: &str) {
    if attributes.is_empty() {
        return;
    }
    out.push(' ');
    out.push_str(&key_equals_values(attributes).join(separator));
}

/// `key=value` for each attribute, the value as plain text.
pub(super) fn key_equals_values(attributes: &[KeyValue]) -> Vec<String> {
    attributes
        .iter()
        .map(|attribute| {
            let value = attribute.value.as_ref().map(as_string).unwrap_or_default();
            format!("{}={value}", attribute.key)
        })
        .collect()
}

/// A text built line by line, each ending in a newline.
#[derive(Default)]
pub(super) struct Lines(String);

impl Lines {
    pub(super) fn into_text(self) -> String {
        self.0
    }

    pub(super) fn line(&mut self, line: String) {
        self.0.push_str(&line);
        self.0.push('\n');
    }

    /// `Name: value`.
    pub(super) fn entry(&mut self, name: &str, value: impl Display) {
        self.line(format!("{name}: {value}"));
    }

    /// `     -> Name: value`: a field of the item above.
    pub(super) fn arrow(&mut self, name: &str, value: impl Display) {
        self.line(format!("     -> {name}: {value}"));
    }

    /// `    Trace ID       : ...`: the collector pads field names to 15 columns.
    pub(super) fn field(&mut self, name: &str, value: &str) {
        self.line(format!("    {name:<15}: {value}"));
    }

    pub(super) fn resource(&mut self, resource: Option<&Resource>, schema: &str) {
        self.entry("Resource SchemaURL", schema);
        if let Some(resource) = resource {
            self.attributes("Resource attributes", &resource.attributes);
        }
    }

    pub(super) fn scope(&mut self, scope: Option<&InstrumentationScope>) {
        let (name, version) =
            scope.map_or(("", ""), |scope| (scope.name.as_str(), scope.version.as_str()));
        self.line(format!("InstrumentationScope {name} {version}"));
        if let Some(scope) = scope {
            self.attributes("InstrumentationScope attributes", &scope.attributes);
        }
    }

    /// `Attributes:` then `     -> key: Str(value)` lines; nothing when there are none.
    pub(super) fn attributes(&mut self, header: &str, attributes: &[KeyValue]) {
        if attributes.is_empty() {
            return;
        }
        self.line(format!("{header}:"));
        for attribute in attributes {
            self.arrow(&attribute.key, typed_or_empty(attribute.value.as_ref()));
        }
    }

    /// The attributes of an event or link, one level deeper.
    pub(super) fn nested_attributes(&mut self, attributes: &[KeyValue]) {
        if attributes.is_empty() {
            return;
        }
        self.line("     -> Attributes::".to_string());
        for attribute in attributes {
            self.line(format!(
                "         -> {}: {}",
                attribute.key,
                typed_or_empty(attribute.value.as_ref())
            ));
        }
    }

    /// `Events:` then `SpanEvent #0` and what `fields` writes, for each of `items`; nothing
    /// when there are none.
    pub(super) fn list<T>(
        &mut self,
        header: &str,
        name: &str,
        items: &[T],
        mut fields: impl FnMut(&mut Lines, &T),
    ) {
        if items.is_empty() {
            return;
        }
        self.line(format!("{header}:"));
        for (i, item) in items.iter().enumerate() {
            self.line(format!("{name} #{i}"));
            fields(self, item);
        }
    }
}
