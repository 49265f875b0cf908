//! The rules WebEngage enforces silently (it answers "queued" and drops bad data later),
//! checked here, where someone can still fix the mapping.

/// Attribute and event names must be shorter than this.
pub const MAX_NAME_CHARS: usize = 50;
/// String values must be shorter than this.
pub const MAX_STRING_CHARS: usize = 1000;
/// WebEngage keeps at most this many custom attributes of one type (account-wide for
/// users, per event for events).
pub const MAX_ATTRIBUTES_PER_TYPE: usize = 25;
/// Array and object user attributes: WebEngage keeps at most this many bytes (of
/// their JSON) per user in total.
pub const MAX_COMPLEX_ATTRIBUTE_BYTES: usize = 16 * 1024;
/// A transactional campaign's `dedupe.ttl`, in seconds, as WebEngage accepts it.
pub const DEDUPE_TTL_SECONDS: std::ops::RangeInclusive<i64> = 5..=1800;
/// WebEngage reserves names with this prefix.
pub const RESERVED_PREFIX: &str = "we_";

pub use super::types::{AttrType, AttributeType, AttributeTypes, TypeCheck};

/// A value as messages quote it: its JSON, cut after 80 characters.
pub fn show_value(v: &serde_json::Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text
    }
}

/// User fields WebEngage knows besides `attributes`.
pub const USER_FIELDS: &[&str] = &[
    "userId",
    "anonymousId",
    "firstName",
    "lastName",
    "birthDate",
    "gender",
    "email",
    "phone",
    "company",
    "hashedEmail",
    "hashedPhone",
    "emailOptIn",
    "smsOptIn",
    "rcsOptIn",
    "whatsappOptIn",
    "city",
    "region",
    "country",
    "locality",
    "postalCode",
];
/// Boolean user fields.
pub const BOOLEAN_USER_FIELDS: &[&str] = &["emailOptIn", "smsOptIn", "rcsOptIn", "whatsappOptIn"];
/// Values WebEngage accepts for `gender`.
pub const GENDERS: &[&str] = &["male", "female", "other"];
/// `userId` and `anonymousId` are at most this long.
pub const MAX_ID_CHARS: usize = 100;

/// An attribute or event name WebEngage will keep: under 50 characters, not `we_…`,
/// and no control characters (a NUL cannot even be stored).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name cannot be empty".to_owned());
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "{} holds a control character; WebEngage names are printable text",
            show_value(&serde_json::Value::String(name.to_owned()))
        ));
    }
    // Bytes bound characters from above: count characters only when it matters.
    if name.len() >= MAX_NAME_CHARS && name.chars().count() >= MAX_NAME_CHARS {
        return Err(format!(
            "`{name}` is too long: WebEngage drops names of {MAX_NAME_CHARS} characters or more"
        ));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "`{name}` starts with `{RESERVED_PREFIX}`, which WebEngage reserves; choose another name"
        ));
    }
    Ok(())
}

/// Checks a standard user field's value; `Ok` may convert it (numbers to text for text
/// fields), `Err` explains why WebEngage would drop it.
pub fn check_user_field(key: &str, value: serde_json::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    if BOOLEAN_USER_FIELDS.contains(&key) {
        return match value {
            Value::Bool(_) => Ok(value),
            other => Err(format!(
                "{other} is not true/false; add `transform: [boolean]`"
            )),
        };
    }
    let text = match value {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        other => return Err(format!("{other} is not text")),
    };
    match key {
        "gender" if !GENDERS.contains(&text.as_str()) => Err(format!(
            "`{text}` is not one of male, female, other; use `map:` to translate"
        )),
        "userId" | "anonymousId" if text.chars().count() > MAX_ID_CHARS => {
            Err(format!("`{text}` is longer than {MAX_ID_CHARS} characters"))
        }
        "phone" if !is_e164(&text) => Err(format!(
            "`{text}` is not E.164 (`+`, then 7 to 15 digits and nothing else); add `transform: [{{ phone: {{ default_region: IN }} }}]`"
        )),
        _ => Ok(Value::String(text)),
    }
}

