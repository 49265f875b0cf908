//! Generic JSON sources (Salesforce Flow and Apex callouts, anything else that posts JSON).

use jsonpath_rust::parser::model::JpQuery;
use serde_json::Value;

use super::{BodyError, ParsedBody};

pub fn parse_body(body: &[u8], records: Option<&JpQuery>) -> Result<ParsedBody, BodyError> {
    let _ = (body, records);
    todo!("json parser")
}

/// SHA-256 (hex) of the record's canonical JSON (object keys sorted).
pub fn content_hash(record: &Value) -> String {
    let _ = record;
    todo!("content hash")
}
