//! Personal data hidden from the viewer role: emails, phone numbers and names in
//! payloads, records and free text. Enough stays visible (first letter, domain, last
//! four digits) for support staff to tell two leads apart without reading them.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}").expect("email pattern")
});
/// Phone-like runs: an optional `+`, then digits with spaces, dots, dashes or brackets,
/// at least eight digits in all (checked in `mask_text`) so ids and postcodes stay.
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?\(?[0-9][0-9 ().\-]{6,}[0-9]").expect("phone pattern"));

/// What a caller may see unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reveal {
    /// Admins, or a viewer who revealed the whole row.
    All,
    /// A viewer: everything masked except these field names (as they appear in JSON).
    Fields(Vec<String>),
}

impl Reveal {
    pub fn none() -> Self {
        Reveal::Fields(Vec::new())
    }

    fn shows(&self, key: &str) -> bool {
        match self {
            Reveal::All => true,
            Reveal::Fields(fields) => fields.iter().any(|f| f == key),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Reveal::All)
    }
}

/// `rohan.deshpande@example.com` → `r***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => mask_name(email),
    }
}

/// `+919876543210` → `+91******3210`: the country code and the last four digits stay.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return "***".to_owned();
    }
    let plus = if phone.trim_start().starts_with('+') {
        "+"
    } else {
        ""
    };
    let head = if plus.is_empty() { 0 } else { 2 };
    let tail = 4;
    let hidden = digits.len() - head - tail;
    format!(
        "{plus}{}{}{}",
        digits[..head].iter().collect::<String>(),
        "*".repeat(hidden),
        digits[digits.len() - tail..].iter().collect::<String>()
    )
}

/// `Rohan` → `R***`.
pub fn mask_name(name: &str) -> String {
    let first: String = name.chars().take(1).collect();
    format!("{first}***")
}

/// Masks every email and phone number inside free text (raw bodies, errors, warnings).
pub fn mask_text(text: &str) -> String {
    let text = EMAIL.replace_all(text, |c: &regex::Captures| mask_email(&c[0]));
    PHONE
        .replace_all(&text, |c: &regex::Captures| {
            let found = &c[0];
            // Dates (`2024-01-15 10:30`) look like numbers too; they are not personal.
            let is_date = found.len() > 4
                && found[..4].chars().all(|c| c.is_ascii_digit())
                && found[4..].starts_with('-');
            if !is_date && found.chars().filter(char::is_ascii_digit).count() >= 8 {
                mask_phone(found)
            } else {
                found.to_owned()
            }
        })
        .into_owned()
}

/// What kind of personal data a JSON field name holds, judged by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Personal {
    Email,
    Phone,
    Name,
}

fn personal_field(key: &str) -> Option<Personal> {
    let key: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    if key.contains("email") {
        Some(Personal::Email)
    } else if ["phone", "mobile", "whatsapp"]
        .iter()
        .any(|p| key.contains(p))
    {
        Some(Personal::Phone)
    } else if matches!(
        key.as_str(),
        "name"
            | "firstname"
            | "lastname"
            | "middlename"
            | "fullname"
            // A sales owner is a person too (LeadSquared's OwnerIdName, CreatedByName).
            | "owner"
            | "ownername"
            | "createdby"
    ) || key.ends_with("idname")
        || key.ends_with("byname")
    {
        Some(Personal::Name)
    } else {
        None
    }
}

/// A JSON document with personal data masked, except the fields `reveal` shows.
pub fn mask_json(value: &Value, reveal: &Reveal) -> Value {
    if reveal.is_all() {
        return value.clone();
    }
    mask_value(value, None, reveal)
}

fn mask_value(value: &Value, field: Option<&str>, reveal: &Reveal) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), mask_value(v, Some(k), reveal)))
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| mask_value(v, field, reveal)).collect())
        }
        Value::String(s) if field.is_some_and(|f| reveal.shows(f)) => Value::String(s.clone()),
        Value::String(s) => Value::String(mask_string(s, field.and_then(personal_field))),
        other => other.clone(),
    }
}

/// A yes/no value: `"0"`, `"1"`, `"true"`, `"N"`... Flags such as `DoNotEmail` are named
/// like personal fields but say nothing about the person, and support staff need them.
fn is_flag(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "0" | "1"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "y"
            | "n"
            | "t"
            | "f"
            | "on"
            | "off"
            | "null"
            | "none"
    )
}

