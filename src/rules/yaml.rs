//! A small owned YAML tree with line numbers, shared by the YAML-based loaders.
//!
//! saphyr parses YAML 1.2 (so `no`, `yes`, `on` stay strings, which Sigma values rely on) and
//! gives every node a span. Loaders want neither saphyr's generic node API nor its hashable
//! keys, so this module converts a parsed document once into [`Node`]: scalars, sequences and
//! mappings whose keys are strings, each with the 1-based line it starts on. Key order is kept.

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// 1-based line where the node starts.
    pub line: u32,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in source order; each key with its own line.
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub line: u32,
    pub text: String,
}

/// A YAML syntax error with the line it was found on.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub line: u32,
    pub message: String,
}

/// The deepest nesting of sequences and mappings accepted in a rule file. saphyr builds its
/// tree without recursion, but dropping it and converting it into [`Node`] recurse once per
/// level, so a deeper document is refused before it is built; real rules nest under ten levels.
pub const MAX_DEPTH: usize = 64;

/// The most documents (`---` separated) one rule file may hold. A Sigma file holds a rule and
/// its correlations or filters; the bound keeps a file from becoming thousands of rules.
pub const MAX_DOCUMENTS: usize = 1_000;

/// The most nodes (scalars, sequences, mappings and aliases) in one rule file: the tree costs
/// about a hundred bytes a node, so this bounds its memory whatever the file's shape.
pub const MAX_NODES: usize = 1_000_000;

/// Parses every document of a (possibly multi-document) YAML text.
///
/// Billion laughs: saphyr's loader expands aliases, but stops at its node budget with an error
/// (checked in `tests/limits.rs`), and a document with any alias left is refused (see
/// `convert`); [`MAX_NODES`] counts an alias as one node, before any expansion.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, SyntaxError> {
    check_shape(text)?;
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|err| SyntaxError {
        line: line_of(err.marker().line()),
        message: err.info().to_string(),
    })?;
    docs.into_iter().map(convert).collect()
}

/// Streams the text's parse events once, without building a tree, and refuses a document
/// nested deeper than [`MAX_DEPTH`], more than [`MAX_DOCUMENTS`] documents or more than
/// [`MAX_NODES`] nodes. A syntax error is left for the real parse to report.
fn check_shape(text: &str) -> Result<(), SyntaxError> {
    use saphyr_parser::{Event, Parser};
    let mut depth = 0usize;
    let mut n_documents = 0usize;
    let mut n_nodes = 0usize;
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let line = line_of(span.start.line());
        let refuse = |message: String| Err(SyntaxError { line, message });
        match event {
            Event::DocumentStart(_) => {
                n_documents += 1;
                if n_documents > MAX_DOCUMENTS {
                    return refuse(format!("more than {MAX_DOCUMENTS} YAML documents"));
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                n_nodes += 1;
                if depth > MAX_DEPTH {
                    return refuse(format!("YAML nested deeper than {MAX_DEPTH} levels"));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::Scalar(..) | Event::Alias(_) => n_nodes += 1,
            _ => {}
        }
        if n_nodes > MAX_NODES {
            return refuse(format!("more than {MAX_NODES} YAML nodes"));
        }
    }
    Ok(())
}

fn line_of(line: usize) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

fn convert(node: MarkedYamlOwned) -> Result<Node, SyntaxError> {
    let line = line_of(node.span.start.line());
    let value = match node.data {
        YamlDataOwned::Value(scalar) => scalar_value(scalar),
        YamlDataOwned::Representation(text, _, _) => Value::Str(text),
        YamlDataOwned::Sequence(items) => {
            Value::Seq(items.into_iter().map(convert).collect::<Result<_, _>>()?)
        }
        YamlDataOwned::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (key, value) in map {
                let key_line = line_of(key.span.start.line());
                let text = match convert(key)?.value {
                    Value::Str(text) => text,
                    Value::Int(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Float(f) => f.to_string(),
                    Value::Null => "null".to_string(),
                    Value::Seq(_) | Value::Map(_) => {
                        return Err(SyntaxError {
                            line: key_line,
                            message: "a mapping key must be a scalar".to_string(),
                        });
                    }
                };
                entries.push((
                    Key {
                        line: key_line,
                        text,
                    },
                    convert(value)?,
                ));
            }
            Value::Map(entries)
        }
        YamlDataOwned::Tagged(_, inner) => return convert(*inner),
        YamlDataOwned::Alias(_) => {
            return Err(SyntaxError {
                line,
                message: "YAML aliases are not supported in rules".to_string(),
            });
        }
        YamlDataOwned::BadValue => {
            return Err(SyntaxError {
                line,
                message: "invalid YAML value".to_string(),
            });
        }
    };
    Ok(Node { line, value })
}

fn scalar_value(scalar: ScalarOwned) -> Value {
    match scalar {
        ScalarOwned::Null => Value::Null,
        ScalarOwned::Boolean(b) => Value::Bool(b),
        ScalarOwned::Integer(n) => Value::Int(n),
        ScalarOwned::FloatingPoint(f) => Value::Float(f.into_inner()),
        ScalarOwned::String(s) => Value::Str(s),
    }
}

impl Node {
    /// The entry for `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.text == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// A scalar as text, the way Sigma reads values: numbers and booleans as written.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(n) => Some(n.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// A string, or a list of strings (Sigma accepts both in several places).
    pub fn string_list(&self) -> Option<Vec<String>> {
        match &self.value {
            Value::Seq(items) => items.iter().map(Node::scalar_text).collect(),
            _ => self.scalar_text().map(|s| vec![s]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_1_2_scalars_and_lines() {
        let docs =
            parse_documents("a: no\nb: '42'\nc: 42\nd: ~\ne:\n  - x\n---\nf: 1.5\n").unwrap();
        assert_eq!(docs.len(), 2);
        let doc = &docs[0];
        assert_eq!(doc.get("a").unwrap().value, Value::Str("no".into()));
        assert_eq!(doc.get("b").unwrap().value, Value::Str("42".into()));
        assert_eq!(doc.get("c").unwrap().value, Value::Int(42));
        assert_eq!(doc.get("d").unwrap().value, Value::Null);
        assert_eq!(doc.get("e").unwrap().as_seq().unwrap()[0].line, 6);
        assert_eq!(doc.as_map().unwrap()[4].0.line, 5);
        assert_eq!(docs[1].get("f").unwrap().value, Value::Float(1.5));
    }

    #[test]
    fn syntax_error_has_line() {
        let err = parse_documents("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        assert!(parse_documents("a: 1\na: 2\n").is_err());
    }
}
