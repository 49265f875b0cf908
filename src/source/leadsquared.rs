//! LeadSquared webhooks: JSON, form-encoded or plain text holding JSON; object or array.
//!
//! LeadSquared lets its admins pick the content type per webhook, so the body is read by
//! its declared type (parameters such as `charset` ignored: every variant is UTF-8 in
//! practice, and JSON must be), and by sniffing when the type is missing or unknown.
//! Whatever the encoding, the record rules of `json` apply afterwards.

use jsonpath_rust::parser::model::JpQuery;
use serde_json::{Map, Value};

use super::json::{content_hash, parse_value, select_records};
use super::{BodyError, ParseError, ParsedBody};

pub fn parse_body(
    content_type: Option<&str>,
    body: &[u8],
    records: Option<&JpQuery>,
    max_records: usize,
) -> Result<ParsedBody, ParseError> {
    let json_cap = records.is_none().then_some(max_records);
    let value = match Encoding::of(content_type) {
        Encoding::Json => parse_value(body, json_cap)?,
        Encoding::Form => parse_form(body, false)?,
        Encoding::Sniff => {
            if looks_like_json(body) {
                parse_value(body, json_cap)?
            } else {
                parse_form(body, true)?
            }
        }
    };
    Ok(ParsedBody {
        records: select_records(value, records, max_records)?,
        organization_id: None,
    })
}

/// `ProspectActivityId`, else `ProspectID:ModifiedOn`, else the content hash.
pub fn dedupe_key(record: &Value) -> String {
    if let Some(activity) = text_field(record, "ProspectActivityId") {
        return activity;
    }
    match (
        text_field(record, "ProspectID"),
        text_field(record, "ModifiedOn"),
    ) {
        (Some(prospect), Some(modified)) => format!("{prospect}:{modified}"),
        _ => content_hash(record),
    }
}

/// A field usable in a key: a non-empty string (LeadSquared sends nearly everything as
/// strings) or a number, in case a sender sends ids unquoted.
fn text_field(record: &Value, name: &str) -> Option<String> {
    match record.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Form,
    Sniff,
}

impl Encoding {
    fn of(content_type: Option<&str>) -> Self {
        let Some(content_type) = content_type else {
            return Encoding::Sniff;
        };
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "text/json" => Encoding::Json,
            s if s.ends_with("+json") => Encoding::Json,
            "application/x-www-form-urlencoded" => Encoding::Form,
            // "Plain text" in LeadSquared's settings holds JSON; sniffing also copes with an
            // admin who picked the wrong type for a form body.
            _ => Encoding::Sniff,
        }
    }
}

fn looks_like_json(body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// A form body becomes one flat object of strings. Values are kept as they are, even when
/// one holds JSON: reinterpreting text by its look would make the record's shape depend
/// on the data. A repeated name keeps its first value (as repeated headers do).
///
/// `strict` is for sniffed bodies: without a declared type, text is only taken for a form
/// when every `&`-separated part is a `name=value` pair, so that prose or a truncated JSON
/// document is reported as unreadable instead of becoming `{"<the text>": ""}`.
fn parse_form(body: &[u8], strict: bool) -> Result<Value, BodyError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        BodyError(format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(BodyError("the body is empty".into()));
    }
    if strict
        && text
            .split('&')
            .filter(|part| !part.is_empty())
            .any(|part| part.split_once('=').is_none_or(|(name, _)| name.is_empty()))
    {
        return Err(BodyError(
            "the body is neither JSON nor form-encoded".into(),
        ));
    }
    let mut record = Map::new();
    // Percent-decoding bytes that are not UTF-8 yields U+FFFD (form_urlencoded is lossy):
    // acceptable for CRM text, and never a failure.
    for (name, value) in url::form_urlencoded::parse(text.as_bytes()) {
        if name.is_empty() {
            continue;
        }
        record
            .entry(name.into_owned())
            .or_insert_with(|| Value::String(value.into_owned()));
    }
    if record.is_empty() {
        return Err(BodyError("the form-encoded body has no fields".into()));
    }
    Ok(Value::Object(record))
}

#[cfg(test)]
mod tests {
    use jsonpath_rust::parser::parse_json_path;
    use serde_json::json;

    use super::*;
    use crate::source::test_support::fixture;

    fn one(content_type: Option<&str>, body: &[u8]) -> Value {
        let parsed = parse_body(content_type, body, None, usize::MAX).unwrap();
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(parsed.organization_id, None);
        parsed.records.into_iter().next().unwrap()
    }

    #[test]
    fn json_fixtures() {
        let lead = one(Some("application/json"), &fixture("lsq_lead_create.json"));
        assert_eq!(lead["ProspectID"], "5c1f9a2e-7b4d-4e0a-9c3f-2a8d61b7e4f0");
        assert_eq!(lead["DoNotCall"], "0");
        assert_eq!(lead["SourceContent"], Value::Null);
        assert_eq!(
            dedupe_key(&lead),
            "5c1f9a2e-7b4d-4e0a-9c3f-2a8d61b7e4f0:2024-01-15 10:30:00"
        );

        let activity = one(
            Some("application/json; charset=utf-8"),
            &fixture("lsq_activity.json"),
        );
        assert_eq!(
            activity["ActivityEvent_Note"],
            "Attended free demo class: Physics – Rotational Motion"
        );
        assert_eq!(
            dedupe_key(&activity),
            "e3b7c2a9-41f6-4d8e-b0a5-6c9d2f1e8a37"
        );
    }

