//! `mappings preview`: one body read exactly as a webhook's would be
//! ([`SourceMapping::read`](crate::mapping::SourceMapping::read)), without a database
//! or authentication, printed as the operations the worker would send.

use serde_json::Value;

use crate::mapping::{MappingSet, ReadError, ReadOptions};
use crate::source::Body;
use crate::webengage::Operation;

/// What to preview: a source's body, as of a time; with `explain` each record also
/// lists, under `"explain"`, every output field with its rule and the path, literal,
/// template or fallback that produced it.
#[derive(Debug, Clone, Copy)]
pub struct PreviewRequest<'a> {
    pub source_id: &'a str,
    pub body: Body<'a>,
    pub received_at: jiff::Timestamp,
    pub explain: bool,
}

/// `{"records": [{"key", "status", "operations", "warnings", "error"}, ...]}` (interface.md);
/// each operation's `body` is exactly what the worker sends for it.
pub fn preview(mappings: &MappingSet, request: PreviewRequest<'_>) -> Result<Value, PreviewError> {
    let mapping = mappings
        .get(request.source_id)
        .ok_or_else(|| PreviewError::UnknownSource(request.source_id.to_owned()))?;
    let options = ReadOptions {
        explain: request.explain,
        ..ReadOptions::offline(request.received_at)
    };
    let records: Vec<Value> = mapping
        .read(request.body, &options)?
        .into_iter()
        .map(|record| {
            let mapped = record.mapped;
            let mut out = serde_json::json!({
                "key": record.dedupe_key,
                "status": mapped.status.as_str(),
                "operations": mapped.operations.iter().map(on_the_wire).collect::<Vec<_>>(),
                "warnings": mapped.warnings,
                "error": mapped.error(),
            });
            if let (true, Value::Object(m)) = (request.explain, &mut out) {
                m.insert("explain".to_owned(), serde_json::json!(mapped.provenance));
            }
            out
        })
        .collect();
    Ok(serde_json::json!({ "records": records }))
}

/// An operation as the worker sends it alone: `body` is the request's JSON; a
/// transaction's `campaignId` (part of the URL) is shown beside it.
fn on_the_wire(op: &Operation) -> Value {
    let (body, campaign) = op.wire();
    let mut out = serde_json::json!({ "rule": op.rule, "kind": op.kind, "body": body });
    if let (Some(campaign), Value::Object(m)) = (campaign, &mut out) {
        m.insert("campaignId".to_owned(), campaign);
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("no mapping file defines the source `{0}`")]
    UnknownSource(String),
    #[error("the body cannot be parsed: {0}")]
    Body(#[from] ReadError),
}
