//! serde's access traits over sequences, maps, structs and enums in a
//! [`Value`], each handing out child deserializers with the child's path.

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Visitor};

use super::deserializer::ValueDeserializer;
use super::error::{DeError, KeyPath};
use crate::value::{Map, Value};

/// Elements of a sequence, with paths `key[0]`, `key[1]`, ...
pub(crate) struct SeqAccess<'de> {
    items: std::iter::Enumerate<std::slice::Iter<'de, Value>>,
    path: KeyPath,
}

impl<'de> SeqAccess<'de> {
    pub(crate) fn new(items: &'de [Value], path: &KeyPath) -> Self {
        SeqAccess { items: items.iter().enumerate(), path: path.clone() }
    }
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, item)) => {
                let path = self.path.index(i);
                let result = seed.deserialize(ValueDeserializer::new(item, path.clone()));
                result.map(Some).map_err(|err| err.at(&path))
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// Entries of a map deserialized as a map (`HashMap<String, _>`, `Value`).
pub(crate) struct MapAccess<'de> {
    entries: Box<dyn Iterator<Item = (&'de str, &'de Value)> + 'de>,
    pending: Option<(&'de str, &'de Value)>,
    path: KeyPath,
    len: usize,
}

impl<'de> MapAccess<'de> {
    pub(crate) fn new(map: &'de Map, path: &KeyPath) -> Self {
        MapAccess {
            entries: Box::new(map.iter()),
            pending: None,
            path: path.clone(),
            len: map.len(),
        }
    }

    /// A struct's entries, minus keys it does not declare: those were
    /// already reported, and skipping them lets the known fields be checked
    /// too even under `deny_unknown_fields`.
    fn filtered(map: &'de Map, fields: &'static [&'static str], path: &KeyPath) -> Self {
        MapAccess {
            entries: Box::new(map.iter().filter(move |(key, _)| fields.contains(key))),
            pending: None,
            path: path.clone(),
            len: map.keys().filter(|key| fields.contains(key)).count(),
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((key, value));
        self.len = self.len.saturating_sub(1);
        let key_de: BorrowedStrDeserializer<'de, DeError> = BorrowedStrDeserializer::new(key);
        let path = self.path.key(key);
        seed.deserialize(key_de).map(Some).map_err(|err| err.at(&path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("map value requested before its key"));
        };
        let path = self.path.key(key);
        seed.deserialize(ValueDeserializer::new(value, path.clone())).map_err(|err| err.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

/// A struct's fields: like [`MapAccess`] over the declared keys only, and
/// remembering which field each error came from (see `from_value`).
pub(crate) struct StructAccess<'de> {
    inner: MapAccess<'de>,
}

impl<'de> StructAccess<'de> {
    pub(crate) fn new(map: &'de Map, fields: &'static [&'static str], path: &KeyPath) -> Self {
        StructAccess { inner: MapAccess::filtered(map, fields, path) }
    }
}

impl<'de> de::MapAccess<'de> for StructAccess<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, value)) = self.inner.pending else {
            return Err(de::Error::custom("map value requested before its key"));
        };
        let path = self.inner.path.key(key);
        self.inner.next_value_seed(seed).map_err(|err| err.in_field(&path, value.is_null()))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// An enum written as a bare string (`detailed`) or as a map with one key
/// (`{name: value}`, serde's externally tagged form).
pub(crate) struct EnumAccess<'de> {
    name: &'de str,
    value: Option<&'de Value>,
    path: KeyPath,
}

impl<'de> EnumAccess<'de> {
    pub(crate) fn unit(name: &'de str, path: &KeyPath) -> Self {
        EnumAccess { name, value: None, path: path.clone() }
    }

    pub(crate) fn with_value(name: &'de str, value: &'de Value, path: KeyPath) -> Self {
        EnumAccess { name, value: Some(value), path }
    }
}

impl<'de> de::EnumAccess<'de> for EnumAccess<'de> {
    type Error = DeError;
    type Variant = VariantAccess<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantAccess<'de>), DeError> {
        let name_de: BorrowedStrDeserializer<'de, DeError> =
            BorrowedStrDeserializer::new(self.name);
        let variant = seed.deserialize(name_de)?;
        Ok((variant, VariantAccess { value: self.value, path: self.path }))
    }
}

/// The data of one enum variant.
pub(crate) struct VariantAccess<'de> {
    value: Option<&'de Value>,
    path: KeyPath,
}

impl<'de> VariantAccess<'de> {
    fn data(&self, wanted: &str) -> Result<ValueDeserializer<'de>, DeError> {
        match self.value {
            Some(value) => Ok(ValueDeserializer::new(value, self.path.clone())),
            None => Err(DeError::at_path(
                &self.path,
                format!("missing value for this variant, expected {wanted}"),
            )),
        }
    }
}

impl<'de> de::VariantAccess<'de> for VariantAccess<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            None | Some(Value::Null) => Ok(()),
            Some(other) => Err(DeError::at_path(
                &self.path,
                format!("invalid type: {}, expected nothing (null)", other.kind()),
            )),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self.data("a map with one key naming the variant")?)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_tuple(self.data("a sequence")?, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self.data("a map")?, "", fields, visitor)
    }
}
