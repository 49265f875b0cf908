//! The YAML tree of a mapping file, every node with its position.
//!
//! Mapping files are checked by walking this tree by hand (see `compile`), not by
//! deserialising into typed structs: only a hand walk can report *every* problem with
//! its line and column and a suggestion, where serde stops at the first one.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

/// A 1-based position in a mapping file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };

    pub fn of<T>(s: &Spanned<T>) -> Pos {
        Pos {
            line: s.referenced.line(),
            column: s.referenced.column(),
        }
    }
}

/// A node of the YAML tree. Map entries keep their order and their key positions.
#[derive(Debug, Clone)]
pub enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

pub type SNode = Spanned<Node>;
pub type Entries = [(Spanned<String>, Spanned<Node>)];

impl Node {
    /// What an admin would call this kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a map",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Entries> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Scalars as JSON; lists and maps recursively (used for literals and test expectations).
    pub fn to_json(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(|i| i.value.to_json()).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// The entry `key` of a map, if present.
pub fn get<'a>(entries: &'a Entries, key: &str) -> Option<&'a SNode> {
    entries.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
}

/// A YAML syntax error, positioned.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses a mapping file into the positioned tree.
///
/// `strict_booleans` keeps `country: no` a string; `leading_zero_numbers_as_strings`
/// keeps `0123` (zip codes, phone fragments) a string.
pub fn parse(text: &str) -> Result<SNode, SyntaxError> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
    };
    serde_saphyr::from_str_with_options::<SNode>(text, options).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: l.line(),
                column: l.column(),
            })
            .unwrap_or(Pos::START);
        SyntaxError {
            pos,
            message: first_line(&e.without_snippet().to_string()),
        }
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("invalid YAML").trim().to_owned()
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        // NaN and infinities have no JSON form; keep their text so a check can reject them.
        Ok(serde_json::Number::from_f64(v)
            .map(Node::Number)
            .unwrap_or_else(|| Node::String(v.to_string())))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<SNode>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<SNode>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_come_through_for_keys_values_and_list_items() {
        let text = "source:\n  format: json\nrules:\n  - name: a\n    when: x\n";
        let root = parse(text).expect("parses");
        let top = root.value.as_map().expect("map");
        let (k, v) = &top[0];
        assert_eq!(
            (k.value.as_str(), Pos::of(k)),
            ("source", Pos { line: 1, column: 1 })
        );
        let format = get(v.value.as_map().expect("map"), "format").expect("format");
        assert_eq!(
            Pos::of(format),
            Pos {
                line: 2,
                column: 11
            }
        );
        let Node::Seq(rules) = &get(top, "rules").expect("rules").value else {
            panic!("rules is a list")
        };
        let when_key = &rules[0].value.as_map().expect("rule map")[1].0;
        assert_eq!(Pos::of(when_key), Pos { line: 5, column: 5 });
    }

    #[test]
    fn strict_booleans_and_leading_zeros_stay_strings() {
        let root = parse("a: no\nb: 0123\nc: true\nd: 10\ne: \"10\"\n").expect("parses");
        let json = root.value.to_json();
        assert_eq!(
            json,
            serde_json::json!({"a": "no", "b": "0123", "c": true, "d": 10, "e": "10"})
        );
    }

    #[test]
    fn syntax_errors_are_positioned() {
        let err = parse("a: [1, 2\nb: c\n").expect_err("unclosed list");
        assert!(err.pos.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
    }
}
