//! What support staff search by, checked once for every surface: a search term is
//! bounded (an unbounded `ILIKE` over every stored record is a denial of service) and
//! holds no NUL (Postgres text cannot), and a status is one the table has.

use super::SupportError;
use crate::store::{InboundStatus, OutboxStatus};

/// The longest search term: longer than any email, phone or CRM id.
pub const MAX_TERM: usize = 200;
/// The shortest free-text search term.
pub const MIN_TERM: usize = 3;

/// A free-text search term: trimmed, non-empty, at most [`MAX_TERM`] characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm(String);

impl SearchTerm {
    /// `None` for an empty term (no search), the term, or why it cannot be searched.
    pub fn parse(raw: Option<&str>, name: &str) -> Result<Option<SearchTerm>, SupportError> {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        if raw.contains('\0') {
            return Err(SupportError::Invalid(format!(
                "`{name}` holds a NUL character, which no stored record can contain"
            )));
        }
        if raw.chars().count() > MAX_TERM {
            return Err(SupportError::Invalid(format!(
                "`{name}` is longer than {MAX_TERM} characters: search for an email, phone or id"
            )));
        }
        Ok(Some(SearchTerm(raw.to_owned())))
    }

    /// A free-text search (`q`): also at least [`MIN_TERM`] characters, the shortest a
    /// trigram index can answer (a shorter one would read every stored record).
    pub fn free_text(raw: Option<&str>, name: &str) -> Result<Option<SearchTerm>, SupportError> {
        let term = SearchTerm::parse(raw, name)?;
        match &term {
            Some(t) if t.0.chars().count() < MIN_TERM => Err(SupportError::Invalid(format!(
                "`{name}` needs at least {MIN_TERM} characters: search for an email, phone or id"
            ))),
            _ => Ok(term),
        }
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Which table a status belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOf {
    Outbox,
    Inbound,
}

/// A status filter: `None` when absent or empty, else one of the table's statuses.
pub fn status(raw: Option<&str>, of: StatusOf) -> Result<Option<String>, SupportError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let (known, names): (bool, Vec<&str>) = match of {
        StatusOf::Outbox => (
            OutboxStatus::parse(raw).is_some(),
            OutboxStatus::NAMES.to_vec(),
        ),
        StatusOf::Inbound => (
            InboundStatus::parse(raw).is_some(),
            InboundStatus::ALL.iter().map(|s| s.as_str()).collect(),
        ),
    };
    if known {
        Ok(Some(raw.to_owned()))
    } else {
        Err(SupportError::Invalid(format!(
            "`{}` is not a status: use one of {}",
            raw.escape_debug(),
            names.join(", ")
        )))
    }
}

/// A plain filter value (source, user id): bounded, no NUL; `None` when empty.
pub fn value(raw: Option<&str>, name: &str) -> Result<Option<String>, SupportError> {
    Ok(SearchTerm::parse(raw, name)?.map(SearchTerm::into_inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_bounded_and_nul_free() {
        assert_eq!(SearchTerm::parse(Some("  "), "q").unwrap(), None);
        assert_eq!(
            SearchTerm::parse(Some(" a@b.co "), "q").unwrap(),
            Some(SearchTerm("a@b.co".into()))
        );
        assert!(SearchTerm::parse(Some("a\0b"), "q").is_err());
        assert!(SearchTerm::parse(Some(&"x".repeat(MAX_TERM + 1)), "q").is_err());
        assert!(SearchTerm::parse(Some(&"é".repeat(MAX_TERM)), "q").is_ok());
        assert!(SearchTerm::free_text(Some("ab"), "q").is_err());
        assert!(SearchTerm::free_text(Some("abc"), "q").is_ok());
        assert_eq!(SearchTerm::free_text(Some(""), "q").unwrap(), None);
    }

    #[test]
    fn statuses_are_the_tables_own() {
        assert_eq!(
            status(Some("dead"), StatusOf::Outbox).unwrap(),
            Some("dead".into())
        );
        assert!(status(Some("dead"), StatusOf::Inbound).is_err());
        assert_eq!(status(Some(""), StatusOf::Inbound).unwrap(), None);
        assert!(status(Some("failed"), StatusOf::Inbound).is_ok());
    }
}
