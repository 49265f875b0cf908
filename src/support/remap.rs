//! Re-mapping stored CRM records through today's mappings: one record or many.

use sqlx::PgPool;

use super::{Role, SupportError};
use crate::ingest::TypeGuard;
use crate::mapping::IncomingRecord;
use crate::mapping::MappingSet;
use crate::store::support::InboundFilter;

#[derive(Debug, thiserror::Error)]
pub enum RemapError {
    #[error("no inbound record {0}")]
    NotFound(i64),
    #[error("inbound record {0} was malformed: there is no parsed record to map")]
    NoPayload(i64),
    #[error("no mapping file defines the source `{0}` any more")]
    UnknownSource(String),
    #[error("the database is unavailable")]
    Storage(#[from] sqlx::Error),
}

/// Runs one stored record through today's mappings and replaces what it produced.
/// Returns the number of new outbox rows.
pub async fn remap_record(
    pool: &PgPool,
    types: &TypeGuard,
    mappings: &MappingSet,
    inbound_id: i64,
) -> Result<u64, RemapError> {
    let record = crate::store::support::inbound_detail(pool, inbound_id)
        .await?
        .ok_or(RemapError::NotFound(inbound_id))?;
    let payload = record.payload.ok_or(RemapError::NoPayload(inbound_id))?;
    let mapping = mappings
        .get(&record.source)
        .ok_or_else(|| RemapError::UnknownSource(record.source.clone()))?;
    let received_at = jiff::Timestamp::from_second(record.received_at.unix_timestamp())
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let mut remapped = [IncomingRecord {
        dedupe_key: record.dedupe_key,
        version: None,
        mapped: mapping.map_record(&payload, received_at),
        payload,
    }];
    types.check(pool, &mut remapped).await?;
    let [remapped] = remapped;
    Ok(crate::store::remap::replace_operations(
        pool,
        inbound_id,
        &record.source,
        &mapping.content_hash,
        &remapped.mapped,
    )
    .await?)
}

/// `remap_record` as a support action: the re-map and its audit entry, as the console,
/// the admin API and the CLI each record it under `role`.
pub async fn remap_record_audited(
    pool: &PgPool,
    types: &TypeGuard,
    mappings: &MappingSet,
    inbound_id: i64,
    role: Role,
) -> Result<u64, SupportError> {
    if !role.may_act() {
        return Err(SupportError::ReadOnly);
    }
    let rows = remap_record(pool, types, mappings, inbound_id).await?;
    let target = format!("inbound {inbound_id}");
    crate::store::support::audit(pool, role.as_str(), "remap", &target, rows).await?;
    Ok(rows)
}

/// What re-mapping many records did: records re-mapped, outbox rows produced, records
/// that could not be, and why (the first [`MAX_ERRORS`], one line each).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RemapSummary {
    pub remapped: u64,
    pub operations: u64,
    pub failed: u64,
    pub errors: Vec<String>,
}

/// Reasons kept per bulk re-map: enough to see the pattern, bounded whatever the count.
pub const MAX_ERRORS: usize = 100;

impl RemapSummary {
    /// Records looked at so far.
    pub fn done(&self) -> u64 {
        self.remapped + self.failed
    }
}

/// Which stored records a bulk re-map walks.
#[derive(Debug, Clone)]
pub enum RemapSelection {
    /// Every record of a status (and source).
    Matching(InboundFilter),
    /// The records of one failed-record group of the issues view.
    Issue { source: String, cause: String },
}

/// Records read per step of a bulk re-map: a keyset walk, no cap on the total.
const CHUNK: i64 = 100;

impl RemapSelection {
    /// What the audit log and the job list call it.
    pub fn target(&self) -> String {
        match self {
            RemapSelection::Matching(filter) => format!(
                "status={} source={}",
                filter.status.as_deref().unwrap_or("*"),
                filter.source.as_deref().unwrap_or("*")
            ),
            RemapSelection::Issue { source, cause } => {
                format!("issue inbound source={source} cause={cause}")
            }
        }
    }

    /// How many records the re-map would map again: the dry run.
    pub async fn count(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        match self {
            RemapSelection::Matching(filter) => {
                crate::store::support::remap_count(pool, filter).await
            }
            RemapSelection::Issue { source, cause } => {
                crate::store::console::issue_record_count(pool, source, cause).await
            }
        }
    }

    /// The next ids after `after`, oldest first; empty at the end.
    async fn next_ids(&self, pool: &PgPool, after: i64) -> Result<Vec<i64>, sqlx::Error> {
        match self {
            RemapSelection::Matching(filter) => {
                crate::store::support::remap_ids(pool, filter, after, CHUNK).await
            }
            RemapSelection::Issue { source, cause } => {
                crate::store::console::issue_record_ids(pool, source, cause, after, CHUNK).await
            }
        }
    }
}

/// Re-maps every record of `selection`, oldest first, however many there are, a chunk
/// at a time; `progress` hears after each chunk (and may write it somewhere). A record
/// that cannot be mapped is counted and skipped; a database error stops all.
pub async fn remap_selection<F, Fut>(
    pool: &PgPool,
    types: &TypeGuard,
    mappings: &MappingSet,
    selection: &RemapSelection,
    mut progress: F,
) -> Result<RemapSummary, sqlx::Error>
where
    F: FnMut(RemapSummary) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut summary = RemapSummary::default();
    let mut after = 0;
    loop {
        let ids = selection.next_ids(pool, after).await?;
        let Some(&last) = ids.last() else {
            return Ok(summary);
        };
        after = last;
        for id in ids {
            match remap_record(pool, types, mappings, id).await {
                Ok(n) => {
                    summary.remapped += 1;
                    summary.operations += n;
                }
                Err(RemapError::Storage(e)) => return Err(e),
                Err(e) => {
                    summary.failed += 1;
                    if summary.errors.len() < MAX_ERRORS {
                        summary.errors.push(e.to_string());
                    }
                }
            }
        }
        progress(summary.clone()).await;
    }
}

/// `remap_selection` as a support action run to the end by the caller (the CLI), with
/// its audit entry.
pub async fn remap_selection_audited<F, Fut>(
    pool: &PgPool,
    types: &TypeGuard,
    mappings: &MappingSet,
    selection: &RemapSelection,
    role: Role,
    progress: F,
) -> Result<RemapSummary, SupportError>
where
    F: FnMut(RemapSummary) -> Fut,
    Fut: Future<Output = ()>,
{
    if !role.may_act() {
        return Err(SupportError::ReadOnly);
    }
    let summary = remap_selection(pool, types, mappings, selection, progress).await?;
    crate::store::support::audit(
        pool,
        role.as_str(),
        "remap",
        &selection.target(),
        summary.remapped,
    )
    .await?;
    Ok(summary)
}
