//! The Salesforce outbound-message parser on arbitrary bytes: a record set or a
//! `BodyError`, never a panic; parsed records always dedupe.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webengage_bridge::source::salesforce;

fuzz_target!(|body: &[u8]| {
    if let Ok(parsed) = salesforce::parse_notifications(body) {
        assert!(
            !parsed.records.is_empty() && parsed.records.len() <= salesforce::MAX_NOTIFICATIONS
        );
        assert!(parsed.organization_id.is_some());
        for record in &parsed.records {
            assert!(record.get("SessionId").is_none());
            let _ = salesforce::dedupe_key(record);
        }
    }
});