fn mask_string(s: &str, kind: Option<Personal>) -> String {
    if s.is_empty() || is_flag(s) {
        return s.to_owned();
    }
    match kind {
        Some(Personal::Email) if s.contains('@') => mask_email(s),
        Some(Personal::Phone) if s.chars().filter(char::is_ascii_digit).count() >= PHONE_DIGITS => {
            mask_phone(s)
        }
        Some(Personal::Name) => mask_name(s),
        // A user id, a note, or a field named like an email or phone that holds
        // something else (`EmailType: "Work"`) may still hold an email or a phone number.
        _ => mask_text(s),
    }
}

/// Digits from which a run of digits counts as a phone number.
const PHONE_DIGITS: usize = 6;

/// `"FirstName": "Rohan"` in JSON-like text, `<FirstName>Rohan</FirstName>` in XML and
/// `FirstName=Rohan` in a form body: a body that could not be parsed still names people.
static JSON_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""([A-Za-z0-9_ .\-]{1,64})"\s*:\s*"((?:[^"\\]|\\.){0,512})""#)
        .expect("json pair pattern")
});
static XML_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<((?:[A-Za-z0-9_\-]+:)?[A-Za-z0-9_\-]{1,64})>([^<]{0,512})</")
        .expect("xml pair pattern")
});
static FORM_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(^|[&?])([A-Za-z0-9_.\-]{1,64})=([^&\s]{0,512})").expect("form pair pattern")
});

/// A raw body (one that could not be parsed) with the values of personal fields masked
/// by their names, then every email and phone number in what is left.
pub fn mask_raw(text: &str) -> String {
    let by_name = |key: &str, value: &str| -> Option<String> {
        let kind = personal_field(key)?;
        Some(mask_string(value, Some(kind)))
    };
    let text = JSON_PAIR.replace_all(text, |c: &regex::Captures| match by_name(&c[1], &c[2]) {
        Some(masked) => format!("\"{}\": \"{masked}\"", &c[1]),
        None => c[0].to_owned(),
    });
    let text = XML_PAIR.replace_all(&text, |c: &regex::Captures| {
        let local = c[1].rsplit(':').next().unwrap_or(&c[1]);
        match by_name(local, &c[2]) {
            Some(masked) => format!("<{}>{masked}</", &c[1]),
            None => c[0].to_owned(),
        }
    });
    let text = FORM_PAIR.replace_all(&text, |c: &regex::Captures| match by_name(&c[2], &c[3]) {
        Some(masked) => format!("{}{}={masked}", &c[1], &c[2]),
        None => c[0].to_owned(),
    });
    mask_text(&text)
}

/// The names of the fields of `value` that masking changes, in document order, once
/// each: what a viewer can choose to reveal.
pub fn masked_fields(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_masked(value, None, &mut found);
    found
}

fn collect_masked(value: &Value, field: Option<&str>, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| collect_masked(v, Some(k), found)),
        Value::Array(items) => items.iter().for_each(|v| collect_masked(v, field, found)),
        Value::String(s) => {
            if let Some(field) = field
                && mask_string(s, personal_field(field)) != *s
                && !found.iter().any(|f| f == field)
            {
                found.push(field.to_owned());
            }
        }
        _ => {}
    }
}

/// Free text for a caller: masked unless everything is revealed.
pub fn text_for(text: &str, reveal: &Reveal) -> String {
    if reveal.is_all() {
        text.to_owned()
    } else {
        mask_text(text)
    }
}

/// Values quoted in a mapping error or warning (`"Rohan" is not a number`): they come
/// from the CRM record, so each is masked like a name, then emails and phones in the rest.
pub fn mask_quoted(text: &str) -> String {
    static QUOTED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#""((?:[^"\\]|\\.){1,512})""#).expect("quoted pattern"));
    let text = QUOTED.replace_all(text, |c: &regex::Captures| {
        let value = &c[1];
        if is_flag(value) {
            c[0].to_owned()
        } else {
            format!("\"{}\"", mask_name(value))
        }
    });
    mask_text(&text)
}

/// A mapping error or warning for a caller: masked unless everything is revealed.
pub fn quoted_for(text: &str, reveal: &Reveal) -> String {
    if reveal.is_all() {
        text.to_owned()
    } else {
        mask_quoted(text)
    }
}

