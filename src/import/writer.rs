//! Storing mapped chunks in order, three at a time: while Postgres commits chunk k, it
//! runs chunk k+1's statement on a second connection, and chunk k+2 is made ready (its
//! columns, usually built by its mapping thread already). Statements run one after
//! another, so a chunk only ever waits for the locks of the chunk before it (the same
//! record in both), which is already past its statement and only committing; commits
//! run in order, so the progress committed with a chunk counts every row before it.
//! (Two statements at once could each wait for the other's rows while the later one
//! also waits for the earlier one's commit: a deadlock Postgres cannot see.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::PgPool;

use super::input::{self, InputFormat};
use super::pipeline::Mapped;
use super::rejects::RejectsFile;
use super::{DRY_RUN_BODIES, ImportError, Summary};
use crate::ingest::TypeGuard;
use crate::mapping::{IncomingRecord, RecordStatus, SourceMapping};
use crate::store::columns::InsertColumns;
use crate::store::imports::{self, BatchProgress, ImportRow, StagedBatch, StoreBatchError};
use crate::store::inbound::{Content, IngestCounts, IngestJob, RequestMeta};

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
    columns: InsertColumns,
    rows: u64,
    progress: BatchProgress,
}

/// A chunk whose statement ran, waiting for its commit.
struct Staged {
    batch: StagedBatch,
    rows: u64,
    progress: BatchProgress,
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
    prepared: Option<Prepared>,
    staged: Option<Staged>,
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
            prepared: None,
            staged: None,
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

    /// Takes the next chunk in order and moves the pipeline one step. A chunk of an
    /// import cancelled meanwhile sets `summary.cancelled`.
    pub async fn write(
        &mut self,
        mapped: Mapped,
        summary: &mut Summary,
    ) -> Result<(), ImportError> {
        match self.target {
            Some((pool, id)) => self.step(pool, id, Some(mapped), summary).await,
            None => {
                count_dry_run(mapped, summary);
                Ok(())
            }
        }
    }

    /// Commits the chunks still in the pipeline (at the end of the input or `--limit`).
    pub async fn flush(&mut self, summary: &mut Summary) -> Result<(), ImportError> {
        let Some((pool, id)) = self.target else {
            return Ok(());
        };
        while (self.prepared.is_some() || self.staged.is_some()) && !summary.cancelled {
            self.step(pool, id, None, summary).await?;
        }
        Ok(())
    }

    /// Commits the staged chunk, runs the prepared one's statement and prepares
    /// `mapped`, all at once.
    async fn step(
        &mut self,
        pool: &PgPool,
        id: i64,
        mapped: Option<Mapped>,
        summary: &mut Summary,
    ) -> Result<(), ImportError> {
        let (staged, prepared) = (self.staged.take(), self.prepared.take());
        let commit = async move {
            let staged = staged?;
            Some((
                staged.rows,
                staged.progress,
                staged.batch.commit(staged.progress).await,
            ))
        };
        let statement = async {
            let p = prepared?;
            let staged = imports::stage_batch(pool, id, &p.columns)
                .await
                .map(|batch| Staged {
                    batch,
                    rows: p.rows,
                    progress: p.progress,
                });
            Some(staged)
        };
        let rejects_files = &mut summary.rejects_files;
        let prepare = async {
            match mapped {
                Some(mapped) => Some(self.prepare(pool, mapped, rejects_files).await),
                None => None,
            }
        };
        let (committed, staged, prepared) = tokio::join!(commit, statement, prepare);
        if let Some((rows, progress, committed)) = committed {
            match committed {
                Ok(counts) => add(summary, rows, progress, counts),
                Err(StoreBatchError::Cancelled(_)) => {
                    summary.cancelled = true;
                    return Ok(());
                }
                Err(StoreBatchError::Database(e)) => return Err(e.into()),
            }
        }
        self.staged = staged.transpose()?;
        self.prepared = prepared.transpose()?;
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
            columns,
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
