//! Deserializing a [`Node`] the way `toml::de::ValueDeserializer` deserializes the toml
//! crate's tree, so that a schema type comes out the same: strings, integers (`i64`),
//! booleans, arrays and tables are visited alike, options are always `Some`, and `Spanned`
//! gets the same spans. Errors carry no position: any error sends the validator to the toml
//! crate, which reports it.

use super::{Entry, Node, Value};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde_spanned::de::{is_spanned, SpannedDeserializer};
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// Why a value did not deserialize (never shown: the toml crate says it again, with a span).
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// `T` from a value.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &Node<'de>) -> Result<T, Error> {
    T::deserialize(ValueDe(node))
}

/// `T` from the entries of a table spanning `span`.
pub fn from_table<'de, T: de::Deserialize<'de>>(
    entries: &[Entry<'de>],
    span: Range<usize>,
) -> Result<T, Error> {
    T::deserialize(TableDe { entries, span })
}

/// A value, borrowed from the tree: nothing is cloned but the strings a schema keeps.
#[derive(Clone, Copy)]
struct ValueDe<'a, 'de>(&'a Node<'de>);

fn visit_str<'de, V: Visitor<'de>>(s: &Cow<'de, str>, visitor: V) -> Result<V::Value, Error> {
    match s {
        Cow::Borrowed(s) => visitor.visit_borrowed_str(s),
        Cow::Owned(s) => visitor.visit_str(s),
    }
}

impl<'a, 'de> de::Deserializer<'de> for ValueDe<'a, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.value {
            Value::Str(s) => visit_str(s, visitor),
            Value::Int(n) => visitor.visit_i64(*n),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Array(items) => {
                de::value::SeqDeserializer::new(items.iter().map(ValueDe)).deserialize_any(visitor)
            }
            Value::Table(entries) => visitor.visit_map(TableAccess::new(entries)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if is_spanned(name) {
            return visitor.visit_map(SpannedDeserializer::new(self, self.0.span.clone()));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.0.value {
            Value::Str(s) => visitor.visit_enum(s.clone().into_deserializer()),
            // An enum written as a table: left to the toml crate.
            _ => Err(de::Error::custom("enum not written as a string")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 u128 i8 i16 i32 i64 i128 f32 f64 char str string seq
        bytes byte_buf map unit ignored_any unit_struct tuple_struct tuple identifier
    }
}

impl<'a, 'de> IntoDeserializer<'de, Error> for ValueDe<'a, 'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// The entries of a table (a header's keys, or an inline table), as a map.
struct TableDe<'a, 'de> {
    entries: &'a [Entry<'de>],
    span: Range<usize>,
}

impl<'a, 'de> de::Deserializer<'de> for TableDe<'a, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(TableAccess::new(self.entries))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if is_spanned(name) {
            let span = self.span.clone();
            return visitor.visit_map(SpannedDeserializer::new(self, span));
        }
        self.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 u128 i8 i16 i32 i64 i128 f32 f64 char str string seq
        bytes byte_buf map unit ignored_any unit_struct tuple_struct tuple identifier enum
    }
}

impl<'a, 'de> IntoDeserializer<'de, Error> for TableDe<'a, 'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// Walks a table's entries for a map visitor.
struct TableAccess<'a, 'de> {
    entries: std::slice::Iter<'a, Entry<'de>>,
    value: Option<&'a Node<'de>>,
}

impl<'a, 'de> TableAccess<'a, 'de> {
    fn new(entries: &'a [Entry<'de>]) -> Self {
        TableAccess {
            entries: entries.iter(),
            value: None,
        }
    }
}

impl<'a, 'de> de::MapAccess<'de> for TableAccess<'a, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(&entry.value);
        seed.deserialize(KeyDe(entry)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value without its key"))?;
        seed.deserialize(ValueDe(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A table's key, as the toml crate's key deserializer gives it: a string, or a `Spanned`
/// string with the key's span.
#[derive(Clone, Copy)]
struct KeyDe<'a, 'de>(&'a Entry<'de>);

impl<'a, 'de> de::Deserializer<'de> for KeyDe<'a, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.key {
            Cow::Borrowed(s) => visitor.visit_str(s),
            Cow::Owned(s) => visitor.visit_str(s),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visit_str(&self.0.key, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if is_spanned(name) {
            let span = self.0.key_span.clone();
            return visitor.visit_map(SpannedDeserializer::new(self, span));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(de::Error::custom("enum keys are left to the toml crate"))
    }

    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 u128 i8 i16 i32 i64 i128 f32 f64 char string seq
        bytes byte_buf map option unit ignored_any unit_struct tuple_struct tuple identifier
    }
}

impl<'a, 'de> IntoDeserializer<'de, Error> for KeyDe<'a, 'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}
