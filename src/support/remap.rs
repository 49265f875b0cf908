//! Re-mapping stored CRM records through today's mappings: one record or many.

use sqlx::PgPool;

use crate::ingest::TypeGuard;
use crate::mapping::IncomingRecord;
use crate::mapping::MappingSet;
use crate::store::inbound;

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
    Ok(inbound::replace_operations(
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
    role: &str,
) -> Result<u64, RemapError> {
    let rows = remap_record(pool, types, mappings, inbound_id).await?;
    let target = format!("inbound {inbound_id}");
    crate::store::support::audit(pool, role, "remap", &target, rows).await?;
    Ok(rows)
}

/// What re-mapping many records did: records re-mapped, outbox rows produced, and why
/// the others could not be (one line each).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RemapSummary {
    pub remapped: u64,
    pub operations: u64,
    pub errors: Vec<String>,
}

/// Re-maps every stored record of `status` (and `source`, when given), at most `limit`.
/// A record that cannot be mapped is reported and skipped; a database error stops all.
pub async fn remap_matching(
    pool: &PgPool,
    types: &TypeGuard,
    mappings: &MappingSet,
    status: &str,
    source: Option<&str>,
    limit: i64,
) -> Result<RemapSummary, sqlx::Error> {
    let ids = inbound::ids_for_remap(pool, Some(status), source, limit).await?;
    let mut summary = RemapSummary::default();
    for id in ids {
        match remap_record(pool, types, mappings, id).await {
            Ok(n) => {
                summary.remapped += 1;
                summary.operations += n;
            }
            Err(RemapError::Storage(e)) => return Err(e),
            Err(e) => summary.errors.push(e.to_string()),
        }
    }
    Ok(summary)
}
