//! Inbound records and the ingest transaction: every record of a webhook request and
//! its outbox rows are committed together, before the CRM is answered.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::mapping::{MappedRecord, RecordStatus, RecordVersion};
use crate::webengage::Operation;

/// One parsed and mapped record, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub dedupe_key: String,
    pub payload: Value,
    pub version: Option<RecordVersion>,
    pub mapped: MappedRecord,
}

/// How the records of one request were stored: the webhook's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestCounts {
    /// New records that produced operations.
    pub accepted: u32,
    /// Already stored under the same source and dedupe key: not stored again.
    pub duplicates: u32,
    /// No rule matched: stored, nothing to send.
    pub ignored: u32,
    /// Older than a version already accepted: stored, nothing to send.
    pub stale: u32,
    /// A rule failed: stored for re-mapping.
    pub failed: u32,
}

/// Where a request came from, recorded on each row for support staff.
#[derive(Debug, Clone)]
pub struct RequestMeta<'a> {
    pub source: &'a str,
    pub mapping_hash: &'a str,
    pub content_type: Option<&'a str>,
    pub request_id: &'a str,
}

/// Stores every record of one request, and the outbox rows of the new ones, in one
/// transaction. Returns only after `COMMIT`.
pub async fn ingest(
    pool: &PgPool,
    meta: &RequestMeta<'_>,
    records: &[NewRecord],
) -> Result<IngestCounts, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut counts = IngestCounts::default();
    for record in records {
        let stale = match &record.version {
            Some(version) => !advance_version(&mut tx, meta.source, version).await?,
            None => false,
        };
        let status = if stale {
            "stale"
        } else {
            record.mapped.status.as_str()
        };
        let Some(inbound_id) = insert_inbound(&mut tx, meta, record, status).await? else {
            counts.duplicates += 1;
            continue;
        };
        if stale {
            counts.stale += 1;
            continue;
        }
        insert_outbox(&mut tx, meta, inbound_id, &record.mapped.operations).await?;
        match record.mapped.status {
            RecordStatus::Mapped => counts.accepted += 1,
            RecordStatus::Ignored => counts.ignored += 1,
            RecordStatus::Failed => counts.failed += 1,
        }
    }
    tx.commit().await?;
    Ok(counts)
}

/// Moves the fence forward when `version` is not older than the newest accepted one.
/// The row lock of `ON CONFLICT DO UPDATE` decides between concurrent requests.
async fn advance_version(
    conn: &mut PgConnection,
    source: &str,
    version: &RecordVersion,
) -> Result<bool, sqlx::Error> {
    let advanced: Option<i32> = sqlx::query_scalar(
        "INSERT INTO record_versions (source, record_key, version_at) VALUES ($1, $2, $3)
         ON CONFLICT (source, record_key) DO UPDATE
           SET version_at = EXCLUDED.version_at, updated_at = now()
           WHERE record_versions.version_at <= EXCLUDED.version_at
         RETURNING 1",
    )
    .bind(source)
    .bind(&version.key)
    .bind(&version.at)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(advanced.is_some())
}

/// Inserts the raw record; `None` when it is a duplicate.
async fn insert_inbound(
    conn: &mut PgConnection,
    meta: &RequestMeta<'_>,
    record: &NewRecord,
    status: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO inbound_records
           (source, dedupe_key, status, payload, content_type, warnings, error, mapping_hash, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (source, dedupe_key) DO NOTHING
         RETURNING id",
    )
    .bind(meta.source)
    .bind(&record.dedupe_key)
    .bind(status)
    .bind(&record.payload)
    .bind(meta.content_type)
    .bind(serde_json::json!(record.mapped.warnings))
    .bind(&record.mapped.error)
    .bind(meta.mapping_hash)
    .bind(meta.request_id)
    .fetch_optional(&mut *conn)
    .await
}

