//! Storing mapped chunks: the statements of two chunks run at once, each in a
//! transaction of its own, so Postgres works on two cores; their commits run in
//! order, so the progress committed with a chunk counts every row before it. Two
//! chunks only run at once when they write nothing in common (`LockKeys`: dedupe keys,
//! version fences, users): the later one could otherwise take a row lock the earlier
//! one then waits for, while it waits for the earlier one's commit, a deadlock
//! Postgres cannot see. A live webhook between them could close the same circle; a
//! chunk gives up a lock wait after `lock_timeout` (`store::imports`), and the chunks
//! not committed are stored again one at a time.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::input::{self, InputFormat};
use super::pipeline::Mapped;
use super::rejects::RejectsFile;
use super::{DRY_RUN_BODIES, ImportError, Summary};
use crate::ingest::TypeGuard;
use crate::mapping::{IncomingRecord, RecordStatus, SourceMapping};
use crate::store::columns::{InsertColumns, LockKeys};
use crate::store::imports::{self, BatchProgress, ImportRow, StoreBatchError};
use crate::store::inbound::{Content, IngestCounts, IngestJob, RequestMeta};

/// Chunks whose statements run at once: Postgres runs each in a backend of its own.
const STATEMENTS_AT_ONCE: usize = 2;

/// A mapped chunk's records as the writer gets them.
pub enum MappedRows {
    /// Their insert columns, the records dropped: the attribute types were all known.
    Encoded(Box<InsertColumns>),
    /// The records: a dry run, or a chunk that brings attributes seen for the first
    /// time, whose types the writer records in order before building the columns.
    Records(Vec<IncomingRecord>),
}

/// What a mapping thread needs to build a chunk's insert columns.
#[derive(Clone)]
pub struct Encoder {
    types: Arc<TypeGuard>,
    origin: Origin,
}

impl Encoder {
    /// The chunk's columns when its attribute types are all known, else its records.
    pub fn encode_known(&self, mut records: Vec<IncomingRecord>) -> MappedRows {
        if self.types.check_known(&mut records) {
            MappedRows::Encoded(Box::new(self.origin.columns(records)))
        } else {
            MappedRows::Records(records)
        }
    }
}

/// A chunk ready for its statement.
struct Prepared {
    columns: Arc<InsertColumns>,
    rows: u64,
    progress: BatchProgress,
}

/// A chunk being stored by a task of its own.
struct InFlight {
    chunk: Prepared,
    keys: LockKeys,
    task: JoinHandle<Result<IngestCounts, ChunkError>>,
}

/// Why a chunk's task did not commit it.
enum ChunkError {
    /// The import was cancelled (`import cancel`).
    Cancelled,
    /// The chunk before it was not committed, so neither is this one.
    Abandoned,
    Database(sqlx::Error),
}

/// What each of an import's rows is stored with.
#[derive(Clone)]
struct Origin {
    source: String,
    mapping_hash: String,
    request_id: String,
}

impl Origin {
    fn columns(&self, records: Vec<IncomingRecord>) -> InsertColumns {
        let content = Content::Records(records);
        InsertColumns::of(&[IngestJob {
            meta: &self.meta(),
            content: &content,
        }])
    }

    fn meta(&self) -> RequestMeta<'_> {
        RequestMeta {
            source: &self.source,
            mapping_hash: &self.mapping_hash,
            content_type: None,
            request_id: &self.request_id,
            // An import is no webhook: its rows start no trace.
            trace_context: None,
        }
    }
}

/// Stores mapped chunks in order (or, for a dry run, counts them).
pub struct Writer<'a> {
    /// The database and the import, unless this is a dry run.
    target: Option<(&'a PgPool, i64)>,
    origin: Origin,
    files: &'a [(PathBuf, InputFormat)],
    types: Arc<TypeGuard>,
    /// The rejects file of the input being read, with that input's index.
    rejects: Option<(usize, RejectsFile)>,
    /// A resumed import's rejects file and its committed length, until it is reopened.
    resume: Option<(usize, u64)>,
    /// Chunks being stored, oldest first.
    in_flight: VecDeque<InFlight>,
    /// Resolves when the newest chunk in flight has committed: the next one's turn.
    turn: Option<oneshot::Receiver<()>>,
}

