//! [`Value`], the untyped configuration tree, and its ordered [`Map`].
//!
//! Files are parsed into this tree first so that expansion, merging and
//! `--set` can work without knowing any component's types; each component
//! then turns its own subtree into its typed config with
//! [`from_value`](crate::from_value).

use std::fmt;

/// A YAML node after parsing.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing at all (`grpc:`); means "use the defaults".
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// Any string scalar.
    String(String),
    /// A sequence (`[a, b]` or `- a` lines).
    Seq(Vec<Value>),
    /// A mapping, in the order written.
    Map(Map),
}

impl Value {
    /// The value under `key` when this is a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?.get(key)
    }

    /// Mutable access to the value under `key` when this is a map.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.as_map_mut()?.get_mut(key)
    }

    /// Follows `keys` through nested maps, e.g. `&["receivers", "otlp"]`.
    ///
    /// Takes separate keys rather than a dotted string because keys may
    /// themselves contain dots (attribute names such as `service.name`).
    pub fn get_path(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The map, when this is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(map) => Some(map),
            _ => None,
        }
    }

    /// The map, mutably, when this is one.
    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Map(map) => Some(map),
            _ => None,
        }
    }

    /// The elements, when this is a sequence.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The text, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The boolean, when this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, when this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as a float, when this is an integer or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether this is a map.
    pub fn is_map(&self) -> bool {
        matches!(self, Value::Map(_))
    }

    /// The kind of node, as error messages name it ("map", "string", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Seq(_) => "sequence",
            Value::Map(_) => "map",
        }
    }

    /// The scalar's text as a string field would receive it (`4317`,
    /// `true`, `1.5`); `None` for null, sequences and maps.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(float_text(*f)),
            Value::String(s) => Some(s.clone()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// Formats a float so that it reads back as a float (`3.0`, not `3`).
pub(crate) fn float_text(f: f64) -> String {
    if f.is_nan() {
        return ".nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    let text = f.to_string();
    if text.contains(['.', 'e']) { text } else { format!("{text}.0") }
}

impl fmt::Display for Value {
    /// A short description for error messages: scalars as written,
    /// containers by kind.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write!(f, "{s:?}"),
            Value::Null | Value::Seq(_) | Value::Map(_) => f.write_str(self.kind()),
            other => f.write_str(&other.scalar_text().unwrap_or_default()),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::Seq(items)
    }
}

impl From<Map> for Value {
    fn from(map: Map) -> Self {
        Value::Map(map)
    }
}

/// A mapping with string keys that keeps the order keys were written in.
///
/// A plain vector: configs are small, and order matters for readable
/// output and for reporting errors in document order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    entries: Vec<(String, Value)>,
}

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Map::default()
    }

    /// An empty map usable in `static`s.
    pub(crate) const fn const_new() -> Self {
        Map { entries: Vec::new() }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value under `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether `key` is present (even with a null value).
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`, keeping its position when it already exists; returns the
    /// previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        let key = key.into();
        match self.get_mut(&key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Entries in order, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.entries.iter_mut().map(|(k, v)| (k.as_str(), v))
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut map = Map::new();
        for (key, value) in iter {
            map.insert(key, value);
        }
        map
    }
}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_order_and_replaces_in_place() {
        let mut map = Map::new();
        map.insert("b", Value::Int(1));
        map.insert("a", Value::Int(2));
        assert_eq!(map.insert("b", Value::Int(3)), Some(Value::Int(1)));
        assert_eq!(map.keys().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(map.remove("b"), Some(Value::Int(3)));
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn path_lookup_and_accessors() {
        let inner: Map = [("port".to_owned(), Value::Int(13133))].into_iter().collect();
        let root: Map = [("hc".to_owned(), Value::Map(inner))].into_iter().collect();
        let root = Value::Map(root);
        assert_eq!(root.get_path(&["hc", "port"]), Some(&Value::Int(13133)));
        assert_eq!(root.get_path(&["hc", "nope"]), None);
        assert_eq!(Value::from("x").as_str(), Some("x"));
        assert_eq!(Value::Int(2).as_f64(), Some(2.0));
        assert!(Value::Null.is_null());
    }

    #[test]
    fn scalar_text_reads_back_as_the_same_kind() {
        assert_eq!(Value::Float(3.0).scalar_text().as_deref(), Some("3.0"));
        assert_eq!(Value::Float(1.5).scalar_text().as_deref(), Some("1.5"));
        assert_eq!(Value::Int(-7).scalar_text().as_deref(), Some("-7"));
        assert_eq!(Value::Null.scalar_text(), None);
        assert_eq!(Value::from("a").to_string(), "\"a\"");
        assert_eq!(Value::Seq(vec![]).to_string(), "sequence");
    }
}
