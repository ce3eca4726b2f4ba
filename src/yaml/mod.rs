//! YAML parsing for definitions files.
//!
//! touchline parses YAML itself, in two steps: [`saphyr_parser`] turns the text into events
//! with exact positions, [`node`] builds a position-keeping tree from them (with budgets
//! against hostile input), and [`de`] deserializes the tree into the definitions types with
//! serde, pointing every error at the key or value it is about. [`Spanned`] gives a value
//! its position, which is how rule errors are placed *inside* a YAML string.
//!
//! All parsing goes through [`from_str`] / [`from_node`], so the parser can be swapped.

mod de;
pub mod node;

use std::fmt;

use schemars::JsonSchema;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

pub use node::{Node, NodeSpan, Style, Value};

use crate::diagnostic::Location;

/// Largest definitions file touchline reads (journeys are a few kilobytes).
pub const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;

const SPANNED_NAME: &str = "$touchline::Spanned";
const SPAN_FIELD: &str = "$span";
const VALUE_FIELD: &str = "$value";

/// A YAML error with its position, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What is wrong.
    pub message: String,
    /// A did-you-mean or what was expected.
    pub help: Option<String>,
    /// Where.
    pub location: Option<Location>,
    /// For a missing field: its name (the field is not there to point at).
    pub missing_field: Option<String>,
}

impl Error {
    /// An error without a position yet.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            help: None,
            location: None,
            missing_field: None,
        }
    }

    /// Sets the position.
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    /// Sets the position unless a more precise one is already known.
    pub fn or_at(mut self, location: Location) -> Self {
        self.location.get_or_insert(location);
        self
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Parses YAML text into a node tree.
pub fn parse(source: &str) -> Result<Node, Error> {
    if source.len() > MAX_FILE_BYTES {
        return Err(Error::new(format!(
            "file is too large ({} bytes; definitions files may be at most {} bytes)",
            source.len(),
            MAX_FILE_BYTES
        )));
    }
    node::parse(source)
}

/// Deserializes a node. Returns the value (if the structure allowed building one) and every
/// error found; the value is only trustworthy when the error list is empty.
///
/// serde stops at the first error, so to report more than one per file, an entry of the
/// root mapping whose value fails is set aside and the rest read again; each pass reports one
/// more problem, until what is left reads cleanly (or only misses what was set aside).
pub fn from_node<T: DeserializeOwned>(node: &Node) -> (Option<T>, Vec<Error>) {
    let mut node = node.clone();
    let mut errors: Vec<Error> = Vec::new();
    let mut set_aside: Vec<String> = Vec::new();
    loop {
        let recorded = de::Recorded::default();
        let result = T::deserialize(de::NodeDeserializer::new(&node, &recorded));
        for error in recorded.into_inner() {
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
        let error = match result {
            Ok(value) => return (Some(value), errors),
            Err(error) => error.or_at(node.span.location()),
        };
        if let Some(field) = &error.missing_field
            && set_aside.contains(field)
        {
            return (None, errors);
        }
        let removed = error
            .missing_field
            .is_none()
            .then(|| remove_entry_at(&mut node, error.location))
            .flatten();
        errors.push(error);
        match removed {
            Some(key) => set_aside.push(key),
            None => return (None, errors),
        }
    }
}

/// The string at `path` (a chain of mapping keys) under `node`, with its position; for
/// reading a few values out of a file whose structure is otherwise broken.
pub fn find_string(node: &Node, path: &[&str]) -> Option<Spanned<String>> {
    let mut current = node;
    for segment in path {
        let Value::Map(entries) = &current.value else {
            return None;
        };
        current = entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Scalar(s) if s == segment))
            .map(|(_, v)| v)?;
    }
    match &current.value {
        Value::Scalar(text) if !current.is_null() => Some(Spanned {
            value: text.clone(),
            span: Span {
                line: current.span.line,
                column: current.span.column,
                len: current.span.len,
                style: current.span.style,
            },
        }),
        _ => None,
    }
}