impl<'a> Writer<'a> {
    /// A writer into `import` (`None`: a dry run).
    pub fn new(
        target: Option<(&'a PgPool, &ImportRow)>,
        mapping: &SourceMapping,
        files: &'a [(PathBuf, InputFormat)],
    ) -> Self {
        let import = target.map(|(_, import)| import);
        Writer {
            target: target.map(|(pool, import)| (pool, import.id)),
            origin: Origin {
                source: mapping.id.clone(),
                mapping_hash: mapping.content_hash.clone(),
                request_id: format!("import-{}", import.map_or(0, |i| i.id)),
            },
            files,
            types: Arc::default(),
            rejects: None,
            resume: import
                .filter(|i| i.rows_done > 0)
                .map(|i| (i.rejects_file as usize, i.rejects_bytes as u64)),
            in_flight: VecDeque::new(),
            turn: None,
        }
    }

    /// What the mapping threads need to build columns (`None` for a dry run), with
    /// the attribute types recorded so far loaded.
    pub async fn encoder(&self) -> Result<Option<Encoder>, ImportError> {
        let Some((pool, _)) = self.target else {
            return Ok(None);
        };
        self.types.ensure_loaded(pool).await?;
        Ok(Some(Encoder {
            types: Arc::clone(&self.types),
            origin: self.origin.clone(),
        }))
    }

    /// Takes the next chunk in order: its rejects are written and its statement
    /// started, once a chunk in flight has committed if too many are. A chunk of an
    /// import cancelled meanwhile sets `summary.cancelled`.
    pub async fn write(
        &mut self,
        mapped: Mapped,
        summary: &mut Summary,
    ) -> Result<(), ImportError> {
        let Some((pool, id)) = self.target else {
            count_dry_run(mapped, summary);
            return Ok(());
        };
        let chunk = self
            .prepare(pool, mapped, &mut summary.rejects_files)
            .await?;
        let keys = chunk.columns.lock_keys();
        // A chunk that writes what one in flight writes waits for it: it could take a
        // row lock first that the earlier chunk then waits for, while it waits for
        // that chunk's commit.
        let related = self.in_flight.iter().any(|c| c.keys.overlap(&keys));
        while (related && !self.in_flight.is_empty()) || self.in_flight.len() >= STATEMENTS_AT_ONCE
        {
            self.settle_oldest(pool, id, summary).await?;
            if summary.cancelled {
                return Ok(());
            }
        }
        let (done, next_turn) = oneshot::channel();
        let turn = self.turn.replace(next_turn);
        let task = tokio::spawn(store_in_turn(
            pool.clone(),
            id,
            (Arc::clone(&chunk.columns), chunk.progress),
            turn,
            done,
        ));
        self.in_flight.push_back(InFlight { chunk, keys, task });
        Ok(())
    }

    /// Waits for every chunk in flight to commit (at the end of the input or `--limit`).
    pub async fn flush(&mut self, summary: &mut Summary) -> Result<(), ImportError> {
        let Some((pool, id)) = self.target else {
            return Ok(());
        };
        while !self.in_flight.is_empty() && !summary.cancelled {
            self.settle_oldest(pool, id, summary).await?;
        }
        Ok(())
    }

    /// Waits for the oldest chunk in flight and counts it. When it lost a lock wait,
    /// it and every chunk after it (none of which has committed) are stored again one
    /// at a time.
    async fn settle_oldest(
        &mut self,
        pool: &PgPool,
        id: i64,
        summary: &mut Summary,
    ) -> Result<(), ImportError> {
        let Some(oldest) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let outcome = oldest.task.await.expect("storing a chunk does not panic");
        let error = match outcome {
            Ok(counts) => {
                add(summary, oldest.chunk.rows, oldest.chunk.progress, counts);
                return Ok(());
            }
            Err(ChunkError::Cancelled) => {
                summary.cancelled = true;
                return Ok(());
            }
            Err(ChunkError::Database(e)) if !imports::lost_a_lock_wait(&e) => {
                return Err(e.into());
            }
            Err(ChunkError::Database(e)) => e.to_string(),
            Err(ChunkError::Abandoned) => "the chunk before it was not stored".to_owned(),
        };
        tracing::warn!(import = id, %error, "storing the chunks in flight again, one at a time");
        let mut again = vec![oldest.chunk];
        for later in std::mem::take(&mut self.in_flight) {
            // Abandoned (rolled back), since this chunk never committed.
            let _ = later.task.await;
            again.push(later.chunk);
        }
        self.turn = None;
        for chunk in again {
            let (done, _) = oneshot::channel();
            let columns = (Arc::clone(&chunk.columns), chunk.progress);
            match store_in_turn(pool.clone(), id, columns, None, done).await {
                Ok(counts) => add(summary, chunk.rows, chunk.progress, counts),
                Err(ChunkError::Cancelled) => {
                    summary.cancelled = true;
                    return Ok(());
                }
                Err(ChunkError::Database(e)) => return Err(e.into()),
                Err(ChunkError::Abandoned) => {
                    unreachable!("a chunk stored alone waits for no turn")
                }
            }
        }
        Ok(())
    }

    /// Writes the chunk's rejects; for a chunk of records, checks their attribute types
    /// (in order, as ingest does) and builds their columns on a blocking thread.
    async fn prepare(
        &mut self,
        pool: &PgPool,
        mapped: Mapped,
        rejects_files: &mut Vec<PathBuf>,
    ) -> Result<Prepared, ImportError> {
        let rejects_bytes = self.write_rejects(&mapped, rejects_files)?;
        let progress = BatchProgress {
            rows_done: mapped.rows_end as i64,
            rejected: mapped.rejected.len() as i64,
            rejects_bytes: rejects_bytes as i64,
            rejects_file: mapped.file as i32,
        };
        let columns = match mapped.records {
            MappedRows::Encoded(columns) => *columns,
            MappedRows::Records(mut records) => {
                self.types.check(pool, &mut records).await?;
                let origin = self.origin.clone();
                tokio::task::spawn_blocking(move || origin.columns(records))
                    .await
                    .expect("building a chunk's columns does not panic")
            }
        };
        Ok(Prepared {
            columns: Arc::new(columns),
            rows: mapped.rows,
            progress,
        })
    }

    /// Appends the chunk's rejected rows to its input's rejects file; the file's length.
    fn write_rejects(
        &mut self,
        mapped: &Mapped,
        written: &mut Vec<PathBuf>,
    ) -> Result<u64, ImportError> {
        let path = input::rejects_path(&self.files[mapped.file].0);
        self.append_rejects(mapped, &path, written)
            .map_err(|error| ImportError::Rejects {
                path: path.display().to_string(),
                error,
            })
    }

    fn append_rejects(
        &mut self,
        mapped: &Mapped,
        path: &Path,
        written: &mut Vec<PathBuf>,
    ) -> std::io::Result<u64> {
        if self
            .rejects
            .as_ref()
            .is_none_or(|(file, _)| *file != mapped.file)
        {
            let keep = match self.resume.take() {
                Some((file, bytes)) if file == mapped.file => bytes,
                _ => 0,
            };
            self.rejects = Some((mapped.file, RejectsFile::open(path, keep)?));
        }
        let (_, rejects) = self.rejects.as_mut().expect("opened above");
        for rejected in &mapped.rejected {
            rejects.write(rejected, mapped.columns.as_deref())?;
        }
        let bytes = rejects.flush()?;
        if bytes > 0 && !written.iter().any(|p| p == rejects.path()) {
            written.push(rejects.path().to_path_buf());
        }
        Ok(bytes)
    }
}

/// Stores one chunk, committing it once the chunk before it has committed (`turn`),
/// and then says so (`done`); when that chunk is not committed, neither is this one.
async fn store_in_turn(
    pool: PgPool,
    id: i64,
    (columns, progress): (Arc<InsertColumns>, BatchProgress),
    turn: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
) -> Result<IngestCounts, ChunkError> {
    let staged = imports::stage_batch(&pool, id, &columns)
        .await
        .map_err(ChunkError::Database)?;
    if let Some(turn) = turn {
        turn.await.map_err(|_| ChunkError::Abandoned)?;
    }
    let counts = staged.commit(progress).await.map_err(|e| match e {
        StoreBatchError::Cancelled(_) => ChunkError::Cancelled,
        StoreBatchError::Database(e) => ChunkError::Database(e),
    })?;
    let _ = done.send(());
    Ok(counts)
}

impl Drop for Writer<'_> {
    /// An interrupted import leaves nothing running: chunks not committed roll back.
    fn drop(&mut self) {
        for chunk in &self.in_flight {
            chunk.task.abort();
        }
    }
}

