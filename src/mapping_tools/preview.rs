//! `mappings preview`: one body parsed and mapped exactly as a webhook would be,
//! without a database or authentication.

use serde_json::Value;

use crate::mapping::MappingSet;
use crate::source::{self, BodyError, InboundRequest};

/// `mappings preview`: parses and maps one body exactly as a webhook would be, without
/// a database or authentication, and returns the operations the worker would send.
pub fn preview(
    mappings: &MappingSet,
    source_id: &str,
    body: Vec<u8>,
    content_type: Option<String>,
    received_at: jiff::Timestamp,
) -> Result<Value, PreviewError> {
    preview_with(mappings, source_id, body, content_type, received_at, false)
}

/// `preview`, and with `explain` each record also lists, under `"explain"`, every output
/// field with its rule and the path, literal, template or fallback that produced it.
pub fn preview_with(
    mappings: &MappingSet,
    source_id: &str,
    body: Vec<u8>,
    content_type: Option<String>,
    received_at: jiff::Timestamp,
    explain: bool,
) -> Result<Value, PreviewError> {
    let mapping = mappings
        .get(source_id)
        .ok_or_else(|| PreviewError::UnknownSource(source_id.to_owned()))?;
    let mut request = InboundRequest {
        body,
        ..InboundRequest::default()
    };
    if let Some(ct) = content_type {
        request.headers.insert("content-type".to_owned(), ct);
    }
    let parsed = source::parse_body(mapping.format, &request, mapping.records.as_ref())
        .map_err(PreviewError::Body)?;
    let records: Vec<Value> = parsed
        .records
        .iter()
        .map(|payload| {
            let (mapped, provenance) = if explain {
                let (m, p) = mapping.map_record_explained(payload, received_at);
                (m, Some(p))
            } else {
                (mapping.map_record(payload, received_at), None)
            };
            let mut out = serde_json::json!({
                "key": mapping.dedupe_key(payload),
                "status": mapped.status.as_str(),
                "operations": mapped.operations,
                "warnings": mapped.warnings,
                "error": mapped.error,
            });
            if let (Some(p), Value::Object(m)) = (provenance, &mut out) {
                m.insert("explain".to_owned(), serde_json::json!(p));
            }
            out
        })
        .collect();
    Ok(serde_json::json!({ "records": records }))
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("no mapping file defines the source `{0}`")]
    UnknownSource(String),
    #[error("the body cannot be parsed: {0}")]
    Body(BodyError),
}
