//! Reading a body: parse it in the source's declared format, then key and map every
//! record. The one way a body becomes records, for webhooks (`ingest`), `mappings
//! preview` and the mapping tests alike, so a preview or a test shows exactly what a
//! webhook would store.

use serde_json::Value;

use super::{MappedRecord, RecordVersion, SourceMapping};
use crate::source::{self, AuthError, Body, ParseError, credentials};

/// One CRM record of a body: its dedupe key, its version for the stale fence, what the
/// mapping made of it, and the record itself (kept for re-mapping).
#[derive(Debug, Clone)]
pub struct IncomingRecord {
    pub dedupe_key: String,
    pub payload: Value,
    pub version: Option<RecordVersion>,
    pub mapped: MappedRecord,
}

/// How to read a body.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// The time events without an `eventTime` get.
    pub received_at: jiff::Timestamp,
    /// JSON and LeadSquared bodies with more records are refused before any is mapped.
    pub max_records: usize,
    /// Check a Salesforce organization id against `auth.organization_ids` before
    /// mapping (webhooks); previews and tests map bodies of any organization.
    pub verify_organization: bool,
    /// Record where each output field came from (`preview --explain`).
    pub explain: bool,
}

impl ReadOptions {
    /// A preview's or a test's reading: no record limit, no organization check.
    pub fn offline(received_at: jiff::Timestamp) -> Self {
        ReadOptions {
            received_at,
            max_records: usize::MAX,
            verify_organization: false,
            explain: false,
        }
    }
}

/// Why a body gives no mapped records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The organization id inside a Salesforce body is not one this source accepts.
    #[error("authentication failed: {0}")]
    Unauthorized(#[from] AuthError),
}

impl SourceMapping {
    /// Parses `body` in this source's format, checks its organization id (when asked),
    /// then keys and maps each record. Never panics on data.
    pub fn read(
        &self,
        body: Body<'_>,
        options: &ReadOptions,
    ) -> Result<Vec<IncomingRecord>, ReadError> {
        let parsed = source::parse_body(
            self.format,
            body,
            self.records.as_ref(),
            options.max_records,
        )?;
        if options.verify_organization {
            credentials::verify_organization(
                &self.auth,
                parsed.organization_id.as_deref().unwrap_or(""),
            )?;
        }
        Ok(parsed
            .records
            .into_iter()
            .map(|payload| self.incoming(payload, options))
            .collect())
    }

    /// Keys and maps one record already parsed (an imported row): what [`Self::read`]
    /// does with each record of a body.
    pub fn incoming(&self, payload: Value, options: &ReadOptions) -> IncomingRecord {
        let mapped = if options.explain {
            self.map_record_explained(&payload, options.received_at)
        } else {
            self.map_record(&payload, options.received_at)
        };
        IncomingRecord {
            dedupe_key: self.dedupe_key(&payload),
            version: self.version_of(&payload),
            mapped,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::mapping::RecordStatus;

    fn mapping(format: &str, auth: &str) -> SourceMapping {
        let yaml = format!(
            "source: {{ format: {format}, auth: {auth} }}\nrules:\n  - name: r\n    user: {{ userId: $.Id }}\n"
        );
        SourceMapping::from_yaml_str(Path::new("s.yaml"), &yaml).expect("loads")
    }

    fn body<'a>(content_type: &'a str, bytes: &'a [u8]) -> Body<'a> {
        Body {
            content_type: Some(content_type),
            bytes,
        }
    }

    #[test]
    fn a_body_is_parsed_keyed_and_mapped() {
        let m = mapping("json", "none");
        let at = jiff::Timestamp::UNIX_EPOCH;
        let records = m
            .read(
                body("application/json", br#"[{"Id": "a"}, {"x": 1}]"#),
                &ReadOptions::offline(at),
            )
            .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].mapped.status, RecordStatus::Mapped);
        assert_eq!(
            records[0].dedupe_key,
            source::json::content_hash(&records[0].payload)
        );
        assert_eq!(records[1].mapped.status, RecordStatus::Failed);
        assert!(records[0].mapped.provenance.is_empty());
        let explained = ReadOptions {
            explain: true,
            ..ReadOptions::offline(at)
        };
        let records = m
            .read(body("application/json", br#"{"Id": "a"}"#), &explained)
            .unwrap();
        assert_eq!(records[0].mapped.provenance[0].field, "user.userId");
    }

    #[test]
    fn the_record_limit_and_the_organization_are_checked_before_mapping() {
        let m = mapping("json", "none");
        let capped = ReadOptions {
            max_records: 1,
            ..ReadOptions::offline(jiff::Timestamp::UNIX_EPOCH)
        };
        assert_eq!(
            m.read(body("application/json", b"[{}, {}]"), &capped)
                .unwrap_err(),
            ReadError::Parse(ParseError::TooManyRecords { limit: 1 })
        );

        let sf = mapping(
            "salesforce-outbound",
            "{ organization_ids: [00D000000000001] }",
        );
        let xml = crate::source::test_support::fixture("sf_outbound_lead_single.xml");
        let offline = ReadOptions::offline(jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(sf.read(body("text/xml", &xml), &offline).unwrap().len(), 1);
        let webhook = ReadOptions {
            verify_organization: true,
            ..offline
        };
        assert_eq!(
            sf.read(body("text/xml", &xml), &webhook).unwrap_err(),
            ReadError::Unauthorized(AuthError::Organization)
        );
    }
}