    #[test]
    fn malformed_json_is_an_error() {
        let err = parse_body(
            Some("application/json"),
            &fixture("lsq_malformed.json"),
            None,
            usize::MAX,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("JSON is malformed"), "{err}");
        // Sniffed too: it starts with `{`, so it is judged as JSON, not as a form.
        let err = parse_body(None, &fixture("lsq_malformed.json"), None, usize::MAX).unwrap_err();
        assert!(err.to_string().starts_with("JSON is malformed"), "{err}");
    }

    #[test]
    fn text_plain_and_unknown_types_hold_json() {
        let body = br#" {"ProspectID":"p1","FirstName":"Zo\u00eb"}"#;
        for ct in [
            Some("text/plain"),
            Some("TEXT/PLAIN; charset=UTF-8"),
            Some("application/octet-stream"),
            None,
        ] {
            assert_eq!(
                one(ct, body),
                json!({"ProspectID":"p1","FirstName":"Zoë"}),
                "{ct:?}"
            );
        }
    }

    #[test]
    fn form_bodies_are_flat_string_objects() {
        let body = b"ProspectID=p1&FirstName=Zo%C3%AB&Phone=%2B91-9876543210&Notes=&mx_Json=%7B%22a%22%3A1%7D&FirstName=dup";
        let expected = json!({
            "ProspectID": "p1", "FirstName": "Zoë", "Phone": "+91-9876543210", "Notes": "", "mx_Json": "{\"a\":1}"
        });
        assert_eq!(
            one(
                Some("application/x-www-form-urlencoded; charset=UTF-8"),
                body
            ),
            expected
        );
        // Sniffed: not JSON-looking, every part a pair.
        assert_eq!(one(Some("text/plain"), body), expected);
        assert_eq!(one(None, body), expected);
        // `+` is a space in forms.
        assert_eq!(one(None, b"City=New+Delhi")["City"], "New Delhi");
    }

    #[test]
    fn a_declared_type_is_believed_over_the_bodys_look() {
        // A declared form is a form even when a part is a bare name (it becomes an
        // empty field); only a sniffed body must consist of `name=value` pairs.
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(one(form, b"flag&a=1"), json!({"flag": "", "a": "1"}));
        assert!(parse_body(None, b"flag&a=1", None, usize::MAX).is_err());
        // Any `+json` type is JSON, so a form-looking body is malformed JSON rather than
        // a form record.
        for ct in ["application/vnd.lsq+json", "Application/Problem+JSON; q=1"] {
            let err = parse_body(Some(ct), b"a=b", None, usize::MAX).unwrap_err();
            assert!(
                err.to_string().starts_with("JSON is malformed"),
                "{ct}: {err}"
            );
        }
    }

    #[test]
    fn unreadable_bodies_are_errors() {
        assert_eq!(
            parse_body(None, b"hello world", None, usize::MAX)
                .unwrap_err()
                .to_string(),
            "the body is neither JSON nor form-encoded"
        );
        assert_eq!(
            parse_body(None, b"=x", None, usize::MAX)
                .unwrap_err()
                .to_string(),
            "the body is neither JSON nor form-encoded"
        );
        assert_eq!(
            parse_body(None, b"", None, usize::MAX)
                .unwrap_err()
                .to_string(),
            "the body is empty"
        );
        assert_eq!(
            parse_body(
                Some("application/x-www-form-urlencoded"),
                b"  ",
                None,
                usize::MAX
            )
            .unwrap_err()
            .to_string(),
            "the body is empty"
        );
        assert!(
            parse_body(
                Some("application/x-www-form-urlencoded"),
                b"a=\xff",
                None,
                usize::MAX
            )
            .is_err()
        );
        assert!(parse_body(Some("application/json"), b"a=b", None, usize::MAX).is_err());
        assert!(
            parse_body(
                Some("application/json"),
                b"\"just a string\"",
                None,
                usize::MAX
            )
            .is_err()
        );
    }

    #[test]
    fn arrays_and_records_path() {
        let body = br#"[{"ProspectID":"p1"},{"ProspectID":"p2"}]"#;
        let parsed = parse_body(Some("application/json"), body, None, usize::MAX).unwrap();
        assert_eq!(parsed.records.len(), 2);
        assert_eq!(parsed.records[1]["ProspectID"], "p2");

        let q = parse_json_path("$.Data[*]").unwrap();
        let body = br#"{"Data":[{"ProspectID":"p1"},{"ProspectID":"p2"},{"ProspectID":"p3"}]}"#;
        let parsed = parse_body(Some("text/plain"), body, Some(&q), usize::MAX).unwrap();
        assert_eq!(parsed.records.len(), 3);

        let q = parse_json_path("$.Data[*]").unwrap();
        assert!(parse_body(None, br#"{"Data":[1]}"#, Some(&q), usize::MAX).is_err());
    }

    #[test]
    fn dedupe_key_fallbacks() {
        assert_eq!(
            dedupe_key(&json!({"ProspectActivityId": "a1", "ProspectID": "p"})),
            "a1"
        );
        assert_eq!(
            dedupe_key(
                &json!({"ProspectActivityId": "", "ProspectID": "p", "ModifiedOn": "2024-01-15 10:30:00"})
            ),
            "p:2024-01-15 10:30:00"
        );
        let only_prospect = json!({"ProspectID": "p"});
        assert_eq!(dedupe_key(&only_prospect), content_hash(&only_prospect));
        let nulls = json!({"ProspectActivityId": null, "ProspectID": "p", "ModifiedOn": null});
        assert_eq!(dedupe_key(&nulls), content_hash(&nulls));
        assert_eq!(dedupe_key(&json!({"ProspectActivityId": 42})), "42");
    }
}
