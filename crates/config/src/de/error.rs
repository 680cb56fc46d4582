//! The deserializer's internal error: a list of entries that learn their
//! key path as they travel back up the tree.
//!
//! serde creates errors (`invalid_type`, `missing_field`, ...) inside
//! visitors that know nothing about where they are; the deserializer that
//! called the visitor attaches its own path to every entry that has none.

use std::fmt::{self, Display};

use serde::de::{Expected, Unexpected};

use crate::parse::lowercase_first;
use crate::value::float_text;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A key path relative to the value being deserialized. Kept as segments
/// (not a dotted string) because keys may contain dots and because the
/// retry loop uses paths to remove values from the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub(crate) Vec<Seg>);

impl KeyPath {
    pub(crate) fn key(&self, key: &str) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        KeyPath(segs)
    }

    pub(crate) fn index(&self, index: usize) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    /// The dotted form, after `prefix` (e.g. `receivers.otlp`).
    pub(crate) fn render(&self, prefix: &str) -> String {
        let mut out = prefix.to_owned();
        for seg in &self.0 {
            match seg {
                Seg::Key(key) if out.is_empty() => out.push_str(key),
                Seg::Key(key) => {
                    out.push('.');
                    out.push_str(key);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// One problem found while deserializing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// Where it happened; `None` until a deserializer attaches its path.
    pub(crate) path: Option<KeyPath>,
    pub(crate) message: String,
    /// A key below the attached path that the message is about (a missing
    /// or unknown struct field).
    pub(crate) child: Option<String>,
    /// serde reported a required field as missing.
    pub(crate) missing: bool,
    /// The innermost struct field holding the problem; the retry loop in
    /// `from_value` removes it to look for errors elsewhere.
    pub(crate) field: Option<KeyPath>,
    /// That field's value was null, so removing it means "use the default"
    /// rather than hiding an error.
    pub(crate) null_field: bool,
}

impl Entry {
    pub(crate) fn new(path: Option<KeyPath>, message: String) -> Self {
        Entry { path, message, child: None, missing: false, field: None, null_field: false }
    }
}

/// The `serde::de::Error` of [`ValueDeserializer`](super::deserializer::ValueDeserializer).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeError {
    pub(crate) entries: Vec<Entry>,
}

impl DeError {
    pub(crate) fn at_path(path: &KeyPath, message: String) -> Self {
        DeError { entries: vec![Entry::new(Some(path.clone()), message)] }
    }

    fn unplaced(message: String) -> Self {
        DeError { entries: vec![Entry::new(None, message)] }
    }

    fn about_child(child: &str, message: String, missing: bool) -> Self {
        let mut entry = Entry::new(None, message);
        entry.child = Some(child.to_owned());
        entry.missing = missing;
        DeError { entries: vec![entry] }
    }

    /// Gives every entry that has no path yet the path `path`.
    pub(crate) fn at(mut self, path: &KeyPath) -> Self {
        for entry in &mut self.entries {
            if entry.path.is_none() {
                entry.path = Some(match entry.child.take() {
                    Some(child) => path.key(&child),
                    None => path.clone(),
                });
            }
        }
        self
    }

    /// Records that these entries came from the struct field at `field`.
    pub(crate) fn in_field(mut self, field: &KeyPath, value_is_null: bool) -> Self {
        for entry in &mut self.entries {
            if entry.field.is_none() {
                entry.field = Some(field.clone());
                entry.null_field = value_is_null;
            }
        }
        self
    }
}

impl Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let path = entry.path.as_ref().map(|p| p.render("")).unwrap_or_default();
            if path.is_empty() {
                f.write_str(&entry.message)?;
            } else {
                write!(f, "{path}: {}", entry.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for DeError {}

impl serde::de::Error for DeError {
    fn custom<T: Display>(msg: T) -> Self {
        DeError::unplaced(lowercase_first(&msg.to_string()))
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        DeError::unplaced(format!("invalid type: {}, expected {exp}", describe(&unexp)))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        DeError::unplaced(format!("invalid value: {}, expected {exp}", describe(&unexp)))
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        DeError::unplaced(format!("invalid length {len}, expected {exp}"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::unplaced(format!(
            "invalid value {variant:?}, expected one of {}",
            expected.join(", ")
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::about_child(field, unknown_key_message(field, expected), false)
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::about_child(field, "missing required key".to_owned(), true)
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError::about_child(field, "key given more than once".to_owned(), false)
    }
}

/// `unknown key "x"; valid keys: a, b`.
pub(crate) fn unknown_key_message(key: &str, valid: &[&str]) -> String {
    if valid.is_empty() {
        format!("unknown key {key:?}; this section takes no keys")
    } else {
        format!("unknown key {key:?}; valid keys: {}", valid.join(", "))
    }
}

/// Names a value the way our messages do: `string "x"`, `integer 5`, `null`.
pub(crate) fn describe(unexp: &Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Bool(b) => format!("boolean {b}"),
        Unexpected::Unsigned(u) => format!("integer {u}"),
        Unexpected::Signed(i) => format!("integer {i}"),
        Unexpected::Float(f) => format!("float {}", float_text(*f)),
        Unexpected::Char(c) => format!("character {c:?}"),
        Unexpected::Str(s) => format!("string {s:?}"),
        Unexpected::Bytes(_) => "bytes".to_owned(),
        Unexpected::Unit => "null".to_owned(),
        Unexpected::Option => "optional value".to_owned(),
        Unexpected::NewtypeStruct => "newtype struct".to_owned(),
        Unexpected::Seq => "sequence".to_owned(),
        Unexpected::Map => "map".to_owned(),
        Unexpected::Enum => "enum".to_owned(),
        Unexpected::UnitVariant => "unit variant".to_owned(),
        Unexpected::NewtypeVariant => "newtype variant".to_owned(),
        Unexpected::TupleVariant => "tuple variant".to_owned(),
        Unexpected::StructVariant => "struct variant".to_owned(),
        Unexpected::Other(other) => (*other).to_owned(),
    }
}
