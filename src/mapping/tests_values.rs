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

fn load_errors(text: &str) -> String {
    SourceMapping::from_yaml_str(Path::new("t.yaml"), text)
        .expect_err("refused")
        .to_string()
}

const TXN: &str = "source: { format: json, auth: none }\nrules:\n  - name: otp\n    transaction:\n      campaignId: c1\n      userId: $.u\n      dedupe: { ttl: TTL }\n";

#[test]
fn a_transaction_carries_dedupe_ttl_checked_at_load() {
    let m = mapping(&TXN.replace("TTL", "600"));
    let mapped = m.map_record(&json!({"u": "u1"}), now());
    assert_eq!(
        mapped.operations[0].body,
        json!({"campaignId": "c1", "userId": "u1", "dedupe": {"ttl": 600}})
    );
    for edge in ["5", "1800"] {
        mapping(&TXN.replace("TTL", edge));
    }
    for bad in ["4", "1801", "60.5", "\"60\"", "$.ttl"] {
        let e = load_errors(&TXN.replace("TTL", bad));
        assert!(
            e.contains("t.yaml:7:")
                && e.contains("`transaction.dedupe.ttl`")
                && e.contains("5 to 1800"),
            "{bad}: {e}"
        );
    }
    let e = load_errors(&TXN.replace("ttl: TTL", "tl: 60"));
    assert!(
        e.contains("t.yaml:7:") && e.contains("did you mean `ttl`"),
        "{e}"
    );
}

const PROFILE: &str = r#"
source: { format: json, auth: none }
rules:
  - name: r
    user:
      userId: u
      phone: $.phone
      hashedEmail: { path: $.email, transform: [trim, lowercase, sha256] }
      hashedPhone: { path: $.phone, transform: [sha256] }
      whatsappOptIn: { path: $.wa, transform: [boolean] }
      attributes: { tags: $.tags, history: $.history, plan: $.plan }
    event:
      eventName: E
      eventTime: { path: $.at, transform: [datetime] }
      eventData: { at: { path: $.at, transform: [datetime] } }
  - name: raw
    event: { userId: u, eventName: Raw, eventTime: $.at }
"#;

#[test]
fn hashed_identifiers_and_whatsapp_opt_in_are_system_fields() {
    let m = mapping(PROFILE);
    let user = &m
        .map_record(
            &json!({"email": " A@b.co", "phone": "+919876543210", "wa": "yes"}),
            now(),
        )
        .operations[0]
        .body;
    assert_eq!(user["whatsappOptIn"], json!(true));
    assert_eq!(user["hashedEmail"].as_str().map(str::len), Some(64));
    assert_eq!(user["hashedPhone"].as_str().map(str::len), Some(64));
    assert!(user.get("attributes").is_none(), "{user}");
}

#[test]
fn a_mapped_phone_must_be_e164_with_or_without_the_transform() {
    let m = mapping(PROFILE);
    for (phone, kept) in [
        ("+919876543210", true),
        ("+91-98765", false),
        ("+91 98765 43210", false),
    ] {
        let mapped = m.map_record(&json!({"phone": phone}), now());
        let user = &mapped.operations[0].body;
        assert_eq!(user.get("phone").is_some(), kept, "{phone}");
        let warned = mapped
            .warnings
            .iter()
            .any(|w| w.field == "user.phone" && w.reason.contains("is not E.164"));
        assert_eq!(warned, !kept, "{phone}: {:?}", mapped.warnings);
    }
}

#[test]
fn array_and_object_user_attributes_past_16_kb_are_dropped_with_a_warning() {
    let m = mapping(PROFILE);
    let big: Vec<String> = (0..20).map(|i| format!("{i:0>900}")).collect();
    let mapped = m.map_record(
        &json!({"tags": big, "history": {"a": 1}, "plan": "gold"}),
        now(),
    );
    assert_eq!(
        mapped.operations[0].body["attributes"],
        json!({"history": {"a": 1}, "plan": "gold"})
    );
    assert_eq!(mapped.warnings.len(), 1, "{:?}", mapped.warnings);
    assert_eq!(mapped.warnings[0].field, "user.attributes.tags");
    assert!(mapped.warnings[0].reason.contains("16 KB"));
}

#[test]
fn event_time_keeps_milliseconds_when_the_crm_gives_them() {
    let m = mapping(PROFILE);
    let times = |at: &str| {
        let mapped = m.map_record(&json!({"at": at}), now());
        let event = |i: usize| mapped.operations[i].body.clone();
        (
            event(1)["eventTime"].clone(),
            event(1)["eventData"]["at"].clone(),
            event(2)["eventTime"].clone(),
        )
    };
    assert_eq!(
        times("2024-01-15T10:30:00.123+0000"),
        (
            json!("2024-01-15T10:30:00.123+0000"),
            // An attribute keeps the plain date format WebEngage types as a date.
            json!("2024-01-15T10:30:00+0000"),
            json!("2024-01-15T10:30:00.123+0000")
        )
    );
    assert_eq!(
        times("2024-01-15 10:30:00.5"),
        (
            json!("2024-01-15T10:30:00.500+0000"),
            json!("2024-01-15T10:30:00+0000"),
            json!("2024-01-15T10:30:00.500+0000")
        )
    );
    // Without milliseconds (or with Salesforce's `.000`), the format is unchanged.
    for plain in ["2024-01-15T10:30:00.000+0000", "2024-01-15 10:30:00"] {
        let t = json!("2024-01-15T10:30:00+0000");
        assert_eq!(times(plain), (t.clone(), t.clone(), t), "{plain}");
    }
}