/// A committed chunk's rows in the summary.
fn add(summary: &mut Summary, rows: u64, progress: BatchProgress, stored: IngestCounts) {
    let counts = &mut summary.counts;
    counts.rows += rows;
    counts.accepted += u64::from(stored.accepted);
    counts.duplicates += u64::from(stored.duplicates);
    counts.ignored += u64::from(stored.ignored);
    counts.stale += u64::from(stored.stale);
    counts.rejected += progress.rejected as u64 + u64::from(stored.failed);
}

/// A dry run's chunk: counted, its first bodies and rejects kept to show.
fn count_dry_run(mapped: Mapped, summary: &mut Summary) {
    let counts = &mut summary.counts;
    counts.rows += mapped.rows;
    counts.rejected += mapped.rejected.len() as u64;
    let MappedRows::Records(records) = &mapped.records else {
        unreachable!("a dry run's mapping threads build no columns")
    };
    for record in records {
        match record.mapped.status {
            RecordStatus::Ignored => counts.ignored += 1,
            _ => counts.accepted += 1,
        }
        if summary.first_bodies.len() < DRY_RUN_BODIES {
            summary
                .first_bodies
                .extend(record.mapped.operations.iter().map(|op| op.body.clone()));
        }
    }
    let room = DRY_RUN_BODIES.saturating_sub(summary.first_rejects.len());
    summary
        .first_rejects
        .extend(mapped.rejected.into_iter().take(room));
}
