//! "Has a value": one definition (`path::has_value`) seen through every place the
//! language uses it, a test per value form.

use std::path::Path;

use serde_json::{Value, json};

use super::path::has_value;
use super::*;

fn now() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("timestamp")
}

fn mapping(text: &str) -> SourceMapping {
    SourceMapping::from_yaml_str(Path::new("t.yaml"), text)
        .unwrap_or_else(|e| panic!("loads:\n{e}"))
}

/// Every language feature that asks "has this a value?", each reading `$.v`.
const USES: &str = r#"
source: { format: json, auth: none }
rules:
  - name: r
    user:
      userId: u
      attributes:
        listed: { path: [$.v, $.fallback] }
        defaulted: { path: $.v, default: dflt }
        templated: "{{ $.v }}"
        "*": { from: $.copy }
  - name: exists
    when: { path: $.v, exists: true }
    event: { userId: u, eventName: has_value }
"#;

/// (value, whether the language counts it as a value)
fn forms() -> Vec<(Value, bool)> {
    vec![
        (Value::Null, false),
        (json!(""), false),
        // The spec's words are "neither null nor an empty string": whitespace is text.
        (json!("  "), true),
        (json!("x"), true),
        (json!(0), true),
        (json!(false), true),
        (json!([]), true),
        (json!({}), true),
    ]
}

#[test]
fn the_definition_per_value_form() {
    for (v, want) in forms() {
        assert_eq!(has_value(&v), want, "{v}");
    }
}

#[test]
fn path_lists_exists_defaults_templates_copies_and_explain_agree_per_value_form() {
    let m = mapping(USES);
    for (v, want) in forms() {
        let record = json!({"v": v, "fallback": "F", "copy": {"c": v}});
        let mapped = m.map_record_explained(&record, now());
        let user = &mapped.operations[0].body;
        let attrs = &user["attributes"];
        let expected = if want { v.clone() } else { json!("F") };
        assert_eq!(attrs["listed"], expected, "path list in attributes, {v}");
        assert_eq!(
            attrs["defaulted"],
            if want { v.clone() } else { json!("dflt") },
            "default, {v}"
        );
        assert_eq!(attrs.get("c").is_some(), want, "\"*\" copy, {v}");
        assert_eq!(
            attrs.get("templated").is_some(),
            want && !matches!(v, Value::Array(_) | Value::Object(_)),
            "template, {v}"
        );
        let event = mapped
            .operations
            .iter()
            .any(|o| o.kind == crate::webengage::OperationKind::Event);
        assert_eq!(event, want, "exists, {v}");
        let origin = mapped
            .provenance
            .iter()
            .find(|p| p.field == "user.attributes.listed")
            .expect("explained")
            .from
            .clone();
        assert!(
            origin.starts_with(if want { "$.v " } else { "$.fallback " }),
            "explain names the path that gave the value, {v}: {origin}"
        );
    }
}

/// The shown-by of issue 16: a LeadSquared lead with an empty email maps to its ProspectID.
#[test]
fn an_empty_email_falls_through_to_the_prospect_id() {
    let m = mapping(
        "source: { format: leadsquared, auth: none }\nrules:\n  - name: lead\n    user: { userId: { path: [$.EmailAddress, $.ProspectID] } }\n",
    );
    let mapped = m.map_record(&json!({"EmailAddress": "", "ProspectID": "p-1"}), now());
    assert_eq!(mapped.status, RecordStatus::Mapped, "{mapped:?}");
    assert_eq!(mapped.operations[0].body, json!({"userId": "p-1"}));
}
