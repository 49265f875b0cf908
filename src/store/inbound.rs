//! Inbound records and the ingest transaction: every record of a webhook request and
//! its outbox rows are committed together, before the CRM is answered.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, PgPool};
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

/// One request's records, as handed to a group commit.
#[derive(Debug, Clone, Copy)]
pub struct IngestJob<'a> {
    pub meta: &'a RequestMeta<'a>,
    pub records: &'a [NewRecord],
}

/// Stores every record of one request, and the outbox rows of the new ones, in one
/// transaction. Returns only after `COMMIT`.
pub async fn ingest(
    pool: &PgPool,
    meta: &RequestMeta<'_>,
    records: &[NewRecord],
) -> Result<IngestCounts, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let counts = ingest_batch(&mut conn, &[IngestJob { meta, records }]).await?;
    Ok(counts.into_iter().next().unwrap_or_default())
}

/// Stores the records of many requests in one transaction with one multi-row insert
/// per table: the group commit. Answers per request, in order. Dedupe and the stale
/// fence work across requests of the batch as they do across batches.
pub async fn ingest_batch(
    conn: &mut PgConnection,
    jobs: &[IngestJob<'_>],
) -> Result<Vec<IngestCounts>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let mut rows = Vec::new();
    for job in jobs {
        for record in job.records {
            let stale = match &record.version {
                Some(version) => !advance_version(&mut tx, job.meta.source, version).await?,
                None => false,
            };
            rows.push(InboundRow {
                meta: job.meta,
                record,
                stale,
            });
        }
    }
    let mut inserted = insert_inbound_many(&mut tx, &rows).await?;
    let mut counts = vec![IngestCounts::default(); jobs.len()];
    let mut operations = Vec::new();
    let mut row = rows.iter();
    for (job_counts, job) in counts.iter_mut().zip(jobs) {
        for row in row.by_ref().take(job.records.len()) {
            // The first occurrence of a key in the batch is the one inserted (rows go in in order).
            let Some(inbound_id) =
                inserted.remove(&(row.meta.source, row.record.dedupe_key.as_str()))
            else {
                job_counts.duplicates += 1;
                continue;
            };
            if row.stale {
                job_counts.stale += 1;
                continue;
            }
            operations.extend(
                row.record
                    .mapped
                    .operations
                    .iter()
                    .map(|op| (row.meta, inbound_id, op)),
            );
            match row.record.mapped.status {
                RecordStatus::Mapped => job_counts.accepted += 1,
                RecordStatus::Ignored => job_counts.ignored += 1,
                RecordStatus::Failed => job_counts.failed += 1,
            }
        }
    }
    insert_outbox_many(&mut tx, &operations).await?;
    tx.commit().await?;
    Ok(counts)
}

struct InboundRow<'a> {
    meta: &'a RequestMeta<'a>,
    record: &'a NewRecord,
    stale: bool,
}

/// One `INSERT … SELECT FROM UNNEST` for every record of the batch; returns the ids of
/// the rows that were new, keyed by (source, dedupe key).
async fn insert_inbound_many<'a>(
    conn: &mut PgConnection,
    rows: &'a [InboundRow<'a>],
) -> Result<HashMap<(&'a str, &'a str), i64>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let sources: Vec<&str> = rows.iter().map(|r| r.meta.source).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.record.dedupe_key.as_str()).collect();
    let statuses: Vec<&str> = rows
        .iter()
        .map(|r| {
            if r.stale {
                "stale"
            } else {
                r.record.mapped.status.as_str()
            }
        })
        .collect();
    let payloads: Vec<String> = rows.iter().map(|r| json_text(&r.record.payload)).collect();
    let content_types: Vec<Option<&str>> = rows.iter().map(|r| r.meta.content_type).collect();
    let warnings: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::json!(r.record.mapped.warnings))
        .collect();
    let errors: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.record.mapped.error.as_deref())
        .collect();
    let hashes: Vec<&str> = rows.iter().map(|r| r.meta.mapping_hash).collect();
    let request_ids: Vec<&str> = rows.iter().map(|r| r.meta.request_id).collect();
    let inserted: Vec<(i64, String, String)> = sqlx::query_as(
        "INSERT INTO inbound_records
           (source, dedupe_key, status, payload, content_type, warnings, error, mapping_hash, request_id)
         SELECT s, k, st, p, ct, w, e, h, r
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]::json[], $5::text[], $6::jsonb[], $7::text[], $8::text[], $9::text[])
              WITH ORDINALITY AS t(s, k, st, p, ct, w, e, h, r, ord)
         ORDER BY ord
         ON CONFLICT (source, dedupe_key) DO NOTHING
         RETURNING id, source, dedupe_key",
    )
    .bind(&sources)
    .bind(&keys)
    .bind(&statuses)
    .bind(&payloads)
    .bind(&content_types)
    .bind(&warnings)
    .bind(&errors)
    .bind(&hashes)
    .bind(&request_ids)
    .fetch_all(&mut *conn)
    .await?;
    // Key the ids by strings borrowed from the batch, so callers need no copies.
    let keys_in_batch: HashMap<(&str, &str), (&str, &str)> = sources
        .iter()
        .zip(&keys)
        .map(|(s, k)| ((*s, *k), (*s, *k)))
        .collect();
    let mut ids = HashMap::with_capacity(inserted.len());
    for (id, source, key) in inserted {
        if let Some(&borrowed) = keys_in_batch.get(&(source.as_str(), key.as_str())) {
            ids.insert(borrowed, id);
        }
    }
    Ok(ids)
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

