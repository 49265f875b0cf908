//! Erasure: every stored trace of one person deleted on request (a data subject's
//! right to erasure), audited without the personal data itself. What WebEngage already
//! received is beyond the bridge's reach (docs/operations.md).

use sqlx::PgPool;

use super::{Role, SupportError};
use crate::store::lifecycle::{self, Erased, Trace};
use crate::store::support as store;

/// Whose traces to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    /// A WebEngage user id (as the mappings produce it: often an email or a CRM id).
    User(String),
    Email(String),
    /// Matched by its digits whatever the separators (`+91-98765 43210`): the last ten,
    /// the national number of most plans.
    Phone(String),
}

/// The request's way of naming a person: exactly one of the three.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonRequest {
    pub user: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl TryFrom<PersonRequest> for Person {
    type Error = SupportError;

    fn try_from(r: PersonRequest) -> Result<Self, Self::Error> {
        let given = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let person = match (given(r.user), given(r.email), given(r.phone)) {
            (Some(user), None, None) => Person::User(user),
            (None, Some(email), None) if email.contains('@') => Person::Email(email),
            (None, Some(_), None) => {
                return Err(SupportError::Invalid(
                    "`email` is not an email address".into(),
                ));
            }
            (None, None, Some(phone)) => {
                let digits = phone.chars().filter(char::is_ascii_digit).count();
                if digits < 7 {
                    return Err(SupportError::Invalid(
                        "`phone` needs at least 7 digits to name one person".into(),
                    ));
                }
                Person::Phone(phone)
            }
            _ => {
                return Err(SupportError::Invalid(
                    "name the person by exactly one of `user`, `email` or `phone`".into(),
                ));
            }
        };
        let value = person.value();
        if value.contains('\0') || value.chars().count() > 320 || value.chars().count() < 3 {
            return Err(SupportError::Invalid(
                "the user id, email or phone must be 3 to 320 characters without NUL".into(),
            ));
        }
        Ok(person)
    }
}

impl Person {
    fn value(&self) -> &str {
        match self {
            Person::User(v) | Person::Email(v) | Person::Phone(v) => v,
        }
    }

    /// What the audit log says: the kind of identifier, never the identifier.
    fn kind(&self) -> &'static str {
        match self {
            Person::User(_) => "user",
            Person::Email(_) => "email",
            Person::Phone(_) => "phone",
        }
    }

    /// The person as a case-insensitive Postgres regular expression over stored text.
    fn trace(&self) -> Trace {
        match self {
            Person::User(user) => Trace {
                pattern: escape(user),
                user_id: Some(user.clone()),
            },
            // Form bodies carry `@` as `%40`.
            Person::Email(email) => Trace {
                pattern: escape(email).replace('@', "(@|%40)"),
                user_id: None,
            },
            Person::Phone(phone) => {
                let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
                let national = &digits[digits.len().saturating_sub(10)..];
                let pattern = national
                    .iter()
                    .map(char::to_string)
                    .collect::<Vec<_>>()
                    .join("[^0-9]{0,3}");
                // A country code may stand before the national number; nothing after it.
                Trace {
                    pattern: format!("{pattern}($|[^0-9])"),
                    user_id: None,
                }
            }
        }
    }
}

/// `value` as a regular expression matching itself literally.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for c in value.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Erases every stored trace of `person` (admin and terminal only), then writes the
/// audit entry: who erased, by which kind of identifier, how many rows; never whom.
/// Refused while the spool still holds requests not yet stored: they could bring the
/// person back after the erasure.
pub async fn erase(
    pool: &PgPool,
    role: Role,
    person: &Person,
    spool_backlog: bool,
) -> Result<Erased, SupportError> {
    if role == Role::Viewer {
        return Err(SupportError::ReadOnly);
    }
    if spool_backlog {
        return Err(SupportError::Conflict(
            "the spool (BRIDGE_SPOOL_DIR) holds webhooks not yet stored; erase once it has drained"
                .into(),
        ));
    }
    let erased = lifecycle::erase(pool, &person.trace()).await?;
    let rows = erased.inbound_records + erased.outbox_rows;
    let target = format!(
        "erase by {}: {} inbound record(s), {} outbox row(s), {} attempt(s)",
        person.kind(),
        erased.inbound_records,
        erased.outbox_rows,
        erased.attempts
    );
    store::audit(pool, role.as_str(), "erase", &target, rows).await?;
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(
        user: Option<&str>,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Person, SupportError> {
        Person::try_from(PersonRequest {
            user: user.map(Into::into),
            email: email.map(Into::into),
            phone: phone.map(Into::into),
        })
    }

    #[test]
    fn exactly_one_identifier_names_a_person() {
        assert!(person(None, None, None).is_err());
        assert!(person(Some("u-1"), Some("a@b.co"), None).is_err());
        assert!(person(None, Some("not-an-email"), None).is_err());
        assert!(person(None, None, Some("12-34")).is_err());
        assert!(person(Some("a\0b"), None, None).is_err());
        assert_eq!(
            person(None, Some(" a@b.co "), None).unwrap(),
            Person::Email("a@b.co".into())
        );
    }

    #[test]
    fn patterns_match_the_value_literally_and_phones_by_digits() {
        let email = Person::Email("r.d+x@example.com".into()).trace();
        assert_eq!(email.pattern, r"r\.d\+x(@|%40)example\.com");
        let phone = Person::Phone("+91 98765-43210".into()).trace();
        let re = regex::Regex::new(&phone.pattern).unwrap();
        for stored in [
            "+91-9876543210",
            "+919876543210",
            "98765 43210",
            "\"9876543210\"",
        ] {
            assert!(re.is_match(stored), "{stored}");
        }
        assert!(!re.is_match("19876543210999"));
    }
}