/// `+` then the country code and number: 7 to 15 digits (the shortest assigned
/// numbers, Niue's and Saint Helena's, are 7 with their country code), no leading 0,
/// no separators. WebEngage answers `queued` for `+91-98765` and never reaches it.
pub fn is_e164(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// Drops array and object attributes, in order, once their JSON together passes
/// [`MAX_COMPLEX_ATTRIBUTE_BYTES`] (WebEngage would drop them silently); returns each
/// dropped name with the reason.
pub fn limit_complex_attributes(
    attrs: &mut serde_json::Map<String, serde_json::Value>,
) -> Vec<(String, String)> {
    use serde_json::Value;
    let mut used = 0usize;
    let mut dropped = Vec::new();
    attrs.retain(|name, value| {
        if !matches!(value, Value::Array(_) | Value::Object(_)) {
            return true;
        }
        let size = json_len(value);
        if used + size <= MAX_COMPLEX_ATTRIBUTE_BYTES {
            used += size;
            return true;
        }
        dropped.push((
            name.clone(),
            format!(
                "{} is {size} bytes of JSON and the user's array and object attributes would pass {MAX_COMPLEX_ATTRIBUTE_BYTES} bytes ({used} already); WebEngage keeps at most 16 KB of them per user and drops the rest",
                show_value(value)
            ),
        ));
        false
    });
    dropped
}

/// The length of a value's compact JSON, counted without building it.
fn json_len(v: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

/// The same check for a literal written in a mapping file, as a load-time message.
pub fn check_user_literal(key: &str, value: &serde_json::Value) -> Result<(), String> {
    check_user_field(key, value.clone())
        .map(|_| ())
        .map_err(|e| format!("`{key}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_webengage_rules() {
        assert!(check_name("lead_status").is_ok());
        assert!(check_name("we_status").unwrap_err().contains("reserves"));
        assert!(
            check_name(&"a".repeat(50))
                .unwrap_err()
                .contains("too long")
        );
        assert!(check_name(&"a".repeat(49)).is_ok());
        assert!(
            check_name("Lead\u{0}Synced")
                .unwrap_err()
                .contains("control")
        );
    }

    #[test]
    fn standard_fields_are_typed() {
        assert_eq!(check_user_field("emailOptIn", json!(true)), Ok(json!(true)));
        assert!(check_user_field("emailOptIn", json!("yes-please")).is_err());
        assert_eq!(
            check_user_field("postalCode", json!(411038)),
            Ok(json!("411038"))
        );
        assert!(check_user_field("gender", json!("M")).is_err());
        assert!(check_user_field("phone", json!("98765")).is_err());
        for bad in [
            "+91-98765",
            "+91 98765 43210",
            "+0123456789",
            "+123456",
            "+1234567890123456",
            "+",
            "919876543210",
        ] {
            assert!(check_user_field("phone", json!(bad)).is_err(), "{bad}");
        }
        for good in ["+919876543210", "+6834002", "+123456789012345"] {
            assert_eq!(check_user_field("phone", json!(good)), Ok(json!(good)));
        }
    }

    #[test]
    fn array_and_object_attributes_past_16_kb_are_dropped_in_order() {
        let big = json!(["x".repeat(10_000)]);
        let mut attrs = serde_json::Map::new();
        attrs.insert("a".into(), big.clone());
        attrs.insert("text".into(), json!("y".repeat(900)));
        attrs.insert("b".into(), big.clone());
        attrs.insert("small".into(), json!({"k": 1}));
        let dropped = limit_complex_attributes(&mut attrs);
        assert_eq!(attrs.keys().collect::<Vec<_>>(), vec!["a", "text", "small"]);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].0, "b");
        assert!(dropped[0].1.contains("16 KB"), "{}", dropped[0].1);
        // Exactly at the limit is kept.
        let exact = json!(["z".repeat(MAX_COMPLEX_ATTRIBUTE_BYTES - 4)]);
        assert_eq!(json_len(&exact), MAX_COMPLEX_ATTRIBUTE_BYTES);
        let mut attrs = serde_json::Map::new();
        attrs.insert("e".into(), exact);
        assert!(limit_complex_attributes(&mut attrs).is_empty());
    }

    #[test]
    fn every_documented_user_field_is_a_system_field() {
        for field in [
            "hashedEmail",
            "hashedPhone",
            "whatsappOptIn",
            "rcsOptIn",
            "locality",
            "postalCode",
        ] {
            assert!(USER_FIELDS.contains(&field), "{field}");
        }
        assert!(BOOLEAN_USER_FIELDS.contains(&"whatsappOptIn"));
        // A hashed phone is a hash, not a phone number.
        assert!(check_user_field("hashedPhone", json!("ab12")).is_ok());
    }
}