/// One multi-row insert for all operations of a record; ids follow the CRM's order.
async fn insert_outbox(
    conn: &mut PgConnection,
    meta: &RequestMeta<'_>,
    inbound_id: i64,
    operations: &[Operation],
) -> Result<(), sqlx::Error> {
    if operations.is_empty() {
        return Ok(());
    }
    let request_ids: Vec<Uuid> = operations.iter().map(|_| Uuid::now_v7()).collect();
    let rules: Vec<&str> = operations.iter().map(|o| o.rule.as_str()).collect();
    let kinds: Vec<&str> = operations.iter().map(|o| o.kind.as_str()).collect();
    let users: Vec<Option<String>> = operations.iter().map(Operation::user_key).collect();
    let bodies: Vec<Value> = operations.iter().map(|o| o.body.clone()).collect();
    sqlx::query(
        "INSERT INTO outbox (request_id, inbound_id, source, rule, kind, user_id, body, mapping_hash)
         SELECT r, $2, $3, ru, k, u, b, $4
         FROM UNNEST($1::uuid[], $5::text[], $6::text[], $7::text[], $8::jsonb[])
              WITH ORDINALITY AS t(r, ru, k, u, b, ord)
         ORDER BY ord",
    )
    .bind(&request_ids)
    .bind(inbound_id)
    .bind(meta.source)
    .bind(meta.mapping_hash)
    .bind(&rules)
    .bind(&kinds)
    .bind(&users)
    .bind(&bodies)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Keeps a body that could not be parsed, so support staff can see what the CRM sent.
/// A repeat of the same bytes is a duplicate. Returns false for a duplicate.
pub async fn store_malformed(
    pool: &PgPool,
    meta: &RequestMeta<'_>,
    body: &[u8],
    error: &str,
) -> Result<bool, sqlx::Error> {
    let key = format!("malformed:{}", hex::encode(Sha256::digest(body)));
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO inbound_records (source, dedupe_key, status, raw_body, content_type, error, mapping_hash, request_id)
         VALUES ($1, $2, 'malformed', $3, $4, $5, $6, $7)
         ON CONFLICT (source, dedupe_key) DO NOTHING
         RETURNING id",
    )
    .bind(meta.source)
    .bind(key)
    .bind(String::from_utf8_lossy(body).replace('\0', "\u{FFFD}"))
    .bind(meta.content_type)
    .bind(error)
    .bind(meta.mapping_hash)
    .bind(meta.request_id)
    .fetch_optional(pool)
    .await?;
    Ok(inserted.is_some())
}

/// Replaces what an inbound record produced with what today's mapping produces:
/// rows not yet delivered are cancelled (superseded), new rows are added except those
/// identical to one already delivered, and the record's status is updated. One transaction.
pub async fn replace_operations(
    pool: &PgPool,
    inbound_id: i64,
    source: &str,
    mapping_hash: &str,
    mapped: &MappedRecord,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE outbox SET status = 'cancelled', last_error = 'superseded by a re-map', updated_at = now()
         WHERE inbound_id = $1 AND status IN ('pending', 'dead')",
    )
    .bind(inbound_id)
    .execute(&mut *tx)
    .await?;
    let delivered: Vec<(String, Value)> =
        sqlx::query_as("SELECT rule, body FROM outbox WHERE inbound_id = $1 AND status IN ('delivered', 'in_flight')")
            .bind(inbound_id)
            .fetch_all(&mut *tx)
            .await?;
    let fresh: Vec<Operation> = mapped
        .operations
        .iter()
        .filter(|op| {
            !delivered
                .iter()
                .any(|(rule, body)| *rule == op.rule && *body == op.body)
        })
        .cloned()
        .collect();
    let meta = RequestMeta {
        source,
        mapping_hash,
        content_type: None,
        request_id: "",
    };
    insert_outbox(&mut tx, &meta, inbound_id, &fresh).await?;
    sqlx::query("UPDATE inbound_records SET status = $2, warnings = $3, error = $4, mapping_hash = $5 WHERE id = $1")
        .bind(inbound_id)
        .bind(mapped.status.as_str())
        .bind(serde_json::json!(mapped.warnings))
        .bind(&mapped.error)
        .bind(mapping_hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(fresh.len() as u64)
}

/// Ids of inbound records matching a re-map filter, oldest first, at most `limit`.
pub async fn ids_for_remap(
    pool: &PgPool,
    status: Option<&str>,
    source: Option<&str>,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM inbound_records
         WHERE payload IS NOT NULL AND ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR source = $2)
         ORDER BY id LIMIT $3",
    )
    .bind(status)
    .bind(source)
    .bind(limit)
    .fetch_all(pool)
    .await
}
