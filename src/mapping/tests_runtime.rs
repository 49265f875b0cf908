//! Explain mode and the rules WebEngage enforces silently, checked on produced payloads.

use std::path::Path;

use serde_json::json;

use super::*;

fn now() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("timestamp")
}

fn mapping(text: &str) -> SourceMapping {
    SourceMapping::from_yaml_str(Path::new("t.yaml"), text)
        .unwrap_or_else(|e| panic!("loads:\n{e}"))
}

const PROFILE: &str = r#"
source: { format: json, auth: none }
rules:
  - name: profile
    user:
      userId: { path: $.email, transform: [email], required: true }
      phone: { path: [$.mobile, $.phone], transform: [{ phone: { default_region: IN } }] }
      company: Acme
      attributes:
        full_name: "{{ $.first }} {{ $.last }}"
        rating: { path: $.rating, map: { Hot: 3 }, default: 0 }
        note: $.note
        "*": { from: $.custom, rename: snake_case }
    event:
      eventName: Synced
      eventData: { note: $.note }
    transaction: { campaignId: c1, overrideData: { context: { const: x } }, txnId: $.note }
"#;

fn find<'a>(p: &'a [Provenance], field: &str) -> &'a Provenance {
    p.iter()
        .find(|x| x.field == field)
        .unwrap_or_else(|| panic!("no provenance for {field}: {p:#?}"))
}

#[test]
fn explain_names_the_path_literal_template_default_and_fallbacks() {
    let m = mapping(PROFILE);
    let record = json!({
        "email": " A@Example.com ", "phone": "98765 43210", "first": "Asha", "last": "Rao",
        "rating": "Warm", "custom": {"CourseInterest": "JEE"}
    });
    let mut mapped = m.map_record_explained(&record, now());
    let p = std::mem::take(&mut mapped.provenance);
    assert_eq!(
        mapped,
        m.map_record(&record, now()),
        "explain changes nothing"
    );
    assert_eq!(find(&p, "user.userId").from, "$.email | email");
    assert_eq!(find(&p, "user.userId").rule, "profile");
    assert_eq!(
        find(&p, "user.phone").from,
        "$.phone (first with a value of $.mobile, $.phone) | phone"
    );
    assert_eq!(find(&p, "user.company").from, "literal");
    assert_eq!(
        find(&p, "user.attributes.full_name").from,
        "template \"{{ $.first }} {{ $.last }}\""
    );
    assert_eq!(
        find(&p, "user.attributes.rating").from,
        "default (the record had no value for $.rating)"
    );
    assert_eq!(
        find(&p, "user.attributes.course_interest").from,
        "\"*\" copy of `CourseInterest`"
    );
    assert_eq!(find(&p, "event.userId").from, "the rule's user.userId");
    assert_eq!(
        find(&p, "event.eventTime").from,
        "the time the webhook was received"
    );
    assert_eq!(find(&p, "transaction.userId").rule, "profile");
    assert_eq!(find(&p, "user.userId").value, json!("a@example.com"));
}

#[test]
fn strings_webengage_would_drop_are_dropped_with_a_warning() {
    let m = mapping(PROFILE);
    let long = "x".repeat(rules_max());
    let record = json!({
        "email": "a@example.com", "note": long, "custom": {"Essay": long, "Short": "ok"}
    });
    let mapped = m.map_record(&record, now());
    assert_eq!(mapped.status, RecordStatus::Mapped);
    let user = &mapped.operations[0].body;
    assert!(user["attributes"].get("note").is_none());
    assert!(user["attributes"].get("essay").is_none());
    assert_eq!(user["attributes"]["short"], json!("ok"));
    let event = &mapped.operations[1].body;
    assert!(event.get("eventData").is_none(), "{event}");
    // Transactions are not attributes: no limit.
    assert_eq!(mapped.operations[2].body["txnId"], json!(long));
    let w: Vec<String> = mapped.warnings.iter().map(ToString::to_string).collect();
    let w = w.join("\n");
    assert!(
        w.contains("rule `profile`: user.attributes.note dropped"),
        "{w}"
    );
    assert!(w.contains("user.attributes.essay dropped"), "{w}");
    assert!(w.contains("event.eventData.note dropped"), "{w}");
    assert!(w.contains("1000 characters or more"), "{w}");
    // 999 characters pass.
    let record = json!({"email": "a@example.com", "note": "y".repeat(rules_max() - 1)});
    let mapped = m.map_record(&record, now());
    assert!(mapped.warnings.is_empty(), "{:?}", mapped.warnings);
}

