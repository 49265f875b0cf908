//! Inbound records and the ingest transaction: every record of a webhook request and
//! its outbox rows are committed together, before the CRM is answered.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::outbox::{INSERT_COLUMNS, head_of_new_row};
use super::settle::promote_heads;
use super::status::InboundStatus;
use crate::mapping::{MappedRecord, RecordStatus, RecordVersion};
use crate::webengage::{Operation, OperationKind};

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

/// Stores the records of many requests, and the outbox rows of the new ones, with one
/// statement: the group commit. A lone statement is its own transaction, so there is
/// no `BEGIN`/`COMMIT` round trip; only records with a version fence need an explicit
/// transaction, to advance the fence and insert together. Answers per request, in
/// order. Dedupe and the stale fence work across requests of the batch as they do
/// across batches.
pub async fn ingest_batch(
    conn: &mut PgConnection,
    jobs: &[IngestJob<'_>],
) -> Result<Vec<IngestCounts>, sqlx::Error> {
    let records = jobs.iter().flat_map(|job| job.records);
    if records.clone().all(|record| record.version.is_none()) {
        return store_rows(conn, jobs, &vec![false; records.count()]).await;
    }
    let mut tx = conn.begin().await?;
    let mut stale = Vec::new();
    for job in jobs {
        for record in job.records {
            stale.push(match &record.version {
                Some(version) => !advance_version(&mut tx, job.meta.source, version).await?,
                None => false,
            });
        }
    }
    let counts = store_rows(&mut tx, jobs, &stale).await?;
    tx.commit().await?;
    Ok(counts)
}

/// Inserts the batch (each record stale or not, as given) and counts per request.
async fn store_rows(
    conn: &mut PgConnection,
    jobs: &[IngestJob<'_>],
    stale: &[bool],
) -> Result<Vec<IngestCounts>, sqlx::Error> {
    let rows = inbound_rows(jobs, stale);
    let inserted = insert_records(conn, &rows).await?;
    Ok(count_outcomes(jobs, &rows, &inserted))
}

struct InboundRow<'a> {
    meta: &'a RequestMeta<'a>,
    record: &'a NewRecord,
    stale: bool,
    /// The first record of the batch with its source and dedupe key: the one inserted
    /// (a later one is a duplicate of it).
    first: bool,
}

/// The batch's records in order, each with whether it is stale and whether it is the
/// first of its key in the batch.
fn inbound_rows<'a>(jobs: &'a [IngestJob<'a>], stale: &[bool]) -> Vec<InboundRow<'a>> {
    let mut seen = HashSet::new();
    jobs.iter()
        .flat_map(|job| job.records.iter().map(move |record| (job.meta, record)))
        .zip(stale)
        .map(|((meta, record), &stale)| InboundRow {
            meta,
            record,
            stale,
            first: seen.insert((meta.source, record.dedupe_key.as_str())),
        })
        .collect()
}

/// Each request's counts: a record not inserted is a duplicate; an inserted one counts
/// by what its mapping made of it.
fn count_outcomes(
    jobs: &[IngestJob<'_>],
    rows: &[InboundRow<'_>],
    inserted: &HashSet<usize>,
) -> Vec<IngestCounts> {
    let mut counts = vec![IngestCounts::default(); jobs.len()];
    let mut index = 0..;
    for (job_counts, job) in counts.iter_mut().zip(jobs) {
        for i in index.by_ref().take(job.records.len()) {
            let row = &rows[i];
            if !inserted.contains(&i) {
                job_counts.duplicates += 1;
            } else if row.stale {
                job_counts.stale += 1;
            } else {
                match row.record.mapped.status {
                    RecordStatus::Mapped => job_counts.accepted += 1,
                    RecordStatus::Ignored => job_counts.ignored += 1,
                    RecordStatus::Failed => job_counts.failed += 1,
                }
            }
        }
    }
    counts
}

/// One statement for the whole batch: the inbound rows (`ON CONFLICT DO NOTHING` is the
/// dedupe), and the outbox rows of those that were new and not stale, joined to their
/// new ids, in the CRM's order. Returns the positions of the rows that were inserted.
async fn insert_records(
    conn: &mut PgConnection,
    rows: &[InboundRow<'_>],
) -> Result<HashSet<usize>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let sources: Vec<&str> = rows.iter().map(|r| r.meta.source).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.record.dedupe_key.as_str()).collect();
    let statuses: Vec<InboundStatus> = rows
        .iter()
        .map(|r| {
            if r.stale {
                InboundStatus::Stale
            } else {
                r.record.mapped.status.into()
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
    let firsts: Vec<bool> = rows.iter().map(|r| r.first).collect();
    // Operations of the rows that may produce some; the join with the inserted rows
    // drops those of duplicates.
    let operations: Vec<(i64, &Operation)> = rows
        .iter()
        .zip(1i64..)
        .filter(|(r, _)| r.first && !r.stale)
        .flat_map(|(r, ord)| r.record.mapped.operations.iter().map(move |op| (ord, op)))
        .collect();
    let op_rows: Vec<i64> = operations.iter().map(|(ord, _)| *ord).collect();
    let ops = OperationColumns::of(operations.iter().map(|(_, op)| *op));
    let head = head_of_new_row(
        "o.u",
        "row_number() OVER (PARTITION BY o.u ORDER BY o.op_ord) = 1",
    );
    let sql = format!(
        "WITH rec AS (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::inbound_status[], $4::text[]::json[], $5::text[],
                                  $6::jsonb[], $7::text[], $8::text[], $9::text[], $10::bool[])
                  WITH ORDINALITY AS t(s, k, st, p, ct, w, e, h, r, first, ord)),
         ins AS (
             INSERT INTO inbound_records
               (source, dedupe_key, status, payload, content_type, warnings, error, mapping_hash, request_id)
             SELECT s, k, st, p, ct, w, e, h, r FROM rec ORDER BY ord
             ON CONFLICT (source, dedupe_key) DO NOTHING
             RETURNING id, source, dedupe_key),
         new AS (
             SELECT ins.id, rec.ord, rec.s, rec.h FROM ins
             JOIN rec ON rec.s = ins.source AND rec.k = ins.dedupe_key AND rec.first),
         out AS (
             INSERT INTO outbox ({INSERT_COLUMNS})
             SELECT o.rid, new.id, new.s, o.ru, o.k, o.u, o.b, new.h, {head}
             FROM UNNEST($11::int8[], $12::uuid[], $13::text[], $14::operation_kind[], $15::text[], $16::text[]::json[])
                  WITH ORDINALITY AS o(rec_ord, rid, ru, k, u, b, op_ord)
             JOIN new ON new.ord = o.rec_ord
             ORDER BY o.op_ord)
         SELECT ord FROM new"
    );
    let inserted: Vec<i64> = sqlx::query_scalar(&sql)
        .bind(&sources)
        .bind(&keys)
        .bind(&statuses)
        .bind(&payloads)
        .bind(&content_types)
        .bind(&warnings)
        .bind(&errors)
        .bind(&hashes)
        .bind(&request_ids)
        .bind(&firsts)
        .bind(&op_rows)
        .bind(&ops.request_ids)
        .bind(&ops.rules)
        .bind(&ops.kinds)
        .bind(&ops.users)
        .bind(&ops.bodies)
        .fetch_all(&mut *conn)
        .await?;
    // `WITH ORDINALITY` counts from 1.
    Ok(inserted.into_iter().map(|ord| ord as usize - 1).collect())
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

/// The outbox columns of some operations, as arrays for `UNNEST`: each operation gets
/// a fresh idempotency id (a UUIDv7) and its body as stored JSON text.
struct OperationColumns<'a> {
    request_ids: Vec<Uuid>,
    rules: Vec<&'a str>,
    kinds: Vec<OperationKind>,
    users: Vec<Option<String>>,
    bodies: Vec<String>,
}

impl<'a> OperationColumns<'a> {
    fn of(operations: impl Iterator<Item = &'a Operation>) -> Self {
        let mut columns = OperationColumns {
            request_ids: Vec::new(),
            rules: Vec::new(),
            kinds: Vec::new(),
            users: Vec::new(),
            bodies: Vec::new(),
        };
        for op in operations {
            columns.request_ids.push(Uuid::now_v7());
            columns.rules.push(op.rule.as_str());
            columns.kinds.push(op.kind);
            columns.users.push(op.user_key());
            columns.bodies.push(json_text(&op.body));
        }
        columns
    }
}

/// New outbox rows for one inbound record, in the order given (a re-map).
async fn insert_outbox(
    conn: &mut PgConnection,
    inbound_id: i64,
    source: &str,
    mapping_hash: &str,
    operations: &[Operation],
) -> Result<(), sqlx::Error> {
    if operations.is_empty() {
        return Ok(());
    }
    let ops = OperationColumns::of(operations.iter());
    let head = head_of_new_row("u", "row_number() OVER (PARTITION BY u ORDER BY ord) = 1");
    let sql = format!(
        "INSERT INTO outbox ({INSERT_COLUMNS})
         SELECT r, $2, $3, ru, k, u, b, $4, {head}
         FROM UNNEST($1::uuid[], $5::text[], $6::operation_kind[], $7::text[], $8::text[]::json[])
              WITH ORDINALITY AS t(r, ru, k, u, b, ord)
         ORDER BY ord"
    );
    sqlx::query(&sql)
        .bind(&ops.request_ids)
        .bind(inbound_id)
        .bind(source)
        .bind(mapping_hash)
        .bind(&ops.rules)
        .bind(&ops.kinds)
        .bind(&ops.users)
        .bind(&ops.bodies)
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
    let cancelled: Vec<Option<String>> = sqlx::query_scalar(
        "UPDATE outbox SET status = 'cancelled', last_error = 'superseded by a re-map', updated_at = now()
         WHERE inbound_id = $1 AND status IN ('pending', 'dead')
         RETURNING user_id",
    )
    .bind(inbound_id)
    .fetch_all(&mut *tx)
    .await?;
    let users: Vec<String> = cancelled.into_iter().flatten().collect();
    promote_heads(&mut *tx, &users).await?;
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
    insert_outbox(&mut tx, inbound_id, source, mapping_hash, &fresh).await?;
    sqlx::query("UPDATE inbound_records SET status = $2, warnings = $3, error = $4, mapping_hash = $5 WHERE id = $1")
        .bind(inbound_id)
        .bind(InboundStatus::from(mapped.status))
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
    // A status that does not exist matches nothing.
    let status = match status.map(InboundStatus::parse) {
        Some(None) => return Ok(Vec::new()),
        parsed => parsed.flatten(),
    };
    sqlx::query_scalar(
        "SELECT id FROM inbound_records
         WHERE payload IS NOT NULL AND ($1::inbound_status IS NULL OR status = $1) AND ($2::text IS NULL OR source = $2)
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
///
/// Postgres' `jsonb` cannot hold U+0000, and support queries and WebEngage read these
/// documents as `jsonb`. A CRM that sends one must not be refused forever (it would
/// retry until it gives up), so the character becomes U+FFFD. serde_json writes it as
/// `\u0000`, so text without that sequence holds none: one search of the text instead
/// of a walk of the document. (A literal backslash before `u0000` also matches; the
/// replacement then changes nothing.)
fn json_text(value: &Value) -> String {
    // `serde_json::to_string` writes bytes directly; `Display` goes through `fmt`.
    let text = serde_json::to_string(value).expect("a JSON value always serializes");
    if !text.contains("\\u0000") {
        return text;
    }
    serde_json::to_string(&without_nul(value)).expect("a JSON value always serializes")
}

fn without_nul(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace('\0', "\u{FFFD}")),
        Value::Array(items) => Value::Array(items.iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), without_nul(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::json_text;

    #[test]
    fn nul_in_keys_and_values_becomes_the_replacement_character() {
        let text = json_text(&json!({"a\u{0}": ["x\u{0}y", {"n": 1}]}));
        assert_eq!(
            text,
            r#"{"a\ufffd":["x\ufffdy",{"n":1}]}"#.replace("\\ufffd", "\u{FFFD}")
        );
    }

    #[test]
    fn a_literal_backslash_u0000_is_kept_as_written() {
        let value = json!({"note": "C:\\u0000dir"});
        let text = json_text(&value);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
    }
}
