//! Historical imports (the `import` command): the `imports` rows and the transaction that
//! stores one batch of an import's records together with the import's progress, so an
//! interrupted import resumes exactly where its last committed batch ended.

use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use time::OffsetDateTime;

use super::columns::InsertColumns;
use super::inbound::{self, IngestCounts};
use super::settle::promote_heads;
use super::storable::is_data_error;

/// Where an import is (`imports.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "import_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    /// Reading its files, or interrupted: the same command continues it.
    Running,
    Finished,
    /// Stopped by support; its undelivered rows were cancelled.
    Cancelled,
}

impl ImportState {
    pub const fn as_str(self) -> &'static str {
        match self {
            ImportState::Running => "running",
            ImportState::Finished => "finished",
            ImportState::Cancelled => "cancelled",
        }
    }
}

/// One import, as `import list`/`show`, the admin API and the console show it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ImportRow {
    pub id: i64,
    pub source: String,
    pub files: Vec<String>,
    pub state: ImportState,
    pub rows_done: i64,
    pub accepted: i64,
    pub duplicates: i64,
    pub ignored: i64,
    pub stale: i64,
    pub rejected: i64,
    pub rejects_bytes: i64,
    pub rejects_file: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// The outbox rows of an import, by status (`import show`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportOutbox {
    pub pending: i64,
    pub in_flight: i64,
    pub delivered: i64,
    pub dead: i64,
    pub cancelled: i64,
}

/// What one batch adds to its import's progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchProgress {
    /// Rows read up to the end of this batch (all files, in order).
    pub rows_done: i64,
    /// Rows of this batch written to the rejects file.
    pub rejected: i64,
    /// The rejects file's length once this batch's rejects are written.
    pub rejects_bytes: i64,
    /// Which input (its index in `files`) that rejects file is of.
    pub rejects_file: i32,
}

/// The inbound id sequence's latest value: every id handed out so far is at most this,
/// and every id handed out later is above it (`imports.inbound_from`/`inbound_to`).
const INBOUND_ID_NOW: &str = "(SELECT last_value FROM inbound_records_id_seq)";

/// The ids of import `$1`'s inbound rows: a range of the primary key, then `import_id`
/// (webhook rows that arrived meanwhile lie in the range too).
const IMPORTED: &str = "SELECT i.id FROM imports m
     JOIN inbound_records i ON i.id BETWEEN m.inbound_from AND m.inbound_to AND i.import_id = m.id
     WHERE m.id = $1";

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreBatchError {
    #[error("import {0} was cancelled")]
    Cancelled(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The latest running import of `source` over the same `files`: what a re-run continues.
pub async fn resumable(
    pool: &PgPool,
    source: &str,
    files: &[String],
) -> Result<Option<ImportRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM imports WHERE source = $1 AND files = $2 AND state = 'running'
         ORDER BY started_at DESC LIMIT 1",
    )
    .bind(source)
    .bind(files)
    .fetch_optional(pool)
    .await
}

pub async fn create(
    pool: &PgPool,
    source: &str,
    files: &[String],
) -> Result<ImportRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO imports (source, files, inbound_from) VALUES ($1, $2, {INBOUND_ID_NOW}) RETURNING *"
    ))
        .bind(source)
        .bind(files)
        .fetch_one(pool)
        .await
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<ImportRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM imports WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The newest imports first.
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<ImportRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM imports ORDER BY id DESC LIMIT $1")
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// How the outbox rows of import `id` stand.
pub async fn outbox_counts(pool: &PgPool, id: i64) -> Result<ImportOutbox, sqlx::Error> {
    let rows: Vec<(super::OutboxStatus, i64)> = sqlx::query_as(&format!(
        "SELECT o.status, count(*) FROM ({IMPORTED}) i JOIN outbox o ON o.inbound_id = i.id
             GROUP BY o.status"
    ))
    .bind(id)
    .fetch_all(pool)
    .await?;
    let mut counts = ImportOutbox::default();
    for (status, n) in rows {
        use super::OutboxStatus::*;
        *match status {
            Pending => &mut counts.pending,
            InFlight => &mut counts.in_flight,
            Delivered => &mut counts.delivered,
            Dead => &mut counts.dead,
            Cancelled => &mut counts.cancelled,
        } += n;
    }
    Ok(counts)
}

/// One batch of an import stored in its transaction, not yet committed. An import
/// stores two batches at once but commits them in order, so the progress committed
/// with a batch counts every row before it.
pub struct StagedBatch {
    tx: Transaction<'static, Postgres>,
    id: i64,
    counts: IngestCounts,
}

