//! A serde `Deserializer` over the node tree that puts a file position on every error.
//!
//! Errors raised while reading a key point at the key, errors in a value point at the value,
//! and errors about a whole mapping (a missing field) point at the mapping. Unknown fields
//! of a struct are recorded and skipped rather than aborting, so one pass reports all of them.

use std::cell::RefCell;

use serde::de::{
    self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Unexpected, Visitor,
};

use super::node::{Node, Style, Value};
use super::{Error, SPAN_FIELD, SPANNED_NAME, VALUE_FIELD};
use crate::suggest;

/// Errors that did not stop deserialization (unknown fields), in the order found.
#[derive(Debug, Default)]
pub struct Recorded(RefCell<Vec<Error>>);

impl Recorded {
    fn push(&self, error: Error) {
        self.0.borrow_mut().push(error);
    }

    /// The recorded errors.
    pub fn into_inner(self) -> Vec<Error> {
        self.0.into_inner()
    }
}

/// Deserializes one node.
#[derive(Debug, Clone, Copy)]
pub struct NodeDeserializer<'a> {
    node: &'a Node,
    recorded: &'a Recorded,
}

impl<'a> NodeDeserializer<'a> {
    /// A deserializer for `node` that records recoverable errors in `recorded`.
    pub fn new(node: &'a Node, recorded: &'a Recorded) -> Self {
        Self { node, recorded }
    }

    fn scalar(&self) -> Result<&'a str, Error> {
        match &self.node.value {
            Value::Scalar(s) if !self.node.is_null() => Ok(s),
            _ => Err(self.invalid("a string")),
        }
    }

    fn invalid(&self, expected: &str) -> Error {
        Error::new(format!("expected {expected}, found {}", self.found()))
            .at(self.node.span.location())
    }

    fn found(&self) -> String {
        match &self.node.value {
            Value::Scalar(s) if !self.node.is_null() => format!("`{s}`"),
            _ => self.node.describe().to_string(),
        }
    }

    fn located<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        result.map_err(|e| e.or_at(self.node.span.location()))
    }

    fn is_plain(&self) -> bool {
        self.node.span.style == Style::Plain
    }
}

