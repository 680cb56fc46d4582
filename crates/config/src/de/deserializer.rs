//! A `serde::Deserializer` over a borrowed [`Value`] that knows its key path.

use serde::de::{self, Unexpected, Visitor};

use super::access::{EnumAccess, MapAccess, SeqAccess, StructAccess};
use super::error::{DeError, KeyPath, unknown_key_message};
use crate::value::{Map, Value, float_text};

/// Deserializes one node; children get deserializers with longer paths.
pub(crate) struct ValueDeserializer<'de> {
    pub(crate) value: &'de Value,
    pub(crate) path: KeyPath,
}

impl<'de> ValueDeserializer<'de> {
    pub(crate) fn new(value: &'de Value, path: KeyPath) -> Self {
        ValueDeserializer { value, path }
    }

    /// `invalid type: <what we have>, expected <what the visitor wants>`.
    fn invalid_type(&self, expected: &dyn de::Expected) -> DeError {
        de::Error::invalid_type(unexpected(self.value), expected)
    }

    /// Runs a visitor and places its path-less errors here.
    fn place<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        result.map_err(|err| err.at(&self.path))
    }
}

/// How serde's messages should name a value.
pub(crate) fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Int(i) => Unexpected::Signed(*i),
        Value::Float(f) => Unexpected::Float(*f),
        Value::String(s) => Unexpected::Str(s),
        Value::Seq(_) => Unexpected::Seq,
        Value::Map(_) => Unexpected::Map,
    }
}

/// What a null stands for when a container is requested: nothing, so all
/// defaults (otelcol's `grpc:` with nothing after it).
static EMPTY_MAP: Map = Map::const_new();

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqAccess::new(items, &self.path)),
            Value::Map(map) => visitor.visit_map(MapAccess::new(map, &self.path)),
        };
        self.place(result)
    }

    /// Scalars become text when text is wanted (a header value written as
    /// a number), as otelcol's weakly typed decoding does; the reverse (a
    /// string holding a number) is deliberately not accepted.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.value {
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Bool(b) => visitor.visit_string(b.to_string()),
            Value::Int(i) => visitor.visit_string(i.to_string()),
            Value::Float(f) => visitor.visit_string(float_text(*f)),
            Value::Null | Value::Seq(_) | Value::Map(_) => Err(self.invalid_type(&visitor)),
        };
        self.place(result)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(ValueDeserializer::new(self.value, self.path.clone())),
        };
        self.place(result)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result =
            visitor.visit_newtype_struct(ValueDeserializer::new(self.value, self.path.clone()));
        self.place(result)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.value {
            Value::Seq(items) => visitor.visit_seq(SeqAccess::new(items, &self.path)),
            Value::Null => visitor.visit_seq(SeqAccess::new(&[], &self.path)),
            _ => Err(self.invalid_type(&visitor)),
        };
        self.place(result)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.value {
            Value::Map(map) => visitor.visit_map(MapAccess::new(map, &self.path)),
            Value::Null => visitor.visit_map(MapAccess::new(&EMPTY_MAP, &self.path)),
            _ => Err(self.invalid_type(&visitor)),
        };
        self.place(result)
    }

    /// Checks every key against `fields` before visiting, so that all
    /// unknown keys are reported at once rather than the first one only.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let map = match self.value {
            Value::Map(map) => map,
            Value::Null => &EMPTY_MAP,
            _ => return Err(self.invalid_type(&"a map")),
        };
        let mut unknown = Vec::new();
        for key in map.keys().filter(|key| !fields.contains(key)) {
            let path = self.path.key(key);
            let mut err = DeError::at_path(&path, unknown_key_message(key, fields));
            // Removing just the unknown key lets a retry check its siblings.
            err = err.in_field(&path, false);
            unknown.extend(err.entries);
        }
        let result = self.place(visitor.visit_map(StructAccess::new(map, fields, &self.path)));
        match result {
            Ok(value) if unknown.is_empty() => Ok(value),
            Ok(_) => Err(DeError { entries: unknown }),
            Err(err) => {
                unknown.extend(err.entries);
                Err(DeError { entries: unknown })
            }
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match self.value {
            Value::String(name) => visitor.visit_enum(EnumAccess::unit(name, &self.path)),
            Value::Map(map) if map.len() == 1 => match map.iter().next() {
                Some((name, inner)) => {
                    visitor.visit_enum(EnumAccess::with_value(name, inner, self.path.key(name)))
                }
                None => Err(self.invalid_type(&visitor)),
            },
            _ => Err(self.invalid_type(&visitor)),
        };
        self.place(result)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct
    }
}