/// A raw body for a caller: masked unless everything is revealed.
pub fn raw_for(text: &str, reveal: &Reveal) -> String {
    if reveal.is_all() {
        text.to_owned()
    } else {
        mask_raw(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_phones_and_names_keep_just_enough() {
        assert_eq!(
            mask_email("rohan.deshpande@example.com"),
            "r***@example.com"
        );
        assert_eq!(mask_phone("+919876543210"), "+91******3210");
        assert_eq!(mask_phone("+91-9876543210"), "+91******3210");
        assert_eq!(mask_phone("9876543210"), "******3210");
        assert_eq!(mask_name("Rohan"), "R***");
    }

    #[test]
    fn flags_and_non_personal_values_of_personal_fields_stay_readable() {
        let record = json!({
            "DoNotEmail": "0", "DoNotCall": "1", "EmailOptIn": "true", "DoNotSMS": "No",
            "EmailType": "Work", "PhoneType": "Mobile", "HasName": "Y",
            "EmailAddress": "rohan@example.com", "Phone": "+919876543210", "FirstName": "Rohan"
        });
        let masked = mask_json(&record, &Reveal::none());
        assert_eq!(
            masked,
            json!({
                "DoNotEmail": "0", "DoNotCall": "1", "EmailOptIn": "true", "DoNotSMS": "No",
                "EmailType": "Work", "PhoneType": "Mobile", "HasName": "Y",
                "EmailAddress": "r***@example.com", "Phone": "+91******3210", "FirstName": "R***"
            })
        );
        assert_eq!(
            masked_fields(&record),
            ["EmailAddress", "Phone", "FirstName"]
        );
    }

    #[test]
    fn values_quoted_in_errors_are_masked_like_names() {
        assert_eq!(
            mask_quoted(r#"user.first_name: "Rohan Deshpande" is not a number; "0" kept"#),
            r#"user.first_name: "R***" is not a number; "0" kept"#
        );
        assert_eq!(mask_quoted("no quotes, a@b.co"), "no quotes, a***@b.co");
    }

    #[test]
    fn raw_bodies_have_names_masked_by_their_field_in_json_xml_and_forms() {
        let broken_json = r#"{"FirstName": "Rohan", "LastName":"Deshpande", "Source": "Web", "DoNotEmail": "0", "EmailAddress": "rohan@example.com",,"#;
        let masked = mask_raw(broken_json);
        assert!(
            !masked.contains("Rohan") && !masked.contains("Deshpande"),
            "{masked}"
        );
        assert!(masked.contains(r#""FirstName": "R***""#), "{masked}");
        assert!(masked.contains(r#""Source": "Web""#), "{masked}");
        assert!(masked.contains(r#""DoNotEmail": "0""#), "{masked}");
        assert!(masked.contains("r***@example.com"), "{masked}");

        let xml = "<sf:FirstName>Kavya</sf:FirstName><sf:Company>Acme</sf:Company><LastName>Srinivasan</LastName><broken";
        let masked = mask_raw(xml);
        assert_eq!(
            masked,
            "<sf:FirstName>K***</sf:FirstName><sf:Company>Acme</sf:Company><LastName>S***</LastName><broken"
        );

        let form = "FirstName=Rohan&Source=Web&Mobile=9876543210&x";
        assert_eq!(
            mask_raw(form),
            "FirstName=R***&Source=Web&Mobile=******3210&x"
        );
    }

    #[test]
    fn free_text_masks_emails_and_long_numbers_only() {
        assert_eq!(
            mask_text("lead kavya.s@example.com, phone +91 80 4567 1234, zip 411038"),
            "lead k***@example.com, phone +91******1234, zip 411038"
        );
        assert_eq!(mask_text("HTTP 400: bad"), "HTTP 400: bad");
        assert_eq!(
            mask_text("on 2024-01-15 10:30:00"),
            "on 2024-01-15 10:30:00"
        );
    }

    #[test]
    fn json_fields_are_masked_by_name_and_by_content() {
        let record = json!({
            "FirstName": "Rohan", "EmailAddress": "rohan@example.com",
            "Mobile": "+91-9123456780", "userId": "rohan@example.com",
            "eventName": "Lead Created", "OwnerIdName": "Sneha Kulkarni",
            "attributes": {"whatsapp_number": "+919876543210", "score": 10}
        });
        let masked = mask_json(&record, &Reveal::none());
        assert_eq!(
            masked,
            json!({
                "FirstName": "R***", "EmailAddress": "r***@example.com",
                "Mobile": "+91******6780", "userId": "r***@example.com",
                "eventName": "Lead Created", "OwnerIdName": "S***",
                "attributes": {"whatsapp_number": "+91******3210", "score": 10}
            })
        );
        let one = mask_json(&record, &Reveal::Fields(vec!["Mobile".into()]));
        assert_eq!(one["Mobile"], "+91-9123456780");
        assert_eq!(one["FirstName"], "R***");
        assert_eq!(mask_json(&record, &Reveal::All), record);
        assert_eq!(
            masked_fields(&record),
            [
                "FirstName",
                "EmailAddress",
                "Mobile",
                "userId",
                "OwnerIdName",
                "whatsapp_number"
            ]
        );
    }
}