/// One multi-row insert for all operations of the batch; ids follow the CRM's order.
async fn insert_outbox_many(
    conn: &mut PgConnection,
    operations: &[(&RequestMeta<'_>, i64, &Operation)],
) -> Result<(), sqlx::Error> {
    if operations.is_empty() {
        return Ok(());
    }
    let request_ids: Vec<Uuid> = operations.iter().map(|_| Uuid::now_v7()).collect();
    let inbound_ids: Vec<i64> = operations.iter().map(|(_, id, _)| *id).collect();
    let sources: Vec<&str> = operations.iter().map(|(m, _, _)| m.source).collect();
    let hashes: Vec<&str> = operations.iter().map(|(m, _, _)| m.mapping_hash).collect();
    let rules: Vec<&str> = operations.iter().map(|(_, _, o)| o.rule.as_str()).collect();
    let kinds: Vec<&str> = operations.iter().map(|(_, _, o)| o.kind.as_str()).collect();
    let users: Vec<Option<String>> = operations.iter().map(|(_, _, o)| o.user_key()).collect();
    let bodies: Vec<String> = operations
        .iter()
        .map(|(_, _, o)| json_text(&o.body))
        .collect();
    sqlx::query(
        "INSERT INTO outbox (request_id, inbound_id, source, rule, kind, user_id, body, mapping_hash)
         SELECT r, i, s, ru, k, u, b, h
         FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]::json[], $8::text[])
              WITH ORDINALITY AS t(r, i, s, ru, k, u, b, h, ord)
         ORDER BY ord",
    )
    .bind(&request_ids)
    .bind(&inbound_ids)
    .bind(&sources)
    .bind(&rules)
    .bind(&kinds)
    .bind(&users)
    .bind(&bodies)
    .bind(&hashes)
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
    let operations: Vec<_> = fresh.iter().map(|op| (&meta, inbound_id, op)).collect();
    insert_outbox_many(&mut tx, &operations).await?;
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

/// A document as the JSON text stored in a `json` column (sent as text: a `json` value
/// is only validated, where `jsonb` would be parsed and rebuilt).
fn json_text(value: &Value) -> String {
    // `serde_json::to_string` writes bytes directly; `Display` goes through `fmt`.
    serde_json::to_string(&without_nul(value)).expect("a JSON value always serializes")
}

/// Postgres' `jsonb` cannot hold U+0000, and support queries and WebEngage read these
/// documents as `jsonb`. A CRM that sends one must not be refused forever (it would
/// retry until it gives up), so the character becomes U+FFFD. Copies only when there
/// is something to replace.
fn without_nul(value: &Value) -> Cow<'_, Value> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn replace(v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(s.replace('\0', "\u{FFFD}")),
            Value::Array(items) => Value::Array(items.iter().map(replace).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), replace(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    if has_nul(value) {
        Cow::Owned(replace(value))
    } else {
        Cow::Borrowed(value)
    }
}
