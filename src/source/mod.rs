//! Sources: turning a webhook request (headers, query, body) into authenticated records.
//!
//! Each format owns its parser: `salesforce` (SOAP outbound messages, behind the linear
//! pre-scan of `xml_guard`), `leadsquared` (JSON, form-encoded or plain text), `json`
//! (any JSON). `credentials` checks what a mapping file's `source.auth` asks for.
//! Nothing here touches the database.

pub mod credentials;
pub mod json;
pub mod leadsquared;
pub mod salesforce;
pub mod xml_guard;

use std::collections::HashMap;

use serde_json::Value;

pub use credentials::{AuthError, AuthSpec};

/// The wire format a source's webhooks arrive in (`source.format` in a mapping file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    SalesforceOutbound,
    LeadSquared,
    Json,
}

impl SourceFormat {
    pub const ALL: [&'static str; 3] = ["salesforce-outbound", "leadsquared", "json"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "salesforce-outbound" => Some(SourceFormat::SalesforceOutbound),
            "leadsquared" => Some(SourceFormat::LeadSquared),
            "json" => Some(SourceFormat::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::SalesforceOutbound => "salesforce-outbound",
            SourceFormat::LeadSquared => "leadsquared",
            SourceFormat::Json => "json",
        }
    }
}

/// A webhook request as the sources see it: independent of the HTTP framework.
#[derive(Debug, Clone, Default)]
pub struct InboundRequest {
    /// Header names lowercased; a repeated header keeps its first value.
    pub headers: HashMap<String, String>,
    /// The raw query string, without `?`.
    pub query: String,
    pub body: Vec<u8>,
}

impl InboundRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// What the parsers read.
    pub fn as_body(&self) -> Body<'_> {
        Body {
            content_type: self.content_type(),
            bytes: &self.body,
        }
    }
}

/// A body as the parsers read it: the bytes and their declared content type.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    pub content_type: Option<&'a str>,
    pub bytes: &'a [u8],
}

/// What a body parses into: the records it carries, plus the Salesforce organization
/// id when the format has one (checked against `auth.organization_ids`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedBody {
    pub records: Vec<Value>,
    pub organization_id: Option<String>,
}

/// A body that cannot be read. The message is one line, safe to show the sender
/// (it never echoes secrets such as a Salesforce `SessionId`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// Default for `BRIDGE_MAX_RECORDS`: the records one JSON or LeadSquared request may carry.
pub const DEFAULT_MAX_RECORDS: usize = 1000;

/// Why a body gives no records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Malformed(#[from] BodyError),
    /// More records than one request may carry (`BRIDGE_MAX_RECORDS`); found while
    /// parsing, so a body of a million records never becomes a million values.
    #[error(
        "the body holds more than {limit} records; send at most {limit} per request (BRIDGE_MAX_RECORDS)"
    )]
    TooManyRecords { limit: usize },
}

/// Parses a body in the given format. `records` selects the records of a JSON body
/// (`source.records`); without it the body itself is the record, or each element of an
/// array. JSON and LeadSquared bodies of more than `max_records` records are refused
/// (Salesforce's own bound is `salesforce::MAX_NOTIFICATIONS`).
pub fn parse_body(
    format: SourceFormat,
    body: Body<'_>,
    records: Option<&jsonpath_rust::parser::model::JpQuery>,
    max_records: usize,
) -> Result<ParsedBody, ParseError> {
    match format {
        SourceFormat::SalesforceOutbound => Ok(salesforce::parse_notifications(body.bytes)?),
        SourceFormat::LeadSquared => {
            leadsquared::parse_body(body.content_type, body.bytes, records, max_records)
        }
        SourceFormat::Json => json::parse_body(body.bytes, records, max_records),
    }
}

/// The dedupe key a format uses when the mapping file gives no `dedupe_key` template:
/// Salesforce `OrganizationId:NotificationId`; LeadSquared `ProspectActivityId`, else
/// `ProspectID:ModifiedOn`; otherwise the SHA-256 of the record's canonical JSON.
pub fn default_dedupe_key(format: SourceFormat, record: &Value) -> String {
    match format {
        SourceFormat::SalesforceOutbound => salesforce::dedupe_key(record),
        SourceFormat::LeadSquared => leadsquared::dedupe_key(record),
        SourceFormat::Json => json::content_hash(record),
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
pub(crate) mod test_support {
    /// Reads a fixture at test time from the repository's own copy of the CRM payloads
    /// (`mappings/tests/fixtures/`), so a clone tests the same bytes wherever it lives.
    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/mappings/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::fixture;
    use super::*;

    fn request(content_type: &str, body: Vec<u8>) -> InboundRequest {
        InboundRequest {
            headers: HashMap::from([("content-type".to_owned(), content_type.to_owned())]),
            query: String::new(),
            body,
        }
    }

    #[test]
    fn parse_body_dispatches_on_format() {
        let sf = request(
            "text/xml; charset=utf-8",
            fixture("sf_outbound_lead_single.xml"),
        );
        let parsed = parse_body(SourceFormat::SalesforceOutbound, sf.as_body(), None, 1).unwrap();
        assert_eq!(
            parsed.organization_id.as_deref(),
            Some("00D5j00000KqRtBEAV")
        );
        assert_eq!(
            default_dedupe_key(SourceFormat::SalesforceOutbound, &parsed.records[0]),
            "00D5j00000KqRtB:04l5j00000Bq8LdAAJ"
        );
        // The same XML is no JSON.
        assert!(parse_body(SourceFormat::Json, sf.as_body(), None, 1).is_err());

        let lsq = request(
            "application/x-www-form-urlencoded",
            b"ProspectActivityId=a1&x=y".to_vec(),
        );
        let parsed = parse_body(SourceFormat::LeadSquared, lsq.as_body(), None, 1).unwrap();
        assert_eq!(
            default_dedupe_key(SourceFormat::LeadSquared, &parsed.records[0]),
            "a1"
        );

        let json = request("application/json", fixture("sf_flow_lead.json"));
        let parsed = parse_body(SourceFormat::Json, json.as_body(), None, 1).unwrap();
        let key = default_dedupe_key(SourceFormat::Json, &parsed.records[0]);
        assert_eq!(key, json::content_hash(&parsed.records[0]));
    }

    #[test]
    fn json_and_leadsquared_bodies_are_capped_but_not_salesforce() {
        let two = request("application/json", b"[{}, {}]".to_vec());
        for format in [SourceFormat::Json, SourceFormat::LeadSquared] {
            assert_eq!(
                parse_body(format, two.as_body(), None, 1),
                Err(ParseError::TooManyRecords { limit: 1 })
            );
            assert_eq!(
                parse_body(format, two.as_body(), None, 2)
                    .unwrap()
                    .records
                    .len(),
                2
            );
        }
        // Salesforce has a bound of its own (MAX_NOTIFICATIONS).
        let sf = request("text/xml", fixture("sf_outbound_lead_single.xml"));
        let parsed = parse_body(SourceFormat::SalesforceOutbound, sf.as_body(), None, 0).unwrap();
        assert_eq!(parsed.records.len(), 1);
    }

    #[test]
    fn format_names_round_trip() {
        for name in SourceFormat::ALL {
            assert_eq!(
                SourceFormat::parse(name).map(SourceFormat::as_str),
                Some(name)
            );
        }
        assert_eq!(SourceFormat::parse("xml"), None);
    }
}
