//! The import's pipeline: one thread reads rows into chunks, a thread per core maps
//! them (and builds their insert columns), and the calling task hands them in order to
//! the `writer`, a chunk per transaction with the import's progress. The queues between
//! the steps are bounded, so memory holds a few chunks whatever the file's size, and a
//! slow database slows the reading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sqlx::PgPool;
use tokio::sync::mpsc;

use super::input::{self, InputFormat, RawRow, RowContent};
use super::progress::Progress;
use super::record::{Rejected, record_of};
use super::writer::{Encoder, MappedRows, Writer};
use super::{BATCH_ROWS, ImportError, ImportOptions, Summary};
use crate::mapping::{ReadOptions, RecordStatus, SourceMapping};
use crate::store::imports;

/// Rows read, for one input file.
struct Chunk {
    seq: u64,
    file: usize,
    rows: Vec<RawRow>,
    /// Rows read from the start of the first file up to the end of this chunk.
    rows_end: u64,
}

/// A chunk mapped.
pub(super) struct Mapped {
    pub(super) seq: u64,
    pub(super) file: usize,
    pub(super) rows: u64,
    pub(super) rows_end: u64,
    pub(super) records: MappedRows,
    pub(super) rejected: Vec<Rejected>,
    /// The input's CSV columns, for the rejects file's header.
    pub(super) columns: Option<Arc<[String]>>,
}

enum Event {
    Mapped(Mapped),
    /// An input could not be read (not a row: the file).
    Failed(ImportError),
}