#[test]
fn a_required_string_that_is_too_long_fails_the_rule() {
    let m = mapping(
        r#"
source: { format: json, auth: none }
rules:
  - name: r
    event: { userId: u1, eventName: E, eventData: { body: { path: $.b, required: true } } }
"#,
    );
    let mapped = m.map_record(&json!({"b": "é".repeat(rules_max())}), now());
    assert_eq!(mapped.status, RecordStatus::Failed);
    assert!(
        mapped
            .error()
            .is_some_and(|e| e.contains("event.eventData.body")),
        "{:?}",
        mapped.error()
    );
    let mapped = m.map_record(&json!({"b": "é".repeat(rules_max() - 1)}), now());
    assert_eq!(mapped.status, RecordStatus::Mapped);
}

fn rules_max() -> usize {
    crate::webengage::rules::MAX_STRING_CHARS
}

fn many_attributes(n: usize, value: &str) -> String {
    (0..n)
        .map(|i| format!("        a{i:02}: {value}\n"))
        .collect()
}

fn load_error_lines(text: &str) -> Vec<String> {
    match SourceMapping::from_yaml_str(Path::new("t.yaml"), text) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn more_than_25_attributes_of_one_type_do_not_load() {
    let numbers = many_attributes(26, "{ path: $.x, transform: [integer] }");
    let text = format!(
        "source: {{ format: json, auth: none }}\nrules:\n  - name: r\n    user:\n      userId: $.id\n      attributes:\n{numbers}"
    );
    let errors = load_error_lines(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    // `a25` is on line 7 + 25.
    assert!(
        errors[0].starts_with(
            "t.yaml:32:9: `a25` is custom attribute number 26 of type number for users"
        ),
        "{errors:?}"
    );
    assert!(errors[0].contains("Remove some (a25)"), "{errors:?}");

    // 25 numbers plus strings, booleans, dates and literals of other types load.
    let mixed = format!(
        "{}        s1: $.s\n        b1: {{ path: $.b, transform: [boolean] }}\n        d1: {{ path: $.d, transform: [datetime] }}\n        l1: 3\n",
        many_attributes(24, "{ path: $.x, transform: [number] }")
    );
    let text = format!(
        "source: {{ format: json, auth: none }}\nrules:\n  - name: r\n    user:\n      userId: $.id\n      attributes:\n{mixed}"
    );
    assert_eq!(load_error_lines(&text), Vec::<String>::new());
}

#[test]
fn the_attribute_limit_counts_users_across_rules_and_events_apart() {
    // 13 + 13 string user attributes in two rules: 26 for the account.
    let text = format!(
        "source: {{ format: json, auth: none }}\nrules:\n  - name: r1\n    user:\n      userId: $.id\n      attributes:\n{}  - name: r2\n    user:\n      userId: $.id\n      attributes:\n{}",
        many_attributes(13, "$.x"),
        (13..26)
            .map(|i| format!("        a{i:02}: $.x\n"))
            .collect::<String>()
    );
    let errors = load_error_lines(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("`a25` is custom attribute number 26 of type string for users"));

    // The same 26 names split over two events: 13 per event, fine. A mapped value's type
    // is the type of its targets.
    let text = format!(
        "source: {{ format: json, auth: none }}\nrules:\n  - name: r\n    events:\n      - userId: $.id\n        eventName: One\n        eventData:\n{}      - userId: $.id\n        eventName: Two\n        eventData:\n{}",
        many_attributes(13, "$.x").replace("        a", "          a"),
        many_attributes(13, "{ path: $.x, map: { Hot: 3, Cold: 1 } }")
            .replace("        a", "          a"),
    );
    assert_eq!(load_error_lines(&text), Vec::<String>::new());
}
