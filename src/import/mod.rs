//! Historical import (`webengage-bridge import`): exported CRM files through the same
//! mappings, dedupe keys, stale fence and outbox as webhooks.
//!
//! `input` reads rows (CSV, JSON lines, a JSON array; `.gz`; stdin), `record` makes
//! each row the record its source's webhook would carry, `pipeline` maps rows on every
//! core and `writer` stores them in large batches, each committed with the import's
//! progress (`store::imports`), so that the same command run again after an interruption
//! continues where the last committed batch ended, storing nothing twice. Rows that
//! cannot be read or mapped go to `rejects`.

mod input;
mod pipeline;
mod progress;
mod record;
mod rejects;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

pub use input::{InputFormat, rejects_path};
pub use pipeline::run;
pub use record::Rejected;

/// Rows mapped and stored together (one transaction, one statement). A mapped
/// LeadSquared lead holds some 15 KB as JSON values and 4 KB as insert columns; each
/// mapping thread holds up to two chunks of records, and some five chunks of columns
/// are queued or in flight (see `pipeline` and `writer`): this bounds the memory.
pub const BATCH_ROWS: usize = 500;
/// Bodies a dry run prints.
pub const DRY_RUN_BODIES: usize = 3;

/// What `import` was asked to do.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub source: String,
    /// Every file's format; by default from each file's name.
    pub format: Option<InputFormat>,
    pub dry_run: bool,
    /// Import at most this many rows (counted from the start of the first file); an
    /// import stopped by its limit stays open for the same command to continue.
    pub limit: Option<u64>,
    pub quiet: bool,
    /// The Salesforce object of every row (else from the Id's key prefix).
    pub object: Option<String>,
    pub files: Vec<PathBuf>,
}

/// Rows by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Rows read in this run (past the rows a resumed import skips).
    pub rows: u64,
    /// New records that produced operations (a dry run: records that would).
    pub accepted: u64,
    pub duplicates: u64,
    pub ignored: u64,
    pub stale: u64,
    /// Rows in the rejects file: unreadable, or a rule failed.
    pub rejected: u64,
}

impl Counts {
    pub fn line(&self) -> String {
        format!(
            "{} rows: {} accepted, {} duplicates, {} ignored, {} stale, {} rejected",
            self.rows, self.accepted, self.duplicates, self.ignored, self.stale, self.rejected
        )
    }
}

/// How an import run ended.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// `None` for a dry run.
    pub import_id: Option<i64>,
    /// Rows skipped because an earlier run of the same import committed them.
    pub resumed_at: u64,
    pub counts: Counts,
    pub elapsed: Duration,
    /// Stopped by Ctrl-C: the same command continues it.
    pub interrupted: bool,
    /// Stopped at `--limit` with rows left: the import stays open, and the same
    /// command (with a higher limit, or none) continues it.
    pub limited: bool,
    /// Stopped because support cancelled the import.
    pub cancelled: bool,
    /// The rejects files written (one per input with rejected rows).
    pub rejects_files: Vec<PathBuf>,
    /// A dry run's first operation bodies and first rejected rows.
    pub first_bodies: Vec<Value>,
    pub first_rejects: Vec<Rejected>,
}

impl Summary {
    pub fn rate(&self) -> f64 {
        self.counts.rows as f64 / self.elapsed.as_secs_f64().max(0.001)
    }
}

/// Why an import could not run (a bad row is never one of these).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("no mapping file defines the source `{0}`")]
    UnknownSource(String),
    #[error("{0}: cannot tell the format from the name; pass --format csv|jsonl|json")]
    UnknownFormat(String),
    #[error("{path}: {error}")]
    Input { path: String, error: std::io::Error },
    #[error("the rejects file {path}: {error}")]
    Rejects { path: String, error: std::io::Error },
    #[error("the database: {0}")]
    Database(#[from] sqlx::Error),
}
