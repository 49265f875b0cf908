//! Accepting a webhook: authenticate, parse, map, store in one transaction. The HTTP
//! handler turns the outcome into each format's answer; nothing here knows HTTP.

use std::sync::Arc;

use serde_json::Value;
use sqlx::PgPool;

use crate::mapping::{MappingSet, SourceMapping};
use crate::source::{self, AuthError, BodyError, InboundRequest, SourceFormat, auth};
use crate::store::inbound::{self, IngestCounts, NewRecord, RequestMeta};
use group_commit::GroupCommit;

pub mod group_commit;
mod registry;
pub mod spool;
mod type_guard;
pub mod watch;

pub use registry::{Registry, ReloadError};
pub use type_guard::TypeGuard;

/// What storing webhooks needs: the group commit and the attribute types seen so far.
#[derive(Clone)]
pub struct IngestStore {
    pub committer: GroupCommit,
    pub types: Arc<TypeGuard>,
}

impl IngestStore {
    pub fn pool(&self) -> &PgPool {
        self.committer.pool()
    }
}

/// What became of an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Records parsed and stored (or recognised as duplicates).
    Stored {
        format: SourceFormat,
        counts: IngestCounts,
    },
    /// The body could not be parsed; it was kept as a `malformed` inbound record.
    MalformedStored {
        format: SourceFormat,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no mapping file defines the source `{0}`")]
    UnknownSource(String),
    #[error("authentication failed: {0}")]
    Unauthorized(#[from] AuthError),
    /// Not authenticated (the org id is inside the body), so nothing was stored.
    #[error("{0}")]
    Malformed(BodyError),
    #[error("the database is unavailable")]
    Storage(#[from] sqlx::Error),
}

/// Authenticates, parses, maps and durably stores one webhook request.
pub async fn accept_webhook(
    store: &IngestStore,
    mappings: &MappingSet,
    source_id: &str,
    request: &InboundRequest,
    request_id: &str,
) -> Result<Accepted, IngestError> {
    let mapping = authenticate(mappings, source_id, request)?;
    store_authenticated(store, mapping, source_id, request, request_id).await
}

/// Checks the request's credentials (headers, query, signature) against its source.
pub fn authenticate<'m>(
    mappings: &'m MappingSet,
    source_id: &str,
    request: &InboundRequest,
) -> Result<&'m SourceMapping, IngestError> {
    let mapping = mappings
        .get(source_id)
        .ok_or_else(|| IngestError::UnknownSource(source_id.to_owned()))?;
    auth::verify_request(&mapping.auth, request)?;
    Ok(mapping)
}

/// Parses, maps and stores a request already authenticated (now, or before it was
/// spooled: the spool keeps no credentials). The organization id, inside the body, is
/// still checked here.
pub async fn store_authenticated(
    store: &IngestStore,
    mapping: &SourceMapping,
    source_id: &str,
    request: &InboundRequest,
    request_id: &str,
) -> Result<Accepted, IngestError> {
    let meta = RequestMeta {
        source: source_id,
        mapping_hash: &mapping.content_hash,
        content_type: request.content_type(),
        request_id,
    };
    let parsed = match source::parse_body(mapping.format, request, mapping.records.as_ref()) {
        Ok(parsed) => parsed,
        Err(error) => return keep_malformed(store.pool(), mapping, &meta, request, error).await,
    };
    auth::verify_organization(
        &mapping.auth,
        parsed.organization_id.as_deref().unwrap_or(""),
    )?;
    let mut records = map_records(mapping, parsed.records, jiff::Timestamp::now());
    count_mapping_problems(source_id, &records);
    store.types.check(store.pool(), &mut records).await?;
    let counts = store.committer.ingest(&meta, records).await?;
    Ok(Accepted::Stored {
        format: mapping.format,
        counts,
    })
}

/// A body that cannot be parsed is kept once the sender is known to be genuine. When
/// the only credential is the Salesforce org id inside the body, it cannot be, so
/// nothing is stored.
async fn keep_malformed(
    pool: &PgPool,
    mapping: &SourceMapping,
    meta: &RequestMeta<'_>,
    request: &InboundRequest,
    error: BodyError,
) -> Result<Accepted, IngestError> {
    if !mapping.auth.organization_ids.is_empty() {
        return Err(IngestError::Malformed(error));
    }
    inbound::store_malformed(pool, meta, &request.body, &error.0).await?;
    Ok(Accepted::MalformedStored {
        format: mapping.format,
        reason: error.0,
    })
}

/// Runs the mapping on each record, outside any transaction.
pub fn map_records(
    mapping: &SourceMapping,
    records: Vec<Value>,
    received_at: jiff::Timestamp,
) -> Vec<NewRecord> {
    records
        .into_iter()
        .map(|payload| NewRecord {
            dedupe_key: mapping.dedupe_key(&payload),
            version: mapping.version_of(&payload),
            mapped: mapping.map_record(&payload, received_at),
            payload,
        })
        .collect()
}

/// Warnings and failures per rule, so a mapping that starts dropping fields after a
/// CRM change shows on a dashboard, not only in support tickets. Redeliveries count
/// again: this measures what the CRM sends, not what is stored.
fn count_mapping_problems(source: &str, records: &[NewRecord]) {
    for record in records {
        for warning in &record.mapped.warnings {
            if let Some(rule) = rule_names(warning, "`:").next() {
                metrics::counter!("bridge_mapping_warnings_total", "source" => source.to_owned(), "rule" => rule.to_owned()).increment(1);
            }
        }
        for rule in rule_names(record.mapped.error.as_deref().unwrap_or(""), "` failed:") {
            metrics::counter!("bridge_mapping_failures_total", "source" => source.to_owned(), "rule" => rule.to_owned()).increment(1);
        }
    }
}

/// The rule names in messages written as ``rule `NAME`<end>`` by the mapping engine.
fn rule_names<'a>(text: &'a str, end: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.match_indices("rule `").filter_map(move |(at, start)| {
        let rest = &text[at + start.len()..];
        let close = rest.find('`')?;
        rest[close..].starts_with(end).then(|| &rest[..close])
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn rule_names_come_from_the_engine_messages() {
        let error =
            "rule `lead-profile` failed: userId is required; rule `a` failed: x `b` failed: y";
        let names: Vec<_> = super::rule_names(error, "` failed:").collect();
        assert_eq!(names, ["lead-profile", "a"]);
        let warning = "rule `lead-profile`: phone dropped: not a phone";
        assert_eq!(
            super::rule_names(warning, "`:").next(),
            Some("lead-profile")
        );
    }
}
