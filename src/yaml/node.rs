//! A YAML document as a tree of nodes that remember where they came from.
//!
//! Built from the event stream of `saphyr-parser`, with budgets so that hostile input (deep
//! nesting, alias bombs, enormous documents) ends in an error instead of a hang or a crash.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::Error;
use crate::diagnostic::Location;

/// Deepest nesting of sequences and mappings a definitions file may use.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (after alias expansion) a definitions file may produce.
pub const MAX_NODES: usize = 250_000;

/// How a scalar was written; decides how positions inside it map back to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `value`
    Plain,
    /// `'value'`
    SingleQuoted,
    /// `"value"`
    DoubleQuoted,
    /// `|` block
    Literal,
    /// `>` block
    Folded,
    /// A sequence or mapping.
    Collection,
}

/// Where a node sits in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpan {
    /// 1-based line of the node's first character.
    pub line: usize,
    /// 1-based column of the node's first character.
    pub column: usize,
    /// Length in characters (of the first line, for multi-line nodes).
    pub len: usize,
    /// How the node was written.
    pub style: Style,
}

impl NodeSpan {
    /// The location a diagnostic points at.
    pub fn location(&self) -> Location {
        Location::new(self.line, self.column, self.len)
    }
}

/// A YAML node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node's content.
    pub value: Value,
    /// Where it was written.
    pub span: NodeSpan,
}

/// A node's content. Mappings keep their entries in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar, as written (plain scalars are typed when deserialized).
    Scalar(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// True for a plain `~`, `null` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s)
            if self.span.style == Style::Plain && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short description of what the node is, for "expected X, found Y".
    pub fn describe(&self) -> &'static str {
        match &self.value {
            _ if self.is_null() => "nothing",
            Value::Scalar(_) => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

fn span_of(span: &Span, style: Style, source_line: Option<&str>) -> NodeSpan {
    let start = span.start;
    let len = if span.end.line() == start.line() {
        span.end.col().saturating_sub(start.col())
    } else {
        // Multi-line nodes underline the rest of their first line.
        source_line.map_or(1, |l| l.chars().count().saturating_sub(start.col()))
    };
    NodeSpan {
        line: start.line(),
        column: start.col() + 1,
        len: len.max(1),
        style,
    }
}

fn style_of(style: ScalarStyle) -> Style {
    match style {
        ScalarStyle::Plain => Style::Plain,
        ScalarStyle::SingleQuoted => Style::SingleQuoted,
        ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
        ScalarStyle::Literal => Style::Literal,
        ScalarStyle::Folded => Style::Folded,
    }
}

/// A collection being built.
enum Open {
    Seq(Vec<Node>, NodeSpan, usize),
    Map(
        Vec<(Node, Node)>,
        Option<Node>,
        NodeSpan,
        usize,
        HashMap<String, usize>,
    ),
}

/// Parses `source` into a node tree. An empty document is a null node.
pub fn parse(source: &str) -> Result<Node, Error> {
    let lines: Vec<&str> = source.lines().collect();
    let line_of = |span: &Span| lines.get(span.start.line().wrapping_sub(1)).copied();
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: Vec<Option<Node>> = Vec::new();
    let mut root: Option<Node> = None;
    let mut nodes = 0usize;
    let mut documents = 0usize;

    for event in Parser::new_from_str(source) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            Error::new(format!("invalid YAML: {}", e.info())).at(Location::new(
                m.line(),
                m.col() + 1,
                1,
            ))
        })?;
        let (node, anchor) = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(
                        Error::new("expected a single YAML document, found a second one")
                            .at(span_of(&span, Style::Collection, line_of(&span)).location()),
                    );
                }
                continue;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(
                        Error::new(format!("nested more than {MAX_DEPTH} levels deep"))
                            .at(span_of(&span, Style::Collection, line_of(&span)).location()),
                    );
                }
                let node_span = span_of(&span, Style::Collection, line_of(&span));
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq(Vec::new(), node_span, anchor)
                } else {
                    Open::Map(Vec::new(), None, node_span, anchor, HashMap::new())
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Open::Seq(items, span, anchor)) => (
                    Node {
                        value: Value::Seq(items),
                        span,
                    },
                    anchor,
                ),
                Some(Open::Map(entries, _, span, anchor, _)) => (
                    Node {
                        value: Value::Map(entries),
                        span,
                    },
                    anchor,
                ),
                None => continue,
            },
            Event::Scalar(text, style, anchor, _) => {
                let style = style_of(style);
                (
                    Node {
                        value: Value::Scalar(text.into_owned()),
                        span: span_of(&span, style, line_of(&span)),
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let target = anchors.get(id).cloned().flatten().ok_or_else(|| {
                    Error::new("alias refers to an anchor that is not defined before it")
                        .at(span_of(&span, Style::Plain, line_of(&span)).location())
                })?;
                nodes += count(&target);
                (target, 0)
            }
            _ => continue,
        };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(Error::new(format!(
                "document is too large: more than {MAX_NODES} values (after expanding aliases)"
            ))
            .at(node.span.location()));
        }
        if anchor > 0 {
            if anchors.len() <= anchor {
                anchors.resize(anchor + 1, None);
            }
            anchors[anchor] = Some(node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Seq(items, ..)) => items.push(node),
            Some(Open::Map(entries, pending_key, .., seen)) => match pending_key.take() {
                None => {
                    let Value::Scalar(name) = &node.value else {
                        return Err(Error::new(
                            "mapping keys must be plain names, not lists or mappings",
                        )
                        .at(node.span.location()));
                    };
                    if let Some(first_line) = seen.insert(name.clone(), node.span.line) {
                        return Err(Error::new(format!(
                            "duplicate key `{name}` (first defined on line {first_line})"
                        ))
                        .at(node.span.location()));
                    }
                    *pending_key = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
    Ok(root.unwrap_or(Node {
        value: Value::Scalar(String::new()),
        span: NodeSpan {
            line: 1,
            column: 1,
            len: 1,
            style: Style::Plain,
        },
    }))
}

fn count(node: &Node) -> usize {
    match &node.value {
        Value::Scalar(_) => 1,
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count(k) + count(v))
                .sum::<usize>()
        }
    }
}
