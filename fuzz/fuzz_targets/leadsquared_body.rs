//! The LeadSquared body parser on arbitrary bytes, under each content type it reads
//! differently (the first byte picks one): records are objects, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webengage_bridge::source::leadsquared;

const CONTENT_TYPES: [Option<&str>; 4] = [
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("text/plain; charset=utf-8"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    if let Ok(parsed) = leadsquared::parse_body(content_type, body, None, 1000) {
        for record in &parsed.records {
            assert!(record.is_object());
            let _ = leadsquared::dedupe_key(record);
        }
    }
});
