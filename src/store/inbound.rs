//! Inbound records and the ingest transaction: every record of a webhook request and
//! its outbox rows are committed together, before the CRM is answered. A body that
//! could not be parsed is kept the same way, as one `malformed` row.
//!
//! Postgres refusing one record's data fails that record, not its request: the
//! request is retried record by record, and a record refused alone is stored as
//! `failed` with Postgres' reason (see `storable`).

use std::collections::HashSet;

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, PgPool};

use super::columns::InsertColumns;
use super::outbox::{INSERT_COLUMNS, head_of_new_row};
use super::storable::{self, is_data_error};
use crate::mapping::{IncomingRecord, RecordVersion};

/// A body that could not be parsed, as kept for support staff: the bytes (as text,
/// NUL and invalid UTF-8 replaced) and why they could not be read.
#[derive(Debug, Clone)]
pub struct MalformedBody {
    /// `malformed:<sha256 of the bytes>`: a repeat of the same bytes is a duplicate.
    dedupe_key: String,
    pub(super) text: String,
    pub(super) reason: String,
}

impl MalformedBody {
    pub fn new(body: &[u8], reason: &str) -> Self {
        MalformedBody {
            dedupe_key: format!("malformed:{}", hex::encode(Sha256::digest(body))),
            text: storable::text(&String::from_utf8_lossy(body)).into_owned(),
            reason: storable::text(reason).into_owned(),
        }
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// What one request stores: its records, or its body when it could not be parsed.
#[derive(Debug, Clone)]
pub enum Content {
    Records(Vec<IncomingRecord>),
    Malformed(MalformedBody),
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

impl IngestCounts {
    pub fn add(&mut self, other: IngestCounts) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.ignored += other.ignored;
        self.stale += other.stale;
        self.failed += other.failed;
    }
}

/// Where a request came from, recorded on each row for support staff.
#[derive(Debug, Clone)]
pub struct RequestMeta<'a> {
    pub source: &'a str,
    pub mapping_hash: &'a str,
    pub content_type: Option<&'a str>,
    pub request_id: &'a str,
    /// The webhook's W3C `traceparent`, when traces are exported: kept with its outbox
    /// rows so their WebEngage calls link to the webhook's trace.
    pub trace_context: Option<&'a str>,
}

/// One request's content, as handed to a group commit.
#[derive(Debug, Clone, Copy)]
pub struct IngestJob<'a> {
    pub meta: &'a RequestMeta<'a>,
    pub content: &'a Content,
}

impl<'a> IngestJob<'a> {
    pub(super) fn rows(&self) -> impl Iterator<Item = Row<'a>> + Clone + 'a {
        let (records, malformed) = match self.content {
            Content::Records(records) => (records.as_slice(), None),
            Content::Malformed(body) => (&[][..], Some(body)),
        };
        records
            .iter()
            .map(Row::Record)
            .chain(malformed.map(Row::Malformed))
    }
}

/// One inbound row to insert.
#[derive(Debug, Clone, Copy)]
pub(super) enum Row<'a> {
    Record(&'a IncomingRecord),
    Malformed(&'a MalformedBody),
}

impl<'a> Row<'a> {
    pub(super) fn version(self) -> Option<&'a RecordVersion> {
        match self {
            Row::Record(record) => record.version.as_ref(),
            Row::Malformed(_) => None,
        }
    }

    pub(super) fn dedupe_key(self) -> &'a str {
        match self {
            Row::Record(record) => &record.dedupe_key,
            Row::Malformed(body) => &body.dedupe_key,
        }
    }
}

