//! The rules WebEngage enforces silently (it answers "queued" and drops bad data later),
//! checked here, where someone can still fix the mapping.

/// Attribute and event names must be shorter than this.
pub const MAX_NAME_CHARS: usize = 50;
/// String values must be shorter than this.
pub const MAX_STRING_CHARS: usize = 1000;
/// WebEngage keeps at most this many custom attributes of one type (account-wide for
/// users, per event for events).
pub const MAX_ATTRIBUTES_PER_TYPE: usize = 25;
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
        "phone" if !text.starts_with('+') => Err(format!(
            "`{text}` is not E.164; add `transform: [{{ phone: {{ default_region: IN }} }}]`"
        )),
        _ => Ok(Value::String(text)),
    }
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
    }
}
