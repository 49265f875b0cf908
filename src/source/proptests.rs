//! Property tests: the parsers take hostile bytes and must answer with a value or a
//! `BodyError`, never a panic; and well-formed inputs keep their text exactly.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::{json, leadsquared, salesforce};

/// Bytes that are mostly XML/JSON/form punctuation, so the parsers get past their first byte.
fn structured_bytes() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "<",
        ">",
        "</",
        "/>",
        "=",
        "\"",
        "&",
        ";",
        "&amp;",
        "&#",
        "x",
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "%",
        "+",
        "<?xml version=\"1.0\"?>",
        "<!DOCTYPE",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "xmlns=",
        "xsi:nil=\"true\"",
        "soapenv:Envelope",
        "notifications",
        "Notification",
        "sObject",
        "\u{feff}",
        "é",
        "\0",
        "\\u00",
        "null",
    ]);
    prop::collection::vec(
        prop_oneof![pieces.prop_map(|s| s.as_bytes().to_vec()), any::<Vec<u8>>()],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

const CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("text/plain; charset=utf-8"),
    Some("application/xml"),
];

proptest! {
    #[test]
    fn parsers_never_panic(body in prop_oneof![any::<Vec<u8>>(), structured_bytes()]) {
        let _ = salesforce::parse_notifications(&body);
        let _ = json::parse_body(&body, None, usize::MAX);
        for ct in CONTENT_TYPES {
            if let Ok(parsed) = leadsquared::parse_body(ct, &body, None, usize::MAX) {
                for record in &parsed.records {
                    let _ = leadsquared::dedupe_key(record);
                }
            }
        }
    }

    /// What LeadSquared posts as form fields is the same record as its JSON would be.
    #[test]
    fn flat_string_record_survives_form_encoding(
        fields in prop::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,20}", "\\PC{0,30}", 1..12)
    ) {
        let record: Map<String, Value> =
            fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let record = Value::Object(record);

        let as_json = serde_json::to_vec(&record).unwrap();
        let from_json = leadsquared::parse_body(Some("application/json"), &as_json, None, usize::MAX).unwrap();
        prop_assert_eq!(&from_json.records, &vec![record.clone()]);

        let form: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&fields).finish();
        let from_form =
            leadsquared::parse_body(Some("application/x-www-form-urlencoded"), form.as_bytes(), None, usize::MAX).unwrap();
        prop_assert_eq!(&from_form.records, &vec![record.clone()]);
        // Sniffed as a form too: it does not start with `{` or `[` and every part is a pair.
        let sniffed = leadsquared::parse_body(None, form.as_bytes(), None, usize::MAX).unwrap();
        prop_assert_eq!(&sniffed.records, &vec![record]);
    }

    /// Any text Salesforce escapes into a field comes back exactly (XML normalises `\r`,
    /// and C0 controls cannot be carried, so the generator leaves them out).
    #[test]
    fn salesforce_field_text_round_trips(text in "[^\\x00-\\x08\\x0B-\\x1F\\x{FFFE}\\x{FFFF}]{1,40}") {
        let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let xml = format!(
            r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><e:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D5j00000KqRtB</OrganizationId><Notification><Id>04l1</Id><sObject i:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Note>{escaped}</sf:Note></sObject></Notification></notifications></e:Body></e:Envelope>"#
        );
        let parsed = salesforce::parse_notifications(xml.as_bytes()).unwrap();
        prop_assert_eq!(&parsed.records[0]["sObject"]["Note"], &Value::String(text));
    }
}