macro_rules! deserialize_number {
    ($method:ident, $visit:ident, $ty:ty, $what:literal) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let text = self.scalar().map_err(|_| self.invalid($what))?;
            let value: $ty = text
                .trim()
                .replace('_', "")
                .parse()
                .map_err(|_| self.invalid($what))?;
            self.located(visitor.$visit(value))
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match &self.node.value {
            _ if self.node.is_null() => visitor.visit_unit(),
            Value::Scalar(s) if self.is_plain() => match s.as_str() {
                "true" | "True" | "TRUE" => visitor.visit_bool(true),
                "false" | "False" | "FALSE" => visitor.visit_bool(false),
                _ => {
                    if let Ok(i) = s.parse::<i64>() {
                        visitor.visit_i64(i)
                    } else if let Ok(f) = s.parse::<f64>()
                        && s.chars().any(|c| c.is_ascii_digit())
                    {
                        visitor.visit_f64(f)
                    } else {
                        visitor.visit_str(s)
                    }
                }
            },
            Value::Scalar(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(Seq::new(items, self.recorded)),
            Value::Map(entries) => visitor.visit_map(Map::new(entries, None, self.recorded)),
        };
        self.located(result)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.scalar() {
            Ok("true" | "True" | "TRUE") if self.is_plain() => {
                self.located(visitor.visit_bool(true))
            }
            Ok("false" | "False" | "FALSE") if self.is_plain() => {
                self.located(visitor.visit_bool(false))
            }
            _ => Err(self.invalid("`true` or `false`")),
        }
    }

    deserialize_number!(deserialize_i8, visit_i8, i8, "a whole number");
    deserialize_number!(deserialize_i16, visit_i16, i16, "a whole number");
    deserialize_number!(deserialize_i32, visit_i32, i32, "a whole number");
    deserialize_number!(deserialize_i64, visit_i64, i64, "a whole number");
    deserialize_number!(deserialize_u8, visit_u8, u8, "a whole number from 0 to 255");
    deserialize_number!(
        deserialize_u16,
        visit_u16,
        u16,
        "a whole number from 0 to 65535"
    );
    deserialize_number!(deserialize_u32, visit_u32, u32, "a positive whole number");
    deserialize_number!(deserialize_u64, visit_u64, u64, "a positive whole number");
    deserialize_number!(deserialize_f32, visit_f32, f32, "a number");
    deserialize_number!(deserialize_f64, visit_f64, f64, "a number");

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let text = self.scalar()?;
        self.located(visitor.visit_str(text))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            self.located(visitor.visit_none())
        } else {
            self.located(visitor.visit_some(self))
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            self.located(visitor.visit_unit())
        } else {
            Err(self.invalid("nothing"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.located(visitor.visit_newtype_struct(self))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Seq(items) => self.located(visitor.visit_seq(Seq::new(items, self.recorded))),
            _ => Err(self.invalid("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Map(entries) => {
                self.located(visitor.visit_map(Map::new(entries, None, self.recorded)))
            }
            _ if self.node.is_null() => {
                self.located(visitor.visit_map(Map::new(&[], None, self.recorded)))
            }
            _ => Err(self.invalid("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED_NAME {
            return visitor.visit_map(SpannedAccess { de: self, step: 0 });
        }
        match &self.node.value {
            Value::Map(entries) => {
                let struct_fields = StructFields { name, fields };
                self.located(visitor.visit_map(Map::new(
                    entries,
                    Some(struct_fields),
                    self.recorded,
                )))
            }
            _ if self.node.is_null() => {
                self.located(visitor.visit_map(Map::new(&[], None, self.recorded)))
            }
            _ => Err(self.invalid(&format!("a mapping with {}", suggest::backticked(fields)))),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let expected = || format!("one of {}", suggest::backticked(variants));
        match &self.node.value {
            Value::Scalar(_) if !self.node.is_null() => self.located(visitor.visit_enum(Enum {
                tag: self,
                value: None,
            })),
            Value::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                let tag = NodeDeserializer::new(key, self.recorded);
                let value = NodeDeserializer::new(value, self.recorded);
                self.located(visitor.visit_enum(Enum {
                    tag,
                    value: Some(value),
                }))
            }
            Value::Map(entries) if entries.len() > 1 => Err(Error::new(format!(
                "expected exactly one of {}, found {} keys",
                suggest::backticked(variants),
                entries.len()
            ))
            .at(entries[1].0.span.location())),
            _ => Err(self.invalid(&expected())),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
    recorded: &'a Recorded,
}

impl<'a> Seq<'a> {
    fn new(items: &'a [Node], recorded: &'a Recorded) -> Self {
        Self {
            items: items.iter(),
            recorded,
        }
    }
}

impl<'de> SeqAccess<'de> for Seq<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            Some(node) => {
                let de = NodeDeserializer::new(node, self.recorded);
                de.located(seed.deserialize(de)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The field names a struct accepts, so unknown keys can be reported with a suggestion.
#[derive(Clone, Copy)]
struct StructFields {
    name: &'static str,
    fields: &'static [&'static str],
}

impl StructFields {
    fn unknown(&self, key: &Node, name: &str) -> Error {
        let message = match self.name {
            "Step" => format!("unknown step kind or field `{name}`"),
            _ => format!("unknown field `{name}`"),
        };
        Error::new(message)
            .with_help(suggest::hint(name, self.fields.iter().copied()))
            .at(key.span.location())
    }
}

struct Map<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
    fields: Option<StructFields>,
    recorded: &'a Recorded,
}

impl<'a> Map<'a> {
    fn new(
        entries: &'a [(Node, Node)],
        fields: Option<StructFields>,
        recorded: &'a Recorded,
    ) -> Self {
        Self {
            entries: entries.iter(),
            value: None,
            fields,
            recorded,
        }
    }
}

impl<'de> MapAccess<'de> for Map<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for (key, value) in self.entries.by_ref() {
            if let (Some(fields), Value::Scalar(name)) = (self.fields, &key.value)
                && !fields.fields.contains(&name.as_str())
            {
                self.recorded.push(fields.unknown(key, name));
                continue;
            }
            self.value = Some(value);
            let de = NodeDeserializer::new(key, self.recorded);
            return de.located(seed.deserialize(de)).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let node = self
            .value
            .take()
            .ok_or_else(|| Error::new("value requested before its key"))?;
        let de = NodeDeserializer::new(node, self.recorded);
        de.located(seed.deserialize(de))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct Enum<'a> {
    tag: NodeDeserializer<'a>,
    value: Option<NodeDeserializer<'a>>,
}

impl<'de, 'a> de::EnumAccess<'de> for Enum<'a> {
    type Error = Error;
    type Variant = Variant<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Variant<'a>), Error> {
        let tag = self.tag.located(seed.deserialize(self.tag))?;
        Ok((
            tag,
            Variant {
                tag: self.tag,
                value: self.value,
            },
        ))
    }
}

struct Variant<'a> {
    tag: NodeDeserializer<'a>,
    value: Option<NodeDeserializer<'a>>,
}

impl<'a> Variant<'a> {
    fn value(&self, expected: &str) -> Result<NodeDeserializer<'a>, Error> {
        self.value.ok_or_else(|| {
            Error::new(format!(
                "`{}` needs {expected}",
                self.tag.found().trim_matches('`')
            ))
            .at(self.tag.node.span.location())
        })
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            None => Ok(()),
            Some(value) if value.node.is_null() => Ok(()),
            Some(value) => Err(Error::new(format!(
                "`{}` takes no value",
                self.tag.found().trim_matches('`')
            ))
            .at(value.node.span.location())),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        let value = self.value("a value")?;
        value.located(seed.deserialize(value))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self.value("a list")?, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_struct(self.value("a mapping")?, "", fields, visitor)
    }
}

/// Hands a `Spanned<T>` its node's position, then the value itself.
struct SpannedAccess<'a> {
    de: NodeDeserializer<'a>,
    step: u8,
}

impl<'de> MapAccess<'de> for SpannedAccess<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let key = match self.step {
            0 => SPAN_FIELD,
            1 => VALUE_FIELD,
            _ => return Ok(None),
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.step += 1;
        if self.step == 1 {
            let span = self.de.node.span;
            let style = span.style as u64;
            let parts = [span.line as u64, span.column as u64, span.len as u64, style];
            seed.deserialize(de::value::SeqDeserializer::new(parts.into_iter()))
        } else {
            seed.deserialize(self.de)
        }
    }
}

impl de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::new(msg.to_string())
    }

    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Error::new(format!(
            "expected {expected}, found {}",
            describe(unexpected)
        ))
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Error::new(format!(
            "invalid value {}: expected {expected}",
            describe(unexpected)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Error::new(format!("unknown value `{variant}`"))
            .with_help(suggest::hint(variant, expected.iter().copied()))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Error::new(format!("unknown field `{field}`"))
            .with_help(suggest::hint(field, expected.iter().copied()))
    }

    fn missing_field(field: &'static str) -> Self {
        let mut error = Error::new(format!("missing field `{field}`"));
        error.missing_field = Some(field.to_string());
        error
    }

    fn duplicate_field(field: &'static str) -> Self {
        Error::new(format!("field `{field}` is given twice"))
    }
}

fn describe(unexpected: Unexpected<'_>) -> String {
    match unexpected {
        Unexpected::Str(s) => format!("`{s}`"),
        Unexpected::Unit => "nothing".to_string(),
        Unexpected::Seq => "a list".to_string(),
        Unexpected::Map => "a mapping".to_string(),
        other => other.to_string(),
    }
}