/// Stores every record of one request, and the outbox rows of the new ones, in one
/// transaction. Returns only after `COMMIT`. When Postgres refuses the data, the
/// records are stored one by one, and one it refuses alone is stored as `failed`.
pub async fn ingest(
    pool: &PgPool,
    meta: &RequestMeta<'_>,
    content: &Content,
) -> Result<IngestCounts, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    match ingest_batch(&mut conn, &[IngestJob { meta, content }]).await {
        Ok(counts) => Ok(counts.into_iter().next().unwrap_or_default()),
        Err(e) if is_data_error(&e) => {
            tracing::warn!(error = %e, source = meta.source, request_id = meta.request_id, "Postgres refused a request's data; storing its records one by one");
            ingest_one_by_one(&mut conn, meta, content).await
        }
        Err(e) => Err(e),
    }
}

/// Each record in a transaction of its own (see [`ingest_row_by_row`]).
async fn ingest_one_by_one(
    conn: &mut PgConnection,
    meta: &RequestMeta<'_>,
    content: &Content,
) -> Result<IngestCounts, sqlx::Error> {
    if let Content::Malformed(_) = content {
        return Err(refused_malformed());
    }
    let columns = InsertColumns::of(&[IngestJob { meta, content }]);
    ingest_row_by_row(conn, &columns, None).await
}

/// Each row of a batch Postgres refused, alone in a transaction of its own (a
/// savepoint, inside an import's); a row it refuses alone is stored as `failed` with the
/// reason instead (its operations are not sent).
pub(super) async fn ingest_row_by_row(
    conn: &mut PgConnection,
    columns: &InsertColumns,
    import_id: Option<i64>,
) -> Result<IngestCounts, sqlx::Error> {
    let mut total = IngestCounts::default();
    for i in 0..columns.len() {
        let mut alone = conn.begin().await?;
        let counts = match ingest_columns(&mut alone, &columns.row(i), import_id).await {
            Ok(counts) => {
                alone.commit().await?;
                counts
            }
            Err(e) if is_data_error(&e) => {
                drop(alone);
                tracing::error!(error = %e, source = columns.sources[i], request_id = columns.request_ids[i], "Postgres refused a record; it is stored as failed");
                ingest_columns(conn, &columns.refused_row(i, &e), import_id).await?
            }
            Err(e) => return Err(e),
        };
        total.add(counts.into_iter().next().unwrap_or_default());
    }
    Ok(total)
}

/// A malformed body is stored as lossy text with a checked reason: nothing in it is
/// left for Postgres to refuse, so a refusal is a bug, reported as such.
fn refused_malformed() -> sqlx::Error {
    sqlx::Error::Protocol("Postgres refused a malformed body's row".to_owned())
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
    ingest_batch_of(conn, jobs, None).await
}

