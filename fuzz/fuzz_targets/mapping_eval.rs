//! The mapping evaluator on arbitrary records: the shipped example mappings run on any
//! JSON without panicking, and what they produce keeps WebEngage's shape.
//! The first byte picks the mapping; the rest is the record's JSON.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use webengage_bridge::mapping::SourceMapping;

fn mappings() -> &'static [SourceMapping] {
    static MAPPINGS: OnceLock<Vec<SourceMapping>> = OnceLock::new();
    MAPPINGS.get_or_init(|| {
        [
            ("leadsquared.yaml", include_str!("../../mappings/leadsquared.yaml")),
            ("salesforce.yaml", include_str!("../../mappings/salesforce.yaml")),
            ("salesforce-flow.yaml", include_str!("../../mappings/salesforce-flow.yaml")),
        ]
        .into_iter()
        .map(|(name, text)| SourceMapping::from_yaml_str(Path::new(name), text).expect("example mappings load"))
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, json)) = data.split_first() else {
        return;
    };
    let Ok(record) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let mapping = &mappings()[pick as usize % mappings().len()];
    let _ = mapping.dedupe_key(&record);
    let _ = mapping.version_of(&record);
    let mapped = mapping.map_record(&record, jiff::Timestamp::UNIX_EPOCH);
    for op in &mapped.operations {
        let body = op.body.as_object().expect("an operation body is a JSON object");
        assert!(body.contains_key("userId") || body.contains_key("anonymousId") || op.kind.as_str() == "transaction");
        // Nulls and empty strings never reach WebEngage.
        assert!(body.values().all(|v| !v.is_null() && v != &Value::String(String::new())));
    }
});
