//! CRM text made storable before it reaches Postgres, and which errors are the data's
//! fault rather than the database's.
//!
//! A record Postgres refuses must fail alone (stored `failed`, with the reason), never
//! count as "database unavailable": that would spool or 503 every request behind it
//! while Postgres is healthy, and the CRM would retry the record forever. So the text
//! Postgres is known to refuse is changed first, and whatever else it refuses is told
//! apart from an outage by its SQLSTATE class.

use std::borrow::Cow;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Keys longer than this (dedupe keys, record keys, user ids: all indexed, and a btree
/// index refuses entries over about 2.7 kB) are stored as `sha256:<hex>` of the key:
/// still one key per record, the same on every redelivery.
pub const MAX_KEY_BYTES: usize = 512;

/// Text without U+0000, which Postgres `text` cannot hold: it becomes U+FFFD.
pub fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// A key as stored: [`text`], and hashed when longer than [`MAX_KEY_BYTES`].
pub fn key(s: &str) -> Cow<'_, str> {
    if s.len() > MAX_KEY_BYTES {
        return Cow::Owned(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(s.as_bytes()))
        ));
    }
    text(s)
}

/// A document as the JSON text stored in a `json` column (sent as text: a `json` value
/// is only validated, where `jsonb` would be parsed and rebuilt).
///
/// Postgres' `jsonb` cannot hold U+0000, and support queries and WebEngage read these
/// documents as `jsonb`, so the character becomes U+FFFD. serde_json writes it as
/// `\u0000`, so text without that sequence holds none: one search of the text instead
/// of a walk of the document. (A literal backslash before `u0000` also matches; the
/// replacement then changes nothing.)
pub fn json_text(value: &Value) -> String {
    // Written straight into a buffer the size of a typical record, which a value
    // starting at serde_json's 128 bytes reaches only after three copies.
    let mut bytes = Vec::with_capacity(1024);
    serde_json::to_writer(&mut bytes, value).expect("a JSON value always serializes");
    let text = String::from_utf8(bytes).expect("serde_json writes UTF-8");
    if !text.contains("\\u0000") {
        return text;
    }
    serde_json::to_string(&without_nul(value)).expect("a JSON value always serializes")
}

fn without_nul(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace('\0', "\u{FFFD}")),
        Value::Array(items) => Value::Array(items.iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), without_nul(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether Postgres refused the data (SQLSTATE class 22 data exception, 23 integrity
/// constraint, 54 program limit such as an index entry too large) rather than being
/// unreachable or failing: retrying the same data would fail the same way.
pub fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| matches!(code.get(..2), Some("22" | "23" | "54"))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_in_keys_and_values_becomes_the_replacement_character() {
        let text = json_text(&json!({"a\u{0}": ["x\u{0}y", {"n": 1}]}));
        assert_eq!(
            text,
            r#"{"a\ufffd":["x\ufffdy",{"n":1}]}"#.replace("\\ufffd", "\u{FFFD}")
        );
        assert_eq!(super::text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(super::text("ab"), Cow::Borrowed("ab")));
    }

    #[test]
    fn a_literal_backslash_u0000_is_kept_as_written() {
        let value = json!({"note": "C:\\u0000dir"});
        let text = json_text(&value);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }

    #[test]
    fn long_keys_are_hashed_short_ones_kept() {
        assert_eq!(key("p1:2024-01-15 10:30:00"), "p1:2024-01-15 10:30:00");
        assert_eq!(key("a\0"), "a\u{FFFD}");
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let stored = key(&long);
        assert!(
            stored.starts_with("sha256:") && stored.len() == 71,
            "{stored}"
        );
        assert_eq!(stored, key(&long), "the same key every time");
        assert_eq!(key(&long[1..]), long[1..]);
    }
}
