//! Generic JSON sources (Salesforce Flow and Apex callouts, anything else that posts JSON).
//!
//! The record rules live here and `leadsquared` reuses them: without a `records` path the
//! body itself is the record, or each element of a top-level array; with one, every node
//! the path selects is one record (an array node is one record too, and then fails the
//! object check: a path that should fan out says so itself, e.g. `$.records[*]`).
//! Every record must be a JSON object. An empty selection is not an error: a batch can
//! legitimately be empty (`{"totalSize": 0, "records": []}`).
//!
//! At most `max_records` records: without a `records` path a top-level array is counted
//! while it is parsed and refused at the first record too many, so a body of a million
//! `{}` costs microseconds, not a million values.

use std::cell::Cell;
use std::fmt;

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::query::js_path_process;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{BodyError, ParseError, ParsedBody};

pub fn parse_body(
    body: &[u8],
    records: Option<&JpQuery>,
    max_records: usize,
) -> Result<ParsedBody, ParseError> {
    let value = parse_value(body, records.is_none().then_some(max_records))?;
    Ok(ParsedBody {
        records: select_records(value, records, max_records)?,
        organization_id: None,
    })
}

/// Parses a JSON document; with `max_items`, a top-level array of more items is refused
/// as soon as the parser reaches the first one too many. serde_json's recursion limit
/// (128) turns hostile nesting into an ordinary error rather than a stack overflow; a
/// UTF-8 byte order mark is tolerated because some senders (Windows tooling) prepend
/// one and serde_json would refuse it.
pub(crate) fn parse_value(body: &[u8], max_items: Option<usize>) -> Result<Value, ParseError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError("the body is empty".into()).into());
    }
    let malformed = |e: serde_json::Error| BodyError(format!("JSON is malformed: {e}"));
    let Some(limit) = max_items else {
        return Ok(serde_json::from_slice(body).map_err(malformed)?);
    };
    let over = Cell::new(false);
    let mut parser = serde_json::Deserializer::from_slice(body);
    let parsed = CappedTopLevel { limit, over: &over }.deserialize(&mut parser);
    if over.get() {
        return Err(ParseError::TooManyRecords { limit });
    }
    let value = parsed.map_err(malformed)?;
    parser.end().map_err(malformed)?;
    Ok(value)
}

