//! LeadSquared webhooks: JSON, form-encoded or plain text holding JSON; object or array.

use jsonpath_rust::parser::model::JpQuery;
use serde_json::Value;

use super::{BodyError, ParsedBody};

pub fn parse_body(
    content_type: Option<&str>,
    body: &[u8],
    records: Option<&JpQuery>,
) -> Result<ParsedBody, BodyError> {
    let _ = (content_type, body, records);
    todo!("leadsquared parser")
}

/// `ProspectActivityId`, else `ProspectID:ModifiedOn`, else the content hash.
pub fn dedupe_key(record: &Value) -> String {
    let _ = record;
    todo!("leadsquared dedupe key")
}