/// Runs one import (or a dry run, without `pool`).
pub async fn run(
    pool: Option<&PgPool>,
    mapping: Arc<SourceMapping>,
    options: &ImportOptions,
) -> Result<Summary, ImportError> {
    let started = Instant::now();
    let files: Vec<(PathBuf, InputFormat)> = options
        .files
        .iter()
        .map(|f| {
            let format = options.format.or_else(|| InputFormat::of(f));
            format
                .map(|format| (f.clone(), format))
                .ok_or_else(|| ImportError::UnknownFormat(f.display().to_string()))
        })
        .collect::<Result<_, _>>()?;
    let names: Vec<String> = files.iter().map(|(f, _)| absolute(f)).collect();
    let import = match pool {
        Some(pool) => Some(match imports::resumable(pool, &mapping.id, &names).await? {
            Some(found) => found,
            None => imports::create(pool, &mapping.id, &names).await?,
        }),
        None => None,
    };
    let skip = import.as_ref().map_or(0, |i| i.rows_done as u64);
    let mut summary = Summary {
        import_id: import.as_ref().map(|i| i.id),
        resumed_at: skip,
        ..Summary::default()
    };
    if !options.quiet {
        match &import {
            Some(i) if skip > 0 => eprintln!(
                "import {}: continuing after row {skip} (the rows before it are stored)",
                i.id
            ),
            Some(i) => eprintln!(
                "import {}: {} file(s) for source `{}`",
                i.id,
                files.len(),
                mapping.id
            ),
            None => eprintln!("dry run: mapping without storing"),
        }
    }
    let total_bytes = files
        .iter()
        .map(|(f, _)| {
            std::fs::metadata(f)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len())
        })
        .sum::<Option<u64>>();
    let read_bytes = Arc::new(AtomicU64::new(0));
    let limited = Arc::new(AtomicBool::new(false));
    let mut writer = Writer::new(
        pool.zip(import.as_ref()).filter(|_| !options.dry_run),
        &mapping,
        &files,
    );
    let encoder = writer.encoder().await?;
    let mut events = start(
        files.clone(),
        (&mapping, encoder),
        options,
        skip,
        (read_bytes.clone(), limited.clone()),
    );
    let mut progress = Progress::new(options.quiet, total_bytes);
    let mut pending = BTreeMap::new();
    let mut next = 0;
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = &mut interrupt => {
                summary.interrupted = true;
                break;
            }
        };
        let mapped = match event {
            None => break,
            Some(Event::Failed(e)) => {
                progress.finish();
                return Err(e);
            }
            Some(Event::Mapped(m)) => m,
        };
        pending.insert(mapped.seq, mapped);
        while let Some(mapped) = pending.remove(&next) {
            next += 1;
            if let Err(e) = writer.write(mapped, &mut summary).await {
                progress.finish();
                return Err(e);
            }
            if summary.cancelled {
                break;
            }
            progress.update(read_bytes.load(Ordering::Relaxed), &summary.counts);
        }
        if summary.cancelled {
            break;
        }
    }
    drop(events);
    if !summary.interrupted
        && !summary.cancelled
        && let Err(e) = writer.flush(&mut summary).await
    {
        progress.finish();
        return Err(e);
    }
    progress.update(read_bytes.load(Ordering::Relaxed), &summary.counts);
    progress.finish();
    summary.limited = limited.load(Ordering::Acquire);
    if let (Some(pool), Some(import)) = (pool, &import)
        && !summary.interrupted
        && !summary.cancelled
        && !summary.limited
    {
        imports::finish(pool, import.id).await?;
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// A file's name as recorded: absolute, so the same command from another directory
/// is the same import.
fn absolute(path: &Path) -> String {
    if path == Path::new("-") {
        return "-".to_owned();
    }
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Starts the reading thread and the mapping threads; their chunks come back in any
/// order (`seq` orders them).
fn start(
    files: Vec<(PathBuf, InputFormat)>,
    (mapping, encoder): (&Arc<SourceMapping>, Option<Encoder>),
    options: &ImportOptions,
    skip: u64,
    (read_bytes, limited): (Arc<AtomicU64>, Arc<AtomicBool>),
) -> mpsc::Receiver<Event> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // One chunk waiting on each side of the mappers is enough to keep the database
    // busy, which is the slow step; more would only hold memory.
    let (chunks, work) = sync_channel::<Chunk>(1);
    let (done, events) = mpsc::channel::<Event>(1);
    let work = Arc::new(Mutex::new(work));
    let read_options = ReadOptions::offline(jiff::Timestamp::now());
    for _ in 0..workers {
        let (work, done, mapping) = (work.clone(), done.clone(), mapping.clone());
        let (object, encoder) = (options.object.clone(), encoder.clone());
        std::thread::spawn(move || {
            let to = (&*mapping, object.as_deref(), &read_options);
            map_chunks(&work, &done, to, encoder.as_ref())
        });
    }
    let limit = options.limit.unwrap_or(u64::MAX);
    std::thread::spawn(move || {
        if let Err(e) = read_files(&files, (skip, limit), &chunks, read_bytes, &limited) {
            let _ = done.blocking_send(Event::Failed(e));
        }
    });
    events
}

/// Reads every file in order into chunks, past the first `skip` rows and up to
/// `limit`; `limited` says whether rows were left past the limit.
fn read_files(
    files: &[(PathBuf, InputFormat)],
    (skip, limit): (u64, u64),
    chunks: &SyncSender<Chunk>,
    read_bytes: Arc<AtomicU64>,
    limited: &AtomicBool,
) -> Result<(), ImportError> {
    let (mut index, mut seq) = (0u64, 0u64);
    for (file, (path, format)) in files.iter().enumerate() {
        let failed = |error| ImportError::Input {
            path: path.display().to_string(),
            error,
        };
        let reader = input::open(path, read_bytes.clone()).map_err(failed)?;
        let mut rows = Vec::with_capacity(BATCH_ROWS);
        for row in input::rows(reader, *format) {
            let row = row.map_err(failed)?;
            if index >= limit {
                limited.store(true, Ordering::Release);
                break;
            }
            index += 1;
            if index <= skip {
                continue;
            }
            rows.push(row);
            if rows.len() == BATCH_ROWS {
                let full = std::mem::replace(&mut rows, Vec::with_capacity(BATCH_ROWS));
                if send(chunks, &mut seq, file, full, index).is_err() {
                    return Ok(()); // the import stopped
                }
            }
        }
        if !rows.is_empty() && send(chunks, &mut seq, file, rows, index).is_err() {
            return Ok(());
        }
        if index >= limit && limited.load(Ordering::Acquire) {
            break;
        }
    }
    Ok(())
}

fn send(
    chunks: &SyncSender<Chunk>,
    seq: &mut u64,
    file: usize,
    rows: Vec<RawRow>,
    rows_end: u64,
) -> Result<(), ()> {
    let chunk = Chunk {
        seq: *seq,
        file,
        rows,
        rows_end,
    };
    *seq += 1;
    chunks.send(chunk).map_err(|_| ())
}

/// A mapping thread: each row to its record, through the mapping's one entry point.
/// With an `encoder` (not a dry run) it also builds the chunk's insert columns and drops
/// the records, which are several times their columns' size.
fn map_chunks(
    work: &Mutex<Receiver<Chunk>>,
    done: &mpsc::Sender<Event>,
    (mapping, object, options): (&SourceMapping, Option<&str>, &ReadOptions),
    encoder: Option<&Encoder>,
) {
    loop {
        let chunk = match work.lock() {
            Ok(work) => work.recv(),
            Err(_) => return,
        };
        let Ok(chunk) = chunk else { return };
        let columns = chunk.rows.iter().find_map(|r| match &r.content {
            RowContent::Csv { headers, .. } => Some(headers.clone()),
            _ => None,
        });
        let mut records = Vec::with_capacity(chunk.rows.len());
        let mut rejected = Vec::new();
        for row in &chunk.rows {
            match record_of(row, mapping, object) {
                Ok(payload) => {
                    let record = mapping.incoming(payload, options);
                    match record.mapped.error() {
                        Some(reason) if record.mapped.status == RecordStatus::Failed => {
                            rejected.push(Rejected::new(row, reason));
                        }
                        _ => records.push(record),
                    }
                }
                Err(rejection) => rejected.push(rejection),
            }
        }
        let rows = match encoder {
            Some(encoder) => encoder.encode_known(records),
            None => MappedRows::Records(records),
        };
        let mapped = Mapped {
            seq: chunk.seq,
            file: chunk.file,
            rows: chunk.rows.len() as u64,
            rows_end: chunk.rows_end,
            records: rows,
            rejected,
            columns,
        };
        if done.blocking_send(Event::Mapped(mapped)).is_err() {
            return;
        }
    }
}