/// Removes the root mapping's entry that contains `location`, returning its key.
fn remove_entry_at(node: &mut Node, location: Option<Location>) -> Option<String> {
    let location = location?;
    let Value::Map(entries) = &mut node.value else {
        return None;
    };
    let index = entries.iter().rposition(|(key, _)| {
        (key.span.line, key.span.column) <= (location.line, location.column)
    })?;
    match entries.remove(index).0.value {
        Value::Scalar(key) => Some(key),
        _ => None,
    }
}

/// Parses and deserializes YAML text.
pub fn from_str<T: DeserializeOwned>(source: &str) -> (Option<T>, Vec<Error>) {
    match parse(source) {
        Ok(node) => from_node(&node),
        Err(error) => (None, vec![error]),
    }
}

/// Where a value was written in its file, and how (which decides how positions inside a
/// string map back to the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Length in characters on the first line.
    pub len: usize,
    /// Scalar style.
    pub style: Style,
}

impl Span {
    /// The location of the whole value.
    pub fn location(&self) -> Location {
        Location::new(self.line, self.column, self.len)
    }

    /// Maps a 1-based (line, column) *inside the string value* to its place in the file.
    ///
    /// Exact for single-line plain and quoted scalars and for `|` blocks (the styles rules
    /// are written in); other styles point at the start of the value. `source_line` is the
    /// file's text on the value's first line, used to account for quote escapes.
    pub fn locate_inside(
        &self,
        line: usize,
        column: usize,
        len: usize,
        source_line: Option<&str>,
    ) -> Location {
        match self.style {
            Style::Plain if line == 1 => Location::new(self.line, self.column + column - 1, len),
            Style::SingleQuoted | Style::DoubleQuoted if line == 1 => {
                let raw: Vec<char> = source_line
                    .unwrap_or("")
                    .chars()
                    .skip(self.column)
                    .collect();
                let offset = raw_offset(&raw, column - 1, self.style);
                Location::new(self.line, self.column + 1 + offset, len)
            }
            Style::Literal => Location::new(self.line + line - 1, self.column + column - 1, len),
            _ => self.location(),
        }
    }
}

/// How many raw characters of a quoted scalar's body encode its first `chars` characters.
fn raw_offset(raw: &[char], chars: usize, style: Style) -> usize {
    let (mut raw_index, mut decoded) = (0, 0);
    while decoded < chars && raw_index < raw.len() {
        raw_index += match (style, raw[raw_index], raw.get(raw_index + 1)) {
            (Style::SingleQuoted, '\'', Some('\'')) => 2,
            (Style::DoubleQuoted, '\\', Some('x')) => 4,
            (Style::DoubleQuoted, '\\', Some('u')) => 6,
            (Style::DoubleQuoted, '\\', Some('U')) => 10,
            (Style::DoubleQuoted, '\\', Some(_)) => 2,
            _ => 1,
        };
        decoded += 1;
    }
    raw_index
}

/// A value with the position it was written at.
#[derive(Debug, Clone)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpannedVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for SpannedVisitor<T> {
            type Value = Spanned<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value with its position (only touchline's YAML reader provides one)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Spanned<T>, A::Error> {
                use serde::de::Error as _;
                let missing = || A::Error::custom("position not provided");
                map.next_key::<String>()?.ok_or_else(missing)?;
                let (line, column, len, style): (usize, usize, usize, u8) = map.next_value()?;
                map.next_key::<String>()?.ok_or_else(missing)?;
                let value = map.next_value()?;
                let style = [
                    Style::Plain,
                    Style::SingleQuoted,
                    Style::DoubleQuoted,
                    Style::Literal,
                    Style::Folded,
                ]
                .get(usize::from(style))
                .copied()
                .unwrap_or(Style::Collection);
                Ok(Spanned {
                    value,
                    span: Span {
                        line,
                        column,
                        len,
                        style,
                    },
                })
            }
        }

        deserializer.deserialize_struct(
            SPANNED_NAME,
            &[SPAN_FIELD, VALUE_FIELD],
            SpannedVisitor(std::marker::PhantomData),
        )
    }
}

impl<T: serde::Serialize> serde::Serialize for Spanned<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }
}