/// Stores one batch of import `id`'s records (their columns, built by
/// [`InsertColumns::of`]) in a transaction left open for [`StagedBatch::commit`]. A
/// record Postgres refuses is stored alone as `failed`, as a webhook's would be.
pub async fn stage_batch(
    pool: &PgPool,
    id: i64,
    columns: &InsertColumns,
) -> Result<StagedBatch, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The batch's progress commits with its rows, so a commit lost to a crash of
    // Postgres loses both and the import reads those rows again; `finish` commits
    // synchronously, which makes every earlier commit durable before "done".
    // A batch waits for a row lock at most `lock_timeout` (see [`lost_a_lock_wait`]).
    sqlx::query("SELECT set_config('synchronous_commit', 'off', true), set_config('lock_timeout', '5s', true)")
        .execute(&mut *tx)
        .await?;
    let counts = store_records(&mut tx, id, columns).await?;
    Ok(StagedBatch { tx, id, counts })
}

/// Whether a batch failed waiting for a row lock: a deadlock, or `lock_timeout`. An
/// import commits its batches in order while the next one's statement runs, so a batch
/// waiting on a webhook that waits on the next batch would wait forever (that batch
/// waits for this one's commit, which Postgres cannot see); the import rolls back the
/// batches not committed and stores them again one at a time.
pub fn lost_a_lock_wait(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("55P03" | "40P01")),
        _ => false,
    }
}

impl StagedBatch {
    /// Commits the batch with the import's progress; refused (and rolled back) when
    /// the import was cancelled meanwhile: the row lock of the update orders the two.
    pub async fn commit(
        mut self,
        progress: BatchProgress,
    ) -> Result<IngestCounts, StoreBatchError> {
        let counts = self.counts;
        let running: Option<i64> = sqlx::query_scalar(&format!(
            "UPDATE imports SET rows_done = $2, accepted = accepted + $3, duplicates = duplicates + $4,
                 ignored = ignored + $5, stale = stale + $6, rejected = rejected + $7 + $8,
                 rejects_bytes = $9, rejects_file = $10, inbound_to = {INBOUND_ID_NOW}, updated_at = now()
             WHERE id = $1 AND state = 'running' RETURNING id"
        ))
        .bind(self.id)
        .bind(progress.rows_done)
        .bind(i64::from(counts.accepted))
        .bind(i64::from(counts.duplicates))
        .bind(i64::from(counts.ignored))
        .bind(i64::from(counts.stale))
        .bind(i64::from(counts.failed))
        .bind(progress.rejected)
        .bind(progress.rejects_bytes)
        .bind(progress.rejects_file)
        .fetch_optional(&mut *self.tx)
        .await?;
        if running.is_none() {
            return Err(StoreBatchError::Cancelled(self.id));
        }
        self.tx.commit().await?;
        Ok(counts)
    }
}

/// The batch under a savepoint; when Postgres refuses its data, record by record,
/// each under its own savepoint.
async fn store_records(
    tx: &mut PgConnection,
    id: i64,
    columns: &InsertColumns,
) -> Result<IngestCounts, sqlx::Error> {
    let attempt = {
        let mut savepoint = tx.begin().await?;
        let stored = inbound::ingest_columns(&mut savepoint, columns, Some(id)).await;
        if stored.is_ok() {
            savepoint.commit().await?;
        }
        stored
    };
    match attempt {
        Ok(counts) => Ok(counts.into_iter().next().unwrap_or_default()),
        Err(e) if is_data_error(&e) => {
            tracing::warn!(error = %e, import = id, "Postgres refused an import batch's data; storing its records one by one");
            inbound::ingest_row_by_row(tx, columns, Some(id)).await
        }
        Err(e) => Err(e),
    }
}

/// Marks import `id` finished.
pub async fn finish(pool: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE imports SET state = 'finished', finished_at = now(), updated_at = now()
         WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Stops import `id` (a running one stores no further batch) and cancels its
/// undelivered outbox rows; rows in flight finish. `None` when there is no such import,
/// else the rows cancelled.
pub async fn cancel(pool: &PgPool, id: i64) -> Result<Option<u64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let found: Option<i64> = sqlx::query_scalar(
        "UPDATE imports SET state = CASE WHEN state = 'running' THEN 'cancelled'::import_state ELSE state END,
             finished_at = COALESCE(finished_at, now()), updated_at = now()
         WHERE id = $1 RETURNING id",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if found.is_none() {
        return Ok(None);
    }
    let users: Vec<Option<String>> = sqlx::query_scalar(&format!(
        "UPDATE outbox SET status = 'cancelled', last_error = 'import cancelled', updated_at = now()
         WHERE inbound_id IN ({IMPORTED}) AND status = 'pending'
         RETURNING user_id"
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let cancelled = users.len() as u64;
    let users: Vec<String> = users.into_iter().flatten().collect();
    promote_heads(&mut *tx, &users).await?;
    tx.commit().await?;
    Ok(Some(cancelled))
}
