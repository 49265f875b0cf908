//! The optional local spool (`BRIDGE_SPOOL_DIR`): while Postgres is unavailable,
//! LeadSquared webhooks (which may be disabled for answering non-200) are appended to
//! a local file, fsynced, and only then answered 200. A background task replays them
//! into Postgres, in order, through the normal ingest path once it is back.
//!
//! The trade-off (docs/operations.md): such a 200 rests on this disk until replayed.
//!
//! Format: JSON lines, each prefixed with the SHA-256 of its JSON, so a line torn by a
//! crash mid-write (never acknowledged: the fsync comes before the answer) is detected
//! and skipped. Files: `active.jsonl` takes appends; replay renames it to
//! `ready-<n>.jsonl` and deletes a ready file only after all of its entries committed.
//! Replay is idempotent: a re-run stores each record once (dedupe keys).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::Registry;
use crate::ingest::{self, IngestError, IngestStore};
use crate::source::InboundRequest;

const ACTIVE: &str = "active.jsonl";
const REPLAY_EVERY: Duration = Duration::from_secs(1);

/// One spooled request: what ingest needs after authentication, and no credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpoolEntry {
    pub source: String,
    pub request_id: String,
    pub content_type: Option<String>,
    pub body_base64: String,
}

impl SpoolEntry {
    pub fn new(source: &str, request_id: &str, request: &InboundRequest) -> SpoolEntry {
        SpoolEntry {
            source: source.to_owned(),
            request_id: request_id.to_owned(),
            content_type: request.content_type().map(str::to_owned),
            body_base64: STANDARD.encode(&request.body),
        }
    }

    fn request(&self) -> Option<InboundRequest> {
        let mut request = InboundRequest {
            body: STANDARD.decode(&self.body_base64).ok()?,
            ..InboundRequest::default()
        };
        if let Some(ct) = &self.content_type {
            request
                .headers
                .insert("content-type".to_owned(), ct.clone());
        }
        Some(request)
    }
}

pub struct Spool {
    dir: PathBuf,
    /// Appends and the rotation of the active file never interleave.
    files: tokio::sync::Mutex<()>,
    /// Entries written and not yet replayed (all files).
    pending: AtomicU64,
}

impl Spool {
    /// Opens (creating) the folder and counts what an earlier run left to replay.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut pending = 0;
        for file in spool_files(dir)? {
            pending += std::fs::read_to_string(&file)?.lines().count() as u64;
        }
        let spool = Spool {
            dir: dir.to_path_buf(),
            files: tokio::sync::Mutex::new(()),
            pending: AtomicU64::new(pending),
        };
        spool.publish();
        Ok(spool)
    }

    /// While anything waits for replay, new requests queue behind it, keeping order.
    pub fn has_backlog(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0
    }

    /// Appends one entry and fsyncs it; only then may the webhook be answered.
    pub async fn append(&self, entry: &SpoolEntry) -> std::io::Result<()> {
        let json = serde_json::to_string(entry).map_err(std::io::Error::other)?;
        let line = format!("{} {json}\n", hex::encode(Sha256::digest(json.as_bytes())));
        let _guard = self.files.lock().await;
        let path = self.dir.join(ACTIVE);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || append_synced(&dir, &path, line.as_bytes()))
            .await
            .map_err(std::io::Error::other)??;
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.publish();
        Ok(())
    }

    /// Replays every ready file, then the active one, in order. Stops at the first
    /// storage failure (Postgres still down) and leaves the rest for the next round.
    pub async fn replay(&self, store: &IngestStore, registry: &Registry) -> std::io::Result<u64> {
        self.rotate().await?;
        let mut replayed = 0;
        for file in spool_files(&self.dir)?
            .into_iter()
            .filter(|f| !f.ends_with(ACTIVE))
        {
            let text = tokio::fs::read_to_string(&file).await?;
            for line in text.lines() {
                if !replay_line(store, registry, line).await {
                    return Ok(replayed);
                }
                replayed += 1;
            }
            tokio::fs::remove_file(&file).await?;
            sync_dir(&self.dir)?;
            self.pending
                .fetch_sub(text.lines().count() as u64, Ordering::SeqCst);
            self.publish();
            tracing::info!(file = %file.display(), "spool file replayed into Postgres and removed");
        }
        Ok(replayed)
    }

    /// Moves the active file aside so appends go to a fresh one while it replays.
    async fn rotate(&self) -> std::io::Result<()> {
        let _guard = self.files.lock().await;
        let active = self.dir.join(ACTIVE);
        if !active.exists() {
            return Ok(());
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        std::fs::rename(&active, self.dir.join(format!("ready-{stamp:024}.jsonl")))?;
        sync_dir(&self.dir)
    }

    fn publish(&self) {
        metrics::gauge!("bridge_spool_pending_records")
            .set(self.pending.load(Ordering::SeqCst) as f64);
    }
}

/// Stores one spooled line; false when Postgres is still unavailable.
async fn replay_line(store: &IngestStore, registry: &Registry, line: &str) -> bool {
    let Some(entry) = parse_line(line) else {
        tracing::error!("skipping a torn or corrupted spool line (it was never acknowledged)");
        return true;
    };
    let (mappings, request) = (registry.current(), entry.request());
    let (Some(mapping), Some(request)) = (mappings.get(&entry.source), request) else {
        tracing::error!(source = %entry.source, request_id = %entry.request_id, "a spooled webhook's source no longer exists; it is dropped");
        return true;
    };
    let outcome =
        ingest::store_authenticated(store, mapping, &entry.source, &request, &entry.request_id)
            .await;
    match outcome {
        Err(IngestError::Storage(e)) => {
            tracing::warn!(error = %e, "spool replay waits: Postgres is still unavailable");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, request_id = %entry.request_id, "a spooled webhook was refused on replay");
            true
        }
        Ok(_) => {
            metrics::counter!("bridge_spool_replayed_total").increment(1);
            true
        }
    }
}

fn parse_line(line: &str) -> Option<SpoolEntry> {
    let (sum, json) = line.split_once(' ')?;
    (hex::encode(Sha256::digest(json.as_bytes())) == sum)
        .then(|| serde_json::from_str(json).ok())
        .flatten()
}

/// Spool files in replay order: ready files by their stamp, the active file last.
fn spool_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut ready: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ready-") && n.ends_with(".jsonl"))
        })
        .collect();
    ready.sort();
    let active = dir.join(ACTIVE);
    if active.exists() {
        ready.push(active);
    }
    Ok(ready)
}

fn append_synced(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let created = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    if created {
        // A new file's name must be durable too, not only its bytes.
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Replays the spool every second until shutdown.
pub fn spawn_replayer(
    spool: Arc<Spool>,
    store: IngestStore,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let replayed = match spool.has_backlog() {
                true => spool.replay(&store, &registry).await.map(|_| ()),
                false => Ok(()),
            };
            if let Err(e) = replayed {
                tracing::error!(error = %e, dir = %spool.dir.display(), "cannot read or rotate the spool");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REPLAY_EVERY) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_or_altered_line_is_refused() {
        let entry = SpoolEntry::new("leadsquared", "r1", &InboundRequest::default());
        let json = serde_json::to_string(&entry).unwrap();
        let line = format!("{} {json}", hex::encode(Sha256::digest(json.as_bytes())));
        assert!(parse_line(&line).is_some());
        assert!(parse_line(&line[..line.len() - 3]).is_none());
        assert!(parse_line(&line.replace("r1", "r2")).is_none());
    }
}