/// A JSON document whose top-level array may hold at most `limit` items; anything
/// else is parsed as serde_json parses it. `over` tells the refusal from a syntax error.
struct CappedTopLevel<'a> {
    limit: usize,
    over: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for CappedTopLevel<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, parser: D) -> Result<Value, D::Error> {
        parser.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CappedTopLevel<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = items.next_element::<Value>()? {
            if out.len() == self.limit {
                self.over.set(true);
                return Err(de::Error::custom("too many records"));
            }
            out.push(item);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// Applies the record rules described in the module documentation.
pub(crate) fn select_records(
    value: Value,
    records: Option<&JpQuery>,
    max_records: usize,
) -> Result<Vec<Value>, ParseError> {
    let selected = match records {
        None => match value {
            Value::Array(items) => items,
            other => vec![other],
        },
        Some(query) => js_path_process(query, &value)
            .map_err(|e| {
                BodyError(one_line(&format!(
                    "the records path could not be evaluated: {e}"
                )))
            })?
            .into_iter()
            .map(|hit| hit.val().clone())
            .collect(),
    };
    if selected.len() > max_records {
        return Err(ParseError::TooManyRecords { limit: max_records });
    }
    for (i, record) in selected.iter().enumerate() {
        if !record.is_object() {
            return Err(BodyError(format!(
                "record {} is not a JSON object but {}",
                i + 1,
                kind(record)
            ))
            .into());
        }
    }
    Ok(selected)
}

/// SHA-256 (hex) of the record's canonical JSON (object keys sorted).
///
/// serde_json is built with `preserve_order`, so its own serialisation follows the
/// sender's key order; the same record re-sent with reordered keys must hash the same,
/// hence the explicit sort.
pub fn content_hash(record: &Value) -> String {
    let mut canonical = Vec::with_capacity(1024);
    write_canonical(record, &mut canonical);
    hex::encode(Sha256::digest(&canonical))
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact(key, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        // Strings and scalars serialise the same whatever the key order.
        other => write_compact(other, out),
    }
}

/// serde_json's compact form, escapes included.
fn write_compact(value: &(impl serde::Serialize + ?Sized), out: &mut Vec<u8>) {
    serde_json::to_writer(out, value).expect("writing JSON into memory cannot fail");
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Error messages must stay on one line and short: they end up in responses and logs.
pub(crate) fn one_line(message: &str) -> String {
    let mut line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if message.chars().count() > 300 {
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use jsonpath_rust::parser::parse_json_path;
    use serde_json::json;

    use super::*;
    use crate::source::test_support::fixture;

    #[test]
    fn object_body_is_one_record() {
        let body = fixture("sf_flow_lead.json");
        let parsed = parse_body(&body, None, usize::MAX).unwrap();
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(parsed.organization_id, None);
        let r = &parsed.records[0];
        assert_eq!(r["Id"], "00Q5j00000Hk5WdEAJ");
        assert_eq!(r["MobilePhone"], Value::Null);
        assert_eq!(r["CreatedDate"], "2024-01-15T10:30:00.000+0000");
        assert_eq!(r["attributes"]["type"], "Lead");
    }

    #[test]
    fn array_body_is_one_record_per_element() {
        let parsed = parse_body(br#"[{"a":1},{"a":2}]"#, None, usize::MAX).unwrap();
        assert_eq!(parsed.records, vec![json!({"a":1}), json!({"a":2})]);
        assert!(
            parse_body(b" [] ", None, usize::MAX)
                .unwrap()
                .records
                .is_empty()
        );
    }

    #[test]
    fn records_path_selects_records() {
        let q = parse_json_path("$.records[*]").unwrap();
        let body = br#"{"totalSize":2,"done":true,"records":[{"Id":"1"},{"Id":"2"}]}"#;
        let parsed = parse_body(body, Some(&q), usize::MAX).unwrap();
        assert_eq!(parsed.records, vec![json!({"Id":"1"}), json!({"Id":"2"})]);

        // A node that is an array is one record, and not an object.
        let q = parse_json_path("$.records").unwrap();
        let err = parse_body(body, Some(&q), usize::MAX).unwrap_err();
        assert_eq!(
            err.to_string(),
            "record 1 is not a JSON object but an array"
        );

        let q = parse_json_path("$.nothing[*]").unwrap();
        assert!(
            parse_body(body, Some(&q), usize::MAX)
                .unwrap()
                .records
                .is_empty()
        );
    }

    #[test]
    fn non_objects_are_refused() {
        assert_eq!(
            parse_body(b"42", None, usize::MAX).unwrap_err().to_string(),
            "record 1 is not a JSON object but a number"
        );
        assert_eq!(
            parse_body(br#"[{}, "x"]"#, None, usize::MAX)
                .unwrap_err()
                .to_string(),
            "record 2 is not a JSON object but a string"
        );
    }

    #[test]
    fn malformed_and_hostile_json_are_clean_errors() {
        let err = parse_body(&fixture("lsq_malformed.json"), None, usize::MAX).unwrap_err();
        assert!(err.to_string().starts_with("JSON is malformed: "), "{err}");
        assert!(!err.to_string().contains('\n'));

        let deep = "[".repeat(100_000);
        let err = parse_body(deep.as_bytes(), None, usize::MAX).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");

        assert_eq!(
            parse_body(b"  \n", None, usize::MAX)
                .unwrap_err()
                .to_string(),
            "the body is empty"
        );
        assert!(parse_body(b"\xff\xfe{}", None, usize::MAX).is_err());
        assert!(parse_body(b"\xEF\xBB\xBF{\"a\":1}", None, usize::MAX).is_ok());
    }

    #[test]
    fn records_are_counted_while_parsing() {
        assert_eq!(
            parse_body(b"[{}, {}, {}]", None, 2),
            Err(ParseError::TooManyRecords { limit: 2 })
        );
        assert_eq!(parse_body(b"[{}, {}]", None, 2).unwrap().records.len(), 2);
        // Refused at the third record: what follows is never read.
        assert_eq!(
            parse_body(b"[{}, {}, {}, this is not JSON", None, 2),
            Err(ParseError::TooManyRecords { limit: 2 })
        );
        // A syntax error before the limit is a syntax error; trailing text still counts.
        assert!(matches!(
            parse_body(b"[{}, oops]", None, 2),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse_body(b"[{}] x", None, 2),
            Err(ParseError::Malformed(_))
        ));
        // The capped parser reads every other shape as serde_json does.
        let doc = br#"{"a": [1, -2, 3.5, true, null, "x\u00e9"], "b": {"c": {}}}"#;
        assert_eq!(
            parse_body(doc, None, 1).unwrap().records[0],
            serde_json::from_slice::<Value>(doc).unwrap()
        );
        // With a records path the selection is counted.
        let q = parse_json_path("$.records[*]").unwrap();
        assert_eq!(
            parse_body(br#"{"records": [{}, {}, {}]}"#, Some(&q), 2),
            Err(ParseError::TooManyRecords { limit: 2 })
        );
    }

    #[test]
    fn the_capped_parser_reads_top_level_scalars_as_serde_json_does() {
        // A scalar body must reach the record check as itself (and be refused naming
        // what it is), not as some other value.
        for body in [
            "true",
            "false",
            "-3",
            "7",
            "2.5",
            r#""s""#,
            r#""\u00e9\n""#,
            "null",
        ] {
            assert_eq!(
                parse_value(body.as_bytes(), Some(1)).unwrap(),
                serde_json::from_str::<Value>(body).unwrap(),
                "{body}"
            );
        }
        assert_eq!(
            parse_body(b"true", None, 10).unwrap_err().to_string(),
            "record 1 is not a JSON object but a boolean"
        );
    }

    #[test]
    fn a_million_empty_records_are_refused_in_milliseconds() {
        let mut body = b"[".to_vec();
        body.extend(b"{},".repeat(1_700_000));
        body.extend(b"{}]");
        let started = std::time::Instant::now();
        assert_eq!(
            parse_body(&body, None, 1000),
            Err(ParseError::TooManyRecords { limit: 1000 })
        );
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn content_hash_ignores_key_order_only() {
        let a = json!({"b": 1, "a": {"y": [1, "x"], "x": null}});
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(
            content_hash(&a),
            content_hash(&json!({"b": 2, "a": {"y": [1, "x"], "x": null}}))
        );
        assert_ne!(
            content_hash(&json!({"a": [1, 2]})),
            content_hash(&json!({"a": [2, 1]}))
        );
        // Canonical form is compact JSON with sorted keys: checkable by hand.
        assert_eq!(
            content_hash(&json!({"b": "é\"", "a": 1})),
            hex::encode(Sha256::digest(r#"{"a":1,"b":"é\""}"#.as_bytes()))
        );
        assert_eq!(
            content_hash(&json!({"b": [1, [], {}], "a": []})),
            hex::encode(Sha256::digest(r#"{"a":[],"b":[1,[],{}]}"#.as_bytes()))
        );
        assert_eq!(content_hash(&a).len(), 64);
    }

    #[test]
    fn one_line_strips_controls_and_caps_length() {
        assert_eq!(one_line("a\nb\tc"), "a b c");
        assert_eq!(one_line(&"x".repeat(400)).chars().count(), 301);
        // Exactly at the cap nothing was cut, so nothing says so.
        assert_eq!(one_line(&"x".repeat(300)), "x".repeat(300));
    }
}