/// [`ingest_batch`] for the records of an import (`import_id`), or of webhooks
/// (`None`): an import's records carry its id, and their outbox rows the import
/// priority, so live rows are claimed first and `import cancel` finds them.
pub async fn ingest_batch_of(
    conn: &mut PgConnection,
    jobs: &[IngestJob<'_>],
    import_id: Option<i64>,
) -> Result<Vec<IngestCounts>, sqlx::Error> {
    ingest_columns(conn, &InsertColumns::of(jobs), import_id).await
}

/// [`ingest_batch_of`] with the batch's columns already built (`InsertColumns::of`).
pub async fn ingest_columns(
    conn: &mut PgConnection,
    columns: &InsertColumns,
    import_id: Option<i64>,
) -> Result<Vec<IngestCounts>, sqlx::Error> {
    if columns.versions.iter().all(Option::is_none) {
        return store_rows(conn, columns, &vec![false; columns.len()], import_id).await;
    }
    let mut tx = conn.begin().await?;
    let stale = match super::versions::advance_all(&mut tx, columns).await? {
        Some(stale) => stale,
        None => {
            let mut stale = Vec::with_capacity(columns.len());
            for (source, version) in columns.sources.iter().zip(&columns.versions) {
                stale.push(match version {
                    Some(version) => !advance_version(&mut tx, source, version).await?,
                    None => false,
                });
            }
            stale
        }
    };
    let counts = store_rows(&mut tx, columns, &stale, import_id).await?;
    tx.commit().await?;
    Ok(counts)
}

/// Inserts the batch (each record stale or not, as given) and counts per request.
async fn store_rows(
    conn: &mut PgConnection,
    columns: &InsertColumns,
    stale: &[bool],
    import_id: Option<i64>,
) -> Result<Vec<IngestCounts>, sqlx::Error> {
    let inserted = insert_records(conn, columns, stale, import_id).await?;
    Ok(columns.count_outcomes(stale, &inserted))
}

/// One statement for the whole batch: the inbound rows (`ON CONFLICT DO NOTHING` is the
/// dedupe), and the outbox rows of those that were new and not stale, joined to their
/// new ids, in the CRM's order. Returns the positions of the rows that were inserted.
async fn insert_records(
    conn: &mut PgConnection,
    c: &InsertColumns,
    stale: &[bool],
    import_id: Option<i64>,
) -> Result<HashSet<usize>, sqlx::Error> {
    if c.keys.is_empty() {
        return Ok(HashSet::new());
    }
    let head = head_of_new_row(
        "o.u",
        "row_number() OVER (PARTITION BY o.u ORDER BY o.op_ord) = 1",
    );
    let sql = format!(
        "WITH rec AS (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::inbound_status[], $4::text[]::json[], $5::text[],
                                  $6::text[]::jsonb[], $7::text[], $8::text[], $9::text[], $10::bool[],
                                  $17::text[], $18::text[], $20::bool[])
                  WITH ORDINALITY AS t(s, k, st, p, ct, w, e, h, r, first, raw, tc, stale, ord)),
         ins AS (
             INSERT INTO inbound_records
               (source, dedupe_key, status, payload, content_type, warnings, error, mapping_hash, request_id, raw_body, import_id)
             SELECT s, k, CASE WHEN stale THEN 'stale'::inbound_status ELSE st END, p, ct, w, e, h, r, raw, $19::int8
             FROM rec ORDER BY ord
             ON CONFLICT (source, dedupe_key) DO NOTHING
             RETURNING id, source, dedupe_key),
         new AS (
             SELECT ins.id, rec.ord, rec.s, rec.h, rec.tc, rec.stale FROM ins
             JOIN rec ON rec.s = ins.source AND rec.k = ins.dedupe_key AND rec.first),
         out AS (
             INSERT INTO outbox ({INSERT_COLUMNS}, priority)
             SELECT o.rid, new.id, new.s, o.ru, o.k, o.u, o.b, new.h, {head}, new.tc,
                    CASE WHEN $19::int8 IS NULL THEN 0 ELSE 1 END
             FROM UNNEST($11::int8[], $12::uuid[], $13::text[], $14::operation_kind[], $15::text[], $16::text[]::json[])
                  WITH ORDINALITY AS o(rec_ord, rid, ru, k, u, b, op_ord)
             JOIN new ON new.ord = o.rec_ord AND NOT new.stale
             ORDER BY o.op_ord)
         SELECT ord FROM new"
    );
    let inserted: Vec<i64> = sqlx::query_scalar(&sql)
        .bind(&c.sources)
        .bind(&c.keys)
        .bind(&c.statuses)
        .bind(&c.payloads)
        .bind(&c.content_types)
        .bind(&c.warnings)
        .bind(&c.errors)
        .bind(&c.hashes)
        .bind(&c.request_ids)
        .bind(&c.firsts)
        .bind(&c.op_rows)
        .bind(&c.ops.request_ids)
        .bind(&c.ops.rules)
        .bind(&c.ops.kinds)
        .bind(&c.ops.users)
        .bind(&c.ops.bodies)
        .bind(&c.raw_bodies)
        .bind(&c.trace_contexts)
        .bind(import_id)
        .bind(stale)
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
    .bind(storable::key(&version.key))
    .bind(&version.at)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(advanced.is_some())
}
